// The vdisk model over a real store (dir backend), served by the NBD server and driven by real
// clients: qemu-img, qemu-io, nbdcopy, nbdinfo, fio. Crash recovery runs `zvdisk serve` as a
// separate process and kills it with SIGKILL.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { readdirSync, statSync } from "node:fs";
import { rm } from "node:fs/promises";
import { createHash } from "node:crypto";
import { NbdServer } from "../../vdisk/nbd/server.ts";
import { VdiskManager } from "../../vdisk/model/manager.ts";
import { openCatalog } from "../../vdisk/model/catalog.ts";
import { VdiskError } from "../../vdisk/model/errors.ts";
import { Payload } from "../../vdisk/nbd/payload.ts";
import { hex, openBackend } from "../../store/index.ts";
import { blake2b256, blake3 } from "../../native/index.ts";
import { ZdbClient } from "../../store/zdb/client.ts";
import { ZdbProcess } from "../store/cluster.ts";
import { RawClient, makeSparseImage, mustRun, randomBytes, run, tempDir } from "./helpers.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const bun = process.execPath;
const cli = join(import.meta.dir, "../../vdisk/cli.ts");

let dir: string;
beforeAll(() => {
  dir = tempDir("vdisk-test-");
});
// Tens of thousands of small block files: give the removal time on a busy machine.
afterAll(() => rm(dir, { recursive: true, force: true }), 120_000);

/** Files (blocks) under a dir:// store root. */
function blockCount(root: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (!name.startsWith(".")) n++;
    }
  };
  try {
    walk(root);
  } catch {
    return 0;
  }
  return n;
}

interface Setup {
  manager: VdiskManager;
  server: NbdServer;
  port: number;
  storeRoot: string;
  uri: (name: string) => string;
  close: () => Promise<void>;
}

async function setup(name: string, opts: { cacheBytes?: number } = {}): Promise<Setup> {
  const storeRoot = join(dir, name, "blocks");
  const store = await openBackend(`dir://${storeRoot}`);
  const catalog = await openCatalog(`dir://${join(dir, name, "catalog")}`);
  const manager = new VdiskManager({ store, catalog, cacheBytes: opts.cacheBytes ?? 64 * MiB, writebackIntervalMs: 0, log: () => {} });
  const server = new NbdServer({ log: () => {} });
  const addr = server.listen({ host: "127.0.0.1", port: 0 });
  const port = "port" in addr ? addr.port : 0;
  return {
    manager,
    server,
    port,
    storeRoot,
    uri: (n) => `nbd://127.0.0.1:${port}/${n}`,
    close: async () => {
      server.close();
      await manager.close();
    },
  };
}

async function serve(s: Setup, name: string): Promise<void> {
  s.server.addExport(await s.manager.openVdisk(name));
}

// Write-back mode, so only the explicit "flush" commands send NBD FLUSH (qemu-io defaults to writethrough).
const qemuIo = (uri: string, ...cmds: string[]) => mustRun(["qemu-io", "-f", "raw", "-t", "writeback", ...cmds.flatMap((c) => ["-c", c]), uri]);
const qemuIoRead = (uri: string, ...cmds: string[]) => mustRun(["qemu-io", "-f", "raw", "-r", ...cmds.flatMap((c) => ["-c", c]), uri]);

