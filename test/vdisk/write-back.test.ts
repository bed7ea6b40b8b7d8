// Write-back under pressure: started at half the cache at full concurrency, writers past 3/4 held
// until write-back brings dirty data under that mark, a failed write-back retried; and small
// writes to uncached blocks through a tiny cache, which must not evict each other's fetched blocks
// forever.
import { afterAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { Payload } from "../../vdisk/nbd/payload.ts";
import { gatedVdisk, randomBytes, tempDir } from "./helpers.ts";

const BLOCK = 64 * 1024;
const dir = tempDir("vdisk-writeback-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// 8 blocks of cache: write-back starts past 4 dirty blocks, writers are held past 6.
const setup = (name: string) => gatedVdisk(dir, name, { gate: { puts: true, gets: false }, blockSize: BLOCK, blocks: 64, cacheBlocks: 8 });

/** Settles p and reports whether it had settled after a few turns of the event loop. */
async function settledSoon(p: Promise<unknown>): Promise<boolean> {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  return settled;
}

test("write-back started by pressure stores blocks at full concurrency, and a held writer is released once a retried flush succeeds", async () => {
  const { store, manager, vdisk } = await setup("pressure");
  const data = Array.from({ length: 7 }, (_, i) => randomBytes(BLOCK, i + 1));
  for (let i = 0; i < 5; i++) await vdisk.write(Payload.of(data[i]), i * BLOCK, false);
  // The 5th dirty block started a write-back of all five at once (the periodic one would run 1/8 of putConcurrency).
  await store.waitingFor(5);
  await vdisk.write(Payload.of(data[5]), 5 * BLOCK, false);
  const seventh = Promise.resolve(vdisk.write(Payload.of(data[6]), 6 * BLOCK, false));
  expect(await settledSoon(seventh)).toBe(false); // 7 dirty blocks > 6: held
  for (const w of store.waiting.splice(0)) w.fail(new Error("backend down"));
  expect(await settledSoon(seventh)).toBe(false); // the failed write-back is retried by a flush it waits for
  store.gate.puts = false;
  for (const w of store.waiting.splice(0)) w.finish();
  await seventh;
  const back = new Uint8Array(7 * BLOCK);
  await vdisk.read(back, 0);
  expect(Buffer.from(back).equals(Buffer.concat(data))).toBe(true);
  expect((await manager.info("pressure")).allocatedBlocks).toBe(7);
  await manager.close();
});

test("a writer held at the high-water mark goes on once write-back has stored enough, while the rest of it is still in flight", async () => {
  // 32 blocks of cache: write-back starts past 16 dirty blocks (batches of 8), writers are held past 24.
  const { store, manager, vdisk } = await gatedVdisk(dir, "stream", { gate: { puts: true, gets: false }, blockSize: BLOCK, blocks: 64, cacheBlocks: 32 });
  const data = Array.from({ length: 25 }, (_, i) => randomBytes(BLOCK, 100 + i));
  for (let i = 0; i < 17; i++) await vdisk.write(Payload.of(data[i]), i * BLOCK, false);
  await store.waitingFor(17);
  for (let i = 17; i < 24; i++) await vdisk.write(Payload.of(data[i]), i * BLOCK, false);
  const held = Promise.resolve(vdisk.write(Payload.of(data[24]), 24 * BLOCK, false));
  expect(await settledSoon(held)).toBe(false);
  while (!(await settledSoon(held))) store.waiting.shift()!.finish();
  expect(store.waiting.length).toBeGreaterThan(0); // released with puts of that write-back still waiting
  store.gate.puts = false;
  for (const w of store.waiting.splice(0)) w.finish();
  await vdisk.flush();
  const back = new Uint8Array(25 * BLOCK);
  await vdisk.read(back, 0);
  expect(Buffer.from(back).equals(Buffer.concat(data))).toBe(true);
  expect((await manager.info("stream")).allocatedBlocks).toBe(25);
  await manager.close();
});

test("many small writes to uncached blocks through a cache far smaller than them all complete (no fetch/evict livelock)", async () => {
  const { store, manager, vdisk } = await setup("rmw");
  store.gate.puts = false;
  const base = Array.from({ length: 64 }, (_, i) => randomBytes(BLOCK, 100 + i));
  for (let i = 0; i < 64; i++) await vdisk.write(Payload.of(base[i]), i * BLOCK, false);
  await vdisk.flush(); // stored; the 8-block cache keeps only a few of them
  // 64 writes of 4 KiB at once, one into each block: each needs its block fetched first.
  const patch = randomBytes(4096, 7);
  await Promise.all(base.map((_, i) => vdisk.write(Payload.of(patch), i * BLOCK + 8192, false)));
  await vdisk.flush();
  for (let i = 0; i < 64; i++) {
    const want = new Uint8Array(base[i]);
    want.set(patch, 8192);
    const got = new Uint8Array(BLOCK);
    await vdisk.read(got, i * BLOCK);
    expect(Buffer.from(got).equals(want)).toBe(true);
  }
  await manager.close();
});

test("a flush whose batch had one put fail keeps the stored blocks; the next flush puts only the failed one", async () => {
  const { store, manager, vdisk } = await setup("partial");
  const data = Array.from({ length: 3 }, (_, i) => randomBytes(BLOCK, 50 + i));
  for (let i = 0; i < 3; i++) await vdisk.write(Payload.of(data[i]), i * BLOCK, false);
  const first = vdisk.flush();
  await store.waitingFor(3); // one batch: all three puts at once
  const [a, b, c] = store.waiting.splice(0);
  a.finish();
  b.fail(new Error("backend down"));
  c.finish();
  await expect(first).rejects.toThrow("backend down");
  expect(store.blocks.size).toBe(2);
  const second = vdisk.flush();
  await store.waitingFor(1);
  expect(await settledSoon(second)).toBe(false);
  expect(store.waiting.length).toBe(1); // the two stored blocks are clean
  store.gate.puts = false; // the map commit that follows is not held
  store.waiting.splice(0)[0].finish();
  await second;
  expect((await manager.info("partial")).allocatedBlocks).toBe(3);
  await manager.close();
});

test("evicted block buffers are reused for new writes, but never one whose views a reply still holds", async () => {
  const { store, manager, vdisk } = await setup("reuse");
  store.gate.puts = false;
  const data = Array.from({ length: 24 }, (_, i) => randomBytes(BLOCK, 200 + i));
  for (let i = 0; i < 8; i++) await vdisk.write(Payload.of(data[i]), i * BLOCK, false);
  await vdisk.flush();
  const views = vdisk.cachedViews(0, 2 * BLOCK)!; // what a large read sends straight from the cache
  expect(views).toHaveLength(2);
  for (let i = 8; i < 24; i++) {
    await vdisk.write(Payload.of(data[i]), i * BLOCK, false);
    await vdisk.flush(); // clean, so the next write evicts and reuses a buffer
  }
  expect(Buffer.from(views[0]).equals(data[0])).toBe(true);
  expect(Buffer.from(views[1]).equals(data[1])).toBe(true);
  for (let i = 0; i < 24; i++) {
    const got = new Uint8Array(BLOCK);
    await vdisk.read(got, i * BLOCK);
    expect(Buffer.from(got).equals(data[i])).toBe(true);
  }
  await manager.close();
});

test("a flush stops starting batches after one fails, so a dead store costs one timeout, not one per round of batches", async () => {
  // putConcurrency 8: one batch of 8 blocks at a time; 32 dirty blocks stay under the write-back mark.
  const { store, manager, vdisk } = await gatedVdisk(dir, "stop", { gate: { puts: true, gets: false }, blockSize: BLOCK, blocks: 64, cacheBlocks: 256, putConcurrency: 8 });
  for (let i = 0; i < 32; i++) await vdisk.write(Payload.of(randomBytes(BLOCK, 300 + i)), i * BLOCK, false);
  const flush = vdisk.flush();
  let settled = false;
  flush.then(
    () => (settled = true),
    () => (settled = true),
  );
  await store.waitingFor(8);
  for (const w of store.waiting.splice(0)) w.fail(new Error("backend down"));
  // Either the flush gives up, or (the old way) the next batch's puts start.
  while (!settled && store.waiting.length === 0) await Bun.sleep(2);
  expect(store.waiting.length).toBe(0);
  await expect(flush).rejects.toThrow("backend down");
  expect(vdisk.dirtyBlocks).toBe(32);
  store.gate.puts = false;
  await vdisk.flush();
  expect(vdisk.dirtyBlocks).toBe(0);
  expect((await manager.info("stop")).allocatedBlocks).toBe(32);
  await manager.close();
});
