// Drop-behind: the pages of a data file leave the page cache once an fsync has put them on disk.
//
// What a 0-db backend writes is read rarely and late (a shard is read when its block is, and then
// mostly by another node, through that node's caches). Kept in the page cache after the write it
// only pushes out pages that are read again (flists, container files), and every page of new data
// is memory the kernel has to find afresh. On a virtual machine whose host takes back the guest's
// free memory (free page reporting: this project's build VM, and any node booted under QEMU with
// a balloon), the first touch of such a page costs a fault in the host: writing 1.5 GiB into the
// page cache took 0.9-1.0 s of system time in pages used before and 2.5-4.5 s in fresh ones, and
// a sustained write into six zdb processes doubled their CPU per GiB once their page cache grew
// into fresh memory. Dropped right after the fsync, the same pages are reused, hot.
//
// Only durable ranges are dropped (the kernel would skip dirty pages anyway), so with fsync
// "never" nothing is. The advice is a hint: where posix_fadvise cannot be called, nothing happens.
import { dlopen, FFIType } from "bun:ffi";

const POSIX_FADV_DONTNEED = 4;
/** Ranges are dropped in whole pages, so consecutive drops tile the file without gaps. */
const PAGE = 4096;

type Fadvise = (fd: number, offset: number, length: number, advice: number) => number;
let fadvise: Fadvise | null | undefined;

function posixFadvise(): Fadvise | null {
  if (fadvise === undefined) {
    try {
      const libc = dlopen("libc.so.6", { posix_fadvise: { args: [FFIType.i32, FFIType.i64, FFIType.i64, FFIType.i32], returns: FFIType.i32 } });
      fadvise = libc.symbols.posix_fadvise as unknown as Fadvise;
    } catch {
      fadvise = null;
    }
  }
  return fadvise;
}

/**
 * Drops the cached pages of fd from `from` up to `durableEnd` (on disk since an fsync), in whole
 * pages; returns where the next drop starts. `sealed` files are dropped to their end.
 */
export function dropDurable(fd: number, from: number, durableEnd: number, sealed = false): number {
  const end = sealed ? durableEnd : durableEnd - (durableEnd % PAGE);
  if (end <= from) return from;
  posixFadvise()?.(fd, from, end - from, POSIX_FADV_DONTNEED);
  return end;
}
