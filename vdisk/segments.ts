// Splits a byte range into the pieces that fall into each fixed-size block.

export interface Segment {
  /** Block index. */
  block: number;
  /** Offset inside the block. */
  within: number;
  /** Offset from the start of the range. */
  at: number;
  length: number;
}

export function segments(offset: number, length: number, blockSize: number): Segment[] {
  const out: Segment[] = [];
  let at = 0;
  while (at < length) {
    const pos = offset + at;
    const block = Math.floor(pos / blockSize);
    const within = pos - block * blockSize;
    const n = Math.min(blockSize - within, length - at);
    out.push({ block, within, at, length: n });
    at += n;
  }
  return out;
}

let zeroes = new Uint8Array(64 * 1024);

/** A native memcmp against a shared zero buffer: far faster than a JS loop over the bytes. */
export function isAllZero(buf: Uint8Array): boolean {
  if (zeroes.length < buf.length) zeroes = new Uint8Array(buf.length);
  return Buffer.compare(buf, zeroes.subarray(0, buf.length)) === 0;
}
