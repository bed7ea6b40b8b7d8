// Erasure-coded placement, reads under failure, corruption and slowness, and repair, over dir
// backends (the zdb-backed 1 GiB run is in erasure-zdb.test.ts).
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Socket } from "node:net";
import { blake3 } from "../../native/index.ts";
import {
  ErasureStore, Placement, parseConfig, openConfiguredStore, repair, storeStatus, openBackend, putMany, StoreError, hex,
  type BlockBackend, type ErasureMember,
} from "../../store/index.ts";
import { openFrame, newFrame, sealFrame, framePayload } from "../../store/erasure/shard.ts";

// These tests start real processes; on a loaded 2-core machine that takes longer than Bun's 5 s default.
setDefaultTimeout(120_000);

const roots: string[] = [];
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), "zstore-ec-"));
  roots.push(r);
  return r;
}

const policy = { timeoutMs: 5000, retries: 0, retryDelayMs: 1 };

/** 3 groups x 2 dir backends, k=4 m=2, surviving the loss of a whole group. */
async function dirCluster(opts: { groups?: number; perGroup?: number } = {}) {
  const groups = opts.groups ?? 3, perGroup = opts.perGroup ?? 2;
  const members: ErasureMember[] = [];
  const dirs: string[][] = [];
  for (let g = 0; g < groups; g++) {
    dirs.push([]);
    for (let b = 0; b < perGroup; b++) {
      const root = tempRoot();
      dirs[g].push(root);
      members.push({ backend: await openBackend(`dir://${root}`), key: `g${g}b${b}`, group: g, groupName: `dc${g}` });
    }
  }
  const store = new ErasureStore(members, { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy, hedgeMs: 50 });
  return { store, members, dirs };
}

function block(i: number, size = 100_000 + i * 37): { id: Uint8Array; data: Uint8Array } {
  const data = new Uint8Array(size);
  let x = (i + 1) * 2654435761;
  for (let j = 0; j < size; j++) {
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    data[j] = x & 0xff;
  }
  return { id: blake3(data), data };
}

/** A backend whose every operation hangs until its signal aborts: accepts and never answers. */
class HangingBackend implements BlockBackend {
  readonly readOnly = false;
  constructor(readonly url: string) {}
  private hang<T>(signal?: AbortSignal): Promise<T> {
    return new Promise<T>((_, reject) => signal?.addEventListener("abort", () => reject(new StoreError("aborted", "aborted")), { once: true }));
  }
  has(_id: Uint8Array, o?: { signal?: AbortSignal }) { return this.hang<boolean>(o?.signal); }
  get(_id: Uint8Array, o?: { signal?: AbortSignal }) { return this.hang<Uint8Array | null>(o?.signal); }
  put(_id: Uint8Array, _d: Uint8Array, o?: { signal?: AbortSignal }) { return this.hang<void>(o?.signal); }
  delete(_id: Uint8Array, o?: { signal?: AbortSignal }) { return this.hang<void>(o?.signal); }
  async close() {}
}

async function rejection(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error("expected a rejection");
}

describe("placement", () => {
  const members = Array.from({ length: 6 }, (_, i) => ({ key: `b${i}`, group: Math.floor(i / 2) }));

  test("is a pure function of the id and the set, and respects the group cap", () => {
    const p = new Placement(members, 6, 2);
    const again = new Placement(members.slice(), 6, 2);
    for (let i = 0; i < 200; i++) {
      const id = block(i, 64).id;
      const t = p.targets(id);
      expect(t).toEqual(again.targets(id));
      expect(new Set(t).size).toBe(6);
      const perGroup = [0, 0, 0];
      for (const b of t) perGroup[members[b].group]++;
      expect(perGroup).toEqual([2, 2, 2]);
    }
  });

  test("spreads shards evenly and adding a backend moves only a fraction of them", () => {
    const big = Array.from({ length: 12 }, (_, i) => ({ key: `b${i}`, group: i % 3 }));
    const before = new Placement(big, 6, 2);
    const after = new Placement([...big, { key: "new", group: 0 }], 6, 2);
    const load = new Array(12).fill(0);
    let moved = 0, total = 0;
    for (let i = 0; i < 2000; i++) {
      const id = block(i, 32).id;
      const a = before.targets(id), b = after.targets(id);
      for (let s = 0; s < 6; s++) {
        load[a[s]]++;
        total++;
        if (big[a[s]].key !== ([...big, { key: "new", group: 0 }][b[s]]).key) moved++;
      }
    }
    // Ideal share per backend is 1000 shards; rehashing everything would move ~all of them.
    for (const l of load) expect(l).toBeGreaterThan(700);
    for (const l of load) expect(l).toBeLessThan(1300);
    expect(moved / total).toBeLessThan(0.25);
  });

  test("an impossible layout is a bad-config error that says why", () => {
    const few = members.slice(0, 5).map((m, i) => ({ backend: new HangingBackend(`x${i}`), key: m.key, group: m.group, groupName: "g" }));
    expect(() => new ErasureStore(few, { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy, hedgeMs: 50 })).toThrow(/can hold 5/);
  });
});

