// A peer that stops reading while following a chatty log: the node closes that connection once
// 16 MiB of replies pile up, instead of buffering without bound, and keeps serving everyone else.
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { createConnection } from "node:net";
import { join } from "node:path";
import { RpcClient } from "../../init/rpc/client.ts";
import { until } from "./helpers.ts";
import { startHostNode, type HostNode } from "./host-node.ts";
import { craft } from "./raw-conn.ts";

setDefaultTimeout(120_000);
let node: HostNode;
let go: string;
beforeAll(async () => {
  node = await startHostNode({});
  go = join(node.dir, "go");
  // once `go` exists, 4000-byte lines without end (so whenever the follow subscribes, more come)
  const c = await RpcClient.connect({ kind: "unix", path: node.socket }, node.keys.admin);
  await c.call("service.monitor", { name: "burst", config: { exec: `sh -c 'while [ ! -f ${go} ]; do sleep 0.02; done; while true; do head -c 4000000 /dev/zero | tr "\\\\0" x | fold -w 4000; done'` } });
  c.close();
});
afterAll(async () => {
  await node.stop();
});

test("a connection that does not read its replies is closed at the limit", async () => {
  const sock = createConnection(node.socket);
  await new Promise((r) => sock.once("connect", r));
  let closed = false;
  sock.on("close", () => (closed = true));
  sock.on("error", () => {});
  sock.pause(); // read nothing
  sock.write(craft(node.keys.reader, { i: 1, m: "service.logs", p: { name: "burst", lines: 0, follow: true } }));
  writeFileSync(go, "");
  await until(() => node.output().includes("bytes of replies unread"), "the node to give up on the connection");
  sock.resume();
  await until(() => closed, "the connection to close");
  const c = await RpcClient.connect({ kind: "unix", path: node.socket }, node.keys.reader);
  expect((await c.call<{ name: string }>("service.status", { name: "burst" })).name).toBe("burst");
  c.close();
});
