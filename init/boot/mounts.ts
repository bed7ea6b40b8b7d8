// The pseudo filesystems a Linux userland expects, mounted by PID 1 before anything else.
import { existsSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { sep } from "node:path";
import { mount, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RELATIME } from "../libc.ts";
import { logger } from "../log.ts";
import type { Health } from "../health.ts";

const log = logger("mounts");

const early: [source: string, target: string, fstype: string, flags: number, data: string][] = [
  ["proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""],
  ["sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, ""],
  ["devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755"],
  ["devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666"],
  ["tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"],
  ["tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755"],
  ["tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777"],
  ["cgroup2", "/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME, "nsdelegate"],
];

export interface MountEntry {
  target: string;
  fstype: string;
}

/** /proc/self/mountinfo lines: field 5 is the mount point (octal escapes for spaces and the like);
 * after the lone "-" separator come the filesystem type and source. */
export function parseMountinfo(text: string): MountEntry[] {
  return text.split("\n").filter(Boolean).map((l) => {
    const f = l.split(" ");
    return { target: f[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))), fstype: f[f.indexOf("-") + 1] };
  });
}

export function mountTable(): MountEntry[] {
  try {
    return parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
  } catch {
    return [];
  }
}

export function mountPoints(): string[] {
  return mountTable().map((m) => m.target);
}

/** Where init's own code lives: a mount over it would hide the modules init still loads lazily.
 * In an image that is /usr/lib/zos; in a PID-namespace test it is wherever the checkout is, /tmp included. */
const ownCode = import.meta.dir;

function hidesOwnCode(target: string): boolean {
  return ownCode === target || ownCode.startsWith(target + sep);
}

export function mountEarly(health: Health): void {
  // proc may not be mounted yet: then nothing is, and /proc/self does not exist
  const mounted = new Set(existsSync("/proc/self") ? mountPoints() : []);
  for (const [source, target, fstype, flags, data] of early) {
    try {
      if (hidesOwnCode(target)) {
        log.warn(`not mounting ${fstype} on ${target}: init's own code is in ${ownCode}`);
        continue;
      }
      if (mounted.has(target)) {
        log.debug(`${target} already mounted`);
        continue;
      }
      mkdirSync(target, { recursive: true });
      mount(source, target, fstype, flags, data);
      log.info(`mounted ${fstype} on ${target}`);
    } catch (e) {
      log.error(`mounting ${fstype} on ${target}`, e);
      health.fail(`mount ${target}`, e);
    }
  }
  // devtmpfs has no /dev/fd and friends; programs (bash process substitution, some tools) expect them
  for (const [link, to] of [["/dev/fd", "/proc/self/fd"], ["/dev/stdin", "/proc/self/fd/0"], ["/dev/stdout", "/proc/self/fd/1"], ["/dev/stderr", "/proc/self/fd/2"]]) {
    try {
      if (!existsSync(link)) symlinkSync(to, link);
    } catch {
      // a read-only /dev in odd setups: not fatal
    }
  }
}