describe("real clients against a vdisk", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup("clients");
    await s.manager.create("big", GiB, { blockSize: 64 * 1024 });
    await s.manager.create("small", 64 * MiB);
    await serve(s, "big");
    await serve(s, "small");
  });
  afterAll(() => s.close(), 60_000);

  test("nbdinfo --json shows the vdisk's size, block sizes, flags and base:allocation", async () => {
    const e = JSON.parse(await mustRun(["nbdinfo", "--json", s.uri("big")])).exports[0];
    expect(e["export-size"]).toBe(GiB);
    expect([e.block_size_minimum, e.block_size_preferred, e.block_size_maximum]).toEqual([512, 65536, 32 * MiB]);
    expect(e.contexts).toEqual(["base:allocation"]);
    expect(e).toMatchObject({ can_flush: true, can_fua: true, can_trim: true, can_zero: true, can_multi_conn: true, is_read_only: false });
    const list = JSON.parse(await mustRun(["nbdinfo", "--json", "--list", `nbd://127.0.0.1:${s.port}`]));
    expect(list.exports.map((x: { "export-name": string }) => x["export-name"]).sort()).toEqual(["big", "small"]);
  });

  test("qemu-img convert a sparse 1 GiB image in, compare it back, map shows the holes; nothing stored for holes", async () => {
    const img = join(dir, "clients.raw");
    const extents: [number, number][] = [[0, 64 * 1024], [3 * MiB + 4096, 200 * 1024], [700 * MiB, 2 * MiB], [GiB - 64 * 1024, 64 * 1024]];
    makeSparseImage(img, GiB, extents, 21);
    await mustRun(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", img, s.uri("big")]);
    const cmp = await run(["qemu-img", "compare", "-f", "raw", "-F", "raw", img, s.uri("big")]);
    expect(cmp.stdout).toContain("Images are identical");
    const map = JSON.parse(await mustRun(["qemu-img", "map", "--output=json", "-f", "raw", s.uri("big")])) as { start: number; length: number; data: boolean }[];
    const dataBytes = map.filter((m) => m.data).reduce((n, m) => n + m.length, 0);
    for (const [off, len] of extents) expect(map.some((m) => m.data && m.start <= off && off + len <= m.start + m.length)).toBe(true);
    expect(dataBytes).toBe((1 + 4 + 32 + 1) * 64 * 1024); // the 64 KiB blocks the extents touch
    // 38 data blocks, at most a few map pages and a root: holes cost nothing.
    const info = await s.manager.info("big");
    expect(info.allocatedBlocks).toBe(38);
    expect(blockCount(s.storeRoot)).toBeLessThan(38 + 8);
  }, 120_000);

  test("nbdcopy both ways", async () => {
    const img = join(dir, "copy.raw");
    const back = join(dir, "copy-back.raw");
    makeSparseImage(img, 64 * MiB, [[1000, 100_000], [50 * MiB, 3 * MiB]], 5);
    await mustRun(["nbdcopy", "--flush", img, s.uri("small")]);
    await mustRun(["nbdcopy", s.uri("small"), back]);
    expect(createHash("sha256").update(await Bun.file(back).bytes()).digest("hex")).toBe(createHash("sha256").update(await Bun.file(img).bytes()).digest("hex"));
  });

  test("large reads sent straight from the cache: pipelined 1 MiB reads over data, holes and block edges, beyond what the socket holds, come back whole", async () => {
    await s.manager.create("views", 16 * MiB);
    await serve(s, "views");
    const model = new Uint8Array(16 * MiB);
    const c = await RawClient.connect(s.port);
    await c.handshake("views");
    const a = randomBytes(3 * MiB, 31);
    const b = randomBytes(3 * MiB, 32);
    c.request(1, 0, a.length, { cookie: 1, payload: a });
    c.request(1, 5 * MiB + 12_345, b.length, { cookie: 2, payload: b });
    model.set(a, 0);
    model.set(b, 5 * MiB + 12_345);
    for (let i = 0; i < 2; i++) expect((await c.simpleReply())?.error).toBe(0);
    // 48 reads of 1 MiB + 4 KiB (about 50 MiB, far more than a socket buffer), sent without reading.
    const LEN = MiB + 4096;
    const offsets = Array.from({ length: 48 }, (_, i) => (i * 777_777) % (16 * MiB - LEN));
    offsets.forEach((off, i) => c.request(0, off, LEN, { cookie: 100 + i }));
    for (let i = 0; i < offsets.length; i++) {
      const r = await c.simpleReply(LEN);
      expect(r?.error).toBe(0);
      const off = offsets[r!.cookie - 100];
      expect(Buffer.from(r!.data!).equals(model.subarray(off, off + LEN))).toBe(true);
    }
    c.destroy();
  });

  test("fio random writes verified with crc32c, queue depth 32, four connections, through a 4 MiB cache", async () => {
    const t = await setup("fio", { cacheBytes: 4 * MiB });
    try {
      await t.manager.create("f", 64 * MiB);
      await serve(t, "f");
      const out = await mustRun([
        "fio", "--name=verify", "--ioengine=nbd", `--uri=${t.uri("f")}`, "--rw=randwrite", "--bs=4k", "--iodepth=32",
        "--numjobs=4", "--size=8M", "--offset_increment=16M", "--verify=crc32c", "--verify_state_save=0", "--do_verify=1", "--verify_fatal=1", "--output-format=json",
      ], { timeoutMs: 300_000 });
      const jobs = JSON.parse(out.slice(out.indexOf("{"))).jobs as { error: number; read: { total_ios: number } }[];
      expect(jobs).toHaveLength(4);
      for (const j of jobs) {
        expect(j.error).toBe(0);
        expect(j.read.total_ios).toBe(2048);
      }
    } finally {
      await t.close();
    }
  }, 300_000);
});

