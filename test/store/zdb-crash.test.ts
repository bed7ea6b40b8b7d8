// Crash safety of the zdb server process: kill -9 in the middle of a pipelined write stream,
// torn entries and index records at the tail, and damaged bytes inside a data file.
import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, openSync, readFileSync, readSync, statSync, truncateSync, writeSync, closeSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ZdbClient } from "../../store/zdb/client.ts";
import { StoreError } from "../../store/types.ts";
import { RespError } from "../../store/resp/decoder.ts";
import { removeDir, startZdb, tempDir, type ZdbProcess } from "./zdb-process.ts";

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function server(dataDir: string, extra: string[] = []): Promise<{ z: ZdbProcess; c: ZdbClient }> {
  const z = await startZdb(dataDir, extra);
  const c = await ZdbClient.connect({ host: "127.0.0.1", port: z.port });
  cleanups.push(async () => {
    await c.close();
    if (z.proc.exitCode === null && !z.proc.killed) await z.kill9();
  });
  return { z, c };
}

function workDir(): string {
  const d = tempDir("zdb-crash");
  cleanups.push(() => removeDir(d));
  return d;
}

/** A value whose bytes can be found again in a data file. */
function marked(tag: string, size: number): Buffer {
  const v = randomBytes(size);
  Buffer.from(`<<${tag}>>`).copy(v, 0);
  return v;
}

