// CPU time of a process from /proc: on a shared machine ops/s swing with the load, the CPU a
// server spends per operation much less, so the store benchmarks report both.
import { readFileSync } from "node:fs";

/** CPU seconds used so far by a process (user + system, from /proc/<pid>/stat; clock ticks are 1/100 s). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1].split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
