// The whole OS in QEMU (software emulation), driven only through the signed RPC over a forwarded
// TCP port, with the admin key given on the kernel command line — as an operator would.
// Boots: the floor (one-line Bun PID 1), the node twice on one state disk (direct kernel boot, with
// a host store serving a busybox flist that a container reads and flist.mount mounts on the node,
// and a vdisk on the host's NBD server attached with vdisk.attach (kernel NBD client), formatted,
// written, and read back after the reboot),
// the disk image under OVMF (UEFI) and SeaBIOS (legacy BIOS), and iPXE over HTTP. Each prints its
// timeline; a failure carries the console's tail and names the full log (build/e2e-logs/).
// Needs `make image` (out/vmlinuz, out/initramfs.cpio.zst).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateKeyPair, keyId } from "../../init/identity/ed25519.ts";
import { RpcCallError } from "../../init/rpc/client.ts";
import { decodeResponse, encodeRequest, FrameReader, type ResponseBody } from "../../init/rpc/protocol.ts";
import { buildInitramfs } from "../../initramfs/build.ts";
import { IMAGE, kernelCmdline } from "../../scripts/boot-config.ts";
import { buildDiskImage } from "../../scripts/disk-image.ts";
import { startExampleStore, type ExampleStore } from "../../scripts/example-store.ts";
import { serveDirectory, writeIpxeScript } from "../../scripts/ipxe.ts";
import { makeStateDisk, startNode, waitRpcReady, withTimeout, type NodeVm } from "../../scripts/node-vm.ts";
import { QemuVm } from "../../scripts/qemu.ts";
import { startVdiskServer, type HostVdiskServer } from "./vdisk-server.ts";

const dir = mkdtempSync(join(tmpdir(), "zos-e2e-"));
// console logs outlive the run (a failure message names its log); disks and stores do not
const logs = join(import.meta.dir, "../../build/e2e-logs", new Date().toISOString().replace(/[:.]/g, "-"));
mkdirSync(logs, { recursive: true });
const running: QemuVm[] = [];
afterAll(async () => {
  for (const vm of running) await vm.stop();
  rmSync(dir, { recursive: true, force: true });
});

const BOOT_MS = 240_000;
const admin = generateKeyPair();
const release = JSON.parse(readFileSync(`${IMAGE.initramfs}.manifest.json`, "utf8")).kernel.release as string;

interface NodeInfo {
  id: string;
  pid: number;
  kernel: { release: string; cmdline: string };
  nics: { name: string; addresses: string[] }[];
  orphansReaped: number;
}
interface ServiceStatus { name: string; state: string; pid: number | null; restarts: number }

const hasDhcpAddress = (i: NodeInfo) => i.nics.some((n) => n.name !== "lo" && n.addresses.some((a) => /^10\.0\.2\.\d+\//.test(a)));

function track(node: NodeVm): NodeVm {
  running.push(node.vm);
  return node;
}

async function call<T>(node: NodeVm, method: string, params: unknown = {}): Promise<T> {
  const c = await node.connect();
  try {
    return await withTimeout(c.call<T>(method, params), 20_000);
  } finally {
    c.close();
  }
}

/**
 * Asks for a poweroff and expects, in this order on the console: services stopped, `mustUnmount`
 * unmounted, init's "powering off", the kernel's "Power down"; then QEMU's exit 0.
 */
async function powerOff(node: NodeVm, mustUnmount: string[] = []): Promise<void> {
  expect(await call<{ accepted: string }>(node, "node.poweroff")).toEqual({ accepted: "poweroff" });
  expect(await node.vm.waitExit(90_000)).toBe(0);
  const text = node.vm.console;
  const at = (marker: string) => {
    const i = text.indexOf(marker);
    expect({ marker, found: i >= 0 }).toEqual({ marker, found: true });
    return i;
  };
  const order = [at("poweroff requested (rpc); stopping services"), ...mustUnmount.map((m) => at(`shutdown: unmounted ${m}`)), at("shutdown: powering off"), at("reboot: Power down")];
  expect(order).toEqual([...order].sort((a, b) => a - b));
  console.log(node.vm.timelineText());
}

async function until<T>(what: string, fn: () => Promise<T | null>, timeoutMs = 60_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(500);
  }
}

/** Writes the same signed request twice on one raw TCP connection and returns the first two replies. */
async function sendRawTwice(port: number, request: Uint8Array): Promise<ResponseBody[]> {
  const reader = new FrameReader();
  const replies: ResponseBody[] = [];
  const { promise, resolve, reject } = Promise.withResolvers<ResponseBody[]>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1", port,
    socket: {
      data(_s, chunk) {
        reader.push(chunk);
        for (let p = reader.next(); p; p = reader.next()) replies.push(decodeResponse(p));
        if (replies.length >= 2) resolve(replies);
      },
      close() { reject(new Error(`connection closed after ${replies.length} replies`)); },
      error(_s, e) { reject(e); },
    },
  });
  socket.write(request);
  socket.write(request);
  try {
    return await withTimeout(promise, 20_000);
  } finally {
    socket.end();
  }
}

