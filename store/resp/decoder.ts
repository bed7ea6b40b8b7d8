// Incremental RESP2 decoder shared by the zdb server (commands) and ZdbClient (replies).
//
// RESP2 wire format (https://redis.io/docs/reference/protocol-spec/):
//   +<text>\r\n            simple string        -<text>\r\n  error
//   :<integer>\r\n         integer              $<n>\r\n<n bytes>\r\n  bulk string ($-1 = nil)
//   *<n>\r\n<n values>     array (*-1 = nil)
//
// Bytes arrive in arbitrary chunks. A bulk that lies wholly inside one chunk is returned as a
// subarray of that chunk (no copy; Bun hands every data event a fresh Buffer); a bulk split over
// chunks is assembled into one buffer allocated once at its final size, so a 512 KiB value arriving
// in 64 KiB pieces costs one copy, not a quadratic re-concatenation.
//
// Limits: a bulk longer than maxBulk or an array longer than maxArray does not kill the connection:
// the decoder consumes (and discards) the whole frame and hands the caller a RespFrameTooLarge in
// its place, so the peer gets an error reply and the stream stays in sync. Bytes that are not RESP
// at all throw RespProtocolError; the stream cannot be resynchronised after that.

/** An error reply (-ERR ...) received from the peer. A value, not a thrown error. */
export class RespError {
  constructor(readonly message: string) {}
}

/** A frame that broke a size limit; it was consumed and discarded. */
export class RespFrameTooLarge {
  constructor(readonly message: string) {}
}

/** The byte stream is not RESP; the connection must be closed. */
export class RespProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RespProtocolError";
  }
}

/** Bulk strings are Buffers (subarrays of the received chunk, or assembled). */
export type RespValue = Uint8Array | string | number | null | RespError | RespValue[];

export interface RespLimits {
  /** Largest bulk string accepted, in bytes. */
  maxBulk: number;
  /** Most elements accepted in one array. */
  maxArray: number;
  /** Longest type line (+, -, :, $, * headers), in bytes. */
  maxLine: number;
  /** Deepest nesting of arrays. */
  maxDepth: number;
}

export const defaultLimits: RespLimits = { maxBulk: 512 * 1024 * 1024, maxArray: 1 << 20, maxLine: 64 * 1024, maxDepth: 16 };

/** Absolute sanity bounds: lengths above these are treated as garbage, not as oversize frames. */
const SANE_BULK = 2 ** 40;
const SANE_ARRAY = 2 ** 31;

const CR = 13;
const LF = 10;

interface ArrayFrame {
  items: RespValue[] | null; // null while discarding an oversize array
  remaining: number;
}

export class RespDecoder {
  private line: Uint8Array | null = null; // partial header line carried over from the previous chunk
  private bulk: Uint8Array | null = null; // bulk being assembled across chunks
  private bulkFilled = 0;
  private skip = 0; // bytes of an oversize bulk (plus CRLF) still to discard
  private bulkTail = 0; // CRLF bytes still expected after an assembled bulk
  private pendingBulk: Uint8Array | null = null; // an assembled bulk waiting for its CRLF
  private readonly stack: ArrayFrame[] = [];
  private tooLarge: string | null = null; // set while the current top-level frame is being discarded

  constructor(
    private readonly onValue: (value: RespValue | RespFrameTooLarge) => void,
    private readonly limits: RespLimits = defaultLimits,
  ) {}

  /** True when no frame is partly received. */
  get idle(): boolean {
    return this.line === null && this.bulk === null && this.skip === 0 && this.bulkTail === 0 && this.stack.length === 0;
  }

