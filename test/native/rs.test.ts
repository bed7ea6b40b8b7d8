// Reed-Solomon: parity against the slow TypeScript reference on every CPU path, reconstruction
// from any k of k + m shards, property tests with fast-check, async variants, and bad input.
import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import {
  rsEncode, rsEncodeAsync, rsEncodeInto, rsPaths, rsReconstruct, rsReconstructAsync, rsReconstructInto, rsVerify,
  type RsPath,
} from "../../native/index.ts";
import { referenceEncode } from "./rs-reference.ts";

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}
const shardsOf = (k: number, len: number) => Array.from({ length: k }, () => randomBytes(len));
const randInt = (lo: number, hi: number) => lo + Math.floor(Math.random() * (hi - lo + 1));
/** `count` distinct indices below n, in random order. */
function pick(n: number, count: number): number[] {
  const all = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = randInt(0, i);
    [all[i], all[j]] = [all[j], all[i]];
  }
  return all.slice(0, count);
}

const paths = rsPaths();

describe("CPU paths", () => {
  test("the scalar path is always there and the fastest comes first", () => {
    expect(paths.at(-1)).toBe("scalar");
    expect(new Set(paths).size).toBe(paths.length);
  });

  for (const path of paths) {
    test(`${path}: parity equals the TypeScript reference`, () => {
      // Lengths around the 16/32/64-byte vector widths and the 16 KiB column block.
      const cases: [number, number, number][] = [
        [1, 1, 1], [2, 1, 15], [3, 2, 16], [4, 2, 63], [5, 3, 64], [10, 4, 1000],
        [6, 9, 129], [17, 11, 16 * 1024 + 65], [12, 20, 300], [30, 5, 4096 + 7],
      ];
      for (const [k, m, len] of cases) {
        const data = shardsOf(k, len);
        expect(rsEncode(k, m, data, { path })).toEqual(referenceEncode(k, m, data));
      }
    });

    test(`${path}: identical bytes to every other path and rebuilds lost shards`, () => {
      for (let round = 0; round < 20; round++) {
        const k = randInt(1, 40), m = randInt(1, 24), len = randInt(0, 5000);
        const data = shardsOf(k, len);
        const parity = rsEncode(k, m, data, { path });
        expect(parity).toEqual(rsEncode(k, m, data, { path: "scalar" }));
        const lost = pick(k + m, randInt(1, m));
        const shards: (Uint8Array | null)[] = [...data, ...parity];
        for (const i of lost) shards[i] = null;
        expect(rsReconstruct(k, m, shards, { path })).toEqual([...data, ...parity]);
        expect(rsVerify(k, m, [...data, ...parity], { path })).toBe(true);
      }
    });
  }
});

