// Hashes and snappy against published vectors and independent implementations (hash-wasm,
// Bun's CryptoHasher), plus the typed errors for bad arguments.
import { describe, expect, test } from "bun:test";
import { blake3 as wasmBlake3, blake2b as wasmBlake2b, crc32 as wasmCrc32 } from "hash-wasm";
import {
  Blake3Hasher, blake2b, blake2b256, blake3, blake3Parallel, crc32c, snappyCompress, snappyCompressInto, snappyDecompress, snappyMaxCompressedLength,
} from "../../native/index.ts";
import vectors from "./blake3-vectors.json";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const ascii = (s: string) => new TextEncoder().encode(s);
/** The BLAKE3 vectors' input: 0, 1, ..., 250 repeated. */
const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => i % 251);
const random = (n: number) => crypto.getRandomValues(new Uint8Array(n));
function randomBig(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

describe("BLAKE3", () => {
  const key = ascii(vectors.key);
  for (const c of vectors.cases) {
    test(`official vector, ${c.input_len} bytes`, () => {
      const input = pattern(c.input_len);
      const outLength = c.hash.length / 2;
      expect(hex(blake3(input))).toBe(c.hash.slice(0, 64));
      expect(hex(blake3(input, { outLength }))).toBe(c.hash);
      expect(hex(blake3(input, { key }))).toBe(c.keyed_hash.slice(0, 64));
      expect(hex(blake3(input, { key, outLength }))).toBe(c.keyed_hash);
      expect(hex(blake3Parallel(input))).toBe(c.hash.slice(0, 64));
      // Streaming in uneven pieces gives the same result, and digest can be taken twice.
      const h = new Blake3Hasher({ key });
      for (let i = 0; i < input.length; i += 1000) h.update(input.subarray(i, i + 1000));
      expect(hex(h.digest(outLength))).toBe(c.keyed_hash);
      expect(hex(h.digest())).toBe(c.keyed_hash.slice(0, 64));
    });
  }

  test("large inputs agree between one-shot, parallel, streaming and hash-wasm", async () => {
    const data = randomBig(9 * 1024 * 1024 + 17);
    const expected = await wasmBlake3(data);
    expect(hex(blake3(data))).toBe(expected);
    expect(hex(blake3Parallel(data))).toBe(expected);
    expect(hex(new Blake3Hasher().update(data.subarray(0, 12345)).update(data.subarray(12345)).digest())).toBe(expected);
  });

  test("reads views at their offset, and Buffers", () => {
    const whole = pattern(3000);
    expect(hex(blake3(whole.subarray(100, 2100)))).toBe(hex(blake3(pattern(3000).slice(100, 2100))));
    expect(hex(blake3(Buffer.from(whole)))).toBe(hex(blake3(whole)));
  });
});

describe("BLAKE2b", () => {
  test("RFC 7693 Appendix A: BLAKE2b-512(\"abc\")", () => {
    expect(hex(blake2b(ascii("abc"), 64))).toBe(
      "ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1" +
        "7d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923",
    );
  });

  test("BLAKE2b-256 agrees with Bun's CryptoHasher and hash-wasm", async () => {
    for (const n of [0, 1, 127, 128, 129, 4096, 1 << 20]) {
      const data = randomBig(n);
      const bun = new Bun.CryptoHasher("blake2b256").update(data).digest("hex");
      expect(hex(blake2b256(data))).toBe(bun);
      expect(hex(blake2b256(data))).toBe(await wasmBlake2b(data, 256));
    }
    expect(hex(blake2b256(ascii("abc")))).toBe("bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  });
});

describe("CRC-32C", () => {
  test("check value of \"123456789\" is 0xE3069283", () => {
    expect(crc32c(ascii("123456789"))).toBe(0xe3069283);
  });

  test("the empty input is 0 and all-zero/all-one 32-byte inputs match RFC 3720 B.4", () => {
    expect(crc32c(new Uint8Array(0))).toBe(0);
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
  });

  test("a seed continues a running CRC; agrees with hash-wasm", async () => {
    const data = random(100_003);
    const whole = crc32c(data);
    expect(crc32c(data.subarray(40_000), crc32c(data.subarray(0, 40_000)))).toBe(whole);
    expect(whole.toString(16).padStart(8, "0")).toBe(await wasmCrc32(data, 0x82f63b78));
  });
});

describe("snappy (raw)", () => {
  test("short input is one literal, as the format description lays out", () => {
    // varint length 9, literal tag (9-1)<<2, then the bytes.
    expect(hex(snappyCompress(ascii("Wikipedia")))).toBe("0920" + hex(ascii("Wikipedia")));
    expect(hex(snappyCompress(new Uint8Array(0)))).toBe("00");
  });

  test("decodes a hand-made stream with a copy element", () => {
    // length 12; literal "abcd"; copy with 1-byte offset: len 8, offset 4.
    const stream = Uint8Array.from([0x0c, 0x0c, ...ascii("abcd"), 0x11, 0x04]);
    expect(new TextDecoder().decode(snappyDecompress(stream))).toBe("abcdabcdabcd");
  });

  test("round trips random, repetitive and empty data and actually compresses", () => {
    const repetitive = ascii("zero-os block ".repeat(10_000));
    const c = snappyCompress(repetitive);
    expect(c.length).toBeLessThan(repetitive.length / 10);
    expect(snappyDecompress(c)).toEqual(repetitive);
    for (const n of [0, 1, 100, 65536, 300_000]) {
      const data = randomBig(n);
      expect(snappyDecompress(snappyCompress(data))).toEqual(data);
    }
  });

  test("outputs kept while later inputs of other sizes compress (a reused scratch) stay intact", () => {
    // Big first, then smaller ones, then one past the per-thread scratch's limit, then small again.
    const inputs = [300_000, 65536, 10, 5 * 1024 * 1024, 4096, 0].map((n, i) => (i % 2 ? randomBig(n) : ascii("vdisk ".repeat(Math.ceil(n / 6)).slice(0, n))));
    const outputs = inputs.map((d) => snappyCompress(d));
    outputs.forEach((c, i) => expect(snappyDecompress(c, 8 << 20)).toEqual(inputs[i]));
  });

  test("compressing into a caller's buffer gives the bytes snappyCompress gives, and guards its bounds", () => {
    const out = new Uint8Array(snappyMaxCompressedLength(300_000) + 5).fill(0xee);
    expect(snappyMaxCompressedLength(65536)).toBe(32 + 65536 + Math.floor(65536 / 6)); // snappy's documented bound
    for (const data of [new Uint8Array(0), ascii("zero-os block ".repeat(5000)), randomBig(65536), randomBig(300_000)]) {
      const n = snappyCompressInto(data, out);
      expect(Buffer.from(out.subarray(0, n)).equals(snappyCompress(data))).toBe(true);
      expect(out[out.length - 1]).toBe(0xee); // nothing written past the bound
    }
    expect(() => snappyCompressInto(randomBig(1000), new Uint8Array(snappyMaxCompressedLength(1000) - 1))).toThrow(RangeError);
    const shared = new Uint8Array(4096);
    expect(() => snappyCompressInto(shared.subarray(0, 100), shared.subarray(50))).toThrow("overlaps");
    expect(() => snappyMaxCompressedLength(-1)).toThrow(RangeError);
  });

  test("storeIncompressible writes data that does not compress as literals any decoder reads, and still compresses the rest", () => {
    const noise = randomBig(65536);
    const stored = snappyCompress(noise, true);
    expect(stored.length).toBe(3 + 3 + 65536); // length varint, one 64 KiB literal's tag, the bytes
    expect(Buffer.from(stored.subarray(6)).equals(Buffer.from(noise))).toBe(true);
    expect(snappyDecompress(stored)).toEqual(noise);
    const out = new Uint8Array(snappyMaxCompressedLength(300_000));
    const big = randomBig(300_000);
    expect(snappyDecompress(out.subarray(0, snappyCompressInto(big, out, true)))).toEqual(big);
    // Noise only at the start: the sample in the middle compresses, so the whole block is searched.
    const mixed = new Uint8Array(65536).fill(9);
    mixed.set(randomBig(4096));
    expect(snappyCompress(mixed, true).length).toBe(snappyCompress(mixed).length);
    expect(snappyCompress(mixed, true).length).toBeLessThan(8000);
    expect(() => snappyCompress(noise, "yes" as unknown as boolean)).toThrow(TypeError);
  });

  test("corrupt input and oversize claims are RangeErrors", () => {
    const c = snappyCompress(ascii("hello hello hello hello hello"));
    expect(() => snappyDecompress(c.subarray(0, c.length - 2))).toThrow(RangeError);
    // Header claims 2^32-1 bytes.
    expect(() => snappyDecompress(Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x00]))).toThrow(/maxLength/);
    expect(() => snappyDecompress(c, 5)).toThrow(/more than maxLength 5/);
    try {
      snappyDecompress(Uint8Array.from([5, 0x11, 0x04]));
      throw new Error("not reached");
    } catch (e) {
      expect(e).toBeInstanceOf(RangeError);
      expect((e as { code?: string }).code).toBe("ERR_SNAPPY_CORRUPT");
    }
  });
});

describe("bad arguments", () => {
  test("non-buffers, wrong typed arrays and detached buffers are TypeErrors naming the argument", () => {
    const bad: unknown[] = [undefined, null, 1, "abc", {}, [1, 2], new Uint16Array(4), new ArrayBuffer(4), new DataView(new ArrayBuffer(4))];
    for (const b of bad) {
      expect(() => blake3(b as Uint8Array)).toThrow(TypeError);
      expect(() => blake2b256(b as Uint8Array)).toThrow(/data must be a Uint8Array/);
      expect(() => crc32c(b as Uint8Array)).toThrow(TypeError);
      expect(() => snappyCompress(b as Uint8Array)).toThrow(TypeError);
      expect(() => new Blake3Hasher().update(b as Uint8Array)).toThrow(TypeError);
    }
    const ab = new ArrayBuffer(16);
    const view = new Uint8Array(ab);
    structuredClone(ab, { transfer: [ab] });
    expect(() => blake3(view)).toThrow(/detached/);
    expect(() => crc32c(view)).toThrow(/detached/);
  });

  test("bad options are RangeErrors or TypeErrors", () => {
    expect(() => blake3(new Uint8Array(1), { key: new Uint8Array(31) })).toThrow(/key must be 32 bytes, got 31/);
    expect(() => blake3(new Uint8Array(1), { outLength: 0 })).toThrow(RangeError);
    expect(() => blake3(new Uint8Array(1), { outLength: 1.5 })).toThrow(RangeError);
    expect(() => crc32c(new Uint8Array(1), -1)).toThrow(/seed/);
    expect(() => crc32c(new Uint8Array(1), "1" as unknown as number)).toThrow(TypeError);
    expect(() => blake2b(new Uint8Array(1), 65)).toThrow(/outLength/);
  });
});
