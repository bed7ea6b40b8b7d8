// The zdb backend against the real zdb server: TCP and unix socket, namespaces with passwords,
// listing, reconnecting after a restart; rfs routes over zdb; a zstore:// URL for an erasure-coded set.
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stringify } from "yaml";
import { openBackend, openStore, putBlock, getBlock, isScannable, ErasureStore, StoreError, hex } from "../../store/index.ts";
import { ZdbClient } from "../../store/zdb/client.ts";
import { BackendResting } from "../../store/ops.ts";
import { ZdbProcess } from "./cluster.ts";

// These tests start real processes; on a loaded 2-core machine that takes longer than Bun's 5 s default.
setDefaultTimeout(120_000);

const started: ZdbProcess[] = [];
const dirs: string[] = [];
afterAll(async () => {
  await Promise.all(started.map((z) => z.destroy()));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
async function zdb(namespace?: string): Promise<ZdbProcess> {
  const z = await ZdbProcess.start({ namespace });
  started.push(z);
  return z;
}
const id = (b: number) => {
  const x = crypto.getRandomValues(new Uint8Array(32));
  x[0] = b;
  return x;
};

describe("zdb backend", () => {
  test("has/get/put/delete/list on a namespace, keys are the raw 32-byte ids", async () => {
    const z = await zdb("blocks");
    const store = await openBackend(z.url("blocks"));
    const a = id(1), b = id(2);
    await store.put(a, new Uint8Array([1, 2, 3]));
    await store.put(b, new Uint8Array(300_000).fill(9));
    expect(Array.from((await store.get(a))!)).toEqual([1, 2, 3]);
    expect((await store.get(b))!.length).toBe(300_000);
    expect(await store.has(a)).toBe(true);
    expect(await store.get(id(3))).toBeNull();
    // What rfs would see: the block under its raw id in that namespace.
    const raw = await ZdbClient.connect({ host: "127.0.0.1", port: z.port });
    await raw.select("blocks");
    expect(Array.from((await raw.get(a))!)).toEqual([1, 2, 3]);
    await raw.close();
    if (!isScannable(store)) throw new Error("zdb backend must list");
    const listed: string[] = [];
    for await (const x of store.list()) listed.push(hex(x));
    expect(listed.sort()).toEqual([hex(a), hex(b)].sort());
    await store.delete(a);
    expect(await store.has(a)).toBe(false);
    await store.close();
  });

  test("a private password-protected namespace needs its password", async () => {
    const z = await ZdbProcess.start({ admin: "root-pw" });
    started.push(z);
    const admin = await ZdbClient.connect({ host: "127.0.0.1", port: z.port });
    await admin.auth("root-pw");
    await admin.command("NSNEW", "secret");
    await admin.command("NSSET", "secret", "password", "hunter2");
    await admin.command("NSSET", "secret", "public", "0");
    await admin.close();
    const good = await openBackend(`zdb://user:hunter2@127.0.0.1:${z.port}/secret`);
    expect(good.url).not.toContain("hunter2");
    const key = id(5);
    await good.put(key, new Uint8Array([5]));
    expect(Array.from((await good.get(key))!)).toEqual([5]);
    const bad = await openBackend(`zdb://127.0.0.1:${z.port}/secret?retries=0`);
    let caught: unknown;
    try {
      await bad.get(key);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(StoreError);
    await good.close();
    await bad.close();
  });

  test("the unix-socket form", async () => {
    const dir = mkdtempSync(join(tmpdir(), "zstore-sock-"));
    dirs.push(dir);
    const socket = join(dir, "zdb.sock");
    const proc = Bun.spawn([process.execPath, join(import.meta.dir, "..", "..", "store", "cli.ts"), "serve", "--data", join(dir, "data"), "--socket", socket], {
      stdout: "pipe", stderr: "pipe",
    });
    try {
      const reader = proc.stdout.getReader();
      let text = "";
      while (!text.includes("listening")) text += new TextDecoder().decode((await reader.read()).value);
      const store = await openBackend(`zdb://${socket}`);
      const key = id(8);
      await store.put(key, new Uint8Array([8, 8]));
      expect(Array.from((await store.get(key))!)).toEqual([8, 8]);
      await store.close();
    } finally {
      proc.kill(9);
      await proc.exited;
    }
  });

  test("the same backend reconnects after the server restarts", async () => {
    const z = await zdb("blocks");
    const store = await openBackend(z.url("blocks", "?retries=0"));
    const a = id(9);
    await store.put(a, new Uint8Array([9]));
    await z.kill();
    expect((await store.get(a).catch((e) => e)).code).toBe("unavailable");
    // Now connects fail, and after one failed connect the backend rests instead of dialing again.
    expect((await store.get(a).catch((e) => e)).code).toBe("unavailable");
    const resting = await store.get(a).catch((e) => e);
    expect(resting).toBeInstanceOf(BackendResting);
    const back = await ZdbProcess.start({ dataDir: z.dataDir, port: z.port });
    started.push(back);
    await Bun.sleep(300); // past the first rest period
    expect(Array.from((await store.get(a))!)).toEqual([9]);
    await store.close();
  });

  test("with a retry allowed, the first operation after a server restart dials again and succeeds", async () => {
    const z = await zdb("blocks");
    const store = await openBackend(z.url("blocks", "?retries=1"));
    const a = id(10);
    await store.put(a, new Uint8Array([10]));
    await z.kill();
    const back = await ZdbProcess.start({ dataDir: z.dataDir, port: z.port });
    started.push(back);
    // The old connection is dead: the get fails on it, drops it and its retry connects anew.
    expect(Array.from((await store.get(a))!)).toEqual([10]);
    await store.close();
  });
});

describe("stores over zdb", () => {
  test("rfs routes over two zdb namespaces carry rfs blocks", async () => {
    const [z1, z2] = [await zdb("low"), await zdb("high")];
    const store = await openStore([`00-7f=${z1.url("low")}`, `80-ff=${z2.url("high")}`]);
    const refs = [];
    for (let i = 0; i < 20; i++) refs.push(await putBlock(store, new TextEncoder().encode(`block ${i}`.repeat(1000))));
    for (const [i, ref] of refs.entries()) expect(new TextDecoder().decode((await getBlock(store, ref))!)).toBe(`block ${i}`.repeat(1000));
    const low = await openBackend(z1.url("low"));
    for (const ref of refs) expect(await low.has(ref.id)).toBe(ref.id[0] <= 0x7f);
    await low.close();
    await store.close();
  });

  test("a zstore:// URL opens the erasure-coded set its config describes", async () => {
    const servers = await Promise.all(Array.from({ length: 6 }, () => zdb("ec")));
    const dir = mkdtempSync(join(tmpdir(), "zstore-url-"));
    dirs.push(dir);
    const config = join(dir, "zstore.yaml");
    writeFileSync(config, stringify({ k: 4, m: 2, survive_group_loss: 1, groups: [0, 1, 2].map((g) => ({ backends: [servers[2 * g].url("ec"), servers[2 * g + 1].url("ec")] })) }));
    const store = await openBackend(`zstore://${config}`);
    expect(store).toBeInstanceOf(ErasureStore);
    const ref = await putBlock(store, new Uint8Array(512 * 1024).fill(42));
    await servers[0].kill();
    await servers[1].kill();
    expect((await getBlock(store, ref))!.every((x) => x === 42)).toBe(true);
    await store.close();
  });
});
