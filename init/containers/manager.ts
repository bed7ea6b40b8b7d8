// The container manager: creates containers from flists (rootfs, network, cgroup, config.json),
// runs them under crun, restarts them by policy with the supervisor's backoff, and removes every
// trace on delete. Specs are persisted under the state dir; after a restart of init, restore()
// tears down whatever the previous init left and recreates the containers that were meant to run.
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { constants } from "node:os";
import { join } from "node:path";
import { getRlimit, RLIMIT_NOFILE } from "../libc.ts";
import { logger } from "../log.ts";
import { Backoff, defaultBackoff, type BackoffPolicy } from "../supervisor/backoff.ts";
import { LogRing, pumpLines } from "../supervisor/log-ring.ts";
import { Cgroups, type ResourceUse } from "./cgroups.ts";
import { Crun } from "./crun.ts";
import { ContainerError } from "./errors.ts";
import { Ipam } from "./ipam.ts";
import { Network, probePort } from "./network.ts";
import { ociConfig, type OciContext } from "./oci.ts";
import { FlistMounts } from "./flist-mounts.ts";
import { mountsUnder } from "./flist-source.ts";
import { Rootfs, type VdiskProvider } from "./rootfs.ts";
import { validateSpec, type ContainerSpec, type PortForward } from "./spec.ts";
import { settleAll } from "./settle.ts";

const log = logger("containers");

export type ContainerState = "creating" | "running" | "stopping" | "exited" | "restarting" | "stopped" | "failed";

export interface ExitInfo {
  code: number | null;
  signal: string | null;
  /** The kernel OOM-killed a process of the container during this run. */
  oomKilled: boolean;
  at: number;
}

export interface ContainerInfo {
  name: string;
  state: ContainerState;
  target: "up" | "down";
  pid: number | null;
  ip: string | null;
  ports: PortForward[];
  flist: string;
  args: string[];
  restart: ContainerSpec["restart"];
  restarts: number;
  startedAt: number | null;
  lastExit: ExitInfo | null;
  lastError: string | null;
  nextStartInMs: number | null;
  /** False on a node without cgroup v2 (the dev host): limits are validated but not enforced. */
  limitsEnforced: boolean;
  resources: ResourceUse | null;
}

/** What is persisted per container (specs/<name>.json). */
interface ContainerRecord {
  spec: ContainerSpec;
  ip: string | null;
  target: "up" | "down";
  createdAt: number;
}

interface Container extends ContainerRecord {
  state: ContainerState;
  bundle: string;
  rootfs: Rootfs;
  proc: ReturnType<typeof Bun.spawn> | null;
  pid: number | null;
  exited: Promise<void> | null;
  startedAt: number | null;
  ring: LogRing;
  backoff: Backoff;
  restarts: number;
  lastExit: ExitInfo | null;
  lastError: string | null;
  timer: ReturnType<typeof setTimeout> | null;
  timerAt: number | null;
  oomBefore: number;
}

export interface ManagerOptions {
  /** Everything of the manager lives here: specs/, bundles/, lowers/, crun/, cache/, flists/. */
  stateDir: string;
  subnet?: string;
  backoff?: BackoffPolicy;
  /** Hex ed25519 key every flist must be signed by; null accepts unsigned flists. */
  trustedFlistKey?: string | null;
  cgroups?: Cgroups;
  /** The node's vdisks, for vdisk mounts; without them such mounts are "unsupported". */
  vdisks?: VdiskProvider | null;
}

export type Progress = (step: string, detail?: string) => void;

type EtcFiles = OciContext["etcFiles"];

export class ContainerManager {
  private readonly containers = new Map<string, Container>();
  private readonly cgroups: Cgroups;
  readonly limitsEnforced: boolean;
  private readonly crun: Crun;
  readonly ipam: Ipam;
  readonly network: Network;
  readonly flists: FlistMounts;
  private readonly dirs: { specs: string; bundles: string };
  private shuttingDown = false;

