// ZdbClient against the real zdb server process: pipelining, seq mode, errors as StoreError,
// per-command timeouts against a server that accepts and never answers, unix socket.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { ZdbClient } from "../../store/zdb/client.ts";
import { StoreError } from "../../store/types.ts";
import { removeDir, startZdb, tempDir, type ZdbProcess } from "./zdb-process.ts";

let dir: string;
let z: ZdbProcess;

beforeAll(async () => {
  dir = tempDir("zdb-client");
  z = await startZdb(join(dir, "data"), ["--socket", join(dir, "zdb.sock"), "--admin", "sesame"]);
});

afterAll(async () => {
  await z.stop();
  removeDir(dir);
});

describe("ZdbClient", () => {
  test("pipelined set/get/exists/del round-trip byte-exact", async () => {
    const c = await ZdbClient.connect({ host: "127.0.0.1", port: z.port });
    const values = Array.from({ length: 200 }, (_, i) => randomBytes(i * 97));
    const keys = values.map((_, i) => `key-${i}`);
    const stored = await Promise.all(values.map((v, i) => c.set(keys[i], v)));
    expect(stored.map((k) => Buffer.from(k!).toString())).toEqual(keys);
    const got = await Promise.all(keys.map((k) => c.get(k)));
    got.forEach((g, i) => expect(Buffer.from(g!).equals(values[i])).toBe(true));
    expect(await c.set(keys[5], values[5])).toBeNull(); // unchanged
    expect(await c.exists("key-3")).toBe(true);
    expect(await c.del("key-3")).toBe(true);
    expect(await c.del("key-3")).toBe(false);
    expect(await c.exists("key-3")).toBe(false);
    expect(await c.get("key-3")).toBeNull();
    await c.close();
  });

  test("admin auth (plain and SECURE), namespaces, seq mode ids", async () => {
    const c = await ZdbClient.connect({ path: join(dir, "zdb.sock") });
    await expect(c.command("NSNEW", "seqns")).rejects.toThrow(/admin required/);
    await expect(c.auth("wrong")).rejects.toThrow(/Access denied/);
    await c.authSecure("sesame");
    await c.command("NSNEW", "seqns");
    await c.command("NSSET", "seqns", "mode", "seq");
    await c.command("NSSET", "seqns", "password", "pw");
    await c.select("seqns", "pw");
    const id0 = await c.set("", Buffer.from("first"));
    const id1 = await c.set("", Buffer.from("second"));
    expect(Buffer.from(id0!).readBigUInt64LE(0)).toBe(0n);
    expect(Buffer.from(id1!).readBigUInt64LE(0)).toBe(1n);
    expect(Buffer.from((await c.get(id1!))!).toString()).toBe("second");
    await c.close();

    const anon = await ZdbClient.connect({ host: "127.0.0.1", port: z.port });
    // Public namespace with a password: readable, not writable, without it.
    await anon.select("seqns");
    expect(Buffer.from((await anon.get(id0!))!).toString()).toBe("first");
    const err = await anon.set("", Buffer.from("x")).catch((e) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err.code).toBe("read-only");
    await anon.close();
  });

  test("a SET reserved in place is sent as filled; a cancelled one leaves no trace in the stream", async () => {
    const c = await ZdbClient.connect({ host: "127.0.0.1", port: z.port });
    const value = randomBytes(100_000);
    const kept = c.reserveSet(Buffer.from("in-place"), value.length)!;
    const dropped = c.reserveSet(Buffer.from("cancelled"), 5000);
    // Nothing may be sent between a reservation and its send.
    expect(dropped).toBeNull();
    await expect(c.set("between", Buffer.from("x"))).rejects.toThrow(/reserved SET is outstanding/);
    kept.value.set(value);
    expect(Buffer.from((await kept.send()) as Uint8Array).toString()).toBe("in-place");
    const cancelled = c.reserveSet(Buffer.from("cancelled"), 5000)!;
    cancelled.value.fill(7);
    cancelled.cancel();
    const [got, gone, between, after] = await Promise.all([c.get("in-place"), c.get("cancelled"), c.get("between"), c.set("after", Buffer.from("y"))]);
    expect(Buffer.from(got!).equals(value)).toBe(true);
    expect(gone).toBeNull();
    expect(between).toBeNull();
    expect(Buffer.from(after!).toString()).toBe("after");
    await c.close();
    expect(c.reserveSet(Buffer.from("closed"), 1)).toBeNull();
  });

  test("a server that never answers times the command out", async () => {
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const c = await ZdbClient.connect({ host: "127.0.0.1", port: silent.port }, { timeoutMs: 200 });
      const err = await c.get("k").catch((e) => e);
      expect(err).toBeInstanceOf(StoreError);
      expect(err.code).toBe("timeout");
      const aborted = new AbortController();
      const p = c.request(["GET", "k"], { timeoutMs: 60_000, signal: aborted.signal }).catch((e) => e);
      aborted.abort();
      expect((await p).code).toBe("aborted");
      await c.close();
    } finally {
      silent.stop(true);
    }
  });

  test("connection refused is unavailable", async () => {
    const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const port = l.port;
    l.stop(true);
    const err = await ZdbClient.connect({ host: "127.0.0.1", port }).catch((e) => e);
    expect(err).toBeInstanceOf(StoreError);
    expect(err.code).toBe("unavailable");
  });
});
