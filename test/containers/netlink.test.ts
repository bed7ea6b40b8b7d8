// The rtnetlink side of container networking (netlink.ts, off-thread.ts) against the kernel, read
// back with iproute2: run in a fresh network and mount namespace so nothing touches the host.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bun, repoRoot } from "./helpers.ts";
import { SPARE_VETH_PREFIX } from "../../init/containers/netlink.ts";

/** Shared by the probes: iproute2 as JSON, in ours or in the namespace at a path; argv's last is a netns path to use. */
const prelude = `
import { closeSync, openSync, readFileSync } from "node:fs";
import { deleteLink } from "${repoRoot}/init/containers/netlink.ts";
import { deleteLinkOffThread, makeNetnsOffThread, makeSpareNetnsOffThread } from "${repoRoot}/init/containers/off-thread.ts";
const ip = (...a) => { const r = Bun.spawnSync(["ip", "-j", ...a]); if (r.exitCode) throw new Error(r.stderr.toString()); return JSON.parse(r.stdout.toString() || "[]"); };
const insideOf = (ns, ...a) => JSON.parse(Bun.spawnSync(["nsenter", "--net=" + ns, "ip", "-j", ...a]).stdout.toString() || "[]");
const netns = process.argv.at(-1);
`;

/**
 * Runs a probe (after the prelude) in fresh mount and network namespaces; returns what it printed as
 * JSON. Its stderr must be empty, or match `logged` (the warnings the probe expects).
 */
