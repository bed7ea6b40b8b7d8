// RESP2 encoder into one reusable, growable output buffer, so a burst of pipelined replies (or
// commands, on the client side) leaves in a single socket write instead of one per value.
// Large payloads can be placed straight into the buffer by the caller (reserveBulk) to avoid an
// intermediate copy, e.g. a pread from a data file.

const CRLF = 0x0a0d;

export class RespWriter {
  buf: Buffer;
  length = 0;

  constructor(private readonly initialSize = 64 * 1024) {
    this.buf = Buffer.allocUnsafe(initialSize);
  }

  /** Makes room for n more bytes. */
  ensure(n: number): void {
    const need = this.length + n;
    if (need <= this.buf.length) return;
    // Grow to what is needed (a big value gets a buffer its size), at least doubling.
    const size = Math.max(need, this.buf.length * 2);
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.length);
    this.buf = next;
  }

  /** The encoded bytes so far (a view; valid until the next write or reset). */
  view(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  /** Gives up the current buffer (the caller keeps using it) for next, or a fresh one; empties the writer. */
  swap(next: Buffer | null): Buffer {
    const old = this.buf;
    this.buf = next ?? Buffer.allocUnsafe(this.initialSize);
    this.length = 0;
    return old;
  }

  reset(): void {
    this.length = 0;
  }

  /** Drops the buffer back to its initial size after a burst of large values. */
  shrink(maxIdle: number): void {
    if (this.length === 0 && this.buf.length > maxIdle) this.buf = Buffer.allocUnsafe(this.initialSize);
  }

  private ascii(s: string): void {
    // Type lines are short; latin1 keeps bytes 1:1 and never expands.
    this.ensure(s.length + 2);
    this.length += this.buf.write(s, this.length, "latin1");
    this.buf.writeUInt16LE(CRLF, this.length);
    this.length += 2;
  }

  /**
   * Writes a type byte, the decimal integer n and CRLF. Headers are written on every value in both
   * directions: digits go straight into the buffer, without making a string first.
   */
  private header(type: number, n: number): void {
    if (!Number.isSafeInteger(n)) {
      this.ensure(1);
      this.buf[this.length++] = type;
      this.ascii(String(n));
      return;
    }
    this.ensure(20);
    const b = this.buf;
    let at = this.length;
    b[at++] = type;
    if (n < 0) {
      b[at++] = 0x2d;
      n = -n;
    }
    let digits = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
    for (let i = digits - 1; i >= 0; i--) {
      b[at + i] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    at += digits;
    b[at++] = 0x0d;
    b[at++] = 0x0a;
    this.length = at;
  }

  simple(s: string): void {
    this.ensure(1);
    this.buf[this.length++] = 0x2b;
    this.ascii(s);
  }

  error(message: string): void {
    this.ensure(1);
    this.buf[this.length++] = 0x2d;
    // An error must stay on one line.
    this.ascii(message.replace(/[\r\n]+/g, " "));
  }

  integer(n: number): void {
    this.header(0x3a, n);
  }

  nil(): void {
    this.ensure(5);
    this.length += this.buf.write("$-1\r\n", this.length, "latin1");
  }

  arrayHeader(n: number): void {
    this.header(0x2a, n);
  }

  bulk(data: Uint8Array): void {
    const start = this.reserveBulk(data.length);
    this.buf.set(data, start);
  }

  bulkString(s: string): void {
    const n = Buffer.byteLength(s, "utf8");
    const start = this.reserveBulk(n);
    this.buf.write(s, start, n, "utf8");
  }

  /**
   * Writes a bulk header for n bytes and reserves them; returns the offset in buf where the caller
   * must place exactly n bytes before the next write. The trailing CRLF is already written.
   */
  reserveBulk(n: number): number {
    this.ensure(n + 24);
    this.header(0x24, n);
    const start = this.length;
    this.length += n;
    this.buf.writeUInt16LE(CRLF, this.length);
    this.length += 2;
    return start;
  }

  /** Undoes everything written since mark (a previous value of length). */
  rewind(mark: number): void {
    this.length = mark;
  }

  /** Encodes a command: an array of bulk strings. */
  command(args: readonly (string | Uint8Array)[]): void {
    this.arrayHeader(args.length);
    for (const a of args) {
      if (typeof a === "string") this.bulkString(a);
      else this.bulk(a);
    }
  }
}
