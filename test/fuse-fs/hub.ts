// A stoppable HTTP block hub for the fault tests, serving a dir store's blobs the way an rfs hub does
// (GET /<hex[0:2]>/<hex>). Control: PUT /_mode with "ok" or "hang" (every block request waits until
// the mode is "ok" again), PUT /_hold with ids (one per line) whose requests wait until released.
// Prints its port on stdout. Usage: bun hub.ts ROOT [PORT]
import { existsSync } from "node:fs";
import { join } from "node:path";

const [root, portArg] = process.argv.slice(2);
let mode = "ok";
let held = new Set<string>();
let waiters: (() => void)[] = [];

function releaseAll(): void {
  const w = waiters;
  waiters = [];
  for (const f of w) f();
}

const server = Bun.serve({
  hostname: "127.0.0.1",
  port: Number(portArg ?? 0),
  async fetch(req) {
    const path = new URL(req.url).pathname;
    if (path === "/_mode") {
      mode = (await req.text()).trim();
      if (mode === "ok") releaseAll();
      return new Response("ok");
    }
    if (path === "/_hold") {
      held = new Set((await req.text()).split("\n").filter(Boolean));
      releaseAll();
      return new Response("ok");
    }
    const name = path.split("/").pop() ?? "";
    while (mode === "hang" || held.has(name)) await new Promise<void>((r) => waiters.push(r));
    const file = join(root, path);
    if (!/^\/[0-9a-f]{2}\/[0-9a-f]{64}$/.test(path) || !existsSync(file)) return new Response("not found", { status: 404 });
    return new Response(Bun.file(file));
  },
});
console.log(server.port);
