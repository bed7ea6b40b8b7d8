// Facts about the machine for node.info, read from /proc and /sys (no tools needed in the initramfs).
//
// Memory, disks and NICs change, so they are re-read, but never on the event loop while a call waits:
// reading them costs ~50 µs per NIC and ~100 µs per disk of file reads (a millisecond on a small VM,
// far more on a node whose containers each add a veth), and a synchronous refresh stalled every call
// in flight for that long once a second. The files are read with fs.promises (on Bun's I/O threads)
// and node.info answers from the last snapshot meanwhile.
import { readdir, readFile } from "node:fs/promises";
import { readFileSync } from "node:fs";
import { cpus, freemem, hostname, networkInterfaces, release, totalmem, uptime } from "node:os";
import { logger } from "../log.ts";

const log = logger("node-info");

async function read(path: string): Promise<string | null> {
  try {
    return (await readFile(path, "utf8")).trim();
  } catch {
    return null;
  }
}

async function list(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch {
    return []; // no /sys (a container, a test sandbox): nothing to report
  }
}

export async function memoryInfo(): Promise<{ totalBytes: number; availableBytes: number }> {
  const meminfo = (await read("/proc/meminfo")) ?? "";
  const avail = /MemAvailable:\s+(\d+) kB/.exec(meminfo);
  return { totalBytes: totalmem(), availableBytes: avail ? Number(avail[1]) * 1024 : freemem() };
}

export function cpuInfo(): { model: string; count: number } {
  const list = cpus();
  return { model: list[0]?.model.trim() ?? "unknown", count: list.length };
}

/** Whole disks (not partitions, loop or ram devices) with their size and model. */
export async function disks(): Promise<{ name: string; sizeBytes: number; model: string | null; rotational: boolean; removable: boolean }[]> {
  const names = (await list("/sys/block")).filter((n) => !/^(loop|ram|zram|dm-|nbd|sr)/.test(n));
  return Promise.all(names.map(async (name) => {
    const [size, model, rotational, removable] = await Promise.all(["size", "device/model", "queue/rotational", "removable"].map((f) => read(`/sys/block/${name}/${f}`)));
    return { name, sizeBytes: Number(size ?? 0) * 512, model, rotational: rotational === "1", removable: removable === "1" };
  }));
}

export async function nics(): Promise<{ name: string; mac: string | null; state: string | null; addresses: string[] }[]> {
  const addrs = networkInterfaces();
  const names = new Set<string>(Object.keys(addrs));
  for (const n of await list("/sys/class/net")) names.add(n);
  return Promise.all([...names].sort().map(async (name) => {
    const [mac, state] = await Promise.all([read(`/sys/class/net/${name}/address`), read(`/sys/class/net/${name}/operstate`)]);
    return { name, mac, state, addresses: (addrs[name] ?? []).map((a) => `${a.address}/${a.cidr?.split("/")[1] ?? ""}`) };
  }));
}

export function kernelInfo(): { release: string; version: string | null; cmdline: string | null } {
  const readSync = (path: string) => {
    try {
      return readFileSync(path, "utf8").trim();
    } catch {
      return null;
    }
  };
  return { release: release(), version: readSync("/proc/version"), cmdline: readSync("/proc/cmdline") };
}

type Changing = { hostname: string; memory: Awaited<ReturnType<typeof memoryInfo>>; disks: Awaited<ReturnType<typeof disks>>; nics: Awaited<ReturnType<typeof nics>> };
let fixed: { kernel: ReturnType<typeof kernelInfo>; cpu: ReturnType<typeof cpuInfo> } | null = null;
/** The current snapshot's answer, one frozen object shared by every call until the next snapshot (node.info asks per call). */
let changing: { at: number; facts: MachineFacts } | null = null;
/** One sysinfo(2) uptime reading and the monotonic clock at that moment, taken once: re-anchoring at
 * each snapshot could step the answer back a second, as each reading is rounded down. */
let uptimeAnchor: { uptime: number; monotonicAt: number } | null = null;
let refreshing: Promise<void> | null = null;
type MachineFacts = Readonly<{ kernel: ReturnType<typeof kernelInfo>; cpu: ReturnType<typeof cpuInfo> } & Changing>;

/**
 * The system's uptime in whole seconds, as sysinfo(2) gives it: one reading plus the monotonic time
 * since, so that node.info (asked per call) makes no system call for it and the answer never goes back.
 */
export function systemUptime(): number {
  uptimeAnchor ??= { uptime: uptime(), monotonicAt: performance.now() };
  return Math.floor(uptimeAnchor.uptime + (performance.now() - uptimeAnchor.monotonicAt) / 1000);
}

/**
 * Everything above in one snapshot. Kernel and CPU do not change while the node runs, so they are
 * read once. Memory, disks, NICs and the hostname (PID 1 sets it once at boot; a uname(2) per
 * node.info call was a system call for nothing) older than `maxAgeMs` are re-read in the background:
 * the answer is the previous snapshot until the new one is in (only the very first call waits for one).
 */
export async function machineFacts(maxAgeMs = 1000): Promise<MachineFacts> {
  const always = (fixed ??= { kernel: kernelInfo(), cpu: cpuInfo() });
  if (!changing || Date.now() - changing.at > maxAgeMs) {
    refreshing ??= Promise.all([memoryInfo(), disks(), nics()])
      .then(([memory, d, n]) => void (changing = { at: Date.now(), facts: Object.freeze({ ...always, hostname: hostname(), memory, disks: d, nics: n }) }))
      .catch((e) => log.error("reading memory, disks and NICs", e)) // the last snapshot stays
      .finally(() => (refreshing = null));
    if (!changing) await refreshing;
  }
  if (!changing) throw new Error("cannot read memory, disks and NICs (see init's log)");
  return changing.facts;
}
