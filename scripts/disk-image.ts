// out/zos.img: a raw GPT disk that boots Zero-OS on UEFI and legacy BIOS machines. Flash it with
//   dd if=out/zos.img of=/dev/sdX bs=4M conv=fsync status=progress
// Layout: one EFI system partition (FAT32, label ZOS-BOOT) from 1 MiB, holding
//   /EFI/BOOT/BOOTX64.EFI   a unified kernel image: systemd's EFI stub with the kernel, the
//                           initramfs and the command line as PE sections (.linux, .initrd, .cmdline),
//                           so UEFI firmware boots it from removable media with no boot loader
//   /zos/vmlinuz, /zos/initramfs.cpio.zst, /syslinux/syslinux.cfg
//                           the same kernel for SYSLINUX on BIOS machines: gptmbr.bin in the MBR
//                           jumps to the partition flagged "legacy BIOS bootable"
//   bun scripts/disk-image.ts [--out FILE] [--admin KEY]...   (default admin: ZOS_ADMIN or the dev key)
import { mkdirSync, rmSync, statSync, writeFileSync, openSync, writeSync, closeSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { run } from "../initramfs/exec.ts";
import { IMAGE, kernelCmdline, requireImage, ROOT } from "./boot-config.ts";
import { imageAdminKeys } from "./dev-key.ts";

const EFI_STUB = "/usr/lib/systemd/boot/efi/linuxx64.efi.stub";
const GPT_MBR = "/usr/lib/syslinux/mbr/gptmbr.bin";
const MiB = 1024 * 1024;
// Fixed identifiers, so two builds from the same inputs differ only in FAT timestamps.
const DISK_GUID = "5a45524f-2d4f-5300-0000-000000000001";
const PART_GUID = "5a45524f-2d4f-5300-0000-000000000002";
const FAT_VOLUME_ID = "5a4f5301";

export interface DiskImageOptions {
  kernel: string;
  initramfs: string;
  cmdline: string;
  out: string;
}

/** The unified kernel image: section addresses as systemd 252's stub documents them. */
async function buildUki(o: DiskImageOptions, work: string): Promise<string> {
  const cmdline = join(work, "cmdline.txt"), osrel = join(work, "os-release"), uki = join(work, "BOOTX64.EFI");
  writeFileSync(cmdline, o.cmdline + "\0");
  writeFileSync(osrel, 'NAME="Zero-OS"\nID=zos\nPRETTY_NAME="Zero-OS"\n');
  await run(["objcopy",
    "--add-section", `.osrel=${osrel}`, "--change-section-vma", ".osrel=0x20000",
    "--add-section", `.cmdline=${cmdline}`, "--change-section-vma", ".cmdline=0x30000",
    "--add-section", `.linux=${o.kernel}`, "--change-section-vma", ".linux=0x2000000",
    "--add-section", `.initrd=${o.initramfs}`, "--change-section-vma", ".initrd=0x3000000",
    EFI_STUB, uki]);
  return uki;
}

export async function buildDiskImage(o: DiskImageOptions): Promise<void> {
  const work = join(ROOT, "build", "disk-image");
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const uki = await buildUki(o, work);
  const syslinuxCfg = join(work, "syslinux.cfg");
  writeFileSync(syslinuxCfg, `DEFAULT zos\nPROMPT 0\nTIMEOUT 0\nLABEL zos\n  KERNEL /zos/vmlinuz\n  INITRD /zos/initramfs.cpio.zst\n  APPEND ${o.cmdline}\n`);

  // FAT32 partition: the files plus room for FAT tables and a later, larger initramfs
  const payload = statSync(uki).size + statSync(o.kernel).size + statSync(o.initramfs).size;
  const espMiB = Math.ceil(payload / MiB) + 48;
  const esp = join(work, "esp.img");
  await run(["truncate", "-s", `${espMiB}M`, esp]);
  await run(["mkfs.vfat", "-F", "32", "-n", "ZOS-BOOT", "-i", FAT_VOLUME_ID, esp]);
  const m = (args: string[]) => run([args[0], "-i", esp, ...args.slice(1)], { env: { ...process.env, MTOOLS_SKIP_CHECK: "1" } });
  for (const d of ["::/EFI", "::/EFI/BOOT", "::/zos", "::/syslinux"]) await m(["mmd", d]);
  await m(["mcopy", uki, "::/EFI/BOOT/BOOTX64.EFI"]);
  await m(["mcopy", o.kernel, "::/zos/vmlinuz"]);
  await m(["mcopy", o.initramfs, "::/zos/initramfs.cpio.zst"]);
  await m(["mcopy", syslinuxCfg, "::/syslinux/syslinux.cfg"]);
  // SYSLINUX's installer writes its boot sector and ldlinux.sys/.c32 through mtools
  await run(["syslinux", "--install", "--directory", "/syslinux", esp]);

  // GPT: 1 MiB before the partition, 1 MiB after it for the backup table
  mkdirSync(dirname(o.out), { recursive: true });
  const tmp = `${o.out}.tmp`;
  rmSync(tmp, { force: true });
  await run(["truncate", "-s", `${espMiB + 2}M`, tmp]);
  await run(["sgdisk", "--disk-guid", DISK_GUID, "-n", `1:2048:+${espMiB}M`, "-t", "1:ef00", "-c", "1:ZOS-BOOT",
    "-u", `1:${PART_GUID}`, "-A", "1:set:2", tmp]);
  const fd = openSync(tmp, "r+");
  try {
    // gptmbr.bin is boot code only: the first 440 bytes, before the disk signature and partition table
    writeSync(fd, readFileSync(GPT_MBR).subarray(0, 440), 0, 440, 0);
    const data = readFileSync(esp);
    writeSync(fd, data, 0, data.length, MiB);
  } finally {
    closeSync(fd);
  }
  rmSync(o.out, { force: true });
  await run(["mv", tmp, o.out]);
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { out: { type: "string" }, admin: { type: "string", multiple: true } } });
  requireImage(IMAGE.kernel, IMAGE.initramfs);
  const admin = values.admin?.length ? values.admin : imageAdminKeys();
  const out = values.out ?? IMAGE.disk;
  await buildDiskImage({ kernel: IMAGE.kernel, initramfs: IMAGE.initramfs, cmdline: kernelCmdline({ admin }), out });
  console.log(`${out}: ${(statSync(out).size / 1e6).toFixed(1)} MB, UEFI (BOOTX64.EFI) and BIOS (SYSLINUX), admin ${admin.join(",")}`);
}
