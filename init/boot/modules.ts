// Kernel modules at boot, the way udev and kmod would load them, from the image's
// /lib/modules/<release> (in-process for the hardware: gunzip and init_module(2), no kmod):
//  1. drivers for the hardware present: every device's modalias (/sys/bus/*/devices/*/modalias and
//     the CPU's) matched against modules.alias, repeated while loading makes new devices appear
//     (virtio_pci creates the virtio devices virtio_net and virtio_blk bind to). Disk controller
//     drivers (ata, scsi, nvme) load in a `/sbin/modprobe -a` child meanwhile: their init_module
//     waits for the bus scan (ahci probing empty SATA ports, ~0.4 s), which the NIC drivers need not;
//  2. after the RPC is up, in a child process (`/sbin/modprobe -a`, busybox's), every other module
//     the image ships that no device alias claims: FUSE, NBD, overlayfs, bridge/veth/nftables, ...
//     Until then the kernel loads what it is asked for through /sbin/modprobe (request_module():
//     fs-ext4 when the state disk is mounted, fs-overlay, nft-expr-*, rtnl-link-veth, ...); vdisks
//     load nbd directly if it is still missing (nbd has no alias the kernel would ask for).
//
// Formats (written by depmod):
//   modules.dep    "path: dep1 dep2 ..."; the dependencies are the full closure, listed so that the
//                  last one must be loaded first (as modprobe reads them).
//   modules.alias  "alias <pattern> <module name>"; the pattern is an fnmatch(3) glob (* ? [...])
//                  over a modalias string such as "pci:v00001AF4d00001000sv...bc02sc00i00".
import { closeSync, existsSync, openSync, readdirSync, readFileSync } from "node:fs";
import { release, setPriority } from "node:os";
import { basename, join } from "node:path";
import type { Health } from "../health.ts";
import { EEXIST, ENODEV, finitModule, initModule, LibcError } from "../libc.ts";
import { logger } from "../log.ts";

const log = logger("modules");

/** The kernel's usermode helper for request_module(); in the image a link to busybox. */
export const MODPROBE = "/sbin/modprobe";
/** Nice value of the background modprobe. */
const LOWEST_PRIORITY = 19;
/** Rounds of "match, load, look again": each round can only add devices behind a new bus driver. */
const MAX_HARDWARE_ROUNDS = 5;
/** Where depmod puts the drivers whose loading scans a storage bus (module paths in modules.dep). */
const DISK_CONTROLLER_DIRS = /^kernel\/drivers\/(ata|scsi|nvme)\//;
/** Bound on the disk controllers' modprobe: the state disk waits for it, and a SATA link that never
 * answers costs libata ~10 s per reset try; past this the boot goes on without the state disk. */
const DISK_CONTROLLERS_TIMEOUT_MS = 30_000;

/** A modprobe child that failed (exit status, signal, or its complaints on stderr). */
export class ModprobeError extends Error {
  constructor(readonly modprobe: string, readonly names: string[], readonly reason: string) {
    super(`${modprobe} -a ${names.join(" ")}: ${reason}`);
    this.name = "ModprobeError";
  }
}

/**
 * Loads `names` (and their dependencies; loaded ones are skipped) in a busybox `modprobe -a` child.
 * Rejects with a ModprobeError if it fails or outlives `timeoutMs` (then it is killed).
 */
export async function modprobeChild(names: string[], opts: { modprobe?: string; nice?: number; timeoutMs?: number } = {}): Promise<void> {
  const modprobe = opts.modprobe ?? MODPROBE;
  const proc = Bun.spawn([modprobe, "-a", ...names], { stdin: "ignore", stdout: "ignore", stderr: "pipe", timeout: opts.timeoutMs, killSignal: "SIGKILL" });
  if (opts.nice !== undefined) {
    try {
      setPriority(proc.pid, opts.nice);
    } catch {
      // it has exited already
    }
  }
  const [stderr, code] = await Promise.all([new Response(proc.stderr).text(), proc.exited]);
  if (proc.signalCode) throw new ModprobeError(modprobe, names, `killed by ${proc.signalCode}${opts.timeoutMs ? ` (bound ${opts.timeoutMs} ms)` : ""}`);
  // "No such device" is a module for hardware this machine lacks (efivarfs without EFI): not a failure
  const complaints = stderr.split("\n").filter((l) => l.trim() && !/No such device/.test(l));
  if (code !== 0 && complaints.length) throw new ModprobeError(modprobe, names, `exited ${code}: ${complaints.join("; ")}`);
}

