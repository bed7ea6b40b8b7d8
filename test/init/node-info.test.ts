// node.info's machine facts: memory, disks and NICs are re-read off the request path, so a call is
// answered from the last snapshot while a newer one is read.
import { expect, test } from "bun:test";
import { hostname, networkInterfaces, uptime } from "node:os";
import { machineFacts, systemUptime } from "../../init/methods/node-info.ts";

test("the first call waits for a snapshot; a stale one is answered at once and replaced in the background", async () => {
  const first = await machineFacts(0);
  expect(first.memory.totalBytes).toBeGreaterThan(0);
  expect(first.nics.map((n) => n.name)).toEqual(expect.arrayContaining(Object.keys(networkInterfaces())));
  // stale (older than maxAge 0): the answer is the same snapshot, a refresh starts behind it
  await Bun.sleep(2);
  const second = await machineFacts(0);
  expect(second.nics).toBe(first.nics);
  for (let i = 0; i < 200 && (await machineFacts(60_000)).nics === first.nics; i++) await Bun.sleep(5);
  const third = await machineFacts(60_000);
  expect(third.nics).not.toBe(first.nics);
  expect(third.nics.map((n) => n.name)).toEqual(first.nics.map((n) => n.name));
});

test("the hostname comes with the snapshot; the system uptime follows sysinfo's without a call per request", async () => {
  const facts = await machineFacts(0);
  expect(facts.hostname).toBe(hostname());
  // whole seconds either way, read at slightly different moments
  const before = uptime();
  const ours = systemUptime();
  const after = uptime();
  expect(Number.isInteger(ours)).toBe(true);
  expect(ours).toBeGreaterThanOrEqual(before - 1);
  expect(ours).toBeLessThanOrEqual(after + 1);
});

test("the system uptime never goes back while snapshots are re-read", async () => {
  let last = systemUptime();
  const end = performance.now() + 2500;
  while (performance.now() < end) {
    await machineFacts(0);
    await Bun.sleep(20);
    const now = systemUptime();
    expect(now).toBeGreaterThanOrEqual(last);
    last = now;
  }
});
