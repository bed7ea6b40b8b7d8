// init's own log: one line per event to stderr (the console when PID 1) and, once enabled, to /dev/kmsg
// so the lines also land in the kernel ring buffer (dmesg) with a syslog priority.
import { openSync, readFileSync, writeFileSync, writeSync } from "node:fs";

export type Level = "debug" | "info" | "warn" | "error";
const priority: Record<Level, number> = { debug: 7, info: 6, warn: 4, error: 3 };

let kmsgFd: number | null = null;
let debugEnabled = false;
/** The kernel echoes /dev/kmsg records below this priority to the console itself. */
let consoleLoglevel = 0;

export function enableKmsg(): void {
  try {
    kmsgFd = openSync("/dev/kmsg", "w");
  } catch {
    kmsgFd = null; // no /dev/kmsg (host mode or no devtmpfs yet): console only
    return;
  }
  try {
    // the kernel rate-limits /dev/kmsg writers by default (10 lines per 5 s) and drops the rest;
    // init's lines must all arrive, as systemd arranges for itself
    writeFileSync("/proc/sys/kernel/printk_devkmsg", "on\n");
    consoleLoglevel = Number(readFileSync("/proc/sys/kernel/printk", "utf8").trim().split(/\s+/)[0]) || 0;
  } catch {
    consoleLoglevel = 0; // lines may be dropped from kmsg: always write the console ourselves
  }
}

export function setDebug(on: boolean): void {
  debugEnabled = on;
}

function describe(v: unknown): string {
  if (v instanceof Error) return v.stack ?? `${v.name}: ${v.message}`;
  if (typeof v === "string") return v;
  try {
    return JSON.stringify(v);
  } catch {
    return String(v);
  }
}

export function log(level: Level, subsystem: string, message: string, detail?: unknown): void {
  if (level === "debug" && !debugEnabled) return;
  const text = `${subsystem}: ${message}${detail === undefined ? "" : ` ${describe(detail)}`}`;
  const kernelEchoes = kmsgFd !== null && priority[level] < consoleLoglevel;
  if (!kernelEchoes) {
    try {
      process.stderr.write(`${new Date().toISOString()} ${level.padEnd(5)} ${text}\n`);
    } catch {
      // a closed console must never take init down
    }
  }
  if (kmsgFd !== null) {
    try {
      // /dev/kmsg takes one record per write; "<prio>" sets the level, the kernel adds the timestamp.
      writeSync(kmsgFd, `<${priority[level]}>zos-init: ${text.slice(0, 900)}\n`);
    } catch {
      // kmsg rate limiting or a full buffer: the console line above is enough
    }
  }
}

export const logger = (subsystem: string) => ({
  debug: (m: string, d?: unknown) => log("debug", subsystem, m, d),
  info: (m: string, d?: unknown) => log("info", subsystem, m, d),
  warn: (m: string, d?: unknown) => log("warn", subsystem, m, d),
  error: (m: string, d?: unknown) => log("error", subsystem, m, d),
});
export type Logger = ReturnType<typeof logger>;
