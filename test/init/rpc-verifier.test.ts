// Request signatures verified on the server's own verifier threads (init/rpc/verifier.ts): every
// verdict matches a synchronous check, verdicts come back in submission order, a full ring overflows
// onto Bun's pool, stopping hands owed jobs to the pool, and a server under many pipelining
// connections answers every request with its own id and nonce, refusing exactly the forged ones.
import { afterAll, describe, expect, test } from "bun:test";
import { generateKeyPair, publicKeyObject, signMessage, verifySignature, type KeyPair } from "../../init/identity/ed25519.ts";
import { cbor, frame, newNonce, requestDigest } from "../../init/rpc/protocol.ts";
import { method, MethodRegistry } from "../../init/rpc/registry.ts";
import { s } from "../../init/rpc/schema.ts";
import { RpcServer } from "../../init/rpc/server.ts";
import { TrustStore } from "../../init/rpc/trust.ts";
import { SignatureVerifier } from "../../init/rpc/verifier.ts";
import { CAPACITY } from "../../init/rpc/verify-ring.ts";
import { until } from "./helpers.ts";
import { RawConn } from "./raw-conn.ts";

interface Job {
  key: KeyPair;
  digest: Uint8Array;
  signature: Uint8Array;
  expected: boolean;
}

/** `count` jobs from two keys: most valid, every 5th over a changed digest, every 7th under the other key. */
function jobs(count: number): Job[] {
  const keys = [generateKeyPair(), generateKeyPair()];
  return Array.from({ length: count }, (_, i) => {
    const key = keys[i % 2];
    const digest = requestDigest(new TextEncoder().encode(`request ${i}`));
    const signature = signMessage(i % 7 === 3 ? keys[(i + 1) % 2] : key, digest);
    const checked = i % 5 === 4 ? requestDigest(new TextEncoder().encode(`tampered ${i}`)) : digest;
    return { key, digest: checked, signature, expected: verifySignature(key.publicKey, checked, signature) };
  });
}

/** Submits every job at once; resolves with the verdicts and the order they were reported in. */
function verifyAll(verifier: SignatureVerifier, list: Job[], afterSubmit?: () => void): Promise<{ verdicts: boolean[]; order: number[] }> {
  const verdicts: boolean[] = new Array(list.length);
  const order: number[] = [];
  return new Promise((resolve) => {
    list.forEach((j, i) =>
      verifier.verify(j.key.publicKey, publicKeyObject(j.key.publicKey)!, j.digest, j.signature, (ok) => {
        verdicts[i] = ok;
        order.push(i);
        if (order.length === list.length) resolve({ verdicts, order });
      }),
    );
    afterSubmit?.();
  });
}

describe("signature verifier", () => {
  test("verdicts on the verifier threads match a synchronous check and come back in submission order", async () => {
    const verifier = new SignatureVerifier({ threads: 2, startAt: 1 });
    try {
      const list = jobs(300);
      expect(list.some((j) => !j.expected) && list.some((j) => j.expected)).toBe(true);
      const { verdicts, order } = await verifyAll(verifier, list);
      expect(verifier.threaded).toBe(true);
      expect(verdicts).toEqual(list.map((j) => j.expected));
      expect(order).toEqual(list.map((_, i) => i));
    } finally {
      verifier.stop();
    }
  });

  test("more jobs than the ring holds overflow onto Bun's pool with the same verdicts", async () => {
    const verifier = new SignatureVerifier({ threads: 1, startAt: 1 });
    try {
      const list = jobs(CAPACITY + 200);
      const { verdicts } = await verifyAll(verifier, list);
      expect(verdicts).toEqual(list.map((j) => j.expected));
    } finally {
      verifier.stop();
    }
  });

  test("stopping with jobs owed verifies them on Bun's pool", async () => {
    const verifier = new SignatureVerifier({ threads: 1, startAt: 1 });
    const list = jobs(200);
    const { verdicts } = await verifyAll(verifier, list, () => verifier.stop());
    expect(verifier.threaded).toBe(false);
    expect(verdicts).toEqual(list.map((j) => j.expected));
  });

  test("calls one at a time stay on Bun's pool; the threads start once calls overlap", async () => {
    const verifier = new SignatureVerifier({ threads: 1, startAt: 4 });
    try {
      const list = jobs(10);
      for (const j of list) expect((await verifyAll(verifier, [j])).verdicts).toEqual([j.expected]);
      expect(verifier.threaded).toBe(false);
      expect((await verifyAll(verifier, list)).verdicts).toEqual(list.map((j) => j.expected));
      expect(verifier.threaded).toBe(true);
    } finally {
      verifier.stop();
    }
  });
});

describe("server under many pipelining connections", () => {
  const caller = generateKeyPair();
  const node = generateKeyPair();
  const trust = new TrustStore();
  trust.add(caller.publicKey, "reader");
  const registry = new MethodRegistry();
  registry.registerMethods({
    "test.echo": method({ role: "reader", params: s.unknown(), summary: "returns its params", handler: async (p) => p }),
  });
  const server = new RpcServer({ identity: node, registry, trust });
  const port = server.listenTcp("127.0.0.1", 0);
  afterAll(() => server.stop());

  test("every request gets its own answer; exactly the forged ones are refused", async () => {
    const CONNECTIONS = 24, CALLS = 60;
    const conns = await Promise.all(Array.from({ length: CONNECTIONS }, async (_, c) => {
      const conn = await RawConn.open({ port });
      // every call of the connection is written at once: all of them are in flight together
      const sent = Array.from({ length: CALLS }, (_, i) => {
        const body = { m: "test.echo", p: { c, i }, i: i + 1, t: Date.now(), n: newNonce(), k: caller.publicKey };
        const b = cbor.encode(body);
        const forged = (c * CALLS + i) % 9 === 4;
        const sig = signMessage(caller, requestDigest(b));
        if (forged) sig[10] ^= 1;
        return { body, forged, bytes: frame(cbor.encode({ b, s: sig })) };
      });
      conn.send(Buffer.concat(sent.map((x) => x.bytes)));
      return { conn, sent, c };
    }));
    await until(() => conns.every((x) => x.conn.responses.length === CALLS), "every reply", 60_000);
    expect(server.verifierThreaded).toBe(true);
    for (const { conn, sent, c } of conns) {
      conn.close();
      const replies = conn.responses;
      for (const r of replies) {
        expect(r.k).toEqual(node.publicKey);
        const req = sent[(r.i as number) - 1];
        expect(r.n).toEqual(req.body.n);
        if (req.forged) expect(r).toMatchObject({ y: "error", e: { code: "bad-signature" } });
        else expect(r).toMatchObject({ y: "result", r: { c, i: (r.i as number) - 1 } });
      }
      expect(new Set(replies.map((r) => r.i)).size).toBe(CALLS);
    }
  });
});