function runProbe(probe: string, logged?: RegExp) {
  const dir = mkdtempSync(join(tmpdir(), "zos-netlink-"));
  try {
    const r = Bun.spawnSync(["unshare", "--mount", "--net", "--propagation", "private", bun, "-e", prelude + probe, join(dir, "netns")], { stdout: "pipe", stderr: "pipe" });
    if (logged) expect(r.stderr.toString()).toMatch(logged);
    else expect(r.stderr.toString()).toBe("");
    return JSON.parse(r.stdout.toString());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const probe = `
const inside = (...a) => insideOf(netns, ...a);
Bun.spawnSync(["ip", "link", "add", "zt-br", "type", "bridge"]);
closeSync(openSync(netns, "w"));
await makeNetnsOffThread(netns, { peer: "zt-veth", peerPid: process.pid, ip: "10.99.0.2", prefix: 24, gateway: "10.99.0.1" }, "zt-br");
const out = { addr: inside("addr", "show", "eth0"), lo: inside("link", "show", "lo"), route: inside("route"), veth: ip("link", "show", "zt-veth"), hostAddrs: ip("addr") };
let again;
try {
  closeSync(openSync(netns + "2", "w"));
  await makeNetnsOffThread(netns + "2", { peer: "zt-veth", peerPid: process.pid, ip: "10.99.0.3", prefix: 24, gateway: "10.99.0.1" }, "zt-br");
} catch (e) {
  again = { name: e.name, errno: e.errno, message: e.message };
}
out.again = again;
await deleteLinkOffThread("zt-veth");
out.vethsLeft = ip("link", "show", "type", "veth").length;
out.deletedTwice = deleteLink("zt-veth");
// a veth already gone is no error for the off-thread delete either
out.missingDeleted = await deleteLinkOffThread("zt-veth").then(() => "resolved", (e) => e.message);
console.log(JSON.stringify(out));
`;

test("a namespace made off-thread has eth0 addressed and up, lo up, a default route; the peer is on the bridge; the veth is deleted off-thread", () => {
  const out = runProbe(probe);
  const eth0 = out.addr[0];
  expect(eth0.flags).toContain("UP");
  expect(eth0.addr_info.filter((a: { family: string }) => a.family === "inet")).toMatchObject([{ local: "10.99.0.2", prefixlen: 24 }]);
  expect(out.lo[0].flags).toContain("UP");
  expect(out.route).toContainEqual(expect.objectContaining({ dst: "default", gateway: "10.99.0.1", dev: "eth0" }));
  expect(out.veth[0]).toMatchObject({ ifname: "zt-veth", master: "zt-br" });
  expect(out.veth[0].flags).toContain("UP");
  // the thread went back: nothing of the container's namespace shows in ours
  expect(out.hostAddrs.some((l: { ifname: string }) => l.ifname === "eth0")).toBe(false);
  // a second namespace with a taken peer name: the kernel's EEXIST, by name
  expect(out.again).toMatchObject({ name: "OffThreadError", errno: 17 });
  expect(out.again.message).toMatch(/veth eth0\/zt-veth: EEXIST/);
  expect(out.vethsLeft).toBe(0);
  expect(out.deletedTwice).toBe(false);
  expect(out.missingDeleted).toBe("resolved");
});

const spareProbe = `
const make = async (path, peer, addr) => {
  closeSync(openSync(path, "w"));
  await makeNetnsOffThread(path, { peer, peerPid: process.pid, ip: addr, prefix: 24, gateway: "10.99.0.1" }, "zt-br");
};
Bun.spawnSync(["ip", "link", "add", "zt-br", "type", "bridge"]);
Bun.spawnSync(["ip", "link", "set", "zt-br", "up"]);
await makeSpareNetnsOffThread();
await makeSpareNetnsOffThread();
const out = { spares: ip("link", "show", "type", "veth") };
await make(netns + "a", "zt-a", "10.99.0.2");
Object.assign(out, { a: ip("link", "show", "zt-a"), aAddr: insideOf(netns + "a", "addr", "show", "eth0"), aLo: insideOf(netns + "a", "link", "show", "lo"), aRoute: insideOf(netns + "a", "route") });
await make(netns + "b", "zt-b", "10.99.0.3");
out.b = ip("link", "show", "zt-b");
out.ping = Bun.spawnSync(["nsenter", "--net=" + netns + "a", "busybox", "ping", "-c", "1", "-W", "5", "10.99.0.3"]).exitCode;
// a spare whose claim fails (the name is taken) is undone; making one afresh then fails the same way
await makeSpareNetnsOffThread();
try {
  await make(netns + "c", "zt-a", "10.99.0.4");
} catch (e) {
  out.taken = { errno: e.errno, message: e.message };
}
out.vethsLeft = ip("link", "show", "type", "veth").map((l) => l.ifname).sort();
out.cMounts = readFileSync("/proc/self/mountinfo", "utf8").split(netns + "c ").length - 1;
console.log(JSON.stringify(out));
`;

test("a spare namespace made ahead is what the next one takes: renamed, addressed, on the bridge; a failed take leaves nothing", () => {
  // the failed take is logged, with the claim's error (the name is taken)
  const out = runProbe(spareProbe, /^\S+ warn  containers: cannot take the spare network namespace for zt-a, making a new one NetlinkError: zsp\w+ as zt-a master zt-br up: EEXIST\n(    at .*\n)*$/);
  // asked twice, made once: down, on no bridge, under a name no container has
  expect(out.spares).toHaveLength(1);
  const spare = out.spares[0];
  expect(spare.ifname).toStartWith(SPARE_VETH_PREFIX);
  expect(spare.flags).not.toContain("UP");
  expect(spare.master).toBeUndefined();
  // the first namespace is the spare (a rename keeps the index), set up as a new one would be
  expect(out.a[0]).toMatchObject({ ifindex: spare.ifindex, ifname: "zt-a", master: "zt-br" });
  expect(out.a[0].flags).toContain("UP");
  expect(out.aAddr[0].addr_info.filter((a: { family: string }) => a.family === "inet")).toMatchObject([{ local: "10.99.0.2", prefixlen: 24 }]);
  expect(out.aLo[0].flags).toContain("UP");
  expect(out.aRoute).toContainEqual(expect.objectContaining({ dst: "default", gateway: "10.99.0.1", dev: "eth0" }));
  // the second had no spare to take: made afresh, and the two reach each other over the bridge
  expect(out.b[0].ifindex).not.toBe(spare.ifindex);
  expect(out.b[0].master).toBe("zt-br");
  expect(out.ping).toBe(0);
  expect(out.taken.errno).toBe(17);
  expect(out.taken.message).toMatch(/veth eth0\/zt-a: EEXIST/);
  expect(out.vethsLeft).toEqual(["zt-a", "zt-b"]);
  // the failed take unbound the spare: what is left is the namespace made afresh (the manager's teardown removes it)
  expect(out.cMounts).toBe(1);
});
