// What every boot path (make run, iPXE, the disk image, tests) gives the node: the kernel command
// line and the paths of the built image. zos.* options are read by init (init/boot/cmdline.ts).
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

export const ROOT = resolve(import.meta.dir, "..");
export const OUT = join(ROOT, "out");
export const IMAGE = {
  kernel: join(OUT, "vmlinuz"),
  initramfs: join(OUT, "initramfs.cpio.zst"),
  ipxeScript: join(OUT, "boot.ipxe"),
  disk: join(OUT, "zos.img"),
};

export interface BootOptions {
  /** Public keys (base58 or hex) trusted as admin: zos.admin=. */
  admin?: string[];
  /** Block store URLs: zos.store=. */
  store?: string[];
  debug?: boolean;
  /** Extra words appended as they are. */
  extra?: string[];
}

/** The serial console is ttyS0 (QEMU's -serial and most servers' IPMI SOL); panic=-1 reboots at once. */
export function kernelCmdline(o: BootOptions = {}): string {
  const words = ["console=ttyS0,115200", "panic=-1"];
  if (o.admin?.length) words.push(`zos.admin=${o.admin.join(",")}`);
  if (o.store?.length) words.push(`zos.store=${o.store.join(",")}`);
  if (o.debug) words.push("zos.debug");
  for (const w of o.extra ?? []) {
    if (/\s/.test(w)) throw new Error(`kernel command line word has whitespace: '${w}'`);
    words.push(w);
  }
  return words.join(" ");
}

export function requireImage(...paths: string[]): void {
  const missing = paths.filter((p) => !existsSync(p));
  if (missing.length) throw new Error(`missing ${missing.join(", ")}: run \`make image\` first`);
}
