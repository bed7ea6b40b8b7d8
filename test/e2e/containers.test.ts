// Containers and vdisks on a real node: one QEMU boot (software emulation), driven only through the
// signed RPC, with the busybox flist from a host store and vdisks from a host NBD server (zvdisk)
// attached by the node's kernel NBD client. In order:
//  - a web container (busybox httpd) with a port forward, reached from the host through QEMU's
//    hostfwd -> the node's port -> nft DNAT -> the container; its pids/cpu/memory limits are read
//    back from inside its own cgroup (pure cgroup v2 on the node);
//  - a container over its memory limit is OOM-killed: container.info/list report it and the
//    on-failure policy restarts it;
//  - a container mounts a vdisk by URL (attached, made ext4 on first use), writes a file, is deleted
//    (the vdisk is detached with it) and recreated: the file is still there and no mkfs ran again;
//  - a persistent container (overlay upper dir on a vdisk) keeps what it wrote to its root;
//  - vdisk.attach/list/detach over RPC (bad calls refused), read-only and read-write, containers
//    using vdisks attached that way, and poweroff detaching the still-attached vdisks before the
//    node powers off, cutting off one whose server hangs (SIGSTOPped) rather than waiting forever.
// Prints a timeline; a failure carries the console's tail and names the full log (build/e2e-logs/).
// Needs `make image` (out/vmlinuz, out/initramfs.cpio.zst).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RpcCallError } from "../../init/rpc/client.ts";
import { startExampleStore, type ExampleStore } from "../../scripts/example-store.ts";
import { startNode, waitRpcReady, withTimeout, type NodeVm } from "../../scripts/node-vm.ts";
import { freePort } from "../../scripts/qemu.ts";
import type { ContainerInfo } from "../../init/containers/index.ts";
import type { VdiskInfo } from "../../init/vdisks/manager.ts";
import { startVdiskServer, type HostVdiskServer } from "./vdisk-server.ts";

const BOOT_MS = 240_000;
const WEB_GUEST_PORT = 8080;
const dir = mkdtempSync(join(tmpdir(), "zos-e2e-containers-"));
const logs = join(import.meta.dir, "../../build/e2e-logs", new Date().toISOString().replace(/[:.]/g, "-"));
mkdirSync(logs, { recursive: true });