/** Runs `command` as a oneshot service; resolves with its stdout lines once it exited 0. */
async function runOneshot(node: NodeVm, name: string, command: string): Promise<string[]> {
  await call(node, "service.monitor", { name, config: { oneshot: true, exec: `/bin/busybox sh -c "${command}"` } });
  const status = await until(`${name} finished`, async () => {
    const st = await call<ServiceStatus & { lastExit: { code: number | null } | null }>(node, "service.status", { name });
    return st.lastExit ? st : null;
  }, 120_000);
  const lines = (await call<{ line: string; stream: string }[]>(node, "service.logs", { name })).filter((l) => l.stream === "stdout").map((l) => l.line);
  expect({ name, exit: status.lastExit?.code, lines }).toMatchObject({ exit: 0 });
  return lines;
}

interface AttachedVdisk { name: string; url: string; device: string; mountpoint: string | null; formatted: boolean }

/** vdisk.attach of the host's export, ext4 (made only if blank) mounted on /mnt/vdisk. */
async function attachVdisk(node: NodeVm, port: number): Promise<AttachedVdisk> {
  const url = `nbd://10.0.2.2:${port}/disk`;
  const attached = await call<AttachedVdisk>(node, "vdisk.attach", { name: "data", url, format: "ext4", mountpoint: "/mnt/vdisk" });
  expect(attached).toMatchObject({ name: "data", url, mountpoint: "/mnt/vdisk" });
  expect(attached.device).toMatch(/^\/dev\/nbd\d+$/);
  expect((await call<AttachedVdisk[]>(node, "vdisk.list")).map((v) => v.name)).toEqual(["data"]);
  return attached;
}

describe("floor", () => {
  test("the same kernel boots a one-line Bun PID 1 that prints and powers off", async () => {
    const { result } = await buildInitramfs({ floor: true, level: 1, workDir: join(dir, "floor"), output: join(dir, "floor.cpio.zst") });
    const vm = new QemuVm({ kernel: IMAGE.kernel, initrd: result.output, cmdline: kernelCmdline(), consoleLog: join(logs, "floor.log") });
    running.push(vm);
    await vm.waitFor(/floor: bun pid 1 up/, "floor init printed", BOOT_MS);
    expect(await vm.waitExit(60_000)).toBe(0);
    expect(vm.console).toContain("reboot: Power down");
    console.log(vm.timelineText());
  }, BOOT_MS + 120_000);
});