export function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    deps.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
  }
  return deps;
}

/** The order to load `modules` in: each one after all its dependencies, each once. */
export function loadOrder(deps: Map<string, string[]>): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (m: string) => {
    if (seen.has(m)) return;
    seen.add(m);
    for (const d of [...(deps.get(m) ?? [])].reverse()) visit(d);
    order.push(m);
  };
  for (const m of deps.keys()) visit(m);
  return order;
}

export function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

export interface ModuleAlias {
  pattern: string;
  module: string;
  /** The pattern up to its first wildcard: a modalias must start with it (cheap, checked first). */
  prefix: string;
}

/** An fnmatch(3) glob without flags (what modprobe uses on modules.alias) as an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === "*") re += "[^]*";
    else if (ch === "?") re += "[^]";
    else if (ch === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close < 0) re += "\\[";
      else {
        let set = glob.slice(i + 1, close);
        if (set.startsWith("!")) set = "^" + set.slice(1);
        re += "[" + set.replace(/\\/g, "\\\\") + "]";
        i = close;
      }
    } else re += ch.replace(/[.+^${}()|\\\]/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/** Device aliases only ("bus:..."); the others (fs-ext4, devname:fuse, nft-expr-*) name uses, not hardware. */
export function parseDeviceAliases(text: string): ModuleAlias[] {
  const out: ModuleAlias[] = [];
  for (const line of text.split("\n")) {
    const [kw, pattern, module] = line.trim().split(/\s+/);
    if (kw !== "alias" || !pattern || !module) continue;
    if (!isDeviceAlias(pattern)) continue;
    out.push({ pattern, module: module.replace(/-/g, "_"), prefix: pattern.slice(0, pattern.search(/[*?[]|$/)) });
  }
  return out;
}

export function isDeviceAlias(pattern: string): boolean {
  return pattern.includes(":") && !pattern.startsWith("devname:");
}

/**
 * The modalias of every device the kernel knows now, and the CPU's (for CPU-feature drivers such as
 * crc32c-intel), leaving out the devices in `seen`; each device read is added to it, so a later
 * round reads only the devices that appeared since. Many devices have no modalias (memory blocks,
 * clock sources): checked with existsSync, as a thrown error per device is slow under emulation.
 */
export function deviceModaliases(sys = "/sys", seen = new Set<string>()): string[] {
  const out = new Set<string>();
  const read = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    try {
      const text = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
      if (text) out.add(text);
    } catch {
      // a device that went away while we listed the bus
    }
  };
  const bus = join(sys, "bus");
  for (const b of existsSync(bus) ? readdirSync(bus) : []) {
    const devices = join(bus, b, "devices");
    if (!existsSync(devices)) continue;
    for (const d of readdirSync(devices)) read(join(devices, d, "modalias"));
  }
  read(join(sys, "devices", "system", "cpu", "modalias"));
  return [...out];
}

/**
 * Module names whose device alias matches one of `modaliases`, as modprobe would resolve them.
 * Only patterns whose literal prefix fits are compiled (a PCI alias names its vendor and device
 * before any wildcard, so under emulation this skips compiling ~900 RegExps).
 */
export function modulesForDevices(aliases: ModuleAlias[], modaliases: string[]): Set<string> {
  const out = new Set<string>();
  for (const a of aliases) {
    if (out.has(a.module)) continue;
    const candidates = modaliases.filter((m) => m.startsWith(a.prefix));
    if (candidates.length === 0) continue;
    const re = globToRegExp(a.pattern);
    if (candidates.some((m) => re.test(m))) out.add(a.module);
  }
  return out;
}

