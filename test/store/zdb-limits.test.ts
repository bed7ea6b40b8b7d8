// Space limits and reclaiming space on the zdb server process: namespace maxsize, a full disk
// (a 2 MiB tmpfs mounted for the test), and COMPACT while other clients keep reading.
import { afterEach, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { ZdbClient } from "../../store/zdb/client.ts";
import { StoreError } from "../../store/types.ts";
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
    if (z.proc.exitCode === null) await z.stop();
  });
  return { z, c };
}

function workDir(): string {
  const d = tempDir("zdb-limits");
  cleanups.push(() => removeDir(d));
  return d;
}

function run(cmd: string[]): void {
  const p = Bun.spawnSync(cmd, { stderr: "pipe" });
  if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
}

describe("zdb limits", () => {
  test("a namespace at maxsize refuses writes and keeps what it has", async () => {
    const { c } = await server(join(workDir(), "data"));
    await c.command("NSNEW", "small");
    await c.command("NSSET", "small", "maxsize", "10000");
    await c.select("small");
    const stored = new Map<string, Buffer>();
    let err: unknown;
    for (let i = 0; i < 20; i++) {
      const v = randomBytes(1000);
      try {
        await c.set(`k${i}`, v);
        stored.set(`k${i}`, v);
      } catch (e) {
        err = e;
        break;
      }
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("full");
    expect((err as StoreError).message).toContain("No space left on this namespace");
    expect(stored.size).toBe(9); // 9 x (1000 + 2-byte key) fits in 10000, the 10th does not
    for (const [k, v] of stored) expect(Buffer.from((await c.get(k))!).equals(v)).toBe(true);
    // Deleting makes room again.
    expect(await c.del("k0")).toBe(true);
    expect(await c.set("again", randomBytes(900))).not.toBeNull();
  });

  test("a full disk refuses writes with an error and loses nothing already stored", { timeout: 60_000 }, async () => {
    const dir = workDir();
    const mnt = join(dir, "mnt");
    mkdirSync(mnt);
    run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]);
    cleanups.push(() => run(["umount", "-l", mnt]));
    const data = join(mnt, "data");
    const first = await server(data, ["--fsync", "always", "--datasize", String(256 * 1024)]);
    const stored = new Map<string, Buffer>();
    let err: unknown;
    for (let i = 0; i < 100 && err === undefined; i++) {
      const v = randomBytes(50_000);
      await first.c.set(`k${i}`, v).then(
        () => void stored.set(`k${i}`, v),
        (e) => void (err = e),
      );
    }
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("full");
    expect((err as StoreError).message).toContain("No space left on device");
    expect(stored.size).toBeGreaterThan(10);
    // Still serving, everything stored intact, small writes that fit still work or fail cleanly.
    expect(await first.c.command("PING")).toBe("PONG");
    for (const [k, v] of stored) expect(Buffer.from((await first.c.get(k))!).equals(v)).toBe(true);
    const again = await first.c.set("big-again", randomBytes(200_000)).catch((e) => e);
    expect(again).toBeInstanceOf(StoreError);
    await first.z.stop();

    const second = await server(data);
    expect(await second.c.command("DBSIZE")).toBe(stored.size);
    for (const [k, v] of stored) {
      expect(Buffer.from((await second.c.get(k))!).equals(v)).toBe(true);
      expect(await second.c.command("CHECK", k)).toBe(1);
    }
  });

  test("pipelined SETs that fill the disk each get their own answer; every acknowledged one survives", { timeout: 60_000 }, async () => {
    const dir = workDir();
    const mnt = join(dir, "mnt");
    mkdirSync(mnt);
    run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]);
    cleanups.push(() => run(["umount", "-l", mnt]));
    const data = join(mnt, "data");
    const first = await server(data, ["--fsync", "always"]);
    // Sent in one go, so the server receives them as runs of SETs written together; the run that
    // meets the full disk is cut back and retried one SET at a time.
    const values = Array.from({ length: 60 }, () => randomBytes(50_000));
    const answers = await Promise.allSettled(values.map((v, i) => first.c.set(`k${i}`, v)));
    const stored = new Map<string, Buffer>();
    answers.forEach((a, i) => {
      if (a.status === "fulfilled") stored.set(`k${i}`, values[i]);
      else {
        expect(a.reason).toBeInstanceOf(StoreError);
        expect((a.reason as StoreError).code).toBe("full");
        expect((a.reason as StoreError).message).toContain("No space left on device");
      }
    });
    expect(stored.size).toBeGreaterThan(10);
    expect(stored.size).toBeLessThan(60);
    // A SET, a GET of it and an overwrite with the same bytes in one pipeline: in order, unchanged is nil.
    await first.c.del(`k0`);
    const small = Buffer.from("small");
    const [set, got, again] = await Promise.all([first.c.set("s", small), first.c.get("s"), first.c.set("s", small)]);
    expect(Buffer.from(set!).toString()).toBe("s");
    expect(Buffer.from(got!).equals(small)).toBe(true);
    expect(again).toBeNull();
    stored.delete("k0");
    stored.set("s", small);
    await first.z.kill9();

    const second = await server(data);
    expect(await second.c.command("DBSIZE")).toBe(stored.size);
    for (const [k, v] of stored) {
      expect(Buffer.from((await second.c.get(k))!).equals(v)).toBe(true);
      expect(await second.c.command("CHECK", k)).toBe(1);
    }
  });

  test("COMPACT reclaims the space of deleted and overwritten entries while reads go on", { timeout: 60_000 }, async () => {
    const data = join(workDir(), "data");
    const { z, c } = await server(data, ["--datasize", String(2 * 1024 * 1024)]);
    const live = new Map<string, Buffer>();
    for (let i = 0; i < 400; i++) {
      const v = randomBytes(40_000);
      await c.set(`k${i}`, v);
      live.set(`k${i}`, v);
    }
    for (let i = 0; i < 400; i++) {
      if (i % 4 === 0) {
        const v = randomBytes(40_000);
        await c.set(`k${i}`, v); // overwritten
        live.set(`k${i}`, v);
      } else if (i % 4 !== 1) {
        await c.del(`k${i}`);
        live.delete(`k${i}`);
      }
    }
    const diskBytes = async () => Number(/disk_bytes: (\d+)/.exec(String(await c.command("NSINFO", "default")))![1]);
    const before = await diskBytes();

    // A second client keeps 8 GET + NSINFO pairs in flight for as long as compaction runs. A pair
    // whose NSINFO says "compacting: yes" was served by the server while compaction was under way.
    const reader = await ZdbClient.connect({ host: "127.0.0.1", port: z.port });
    cleanups.push(() => reader.close());
    const keys = [...live.keys()];
    let reads = 0;
    let readsDuring = 0;
    let running = true;
    const readLoops = Array.from({ length: 8 }, async (_, lane) => {
      for (let i = lane; running; i += 8) {
        const k = keys[i % keys.length];
        const [got, info] = await Promise.all([reader.get(k), reader.command("NSINFO", "default")]);
        expect(got !== null && Buffer.from(got).equals(live.get(k)!)).toBe(true);
        reads++;
        if (String(info).includes("compacting: yes")) readsDuring++;
      }
    });
    while (reads < 16) await Bun.sleep(1);
    const reply = String(await c.command("COMPACT"));
    running = false;
    await Promise.all(readLoops);
    expect(reply).toMatch(/^OK files=\d+ copied=200 reclaimed=\d+$/);
    // Compaction yields between 1 MiB slices (8 MiB to copy): reads were answered in between.
    expect(readsDuring).toBeGreaterThan(0);
    const after = await diskBytes();
    expect(after).toBeLessThan(before * 0.6);
    expect(await c.command("DBSIZE")).toBe(live.size);
    for (const [k, v] of live) expect(Buffer.from((await c.get(k))!).equals(v)).toBe(true);

    // The compacted namespace replays the same after a restart.
    await z.kill9();
    const again = await server(data);
    expect(await again.c.command("DBSIZE")).toBe(live.size);
    for (const [k, v] of live) expect(Buffer.from((await again.c.get(k))!).equals(v)).toBe(true);
    for (let i = 0; i < 400; i++) if (!live.has(`k${i}`)) expect(await again.c.get(`k${i}`)).toBeNull();
  });
});