  constructor(readonly opts: ManagerOptions) {
    const d = opts.stateDir;
    this.dirs = { specs: join(d, "specs"), bundles: join(d, "bundles") };
    this.flists = new FlistMounts({ dir: join(d, "lowers"), cacheDir: join(d, "cache"), flistDir: join(d, "flists"), trustedKey: opts.trustedFlistKey ?? null });
    this.cgroups = opts.cgroups ?? new Cgroups();
    this.limitsEnforced = this.cgroups.available();
    this.crun = new Crun(join(d, "crun"), this.limitsEnforced ? "cgroupfs" : "disabled");
    this.ipam = new Ipam(opts.subnet);
    this.network = new Network(this.ipam);
  }

  private get(name: string): Container {
    const c = this.containers.get(name);
    if (!c) throw new ContainerError("not-found", `no container named '${name}'`, { container: name });
    return c;
  }

  has(name: string): boolean {
    return this.containers.has(name);
  }

  /** Validates, builds everything the container needs, starts it; on any failure undoes all of it. */
  async create(spec: ContainerSpec, progress: Progress = () => {}): Promise<ContainerInfo> {
    validateSpec(spec);
    if (this.shuttingDown) throw new ContainerError("conflict", "the node is shutting down", { container: spec.name });
    if (this.containers.has(spec.name)) throw new ContainerError("conflict", `a container named '${spec.name}' already exists`, { container: spec.name });
    this.checkPortsFree(spec);
    const c = this.newContainer({ spec, ip: null, target: "up", createdAt: Date.now() });
    this.containers.set(spec.name, c);
    try {
      for (const p of spec.ports) await probePort(p.hostPort, p.protocol, spec.name);
      await this.build(c, progress);
    } catch (e) {
      this.containers.delete(spec.name);
      await this.teardown(c).catch((t) => log.error(`cleaning up after failed create of ${spec.name}`, t));
      rmSync(this.specPath(spec.name), { force: true });
      throw e;
    }
    progress("start");
    await this.start(c);
    if (spec.network === "private") this.network.keepSpare();
    return this.info(spec.name);
  }

  private newContainer(r: ContainerRecord): Container {
    const bundle = join(this.dirs.bundles, r.spec.name);
    return {
      ...r, state: "creating", bundle, rootfs: new Rootfs(bundle), proc: null, pid: null, exited: null, startedAt: null,
      ring: new LogRing(), backoff: new Backoff(this.opts.backoff ?? defaultBackoff), restarts: 0, lastExit: null, lastError: null,
      timer: null, timerAt: null, oomBefore: 0,
    };
  }

  private checkPortsFree(spec: ContainerSpec): void {
    for (const other of this.containers.values()) {
      for (const p of spec.ports) {
        if (other.spec.ports.some((q) => q.protocol === p.protocol && q.hostPort === p.hostPort)) {
          throw new ContainerError("conflict", `${p.protocol} port ${p.hostPort} is already forwarded to container '${other.spec.name}'`, { container: spec.name, step: "port forward" });
        }
      }
    }
  }

