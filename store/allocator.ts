// Allocator tuning for the processes that stream bulk data (the 0-db server, the vdisk server).
//
// Bun allocates array buffers through mimalloc, which by default hands a freed page back to the
// kernel 10 ms after it was freed. A data server allocates at the rate it streams: every chunk a
// socket receives is a fresh buffer, and every encoded block and shard another. Garbage collection
// frees them in bursts more than 10 ms apart, so the same memory was returned to the kernel and
// faulted back in (zeroed) over and over: a 2 GiB write into a vdisk took ~415k page faults in
// the vdisk server alone, a third of its system time. Keeping freed pages for 5 s cut that to
// ~180k (-1, never returning them, was no better for it) while memory a burst leaves behind still
// goes back to the system a few seconds later.
//
// mimalloc reads its options from the environment once, as the process starts, so a server that
// finds the option unset sets it and executes itself again in place: execve(2) keeps the pid, the
// open descriptors (stdio included) and the arguments, and nothing has been served yet. A value
// already in the environment is the operator's choice and is left alone.
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";

export const PURGE_DELAY_VARIABLE = "MIMALLOC_PURGE_DELAY";
export const SERVER_PURGE_DELAY_MS = 5000;

/**
 * Bun's sampling profiler and inspector interrupt threads with SIGPWR; one that lands while the new
 * image has not yet installed Bun's handler kills it (seen with --cpu-prof: 5 of 30 starts).
 */
const SIGNALLING_FLAGS = /^--(cpu-prof|inspect)/;

/** Re-executes this process with the data-server allocator settings, unless they are already set. */
export function execWithServerAllocator(): void {
  if (process.env[PURGE_DELAY_VARIABLE] !== undefined) return;
  if (process.execArgv.some((f) => SIGNALLING_FLAGS.test(f))) {
    process.stderr.write(`warning: not re-executing with ${PURGE_DELAY_VARIABLE}=${SERVER_PURGE_DELAY_MS} under a profiler or inspector; set it in the environment\n`);
    return;
  }
  const env = { ...process.env, [PURGE_DELAY_VARIABLE]: String(SERVER_PURGE_DELAY_MS) };
  // Flags that came from BUN_OPTIONS show in execArgv too; the new image reads them from there again.
  const fromEnv = new Set((process.env.BUN_OPTIONS ?? "").split(/\s+/).filter(Boolean));
  const argv = [process.argv0, ...process.execArgv.filter((f) => !fromEnv.has(f)), ...process.argv.slice(1)];
  let error: string;
  try {
    error = execve(process.execPath, argv, Object.entries(env).map(([k, v]) => `${k}=${v}`));
  } catch (err) {
    error = (err as Error).message; // no libc.so.6 to call it through
  }
  // Only reached when execve failed: serving with the default allocator settings is slower, not wrong.
  process.stderr.write(`warning: could not re-execute with ${PURGE_DELAY_VARIABLE}=${SERVER_PURGE_DELAY_MS} (${error}); serving with mimalloc's defaults\n`);
}

/** execve(2); returns only on failure, with strerror(errno). */
function execve(path: string, argv: string[], envp: string[]): string {
  const libc = dlopen("libc.so.6", {
    execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  });
  // The strings must stay reachable until the call: the pointer arrays only hold their addresses.
  const strings = [path, ...argv, ...envp].map((s) => Buffer.from(`${s}\0`));
  const table = (list: Buffer[]) => {
    const t = new BigUint64Array(list.length + 1); // NULL-terminated
    list.forEach((b, i) => (t[i] = BigInt(ptr(b))));
    return t;
  };
  const argvTable = table(strings.slice(1, 1 + argv.length));
  const envTable = table(strings.slice(1 + argv.length));
  libc.symbols.execve(ptr(strings[0]), ptr(argvTable), ptr(envTable));
  return String(libc.symbols.strerror(read.i32(libc.symbols.__errno_location() as Pointer, 0)));
}
