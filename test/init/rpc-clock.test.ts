// A node whose clock is far off (no NTP, a loaded VM) refuses requests as stale; the client learns
// the node's time from that signed refusal and signs once more at it, so an operator still gets in.
import { afterAll, expect, test } from "bun:test";
import { generateKeyPair } from "../../init/identity/ed25519.ts";
import { RpcCallError, RpcClient } from "../../init/rpc/client.ts";
import { method, MethodRegistry } from "../../init/rpc/registry.ts";
import { s } from "../../init/rpc/schema.ts";
import { RpcServer } from "../../init/rpc/server.ts";
import { TrustStore } from "../../init/rpc/trust.ts";

const SKEW_MS = 5 * 60_000;
const caller = generateKeyPair();
const trust = new TrustStore();
trust.add(caller.publicKey, "reader");
const registry = new MethodRegistry();
let served = 0;
registry.registerMethods({
  "test.echo": method({ role: "reader", params: s.unknown(), summary: "returns its params", handler: async (p) => (served++, p) }),
});
const server = new RpcServer({ identity: generateKeyPair(), registry, trust, now: () => Date.now() + SKEW_MS });
const port = server.listenTcp("127.0.0.1", 0);
afterAll(() => server.stop());

test("a call to a node 5 minutes ahead succeeds after one re-signed retry, and the next needs none", async () => {
  const client = await RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port }, caller);
  try {
    expect(await client.call("test.echo", { n: 1 })).toEqual({ n: 1 });
    expect(Math.abs(client.clockOffsetMs - SKEW_MS)).toBeLessThan(30_000);
    const refusedBefore = server.stats.rejected["stale-timestamp"];
    expect(refusedBefore).toBe(1);
    expect(await client.call("test.echo", { n: 2 })).toEqual({ n: 2 });
    expect(server.stats.rejected["stale-timestamp"]).toBe(refusedBefore);
    expect(served).toBe(2);
  } finally {
    client.close();
  }
});

test("the retry happens once: a node whose clock keeps running away still refuses", async () => {
  let skew = SKEW_MS;
  const drifting = new RpcServer({ identity: generateKeyPair(), registry, trust, now: () => Date.now() + (skew += SKEW_MS) });
  const p = drifting.listenTcp("127.0.0.1", 0);
  const client = await RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: p }, caller);
  try {
    const err = await client.call("test.echo", {}).then(() => null, (e) => e);
    expect(err).toBeInstanceOf(RpcCallError);
    expect((err as RpcCallError).code).toBe("stale-timestamp");
    expect(drifting.stats.rejected["stale-timestamp"]).toBe(2);
  } finally {
    client.close();
    await drifting.stop();
  }
});
