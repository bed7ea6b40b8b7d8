// The signed RPC server end to end against a real host-mode init process: every rejection case gets
// its specific error, framing errors close the connection, nothing else is affected.
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { generateKeyPair, keyId } from "../../init/identity/ed25519.ts";
import { RpcClient } from "../../init/rpc/client.ts";
import { cbor, frame, MAX_FRAME } from "../../init/rpc/protocol.ts";
import { until } from "./helpers.ts";
import { startHostNode, type HostNode } from "./host-node.ts";
import { craft, RawConn } from "./raw-conn.ts";

// these start real processes; on a loaded 2-core machine they need more than the 5 s default
setDefaultTimeout(120_000);

let node: HostNode;
beforeAll(async () => {
  node = await startHostNode({
    ticker: `exec: sh -c 'i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.05; done'\n`,
    idle: "exec: sleep 1000\n",
  });
});
afterAll(async () => {
  await node.stop();
});

async function rejected(bytes: Uint8Array): Promise<{ code: string; message: string; conn: RawConn }> {
  const conn = await RawConn.open({ port: node.port });
  conn.send(bytes);
  const r = await conn.next();
  expect(r.y).toBe("error");
  expect(keyId(r.k)).toBe(node.nodeId);
  return { code: r.e!.code, message: r.e!.message, conn };
}

async function expectStillServing(conn: RawConn): Promise<void> {
  conn.send(craft(node.keys.reader, { i: 77 }));
  const ok = await conn.next();
  expect(ok).toMatchObject({ i: 77, y: "result" });
  conn.close();
}

describe("rejections", () => {
  test("malformed CBOR gets malformed-cbor and the connection stays usable", async () => {
    const { code, conn } = await rejected(frame(new Uint8Array([0xff, 0xfe, 0x1c])));
    expect(code).toBe("malformed-cbor");
    await expectStillServing(conn);
  });
  test("an envelope without body or signature", async () => {
    const { code, conn } = await rejected(frame(cbor.encode({ hello: 1 })));
    expect(code).toBe("malformed-envelope");
    await expectStillServing(conn);
  });
  test("missing fields and wrong types name the field", async () => {
    const k = node.keys.reader;
    for (const [bytes, field] of [
      [craft(k, {}, { omit: ["n"] }), "field n"],
      [craft(k, { i: "seven" }), "field i"],
      [craft(k, { m: 42 }), "field m"],
      [craft(k, { t: "now" }), "field t"],
      [craft(k, { k: new Uint8Array(5) }), "field k"],
      [craft(k, {}, { omit: ["p"] }), "field p"],
    ] as const) {
      const { code, message, conn } = await rejected(bytes);
      expect(code).toBe("bad-request");
      expect(message).toContain(field);
      conn.close();
    }
  });
  test("unknown key", async () => {
    const stranger = generateKeyPair();
    const { code, message } = await rejected(craft(stranger));
    expect(code).toBe("unknown-key");
    expect(message).toContain(keyId(stranger.publicKey));
  });
  test("bad signature: signed by another key, or bytes flipped", async () => {
    expect((await rejected(craft(node.keys.admin, {}, { signer: generateKeyPair() }))).code).toBe("bad-signature");
    expect((await rejected(craft(node.keys.admin, {}, { signature: new Uint8Array(64) }))).code).toBe("bad-signature");
  });
  test("timestamps outside the window, in the past or the future", async () => {
    const old = await rejected(craft(node.keys.admin, { t: Date.now() - 10 * 60_000 }));
    expect(old.code).toBe("stale-timestamp");
    expect(old.message).toContain("clock");
    expect((await rejected(craft(node.keys.admin, { t: Date.now() + 10 * 60_000 }))).code).toBe("stale-timestamp");
  });
  test("a replayed request is refused, on the same and on another connection", async () => {
    const bytes = craft(node.keys.reader, { i: 5 });
    const conn = await RawConn.open({ port: node.port });
    conn.send(bytes);
    expect((await conn.next()).y).toBe("result");
    conn.send(bytes);
    expect((await conn.next()).e?.code).toBe("replay");
    const other = await RawConn.open({ unix: node.socket });
    other.send(bytes);
    expect((await other.next()).e?.code).toBe("replay");
    await expectStillServing(conn);
    other.close();
  });
  test("unknown method", async () => {
    const { code, message } = await rejected(craft(node.keys.admin, { m: "node.selfdestruct" }));
    expect(code).toBe("unknown-method");
    expect(message).toContain("node.selfdestruct");
  });
  test("a reader calling operator and admin methods is forbidden", async () => {
    for (const m of ["service.stop", "node.reboot", "service.monitor"]) {
      const { code, message } = await rejected(craft(node.keys.reader, { m, p: { name: "idle" } }));
      expect(code).toBe("forbidden");
      expect(message).toContain("reader");
    }
    const op = await rejected(craft(node.keys.operator, { m: "node.poweroff", p: {} }));
    expect(op.code).toBe("forbidden");
  });
  test("parameters are validated before dispatch, naming the path", async () => {
    const cases: [unknown, string][] = [
      [{}, "name"],
      [{ name: 5 }, "name"],
      [{ name: "idle", extra: 1 }, "extra"],
      [{ name: "../etc" }, "name"],
    ];
    for (const [p, path] of cases) {
      const { code, message } = await rejected(craft(node.keys.admin, { m: "service.status", p }));
      expect(code).toBe("bad-params");
      expect(message).toContain(path);
    }
  });
  test("a request id already in flight on the connection is refused", async () => {
    const conn = await RawConn.open({ port: node.port });
    conn.send(craft(node.keys.reader, { i: 9, m: "service.logs", p: { name: "ticker", follow: true } }));
    await until(() => conn.responses.some((r) => r.y === "item"), "first streamed line");
    conn.send(craft(node.keys.reader, { i: 9 }));
    await until(() => conn.responses.some((r) => r.y === "error"), "duplicate-id reply");
    expect(conn.responses.find((r) => r.y === "error")?.e?.code).toBe("duplicate-id");
    conn.close();
  });
  test("an oversized frame gets frame-too-large and the connection is closed", async () => {
    const conn = await RawConn.open({ port: node.port });
    const header = new Uint8Array(4);
    new DataView(header.buffer).setUint32(0, MAX_FRAME + 1);
    conn.send(header);
    const r = await conn.next();
    expect(r.e?.code).toBe("frame-too-large");
    await until(() => conn.closed, "server to close");
  });
  test("errors from the method keep their type", async () => {
    const c = await RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: node.port }, node.keys.admin);
    await expect(c.call("service.status", { name: "nope" })).rejects.toMatchObject({ code: "not-found" });
    await expect(c.call("service.forget", { name: "idle" })).rejects.toMatchObject({ code: "conflict" });
    await expect(c.call("service.kill", { name: "idle", signal: "SIGBOGUS" })).rejects.toMatchObject({ code: "bad-params" });
    await expect(c.call("service.monitor", { name: "x", config: { exec: "true", bogus: 1 } })).rejects.toMatchObject({ code: "bad-params", data: { path: "config.bogus" } });
    c.close();
  });
});