/** Names of the modules in the kernel now (the first field of each /proc/modules line). */
export function modulesInKernel(procModules = "/proc/modules"): Set<string> {
  return new Set(existsSync(procModules) ? readFileSync(procModules, "utf8").split("\n").map((l) => l.split(" ")[0]).filter(Boolean) : []);
}

export interface LoadResult {
  loaded: string[];
  present: number;
  failed: string[];
}

/** The image's modules: its directory, modules.dep and the modules already in the kernel. */
export class ShippedModules {
  readonly deps: Map<string, string[]>;
  readonly #byName = new Map<string, string>();
  readonly #inKernel: Set<string>;

  constructor(readonly dir: string, procModules = "/proc/modules") {
    this.deps = parseModulesDep(readFileSync(join(dir, "modules.dep"), "utf8"));
    for (const path of this.deps.keys()) this.#byName.set(moduleName(path), path);
    this.#inKernel = modulesInKernel(procModules);
  }

  static open(dir: string): ShippedModules | null {
    if (existsSync(join(dir, "modules.dep"))) return new ShippedModules(dir);
    log.info(`no ${join(dir, "modules.dep")}: no modules to load`);
    return null;
  }

  has(name: string): boolean {
    return this.#byName.has(name.replace(/-/g, "_"));
  }

