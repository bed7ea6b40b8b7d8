// encodeBlocks (a batch, its BLAKE2b passes run several blocks at a time) gives each block exactly
// the bytes encodeBlock gives it, also when encoding into the caller's buffers, and blake2b256Many
// the digests blake2b256 gives one by one.
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { blake2b } from "hash-wasm";
import { blake2b256Many } from "../../native/index.ts";
import { encodeBlocks, encodedCapacity } from "../../store/chunk.ts";
import { decodeBlock, encodeBlock } from "../../store/index.ts";

// Odd sizes and counts: the SIMD lanes take four inputs at a time and finish at different lengths.
const sizes = [0, 1, 127, 128, 129, 4096, 65536, 65536, 65536, 65536, 100_000, 3];
const inputs = sizes.map((n, i) => (i % 3 === 0 ? new Uint8Array(n).fill(i) : new Uint8Array(randomBytes(n))));

test("blake2b256Many matches an independent BLAKE2b-256 of each input, for any count", async () => {
  for (const count of [0, 1, 2, 3, 4, 5, 8, inputs.length]) {
    const got = blake2b256Many(inputs.slice(0, count));
    expect(got.length).toBe(count);
    for (let i = 0; i < count; i++) expect(Buffer.from(got[i]).toString("hex")).toBe(await blake2b(inputs[i], 256));
  }
});

test("encodeBlocks gives every block the bytes, key and id encodeBlock gives it, and they decode", () => {
  const batch = encodeBlocks(inputs);
  expect(batch.length).toBe(inputs.length);
  inputs.forEach((plain, i) => {
    const one = encodeBlock(plain);
    expect(Buffer.from(batch[i].key).equals(one.key)).toBe(true);
    expect(Buffer.from(batch[i].id).equals(one.id)).toBe(true);
    expect(Buffer.from(batch[i].data).equals(one.data)).toBe(true);
    expect(Buffer.from(decodeBlock(batch[i], batch[i].data)).equals(plain)).toBe(true);
  });
});

test("encodeBlocks into reused buffers gives the same blocks as views of them, for either hash", () => {
  for (const hash of ["blake2b", "blake3"] as const) {
    const into = inputs.map((p) => new Uint8Array(encodedCapacity(p.length)).fill(0xaa));
    const batch = encodeBlocks(inputs, hash, into);
    const fresh = encodeBlocks(inputs, hash);
    batch.forEach((b, i) => {
      expect(b.data.buffer).toBe(into[i].buffer);
      expect(b.data.byteOffset).toBe(0);
      expect(Buffer.from(b.data).equals(fresh[i].data)).toBe(true);
      expect(Buffer.from(b.id).equals(fresh[i].id)).toBe(true);
      expect(Buffer.from(decodeBlock(b, b.data, undefined, hash)).equals(inputs[i])).toBe(true);
    });
  }
});

test("blake2b256Many rejects what is not an array of Uint8Arrays", () => {
  expect(() => blake2b256Many("x" as unknown as Uint8Array[])).toThrow(TypeError);
  expect(() => blake2b256Many([new Uint8Array(1), 5 as unknown as Uint8Array])).toThrow("inputs[1]");
});
