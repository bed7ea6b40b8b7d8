// The RESP decoder and writer: every value type, any chunking of the byte stream, limits that
// discard a frame but keep the stream in sync, and garbage that is rejected.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { RespDecoder, RespError, RespFrameTooLarge, RespProtocolError, type RespValue } from "../../store/resp/decoder.ts";
import { RespWriter } from "../../store/resp/writer.ts";
import { Outbox } from "../../store/resp/outbox.ts";

function decodeAll(chunks: Uint8Array[], limits?: ConstructorParameters<typeof RespDecoder>[1]): (RespValue | RespFrameTooLarge)[] {
  const out: (RespValue | RespFrameTooLarge)[] = [];
  const d = new RespDecoder((v) => out.push(v), limits);
  for (const c of chunks) d.push(c);
  expect(d.idle).toBe(true);
  return out;
}

function splitAt(bytes: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const parts: Uint8Array[] = [];
  let prev = 0;
  for (const p of points) {
    parts.push(bytes.slice(prev, p));
    prev = p;
  }
  parts.push(bytes.slice(prev));
  return parts;
}

const bytes = (s: string) => Buffer.from(s, "latin1");
const norm = (v: unknown): unknown =>
  v instanceof Uint8Array ? { bulk: Buffer.from(v).toString("hex") } : Array.isArray(v) ? v.map(norm) : v instanceof RespError ? { error: v.message } : v;

describe("RESP decoder", () => {
  test("decodes every RESP2 type", () => {
    const wire = bytes("+OK\r\n-ERR bad thing\r\n:42\r\n:-7\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n*0\r\n*2\r\n*1\r\n:1\r\n$1\r\nx\r\n");
    expect(decodeAll([wire]).map(norm)).toEqual([
      "OK",
      { error: "ERR bad thing" },
      42,
      -7,
      { bulk: "68656c6c6f" },
      { bulk: "" },
      null,
      null,
      [],
      [[1], { bulk: "78" }],
    ]);
  });

  test("any split of the stream gives the same values", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 5 })), { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 12 }),
        (values, cuts) => {
          const w = new RespWriter(16);
          for (const v of values) {
            if (v instanceof Uint8Array) w.bulk(v);
            else w.command(v);
          }
          const wire = Buffer.from(w.view());
          expect(decodeAll(splitAt(wire, cuts)).map(norm)).toEqual(values.map(norm));
        },
      ),
      { numRuns: 300 },
    );
  });

  test("an oversize bulk is consumed and reported, and the next frame decodes", () => {
    const big = Buffer.alloc(100, 0x61);
    const w = new RespWriter();
    w.command([bytes("SET"), bytes("k"), big]);
    w.command(["PING"]);
    const wire = Buffer.from(w.view());
    for (const chunks of [[wire], splitAt(wire, [3, 20, 50, 90, 130])]) {
      const out = decodeAll(chunks, { maxBulk: 64, maxArray: 1024, maxLine: 1024, maxDepth: 1 });
      expect(out.length).toBe(2);
      expect(out[0]).toBeInstanceOf(RespFrameTooLarge);
      expect(norm(out[1])).toEqual([{ bulk: "50494e47" }]);
    }
  });

  test("an array with too many elements is consumed and reported", () => {
    const w = new RespWriter();
    w.command(Array.from({ length: 20 }, (_, i) => String(i)));
    w.command(["PING"]);
    const out = decodeAll([Buffer.from(w.view())], { maxBulk: 64, maxArray: 10, maxLine: 1024, maxDepth: 1 });
    expect(out[0]).toBeInstanceOf(RespFrameTooLarge);
    expect((out[0] as RespFrameTooLarge).message).toContain("20 arguments");
    expect(norm(out[1])).toEqual([{ bulk: "50494e47" }]);
  });

  test("garbage is a protocol error", () => {
    for (const bad of ["?x\r\n", "$abc\r\n", "*1\r\n$3\r\nabcd\r\n", ":12\n", "$-5\r\n", "*2\r\n*1\r\n:1\r\n"]) {
      const d = new RespDecoder(() => {}, { maxBulk: 64, maxArray: 16, maxLine: 64, maxDepth: 1 });
      expect(() => d.push(bytes(bad))).toThrow(RespProtocolError);
    }
    const d = new RespDecoder(() => {}, { maxBulk: 64, maxArray: 16, maxLine: 8, maxDepth: 2 });
    expect(() => d.push(bytes("+" + "x".repeat(100)))).toThrow(RespProtocolError);
  });
});

describe("RESP writer", () => {
  test("encodes replies byte-exact", () => {
    const w = new RespWriter(4);
    w.simple("OK");
    w.error("bad\r\nline");
    w.integer(-3);
    w.nil();
    w.arrayHeader(1);
    w.bulkString("é");
    const mark = w.length;
    w.bulkString("dropped");
    w.rewind(mark);
    expect(Buffer.from(w.view()).toString("latin1")).toBe("+OK\r\n-bad line\r\n:-3\r\n$-1\r\n*1\r\n$2\r\n\xc3\xa9\r\n");
  });

  test("integers and lengths are written as their decimal text", () => {
    fc.assert(
      fc.property(fc.oneof(fc.integer(), fc.maxSafeInteger(), fc.constantFrom(0, 9, 10, 99, 100, -1, -10, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER)), fc.nat({ max: 100_000 }), (n, len) => {
        const w = new RespWriter(4);
        w.integer(n);
        w.arrayHeader(len);
        w.reserveBulk(len);
        const text = Buffer.from(w.view()).toString("latin1");
        expect(text.startsWith(`:${n}\r\n*${len}\r\n$${len}\r\n`)).toBe(true);
        expect(w.length).toBe(`:${n}\r\n*${len}\r\n$${len}\r\n`.length + len + 2);
      }),
    );
  });
});

describe("Outbox", () => {
  test("a socket taking any number of bytes per write still gets every byte in order", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 200_000 }), fc.boolean()), { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 150_000 }), { minLength: 1, maxLength: 20 }).map((a) => [...a, 4096]), // and some progress
        (replies, accepts) => {
          const sent: Buffer[] = [];
          let call = 0;
          const out = new Outbox((data) => {
            const n = Math.min(data.length, accepts[call++ % accepts.length]);
            sent.push(Buffer.from(data.subarray(0, n)));
            return n;
          });
          const expected: Buffer[] = [];
          let seed = 1;
          for (const [size, drainAfter] of replies) {
            const value = Buffer.alloc(size, seed++ & 0xff);
            const w = new RespWriter();
            w.bulk(value);
            expected.push(Buffer.from(w.view()));
            out.writer.bulk(value);
            out.flush();
            if (drainAfter) out.drain();
          }
          for (let i = 0; i < 10_000 && !out.drain(); i++);
          expect(Buffer.concat(sent).equals(Buffer.concat(expected))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
