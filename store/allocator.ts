// Allocator tuning for the processes that stream bulk data (the 0-db server, the vdisk server).
//
// Bun allocates array buffers through mimalloc, which by default hands a freed page back to the
// kernel 10 ms after it was freed. A data server allocates at the rate it streams: every chunk a
// socket receives is a fresh buffer, and every encoded block and shard another. Garbage collection
// frees them in bursts more than 10 ms apart, so the same memory was returned to the kernel and
// faulted back in (zeroed) over and over: a 2 GiB write into a vdisk took ~415k page faults in
// the vdisk server alone, a third of its system time. Keeping freed pages for 5 s cut that to
// ~180k (-1, never returning them, was no better for it). Memory a burst leaves behind still goes
// back when the collector frees it: 400 MiB of 64 KiB buffers, dropped, left RSS at the same GC
// with 5000 as with the default (and at once after Bun.gc(true)).
//
// The 0-db server keeps its freed pages for good (-1). With a delay, 5 s or 30 s alike, each of six
// zdb processes under a sustained write still took 20-40k page faults per GiB of vdisk data, and
// with -1 2-5k, for 10% less CPU (2026-11-26, alternating runs); its resident memory stays at its
// busiest (~110 MiB after 3 GiB, against ~80 MiB with 5 s). Page faults cost more on a virtual
// machine whose host reclaims the guest's free memory (see store/zdb/drop-behind.ts).
//
// mimalloc reads its options from the environment once, as the process starts, so a server that
// finds the option unset sets it and executes itself again in place: execve(2) keeps the pid and
// the open descriptors (stdio included), and nothing has been served yet. The arguments and the
// environment are passed on as the kernel holds them (/proc/self/cmdline and environ, byte for
// byte: no decoding of non-UTF-8 paths, and Bun flags given through BUN_OPTIONS stay there). A value
// already in the environment is the operator's choice and is left alone.
import { readFileSync } from "node:fs";
import { ptr } from "bun:ffi";
import { lastError, libc } from "./libc.ts";

export const PURGE_DELAY_VARIABLE = "MIMALLOC_PURGE_DELAY";
/** What each data server sets, in milliseconds (-1: never). */
export const SERVER_PURGE_DELAY = { zdb: -1, vdisk: 5000 } as const;
export type DataServer = keyof typeof SERVER_PURGE_DELAY;

/**
 * Bun's sampling profiler and inspector interrupt threads with SIGPWR; one that lands while the new
 * image has not yet installed Bun's handler kills it (seen with --cpu-prof: 5 of 30 starts).
 */
const SIGNALLING_FLAGS = /^--(cpu-prof|inspect)/;
const SIGNALLING_VARIABLES = /^BUN_INSPECT/;

/** Re-executes this process with the allocator settings of `server`, unless they are already set. */
export function execWithServerAllocator(server: DataServer): void {
  if (process.env[PURGE_DELAY_VARIABLE] !== undefined) return;
  const setting = `${PURGE_DELAY_VARIABLE}=${SERVER_PURGE_DELAY[server]}`;
  if (process.execArgv.some((f) => SIGNALLING_FLAGS.test(f)) || Object.keys(process.env).some((v) => SIGNALLING_VARIABLES.test(v))) {
    process.stderr.write(`warning: not re-executing with ${setting} under a profiler or inspector; set it in the environment\n`);
    return;
  }
  let error: string;
  try {
    const argv = nulSeparated(readFileSync("/proc/self/cmdline"));
    const envp = [...nulSeparated(readFileSync("/proc/self/environ")), Buffer.from(setting)];
    error = execve(Buffer.from(process.execPath), argv, envp);
  } catch (err) {
    error = (err as Error).message; // no /proc
  }
  // Only reached when execve failed: serving with the default allocator settings is slower, not wrong.
  process.stderr.write(`warning: could not re-execute with ${setting} (${error}); serving with mimalloc's defaults\n`);
}

/** The entries of a NUL-separated /proc list, as raw bytes. */
function nulSeparated(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const end = bytes.indexOf(0, at);
    const stop = end < 0 ? bytes.length : end;
    out.push(bytes.subarray(at, stop));
    at = stop + 1;
  }
  return out;
}

/** execve(2); returns only on failure, with strerror(errno). */
function execve(path: Buffer, argv: Buffer[], envp: Buffer[]): string {
  const c = libc();
  if (c === null) return "libc.so.6 could not be opened";
  // The strings must stay reachable until the call: the pointer arrays only hold their addresses.
  const strings = [path, ...argv, ...envp].map((s) => Buffer.concat([s, Buffer.alloc(1)]));
  const table = (list: Buffer[]) => {
    const t = new BigUint64Array(list.length + 1); // NULL-terminated
    list.forEach((b, i) => (t[i] = BigInt(ptr(b))));
    return t;
  };
  const argvTable = table(strings.slice(1, 1 + argv.length));
  const envTable = table(strings.slice(1 + argv.length));
  c.execve(ptr(strings[0]), ptr(argvTable), ptr(envTable));
  return lastError(c);
}
