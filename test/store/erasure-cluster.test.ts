// The 3-datacenter acceptance run over real zdb server processes on loopback: 3 groups x 2 zdb
// backends, k=4 m=2, surviving a whole group. 1 GiB of random 512 KiB blocks is written, a group is
// killed (kill -9), everything reads back byte-exact; shard bytes are corrupted inside the servers'
// data files, reads still succeed and repair rewrites them; empty replacement backends join, repair
// fills them, a different group is killed and everything still reads back.
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { readdirSync, readFileSync, writeFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { blake3 } from "../../native/index.ts";
import { ErasureStore, openBackend, repair, storeStatus, type ErasureMember } from "../../store/index.ts";
import { ZdbProcess } from "./cluster.ts";

// These tests start real processes; on a loaded 2-core machine that takes longer than Bun's 5 s default.
setDefaultTimeout(120_000);

const BLOCK = 512 * 1024;
const BLOCKS = 2048; // 1 GiB
const NS = "blocks";
const options = { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy: { timeoutMs: 60_000, retries: 1, retryDelayMs: 20 }, hedgeMs: 200 };

/** Block i: xorshift128 stream seeded by i, cheap to make twice (once to write, once to compare). */
function blockData(i: number): Uint8Array {
  const words = new Uint32Array(BLOCK / 4);
  let a = 0x9e3779b9 ^ i, b = 0x243f6a88 + i, c = 0xb7e15162, d = i * 2654435761;
  for (let j = 0; j < words.length; j++) {
    let t = a ^ (a << 11);
    a = b; b = c; c = d;
    d = (d ^ (d >>> 19) ^ t ^ (t >>> 8)) >>> 0;
    words[j] = d;
  }
  return new Uint8Array(words.buffer);
}

const zdbs: ZdbProcess[] = [];
async function zdbGroup(g: number, name: string, tag: string): Promise<{ procs: ZdbProcess[]; members: ErasureMember[] }> {
  const procs = await Promise.all([0, 1].map(() => ZdbProcess.start({ namespace: NS })));
  zdbs.push(...procs);
  const members = await Promise.all(
    procs.map(async (p, i) => ({ backend: await openBackend(p.url(NS, "?timeout=15000&retries=1")), key: `${tag}-${i}`, group: g, groupName: name })),
  );
  return { procs, members };
}

async function forEachBlock(parallel: number, work: (i: number) => Promise<void>) {
  let next = 0;
  await Promise.all(Array.from({ length: parallel }, async () => {
    while (next < BLOCKS) await work(next++);
  }));
}

const ids: Uint8Array[] = [];
async function readAllBack(store: ErasureStore) {
  let mismatches = 0;
  await forEachBlock(16, async (i) => {
    const got = await store.get(ids[i]);
    if (!got || Buffer.compare(got, blockData(i)) !== 0) mismatches++;
  });
  expect(mismatches).toBe(0);
}

/** Flips a payload byte in up to `limit` shard frames found in a zdb data directory; returns how many. */
function corruptShardsIn(dir: string, limit: number): number {
  let flipped = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const path = join(d, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (flipped < limit && statSync(path).size > 1024 * 1024) {
        const bytes = readFileSync(path);
        for (let at = bytes.indexOf("ZSH1"); at >= 0 && flipped < limit; at = bytes.indexOf("ZSH1", at + 4)) {
          bytes[at + 16 + 1000] ^= 0x5a; // inside the payload: only the shard checksum can notice
          flipped++;
        }
        writeFileSync(path, bytes);
      }
    }
  };
  walk(dir);
  return flipped;
}

describe("3 datacenters x 2 zdb, k=4 m=2, 1 GiB", () => {
  let groups: { procs: ZdbProcess[]; members: ErasureMember[] }[] = [];
  let store: ErasureStore;
  const stores: ErasureStore[] = [];

  beforeAll(async () => {
    groups = await Promise.all([0, 1, 2].map((g) => zdbGroup(g, `dc${g}`, `dc${g}`)));
    store = new ErasureStore(groups.flatMap((g) => g.members), options);
    stores.push(store);
  });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
    await Promise.all(zdbs.map((z) => z.destroy()));
  });

  test("writes 1 GiB of random blocks", async () => {
    await forEachBlock(16, async (i) => {
      const data = blockData(i);
      ids[i] = blake3(data);
      await store.put(ids[i], data);
    });
    const s = await storeStatus(store);
    expect(s.blocks.blocks).toBe(BLOCKS);
    expect(s.blocks.degraded).toBe(0);
  }, 600_000);

  test("kill -9 a whole datacenter: everything reads back byte-exact", async () => {
    await Promise.all(groups[0].procs.map((p) => p.kill()));
    await readAllBack(store);
    const s = await storeStatus(store);
    expect(s.backends.filter((b) => !b.healthy).map((b) => b.group)).toEqual(["dc0", "dc0"]);
    expect(s.blocks.degraded).toBe(BLOCKS);
  }, 600_000);

  test("the datacenter comes back on new ports; placement keys keep every shard where it was", async () => {
    const back = await Promise.all(groups[0].procs.map((p) => ZdbProcess.start({ dataDir: p.dataDir })));
    zdbs.push(...back);
    groups[0] = {
      procs: back,
      members: await Promise.all(back.map(async (p, i) => ({ ...groups[0].members[i], backend: await openBackend(p.url(NS, "?timeout=15000&retries=1")) }))),
    };
    store = new ErasureStore(groups.flatMap((g) => g.members), options);
    stores.push(store);
    const s = await storeStatus(store, { verify: true });
    expect(s.backends.every((b) => b.healthy)).toBe(true);
    expect(s.blocks).toMatchObject({ blocks: BLOCKS, degraded: 0, misplaced: 0 });
  }, 600_000);

  test("corrupt shards on disk: reads still succeed and repair rewrites them", async () => {
    const victim = groups[1].members[0];
    const flipped = corruptShardsIn(groups[1].procs[0].dataDir, 40);
    expect(flipped).toBe(40);
    await readAllBack(store);
    const report = await repair(store);
    expect(report).toMatchObject({ blocks: BLOCKS, degraded: flipped, repaired: flipped, shardsWritten: flipped, stillDegraded: 0, unrecoverable: [] });
    const bad: string[] = [];
    await forEachBlock(16, async (i) => {
      const p = await store.probe(ids[i], store.members.indexOf(victim));
      if (p.state !== "ok" && p.state !== "missing") bad.push(p.state);
    });
    expect(bad).toEqual([]);
    expect((await repair(store, { dryRun: true })).healthy).toBe(BLOCKS);
  }, 600_000);

  test("an empty replacement backend joins, repair fills it, then another datacenter can be lost", async () => {
    await groups[0].procs[0].kill();
    const fresh = await ZdbProcess.start({ namespace: NS });
    zdbs.push(fresh);
    const replacement: ErasureMember = { backend: await openBackend(fresh.url(NS, "?timeout=15000&retries=1")), key: "dc0-new", group: 0, groupName: "dc0" };
    const next = new ErasureStore([replacement, groups[0].members[1], ...groups[1].members, ...groups[2].members], options);
    stores.push(next);
    const report = await repair(next);
    expect(report.unrecoverable).toEqual([]);
    expect(report.stillDegraded).toBe(0);
    expect(report.repaired).toBeGreaterThan(BLOCKS / 4);
    expect((await storeStatus(next)).blocks.degraded).toBe(0);
    await Promise.all(groups[1].procs.map((p) => p.kill()));
    await readAllBack(next);
  }, 900_000);
});