describe("node, direct kernel boot", () => {
  const stateDisk = join(dir, "state.img");
  let firstId = "";
  const token = `vdisk-${crypto.randomUUID()}`;
  let store: ExampleStore;
  let vdisk: HostVdiskServer;
  beforeAll(async () => {
    store = await startExampleStore(join(dir, "store"));
    vdisk = await startVdiskServer(join(dir, "vdisk"), ["disk"]);
  }, 120_000);
  afterAll(async () => {
    await store?.stop();
    await vdisk?.stop();
  });

  test("boots to RPC ready (id, kernel, DHCP address); refuses bad calls; runs services, an flist container, flist.mount and a vdisk; reaps orphans; reboots", async () => {
    await makeStateDisk(stateDisk);
    const node = track(await startNode({ admin, stateDisk, consoleLog: join(logs, "node-1.log"), bootOptions: { store: [store.storeUrl] } }));
    try {
      await firstBoot(node);
    } finally {
      await node.vm.stop();
    }
  }, BOOT_MS + 300_000);

  async function firstBoot(node: NodeVm): Promise<void> {
    const info = await waitRpcReady<NodeInfo>(node, BOOT_MS, hasDhcpAddress);
    expect(info.id).toMatch(/^[1-9A-HJ-NP-Za-km-z]{32,44}$/);
    expect(info.pid).toBe(1);
    expect(info.kernel.release).toBe(release);
    expect(info.kernel.cmdline).toContain(`zos.admin=${keyId(admin.publicKey)}`);
    firstId = info.id;

    // bad calls: an untrusted key, a replayed request; the node answers the next good call
    const stranger = await node.connect(generateKeyPair());
    const refused = await withTimeout(stranger.call("node.info"), 20_000).then(() => null, (e) => e);
    stranger.close();
    expect(refused).toBeInstanceOf(RpcCallError);
    expect((refused as RpcCallError).code).toBe("unknown-key");

    const replies = await sendRawTwice(node.rpcPort, encodeRequest(admin, "node.info", {}, 4242).bytes);
    // the replay is refused before the original's answer is ready, so compare without order
    expect(replies.map((r) => (r.y === "error" ? r.e?.code : r.y)).sort()).toEqual(["replay", "result"]);
    expect((await call<NodeInfo>(node, "node.info")).id).toBe(firstId);

    // services: a supervised service, killed, comes back; its log is readable over RPC
    await call(node, "service.monitor", { name: "ticker", config: { exec: `/usr/bin/bun -e "console.log('tick'); setInterval(() => console.log('tick'), 1000)"` } });
    const first = await until("ticker running with a pid", async () => {
      const s = await call<ServiceStatus>(node, "service.status", { name: "ticker" });
      return s.state === "running" && s.pid ? s : null;
    });
    await until("ticker's log", async () => ((await call<{ line: string }[]>(node, "service.logs", { name: "ticker" })).some((l) => l.line === "tick") ? true : null));
    await call(node, "service.kill", { name: "ticker", signal: "SIGKILL" });
    const again = await until("ticker restarted", async () => {
      const s = await call<ServiceStatus>(node, "service.status", { name: "ticker" });
      return s.state === "running" && s.restarts >= 1 && s.pid !== first.pid ? s : null;
    });
    expect(again.restarts).toBeGreaterThanOrEqual(1);

    // an flist from the host's store: the container's root is the busybox flist, mounted through
    // FUSE with its blocks fetched from the host's zdb; the file it hashes must match the source
    await call(node, "container.create", {
      name: "flist-check", flist: store.flistUrl, stores: [store.storeUrl], restart: "never",
      args: ["/bin/sha256sum", "/bin/busybox"],
    });
    const hashLine = await until("the container's sha256sum output", async () => {
      const lines = await call<{ line: string }[]>(node, "container.logs", { name: "flist-check" });
      return lines.map((l) => l.line).find((l) => /^[0-9a-f]{64}\s/.test(l)) ?? null;
    }, 120_000);
    expect(hashLine.split(/\s+/)[0]).toBe(createHash("sha256").update(readFileSync("/usr/bin/busybox")).digest("hex"));
    node.vm.mark("flist read in a container");
    // removed again: a container left in place keeps the state disk busy at shutdown (init lazily
    // detaches it), and the poweroff check below wants the state disk cleanly unmounted
    await call(node, "container.delete", { name: "flist-check" });

    // the same flist mounted on the node itself with flist.mount, hashed by a service through FUSE
    const mounted = await call<{ mountpoint: string; url: string }>(node, "flist.mount", { url: store.flistUrl, stores: [store.storeUrl], mountpoint: "/mnt/flist" });
    expect(mounted).toMatchObject({ url: store.flistUrl, mountpoint: "/mnt/flist" });
    expect((await call<{ mountpoint: string }[]>(node, "flist.list")).map((m) => m.mountpoint)).toEqual(["/mnt/flist"]);
    const [hashed] = await runOneshot(node, "flist-hash", "/bin/busybox sha256sum /mnt/flist/bin/busybox");
    expect(hashed.split(/\s+/)[0]).toBe(createHash("sha256").update(readFileSync("/usr/bin/busybox")).digest("hex"));
    expect(await call(node, "flist.unmount", { mountpoint: "/mnt/flist" })).toEqual({ unmounted: "/mnt/flist" });
    node.vm.mark("flist mounted with flist.mount and read");

    // a vdisk served from the host (our NBD server) attached with vdisk.attach (the kernel NBD
    // client): blank, so ext4 is made; written and read by a service; detached again
    expect((await attachVdisk(node, vdisk.port)).formatted).toBe(true);
    expect(await runOneshot(node, "vdisk-write", `echo ${token} > /mnt/vdisk/data && /bin/busybox sync && /bin/busybox cat /mnt/vdisk/data`)).toEqual([token]);
    expect(await call(node, "vdisk.detach", { name: "data" })).toEqual({ detached: "data" });
    expect(await call<AttachedVdisk[]>(node, "vdisk.list")).toEqual([]);
    node.vm.mark("vdisk written over NBD");

    // an orphaned grandchild is reparented to PID 1 and reaped
    const reapedBefore = (await call<NodeInfo>(node, "node.info")).orphansReaped;
    await call(node, "service.monitor", {
      name: "orphaner",
      config: { oneshot: true, exec: `/usr/bin/bun -e "require('node:child_process').spawn('/usr/bin/bun', ['-e', 'setTimeout(() => {}, 1500)'], { detached: true, stdio: 'ignore' }).unref()"` },
    });
    await until("the orphan reaped", async () => ((await call<NodeInfo>(node, "node.info")).orphansReaped > reapedBefore ? true : null), 90_000);

    // reboot through the RPC: QEMU runs with -no-reboot, so the restart ends it and the next test boots again
    expect(await call<{ accepted: string }>(node, "node.reboot")).toEqual({ accepted: "reboot" });
    expect(await node.vm.waitExit(90_000)).toBe(0);
    expect(node.vm.console).toContain("reboot: Restarting system");
    console.log(node.vm.timelineText());
  }

  test("the second boot keeps the identity (state disk) and the vdisk's data; poweroff ends QEMU with 0", async () => {
    expect(firstId).not.toBe("");
    const node = track(await startNode({ admin, stateDisk, consoleLog: join(logs, "node-2.log") }));
    const info = await waitRpcReady<NodeInfo>(node, BOOT_MS);
    expect(info.id).toBe(firstId);
    // attached again: it holds ext4 now, so nothing is made; the data survived; left attached,
    // so the poweroff detaches it
    expect((await attachVdisk(node, vdisk.port)).formatted).toBe(false);
    expect(await runOneshot(node, "vdisk-read", "/bin/busybox cat /mnt/vdisk/data")).toEqual([token]);
    node.vm.mark("vdisk data read back after reboot");
    await powerOff(node, ["/var/lib/zos (ext4)"]);
  }, BOOT_MS + 120_000);
});