  /** Feeds one chunk; calls onValue for every complete top-level value. Throws RespProtocolError. */
  push(chunk: Uint8Array): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, end - pos);
        this.skip -= n;
        pos += n;
        if (this.skip === 0) this.complete(null);
        continue;
      }
      if (this.bulk !== null) {
        const n = Math.min(this.bulk.length - this.bulkFilled, end - pos);
        this.bulk.set(chunk.subarray(pos, pos + n), this.bulkFilled);
        this.bulkFilled += n;
        pos += n;
        if (this.bulkFilled === this.bulk.length) {
          this.bulkTail = 2;
          const value = this.bulk;
          this.bulk = null;
          this.pendingBulk = value;
        }
        continue;
      }
      if (this.bulkTail > 0) {
        // Expect the CRLF that ends an assembled bulk; the bulk is delivered only once it is seen.
        const expected = this.bulkTail === 2 ? CR : LF;
        if (chunk[pos] !== expected) throw new RespProtocolError("bulk string not terminated by CRLF");
        pos++;
        if (--this.bulkTail === 0) {
          const value = this.pendingBulk!;
          this.pendingBulk = null;
          this.complete(value);
        }
        continue;
      }
      pos = this.parseHeader(chunk, pos, end);
    }
  }

  /** Parses one header line (and, when it is all here, the bulk body that follows). Returns the new position. */
  private parseHeader(chunk: Uint8Array, pos: number, end: number): number {
    let lineBuf: Uint8Array;
    let start: number;
    let stop: number; // index of CR
    let next: number; // position after LF
    const lf = chunk.indexOf(LF, pos);
    if (this.line !== null) {
      if (lf === -1) {
        this.appendLine(chunk.subarray(pos, end));
        return end;
      }
      this.appendLine(chunk.subarray(pos, lf + 1));
      lineBuf = this.line;
      this.line = null;
      start = 0;
      stop = lineBuf.length - 2;
      next = lf + 1;
    } else {
      if (lf === -1) {
        if (end - pos > this.limits.maxLine) throw new RespProtocolError("header line too long");
        this.line = chunk.slice(pos, end);
        return end;
      }
      lineBuf = chunk;
      start = pos;
      stop = lf - 1;
      next = lf + 1;
    }
    if (stop < start || lineBuf[stop] !== CR) throw new RespProtocolError("line not terminated by CRLF");
    if (stop - start > this.limits.maxLine) throw new RespProtocolError("header line too long");
    const type = lineBuf[start];
    switch (type) {
      case 0x24: { // $ bulk
        const n = parseInteger(lineBuf, start + 1, stop);
        if (n === -1) {
          this.complete(null);
          return next;
        }
        if (n < 0 || n > SANE_BULK) throw new RespProtocolError(`invalid bulk length ${n}`);
        if (n > this.limits.maxBulk || this.tooLarge !== null) {
          this.tooLarge ??= `argument of ${n} bytes exceeds the limit of ${this.limits.maxBulk} bytes`;
          this.skip = n + 2;
          return next;
        }
        if (lineBuf === chunk && next + n + 2 <= end) {
          if (chunk[next + n] !== CR || chunk[next + n + 1] !== LF) throw new RespProtocolError("bulk string not terminated by CRLF");
          this.complete(chunk.subarray(next, next + n));
          return next + n + 2;
        }
        this.bulk = Buffer.allocUnsafe(n);
        this.bulkFilled = 0;
        if (n === 0) {
          this.bulk = null;
          this.pendingBulk = Buffer.alloc(0);
          this.bulkTail = 2;
        }
        return next;
      }
      case 0x2a: { // * array
        const n = parseInteger(lineBuf, start + 1, stop);
        if (n === -1) {
          this.complete(null);
          return next;
        }
        if (n < 0 || n > SANE_ARRAY) throw new RespProtocolError(`invalid array length ${n}`);
        if (this.stack.length >= this.limits.maxDepth) throw new RespProtocolError("arrays nested too deeply");
        if (n > this.limits.maxArray) this.tooLarge ??= `${n} arguments exceed the limit of ${this.limits.maxArray}`;
        if (n === 0) {
          this.complete([]);
          return next;
        }
        this.stack.push({ items: this.tooLarge === null ? [] : null, remaining: n });
        return next;
      }
      case 0x2b: // + simple string
        this.complete(latin1(lineBuf, start + 1, stop));
        return next;
      case 0x2d: // - error
        this.complete(new RespError(latin1(lineBuf, start + 1, stop)));
        return next;
      case 0x3a: // : integer
        this.complete(parseInteger(lineBuf, start + 1, stop));
        return next;
      default:
        throw new RespProtocolError(`unexpected byte 0x${(type ?? 0).toString(16).padStart(2, "0")} where a RESP type was expected`);
    }
  }

  private appendLine(part: Uint8Array): void {
    const prev = this.line!;
    if (prev.length + part.length > this.limits.maxLine + 2) throw new RespProtocolError("header line too long");
    const joined = new Uint8Array(prev.length + part.length);
    joined.set(prev, 0);
    joined.set(part, prev.length);
    this.line = joined;
  }

  /** Delivers one finished value to its enclosing array, or to the caller when it is top-level. */
  private complete(value: RespValue): void {
    let v: RespValue = value;
    for (;;) {
      const top = this.stack[this.stack.length - 1];
      if (top === undefined) {
        if (this.tooLarge !== null) {
          const message = this.tooLarge;
          this.tooLarge = null;
          this.onValue(new RespFrameTooLarge(message));
        } else {
          this.onValue(v);
        }
        return;
      }
      if (top.items !== null && this.tooLarge === null) top.items.push(v);
      if (--top.remaining > 0) return;
      this.stack.pop();
      v = top.items ?? null;
    }
  }
}

function latin1(buf: Uint8Array, start: number, stop: number): string {
  return Buffer.from(buf.buffer, buf.byteOffset + start, stop - start).toString("latin1");
}

/** Parses an optionally negative decimal integer in buf[start, stop); throws on anything else. */
function parseInteger(buf: Uint8Array, start: number, stop: number): number {
  let i = start;
  let negative = false;
  if (buf[i] === 0x2d) {
    negative = true;
    i++;
  }
  if (i >= stop || stop - i > 16) throw new RespProtocolError("invalid integer in RESP header");
  let n = 0;
  for (; i < stop; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) throw new RespProtocolError("invalid integer in RESP header");
    n = n * 10 + d;
  }
  return negative ? -n : n;
}