describe("calls", () => {
  test("responses are signed by the node key and echo the request nonce", async () => {
    const c = await RpcClient.connect({ kind: "unix", path: node.socket }, node.keys.reader);
    const info = await c.call<{ id: string; mode: string }>("node.info");
    expect(info.id).toBe(node.nodeId);
    expect(info.mode).toBe("host");
    expect(c.nodeId).toBe(node.nodeId);
    c.close();
  });
  test("a client pinned to another node key refuses the answer", async () => {
    const c = await RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: node.port }, node.keys.reader, { expectNodeKey: generateKeyPair().publicKey });
    await expect(c.call("node.info")).rejects.toMatchObject({ code: "node-key-mismatch" });
  });
  test("many concurrent calls on one connection", async () => {
    const c = await RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: node.port }, node.keys.reader);
    const results = await Promise.all(Array.from({ length: 200 }, (_, i) => c.call<{ name: string }>("service.status", { name: i % 2 ? "idle" : "ticker" })));
    results.forEach((r, i) => expect(r.name).toBe(i % 2 ? "idle" : "ticker"));
    c.close();
  });
  test("streamed logs can be cancelled while other calls go on", async () => {
    const c = await RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: node.port }, node.keys.reader);
    const items: { line: string }[] = [];
    const abort = new AbortController();
    const follow = c.call("service.logs", { name: "ticker", lines: 1, follow: true }, { onItem: (l) => items.push(l as { line: string }), signal: abort.signal });
    await until(() => items.length >= 3, "three streamed lines");
    expect(items.every((l) => l.line.startsWith("tick "))).toBe(true);
    const seq = items.map((l) => Number(l.line.split(" ")[1]));
    expect(seq[1]).toBe(seq[0] + 1);
    expect((await c.call<{ name: string }>("service.status", { name: "idle" })).name).toBe("idle");
    abort.abort();
    await expect(follow).rejects.toMatchObject({ code: "cancelled" });
    expect(await c.call<unknown[]>("service.logs", { name: "ticker", lines: 2 })).toHaveLength(2);
    c.close();
  });
  test("only the caller can cancel its call", async () => {
    const conn = await RawConn.open({ port: node.port });
    conn.send(craft(node.keys.reader, { i: 1, m: "service.logs", p: { name: "ticker", follow: true } }));
    await until(() => conn.responses.some((r) => r.y === "item"), "a streamed line");
    conn.send(craft(node.keys.operator, { i: 2, m: "rpc.cancel", p: { id: 1 } }));
    await until(() => conn.responses.some((r) => r.i === 2), "cancel reply");
    expect(conn.responses.find((r) => r.i === 2)?.e?.code).toBe("forbidden");
    conn.close();
  });
  test("the method table lists roles", async () => {
    const c = await RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: node.port }, node.keys.reader);
    const list = await c.call<{ name: string; role: string }[]>("rpc.methods");
    expect(list.find((m) => m.name === "node.reboot")?.role).toBe("admin");
    expect(list.find((m) => m.name === "service.stop")?.role).toBe("operator");
    expect(list.find((m) => m.name === "node.info")?.role).toBe("reader");
    c.close();
  });
});

test("rejections are logged by the node", () => {
  expect(node.output()).toContain("unknown-key");
  expect(node.output()).toContain("bad-signature");
});
