// The libc calls the store needs that Bun has no API for, through bun:ffi on glibc's libc.so.6,
// opened at first use. Each serves speed only (re-executing with allocator settings, page-cache
// advice, preallocating file space), so where libc.so.6 cannot be opened `libc()` is null and the
// callers go on without.
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";

const symbols = {
  execve: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr], returns: FFIType.i32 },
  posix_fadvise: { args: [FFIType.i32, FFIType.i64, FFIType.i64, FFIType.i32], returns: FFIType.i32 },
  fallocate: { args: [FFIType.i32, FFIType.i32, FFIType.i64, FFIType.i64], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
} as const;

type Libc = ReturnType<typeof dlopen<typeof symbols>>["symbols"];
let loaded: Libc | null | undefined;

export function libc(): Libc | null {
  if (loaded === undefined) {
    try {
      loaded = dlopen("libc.so.6", symbols).symbols;
    } catch {
      loaded = null;
    }
  }
  return loaded;
}

/** strerror(errno) of the last failed call on this thread. */
export function lastError(c: Libc): string {
  return String(c.strerror(read.i32(c.__errno_location() as Pointer, 0)));
}
