// Backends by URL (dir, http hub), rfs routing, deadlines and cancellation.
import { afterAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer, type Server, type Socket } from "node:net";
import {
  openBackend, openStore, parseBackendUrl, parseRoute, redactUrl, RoutedStore, StoreError, hex, isScannable,
  type BlockBackend,
} from "../../store/index.ts";

// These tests start real processes; on a loaded 2-core machine that takes longer than Bun's 5 s default.
setDefaultTimeout(120_000);

const roots: string[] = [];
function tempRoot(): string {
  const r = mkdtempSync(join(tmpdir(), "zstore-be-"));
  roots.push(r);
  return r;
}
afterAll(() => {
  for (const r of roots) rmSync(r, { recursive: true, force: true });
});

function idWithFirstByte(b: number): Uint8Array {
  const id = crypto.getRandomValues(new Uint8Array(32));
  id[0] = b;
  return id;
}

async function rejection(p: Promise<unknown>): Promise<StoreError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    return err as StoreError;
  }
  throw new Error("expected the promise to reject");
}

/** A TCP server that accepts connections and never answers: the worst kind of slow backend. */
async function silentServer(): Promise<{ port: number; close: () => void }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((s) => sockets.push(s));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return { port, close: () => { for (const s of sockets) s.destroy(); server.close(); } };
}

