// Lazily loaded method namespaces: a part loads on the first call into its namespace, once; a failed
// load stays failed; names outside the namespace never trigger it.
import { expect, test } from "bun:test";
import { method, MethodRegistry } from "../../init/rpc/registry.ts";
import { s } from "../../init/rpc/schema.ts";

const ping = method({ role: "reader", summary: "ping", params: s.object({}), handler: async () => "pong" });

test("a namespace loads on its first call, once", async () => {
  const r = new MethodRegistry();
  let loads = 0;
  r.registerLazy("disk", async () => {
    loads++;
    r.registerMethods({ "disk.ping": ping });
  });
  expect(r.get("disk.ping")).toBeUndefined();
  expect(loads).toBe(0);
  expect(r.loadFor("other.ping")).toBeNull();
  expect(r.loadFor("diskping")).toBeNull();
  expect(r.loadFor("diskx.ping")).toBeNull();
  await Promise.all([r.loadFor("disk.ping"), r.loadFor("disk.other")]);
  expect(loads).toBe(1);
  expect(r.get("disk.ping")).toBe(ping);
  await r.loadFor("disk.ping");
  expect(loads).toBe(1);
});

test("a failed load keeps failing with its cause, and a full list leaves it out", async () => {
  const r = new MethodRegistry();
  r.registerMethods({ "node.ping": ping });
  let loads = 0;
  r.registerLazy("broken", async () => {
    loads++;
    throw new Error("native addon not found");
  });
  r.registerLazy("fine", async () => r.registerMethods({ "fine.ping": ping }));
  await expect(r.loadFor("broken.x")!).rejects.toThrow("native addon not found");
  await expect(r.loadFor("broken.y")!).rejects.toThrow("native addon not found");
  expect(loads).toBe(1);
  await r.loadAll();
  expect(r.list().map((m) => m.name)).toEqual(["fine.ping", "node.ping"]);
  expect(() => r.registerLazy("fine", async () => {})).toThrow("already registered");
});
