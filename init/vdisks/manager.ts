// Vdisks on the node: an NBD export (our vdisk server or any other) attached to a free /dev/nbdN
// with the kernel NBD client, given an ext4 filesystem on first use, and mounted. Attached vdisks
// live as long as init: they are not re-attached after a reboot (the caller attaches again).
// Containers use vdisks through acquire/release; one they attached themselves goes when its last
// container does. At shutdown every vdisk is unmounted and disconnected, newest first, while the
// network that carries its NBD connection is still up.
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runCommand, type CommandResult } from "../containers/command.ts";
import { logger } from "../log.ts";
import { VdiskError } from "./errors.ts";
import { probeDevice } from "./filesystem.ts";
import { defaultNbdSys, deviceBytes, ioProgress, isConnected, loadNbdModule, pickFreeDevice, type NbdSys } from "./nbd-devices.ts";
import { nbdClientTarget, parseNbdUrl } from "./url.ts";

const log = logger("vdisks");

export const vdiskNamePattern = /^[a-z0-9][a-z0-9_-]{0,62}$/;
/** Connecting can hang on an unreachable host; give up well before a caller's RPC timeout would. */
const CONNECT_TIMEOUT_MS = 60_000;
/** At shutdown, a vdisk whose server completed no request for this long during its unmount is cut off. */
const STALL_MS = 15_000;

export interface AttachRequest {
  name: string;
  /** nbd://host[:port]/export or nbd+unix:///export?socket=/path */
  url: string;
  /** Filesystem to make when the device is blank, and to mount it as. */
  format?: "ext4";
  /** Where to mount it on the node; without one the device is only connected. */
  mountpoint?: string;
  readOnly?: boolean;
}

export interface VdiskInfo {
  name: string;
  url: string;
  device: string;
  sizeBytes: number;
  mountpoint: string | null;
  readOnly: boolean;
  /** True when this attach made the filesystem (the device was blank). */
  formatted: boolean;
  /** Containers that have it mounted. */
  users: string[];
  /** "container" when a container's mount attached it: it is detached with its last user. */
  attachedBy: "rpc" | "container";
  attachedAt: number;
}

interface Vdisk extends Omit<VdiskInfo, "users"> {
  index: number;
  users: Set<string>;
}

export interface VdiskManagerOptions {
  /** Where containers' vdisks are mounted: <mountRoot>/<name>. */
  mountRoot: string;
  sys?: NbdSys;
}

export class VdiskManager {
  private readonly vdisks = new Map<string, Vdisk>();
  private readonly claimed = new Set<number>();
  private readonly sys: NbdSys;
  /** Attach and detach run one at a time: picking a free device and mounting must not interleave. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(readonly opts: VdiskManagerOptions) {
    this.sys = opts.sys ?? defaultNbdSys;
  }

  private serial<T>(f: () => Promise<T>): Promise<T> {
    const next = this.queue.then(f, f);
    this.queue = next.catch(() => {});
    return next;
  }

  list(): VdiskInfo[] {
    return [...this.vdisks.values()].map(info);
  }

  get(name: string): VdiskInfo {
    const v = this.vdisks.get(name);
    if (!v) throw new VdiskError("not-found", `no vdisk named '${name}' is attached`, { vdisk: name });
    return info(v);
  }

  attach(req: AttachRequest): Promise<VdiskInfo> {
    return this.serial(async () => info(await this.attachNow(req, "rpc")));
  }

  /** Unmounts and disconnects; refused while a container has it mounted. */
  detach(name: string): Promise<{ detached: string }> {
    return this.serial(async () => {
      const v = this.vdisks.get(name);
      if (!v) throw new VdiskError("not-found", `no vdisk named '${name}' is attached`, { vdisk: name });
      if (v.users.size) throw new VdiskError("conflict", `vdisk '${name}' is mounted in container(s) ${[...v.users].join(", ")}`, { vdisk: name, step: "detach" });
      await this.detachNow(v, false);
      return { detached: name };
    });
  }

