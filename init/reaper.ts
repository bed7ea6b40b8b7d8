// Orphan reaping without stealing exit statuses from Bun.
//
// Bun waits for each child it spawned by pid (never waitpid(-1)), so orphans re-parented to us
// (as PID 1 or as a PR_SET_CHILD_SUBREAPER) stay zombies unless we reap them. We must not call
// waitpid(-1): that could collect a Bun.spawn child first and its `exited` promise would never see
// the status. Instead, on SIGCHLD and on a slow timer, we list our zombie children from /proc and
// waitpid() only pids that Bun.spawn did not return. Bun.spawn is wrapped once so every pid it
// returns is known until its `exited` settles; as a second guard, an unknown zombie is reaped only
// once it has stayed a zombie for `graceMs` (Bun collects its own children within milliseconds).
import { readdirSync, readFileSync } from "node:fs";
import { getpid, reapPid } from "./libc.ts";
import { logger } from "./log.ts";

const log = logger("reaper");
const owned = new Set<number>();
let spawnWrapped = false;

/** Wraps Bun.spawn so every child it creates is known to the reaper until Bun has collected it. */
export function trackBunSpawn(): void {
  if (spawnWrapped) return;
  spawnWrapped = true;
  const original = Bun.spawn;
  const wrapped = function (this: unknown, ...args: unknown[]) {
    const proc = (original as (...a: unknown[]) => ReturnType<typeof Bun.spawn>).apply(Bun, args);
    owned.add(proc.pid);
    proc.exited.finally(() => owned.delete(proc.pid));
    return proc;
  };
  (Bun as unknown as { spawn: unknown }).spawn = wrapped;
}

/** Our children that are zombies right now, read from /proc/<pid>/stat (fields after the comm). */
export function zombieChildren(parent = getpid()): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, "latin1");
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ..." — comm may contain spaces and parentheses, so split after the last ')'
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    if (rest[0] === "Z" && Number(rest[1]) === parent) out.push(Number(e));
  }
  return out;
}

export interface ReapedOrphan {
  pid: number;
  status: number;
}

export class Reaper {
  private firstSeen = new Map<number, number>();
  private timer: ReturnType<typeof setInterval> | null = null;
  private scheduled = false;
  private rescanPending = false;
  private readonly self = getpid();
  reaped = 0;
  private readonly onSigchld = () => this.schedule();

  constructor(private readonly opts: { graceMs?: number; intervalMs?: number; onReap?: (r: ReapedOrphan) => void } = {}) {}

  start(): void {
    trackBunSpawn();
    process.on("SIGCHLD", this.onSigchld);
    this.timer = setInterval(() => this.scan(), this.opts.intervalMs ?? 1000);
  }

  stop(): void {
    process.off("SIGCHLD", this.onSigchld);
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // let Bun collect its own children first
    setTimeout(() => {
      this.scheduled = false;
      this.scan();
    }, 50);
  }

  /** One pass: reaps unknown zombies that have waited out the grace period. Never throws. */
  scan(): void {
    try {
      const now = Date.now();
      const grace = this.opts.graceMs ?? 500;
      const zombies = new Set(zombieChildren(this.self));
      for (const pid of this.firstSeen.keys()) if (!zombies.has(pid)) this.firstSeen.delete(pid);
      let waitMore = false;
      for (const pid of zombies) {
        if (owned.has(pid)) continue;
        const seen = this.firstSeen.get(pid);
        if (seen === undefined) this.firstSeen.set(pid, now);
        if (seen === undefined || now - seen < grace) {
          waitMore = true;
          continue;
        }
        const r = reapPid(pid);
        this.firstSeen.delete(pid);
        if (r) {
          this.reaped++;
          log.debug(`reaped orphan ${r.pid} (status ${r.status})`);
          this.opts.onReap?.(r);
        }
      }
      if (waitMore && !this.rescanPending) {
        this.rescanPending = true;
        setTimeout(() => {
          this.rescanPending = false;
          this.scan();
        }, grace + 10);
      }
    } catch (e) {
      log.error("scan failed", e);
    }
  }
}
