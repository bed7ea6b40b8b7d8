// A WRITE's payload as the socket delivered it: views of the received chunks it spans, in order.
// Exports copy from it straight into their own buffers, so a payload spread over several chunks
// (a 1 MiB write always is) is not first joined into one buffer: that was a copy of every byte
// written, plus a buffer to keep. The chunks are fresh buffers per receive, never reused, so the
// views stay valid for as long as an export needs them (a write waiting for a block fetch).

export class Payload {
  readonly length: number;

  constructor(readonly parts: readonly Uint8Array[]) {
    let n = 0;
    for (const p of parts) n += p.length;
    this.length = n;
  }

  static of(bytes: Uint8Array): Payload {
    return new Payload([bytes]);
  }

  /** Copies the n payload bytes starting at `from` into `into` at `at`. */
  copyTo(into: Uint8Array, at: number, from: number, n: number): void {
    if (from < 0 || n < 0 || from + n > this.length) throw new RangeError(`copyTo(${from}, ${n}) outside a payload of ${this.length} bytes`);
    let i = 0;
    // Skip to the part holding `from`; payloads have a handful of parts.
    while (from >= this.parts[i]?.length) from -= this.parts[i++].length;
    while (n > 0) {
      const p = this.parts[i++];
      const k = Math.min(p.length - from, n);
      into.set(k === p.length ? p : p.subarray(from, from + k), at);
      at += k;
      n -= k;
      from = 0;
    }
  }
}