describe("other boot paths", () => {
  const diskImage = join(dir, "zos.img");
  for (const firmware of ["uefi", "bios"] as const) {
    const how = firmware === "uefi" ? "OVMF boots out/zos.img's unified kernel image" : "SeaBIOS boots out/zos.img through SYSLINUX";
    test(`${firmware.toUpperCase()}: ${how} to RPC ready`, async () => {
      if (!existsSync(diskImage)) {
        await buildDiskImage({ kernel: IMAGE.kernel, initramfs: IMAGE.initramfs, cmdline: kernelCmdline({ admin: [keyId(admin.publicKey)] }), out: diskImage });
      }
      const node = track(await startNode({ admin, boot: { kind: "disk", image: diskImage, firmware }, consoleLog: join(logs, `${firmware}.log`) }));
      const info = await waitRpcReady<NodeInfo>(node, BOOT_MS + 60_000, hasDhcpAddress);
      expect(info.kernel.release).toBe(release);
      await powerOff(node);
    }, BOOT_MS + 240_000);
  }

  test("iPXE: the NIC's ROM fetches boot.ipxe over TFTP, kernel and initramfs over HTTP", async () => {
    const root = join(dir, "http");
    rmSync(root, { recursive: true, force: true });
    await Bun.write(join(root, ".keep"), "");
    symlinkSync(IMAGE.kernel, join(root, "vmlinuz"));
    symlinkSync(IMAGE.initramfs, join(root, "initramfs.cpio.zst"));
    const server = serveDirectory(root, 0);
    try {
      writeIpxeScript(join(root, "boot.ipxe"), `http://10.0.2.2:${server.port}`, kernelCmdline({ admin: [keyId(admin.publicKey)] }));
      const node = track(await startNode({ admin, boot: { kind: "ipxe", tftpRoot: root, bootfile: "boot.ipxe" }, consoleLog: join(logs, "ipxe.log") }));
      const info = await waitRpcReady<NodeInfo>(node, BOOT_MS, hasDhcpAddress);
      expect(info.kernel.cmdline).toContain("initrd=initramfs.cpio.zst");
      await powerOff(node);
    } finally {
      server.stop(true);
    }
  }, BOOT_MS + 120_000);
});
