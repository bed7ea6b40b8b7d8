// Facts about the machine for node.info, read from /proc and /sys (no tools needed in the initramfs).
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { cpus, networkInterfaces, release, totalmem, freemem, uptime as systemUptime } from "node:os";

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return null;
  }
}

export function memoryInfo(): { totalBytes: number; availableBytes: number } {
  const meminfo = read("/proc/meminfo") ?? "";
  const avail = /MemAvailable:\s+(\d+) kB/.exec(meminfo);
  return { totalBytes: totalmem(), availableBytes: avail ? Number(avail[1]) * 1024 : freemem() };
}

export function cpuInfo(): { model: string; count: number } {
  const list = cpus();
  return { model: list[0]?.model.trim() ?? "unknown", count: list.length };
}

/** Whole disks (not partitions, loop or ram devices) with their size and model. */
export function disks(): { name: string; sizeBytes: number; model: string | null; rotational: boolean; removable: boolean }[] {
  if (!existsSync("/sys/block")) return [];
  return readdirSync("/sys/block")
    .filter((n) => !/^(loop|ram|zram|dm-|nbd|sr)/.test(n))
    .map((name) => ({
      name,
      sizeBytes: Number(read(`/sys/block/${name}/size`) ?? 0) * 512,
      model: read(`/sys/block/${name}/device/model`),
      rotational: read(`/sys/block/${name}/queue/rotational`) === "1",
      removable: read(`/sys/block/${name}/removable`) === "1",
    }));
}

export function nics(): { name: string; mac: string | null; state: string | null; addresses: string[] }[] {
  const addrs = networkInterfaces();
  const names = new Set<string>(Object.keys(addrs));
  if (existsSync("/sys/class/net")) for (const n of readdirSync("/sys/class/net")) names.add(n);
  return [...names].sort().map((name) => ({
    name,
    mac: read(`/sys/class/net/${name}/address`),
    state: read(`/sys/class/net/${name}/operstate`),
    addresses: (addrs[name] ?? []).map((a) => `${a.address}/${a.cidr?.split("/")[1] ?? ""}`),
  }));
}

export function kernelInfo(): { release: string; version: string | null; cmdline: string | null } {
  return { release: release(), version: read("/proc/version"), cmdline: read("/proc/cmdline") };
}

export { systemUptime };

/** Everything above in one snapshot. Kernel and CPU do not change while the node runs, so they are
 * read once; memory, disks and NICs are re-read at most every `maxAgeMs`: reading /proc and /sys
 * costs about a millisecond, which would otherwise cap node.info near 1,000 calls/s. */
export function machineFacts(maxAgeMs = 1000) {
  const now = Date.now();
  fixed ??= { kernel: kernelInfo(), cpu: cpuInfo() };
  if (!changing || now - changing.at > maxAgeMs) changing = { at: now, facts: { memory: memoryInfo(), disks: disks(), nics: nics() } };
  return { ...fixed, ...changing.facts };
}
let fixed: { kernel: ReturnType<typeof kernelInfo>; cpu: ReturnType<typeof cpuInfo> } | null = null;
let changing: { at: number; facts: { memory: ReturnType<typeof memoryInfo>; disks: ReturnType<typeof disks>; nics: ReturnType<typeof nics> } } | null = null;
