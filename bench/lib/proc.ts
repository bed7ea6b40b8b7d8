// CPU time of a process from /proc: on a shared machine ops/s swing with the load, the CPU a
// server spends per operation much less, so the store benchmarks report both.
import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of /proc's times. */
const USER_HZ = 100;

export interface ThreadCpu {
  name: string;
  /** user + system */
  cpuSeconds: number;
}

/** The name and CPU time in a /proc stat file (a process's, or one thread's). */
function readStat(path: string): ThreadCpu {
  const stat = readFileSync(path, "latin1");
  const close = stat.lastIndexOf(")"); // the name may itself hold ") "
  const fields = stat.slice(close + 2).split(" ");
  return { name: stat.slice(stat.indexOf("(") + 1, close), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / USER_HZ };
}

/** CPU seconds used so far by a process (user + system, all its threads). */
export function cpuSeconds(pid: number): number {
  return readStat(`/proc/${pid}/stat`).cpuSeconds;
}

/** CPU used so far by each thread of a process, by thread id. */
export function threadCpuSeconds(pid: number): Map<string, ThreadCpu> {
  return new Map(readdirSync(`/proc/${pid}/task`).map((tid) => [tid, readStat(`/proc/${pid}/task/${tid}/stat`)]));
}