describe("encode and reconstruct", () => {
  test("any k of the k + m shards rebuild the rest, across random (k, m, size)", () => {
    for (let round = 0; round < 60; round++) {
      const k = randInt(1, 64), m = randInt(1, 32), len = randInt(1, 20_000);
      const data = shardsOf(k, len);
      const all = [...data, ...rsEncode(k, m, data)];
      for (let trial = 0; trial < 3; trial++) {
        const lost = pick(k + m, trial === 0 ? m : randInt(0, m));
        const shards: (Uint8Array | null)[] = [...all];
        for (const i of lost) shards[i] = null;
        const rebuilt = rsReconstruct(k, m, shards);
        expect(rebuilt).toEqual(all);
        // Present shards come back as the very objects given (no copies).
        for (let i = 0; i < k + m; i++) if (shards[i]) expect(rebuilt[i]).toBe(shards[i]!);
      }
    }
  });

  test("the widest code, k + m = 256, and the narrowest, k = 1", () => {
    for (const [k, m] of [[200, 56], [1, 255], [255, 1], [1, 1]]) {
      const data = shardsOf(k, 100);
      const all = [...data, ...rsEncode(k, m, data)];
      const shards: (Uint8Array | null)[] = [...all];
      for (const i of pick(k + m, m)) shards[i] = null;
      expect(rsReconstruct(k, m, shards)).toEqual(all);
      expect(rsVerify(k, m, all)).toBe(true);
    }
    const one = [randomBytes(77)];
    expect(rsEncode(1, 255, one)).toEqual(referenceEncode(1, 255, one));
  });

  test("m = 0 gives no parity and nothing to rebuild", () => {
    const data = shardsOf(3, 10);
    expect(rsEncode(3, 0, data)).toEqual([]);
    expect(rsReconstruct(3, 0, data)).toEqual(data);
    expect(rsVerify(3, 0, data)).toBe(true);
  });

  test("verify notices a single flipped bit anywhere", () => {
    const k = 6, m = 3;
    const data = shardsOf(k, 200_000);
    const all = [...data, ...rsEncode(k, m, data)];
    for (let trial = 0; trial < 10; trial++) {
      const s = randInt(0, k + m - 1), x = randInt(0, 199_999), bit = 1 << randInt(0, 7);
      all[s][x] ^= bit;
      expect(rsVerify(k, m, all)).toBe(false);
      all[s][x] ^= bit;
    }
    expect(rsVerify(k, m, all)).toBe(true);
  });

  test("shards may be views at an offset into a larger buffer, or Buffers", () => {
    const k = 4, m = 2, len = 1000;
    const backing = randomBytes(k * len + 13);
    const views = Array.from({ length: k }, (_, i) => backing.subarray(13 + i * len, 13 + (i + 1) * len));
    const copies = views.map((v) => v.slice());
    expect(rsEncode(k, m, views)).toEqual(rsEncode(k, m, copies));
    expect(rsEncode(k, m, copies.map((c) => Buffer.from(c)))).toEqual(referenceEncode(k, m, copies));
  });

  test("the Into variants write into the caller's buffers", () => {
    const k = 7, m = 3, len = 5000;
    const data = shardsOf(k, len);
    const parity: Uint8Array[] = Array.from({ length: m }, () => new Uint8Array(len).fill(0xee));
    expect(rsEncodeInto(k, m, data, parity)).toEqual(parity);
    expect(parity).toEqual(referenceEncode(k, m, data));
    const all = [...data, ...parity].map((s) => s.slice());
    const lost = pick(k + m, m);
    const damaged = all.map((s) => s.slice());
    for (const i of lost) damaged[i].fill(0);
    rsReconstructInto(k, m, damaged, lost);
    expect(damaged).toEqual(all);
    expect(() => rsEncodeInto(k, m, data, [parity[0], parity[0], parity[1]])).toThrow(/overlaps/);
    expect(() => rsEncodeInto(k, m, data, [data[0], parity[1], parity[2]])).toThrow(/overlaps/);
    expect(() => rsReconstructInto(k, m, damaged, [1, 1])).toThrow(/twice/);
    expect(() => rsReconstructInto(k, m, damaged, [0, 1, 2, 3])).toThrow(/too many missing/);
  });
});

describe("property tests (fast-check)", () => {
  test("encode matches the reference and any m losses are rebuilt (3000 cases)", () => {
    const params = fc
      .record({ k: fc.integer({ min: 1, max: 24 }), m: fc.integer({ min: 1, max: 12 }), len: fc.integer({ min: 0, max: 200 }) })
      .chain(({ k, m, len }) =>
        fc.record({
          k: fc.constant(k),
          m: fc.constant(m),
          data: fc.array(fc.uint8Array({ minLength: len, maxLength: len }), { minLength: k, maxLength: k }),
          lost: fc.uniqueArray(fc.integer({ min: 0, max: k + m - 1 }), { maxLength: m }),
          path: fc.constantFrom(...paths),
        }),
      );
    fc.assert(
      fc.property(params, ({ k, m, data, lost, path }) => {
        const parity = rsEncode(k, m, data, { path: path as RsPath });
        expect(parity).toEqual(referenceEncode(k, m, data));
        const shards: (Uint8Array | null)[] = [...data, ...parity];
        for (const i of lost) shards[i] = null;
        expect(rsReconstruct(k, m, shards, { path: path as RsPath })).toEqual([...data, ...parity]);
      }),
      { numRuns: 3000 },
    );
  });
});

describe("async variants", () => {
  test("give the same bytes as the synchronous calls, many in flight at once", async () => {
    const jobs = Array.from({ length: 12 }, async () => {
      const k = randInt(1, 20), m = randInt(1, 8), len = randInt(1, 300_000);
      const data = shardsOf(k, len);
      const parity = await rsEncodeAsync(k, m, data);
      expect(parity).toEqual(rsEncode(k, m, data));
      const shards: (Uint8Array | null)[] = [...data, ...parity];
      for (const i of pick(k + m, m)) shards[i] = null;
      expect(await rsReconstructAsync(k, m, shards)).toEqual([...data, ...parity]);
    });
    await Promise.all(jobs);
  });

  test("bad arguments throw synchronously, before any promise exists", () => {
    expect(() => rsEncodeAsync(0, 1, [])).toThrow(RangeError);
    expect(() => rsReconstructAsync(2, 1, [null, null, new Uint8Array(1)])).toThrow(/too many missing/);
  });
});

