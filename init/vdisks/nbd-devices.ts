// The kernel NBD client's devices: /dev/nbdN, with sysfs telling which are connected
// (/sys/block/nbdN/pid exists while a connection is set up, also under netlink). The nbd module is
// loaded at boot with the others the image ships; loadNbdModule covers a node where it was not.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { join } from "node:path";
import { ShippedModules } from "../boot/modules.ts";
import { VdiskError } from "./errors.ts";

export interface NbdSys {
  /** sysfs block directory (tests point it elsewhere). */
  sysBlock: string;
  modulesDir: string;
}

export const defaultNbdSys: NbdSys = { sysBlock: "/sys/block", modulesDir: join("/lib/modules", release()) };

/** The nbd devices, by index. */
export function nbdDevices(sys: NbdSys): number[] {
  if (!existsSync(sys.sysBlock)) return [];
  return readdirSync(sys.sysBlock).map((e) => /^nbd(\d+)$/.exec(e)).filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b);
}

/** The connected export's size: /sys/block/nbdN/size counts 512-byte sectors whatever the block size. */
export function deviceBytes(sys: NbdSys, index: number): number {
  return Number(readFileSync(join(sys.sysBlock, `nbd${index}`, "size"), "utf8").trim()) * 512;
}

export function isConnected(sys: NbdSys, index: number): boolean {
  return existsSync(join(sys.sysBlock, `nbd${index}`, "pid"));
}

/**
 * Requests the device has completed so far, from /sys/block/nbdN/stat (Documentation/block/stat.rst,
 * 0-based fields: 0 read I/Os, 4 write I/Os, 11 discard I/Os, 15 flush I/Os; the last two exist
 * since Linux 4.18 and 5.5). 0 once the device is gone.
 */
export function ioProgress(sys: NbdSys, index: number): number {
  try {
    const f = readFileSync(join(sys.sysBlock, `nbd${index}`, "stat"), "utf8").trim().split(/\s+/).map(Number);
    return f[0] + f[4] + (f[11] ?? 0) + (f[15] ?? 0);
  } catch {
    return 0;
  }
}

/** The lowest unconnected device that nobody else in this process has claimed. */
export function pickFreeDevice(sys: NbdSys, claimed: Set<number>): number | null {
  return nbdDevices(sys).find((i) => !claimed.has(i) && !isConnected(sys, i)) ?? null;
}

/** Loads nbd (and what it depends on) from the image's modules unless the kernel has it already. */
export function loadNbdModule(sys: NbdSys): void {
  if (nbdDevices(sys).length > 0) return;
  const depFile = join(sys.modulesDir, "modules.dep");
  const unsupported = (why: string) => new VdiskError("unsupported", `this node has no kernel NBD client: ${why}`, { step: "nbd module" });
  if (!existsSync(depFile)) throw unsupported(`no /dev/nbd* and no ${depFile}`);
  const modules = new ShippedModules(sys.modulesDir);
  if (!modules.has("nbd")) throw unsupported(`no nbd module in ${depFile}`);
  // dependencies first, each once, "already loaded" and modules present in the kernel tolerated
  const { failed } = modules.load(["nbd"]);
  if (failed.length > 0) throw new VdiskError("system", `cannot load ${failed.join(", ")} (the log says why)`, { step: "nbd module" });
  if (nbdDevices(sys).length === 0) throw unsupported("the nbd module loaded but made no /dev/nbd* devices");
}
