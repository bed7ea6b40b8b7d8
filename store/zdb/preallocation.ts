// Preallocation: the active data file's disk blocks are reserved ahead of its appends
// (fallocate with FALLOC_FL_KEEP_SIZE), STEP bytes at a time.
//
// Without it ext4 allocates the blocks of appended data at writeback, holding the file's
// i_data_sem, and may wait there for a block bitmap to be read from disk. The background fsync runs
// that writeback once a second, and an append that reaches a new block takes the same lock, so
// the server's one thread stood still in ext4_da_get_block_prep: in a sustained vdisk write into
// six zdb processes the machine sat in iowait for ~1 s of every 9, and since each block waits
// for all of its shards, any zdb that stalled held up all of them. Appends into reserved
// (unwritten) blocks find their mapping in ext4's extent cache without that lock.
//
// KEEP_SIZE leaves the file's size, which is what recovery reads, to the writes. Reservations stop
// at the size where a file is sealed, and a file closed early gives back what it did not use
// (when that is SMALL_TAIL or more). A reopened file is reserved again from its end (reserving
// blocks already reserved costs nothing). It is a hint: where fallocate fails (a full disk, a
// filesystem without it), appends allocate as they would have.
import * as fs from "node:fs";
import { libc } from "../libc.ts";

const FALLOC_FL_KEEP_SIZE = 1;
/**
 * How far ahead blocks are reserved: one fallocate per STEP appended, and an active file holds at
 * most this much unused space. 4 and 32 MiB gave the same sustained vdisk write (256-272 and
 * 260-268 MB/s, alternating); 32 MiB raised make bench-store's disk used per byte stored from
 * 1.50x to 1.69x (six active files, 1 GiB stored).
 */
export const STEP = 4 * 1024 * 1024;
const SMALL_TAIL = 1024 * 1024;

/** The reservation of one namespace's active data file. */
export class Preallocation {
  private reservedTo = 0;

  /** `limit`: the size at which a data file is sealed (a file never needs more reserved). */
  constructor(private readonly limit: number) {}

  /**
   * The active file's data ends at `size`, and nothing past it is known to be reserved: a new or
   * reopened file, or one cut back after a failed write (the truncate freed the reservation).
   */
  reset(size: number): void {
    this.reservedTo = size;
  }

  /** The active file `fd`, its data ending at `size`, is about to grow to `end`. */
  reserve(fd: number, size: number, end: number): void {
    if (end <= this.reservedTo) return;
    const to = Math.max(end, Math.min(end + STEP, this.limit));
    const c = libc();
    if (c !== null && c.fallocate(fd, FALLOC_FL_KEEP_SIZE, this.reservedTo, to - this.reservedTo) === 0) {
      this.reservedTo = to;
      return;
    }
    // On a nearly full disk ext4 keeps what it reserved before failing. Held, it would be the
    // space the index append then lacks, and that append's failure frees it only for the next
    // append to take it again: give it back, and stop reserving in this file (until a failed
    // write cuts it back and resets this; space may have been freed by then).
    truncate(fd, size);
    this.reservedTo = Infinity;
  }

  /**
   * The active file `fd` is sealed or closed at `size`: frees what it reserved past that. A tail
   * under SMALL_TAIL (what a sealed file has: its last entry did not fit) is left alone, since
   * freeing blocks on a disk mounted with `discard` waits for the device.
   */
  release(fd: number, size: number): void {
    if (this.reservedTo !== Infinity && this.reservedTo - size >= SMALL_TAIL) truncate(fd, size);
    this.reservedTo = size;
  }
}

function truncate(fd: number, size: number): void {
  try {
    // ext4 frees preallocated blocks past the end on any truncate, even to the same size
    // (test/store/zdb-namespace.test.ts checks it).
    fs.ftruncateSync(fd, size);
  } catch {
    // Only disk space is at stake; the blocks are freed when the file is deleted.
  }
}