let store: ExampleStore;
let vdisks: HostVdiskServer;
/** Frozen before the poweroff: its vdisk's unmount hangs until shutdown cuts the connection. */
let hung: HostVdiskServer;
let node: NodeVm | null = null;
beforeAll(async () => {
  store = await startExampleStore(join(dir, "store"));
  vdisks = await startVdiskServer(join(dir, "vdisks"), ["ctr", "direct"]);
  hung = await startVdiskServer(join(dir, "hung"), ["hung"], "32M");
}, 120_000);
afterAll(async () => {
  await node?.vm.stop();
  await store?.stop();
  await vdisks?.stop();
  await hung?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function call<T>(method: string, params: unknown = {}, timeoutMs = 30_000): Promise<T> {
  const c = await node!.connect();
  try {
    return await withTimeout(c.call<T>(method, params), timeoutMs);
  } finally {
    c.close();
  }
}

async function callError(method: string, params: unknown): Promise<RpcCallError> {
  const e = await call(method, params).then(() => null, (x) => x);
  expect(e).toBeInstanceOf(RpcCallError);
  return e as RpcCallError;
}

async function until<T>(what: string, fn: () => Promise<T | null>, timeoutMs = 120_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v !== null) return v;
    if (performance.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}`);
    await Bun.sleep(500);
  }
}

const info = (name: string) => call<ContainerInfo>("container.info", { name });
const logLines = async (name: string) => (await call<{ line: string }[]>("container.logs", { name })).map((l) => l.line);

function create(params: Record<string, unknown>): Promise<ContainerInfo> {
  return call<ContainerInfo>("container.create", { flist: store.flistUrl, stores: [store.storeUrl], ...params }, 180_000);
}

/** Waits until the container's run ended and returns its exit. */
async function exited(name: string): Promise<NonNullable<ContainerInfo["lastExit"]>> {
  return until(`${name} to exit`, async () => {
    const i = await info(name);
    return i.state === "exited" && i.lastExit ? i.lastExit : null;
  });
}

describe("containers on a node in QEMU", () => {
  test("port forward from the host, cgroup limits, OOM and restart, vdisk data across delete + recreate, vdisk RPC, poweroff detaches", async () => {
    const webPort = await freePort();
    node = await startNode({ consoleLog: join(logs, "containers.log"), bootOptions: { store: [store.storeUrl] }, forwards: [{ hostPort: webPort, guestPort: WEB_GUEST_PORT }] });
    const vm = node.vm;
    try {
      await waitRpcReady<{ nics: { name: string; addresses: string[] }[] }>(node, BOOT_MS, (i) => i.nics.some((n) => n.name !== "lo" && n.addresses.some((a) => a.startsWith("10.0.2."))));

      // web: host -> hostfwd -> node:8080 -> nft DNAT -> container:80, with limits in its cgroup
      const token = crypto.randomUUID();
      const web = await create({
        name: "web", ports: [{ hostPort: WEB_GUEST_PORT, containerPort: 80 }], limits: { pids: 32, cpus: 0.5, memoryBytes: 64 << 20 },
        args: ["/bin/sh", "-c", `mkdir -p /www && echo ${token} > /www/index.html && exec httpd -f -p 80 -h /www`],
      });
      expect(web.limitsEnforced).toBe(true);
      vm.mark("web container created");
      const page = await until("the web container's page through the forwarded port", async () => {
        const r = await fetch(`http://127.0.0.1:${webPort}/`, { signal: AbortSignal.timeout(5000) });
        return r.ok ? r.text() : null;
      });
      expect(page.trim()).toBe(token);
      vm.mark("container port reached from the host");
      const cg = await call<{ code: number; stdout: string }>("container.exec", { name: "web", args: ["cat", "/sys/fs/cgroup/pids.max", "/sys/fs/cgroup/cpu.max", "/sys/fs/cgroup/memory.max"] });
      expect({ code: cg.code, lines: cg.stdout.trim().split("\n") }).toEqual({ code: 0, lines: ["32", "50000 100000", String(64 << 20)] });
      expect((await info("web")).resources?.pids).toBeGreaterThanOrEqual(1);
      // a container's PID 1 (httpd here) ignores SIGTERM: no need to wait the default 10 s for SIGKILL
      await call("container.delete", { name: "web", timeoutMs: 1000 });
      vm.mark("web container deleted");

      // over its memory limit: dd's 64 MiB buffer in a 16 MiB cgroup; on-failure restarts it
      await create({ name: "hog", limits: { memoryBytes: 16 << 20 }, restart: "on-failure", args: ["/bin/dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"] });
      const hog = await until("the hog OOM-killed and restarted", async () => {
        const i = await info("hog");
        return i.lastExit?.oomKilled && i.restarts >= 1 ? i : null;
      });
      expect(hog.lastExit).toMatchObject({ oomKilled: true, signal: "SIGKILL" });
      expect((await call<ContainerInfo[]>("container.list")).find((c) => c.name === "hog")?.lastExit?.oomKilled).toBe(true);
      expect(await logLines("hog")).toContain("zos: container hog was killed for exceeding its memory limit");
      await call("container.delete", { name: "hog" });
      vm.mark("OOM reported and restarted by policy");

      // a vdisk by URL: attached for the container, ext4 on first use, detached when it goes
      const ctrUrl = `nbd://10.0.2.2:${vdisks.port}/ctr`;
      const dataMount = { type: "vdisk", vdisk: "data", url: ctrUrl, target: "/data" };
      const secret = crypto.randomUUID();
      await create({ name: "writer", mounts: [dataMount], args: ["/bin/sh", "-c", `echo ${secret} > /data/file && sync`] });
      expect(await exited("writer")).toMatchObject({ code: 0 });
      const attached = await call<VdiskInfo[]>("vdisk.list");
      expect(attached).toEqual([expect.objectContaining({ name: "data", url: ctrUrl, sizeBytes: 128 << 20, formatted: true, users: ["writer"], attachedBy: "container" })]);
      expect(attached[0].device).toMatch(/^\/dev\/nbd\d+$/);
      await call("container.delete", { name: "writer" });
      expect(await call<VdiskInfo[]>("vdisk.list")).toEqual([]);
      vm.mark("vdisk written by a container, detached with it");
      await create({ name: "writer", mounts: [dataMount], args: ["/bin/cat", "/data/file"] });
      expect(await exited("writer")).toMatchObject({ code: 0 });
      expect(await logLines("writer")).toEqual([secret]);
      expect((await call<VdiskInfo[]>("vdisk.list"))[0]).toMatchObject({ name: "data", formatted: false });
      await call("container.delete", { name: "writer" });
      vm.mark("vdisk data read back by the recreated container");

      // a persistent container: its root's overlay upper dir on a vdisk survives delete + recreate
      const rwVdisk = { vdisk: "data", url: ctrUrl };
      const kept = crypto.randomUUID();
      await create({ name: "keeper", rwVdisk, args: ["/bin/sh", "-c", `echo ${kept} > /etc/kept && sync`] });
      expect(await exited("keeper")).toMatchObject({ code: 0 });
      await call("container.delete", { name: "keeper" });
      expect(await call<VdiskInfo[]>("vdisk.list")).toEqual([]);
      await create({ name: "keeper", rwVdisk, args: ["/bin/cat", "/etc/kept"] });
      expect(await exited("keeper")).toMatchObject({ code: 0 });
      expect(await logLines("keeper")).toEqual([kept]);
      await call("container.delete", { name: "keeper" });
      vm.mark("persistent container's root kept on a vdisk");

      // read-only: the same export attached over RPC with readOnly; a container reads but cannot write
      const ro = await call<VdiskInfo>("vdisk.attach", { name: "ro", url: ctrUrl, format: "ext4", mountpoint: "/mnt/ro", readOnly: true }, 120_000);
      expect(ro).toMatchObject({ readOnly: true, formatted: false, mountpoint: "/mnt/ro" });
      await create({ name: "reader", mounts: [{ type: "vdisk", vdisk: "ro", target: "/d" }], args: ["/bin/sh", "-c", "cat /d/file; touch /d/new 2>/dev/null && echo writable || echo read-only"] });
      expect(await exited("reader")).toMatchObject({ code: 0 });
      expect(await logLines("reader")).toEqual([secret, "read-only"]);
      await call("container.delete", { name: "reader" });
      expect(await call("vdisk.detach", { name: "ro" })).toEqual({ detached: "ro" });
      vm.mark("read-only vdisk");

      // vdisk RPC: bad calls refused and nothing left; attach with a mountpoint, use it from a container
      const directUrl = `nbd://10.0.2.2:${vdisks.port}/direct`;
      expect((await callError("vdisk.attach", { name: "x", url: "http://10.0.2.2/direct" })).code).toBe("bad-params");
      expect((await callError("vdisk.attach", { name: "Bad Name", url: directUrl })).code).toBe("bad-params");
      expect((await callError("vdisk.attach", { name: "x", url: `nbd://10.0.2.2:${vdisks.port}/missing`, format: "ext4" })).code).toBe("system");
      expect(await call<VdiskInfo[]>("vdisk.list")).toEqual([]);
      const direct = await call<VdiskInfo>("vdisk.attach", { name: "direct", url: directUrl, format: "ext4", mountpoint: "/mnt/direct" }, 120_000);
      expect(direct).toMatchObject({ name: "direct", mountpoint: "/mnt/direct", formatted: true, attachedBy: "rpc", users: [] });
      expect((await callError("vdisk.attach", { name: "direct", url: directUrl })).code).toBe("conflict");
      await create({ name: "user", mounts: [{ type: "vdisk", vdisk: "direct", target: "/d" }], args: ["/bin/sh", "-c", "echo kept > /d/f && cat /d/f && sleep 600"] });
      await until("the user container's output", async () => ((await logLines("user")).includes("kept") ? true : null));
      expect((await callError("vdisk.detach", { name: "direct" })).code).toBe("conflict");
      await call("container.delete", { name: "user", timeoutMs: 1000 });
      expect(await call<VdiskInfo[]>("vdisk.list")).toEqual([expect.objectContaining({ name: "direct", users: [] })]);
      vm.mark("vdisk attached over RPC, used by a container");

      // poweroff with two vdisks attached, one on a server that hangs: that one is cut off after 15 s
      // without progress, the other unmounted cleanly, both before the node powers off
      await call<VdiskInfo>("vdisk.attach", { name: "hung", url: `nbd://10.0.2.2:${hung.port}/hung`, format: "ext4", mountpoint: "/mnt/hung" }, 120_000);
      hung.freeze();
      expect(await call<{ accepted: string }>("node.poweroff")).toEqual({ accepted: "poweroff" });
      expect(await vm.waitExit(120_000)).toBe(0);
      const text = vm.console;
      const order = [
        "vdisk hung: its server completed no request in 15 s", "vdisk hung: unmounted /mnt/hung, disconnected /dev/nbd",
        "vdisk direct: unmounted /mnt/direct, disconnected /dev/nbd", "shutdown: powering off", "reboot: Power down",
      ].map((m) => ({ m, at: text.indexOf(m) }));
      expect(order.filter((o) => o.at < 0)).toEqual([]);
      expect(order.map((o) => o.at)).toEqual(order.map((o) => o.at).sort((a, b) => a - b));
      console.log(vm.timelineText());
    } catch (e) {
      throw vm.failure(`${(e as Error).stack ?? e}`);
    }
  }, BOOT_MS + 900_000);
});