  /**
   * Rootfs, network, cgroup, config.json and the persisted record: everything but the process.
   * The network namespace (made on the network thread) is started first, then the rootfs (the FUSE
   * mount, answered on this thread), and the files are written while both are in flight; all of
   * them settle before a failure is reported, so the teardown that follows never races a step still
   * running. The record is written first: an init that dies meanwhile recreates the container.
   */
  private async build(c: Container, progress: Progress): Promise<void> {
    const { spec } = c;
    mkdirSync(c.bundle, { recursive: true });
    const netnsPath = spec.network === "private" ? join(c.bundle, "netns") : null;
    if (netnsPath) {
      if (c.ip) this.ipam.claim(c.ip);
      else c.ip = this.ipam.allocate();
    }
    const network = (async () => {
      if (!netnsPath) return;
      progress("network");
      await this.network.attach(spec.name, c.ip!, netnsPath);
      await this.network.addForwards(spec.name, c.ip!, spec.ports);
    })();
    const rootfs = (async () => {
      progress("rootfs", spec.flist);
      await c.rootfs.mount(spec, this.flists, this.opts.vdisks ?? null);
    })();
    const files = (async () => {
      this.persist(c);
      if (this.limitsEnforced) {
        progress("cgroup");
        this.cgroups.prepare(spec.name);
      }
      return this.writeEtcFiles(c);
    })();
    const [, , etcFiles] = await settleAll([network, rootfs, files]);
    const config = ociConfig(spec, {
      etcFiles, netnsPath, flistMountSources: c.rootfs.extraSources,
      cgroupsPath: this.limitsEnforced ? this.cgroups.leafPath(spec.name) : null,
      nofileHard: Number(getRlimit(RLIMIT_NOFILE).hard),
    });
    writeFileSync(join(c.bundle, "config.json"), JSON.stringify(config, null, 2));
  }

