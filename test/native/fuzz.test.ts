// 10,000 calls with random, mostly wrong arguments to every native function: each must return
// or throw a TypeError/RangeError, and the process must still be here at the end.
import { expect, test } from "bun:test";
import * as native from "../../native/index.ts";

/** A small deterministic generator so a failure can be replayed from the printed seed. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test("10,000 random calls never crash and only throw TypeError or RangeError", async () => {
  const seed = Date.now() % 1_000_000;
  const rand = rng(seed);
  const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
  const oneOf = <T>(xs: T[]): T => xs[int(0, xs.length - 1)];
  const detached = () => {
    const ab = new ArrayBuffer(int(0, 64));
    const v = new Uint8Array(ab);
    structuredClone(ab, { transfer: [ab] });
    return v;
  };
  const shardLen = () => oneOf([0, 1, 16, 63, 64, 100]);
  const value = (depth = 0): unknown =>
    oneOf<() => unknown>([
      () => undefined, () => null, () => int(-3, 300), () => rand() * 10, () => NaN, () => -0, () => Infinity,
      () => "scalar", () => "avx2", () => "x", () => true, () => ({}), () => Symbol("s"), () => 10n,
      () => new Uint8Array(shardLen()), () => Buffer.alloc(shardLen()), () => new Uint16Array(4), () => new ArrayBuffer(8),
      () => detached(), () => new Uint8Array(100).subarray(int(0, 50)), () => () => 1,
      () => (depth < 2 ? Array.from({ length: int(0, 8) }, () => value(depth + 1)) : []),
      () => Array.from({ length: int(0, 8) }, () => (rand() < 0.2 ? null : new Uint8Array(16))),
    ])();
  const args = () => Array.from({ length: int(0, 5) }, () => value());
  /** RS calls whose k, m and shard counts are often right, so the deeper checks are reached. */
  const rsArgs = () => {
    const k = int(0, 6), m = int(0, 4), len = shardLen();
    const shards = Array.from({ length: k + m + int(-1, 1) }, () =>
      rand() < 0.1 ? value() : rand() < 0.25 ? null : new Uint8Array(rand() < 0.1 ? shardLen() : len),
    );
    return [k, m, shards, oneOf([undefined, ...native.rsPaths(), "bogus"])];
  };
  const calls: [string, (...a: unknown[]) => unknown, () => unknown[]][] = [
    ["blake3", native.blake3 as never, () => [value(), oneOf([undefined, { key: value() }, { outLength: value() }, value()])]],
    ["blake3Parallel", native.blake3Parallel as never, args],
    ["blake2b256", native.blake2b256 as never, args],
    ["blake2b", native.blake2b as never, args],
    ["crc32c", native.crc32c as never, args],
    ["snappyCompress", native.snappyCompress as never, args],
    ["snappyCompressInto", native.snappyCompressInto as never, () => (rand() < 0.5 ? [new Uint8Array(int(0, 20_000)), new Uint8Array(int(0, 24_000)), oneOf([true, false, undefined, value()])] : args())],
    ["snappyMaxCompressedLength", native.snappyMaxCompressedLength as never, args],
    ["snappyDecompress", native.snappyDecompress as never, () => [oneOf([value(), native.snappyCompress(new Uint8Array(int(0, 99))).map((b) => (rand() < 0.1 ? int(0, 255) : b))]), value()]],
    ["Blake3Hasher", (...a: unknown[]) => new native.Blake3Hasher(a[0] as never).update(a[1] as never).digest(a[2] as never), args],
    ["rsEncode", native.rsEncode as never, () => (rand() < 0.5 ? rsArgs() : args())],
    ["rsReconstruct", native.rsReconstruct as never, () => (rand() < 0.5 ? rsArgs() : args())],
    ["rsVerify", native.rsVerify as never, () => (rand() < 0.5 ? rsArgs() : args())],
    ["rsEncodeInto", native.rsEncodeInto as never, () => { const a = rsArgs(); return [a[0], a[1], a[2], value(), a[3]]; }],
    ["rsReconstructInto", native.rsReconstructInto as never, () => { const a = rsArgs(); return [a[0], a[1], a[2], [int(-1, 8)], a[3]]; }],
    ["rsEncodeAsync", native.rsEncodeAsync as never, rsArgs],
    ["rsReconstructAsync", native.rsReconstructAsync as never, rsArgs],
  ];
  const outcomes = { returned: 0, typeError: 0, rangeError: 0 };
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < 10_000; i++) {
    const [name, f, makeArgs] = oneOf(calls);
    const a = makeArgs();
    try {
      const r = f(...a);
      outcomes.returned++;
      if (r instanceof Promise) pending.push(r);
    } catch (e) {
      if (e instanceof TypeError) outcomes.typeError++;
      else if (e instanceof RangeError) outcomes.rangeError++;
      else throw new Error(`seed ${seed}, call ${i}: ${name} threw ${String(e)}`);
    }
  }
  await Promise.all(pending);
  console.log(`fuzz seed ${seed}: ${JSON.stringify(outcomes)}`);
  // The addon still computes right after all that.
  const data = [new Uint8Array([1, 2, 3]), new Uint8Array([4, 5, 6])];
  expect(native.rsReconstruct(2, 1, [null, data[1], native.rsEncode(2, 1, data)[0]])[0]).toEqual(data[0]);
  expect(Buffer.from(native.blake3(new Uint8Array(0))).toString("hex")).toBe("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262");
  expect(outcomes.returned).toBeGreaterThan(100);
  expect(outcomes.typeError).toBeGreaterThan(100);
  expect(outcomes.rangeError).toBeGreaterThan(100);
});