describe("snapshots, clones, dedup, reclamation", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup("model");
  });
  afterAll(() => s.close(), 60_000);

  test("identical blocks are stored once", async () => {
    await s.manager.create("dedup", 64 * MiB);
    await serve(s, "dedup");
    const before = blockCount(s.storeRoot);
    const cmds = Array.from({ length: 50 }, (_, i) => `write -P 0x5a ${i * 1024 * 1024} 64k`);
    await qemuIo(s.uri("dedup"), ...cmds, "flush");
    // One data block, one map page, one root.
    expect(blockCount(s.storeRoot) - before).toBe(3);
    expect((await s.manager.info("dedup")).allocatedBlocks).toBe(50);
  });

  test("a snapshot keeps the old bytes after the vdisk is overwritten; a clone diverges without touching its parent", async () => {
    await s.manager.create("base", 16 * MiB);
    await serve(s, "base");
    await qemuIo(s.uri("base"), "write -P 0x11 0 1M", "write -P 0x12 8M 100k", "flush");
    await s.manager.snapshot("base", "s1");
    s.server.addExport(await s.manager.openVdisk("base@s1"));
    await qemuIo(s.uri("base"), "write -P 0x22 0 1M", "write -z 8M 100k", "flush");
    await qemuIoRead(s.uri("base@s1"), "read -P 0x11 0 1M", "read -P 0x12 8M 100k");
    await qemuIo(s.uri("base"), "read -P 0x22 0 1M", "read -P 0 8M 100k");
    // The snapshot is read-only.
    const refused = await run(["qemu-io", "-f", "raw", "-c", "write -P 1 0 4k", s.uri("base@s1")]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("Permission denied"); // qemu sees NBD_FLAG_READ_ONLY

    await s.manager.clone("base@s1", "c1");
    await serve(s, "c1");
    await qemuIo(s.uri("c1"), "read -P 0x11 0 1M", "write -P 0x33 512k 4k", "flush");
    await qemuIo(s.uri("c1"), "read -P 0x33 512k 4k", "read -P 0x11 0 512k");
    await qemuIoRead(s.uri("base@s1"), "read -P 0x11 0 1M");
    await qemuIo(s.uri("base"), "read -P 0x22 0 1M");
    expect((await s.manager.get("c1"))?.origin).toBe("base@s1");
  });

  test("new vdisks hash their blocks with BLAKE3; a record from before blockHash existed keeps BLAKE2b, as do its snapshots and clones", async () => {
    await s.manager.create("b3", 4 * MiB);
    // As a record written before the field existed: no blockHash.
    const { blockHash: _, ...old } = await s.manager.create("b2", 4 * MiB);
    const catalog = await openCatalog(`dir://${join(dir, "model", "catalog")}`);
    const raw = async (name: string) => JSON.parse(new TextDecoder().decode((await catalog.get(`disk/${name}`))!));
    // Format 2 names the hash, so a server that predates it refuses the record instead of misreading it.
    expect(await raw("b3")).toMatchObject({ format: 2, blockHash: "blake3" });
    await catalog.put("disk/b2", new TextEncoder().encode(JSON.stringify({ ...old, format: 1 })));
    expect((await s.manager.get("b3"))?.blockHash).toBe("blake3");
    expect((await s.manager.get("b2"))?.blockHash).toBe("blake2b");
    for (const bad of [{ format: 1, blockHash: "blake3" }, { format: 2 }]) {
      await catalog.put("disk/bad", new TextEncoder().encode(JSON.stringify({ ...old, name: "bad", ...bad })));
      await expect(s.manager.get("bad")).rejects.toMatchObject({ code: "corrupt" });
    }
    await catalog.delete("disk/bad");
    for (const name of ["b3", "b2"]) {
      await serve(s, name);
      await qemuIo(s.uri(name), "write -P 0x6b 0 64k", "write -P 0x6c 1M 64k", "flush");
    }
    const store = await openBackend(`dir://${s.storeRoot}`);
    const hashes = async (name: string) => {
      const out = new Set<string>();
      for (const ref of (await s.manager.openVdisk(name)).references()) {
        const data = (await store.get(ref.id))!;
        const id = hex(ref.id);
        out.add(id === hex(blake3(data)) ? "blake3" : id === hex(blake2b256(data)) ? "blake2b" : "neither");
      }
      return [...out];
    };
    expect(await hashes("b3")).toEqual(["blake3"]);
    expect(await hashes("b2")).toEqual(["blake2b"]);
    await s.manager.snapshot("b2", "s");
    await s.manager.clone("b2@s", "b2c");
    expect((await s.manager.get("b2@s"))?.blockHash).toBe("blake2b");
    expect((await s.manager.get("b2c"))?.blockHash).toBe("blake2b");
    // A fresh manager (empty cache) reads each through the store with the hash its record names.
    const fresh = new VdiskManager({ store, catalog, cacheBytes: 4 * MiB, writebackIntervalMs: 0, log: () => {} });
    const server = new NbdServer({ log: () => {} });
    const addr = server.listen({ host: "127.0.0.1", port: 0 });
    try {
      for (const name of ["b3", "b2", "b2c"]) {
        server.addExport(await fresh.openVdisk(name));
        await qemuIoRead(`nbd://127.0.0.1:${"port" in addr ? addr.port : 0}/${name}`, "read -P 0x6b 0 64k", "read -P 0x6c 1M 64k", "read -P 0 64k 960k");
      }
    } finally {
      server.close();
      await fresh.close();
      await store.close();
      await catalog.close();
    }
  });

  test("delete frees only blocks nothing else references", async () => {
    const t = await setup("reclaim");
    try {
      await t.manager.create("a", 8 * MiB, { blockSize: 64 * 1024 });
      await serve(t, "a");
      await qemuIo(t.uri("a"), "write -P 0x41 0 1M", "flush");
      await t.manager.snapshot("a", "keep");
      await qemuIo(t.uri("a"), "write -P 0x42 1M 1M", "flush");
      t.server.removeExport("a");
      await t.manager.closeVdisk("a");
      await expect(t.manager.delete("a@nope")).rejects.toBeInstanceOf(VdiskError);
      // The snapshot still uses the 0x41 block and its map: only a's own blocks go.
      const report = await t.manager.delete("a");
      expect(report.deleted).toBeGreaterThan(0);
      expect(report.kept).toBeGreaterThan(0);
      t.server.addExport(await t.manager.openVdisk("a@keep"));
      await qemuIoRead(t.uri("a@keep"), "read -P 0x41 0 1M", "read -P 0 1M 1M");
      t.server.removeExport("a@keep");
      await t.manager.closeVdisk("a@keep");
      await t.manager.delete("a@keep");
      expect(blockCount(t.storeRoot)).toBe(0);
    } finally {
      await t.close();
    }
  });

  test("overwritten blocks are reclaimed by gc unless a snapshot holds them", async () => {
    const t = await setup("gc");
    try {
      await t.manager.create("g", 8 * MiB, { blockSize: 64 * 1024 });
      await serve(t, "g");
      await qemuIo(t.uri("g"), "write -P 1 0 64k", "write -P 2 64k 64k", "flush");
      await t.manager.snapshot("g", "s");
      await qemuIo(t.uri("g"), "write -P 3 0 64k", "flush", "write -P 4 64k 64k", "flush");
      const g = await t.manager.gc();
      expect(g.deleted).toBeGreaterThan(0); // old map pages and roots
      t.server.addExport(await t.manager.openVdisk("g@s"));
      await qemuIoRead(t.uri("g@s"), "read -P 1 0 64k", "read -P 2 64k 64k");
      await qemuIo(t.uri("g"), "read -P 3 0 64k", "read -P 4 64k 64k");
      // live: 2 data + page + root of g; 2 data + page + root of the snapshot
      expect(blockCount(t.storeRoot)).toBe(8);
    } finally {
      await t.close();
    }
  });

  test("WRITE_ZEROES and TRIM turn whole blocks into holes; FAST_ZERO refuses a partial block that needs a fetch", async () => {
    await s.manager.create("z", 4 * MiB, { blockSize: 64 * 1024 });
    await serve(s, "z");
    await qemuIo(s.uri("z"), "write -P 9 0 1M", "flush");
    // Drop the cache so block 1 must come from the store.
    s.server.removeExport("z");
    await s.manager.closeVdisk("z");
    await serve(s, "z");
    const c = await RawClient.connect(s.port);
    await c.handshake("z");
    c.request(6, 65536 + 512, 1024, { flags: 1 << 4, cookie: 1 }); // FAST_ZERO inside an uncached block
    expect(await c.simpleReply()).toMatchObject({ error: 95, cookie: 1 });
    c.request(6, 0, 65536, { flags: 1 << 4, cookie: 2 }); // a whole block is a map edit: fast
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 2 });
    c.request(4, 2 * 65536, 2 * 65536, { cookie: 3 }); // TRIM two blocks
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 3 });
    c.request(6, 65536 + 512, 1024, { cookie: 4 }); // the slow way is fine without FAST_ZERO
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 4 });
    c.request(3, 0, 0, { cookie: 5 });
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 5 });
    c.destroy();
    await qemuIoRead(s.uri("z"), "read -P 0 0 64k", "read -P 9 64k 512", "read -P 0 66048 1024", "read -P 9 67072 63488", "read -P 0 128k 128k", "read -P 9 256k 768k");
    const map = JSON.parse(await mustRun(["qemu-img", "map", "--output=json", "-f", "raw", s.uri("z")])) as { start: number; length: number; data: boolean }[];
    expect(map.filter((m) => m.data).map((m) => [m.start, m.length])).toEqual([[65536, 65536], [262144, 786432]]);
  });

  test("a second server committing the same vdisk makes the first one refuse to overwrite it", async () => {
    await s.manager.create("twice", 4 * MiB, { blockSize: 64 * 1024 });
    const here = await s.manager.openVdisk("twice");
    const elsewhere = new VdiskManager({ store: s.manager.store, catalog: s.manager.catalog, writebackIntervalMs: 0, log: () => {} });
    try {
      const other = await elsewhere.openVdisk("twice");
      await other.write(Payload.of(new Uint8Array(65536).fill(1)), 0, false);
      await other.flush();
      await here.write(Payload.of(new Uint8Array(65536).fill(2)), 65536, false);
      await expect(here.flush()).rejects.toThrow("committed elsewhere");
      expect((await elsewhere.info("twice")).allocatedBlocks).toBe(1);
      await expect(s.manager.closeVdisk("twice")).rejects.toThrow("committed elsewhere");
    } finally {
      await elsewhere.close();
    }
  });

  test("resize grows with holes and shrinks, dropping data past the end", async () => {
    await s.manager.create("rs", 4 * MiB, { blockSize: 64 * 1024 });
    await serve(s, "rs");
    await qemuIo(s.uri("rs"), "write -P 7 3M 1M", "flush");
    await s.manager.resize("rs", 8 * MiB);
    expect((await mustRun(["nbdinfo", "--size", s.uri("rs")])).trim()).toBe(String(8 * MiB));
    await qemuIo(s.uri("rs"), "read -P 7 3M 1M", "read -P 0 4M 4M");
    await s.manager.resize("rs", 3 * MiB + 512);
    await s.manager.resize("rs", 8 * MiB);
    await qemuIo(s.uri("rs"), "read -P 7 3M 512", `read -P 0 ${3 * MiB + 512} ${5 * MiB - 512}`);
    await expect(s.manager.resize("rs", 1000)).rejects.toBeInstanceOf(VdiskError);
  });
});

