// One erasure-coded shard as stored on a backend, under the block's id:
//   0   4  magic "ZSH1"
//   4   1  k (data shards)
//   5   1  m (parity shards)
//   6   1  shard index, 0..k+m-1 (0..k-1 are the block's bytes in order, the rest parity)
//   7   1  flags, 0
//   8   4  block length in bytes, u32 LE
//   12  4  reserved, 0 (keeps the payload 16-byte aligned)
//   16  L  payload, L = max(1, ceil(block length / k)); the last data shard is zero-padded
//   16+L 32 BLAKE3 keyed with the 32-byte block id, over bytes [0, 16+L)
// Keying the checksum with the id binds a shard to its block, so a shard stored under the wrong
// name is as detectable as a flipped bit.
import { blake3 } from "../../native/index.ts";
import type { BlockId } from "../types.ts";

export const SHARD_HEADER = 16;
export const SHARD_TRAILER = 32;
const MAGIC = 0x3148535a; // "ZSH1" read as u32 LE

export function payloadLength(blockLength: number, k: number): number {
  return Math.max(1, Math.ceil(blockLength / k));
}

export interface Shard {
  index: number;
  k: number;
  m: number;
  blockLength: number;
  /** The shard's slice of the (padded) block or its parity; a view into the frame. */
  payload: Uint8Array;
}

/**
 * Recycles frame buffers: a fresh 128 KiB allocation costs page faults worth several times the copy
 * into it. Only frames no backend can still be reading may be given back.
 */
export class FramePool {
  private readonly free = new Map<number, Uint8Array[]>();
  private bytes = 0;

  constructor(private readonly maxBytes = 64 * 1024 * 1024) {}

  take(size: number): Uint8Array {
    const recycled = this.free.get(size)?.pop();
    if (!recycled) return new Uint8Array(size);
    this.bytes -= size;
    return recycled;
  }

  give(frames: Uint8Array[]): void {
    for (const f of frames) {
      if (this.bytes + f.length > this.maxBytes) {
        // Keep the pool to the sizes in use now: drop everything of other sizes.
        for (const [size, list] of this.free) {
          if (size === f.length) continue;
          this.bytes -= size * list.length;
          this.free.delete(size);
        }
        if (this.bytes + f.length > this.maxBytes) return;
      }
      let list = this.free.get(f.length);
      if (!list) this.free.set(f.length, (list = []));
      list.push(f);
      this.bytes += f.length;
    }
  }
}

/** Bytes of the frame of one shard of a block of `blockLength` bytes. */
export function frameLength(blockLength: number, k: number): number {
  return SHARD_HEADER + payloadLength(blockLength, k) + SHARD_TRAILER;
}

/** A zeroed frame with its header filled in: the caller fills the payload, then calls sealFrame. */
export function newFrame(index: number, k: number, m: number, blockLength: number): Uint8Array {
  return writeFrameHeader(new Uint8Array(frameLength(blockLength, k)), index, k, m, blockLength);
}

/**
 * Fills in the header of a frame of frameLength(blockLength, k) bytes, wherever it lives (a pooled
 * frame, a connection's outgoing buffer); its payload is left as it was, so the caller must fill
 * every payload byte before sealFrame.
 */
export function writeFrameHeader(frame: Uint8Array, index: number, k: number, m: number, blockLength: number): Uint8Array {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  v.setUint32(0, MAGIC, true);
  frame[4] = k;
  frame[5] = m;
  frame[6] = index;
  frame[7] = 0;
  v.setUint32(8, blockLength, true);
  v.setUint32(12, 0, true);
  return frame;
}

export function framePayload(frame: Uint8Array): Uint8Array {
  return frame.subarray(SHARD_HEADER, frame.length - SHARD_TRAILER);
}

export function sealFrame(id: BlockId, frame: Uint8Array): Uint8Array {
  const body = frame.subarray(0, frame.length - SHARD_TRAILER);
  frame.set(blake3(body, { key: id }), body.length);
  return frame;
}

/** Why a frame was rejected, or the shard it holds. */
export function openFrame(id: BlockId, frame: Uint8Array): Shard | string {
  if (frame.length < SHARD_HEADER + 1 + SHARD_TRAILER) return `shard of ${frame.length} bytes is too short`;
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  if (v.getUint32(0, true) !== MAGIC) return "not a shard (bad magic)";
  const k = frame[4], m = frame[5], index = frame[6];
  const blockLength = v.getUint32(8, true);
  if (k < 1 || index >= k + m) return `shard index ${index} outside ${k}+${m}`;
  if (frame.length !== frameLength(blockLength, k)) return "shard length does not match its header";
  const body = frame.subarray(0, frame.length - SHARD_TRAILER);
  const want = blake3(body, { key: id });
  if (Buffer.compare(want, frame.subarray(body.length)) !== 0) return "shard checksum mismatch";
  return { index, k, m, blockLength, payload: framePayload(frame) };
}
