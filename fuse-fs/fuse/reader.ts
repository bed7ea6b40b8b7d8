// A worker thread that blocks in read(2) on one /dev/fuse fd and hands each request to the main thread.
// Blocking reads need a thread of their own; giving each reader its own fd (FUSE_DEV_IOC_CLONE) lets
// several of them wait at once, and the reply must go back on the fd the request came from.
//
// OPEN, RELEASE, OPENDIR and RELEASEDIR are answered here, without the main thread: on an immutable
// tree they need no state but a fresh handle number, and a warm `tar` of 10,000 files is nothing but
// these round trips (the kernel keeps the pages). Going through the main thread costs a postMessage, an
// event-loop turn and a reply allocation each way, behind whatever reads it is busy with. For the
// same reason a reader answers what the handler gave it as fixed replies (session.ts FixedReplies:
// the root's attributes and entries, STATFS, GETXATTR) without the main thread.
import { readSync, writeSync } from "node:fs";
import { Errno, FOPEN_CACHE_DIR, FOPEN_KEEP_CACHE, FOPEN_NOFLUSH, IN_HEADER, OUT_HEADER, Op, getU64 } from "./proto.ts";
import type { FixedReplies } from "./session.ts";

declare const self: Worker;

export interface ReaderStart {
  fd: number;
  /** This reader's index and the number of readers: handles it gives out are index + k * stride + 1. */
  index: number;
  stride: number;
  /** Requests seen, by opcode (a Uint32Array over it), shared by every reader. */
  counts: SharedArrayBuffer;
  fixed: FixedReplies | null;
}

/** What a reader posts: a request (Uint8Array), handles the kernel released, or why it stopped. */
export type ReaderMessage = Uint8Array | { released: number[] } | { closed: string };

/** Requests are small on a read-only mount (no WRITE data); the kernel wants >= max_write + 4 KiB. */
const BUFFER_SIZE = 132 * 1024;
const O_ACCMODE = 3;
/** Released file handles are reported to the main thread in batches (it keeps per-handle read state). */
const RELEASE_BATCH = 64;
const FOPEN_OUT = 16; // fuse_open_out: u64 fh, u32 open_flags, i32 backing_id

self.onmessage = (e: MessageEvent<ReaderStart>) => {
  const { fd, index, stride, fixed } = e.data;
  const counts = new Uint32Array(e.data.counts);
  const buf = Buffer.allocUnsafe(BUFFER_SIZE);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const openOut = Buffer.alloc(OUT_HEADER + FOPEN_OUT);
  openOut.writeUInt32LE(openOut.length, 0);
  const emptyOut = Buffer.alloc(OUT_HEADER);
  emptyOut.writeUInt32LE(OUT_HEADER, 0);
  let nextHandle = index + 1;
  let released: number[] = [];

  /** Writes a prepared reply; ENOENT means the request was interrupted meanwhile, ENODEV unmounted. */
  const reply = (out: Buffer, unique: bigint, error: number) => {
    out.writeInt32LE(-error, 4);
    out.writeBigUInt64LE(unique, 8);
    try {
      writeSync(fd, out);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENODEV" && code !== "EBADF") throw err;
    }
  };
  /** Answers from the fixed replies; false when they do not cover the request. */
  const answerFixed = (opcode: number, unique: bigint, n: number): boolean => {
    if (!fixed) return false;
    let r: Uint8Array | number | undefined;
    if (opcode === Op.GETATTR) r = fixed.attrs.get(getU64(dv, 16));
    else if (opcode === Op.LOOKUP) {
      const names = fixed.entries.get(getU64(dv, 16));
      if (names) {
        const end = buf.indexOf(0, IN_HEADER);
        r = names.get(buf.toString("utf8", IN_HEADER, end < 0 || end > n ? n : end)) ?? fixed.missing;
      }
    } else r = fixed.byOpcode.get(opcode);
    if (r === undefined) return false;
    if (typeof r === "number") reply(emptyOut, unique, r);
    else {
      const out = Buffer.from(r.buffer, r.byteOffset, r.byteLength);
      out.writeUInt32LE(out.length, 0);
      reply(out, unique, 0);
    }
    return true;
  };
  const open = (unique: bigint, flags: number) => {
    openOut.writeUIntLE(nextHandle, OUT_HEADER, 6);
    openOut.writeUInt16LE(0, OUT_HEADER + 6);
    openOut.writeUInt32LE(flags, OUT_HEADER + 8);
    nextHandle += stride;
    reply(openOut, unique, 0);
  };

  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // EINTR: a signal; ENOENT: the request was interrupted before we read it. Both: read again.
      if (code === "EINTR" || code === "ENOENT" || code === "EAGAIN") continue;
      // ENODEV: unmounted (or the connection aborted). Anything else also ends this reader.
      self.postMessage({ closed: code ?? String(err) });
      return;
    }
    const opcode = buf.readUInt32LE(4);
    if (opcode < counts.length) Atomics.add(counts, opcode, 1);
    const unique = buf.readBigUInt64LE(8);
    switch (opcode) {
      case Op.OPEN:
        // The mount is read-only, so the VFS refuses writable opens before they get here; kept honest anyway.
        if (buf.readUInt32LE(IN_HEADER) & O_ACCMODE) reply(emptyOut, unique, Errno.EROFS);
        else open(unique, FOPEN_KEEP_CACHE | FOPEN_NOFLUSH);
        continue;
      case Op.OPENDIR:
        open(unique, FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR);
        continue;
      case Op.RELEASE:
        reply(emptyOut, unique, 0);
        released.push(Number(buf.readBigUInt64LE(IN_HEADER)));
        if (released.length >= RELEASE_BATCH) {
          self.postMessage({ released });
          released = [];
        }
        continue;
      case Op.RELEASEDIR:
        reply(emptyOut, unique, 0);
        continue;
    }
    if (answerFixed(opcode, unique, n)) continue;
    const req = new Uint8Array(n);
    req.set(buf.subarray(0, n));
    self.postMessage(req, [req.buffer]);
  }
};
