// What a vdisk holds before it is mounted, so mkfs runs only on a device that is blank.
// ext2/3/4 superblock (Documentation/filesystems/ext4/super.rst): it starts 1024 bytes into the
// device; s_magic is the little-endian u16 0xEF53 at offset 0x38 within it. ext4 proper sets
// INCOMPAT_EXTENTS (0x40) in s_feature_incompat (u32 at 0x60); we mount any ext revision as ext4.
// "blank" means the first PROBE_BYTES are all zero: no partition table, no filesystem we know of
// and none we do not (xfs, btrfs, swap... all keep their signature within the first 64 KiB).
import { open } from "node:fs/promises";

export const PROBE_BYTES = 64 * 1024;
const EXT_SUPERBLOCK = 1024;
const EXT_MAGIC_OFFSET = 0x38;
const EXT_MAGIC = 0xef53;

export type DeviceContent = "ext" | "blank" | "other";

export function classify(head: Uint8Array): DeviceContent {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  if (head.byteLength >= EXT_SUPERBLOCK + EXT_MAGIC_OFFSET + 2 && view.getUint16(EXT_SUPERBLOCK + EXT_MAGIC_OFFSET, true) === EXT_MAGIC) return "ext";
  return head.every((b) => b === 0) ? "blank" : "other";
}

/** Reads the head of a block device (or image file) without blocking the event loop. */
export async function probeDevice(path: string): Promise<DeviceContent> {
  const fh = await open(path, "r");
  try {
    const head = new Uint8Array(PROBE_BYTES);
    const { bytesRead } = await fh.read(head, 0, PROBE_BYTES, 0);
    return classify(head.subarray(0, bytesRead));
  } finally {
    await fh.close();
  }
}