describe("shard frames", () => {
  test("a sealed frame opens; any change, a wrong id or a wrong length does not", () => {
    const id = block(1, 64).id;
    const frame = newFrame(2, 4, 2, 1000);
    framePayload(frame).fill(0xab);
    sealFrame(id, frame);
    expect(openFrame(id, frame)).toMatchObject({ index: 2, k: 4, m: 2, blockLength: 1000 });
    expect(openFrame(block(2, 64).id, frame)).toBe("shard checksum mismatch");
    for (const at of [0, 4, 6, 8, 20, frame.length - 1]) {
      const bad = frame.slice();
      bad[at] ^= 1;
      expect(typeof openFrame(id, bad)).toBe("string");
    }
    expect(openFrame(id, frame.subarray(0, frame.length - 1))).toBe("shard length does not match its header");
    expect(openFrame(id, new Uint8Array(10))).toContain("too short");
  });
});

describe("erasure-coded store over dir backends", () => {
  test("round trips blocks of many sizes, each backend holding one framed shard", async () => {
    const { store, dirs } = await dirCluster();
    for (const size of [0, 1, 3, 4, 5, 1000, 524288, 524291]) {
      const { id, data } = block(size, size);
      await store.put(id, data);
      expect(Buffer.compare((await store.get(id))!, data)).toBe(0);
      expect(await store.has(id)).toBe(true);
      const found = dirs.flat().filter((d) => readdirSync(d).includes(hex(id).slice(0, 2)));
      expect(found.length).toBe(6);
    }
    expect(await store.get(block(999).id)).toBeNull();
    expect(await store.has(block(999).id)).toBe(false);
    const listed: string[] = [];
    for await (const id of store.list()) listed.push(hex(id));
    expect(listed.sort()).toEqual([0, 1, 3, 4, 5, 1000, 524288, 524291].map((n) => hex(block(n, n).id)).sort());
  });

  test("reads survive losing any whole group, and any two backends", async () => {
    const { store, dirs } = await dirCluster();
    const blocks = Array.from({ length: 12 }, (_, i) => block(i));
    for (const b of blocks) await store.put(b.id, b.data);
    const all = dirs.flat();
    for (let x = 0; x < all.length; x++) {
      for (let y = x + 1; y < all.length; y++) {
        const moved = [all[x], all[y]].map((d) => { const away = d + ".away"; require("node:fs").renameSync(d, away); return [d, away]; });
        try {
          for (const b of blocks) expect(Buffer.compare((await store.get(b.id))!, b.data)).toBe(0);
        } finally {
          for (const [d, away] of moved) require("node:fs").renameSync(away, d);
        }
      }
    }
  });

  test("losing three backends across groups leaves too few shards: a typed error, not bad data", async () => {
    const { store, dirs } = await dirCluster();
    const b = block(1);
    await store.put(b.id, b.data);
    const targets = store.targets(b.id);
    for (const t of targets.slice(0, 3)) rmSync(join(dirs[Math.floor(t / 2)][t % 2], hex(b.id).slice(0, 2)), { recursive: true });
    const err = await rejection(store.get(b.id));
    expect(err.code).toBe("not-enough-shards");
  });

  test("corrupt shards are detected by their checksum and skipped; repair rewrites them", async () => {
    const { store, dirs } = await dirCluster();
    const blocks = Array.from({ length: 8 }, (_, i) => block(100 + i));
    for (const b of blocks) await store.put(b.id, b.data);
    const all = dirs.flat();
    const damaged: string[] = [];
    for (const b of blocks) {
      const t = store.targets(b.id);
      for (const s of [0, 4]) {
        const path = join(all[t[s]], hex(b.id).slice(0, 2), hex(b.id));
        const bytes = readFileSync(path);
        bytes[100] ^= 0xff;
        writeFileSync(path, bytes);
        damaged.push(path);
      }
    }
    for (const b of blocks) expect(Buffer.compare((await store.get(b.id))!, b.data)).toBe(0);
    const before = await storeStatus(store, { verify: true });
    expect(before.blocks.degraded).toBe(8);
    const report = await repair(store);
    expect(report).toMatchObject({ blocks: 8, degraded: 8, repaired: 8, shardsWritten: 16, unrecoverable: [] });
    for (const path of damaged) {
      const id = Buffer.from(path.split("/").pop()!, "hex");
      expect(typeof openFrame(id, readFileSync(path))).toBe("object");
    }
    expect((await repair(store)).healthy).toBe(8);
  });

  test("a backend that never answers costs the hedge delay, not the timeout; puts time out", async () => {
    const { members } = await dirCluster();
    const hanging = new HangingBackend("hang://0");
    const withSlow = [{ ...members[0], backend: hanging }, ...members.slice(1)];
    const store = new ErasureStore(withSlow, { k: 4, m: 2, groupLoss: 1, writeQuorum: 5, policy: { ...policy, timeoutMs: 400 }, hedgeMs: 20 });
    const b = block(7);
    await store.put(b.id, b.data); // quorum 5: the hanging shard times out, the rest land
    for (let i = 0; i < 3; i++) expect(Buffer.compare((await store.get(b.id, { timeoutMs: 60_000 }))!, b.data)).toBe(0);
    const strict = new ErasureStore(withSlow, { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy: { ...policy, timeoutMs: 300 }, hedgeMs: 20 });
    const err = await rejection(strict.put(block(8).id, block(8).data));
    expect(err.code).toBe("timeout");
  });

  test("writes at a quorum of 5 during an outage are completed by repair once the backend is back", async () => {
    const { members } = await dirCluster();
    const outage = [{ ...members[2], backend: new HangingBackend("hang://2") }, ...members.filter((_, i) => i !== 2)];
    const degraded = new ErasureStore(outage, { k: 4, m: 2, groupLoss: 1, writeQuorum: 5, policy: { ...policy, timeoutMs: 1000 }, hedgeMs: 10 });
    const blocks = Array.from({ length: 10 }, (_, i) => block(300 + i, 3000));
    for (const b of blocks) await degraded.put(b.id, b.data);
    const whole = new ErasureStore(members, degraded.options);
    const missing = blocks.filter((b) => whole.targets(b.id).includes(2)).length;
    expect(missing).toBeGreaterThan(0);
    const before = await repair(whole, { dryRun: true });
    expect(before.degraded).toBe(missing);
    const report = await repair(whole);
    expect(report).toMatchObject({ repaired: missing, shardsWritten: missing, stillDegraded: 0, unrecoverable: [] });
    expect((await repair(whole, { dryRun: true, verify: true })).healthy).toBe(blocks.length);
  });

  test("putMany stores every block and answers per block; a hanging backend fails them at the call's deadline", async () => {
    const { store, members } = await dirCluster();
    const blocks = Array.from({ length: 40 }, (_, i) => block(500 + i, 1000 + i * 997));
    expect(await store.putMany(blocks, { concurrency: 7 })).toEqual(blocks.map(() => null));
    for (const b of blocks) expect(Buffer.compare((await store.get(b.id))!, b.data)).toBe(0);

    const withHang = [{ ...members[0], backend: new HangingBackend("hang://0") }, ...members.slice(1)];
    const quorum5 = new ErasureStore(withHang, { k: 4, m: 2, groupLoss: 1, writeQuorum: 5, policy, hedgeMs: 10 });
    const more = Array.from({ length: 10 }, (_, i) => block(600 + i, 4000));
    expect(await quorum5.putMany(more)).toEqual(more.map(() => null));
    for (const b of more) expect(Buffer.compare((await store.get(b.id))!, b.data)).toBe(0);

    // Quorum 6 (every backend, the hanging one too) cannot be met: each block fails with
    // "timeout" at the call's deadline, naming its id.
    const strict = new ErasureStore(withHang, { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy, hedgeMs: 10 });
    const last = Array.from({ length: 10 }, (_, i) => block(700 + i, 4000));
    const results = await strict.putMany(last, { timeoutMs: 300, concurrency: 4 });
    last.forEach((b, i) => expect(results[i]).toMatchObject({ code: "timeout", context: { id: Buffer.from(b.id).toString("hex") } }));
    const aborted = new AbortController();
    aborted.abort();
    expect((await strict.putMany(last.slice(0, 2), { signal: aborted.signal })).map((r) => r?.code)).toEqual(["aborted", "aborted"]);
    await expect(strict.putMany([{ id: new Uint8Array(3), data: new Uint8Array(1) }])).rejects.toThrow(TypeError);
  });

  test("putMany on a plain backend puts each block; one that cannot be reached fails each with unavailable", async () => {
    const { members } = await dirCluster();
    const dir = members[0].backend;
    const blocks = Array.from({ length: 12 }, (_, i) => block(800 + i, 3000));
    expect(await putMany(dir, blocks, { concurrency: 5 })).toEqual(blocks.map(() => null));
    for (const b of blocks) expect(Buffer.compare((await dir.get(b.id))!, b.data)).toBe(0);
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    server.close();
    const gone = await openBackend(`zdb://127.0.0.1:${port}/ns?retries=0`);
    expect((await putMany(gone, blocks.slice(0, 3))).map((r) => r?.code)).toEqual(["unavailable", "unavailable", "unavailable"]);
    await gone.close();
  });

  test("a get whose shards all hang ends at its deadline; an abort ends it at once", async () => {
    const hanging = Array.from({ length: 6 }, (_, i) => ({ backend: new HangingBackend(`hang://${i}`), key: `h${i}`, group: Math.floor(i / 2), groupName: "g" }));
    const store = new ErasureStore(hanging, { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy: { ...policy, timeoutMs: 200 }, hedgeMs: 10 });
    expect((await rejection(store.get(block(1).id))).code).toBe("timeout");
    const controller = new AbortController();
    const pending = store.get(block(1).id, { signal: controller.signal, timeoutMs: 60_000 });
    controller.abort();
    expect((await rejection(pending)).code).toBe("aborted");
  });

  test("after a placement change reads find shards where they are; repair moves them and removes strays", async () => {
    const { store, members, dirs } = await dirCluster();
    const blocks = Array.from({ length: 20 }, (_, i) => block(200 + i, 5000));
    for (const b of blocks) await store.put(b.id, b.data);
    // Group 0 loses a backend and gains a new empty one.
    const fresh = tempRoot();
    const changed = [
      ...members.filter((m) => m.key !== "g0b0"),
      { backend: await openBackend(`dir://${fresh}`), key: "g0b2", group: 0, groupName: "dc0" },
    ];
    const next = new ErasureStore(changed, store.options);
    for (const b of blocks) expect(Buffer.compare((await next.get(b.id))!, b.data)).toBe(0);
    const report = await repair(next);
    expect(report.unrecoverable).toEqual([]);
    expect(report.stillDegraded).toBe(0);
    expect(report.repaired).toBeGreaterThan(0);
    // Now the replaced backend's old data is irrelevant: drop it and another whole group.
    rmSync(dirs[0][0], { recursive: true });
    for (const d of dirs[1]) rmSync(d, { recursive: true });
    for (const b of blocks) expect(Buffer.compare((await next.get(b.id))!, b.data)).toBe(0);
    const healthy = await repair(next, { dryRun: true });
    expect(healthy.degraded).toBe(20);
    expect(healthy.unrecoverable).toEqual([]);
  });
});