  isDiskController(name: string): boolean {
    return DISK_CONTROLLER_DIRS.test(this.#byName.get(name.replace(/-/g, "_")) ?? "");
  }

  /** Shipped modules that are no other shipped module's dependency and that no device alias claims. */
  serviceModules(deviceAliases: ModuleAlias[]): string[] {
    const needed = new Set([...this.deps.values()].flat());
    const hardware = new Set(deviceAliases.map((a) => a.module));
    return [...this.deps.keys()].filter((p) => !needed.has(p)).map(moduleName).filter((n) => !hardware.has(n));
  }

  /** Loads `names` with their dependencies, dependencies first; a name the image lacks is a failure. */
  load(names: Iterable<string>): LoadResult {
    const result: LoadResult = { loaded: [], present: 0, failed: [] };
    const wanted = new Map<string, string[]>();
    for (const raw of names) {
      const path = this.#byName.get(raw.replace(/-/g, "_"));
      if (!path) {
        result.failed.push(raw);
        log.warn(`module ${raw} is not in ${this.dir}`);
        continue;
      }
      for (const p of [path, ...(this.deps.get(path) ?? [])]) wanted.set(p, this.deps.get(p) ?? []);
    }
    for (const rel of loadOrder(wanted)) {
      const name = moduleName(rel);
      if (this.#inKernel.has(name)) {
        result.present++;
        continue;
      }
      const path = rel.startsWith("/") ? rel : join(this.dir, rel);
      let fd = -1;
      try {
        const started = performance.now();
        // the image's modules are gzipped (initramfs/modules.ts); Debian's kernel cannot inflate them itself
        if (path.endsWith(".ko.gz")) initModule(Bun.gunzipSync(readFileSync(path)), "", name);
        else finitModule((fd = openSync(path, "r")), "", 0, name);
        log.debug(`${name} loaded in ${(performance.now() - started).toFixed(0)} ms`);
        result.loaded.push(name);
        this.#inKernel.add(name);
      } catch (e) {
        if (e instanceof LibcError && e.errno === EEXIST) {
          result.present++;
          this.#inKernel.add(name);
        } else if (e instanceof LibcError && e.errno === ENODEV) log.debug(`${name}: no such device here`);
        else {
          result.failed.push(name);
          log.warn(`cannot load ${name}`, (e as Error).message);
        }
      } finally {
        if (fd >= 0) closeSync(fd);
      }
    }
    return result;
  }
}

export interface BootModules {
  modules: ShippedModules;
  deviceAliases: ModuleAlias[];
}

/**
 * Step 1: the drivers of the hardware present, disk controllers in a child process alongside the
 * rest; resolves once all are loaded (or the child is past its bound), so the state disk can be
 * looked for. Failures are logged and reported to `health` as "modules"; null when the image ships
 * no modules.
 */
export async function loadBootModules(health: Health, dir = join("/lib/modules", release()), sys = "/sys", modprobe = MODPROBE): Promise<BootModules | null> {
  try {
    const modules = ShippedModules.open(dir);
    if (!modules) return null;
    const aliasFile = join(dir, "modules.alias");
    const deviceAliases = existsSync(aliasFile) ? parseDeviceAliases(readFileSync(aliasFile, "utf8")) : [];
    const loaded: string[] = [], failed: string[] = [];
    let present = 0;
    const load = (names: string[]) => {
      const r = modules.load(names);
      loaded.push(...r.loaded);
      failed.push(...r.failed);
      present += r.present;
    };
    const diskControllers: Promise<void>[] = [];
    const inChild = (names: string[]) => {
      const started = performance.now();
      return modprobeChild(names, { modprobe, timeoutMs: DISK_CONTROLLERS_TIMEOUT_MS }).then(
        () => {
          log.debug(`${names.join(" ")} loaded by ${modprobe} in ${(performance.now() - started).toFixed(0)} ms`);
          loaded.push(...names);
        },
        (e) => {
          log.warn("disk controllers", (e as Error).message);
          failed.push(...names);
        },
      );
    };
    const tried = new Set<string>(), seen = new Set<string>();
    for (let round = 0; round < MAX_HARDWARE_ROUNDS; ) {
      const started = performance.now();
      const fresh = [...modulesForDevices(deviceAliases, deviceModaliases(sys, seen))].filter((n) => !tried.has(n) && modules.has(n));
      log.debug(`round ${round}: ${fresh.length} new driver(s) matched in ${(performance.now() - started).toFixed(0)} ms`);
      if (fresh.length === 0) {
        if (diskControllers.length === 0) break;
        // the disks behind the controllers appear once these are loaded (sd_mod binds to them)
        await Promise.all(diskControllers.splice(0));
        continue;
      }
      round++;
      fresh.forEach((n) => tried.add(n));
      const disk: string[] = [];
      const other: string[] = [];
      for (const n of fresh) (modules.isDiskController(n) ? disk : other).push(n);
      if (disk.length) diskControllers.push(inChild(disk));
      load(other);
    }
    await Promise.all(diskControllers);
    log.info(`modules for this machine: ${loaded.length} loaded (${loaded.join(" ") || "none"}), ${present} already present, ${failed.length} failed`);
    if (failed.length) health.fail("modules", `failed: ${failed.join(", ")}`);
    else health.ok("modules", `${loaded.length} loaded`);
    return { modules, deviceAliases };
  } catch (e) {
    log.error("modules failed", e);
    health.fail("modules", e);
    return null;
  }
}

/**
 * Step 2: the service modules, loaded by `/sbin/modprobe -a` in a child process so the RPC keeps
 * answering meanwhile. Reported to `health` as "service-modules"; resolves with the names asked for.
 */
export async function loadServiceModules(boot: BootModules, health: Health, modprobe = MODPROBE): Promise<string[]> {
  // the kernel may have loaded some meanwhile on request (ext4 for the state disk)
  const inKernel = modulesInKernel();
  const names = boot.modules.serviceModules(boot.deviceAliases).filter((n) => !inKernel.has(n));
  try {
    if (names.length === 0) return names;
    // background work: the first RPC answers and the DHCP hook go first on a busy (or emulated) CPU
    await modprobeChild(names, { modprobe, nice: LOWEST_PRIORITY });
    log.info(`service modules loaded: ${names.join(" ")}`);
    health.ok("service-modules", `${names.length} loaded`);
  } catch (e) {
    log.error("service modules", e);
    health.fail("service-modules", e);
  }
  return names;
}
