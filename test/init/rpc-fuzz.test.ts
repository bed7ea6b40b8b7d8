// 10,000 mutated frames at a real host-mode node while a well-behaved client keeps calling it.
// Frames whose length header is intact must each get exactly one reply (an error, or a result when
// the mutation happened to be harmless); broken length headers close only their own connection.
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from "bun:test";
import { signMessage } from "../../init/identity/ed25519.ts";
import { RpcClient } from "../../init/rpc/client.ts";
import { cbor, frame, newNonce, requestDigest } from "../../init/rpc/protocol.ts";
import { until } from "./helpers.ts";
import { startHostNode, type HostNode } from "./host-node.ts";
import { craft, RawConn } from "./raw-conn.ts";

// these start real processes; on a loaded 2-core machine they need more than the 5 s default
setDefaultTimeout(120_000);

let node: HostNode;
beforeAll(async () => {
  node = await startHostNode({ idle: "exec: sleep 1000\n" });
});
afterAll(async () => {
  await node.stop();
});

/** xorshift32: the same mutations on every run, so a failure can be replayed. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return { int: (n: number) => next() % n, next };
}

const bases: { m: string; p: unknown }[] = [
  { m: "node.info", p: null },
  { m: "service.status", p: { name: "idle" } },
  { m: "service.list", p: {} },
  { m: "service.logs", p: { name: "idle", lines: 3 } },
  { m: "service.kill", p: { name: "idle", signal: "SIGCONT" } },
];

function mutateBytes(r: ReturnType<typeof rng>, b: Uint8Array): Uint8Array {
  const out = Array.from(b);
  const ops = 1 + r.int(4);
  for (let k = 0; k < ops; k++) {
    const at = r.int(Math.max(1, out.length));
    switch (r.int(5)) {
      case 0: out[at] ^= 1 << r.int(8); break;
      case 1: out[at] = r.int(256); break;
      case 2: out.splice(at, 1 + r.int(8)); break;
      case 3: out.splice(at, 0, ...Array.from({ length: 1 + r.int(8) }, () => r.int(256))); break;
      case 4: out.splice(at, 0, ...out.slice(r.int(out.length), r.int(out.length))); break;
    }
  }
  return Uint8Array.from(out.length ? out : [0]);
}

/** A frame with an intact length: either the envelope bytes mutated, or a re-signed mutated body. */
function mutatedFrame(r: ReturnType<typeof rng>, i: number): Uint8Array {
  const base = bases[r.int(bases.length)];
  const key = node.keys.reader;
  if (r.int(2) === 0) {
    const valid = craft(key, { m: base.m, p: base.p, i });
    return frame(mutateBytes(r, valid.subarray(4)));
  }
  // mutate the body then sign it properly, so the server gets past the signature into field and schema checks
  const body = cbor.encode({ m: base.m, p: base.p, i, t: Date.now(), n: newNonce(), k: key.publicKey });
  const b = mutateBytes(r, body);
  return frame(cbor.encode({ b, s: signMessage(key, requestDigest(b)) }));
}

test("10,000 mutated frames: every intact frame answered, the node keeps serving valid calls", async () => {
  const r = rng(0x5eed);
  const good = await RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: node.port }, node.keys.reader);
  let goodCalls = 0;
  let stopGood = false;
  const goodLoop = (async () => {
    while (!stopGood) {
      const info = await good.call<{ id: string }>("node.info");
      expect(info.id).toBe(node.nodeId);
      goodCalls++;
    }
  })();

  const total = 10_000;
  let sent = 0;
  let conn = await RawConn.open({ port: node.port });
  let expected = 0;
  while (sent < total) {
    const batch = Math.min(200, total - sent);
    for (let k = 0; k < batch; k++) {
      conn.send(mutatedFrame(r, sent + k));
      expected++;
    }
    sent += batch;
    // every frame in the batch gets exactly one final reply (item replies cannot occur: no base streams)
    await until(() => conn.responses.filter((x) => x.y !== "item").length >= expected, `replies to ${expected} frames`);
    expect(conn.closed).toBe(false);
    // now and then, a broken length header on its own connection: that connection alone is closed
    if (r.int(4) === 0) {
      const bad = await RawConn.open({ port: node.port });
      const header = new Uint8Array(4 + 16);
      const zero = r.int(2) === 0;
      new DataView(header.buffer).setUint32(0, zero ? 0 : 0x7fffffff);
      bad.send(header);
      await until(() => bad.closed, "framing error to close the connection");
      expect(bad.responses[0]?.e?.code).toBe(zero ? "bad-frame" : "frame-too-large");
    }
  }
  const codes = new Map<string, number>();
  for (const x of conn.responses) codes.set(x.e?.code ?? x.y, (codes.get(x.e?.code ?? x.y) ?? 0) + 1);
  expect(conn.responses.filter((x) => x.y !== "item").length).toBe(total);
  // the mutations reach every layer of checks
  for (const c of ["malformed-cbor", "malformed-envelope", "bad-request", "bad-signature"]) expect(codes.get(c) ?? 0).toBeGreaterThan(0);
  stopGood = true;
  await goodLoop;
  expect(goodCalls).toBeGreaterThan(0);
  expect(node.proc.exitCode).toBeNull();
  expect((await good.call<{ id: string }>("node.info")).id).toBe(node.nodeId);
  conn.close();
  good.close();
});