  /**
   * The container's /etc/hostname, hosts and resolv.conf, bind-mounted from the bundle. Written by
   * the thread pool: on a busy disk each file costs this thread a journal wait, while it has the
   * flist mount to make.
   */
  private async writeEtcFiles(c: Container): Promise<EtcFiles> {
    const etc = join(c.bundle, "etc");
    await mkdir(etc, { recursive: true });
    const files = { hostname: join(etc, "hostname"), hosts: join(etc, "hosts"), resolv: join(etc, "resolv.conf") };
    const resolv = readFile("/etc/resolv.conf").catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return "";
      throw e;
    });
    // a failed write must not return while the others still run on the thread pool, or teardown's
    // removal of the bundle would race them (build()'s rule: all settle first)
    await settleAll([
      writeFile(files.hostname, c.spec.hostname + "\n"),
      writeFile(files.hosts, `127.0.0.1\tlocalhost\n::1\tlocalhost\n${c.ip ? `${c.ip}\t${c.spec.hostname}\n` : ""}`),
      resolv.then((r) => writeFile(files.resolv, r)),
    ]);
    return files;
  }

  /** Undoes build(), tolerating parts that were never made or are already gone. */
  private async teardown(c: Container): Promise<void> {
    const name = c.spec.name;
    const errors: unknown[] = [];
    const attempt = async (f: () => unknown) => {
      try {
        await f();
      } catch (e) {
        errors.push(e);
      }
    };
    await attempt(() => this.crun.delete(name));
    if (c.spec.network === "private") {
      await attempt(() => this.network.removeForwards(name, c.spec.ports));
      await attempt(() => this.network.detach(name, join(c.bundle, "netns")));
      if (c.ip) this.ipam.release(c.ip);
    }
    await attempt(() => c.rootfs.unmount());
    if (this.limitsEnforced) await attempt(() => this.cgroups.remove(name));
    if (errors.length) throw errors[0];
    // never recurse into something still mounted
    if (!mountsUnder(c.bundle).length) rmSync(c.bundle, { recursive: true, force: true });
  }

  private specPath(name: string): string {
    return join(this.dirs.specs, `${name}.json`);
  }

  private persist(c: Container): void {
    mkdirSync(this.dirs.specs, { recursive: true });
    const path = this.specPath(c.spec.name);
    const record: ContainerRecord = { spec: c.spec, ip: c.ip, target: c.target, createdAt: c.createdAt };
    writeFileSync(path + ".tmp", JSON.stringify(record, null, 2));
    renameSync(path + ".tmp", path);
  }

  /** Starts the container's process and resolves once crun reports it running (or it already ended). */
  private async start(c: Container): Promise<void> {
    const name = c.spec.name;
    c.timer = null;
    c.timerAt = null;
    c.oomBefore = this.limitsEnforced ? this.cgroups.oomKills(name) : 0;
    const { proc, running } = this.crun.run(name, c.bundle);
    c.proc = proc;
    c.state = "running";
    c.startedAt = Date.now();
    c.lastError = null;
    const pumps = Promise.all([
      pumpLines(proc.stdout as ReadableStream<Uint8Array>, (l) => c.ring.push("stdout", l)),
      pumpLines(proc.stderr as ReadableStream<Uint8Array>, (l) => c.ring.push("stderr", l)),
    ]);
    c.exited = (async () => {
      const code = await proc.exited;
      await pumps.catch(() => {});
      await this.onExit(c, proc, code);
    })();
    const pid = await running;
    if (c.proc === proc && pid !== null) c.pid = pid;
  }

  private async onExit(c: Container, proc: ReturnType<typeof Bun.spawn>, code: number): Promise<void> {
    if (c.proc !== proc) return;
    const name = c.spec.name;
    const oomKilled = this.limitsEnforced && this.cgroups.oomKills(name) > c.oomBefore;
    // crun reports a container killed by signal N as exit status 128+N
    const signal = proc.signalCode ? String(proc.signalCode) : (code > 128 && code < 160 ? signalName(code - 128) : null);
    c.lastExit = { code: signal ? null : code, signal, oomKilled, at: Date.now() };
    c.proc = null;
    c.pid = null;
    await this.crun.delete(name).catch((e) => log.warn(`crun delete ${name}`, e));
    if (oomKilled) c.ring.push("stderr", `zos: container ${name} was killed for exceeding its memory limit`);
    const failed = code !== 0 || oomKilled;
    if (c.target === "down" || this.shuttingDown) {
      c.state = "stopped";
      return;
    }
    if (c.spec.restart === "never" || (c.spec.restart === "on-failure" && !failed)) {
      c.state = "exited";
      return;
    }
    const delay = c.backoff.next(Date.now() - (c.startedAt ?? Date.now()));
    log.info(`container ${name} exited (${signal ?? code}${oomKilled ? ", OOM" : ""}); restarting in ${delay} ms`);
    c.state = "restarting";
    c.timerAt = Date.now() + delay;
    c.timer = setTimeout(() => {
      c.restarts++;
      this.start(c).catch((e) => {
        c.state = "failed";
        c.lastError = (e as Error).message;
      });
    }, delay);
  }

  /** Sets the target up and starts a container that is not running. */
  async startContainer(name: string): Promise<ContainerInfo> {
    const c = this.get(name);
    c.target = "up";
    this.persist(c);
    if (!c.proc) {
      if (c.timer) clearTimeout(c.timer);
      c.backoff.reset();
      await this.start(c);
    }
    return this.info(name);
  }

  /** Sets the target down: SIGTERM, then SIGKILL after timeoutMs. */
  async stop(name: string, timeoutMs = 10_000): Promise<ContainerInfo> {
    const c = this.get(name);
    c.target = "down";
    this.persist(c);
    await this.halt(c, timeoutMs);
    return this.info(name);
  }

  private async halt(c: Container, timeoutMs: number): Promise<void> {
    if (c.timer) clearTimeout(c.timer);
    c.timer = null;
    c.timerAt = null;
    if (!c.proc) {
      if (c.state === "restarting" || c.state === "running") c.state = "stopped";
      return;
    }
    c.state = "stopping";
    const exited = c.exited!;
    await this.crun.kill(c.spec.name, "SIGTERM");
    const inTime = await Promise.race([exited.then(() => true), Bun.sleep(timeoutMs).then(() => false)]);
    if (!inTime) {
      await this.crun.kill(c.spec.name, "SIGKILL");
      // crun no longer finds a container whose state dir was removed under it (it then "does not
      // exist" to crun kill): its process is still alive and ours to end, or this would wait forever
      if (c.pid !== null && c.proc && c.proc.exitCode === null) {
        try {
          process.kill(c.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
      await exited;
    }
  }

  async restart(name: string, timeoutMs?: number): Promise<ContainerInfo> {
    await this.stop(name, timeoutMs);
    return this.startContainer(name);
  }

  /** Stops the container and removes everything it had: process, mounts, veth, forwards, cgroup, dirs, spec. */
  async delete(name: string, timeoutMs?: number): Promise<{ deleted: string }> {
    const c = this.get(name);
    if (c.state === "creating") throw new ContainerError("conflict", `container '${name}' is still being created`, { container: name, step: "delete" });
    c.target = "down";
    await this.halt(c, timeoutMs ?? 10_000);
    await this.teardown(c);
    rmSync(this.specPath(name), { force: true });
    this.containers.delete(name);
    return { deleted: name };
  }

  list(): ContainerInfo[] {
    return [...this.containers.keys()].sort().map((n) => this.info(n));
  }

  info(name: string): ContainerInfo {
    const c = this.get(name);
    return {
      name, state: c.state, target: c.target, pid: c.pid, ip: c.ip, ports: c.spec.ports, flist: c.spec.flist, args: c.spec.args,
      restart: c.spec.restart, restarts: c.restarts, startedAt: c.startedAt, lastExit: c.lastExit, lastError: c.lastError,
      nextStartInMs: c.timerAt === null ? null : Math.max(0, c.timerAt - Date.now()),
      limitsEnforced: this.limitsEnforced,
      resources: this.limitsEnforced && c.proc ? this.cgroups.use(name) : null,
    };
  }

  logs(name: string): LogRing {
    return this.get(name).ring;
  }

  /** Runs a command inside a running container (admin debugging). */
  async exec(name: string, args: string[], signal?: AbortSignal): Promise<{ code: number; stdout: string; stderr: string }> {
    const c = this.get(name);
    if (!c.proc || c.state !== "running") throw new ContainerError("conflict", `container '${name}' is not running (${c.state})`, { container: name, step: "exec" });
    return this.crun.exec(name, args, signal);
  }

  /**
   * Called once when init starts: every persisted container is torn down from whatever state the
   * previous init left (its FUSE mounts died with it) and recreated; those whose target was up are
   * started again. Returns the names that could not be recreated.
   */
  async restore(): Promise<string[]> {
    await this.flists.clearStale();
    if (!existsSync(this.dirs.specs)) return [];
    const failed: string[] = [];
    for (const f of readdirSync(this.dirs.specs).filter((n) => n.endsWith(".json"))) {
      let record: ContainerRecord;
      try {
        record = JSON.parse(readFileSync(join(this.dirs.specs, f), "utf8")) as ContainerRecord;
        validateSpec(record.spec);
      } catch (e) {
        log.error(`ignoring unreadable container spec ${f}`, e);
        continue;
      }
      const c = this.newContainer(record);
      this.containers.set(record.spec.name, c);
      try {
        await this.crun.killStaleRuns(record.spec.name, c.bundle);
        await this.teardown({ ...c, ip: null });
        await this.build(c, () => {});
        if (c.target === "up") await this.start(c);
        else c.state = "stopped";
        log.info(`restored container ${record.spec.name}`);
      } catch (e) {
        c.state = "failed";
        c.lastError = (e as Error).message;
        failed.push(record.spec.name);
        log.error(`cannot restore container ${record.spec.name}`, e);
      }
    }
    return failed;
  }

  /** Stops every container and releases its mounts and network, keeping the specs for the next start. */
  async shutdown(timeoutMs = 10_000): Promise<void> {
    this.shuttingDown = true;
    await Promise.all([...this.containers.values()].map(async (c) => {
      try {
        await this.halt(c, timeoutMs);
        await this.teardown(c);
      } catch (e) {
        log.error(`shutting down container ${c.spec.name}`, e);
      }
    }));
  }
}

function signalName(n: number): string {
  return Object.entries(constants.signals).find(([, v]) => v === n)?.[0] ?? `signal ${n}`;
}