  /**
   * For a container's vdisk mount: the host path to bind into it. A vdisk that is not attached yet
   * is attached from `url`, given ext4 if blank, and mounted under mountRoot.
   */
  acquire(name: string, url: string | undefined, container: string): Promise<string> {
    return this.serial(async () => {
      let v = this.vdisks.get(name);
      if (!v) {
        // a node without NBD cannot do vdisks at all: say that before asking for a url
        this.requireNbd(name);
        if (!url) throw new VdiskError("not-found", `vdisk '${name}' is not attached: attach it with vdisk.attach or give the mount a url`, { vdisk: name, step: "mounts" });
        v = await this.attachNow({ name, url, format: "ext4", mountpoint: join(this.opts.mountRoot, name) }, "container");
      } else if (url && url !== v.url) {
        throw new VdiskError("conflict", `vdisk '${name}' is attached from ${v.url}, not ${url}`, { vdisk: name, step: "mounts" });
      }
      if (!v.mountpoint) throw new VdiskError("conflict", `vdisk '${name}' is attached without a mountpoint; attach it with one to use it in a container`, { vdisk: name, step: "mounts" });
      v.users.add(container);
      return v.mountpoint;
    });
  }

  /** The container no longer uses it; a vdisk a container attached goes with its last user. */
  release(name: string, container: string): Promise<void> {
    return this.serial(async () => {
      const v = this.vdisks.get(name);
      if (!v || !v.users.delete(container)) return;
      if (v.attachedBy === "container" && v.users.size === 0) await this.detachNow(v, false);
    });
  }

  /** Unmounts (lazily if still busy; see unmountOrCut for a dead server) and disconnects every vdisk, newest first. */
  shutdown(): Promise<void> {
    return this.serial(async () => {
      for (const v of [...this.vdisks.values()].reverse()) {
        try {
          await this.detachNow(v, true);
        } catch (e) {
          log.error(`vdisk ${v.name}: detaching at shutdown`, e);
        }
      }
    });
  }

  private requireNbd(vdisk: string): void {
    try {
      loadNbdModule(this.sys);
    } catch (e) {
      if (e instanceof VdiskError) throw new VdiskError(e.code, e.message, { ...e.context, vdisk }, { cause: e });
      throw e;
    }
  }

  private async attachNow(req: AttachRequest, by: Vdisk["attachedBy"]): Promise<Vdisk> {
    const { name } = req;
    if (!vdiskNamePattern.test(name)) throw new VdiskError("bad-params", `name '${name}' is invalid: 1-63 of a-z 0-9 _ -, starting with a letter or digit`, { vdisk: name });
    const target = parseNbdUrl(req.url, name);
    if (this.vdisks.has(name)) throw new VdiskError("conflict", `a vdisk named '${name}' is already attached`, { vdisk: name });
    const taken = req.mountpoint && [...this.vdisks.values()].find((v) => v.mountpoint === req.mountpoint);
    if (taken) throw new VdiskError("conflict", `${req.mountpoint} is where vdisk '${taken.name}' is mounted`, { vdisk: name });
    if (req.mountpoint !== undefined) checkMountpoint(req.mountpoint, name);
    this.requireNbd(name);
    const index = pickFreeDevice(this.sys, this.claimed);
    if (index === null) throw new VdiskError("conflict", "every /dev/nbd* device is in use", { vdisk: name, step: "device" });
    const device = `/dev/nbd${index}`;
    const ctx = { vdisk: name, device };
    this.claimed.add(index);
    let connected = false;
    try {
      await mustRun(["nbd-client", ...nbdClientTarget(target), device, ...(req.readOnly ? ["-readonly"] : [])], { ...ctx, step: "connect" }, CONNECT_TIMEOUT_MS);
      connected = true;
      let formatted = false;
      if (req.format) {
        const content = await probeDevice(device);
        if (content === "other") throw new VdiskError("conflict", `${device} holds data that is not an ext filesystem: not formatting it as ${req.format}`, { ...ctx, step: "format" });
        if (content === "blank") {
          if (req.readOnly) throw new VdiskError("conflict", `${device} is blank and read-only: cannot make ${req.format} on it`, { ...ctx, step: "format" });
          await mustRun([`mkfs.${req.format}`, "-q", "-F", device], { ...ctx, step: "format" });
          formatted = true;
        }
      }
      if (req.mountpoint) {
        mkdirSync(req.mountpoint, { recursive: true });
        const options = req.readOnly ? ["-o", "ro"] : [];
        await mustRun(["mount", ...(req.format ? ["-t", req.format] : []), ...options, device, req.mountpoint], { ...ctx, step: "mount" });
      }
      const v: Vdisk = {
        name, url: req.url, device, index, sizeBytes: deviceBytes(this.sys, index), mountpoint: req.mountpoint ?? null, readOnly: req.readOnly ?? false, formatted,
        users: new Set(), attachedBy: by, attachedAt: Date.now(),
      };
      this.vdisks.set(name, v);
      log.info(`vdisk ${name}: ${req.url} on ${device}${formatted ? `, made ${req.format}` : ""}${v.mountpoint ? `, mounted on ${v.mountpoint}` : ""}`);
      return v;
    } catch (e) {
      if (connected) await runCommand(["nbd-client", "-d", device]).catch(() => {});
      this.claimed.delete(index);
      throw e;
    }
  }

