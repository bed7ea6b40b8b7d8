// How the server answers many calls at once: under many pipelining connections every request gets its
// own answer (verified on the verifier threads), and a reader slower than the replies still gets every
// reply intact, in order (replies are framed in a reused scratch buffer and copied only when a socket
// does not take them at once).
import { afterAll, describe, expect, test } from "bun:test";
import { createConnection } from "node:net";
import { generateKeyPair, signMessage } from "../../init/identity/ed25519.ts";
import { cbor, decodeResponse, frame, FrameReader, newNonce, requestDigest, type ResponseBody } from "../../init/rpc/protocol.ts";
import { method, MethodRegistry } from "../../init/rpc/registry.ts";
import { s } from "../../init/rpc/schema.ts";
import { RpcServer } from "../../init/rpc/server.ts";
import { TrustStore } from "../../init/rpc/trust.ts";
import { until } from "./helpers.ts";
import { craft, RawConn } from "./raw-conn.ts";

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

describe("replies", () => {
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

  test("a reader slower than the replies gets each intact and in order", async () => {
    const CALLS = 300;
    const sock = createConnection({ host: "127.0.0.1", port });
    await new Promise((r) => sock.once("connect", r));
    sock.pause(); // read nothing while ~10 MB of replies are produced: more than the kernel's socket buffers hold
    const replies: ResponseBody[] = [];
    const reader = new FrameReader();
    sock.on("data", (chunk: Buffer) => {
      reader.push(new Uint8Array(chunk));
      for (let p = reader.next(); p; p = reader.next()) replies.push(decodeResponse(p)); // throws if a reply was overwritten
    });
    // replies of ~35 KB: each fits the server's scratch, and the socket soon stops taking them whole
    const payload = (i: number) => `${i}:`.padEnd(35_000, String.fromCharCode(97 + (i % 26)));
    for (let i = 0; i < CALLS; i++) sock.write(craft(caller, { m: "test.echo", i: i + 1, p: { text: payload(i) } }));
    await Bun.sleep(300);
    sock.resume();
    await until(() => replies.length === CALLS, "every reply", 60_000);
    sock.end();
    expect(replies.map((r) => r.i)).toEqual(Array.from({ length: CALLS }, (_, i) => i + 1));
    replies.forEach((r, i) => expect(r).toMatchObject({ y: "result", r: { text: payload(i) } }));
  });
});
