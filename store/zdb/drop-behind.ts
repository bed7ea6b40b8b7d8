// Drop-behind: the pages of a namespace's data files leave the page cache once an fsync has put
// them on disk and newer data has pushed them out of the newest KEEP_CACHED bytes.
//
// What a 0-db backend writes is mostly read rarely and late (a shard is read when its block is,
// and then mostly by another node, through that node's caches), except just after it was written
// (a block read back by the node that stored it). Kept in the page cache without bound it only
// pushes out pages that are read again (flists, container files), and every page of new data is
// memory the kernel has to find afresh. On a virtual machine whose host takes back the guest's
// free memory (free page reporting: this project's build VM, and any node booted under QEMU with a
// balloon), the first touch of such a page costs a fault in the host: writing 1.5 GiB into the
// page cache took 0.9-1.0 s of system time in pages used before and 2.5-4.5 s in fresh ones, and
// a sustained write into six zdb processes doubled their CPU per GiB once their page cache grew
// into fresh memory. With the newest data kept and the older dropped, reads of recent writes stay
// in memory and the same pages are reused, hot (see KEEP_CACHED for the size).
//
// Only durable ranges are dropped (the kernel would skip dirty pages anyway), so with fsync
// "never" nothing is. The advice is a hint: where posix_fadvise cannot be called, nothing happens.
import { libc } from "../libc.ts";

const POSIX_FADV_DONTNEED = 4;
/**
 * The newest data of a namespace kept cached. make bench-store's get of the 1 GiB it had just put
 * (~256 MiB per zdb) ran at 941-948 MB/s with 64 or 256 MiB kept and 503 with nothing; the vdisk's
 * sustained write, whose zdb page cache grows by the window before it is reused, at 239.5 MB/s
 * with 64 MiB and 191.7-213.7 with 256 (2026-11-26, one to two runs each).
 */
export const KEEP_CACHED = 64 * 1024 * 1024;
/** Ranges are dropped in whole pages, so consecutive drops tile the file without gaps. */
const PAGE = 4096;

/** Drops the cached pages of fd in [from, end); `end` is rounded down to a page unless `whole`. Returns where the next drop starts. */
function drop(fd: number, from: number, end: number, whole = false): number {
  const to = whole ? end : end - (end % PAGE);
  if (to <= from) return from;
  libc()?.posix_fadvise(fd, from, to - from, POSIX_FADV_DONTNEED);
  return to;
}

interface SealedFile {
  fd: number;
  size: number;
  /** Its fsync after sealing succeeded. */
  durable: boolean;
}

/** What one namespace has dropped, across its active file and the files it sealed. */
export class DropBehind {
  private uncachedTo = 0;
  /** The active file's size at its last sync. */
  private activeSize = 0;
  /** Sealed files not dropped yet, oldest first. */
  private sealed: SealedFile[] = [];

  constructor(private readonly keep = KEEP_CACHED) {}

  /** A new active data file (created or reopened). */
  start(): void {
    this.uncachedTo = 0;
    this.activeSize = 0;
  }

  /** The active file was sealed at `size`; call the returned function with its fsync's outcome. */
  seal(fd: number, size: number): (durable: boolean) => void {
    const file: SealedFile = { fd, size, durable: false };
    this.sealed.push(file);
    return (durable) => {
      file.durable = durable;
      this.dropSealed();
    };
  }

  /**
   * The active file `fd` (the caller checks it still is), now `size` bytes, is durable up to
   * `durableEnd`: drops what is older than the newest `keep` bytes.
   */
  synced(fd: number, durableEnd: number, size: number): void {
    this.uncachedTo = drop(fd, this.uncachedTo, Math.min(durableEnd, size - this.keep));
    this.activeSize = size;
    this.dropSealed();
  }

  /** Drops the durable sealed files that the newest `keep` bytes no longer reach, whole. */
  private dropSealed(): void {
    let newer = this.activeSize;
    for (let i = this.sealed.length - 1; i >= 0; i--) {
      const file = this.sealed[i];
      if (newer >= this.keep && file.durable) {
        drop(file.fd, 0, file.size, true);
        this.sealed.splice(i, 1);
      } else newer += file.size;
    }
  }

  /** A sealed file's descriptor is being closed (compaction): it must not be advised after. */
  forget(fd: number): void {
    this.sealed = this.sealed.filter((f) => f.fd !== fd);
  }

  /** Every file is being closed (flush, close). */
  clear(): void {
    this.sealed = [];
  }
}
