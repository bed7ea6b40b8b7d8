// The chunk cache on its own: LRU eviction order, the byte bound, and surviving a restart.
import { afterAll, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ChunkCache } from "../../fuse-fs/cache.ts";

const dir = mkdtempSync(join(tmpdir(), "zflist-cache-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const name = (c: string) => c.repeat(64);
const chunk = (fill: number) => new Uint8Array(1000).fill(fill);

test("evicts the least recently used chunk first and keeps within the bound", async () => {
  const cache = new ChunkCache(join(dir, "a"), 3000);
  await cache.put(name("a"), chunk(1));
  await cache.put(name("b"), chunk(2));
  await cache.put(name("c"), chunk(3));
  expect(cache.get(name("a"))).toEqual(chunk(1)); // a is now the most recent
  await cache.put(name("d"), chunk(4));
  expect(cache.has(name("b"))).toBe(false);
  expect(existsSync(join(dir, "a", "bb", name("b")))).toBe(false);
  expect(existsSync(join(dir, "a", "dd", name("d")))).toBe(true);
  expect([name("a"), name("c"), name("d")].every((n) => cache.has(n))).toBe(true);
  expect(cache.bytes).toBe(3000);
});

test("a reopened cache finds its chunks and drops leftovers of an interrupted write", async () => {
  const root = join(dir, "b");
  const first = new ChunkCache(root, 10_000);
  await first.put(name("e"), chunk(5));
  mkdirSync(join(root, "ff"), { recursive: true });
  writeFileSync(join(root, "ff", `${name("f")}.123.0.tmp`), "torn");
  const again = new ChunkCache(root, 10_000);
  expect(again.get(name("e"))).toEqual(chunk(5));
  expect(again.count).toBe(1);
  expect(existsSync(join(root, "ff", `${name("f")}.123.0.tmp`))).toBe(false);
  // A smaller bound on reopen evicts down to it.
  expect(new ChunkCache(root, 500).count).toBe(0);
});

test("chunks in rfs's two-level layout, left by an older version, are moved into the one-level layout", () => {
  const root = join(dir, "legacy");
  mkdirSync(join(root, "aa", "aa"), { recursive: true });
  mkdirSync(join(root, "cc", "cc"), { recursive: true });
  writeFileSync(join(root, "aa", "aa", name("a")), chunk(1));
  writeFileSync(join(root, "cc", "cc", name("c")), chunk(3));
  writeFileSync(join(root, "cc", "cc", `${name("c")}.9.9.tmp`), "torn");
  writeFileSync(join(root, "cc", "cc", "a-stranger"), "kept");
  const cache = new ChunkCache(root, 10_000);
  expect(cache.count).toBe(2);
  expect(cache.bytes).toBe(2000);
  expect(cache.get(name("a"))).toEqual(chunk(1));
  expect(cache.get(name("c"))).toEqual(chunk(3));
  expect(existsSync(join(root, "aa", name("a")))).toBe(true);
  expect(existsSync(join(root, "aa", "aa"))).toBe(false);
  expect(existsSync(join(root, "cc", "cc", "a-stranger"))).toBe(true);
  expect(existsSync(join(root, "cc", "cc", `${name("c")}.9.9.tmp`))).toBe(false);
});

test("a cache size that is not positive is refused", () => {
  expect(() => new ChunkCache(join(dir, "c"), 0)).toThrow(/cache size must be positive/);
});