describe("zdb crash safety", () => {
  test("kill -9 mid write stream: every acknowledged key reads back byte-exact", { timeout: 60_000 }, async () => {
    const dir = workDir();
    const data = join(dir, "data");
    const { z, c } = await server(data, ["--fsync", "never", "--datasize", String(1024 * 1024)]);
    const sent = new Map<string, Buffer>();
    const acked = new Set<string>();
    let i = 0;
    // Keep 64 writes in flight; kill the server once 1500 are acknowledged, while the rest still fly.
    await new Promise<void>((resolve) => {
      const pump = () => {
        while (i - acked.size < 64) {
          const key = `k${i++}`;
          const value = randomBytes(1 + ((i * 2654435761) % 20_000));
          sent.set(key, value);
          c.set(key, value).then(
            () => {
              acked.add(key);
              if (acked.size === 1500) {
                z.proc.kill("SIGKILL");
                resolve();
              } else if (acked.size < 1500) pump();
            },
            () => {},
          );
        }
      };
      pump();
    });
    await z.proc.exited;
    await c.close();

    const { c: c2 } = await server(data);
    for (const key of acked) {
      const got = await c2.get(key);
      expect(got === null ? null : Buffer.from(got).equals(sent.get(key)!)).toBe(true);
    }
    // Writes that were never acknowledged are either whole or absent, never wrong.
    for (const [key, value] of sent) {
      if (acked.has(key)) continue;
      const got = await c2.get(key);
      if (got !== null) expect(Buffer.from(got).equals(value)).toBe(true);
    }
    expect(acked.size).toBeGreaterThanOrEqual(1500);
  });

  test("a torn tail entry is dropped at restart, an unindexed whole entry is recovered", { timeout: 30_000 }, async () => {
    const dir = workDir();
    const data = join(dir, "data");
    const index = join(dir, "index");
    const first = await server(data, ["--fsync", "always", "--index", index]);
    const values = Array.from({ length: 20 }, (_, i) => marked(`v${i}`, 5000));
    for (let i = 0; i < values.length; i++) await first.c.set(`key${i}`, values[i]);
    await first.z.kill9();

    const dataFile = join(data, "default", "d00000");
    const indexFile = join(index, "default", "i00000");
    // The last entry lost its index record (crash between the two writes).
    const idx = readFileSync(indexFile);
    const lastRecordLength = 22 + "key19".length;
    truncateSync(indexFile, idx.length - lastRecordLength);
    // A half-written entry at the end of the data: header claims 4000 bytes, 100 arrived.
    const torn = Buffer.alloc(18 + 4 + 100);
    torn[0] = 4; // idlength
    torn.writeUInt32LE(4000, 1);
    torn.write("torn", 18);
    appendFileSync(dataFile, torn);
    // And a torn index record.
    appendFileSync(indexFile, Buffer.from([4, 0, 1, 2, 3]));
    const before = statSync(dataFile).size;

    const second = await server(data, ["--index", index]);
    for (let i = 0; i < values.length; i++) expect(Buffer.from((await second.c.get(`key${i}`))!).equals(values[i])).toBe(true);
    expect(await second.c.get("torn")).toBeNull();
    expect(statSync(dataFile).size).toBe(before - torn.length);
    expect(await second.c.command("DBSIZE")).toBe(20);
    // Writing goes on after the cut, and survives another restart.
    await second.c.set("after", Buffer.from("still fine"));
    await second.z.stop();
    const third = await server(data, ["--index", index]);
    expect(Buffer.from((await third.c.get("after"))!).toString()).toBe("still fine");
    expect(Buffer.from((await third.c.get("key19"))!).equals(values[19])).toBe(true);
    for (let i = 0; i < values.length; i++) expect(await third.c.command("CHECK", `key${i}`)).toBe(1);
  });

  test("damaged bytes: CHECK reports them and GET refuses to serve them, also after a restart", { timeout: 30_000 }, async () => {
    const dir = workDir();
    const data = join(dir, "data");
    const first = await server(data);
    const good = marked("good", 3000);
    const bad = marked("bad", 3000);
    const badHeader = marked("hdr", 3000);
    await first.c.set("good", good);
    await first.c.set("bad", bad);
    await first.c.set("hdr", badHeader);
    expect(await first.c.command("CHECK", "bad")).toBe(1);

    const dataFile = join(data, "default", "d00000");
    const file = readFileSync(dataFile);
    const flip = (at: number) => {
      const fd = openSync(dataFile, "r+");
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0] ^= 0x55;
      writeSync(fd, b, 0, 1, at);
      closeSync(fd);
    };
    flip(file.indexOf("<<bad>>") + 1500); // inside the payload
    flip(file.indexOf("<<hdr>>") - 3 - 5); // inside the entry header (timestamp)

    const verify = async (c: ZdbClient) => {
      expect(await c.command("CHECK", "bad")).toBe(0);
      expect(await c.command("CHECK", "hdr")).toBe(0);
      expect(await c.command("CHECK", "good")).toBe(1);
      const err = await c.get("bad").catch((e) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect(err.message).toContain("CRC32C");
      const multi = (await c.command("MGET", "good", "bad")) as unknown[];
      expect(Buffer.from(multi[0] as Uint8Array).equals(good)).toBe(true);
      expect(multi[1]).toBeInstanceOf(RespError);
      expect(Buffer.from((await c.get("good"))!).equals(good)).toBe(true);
    };
    await verify(first.c);
    await first.z.kill9();
    await verify((await server(data)).c);
  });

  test("kill -9 during COMPACT: live keys intact, deleted keys stay deleted", { timeout: 60_000 }, async () => {
    const dir = workDir();
    const data = join(dir, "data");
    const { z, c } = await server(data, ["--datasize", String(4 * 1024 * 1024)]);
    const live = new Map<string, Buffer>();
    const deleted: string[] = [];
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < 600; i++) {
      const v = randomBytes(100_000);
      writes.push(c.set(`k${i}`, v));
      live.set(`k${i}`, v);
    }
    await Promise.all(writes);
    for (let i = 0; i < 600; i += 2) {
      await c.del(`k${i}`);
      live.delete(`k${i}`);
      deleted.push(`k${i}`);
    }
    const watcher = await ZdbClient.connect({ host: "127.0.0.1", port: z.port });
    c.command("COMPACT").catch(() => {});
    // Kill as soon as another connection sees the compaction running (30 MB still to copy).
    while (!String(await watcher.command("NSINFO", "default")).includes("compacting: yes")) await Bun.sleep(1);
    await z.kill9();
    await watcher.close();

    const again = await server(data);
    // The kill landed mid-way: the sealed files (60 MB written) are not all gone yet.
    const disk = () => again.c.command("NSINFO", "default").then((i) => Number(/disk_bytes: (\d+)/.exec(String(i))![1]));
    expect(await disk()).toBeGreaterThan(45_000_000);
    expect(await again.c.command("DBSIZE")).toBe(live.size);
    for (const [k, v] of live) expect(Buffer.from((await again.c.get(k))!).equals(v)).toBe(true);
    for (const k of deleted) expect(await again.c.get(k)).toBeNull();
    // And a compaction after the restart finishes the job.
    expect(String(await again.c.command("COMPACT"))).toStartWith("OK");
    expect(await disk()).toBeLessThan(40_000_000);
    for (const [k, v] of live) expect(Buffer.from((await again.c.get(k))!).equals(v)).toBe(true);
    for (const k of deleted) expect(await again.c.get(k)).toBeNull();
  });
});