test("a zdb store backend killed mid-service gives EIO (not a hang), and service recovers when it comes back", async () => {
  const zdb = await ZdbProcess.start({ namespace: "blocks" });
  const catalogDir = join(dir, "fault", "catalog");
  const store = await openBackend(zdb.url("blocks", "?timeout=2000&retries=0"));
  const manager = new VdiskManager({ store, catalog: await openCatalog(`dir://${catalogDir}`), cacheBytes: 1 * MiB, writebackIntervalMs: 0, log: () => {} });
  const server = new NbdServer({ log: () => {} });
  const addr = server.listen({ host: "127.0.0.1", port: 0 });
  const port = "port" in addr ? addr.port : 0;
  let back: ZdbProcess | null = null;
  try {
    await manager.create("f", 16 * MiB);
    server.addExport(await manager.openVdisk("f"));
    await qemuIo(`nbd://127.0.0.1:${port}/f`, "write -P 0x61 0 4M", "flush"); // 4 MiB through a 1 MiB cache: block 0 is evicted
    await zdb.kill();
    const c = await RawClient.connect(port);
    await c.handshake("f");
    c.request(0, 0, 65536, { cookie: 1 }); // needs the store
    expect(await c.simpleReply()).toMatchObject({ error: 5, cookie: 1 });
    c.request(1, 8 * MiB, 4096, { cookie: 2, payload: randomBytes(4096, 9) }); // lands in the cache
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 2 });
    c.request(3, 0, 0, { cookie: 3 }); // FLUSH cannot reach the store
    expect(await c.simpleReply()).toMatchObject({ error: 5, cookie: 3 });
    back = await ZdbProcess.start({ dataDir: zdb.dataDir, port: zdb.port });
    // The zdb backend waits out a reconnect backoff, so the first FLUSH after the restart may still fail.
    let flushed = false;
    for (let attempt = 0; attempt < 100 && !flushed; attempt++) {
      c.request(3, 0, 0, { cookie: 4 });
      flushed = (await c.simpleReply())?.error === 0;
      if (!flushed) await Bun.sleep(100);
    }
    expect(flushed).toBe(true);
    c.request(0, 0, 65536, { cookie: 5 });
    const r = await c.simpleReply(65536);
    expect(r?.error).toBe(0);
    expect(r?.data?.every((b) => b === 0x61)).toBe(true);
    c.request(0, 8 * MiB, 4096, { cookie: 6 });
    expect((await c.simpleReply(4096))?.data).toEqual(randomBytes(4096, 9));
    c.destroy();
  } finally {
    server.close();
    await manager.close().catch(() => {});
    await store.close();
    await (back ?? zdb).destroy();
  }
}, 60_000);

