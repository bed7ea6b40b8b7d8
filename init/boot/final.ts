// The last steps of a PID 1 shutdown, after the supervisor stopped every service: end whatever is
// left, unmount (FUSE flists and all, newest first), sync, reboot(2). Inside a PID namespace reboot(2) ends
// the namespace instead of the machine (its init dies from SIGHUP for restart, SIGINT for power-off).
import { readdirSync, readFileSync } from "node:fs";
import { MNT_DETACH, reboot, RB_AUTOBOOT, RB_POWER_OFF, sync, umount } from "../libc.ts";
import { logger } from "../log.ts";
import type { ShutdownKind } from "../node.ts";
import { mountTable, type MountEntry } from "./mounts.ts";

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

const keep = new Set(["/", "/proc", "/sys", "/dev"]);

/** Most recently mounted first: whatever was stacked on a mount (a container's overlay on its FUSE
 * flist, a mount inside a tmpfs) came after it and so goes before it. FUSE mounts whose daemons are
 * gone unmount fine; anything still busy is detached. */
export function unmountOrder(table: MountEntry[]): MountEntry[] {
  return table.filter((m) => !keep.has(m.target)).reverse();
}

export function unmountAll(): void {
  for (const m of unmountOrder(mountTable())) {
    try {
      umount(m.target);
      log.info(`unmounted ${m.target} (${m.fstype})`);
    } catch {
      try {
        umount(m.target, MNT_DETACH);
        log.info(`detached ${m.target} (${m.fstype}), still busy`);
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
