// The rtnetlink side of container networking (netlink.ts, off-thread.ts) against the kernel, read
// back with iproute2: run in a fresh network and mount namespace so nothing touches the host.
import { expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bun, repoRoot } from "./helpers.ts";

const probe = `
import { closeSync, openSync } from "node:fs";
import { deleteLink } from "${repoRoot}/init/containers/netlink.ts";
import { deleteLinkOffThread, makeNetnsOffThread } from "${repoRoot}/init/containers/off-thread.ts";
const ip = (...a) => { const r = Bun.spawnSync(["ip", "-j", ...a]); if (r.exitCode) throw new Error(r.stderr.toString()); return JSON.parse(r.stdout.toString() || "[]"); };
const inside = (...a) => { const r = Bun.spawnSync(["nsenter", "--net=" + netns, "ip", "-j", ...a]); return JSON.parse(r.stdout.toString() || "[]"); };
const netns = process.argv.at(-1);
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
  const dir = mkdtempSync(join(tmpdir(), "zos-netlink-"));
  try {
    const r = Bun.spawnSync(["unshare", "--mount", "--net", "--propagation", "private", bun, "-e", probe, join(dir, "netns")], { stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe("");
    const out = JSON.parse(r.stdout.toString());
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
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
