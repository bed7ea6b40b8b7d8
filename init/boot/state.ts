// Where the node keeps what must survive a reboot (its identity key): an ext4 state disk, named by
// zos.state=<device> or found by its filesystem label "zos-state", mounted on /var/lib/zos. Without
// one, state lives in tmpfs and the node gets a new identity every boot — said loudly on the console.
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readSync } from "node:fs";
import { mount, MS_NOSUID, MS_NODEV } from "../libc.ts";
import { logger } from "../log.ts";
import type { Health } from "../health.ts";

const log = logger("state");
export const stateMountPoint = "/var/lib/zos";
export const stateLabel = "zos-state";

/** ext2/3/4 superblock at byte 1024: s_magic (u16 LE 0xEF53) at +0x38, s_volume_name[16] at +0x78. */
export function ext4Label(device: string): string | null {
  let fd = -1;
  try {
    fd = openSync(device, "r");
    const sb = Buffer.alloc(0x88);
    if (readSync(fd, sb, 0, sb.length, 1024) < sb.length || sb.readUInt16LE(0x38) !== 0xef53) return null;
    return sb.subarray(0x78, 0x88).toString("latin1").replace(/\0.*$/s, "");
  } catch {
    return null;
  } finally {
    if (fd >= 0) closeSync(fd);
  }
}

/** Block devices and partitions, e.g. /dev/vda, /dev/vda1. */
function blockDevices(): string[] {
  try {
    return readdirSync("/sys/class/block").filter((n) => !/^(loop|ram|zram|nbd|sr)/.test(n)).map((n) => `/dev/${n}`);
  } catch {
    return [];
  }
}

/** Mounts the state disk and returns the state dir; falls back to tmpfs under /run. */
export function prepareStateDir(requested: string | null, health: Health): { dir: string; persistent: boolean } {
  const device = requested ?? blockDevices().find((d) => ext4Label(d) === stateLabel) ?? null;
  if (device) {
    try {
      mkdirSync(stateMountPoint, { recursive: true });
      mount(device, stateMountPoint, "ext4", MS_NOSUID | MS_NODEV);
      log.info(`state disk ${device} mounted on ${stateMountPoint}`);
      health.ok("state", `${device} on ${stateMountPoint}`);
      return { dir: stateMountPoint, persistent: true };
    } catch (e) {
      log.error(`cannot mount state disk ${device}`, e);
      health.fail("state", e);
    }
  }
  const dir = "/run/zos/state";
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  for (const line of [
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    `!!! NO STATE DISK: node identity is kept in tmpfs (${dir}) and is LOST on reboot.`,
    `!!! Attach an ext4 disk labelled '${stateLabel}' or pass zos.state=<device>.`,
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
  ]) log.warn(line);
  if (!existsSync(stateMountPoint) || !device) health.fail("state", `no state disk; identity in tmpfs ${dir}`);
  return { dir, persistent: false };
}
