// The bytes received on a connection and not yet parsed. take() returns a view into the received
// chunk when the wanted bytes lie in one chunk (the common case), and copies only when they straddle;
// takeViews() never copies.

export class ByteQueue {
  private chunks: Uint8Array[] = [];
  private head = 0; // offset of the first unread byte in chunks[0]
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The next n bytes; when they straddle chunks they are copied into a new array. */
  take(n: number): Uint8Array {
    if (n > this.length) throw new RangeError(`take(${n}) with ${this.length} bytes queued`);
    const first = this.chunks[0];
    if (n === 0) return new Uint8Array(0);
    if (first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(n);
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const k = Math.min(c.length - this.head, n - filled);
      out.set(c.subarray(this.head, this.head + k), filled);
      filled += k;
      this.advance(k);
    }
    return out;
  }

  /** The next n bytes as views of the chunks they lie in, in order. */
  takeViews(n: number): Uint8Array[] {
    if (n > this.length) throw new RangeError(`takeViews(${n}) with ${this.length} bytes queued`);
    const views: Uint8Array[] = [];
    while (n > 0) {
      const c = this.chunks[0];
      const k = Math.min(c.length - this.head, n);
      views.push(c.subarray(this.head, this.head + k));
      this.advance(k);
      n -= k;
    }
    return views;
  }

  skip(n: number): void {
    if (n > this.length) throw new RangeError(`skip(${n}) with ${this.length} bytes queued`);
    while (n > 0) {
      const k = Math.min(this.chunks[0].length - this.head, n);
      this.advance(k);
      n -= k;
    }
  }

  private advance(k: number): void {
    this.head += k;
    this.length -= k;
    if (this.head === this.chunks[0].length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
