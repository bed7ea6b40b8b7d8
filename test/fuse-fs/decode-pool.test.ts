// The decode pool on its own: blocks given in pieces decode on the workers, each answer is that
// block's own bytes while the lent buffers are reused, the worker writes the block to its cache
// target, and a corrupt block is refused without leaving anything in the cache.
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChunkCache } from "../../fuse-fs/cache.ts";
import { DecodePool } from "../../fuse-fs/decode-pool.ts";
import { encodeBlock, hex, StoreError } from "../../store/index.ts";

const dir = mkdtempSync(join(tmpdir(), "zflist-decode-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Splits bytes into n pieces of unequal sizes, as shards or socket chunks come. */
function pieces(data: Uint8Array, n: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let at = 0;
  for (let i = 1; i < n; i++) {
    const end = Math.floor((data.length * i * i) / (n * n));
    out.push(data.subarray(at, end));
    at = end;
  }
  out.push(data.subarray(at));
  return out;
}

test("blocks in pieces decode to their own bytes, many in flight over reused buffers, and land in the cache", async () => {
  const pool = new DecodePool(2);
  const cache = new ChunkCache(join(dir, "cache"), 64 * 1024 * 1024);
  // Sizes around the lent buffers' 64 KiB steps, an empty block, and a compressible one.
  const plains = [512 * 1024, 65536, 65537, 0, 1, 300_000, 512 * 1024].map((n) => crypto.getRandomValues(new Uint8Array(n)));
  plains.push(new Uint8Array(512 * 1024).fill(7));
  for (let round = 0; round < 3; round++) {
    const blocks = plains.map((p) => ({ plain: p, block: encodeBlock(p) }));
    const answers = await Promise.all(
      blocks.map(({ block }, i) => {
        const name = hex(block.id);
        const target = round === 0 ? cache.reserve(name, block.data.length) : null;
        return pool.decode(block, pieces(block.data, 1 + (i % 4)), target).then((d) => {
          if (target) cache.settle(name, block.data.length, d.cached ? d.plain.length : null);
          return d;
        });
      }),
    );
    answers.forEach((a, i) => {
      expect(Buffer.compare(a.plain, plains[i])).toBe(0);
      expect(a.cached).toBe(round === 0);
    });
  }
  await cache.flush();
  for (const p of plains) {
    const name = hex(encodeBlock(p).id);
    expect(Buffer.compare(cache.get(name)!, p)).toBe(0);
  }
  expect(cache.count).toBe(plains.length);
  expect(cache.bytes).toBe(plains.reduce((n, p) => n + p.length, 0));
});

test("a block whose bytes were altered is refused as corrupt and written nowhere", async () => {
  const pool = new DecodePool(1);
  const cache = new ChunkCache(join(dir, "corrupt"), 64 * 1024 * 1024);
  const block = encodeBlock(crypto.getRandomValues(new Uint8Array(200_000)));
  const altered = block.data.slice();
  altered[1000] ^= 1;
  const name = hex(block.id);
  const target = cache.reserve(name, altered.length)!;
  const err = await pool.decode(block, pieces(altered, 3), target).catch((e) => e);
  cache.settle(name, altered.length, null);
  expect(err).toBeInstanceOf(StoreError);
  expect((err as StoreError).code).toBe("corrupt");
  expect((err as StoreError).context.id).toBe(name);
  expect(existsSync(target.path)).toBe(false);
  expect(readdirSync(join(dir, "corrupt"))).toEqual([]);
  expect(cache.bytes).toBe(0);
  // The pool goes on decoding good blocks with the buffer the failed one returned.
  const good = encodeBlock(new Uint8Array(100).fill(1));
  expect(Buffer.compare((await pool.decode(good, [good.data])).plain, new Uint8Array(100).fill(1))).toBe(0);
});

test("the buffers lent for a burst of blocks are let go once decoding has been idle a while", async () => {
  const pool = new DecodePool(2);
  const blocks = [1, 2, 3, 4].map((n) => encodeBlock(new Uint8Array(300_000).fill(n)));
  await Promise.all(blocks.map((b) => pool.decode(b, [b.data])));
  expect(pool.spareBuffers).toBe(4);
  await Bun.sleep(2500);
  expect(pool.spareBuffers).toBe(0);
});

test("blocks that may wait for a batch are decoded even when no others follow", async () => {
  const pool = new DecodePool(2);
  const blocks = [1, 2, 3, 4, 5, 6].map((n) => encodeBlock(new Uint8Array(1000).fill(n)));
  // One lone block and then a run of five that never fills a second batch of four.
  const lone = await pool.decode(blocks[0], [blocks[0].data], null, true);
  expect(lone.plain).toEqual(new Uint8Array(1000).fill(1));
  const rest = await Promise.all(blocks.slice(1).map((b) => pool.decode(b, [b.data], null, true)));
  rest.forEach((r, i) => expect(r.plain).toEqual(new Uint8Array(1000).fill(i + 2)));
});