  /**
   * umount while watching the device: as long as its server completes requests, however slowly, the
   * unmount may take its time; once none completed for STALL_MS, the server is taken as gone and
   * the connection is cut (nbd-client -d), which fails the waiting I/O so the unmount ends and the
   * node can power off. What was not written by then is lost: it could not be. (The in-flight count
   * of /sys/block/nbdN/stat is no help: a stuck flush, what an unmount waits on, is not counted.)
   */
  private async unmountOrCut(v: Vdisk, mountpoint: string): Promise<CommandResult> {
    const umount = runCommand(["umount", mountpoint]);
    let last = ioProgress(this.sys, v.index), progressAt = performance.now();
    for (;;) {
      const done = await Promise.race([umount, Bun.sleep(1000).then(() => null)]);
      if (done) return done;
      const completed = ioProgress(this.sys, v.index);
      if (completed !== last) {
        last = completed;
        progressAt = performance.now();
      } else if (performance.now() - progressAt >= STALL_MS) {
        log.warn(`vdisk ${v.name}: its server completed no request in ${STALL_MS / 1000} s of unmounting; cutting the connection, unwritten data is lost`);
        await runCommand(["nbd-client", "-d", v.device]);
        return umount;
      }
    }
  }

  /** At shutdown (`atShutdown`) a busy mount is detached lazily and a dead server is cut off. */
  private async detachNow(v: Vdisk, atShutdown: boolean): Promise<void> {
    const ctx = { vdisk: v.name, device: v.device };
    if (v.mountpoint && isMountpoint(v.mountpoint)) {
      const r = atShutdown ? await this.unmountOrCut(v, v.mountpoint) : await runCommand(["umount", v.mountpoint]);
      if (r.code !== 0) {
        if (!atShutdown) throw new VdiskError("conflict", `cannot unmount ${v.mountpoint}: ${r.stderr.trim()}`, { ...ctx, step: "unmount" });
        await runCommand(["umount", "-l", v.mountpoint]);
      }
    }
    if (isConnected(this.sys, v.index)) await mustRun(["nbd-client", "-d", v.device], { ...ctx, step: "disconnect" });
    this.vdisks.delete(v.name);
    this.claimed.delete(v.index);
    log.info(`vdisk ${v.name}: ${v.mountpoint ? `unmounted ${v.mountpoint}, ` : ""}disconnected ${v.device}`);
  }
}

function info(v: Vdisk): VdiskInfo {
  const { index: _index, users, ...rest } = v;
  return { ...rest, users: [...users].sort() };
}

function checkMountpoint(path: string, vdisk: string): void {
  if (!path.startsWith("/") || path === "/" || path.split("/").includes("..")) {
    throw new VdiskError("bad-params", `mountpoint '${path}' must be an absolute path other than / and without '..'`, { vdisk, step: "mount" });
  }
  if (isMountpoint(path)) throw new VdiskError("conflict", `something is already mounted on ${path}`, { vdisk, step: "mount" });
}

function isMountpoint(path: string): boolean {
  if (!existsSync("/proc/self/mountinfo")) return false;
  const p = path.replace(/\/+$/, "");
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").some((l) => l.split(" ")[4]?.replace(/\\040/g, " ") === p);
}

async function mustRun(argv: string[], ctx: { vdisk: string; device: string; step: string }, timeoutMs?: number): Promise<void> {
  const signal = timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined;
  let r;
  try {
    r = await runCommand(argv, { signal });
  } catch (e) {
    throw new VdiskError("system", `${ctx.step}: cannot run ${argv[0]}: ${(e as Error).message}`, ctx, { cause: e });
  }
  if (signal?.aborted) throw new VdiskError("system", `${ctx.step}: ${argv.join(" ")} gave no answer in ${timeoutMs} ms: ${r.stderr.trim()}`, ctx);
  if (r.code !== 0) throw new VdiskError("system", `${ctx.step}: ${argv.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`, ctx);
}
