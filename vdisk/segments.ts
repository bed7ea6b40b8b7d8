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

export function isAllZero(buf: Uint8Array): boolean {
  // Word-wise when aligned: 8x fewer iterations than bytes.
  if (buf.byteOffset % 8 === 0 && buf.length % 8 === 0) {
    const words = new BigUint64Array(buf.buffer, buf.byteOffset, buf.length / 8);
    for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
    return true;
  }
  for (let i = 0; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}