describe("bad input", () => {
  const k = 3, m = 2;
  const data = shardsOf(k, 64);
  const all = [...data, ...rsEncode(k, m, data)];

  function expectError(f: () => unknown, kind: typeof TypeError | typeof RangeError, message: RegExp): void {
    let caught: unknown;
    try {
      f();
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(kind);
    expect((caught as Error).message).toMatch(message);
  }

  test("k and m out of range", () => {
    expectError(() => rsEncode(0, 2, []), RangeError, /k must be an integer from 1 to 255, got 0/);
    expectError(() => rsEncode(200, 57, shardsOf(200, 1)), RangeError, /k \+ m must be at most 256, got 200 \+ 57 = 257/);
    expectError(() => rsEncode(1.5, 2, data), RangeError, /k must be an integer/);
    expectError(() => rsEncode(3, -1, data), RangeError, /m must be an integer/);
    expectError(() => rsEncode(NaN, 1, data), RangeError, /k must be an integer/);
    expectError(() => rsEncode("3" as unknown as number, 1, data), TypeError, /k must be a number, got string/);
  });

  test("wrong shard counts, lengths and kinds", () => {
    expectError(() => rsEncode(k, m, data.slice(1)), RangeError, /data has 2 entries, expected 3/);
    expectError(() => rsEncode(k, m, [data[0], data[1], data[2].subarray(1)]), RangeError, /data\[2\] has 63 bytes but data\[0\] has 64/);
    expectError(() => rsEncode(k, m, [data[0], "x" as unknown as Uint8Array, data[2]]), TypeError, /data\[1\] must be a Uint8Array or Buffer, got string/);
    expectError(() => rsEncode(k, m, [data[0], new Uint16Array(32) as unknown as Uint8Array, data[2]]), TypeError, /data\[1\]/);
    expectError(() => rsEncode(k, m, [data[0], null as unknown as Uint8Array, data[2]]), TypeError, /data\[1\].*got null/);
    expectError(() => rsEncode(k, m, "abc" as unknown as Uint8Array[]), TypeError, /data must be an Array, got string/);
    expectError(() => rsReconstruct(k, m, all.slice(0, 4)), RangeError, /shards has 4 entries, expected 5/);
    expectError(() => rsReconstruct(k, m, [null, null, null, all[3], all[4]]), RangeError, /too many missing shards: 3 missing, at most m = 2/);
    expectError(() => rsReconstruct(k, m, [null, all[1], all[2], all[3], all[4].subarray(2)]), RangeError, /shards\[4\] has 62 bytes but shards\[1\] has 64/);
    expectError(() => rsVerify(k, m, [all[0], all[1], null as unknown as Uint8Array, all[3], all[4]]), TypeError, /shards\[2\]/);
    expectError(() => rsEncode(k, m, data, { path: "mmx" as RsPath }), RangeError, /unknown path "mmx"/);
  });

  test("detached buffers", () => {
    const ab = new ArrayBuffer(64);
    const view = new Uint8Array(ab);
    structuredClone(ab, { transfer: [ab] });
    expectError(() => rsEncode(k, m, [data[0], view, data[2]]), TypeError, /data\[1\] is a view of a detached ArrayBuffer/);
    expectError(() => rsReconstruct(k, m, [null, all[1], all[2], all[3], view]), TypeError, /shards\[4\] is a view of a detached/);
  });
});

test("a huge sparse shard array is refused by its length, without reading it", () => {
  const sparse: Uint8Array[] = [];
  sparse.length = 2 ** 32 - 1;
  expect(() => rsEncode(3, 2, sparse)).toThrow(/data has 4294967295 entries, expected 3/);
  const five = Array.from({ length: 5 }, () => new Uint8Array(8));
  expect(() => rsReconstructInto(3, 2, five, sparse as unknown as number[])).toThrow(/missing has 4294967295 entries, expected 0 to 5/);
});