describe("config", () => {
  const good = {
    k: 4, m: 2, survive_group_loss: 1,
    groups: [
      { name: "dc1", backends: ["dir:///tmp/a", { url: "dir:///tmp/b", key: "b" }] },
      { name: "dc2", backends: ["dir:///tmp/c", "dir:///tmp/d"] },
      { name: "dc3", backends: ["dir:///tmp/e", "dir:///tmp/f"] },
    ],
    repair: { interval: "5m" },
  };

  test("a good config parses with defaults filled in", () => {
    const c = parseConfig(good);
    expect(c).toMatchObject({ k: 4, m: 2, surviveGroupLoss: 1, writeQuorum: 6, repair: { intervalMs: 300_000, concurrency: 4 } });
    expect(c.groups[0].backends[1]).toEqual({ url: "dir:///tmp/b", key: "b" });
  });

  test("bad configs name the key at fault", () => {
    const cases: [unknown, string][] = [
      [{ ...good, k: 0 }, "k: must be an integer"],
      [{ ...good, kk: 1 }, "kk: unknown key"],
      [{ ...good, m: "two" }, "m: must be an integer"],
      [{ ...good, groups: [] }, "groups: must be a non-empty list"],
      [{ ...good, groups: [{ name: "x", backends: ["s3://nope"] }] }, "groups[0].backends[0]: unknown store scheme"],
      [{ ...good, groups: [{ name: "x", backends: [{ url: "dir:///a", weight: 2 }] }] }, "groups[0].backends[0].weight: unknown key"],
      [{ ...good, repair: { interval: "often" } }, "repair.interval: must be a duration"],
      [{ ...good, write_quorum: 3 }, "write_quorum: must be an integer from 4 to 6"],
      [{ ...good, groups: [{ backends: ["dir:///a", "dir:///a"] }] }, "groups[0].backends[1]: backend dir:///a is listed twice"],
      [{ ...good, groups: [{ backends: ["zstore:///etc/other.yaml"] }] }, "groups[0].backends[0]: a member of an erasure-coded set must be"],
    ];
    for (const [doc, message] of cases) {
      let caught: unknown;
      try {
        parseConfig(doc, "zstore.yaml");
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(StoreError);
      expect((caught as StoreError).code).toBe("bad-config");
      expect((caught as StoreError).message).toContain(`zstore.yaml: ${message}`);
    }
  });

  test("a layout that cannot survive what it promises is refused when the store opens", async () => {
    const twoGroups = { ...good, groups: good.groups.slice(0, 2) };
    const err = await rejection(openConfiguredStore(parseConfig(twoGroups)));
    expect(err.code).toBe("bad-config");
    expect(err.message).toContain("at most 2 per group");
  });
});

describe("slow zdb backend", () => {
  test("a zdb server that accepts and never answers: reads give up at the deadline", async () => {
    const sockets: Socket[] = [];
    const server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const zdb = await openBackend(`zdb://127.0.0.1:${port}/ns?timeout=300&retries=0`);
      expect((await rejection(zdb.get(block(1).id))).code).toBe("timeout");
      await zdb.close();
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  test("an erasure-coded read with a silent zdb member finishes without waiting for it", async () => {
    const sockets: Socket[] = [];
    const server = createServer((s) => sockets.push(s));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    try {
      const { members } = await dirCluster();
      const b = block(11);
      await new ErasureStore(members, { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy, hedgeMs: 20 }).put(b.id, b.data);
      const target0 = new ErasureStore(members, { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy, hedgeMs: 20 }).targets(b.id)[0];
      // The member holding data shard 0 is replaced by a zdb server that never answers (deadline 60 s).
      const silent = { ...members[target0], backend: await openBackend(`zdb://127.0.0.1:${port}/ns?timeout=60000&retries=0`) };
      const store = new ErasureStore(members.map((m, i) => (i === target0 ? silent : m)), { k: 4, m: 2, groupLoss: 1, writeQuorum: 6, policy: { ...policy, timeoutMs: 2000 }, hedgeMs: 20 });
      expect(Buffer.compare((await store.get(b.id))!, b.data)).toBe(0);
      await silent.backend.close();
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  test("an unreachable zdb backend fails fast with unavailable", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const port = (server.address() as { port: number }).port;
    server.close();
    const zdb = await openBackend(`zdb://127.0.0.1:${port}/ns?retries=1&retry_delay=1`);
    expect((await rejection(zdb.get(block(1).id))).code).toBe("unavailable");
    await zdb.close();
  });
});