describe("zvdisk CLI", () => {
  const base = () => ["--store", `dir://${join(dir, "cli", "blocks")}`, "--catalog", `dir://${join(dir, "cli", "catalog")}`];
  const zvdisk = (...args: string[]) => run([bun, cli, ...base(), ...args]);

  test("create, list, info, snapshot, clone, resize, delete", async () => {
    expect((await zvdisk("create", "d", "--size", "1G")).code).toBe(0);
    const dup = await zvdisk("create", "d", "--size", "1G");
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain("already exists");
    expect((await zvdisk("create", "bad/name", "--size", "1G")).stderr).toContain("bad vdisk name");
    expect((await zvdisk("create", "x", "--size", "12345")).stderr).toContain("multiple of 512");
    expect((await zvdisk("snapshot", "d", "s")).code).toBe(0);
    expect((await zvdisk("clone", "d@s", "e")).code).toBe(0);
    expect((await zvdisk("resize", "e", "--size", "2G")).code).toBe(0);
    const list = JSON.parse((await zvdisk("list", "--json")).stdout) as { name: string; kind: string; size: number; origin: string | null }[];
    expect(list.map((r) => [r.name, r.kind, r.size, r.origin])).toEqual([
      ["d", "vdisk", GiB, null],
      ["d@s", "snapshot", GiB, "d"],
      ["e", "vdisk", 2 * GiB, "d@s"],
    ]);
    const info = JSON.parse((await zvdisk("info", "e", "--json")).stdout);
    expect(info).toMatchObject({ name: "e", size: 2 * GiB, blockSize: 65536, allocatedBlocks: 0 });
    expect((await zvdisk("delete", "e")).code).toBe(0);
    expect((await zvdisk("info", "e")).stderr).toContain("no vdisk or snapshot named");
    expect((await zvdisk("frobnicate")).code).toBe(2);
  });

  test("serve without names serves the whole catalog, including vdisks created after it started", async () => {
    expect((await zvdisk("create", "early", "--size", "16M")).code).toBe(0);
    const proc = Bun.spawn([bun, cli, ...base(), "serve", "--listen", "127.0.0.1:0"], { stdout: "pipe", stderr: "pipe" });
    try {
      const reader = proc.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`zvdisk serve exited: ${await new Response(proc.stderr).text()}`);
        text += new TextDecoder().decode(value);
      }
      reader.releaseLock();
      const port = JSON.parse(text.split("\n")[0]).listening.port as number;
      expect((await zvdisk("create", "late", "--size", "32M")).code).toBe(0);
      const list = JSON.parse(await mustRun(["nbdinfo", "--json", "--list", `nbd://127.0.0.1:${port}`]));
      const names = list.exports.map((x: { "export-name": string }) => x["export-name"]);
      expect(names).toContain("early");
      expect(names).toContain("late");
      expect((await mustRun(["nbdinfo", "--size", `nbd://127.0.0.1:${port}/late`])).trim()).toBe(String(32 * MiB));
      // Several clients at once share one instance of the vdisk.
      await Promise.all([0, 1, 2].map((i) => qemuIo(`nbd://127.0.0.1:${port}/late`, `write -P ${i + 1} ${i}M 1M`, "flush")));
      await qemuIoRead(`nbd://127.0.0.1:${port}/late`, "read -P 1 0 1M", "read -P 2 1M 1M", "read -P 3 2M 1M");
      expect((await run(["nbdinfo", `nbd://127.0.0.1:${port}/never`])).code).not.toBe(0);
    } finally {
      proc.kill(15);
      await proc.exited;
    }
  });

  test("kill -9 after FLUSH: a fresh server process that only knows the zdb URLs serves every flushed byte", async () => {
    const zdb = await ZdbProcess.start({ namespace: "blocks" });
    const admin = await ZdbClient.connect({ host: "127.0.0.1", port: zdb.port });
    await admin.command("NSNEW", "vdisks");
    await admin.close();
    const urls = ["--store", zdb.url("blocks"), "--catalog", zdb.url("vdisks")];
    const start = async () => {
      const proc = Bun.spawn([bun, cli, ...urls, "serve", "--listen", "127.0.0.1:0", "crash"], { stdout: "pipe", stderr: "pipe" });
      const reader = proc.stdout.getReader();
      let text = "";
      while (!text.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`zvdisk serve exited before listening: ${await new Response(proc.stderr).text()}`);
        text += new TextDecoder().decode(value);
      }
      reader.releaseLock();
      return { proc, port: JSON.parse(text.split("\n")[0]).listening.port as number };
    };
    try {
      expect((await run([bun, cli, ...urls, "create", "crash", "--size", "256M"])).code).toBe(0);
      expect((await run([bun, cli, ...urls, "create", "other", "--size", "1G"])).code).toBe(0);
      const listed = JSON.parse((await run([bun, cli, ...urls, "list", "--json"])).stdout) as { name: string }[];
      expect(listed.map((r) => r.name)).toEqual(["crash", "other"]);
      const a = await start();
      const img = join(dir, "crash.raw");
      makeSparseImage(img, 256 * MiB, [[0, 3 * MiB], [100 * MiB + 512, 777_777], [255 * MiB, MiB]], 33);
      // nbdcopy --flush sends FLUSH at the end and waits for its reply.
      await mustRun(["nbdcopy", "--flush", img, `nbd://127.0.0.1:${a.port}/crash`]);
      // CAN_MULTI_CONN: a write on one connection, made durable by a FLUSH on another.
      // (Raw clients: qemu-io would flush on close by itself.)
      const writer = await RawClient.connect(a.port);
      await writer.handshake("crash");
      writer.request(1, 200 * MiB, MiB, { cookie: 1, payload: new Uint8Array(MiB).fill(0x77) });
      expect(await writer.simpleReply()).toMatchObject({ error: 0, cookie: 1 });
      const flusher = await RawClient.connect(a.port);
      await flusher.handshake("crash");
      flusher.request(3, 0, 0, { cookie: 2 });
      expect(await flusher.simpleReply()).toMatchObject({ error: 0, cookie: 2 });
      // Written after the last flush: may be lost, must not corrupt what was flushed.
      writer.request(1, 210 * MiB, MiB, { cookie: 3, payload: new Uint8Array(MiB).fill(0x88) });
      expect(await writer.simpleReply()).toMatchObject({ error: 0, cookie: 3 });
      a.proc.kill(9);
      await a.proc.exited;
      const b = await start();
      try {
        const back = join(dir, "crash-back.raw");
        await mustRun(["nbdcopy", `nbd://127.0.0.1:${b.port}/crash`, back]);
        const bytes = await Bun.file(back).bytes();
        const flushed = await Bun.file(img).bytes();
        const hash = (x: Uint8Array) => createHash("sha256").update(x).digest("hex");
        flushed.fill(0x77, 200 * MiB, 201 * MiB);
        expect(hash(bytes.subarray(0, 210 * MiB))).toBe(hash(flushed.subarray(0, 210 * MiB)));
        expect(hash(bytes.subarray(211 * MiB))).toBe(hash(flushed.subarray(211 * MiB)));
      } finally {
        b.proc.kill(15);
        await b.proc.exited;
      }
    } finally {
      await zdb.destroy();
    }
  }, 120_000);
});
