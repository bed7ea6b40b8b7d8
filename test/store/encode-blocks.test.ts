// encodeBlocks (a batch, its BLAKE2b passes run several blocks at a time) gives each block exactly
// the bytes encodeBlock gives it, and blake2b256Many the digests blake2b256 gives one by one.
import { expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { blake2b } from "hash-wasm";
import { blake2b256Many } from "../../native/index.ts";
import { encodeBlocks } from "../../store/chunk.ts";
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

test("blake2b256Many rejects what is not an array of Uint8Arrays", () => {
  expect(() => blake2b256Many("x" as unknown as Uint8Array[])).toThrow(TypeError);
  expect(() => blake2b256Many([new Uint8Array(1), 5 as unknown as Uint8Array])).toThrow("inputs[1]");
});
