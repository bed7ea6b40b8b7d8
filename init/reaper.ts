// Orphan reaping without stealing exit statuses from Bun.
//
// Bun waits for each child it spawned by pid (never waitpid(-1)), so orphans re-parented to us
// (as PID 1 or as a PR_SET_CHILD_SUBREAPER) stay zombies unless we reap them. We must not call
// waitpid(-1): that could collect a Bun.spawn child first and its `exited` promise would never see
// the status. Instead, on SIGCHLD and on a slow timer, we list our zombie children from /proc and
// waitpid() only pids that Bun.spawn did not return. Bun.spawn is wrapped once so every pid it
// returns is known until its `exited` settles; as a second guard, an unknown zombie is reaped only
// once it has stayed a zombie for `graceMs` (Bun collects its own children within milliseconds).
import { existsSync, readdirSync, readFileSync } from "node:fs";
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

/**
 * Candidate pids for our children. The kernel lists each thread's children in
 * /proc/<pid>/task/<tid>/children (CONFIG_PROC_CHILDREN; an orphan goes to any live thread of its
 * reaper), which costs a few reads whatever else runs on the machine. Without that file every pid in
 * /proc is a candidate: a scan then reads one stat file per process on the machine, ~15 ms with 100
 * processes on a busy host, which stalled the event loop (RPC answers, FUSE) every second.
 */
function candidatePids(parent: number, listAllPids: boolean): string[] {
  if (listAllPids || !hasChildrenFiles(parent)) return readdirSync("/proc");
  const out: string[] = [];
  for (const tid of readdirSync(`/proc/${parent}/task`)) {
    try {
      for (const pid of readFileSync(`/proc/${parent}/task/${tid}/children`, "latin1").split(" ")) if (pid) out.push(pid);
    } catch {
      // the thread ended meanwhile; its children went to another one, which the next scan lists
    }
  }
  return out;
}
let childrenFiles: boolean | null = null;
function hasChildrenFiles(parent: number): boolean {
  childrenFiles ??= existsSync(`/proc/${parent}/task/${parent}/children`);
  return childrenFiles;
}

/** Our children that are zombies right now, read from /proc/<pid>/stat (fields after the comm).
 * `listAllPids` checks every process, as on a kernel without the children files. */
export function zombieChildren(parent = getpid(), listAllPids = false): number[] {
  const out: number[] = [];
  let entries: string[];
  try {
    entries = candidatePids(parent, listAllPids);
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
    const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ", 2);
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

  /** `listAllPids`: find zombies as on a kernel without /proc/<pid>/task/<tid>/children (tests cover that path with it). */
  constructor(private readonly opts: { graceMs?: number; intervalMs?: number; listAllPids?: boolean; onReap?: (r: ReapedOrphan) => void } = {}) {}

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
      const zombies = new Set(zombieChildren(this.self, this.opts.listAllPids));
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
