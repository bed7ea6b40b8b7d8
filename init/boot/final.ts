// The last steps of a PID 1 shutdown, after the supervisor stopped every service: end whatever is
// left, unmount (FUSE first, deepest first), sync, reboot(2). Inside a PID namespace reboot(2) ends
// the namespace instead of the machine (its init dies from SIGHUP for restart, SIGINT for power-off).
import { readdirSync, readFileSync } from "node:fs";
import { MNT_DETACH, reboot, RB_AUTOBOOT, RB_POWER_OFF, sync, umount } from "../libc.ts";
import { logger } from "../log.ts";
import type { ShutdownKind } from "../node.ts";

const log = logger("shutdown");

function otherProcesses(): number[] {
  return readdirSync("/proc").filter((e) => /^\d+$/.test(e)).map(Number).filter((pid) => {
    if (pid === 1) return false;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // kernel threads have no memory map (flags PF_KTHREAD; mm-less => vsize 0); zombies are harmless
      return rest[0] !== "Z" && rest[20] !== "0";
    } catch {
      return false;
    }
  });
}

async function killEverything(): Promise<void> {
  try {
    process.kill(-1, "SIGTERM");
  } catch {
    return; // nothing left
  }
  for (let i = 0; i < 30 && otherProcesses().length > 0; i++) await Bun.sleep(100);
  const left = otherProcesses();
  if (left.length) {
    log.warn(`SIGKILL to ${left.length} process(es) that ignored SIGTERM`);
    try {
      process.kill(-1, "SIGKILL");
    } catch {
      // gone meanwhile
    }
  }
}

interface MountEntry {
  target: string;
  fstype: string;
}

function mounts(): MountEntry[] {
  return readFileSync("/proc/self/mountinfo", "utf8").split("\n").filter(Boolean).map((l) => {
    const f = l.split(" ");
    const sep = f.indexOf("-");
    return { target: f[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8))), fstype: f[sep + 1] };
  });
}

const keep = new Set(["/", "/proc", "/sys", "/dev"]);

export function unmountAll(): void {
  const all = mounts().filter((m) => !keep.has(m.target));
  // FUSE first (its daemons are gone now), then the rest, most recently mounted first
  const ordered = [...all.filter((m) => m.fstype.startsWith("fuse")), ...all.filter((m) => !m.fstype.startsWith("fuse")).reverse()];
  for (const m of ordered) {
    try {
      umount(m.target);
    } catch {
      try {
        umount(m.target, MNT_DETACH);
      } catch (e) {
        log.warn(`cannot unmount ${m.target}`, (e as Error).message);
      }
    }
  }
}

export async function finishPid1Shutdown(kind: ShutdownKind): Promise<void> {
  await killEverything();
  try {
    unmountAll();
  } catch (e) {
    log.error("unmounting", e);
  }
  sync();
  log.info(kind === "reboot" ? "rebooting" : "powering off");
  try {
    reboot(kind === "reboot" ? RB_AUTOBOOT : RB_POWER_OFF);
  } catch (e) {
    // PID 1 must not exit: stay up (idle) and keep saying why
    log.error(`reboot(2) failed; the node stays up with services stopped`, e);
  }
}
