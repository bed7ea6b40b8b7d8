// A write spanning blocks that must be fetched first, where one fetch fails: the request must not
// be answered (after which its payload's bytes are no longer promised to stay) while another
// segment still waits to copy from that payload.
import { afterAll, expect, test } from "bun:test";
import { rmSync } from "node:fs";
import { Payload } from "../../vdisk/nbd/payload.ts";
import { gatedVdisk, randomBytes, tempDir } from "./helpers.ts";

const BLOCK = 64 * 1024;
const dir = tempDir("vdisk-write-failure-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a write whose first block fails to fetch settles only after its other blocks took their bytes", async () => {
  // Two blocks of cache: after writing four and flushing, blocks 0 and 1 live only in the store.
  const { store, manager, vdisk } = await gatedVdisk(dir, "disk", { gate: { puts: false, gets: false }, blockSize: BLOCK, blocks: 8, cacheBlocks: 2 });
  const base = Array.from({ length: 4 }, (_, i) => randomBytes(BLOCK, 50 + i));
  for (let i = 0; i < 4; i++) await vdisk.write(Payload.of(base[i]), i * BLOCK, false);
  await vdisk.flush();

  // 4 KiB at the end of block 0 and 4 KiB at the start of block 1, both needing a fetch.
  const payload = new Uint8Array(8192).fill(0xaa);
  store.gate.gets = true;
  const write = Promise.resolve(vdisk.write(Payload.of(payload), BLOCK - 4096, false));
  // Once the request settles the payload's bytes may change: model that by overwriting them.
  const answered = write.then(
    () => payload.fill(0xbb),
    () => payload.fill(0xbb),
  );
  await store.waitingFor(2); // block 0's fetch, then block 1's
  store.waiting[0].fail(new Error("backend down"));
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
  store.gate.gets = false;
  store.waiting[1].finish();
  await expect(write).rejects.toThrow("backend down");
  await answered;

  const block1 = new Uint8Array(BLOCK);
  await vdisk.read(block1, BLOCK);
  const want = new Uint8Array(base[1]);
  want.fill(0xaa, 0, 4096); // the failed write may land in part, but only with its own bytes
  expect(Buffer.from(block1).equals(want)).toBe(true);
  await manager.close();
});