describe("backend URLs", () => {
  test("parses the rfs forms and the deadline settings", () => {
    expect(parseBackendUrl("dir:///var/cache/blocks")).toMatchObject({ kind: "dir", root: "/var/cache/blocks" });
    expect(parseBackendUrl("zdb://hub.grid.tf:9900")).toMatchObject({ kind: "zdb", address: { host: "hub.grid.tf", port: 9900 }, namespace: "default" });
    expect(parseBackendUrl("zdb://username@hub.grid.tf/custom")).toMatchObject({ address: { host: "hub.grid.tf", port: 9900 }, namespace: "custom", user: "username" });
    expect(parseBackendUrl("zdb://u:s3cret@[::1]:9901/ns?timeout=250")).toMatchObject({
      address: { host: "::1", port: 9901 }, namespace: "ns", password: "s3cret", policy: { timeoutMs: 250 },
    });
    expect(parseBackendUrl("zdb:///run/zdb.sock")).toMatchObject({ address: { socket: "/run/zdb.sock" }, namespace: "default" });
    expect(parseBackendUrl("zdb:///run/zdb.sock?namespace=blocks&password=pw")).toMatchObject({ namespace: "blocks", password: "pw" });
    expect(parseBackendUrl("https://hub.grid.tf/blocks/?retries=0")).toMatchObject({ kind: "http", base: "https://hub.grid.tf/blocks", policy: { retries: 0 } });
    expect(parseBackendUrl("zstore:///etc/zstore.yaml")).toMatchObject({ kind: "zstore", configPath: "/etc/zstore.yaml" });
  });

  test("never shows a password", () => {
    expect(redactUrl("zdb://u:s3cret@host/ns")).not.toContain("s3cret");
    expect(parseBackendUrl("zdb:///s.sock?password=s3cret").url).not.toContain("s3cret");
  });

  test("bad URLs get a bad-url error naming the problem", () => {
    for (const [url, words] of [
      ["s3://x/y", "unknown store scheme"],
      ["not a url", "not a URL"],
      ["dir://host/path", "absolute path"],
      ["zdb://h/a/b", "single namespace"],
      ["dir:///x?timeout=-1", "timeout"],
      ["dir:///x?tiemout=5", "tiemout"],
      ["zstore://host/etc/z.yaml", "absolute path"],
    ] as const) {
      let caught: unknown;
      try {
        parseBackendUrl(url);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(StoreError);
      expect((caught as StoreError).code).toBe("bad-url");
      expect((caught as StoreError).message).toContain(words);
    }
  });
});

describe("dir backend", () => {
  test("stores at <root>/<hex[0:2]>/<hex>, reads the legacy flat layout, lists and deletes", async () => {
    const root = tempRoot();
    const store = await openBackend(`dir://${root}`);
    const id = idWithFirstByte(0xab);
    const data = new TextEncoder().encode("payload");
    expect(await store.has(id)).toBe(false);
    expect(await store.get(id)).toBeNull();
    await store.put(id, data);
    const path = join(root, "ab", hex(id));
    expect(readFileSync(path, "utf8")).toBe("payload");
    expect(await store.has(id)).toBe(true);

    const legacy = idWithFirstByte(0x01);
    writeFileSync(join(root, hex(legacy)), "old layout");
    expect(Buffer.from((await store.get(legacy))!).toString()).toBe("old layout");

    if (!isScannable(store)) throw new Error("dir backend must be scannable");
    const listed: string[] = [];
    for await (const x of store.list()) listed.push(hex(x));
    expect(listed.sort()).toEqual([hex(id), hex(legacy)].sort());

    await store.delete(id);
    await store.delete(legacy);
    await store.delete(legacy); // deleting what is gone is fine
    expect(existsSync(path)).toBe(false);
    expect(await store.get(legacy)).toBeNull();
    await store.close();
  });

  test("a rewrite replaces the blob whole; no temporary files are left behind", async () => {
    const root = tempRoot();
    const store = await openBackend(`dir://${root}`);
    const id = idWithFirstByte(0x10);
    await store.put(id, new Uint8Array(100_000).fill(1));
    await store.put(id, new Uint8Array(10).fill(2));
    expect(Array.from((await store.get(id))!)).toEqual(new Array(10).fill(2));
    const { readdirSync } = await import("node:fs");
    expect(readdirSync(join(root, "10"))).toEqual([hex(id)]);
  });

  test("an unwritable root is a typed error with the backend in its context", async () => {
    const root = tempRoot();
    const store = await openBackend(`dir://${root}?retries=0`);
    // Tests run as root, which ignores permission bits, so a file where the fan-out directory goes forces the failure.
    writeFileSync(join(root, "20"), "not a directory");
    const err = await rejection(store.put(idWithFirstByte(0x20), new Uint8Array(1)));
    expect(err.code).toBe("unavailable");
    expect(err.context.backend).toBe(`dir://${root}?retries=0`);
    expect(err.context.id).toBeDefined();
  });

  test("ids must be 32 bytes", async () => {
    const store = await openBackend(`dir://${tempRoot()}`);
    await expect(store.get(new Uint8Array(31))).rejects.toThrow(TypeError);
  });
});

describe("http hub", () => {
  const hubRoot = tempRoot();
  const server = Bun.serve({
    port: 0,
    hostname: "127.0.0.1",
    fetch(req) {
      const path = new URL(req.url).pathname;
      if (path.startsWith("/broken/")) return new Response("boom", { status: 503 });
      const file = join(hubRoot, path.replace(/^\/blocks/, ""));
      if (!path.startsWith("/blocks/") || !existsSync(file) || path.endsWith("/")) return new Response("no", { status: 404 });
      return new Response(readFileSync(file));
    },
  });
  afterAll(() => server.stop(true));

  test("GETs <url>/<hex[0:2]>/<hex>, then the flat layout; writes are refused", async () => {
    const hub = await openBackend(`http://127.0.0.1:${server.port}/blocks`);
    expect(hub.readOnly).toBe(true);
    const id = idWithFirstByte(0xcd);
    mkdirSync(join(hubRoot, "cd"), { recursive: true });
    writeFileSync(join(hubRoot, "cd", hex(id)), "from hub");
    const flat = idWithFirstByte(0x02);
    writeFileSync(join(hubRoot, hex(flat)), "flat");
    expect(Buffer.from((await hub.get(id))!).toString()).toBe("from hub");
    expect(Buffer.from((await hub.get(flat))!).toString()).toBe("flat");
    expect(await hub.has(id)).toBe(true);
    expect(await hub.get(idWithFirstByte(0x03))).toBeNull();
    expect((await rejection(hub.put(id, new Uint8Array(1)))).code).toBe("read-only");
  });

  test("a failing hub is unavailable after its retries", async () => {
    const hub = await openBackend(`http://127.0.0.1:${server.port}/broken?retries=1&retry_delay=1`);
    expect((await rejection(hub.get(idWithFirstByte(1)))).code).toBe("unavailable");
  });

  test("a hub that accepts and never answers times out; a caller's abort ends it sooner", async () => {
    const silent = await silentServer();
    try {
      const hub = await openBackend(`http://127.0.0.1:${silent.port}/x?timeout=300`);
      const err = await rejection(hub.get(idWithFirstByte(1)));
      expect(err.code).toBe("timeout");
      const controller = new AbortController();
      const pending = hub.get(idWithFirstByte(1), { signal: controller.signal, timeoutMs: 60_000 });
      setTimeout(() => controller.abort(), 20);
      expect((await rejection(pending)).code).toBe("aborted");
    } finally {
      silent.close();
    }
  });

  test("an unreachable hub is unavailable, not a hang", async () => {
    const silent = await silentServer();
    const port = silent.port;
    silent.close();
    const hub = await openBackend(`http://127.0.0.1:${port}/x?retries=1&retry_delay=1`);
    expect((await rejection(hub.get(idWithFirstByte(1)))).code).toBe("unavailable");
  });
});

describe("routes", () => {
  test("parses rfs xx-xx=url routes", () => {
    expect(parseRoute("00-7f=dir:///a")).toEqual({ start: 0, end: 0x7f, url: "dir:///a" });
    expect(parseRoute("dir:///b")).toEqual({ start: 0, end: 0xff, url: "dir:///b" });
    expect(() => parseRoute("80-10=dir:///c")).toThrow(StoreError);
  });

  test("writes go to every covering route; reads find a block in any of them", async () => {
    const [a, b, c] = [tempRoot(), tempRoot(), tempRoot()];
    const store = await openStore([`00-7f=dir://${a}`, `80-ff=dir://${b}`, `dir://${c}`]);
    expect(store).toBeInstanceOf(RoutedStore);
    const low = idWithFirstByte(0x10);
    const high = idWithFirstByte(0x90);
    await store.put(low, new Uint8Array([1]));
    await store.put(high, new Uint8Array([2]));
    expect(existsSync(join(a, "10", hex(low)))).toBe(true);
    expect(existsSync(join(b, "10", hex(low)))).toBe(false);
    expect(existsSync(join(c, "10", hex(low)))).toBe(true);
    expect(existsSync(join(b, "90", hex(high)))).toBe(true);
    // Losing one copy still reads from the other route.
    rmSync(join(c, "90", hex(high)));
    for (let i = 0; i < 8; i++) expect(Array.from((await store.get(high))!)).toEqual([2]);
    expect(await store.has(high)).toBe(true);
    expect(await store.get(idWithFirstByte(0x91))).toBeNull();
    await store.delete(low);
    expect(await store.has(low)).toBe(false);
    await store.close();
  });

  test("an id no route covers is a bad-config error; a single full route is the bare backend", async () => {
    const store = await openStore([`00-0f=dir://${tempRoot()}`]);
    expect((await rejection(store.put(idWithFirstByte(0x20), new Uint8Array(1)))).code).toBe("bad-config");
    const bare: BlockBackend = await openStore([`dir://${tempRoot()}`]);
    expect(bare).not.toBeInstanceOf(RoutedStore);
  });

  test("a read falls through a failing route to a healthy one", async () => {
    const silent = await silentServer();
    try {
      const good = tempRoot();
      const store = await openStore([`http://127.0.0.1:${silent.port}/x?timeout=200`, `dir://${good}`]);
      const id = idWithFirstByte(0x42);
      await store.put(id, new Uint8Array([7])); // the hub is read-only, so only the dir is written
      for (let i = 0; i < 4; i++) expect(Array.from((await store.get(id))!)).toEqual([7]);
    } finally {
      silent.close();
    }
  });
});
