// A running node: identity, supervisor, orphan reaper and RPC server, wired together. Both PID 1
// mode and host mode build one of these; they differ only in boot steps and what shutdown ends with.
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import pkg from "../package.json";
import { keyId, type KeyPair } from "./identity/ed25519.ts";
import { loadOrCreateKey } from "./identity/key-file.ts";
import { Health } from "./health.ts";
import { logger } from "./log.ts";
import { nodeMethods } from "./methods/node.ts";
import { serviceMethods } from "./methods/service.ts";
import { vdiskMethods } from "./methods/vdisk.ts";
import type { ContainerManager } from "./containers/index.ts";
import type { NodeFlists } from "./methods/flist.ts";
import { Reaper } from "./reaper.ts";
import { MethodRegistry } from "./rpc/registry.ts";
import { RpcServer } from "./rpc/server.ts";
import type { TrustStore } from "./rpc/trust.ts";
import { loadServiceDir } from "./supervisor/service-config.ts";
import { Supervisor } from "./supervisor/supervisor.ts";
import { VdiskManager } from "./vdisks/manager.ts";

const log = logger("node");

export type ShutdownKind = "reboot" | "poweroff";

export interface NodeConfig {
  mode: "pid1" | "host";
  configDir: string;
  stateDir: string;
  socketPath: string | null;
  listen: { host: string; port: number }[];
  trust: TrustStore;
  /** Shared with the boot steps so their failures show in node.info. */
  health?: Health;
  /** Called after every service stopped; PID 1 unmounts and reboots, host mode exits. */
  finishShutdown(kind: ShutdownKind): Promise<void>;
}

export class NodeRuntime {
  readonly version = pkg.version;
  readonly startedAt = Date.now();
  readonly health: Health;
  readonly supervisor = new Supervisor();
  readonly reaper = new Reaper();
  readonly registry = new MethodRegistry();
  identity!: KeyPair;
  nodeId = "";
  rpc: RpcServer | null = null;
  containers: ContainerManager | null = null;
  readonly vdisks: VdiskManager;
  /** Settles once container support is loaded (or failed to load); see startRpc. */
  containersLoaded: Promise<void> = Promise.resolve();
  flists: NodeFlists | null = null;
  /** Settles once flist.* is registered (or failed to load: it pulls in the store like containers). */
  flistsLoaded: Promise<void> = Promise.resolve();
  tcpPorts: number[] = [];
  private shuttingDown: Promise<void> | null = null;

  constructor(readonly config: NodeConfig) {
    this.health = config.health ?? new Health();
    this.vdisks = new VdiskManager({ mountRoot: join(config.stateDir, "vdisks") });
  }

  get mode(): "pid1" | "host" {
    return this.config.mode;
  }

  /** Loads (or creates) the node key; the node id is needed before anything else (hostname, RPC). */
  loadIdentity(): void {
    const { key, created } = loadOrCreateKey(join(this.config.stateDir, "node.key"));
    this.identity = key;
    this.nodeId = keyId(key.publicKey);
    log.info(`${created ? "generated new" : "loaded"} node identity: ${this.nodeId}`);
  }

  startSupervisor(): void {
    this.reaper.start();
    if (!existsSync(this.config.configDir)) {
      log.info(`no service dir ${this.config.configDir}: no services configured`);
      this.health.ok("services", "none configured");
      return;
    }
    const { specs, errors } = loadServiceDir(this.config.configDir);
    for (const e of errors) log.error(e.message);
    if (errors.length) this.health.fail("services", errors.map((e) => e.message).join("; "));
    else this.health.ok("services", `${specs.length} loaded from ${this.config.configDir}`);
    for (const spec of specs) this.supervisor.monitor(spec);
  }

  startRpc(): void {
    this.registry.registerMethods(nodeMethods(this, this.registry));
    this.registry.registerMethods(serviceMethods(this.supervisor));
    this.registry.registerMethods(vdiskMethods(this.vdisks));
    // Containers and flists pull in the store, fuse-fs, yaml and the native addon: ~15 MiB of RSS an
    // idle node does without. They load on their first call, or now when a previous run left
    // containers to adopt or mounts to clear. Each loads on its own, so a failure there (say, an addon
    // missing from the image) costs the node that part, not PID 1.
    const state = this.config.stateDir;
    this.registerPart("container", "containers", () => import("./containers/index.ts"), (m) => {
      this.containers = m.startContainers(this.registry, state, this.vdisks);
      this.health.ok("containers");
    }, (settled) => (this.containersLoaded = settled));
    this.registerPart("flist", "flists", () => import("./methods/flist.ts"), (m) => {
      this.flists = m.startFlists(this.registry, state);
    }, (settled) => (this.flistsLoaded = settled));
    this.health.ok("containers", "loads on the first container call");
    if (hasEntries(join(state, "containers", "specs"))) void this.registry.loadFor("container.")?.catch(() => {});
    if (hasEntries(join(state, "flists", "mounts"))) void this.registry.loadFor("flist.")?.catch(() => {});
    const rpc = new RpcServer({ identity: this.identity, registry: this.registry, trust: this.config.trust });
    this.rpc = rpc;
    if (this.config.trust.size === 0) log.warn("no trusted keys configured: every RPC call will be rejected (pass zos.admin=<key>)");
    if (this.config.socketPath) {
      try {
        rpc.listenUnix(this.config.socketPath);
        this.health.ok("rpc-unix", this.config.socketPath);
      } catch (e) {
        log.error(`cannot listen on ${this.config.socketPath}`, e);
        this.health.fail("rpc-unix", e);
      }
    }
    for (const l of this.config.listen) {
      try {
        this.tcpPorts.push(rpc.listenTcp(l.host, l.port));
        this.health.ok(`rpc-tcp`, `${l.host}:${this.tcpPorts.at(-1)}`);
      } catch (e) {
        log.error(`cannot listen on ${l.host}:${l.port}`, e);
        this.health.fail("rpc-tcp", e);
      }
    }
  }

  /**
   * A part whose "<namespace>.*" methods load on first use. A failed load is logged and shown in
   * health under `healthKey`; `settled` receives a promise that settles either way (shutdown waits on it).
   */
  private registerPart<M>(namespace: string, healthKey: string, load: () => Promise<M>, start: (m: M) => void, settled: (p: Promise<void>) => void): void {
    this.registry.registerLazy(namespace, () => {
      const loading = load().then(start, (e) => {
        log.error(`${healthKey} unavailable`, e);
        this.health.fail(healthKey, e);
        throw e;
      });
      settled(loading.catch(() => {}));
      return loading;
    });
  }

  /** Stops services in reverse dependency order, then hands over to the mode's final step. Idempotent. */
  requestShutdown(kind: ShutdownKind, reason: string): Promise<void> {
    this.shuttingDown ??= (async () => {
      log.info(`${kind} requested (${reason}); stopping services`);
      await this.containersLoaded;
      await this.containers?.shutdown();
      try {
        await this.supervisor.shutdown();
      } catch (e) {
        log.error("stopping services", e);
      }
      await this.flistsLoaded;
      await this.flists?.shutdown();
      // after the containers and services that may write to them, before the final step ends every
      // process and unmounts: their NBD connections must still be up to flush
      await this.vdisks.shutdown();
      this.rpc?.stop();
      this.reaper.stop();
      await this.config.finishShutdown(kind);
    })();
    return this.shuttingDown;
  }
}

function hasEntries(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).length > 0;
}
