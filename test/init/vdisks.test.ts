// Node-side vdisks on the host: URL parsing, what mkfs may touch (probed on images made by the real
// mkfs.ext4), device picking over a sysfs tree, the manager's refusals (this host has no kernel NBD
// client, so an attach stops at "unsupported" and leaves nothing), and the vdisk.* RPC schemas on a
// host-mode node. Attaching for real, with the kernel NBD client, is in test/e2e/containers.test.ts.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RpcClient } from "../../init/rpc/client.ts";
import { VdiskError } from "../../init/vdisks/errors.ts";
import { classify, probeDevice, PROBE_BYTES } from "../../init/vdisks/filesystem.ts";
import { VdiskManager } from "../../init/vdisks/manager.ts";
import { deviceBytes, ioProgress, loadNbdModule, pickFreeDevice, type NbdSys } from "../../init/vdisks/nbd-devices.ts";
import { nbdClientTarget, parseNbdUrl } from "../../init/vdisks/url.ts";
import { parseRunArgs } from "../../cli/commands/container.ts";
import { parseAttachArgs } from "../../cli/commands/vdisk.ts";
import { tempDir } from "./helpers.ts";
import { startHostNode, type HostNode } from "./host-node.ts";

const t = tempDir("zos-vdisks-");
afterAll(() => t.cleanup());

function fakeSys(devices: Record<number, { connected: boolean }>, modulesDep?: string): NbdSys {
  const root = join(t.path, `sys-${crypto.randomUUID()}`);
  const sysBlock = join(root, "block"), modulesDir = join(root, "modules");
  mkdirSync(sysBlock, { recursive: true });
  mkdirSync(modulesDir, { recursive: true });
  for (const [i, d] of Object.entries(devices)) {
    mkdirSync(join(sysBlock, `nbd${i}`));
    if (d.connected) writeFileSync(join(sysBlock, `nbd${i}`, "pid"), "123\n");
  }
  mkdirSync(join(sysBlock, "vda"));
  if (modulesDep !== undefined) writeFileSync(join(modulesDir, "modules.dep"), modulesDep);
  return { sysBlock, modulesDir };
}

async function refusal(p: Promise<unknown>): Promise<VdiskError> {
  const e = await p.then(() => null, (x) => x);
  expect(e).toBeInstanceOf(VdiskError);
  return e as VdiskError;
}

describe("NBD URLs", () => {
  test("nbd:// and nbd+unix:// become nbd-client arguments", () => {
    expect(parseNbdUrl("nbd://10.0.2.2:10900/disk")).toEqual({ kind: "tcp", host: "10.0.2.2", port: 10900, exportName: "disk" });
    expect(parseNbdUrl("nbd://server")).toEqual({ kind: "tcp", host: "server", port: 10809, exportName: "" });
    expect(parseNbdUrl("nbd://[fd00::1]:99/a%20b")).toEqual({ kind: "tcp", host: "fd00::1", port: 99, exportName: "a b" });
    expect(parseNbdUrl("nbd+unix:///vol?socket=/run/nbd.sock")).toEqual({ kind: "unix", socket: "/run/nbd.sock", exportName: "vol" });
    expect(nbdClientTarget(parseNbdUrl("nbd://h:1/e"))).toEqual(["-N", "e", "h", "1"]);
    expect(nbdClientTarget(parseNbdUrl("nbd+unix:///e?socket=/s"))).toEqual(["-u", "-N", "e", "/s"]);
  });

  test.each([
    ["http://host/disk", /unknown scheme/],
    ["nbds://host/disk", /TLS/],
    ["nbd:///disk", /no host/],
    ["nbd://u:p@host/disk", /user/],
    ["nbd://host/disk?x=1", /query/],
    ["nbd+unix:///disk", /socket=/],
    ["nbd+unix:///disk?socket=rel", /socket=/],
    ["nbd+unix://host/disk?socket=/s", /no host/],
    ["not a url", /not a URL/],
  ])("%s is refused", (url, why) => {
    let err: unknown;
    try {
      parseNbdUrl(url);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VdiskError);
    expect((err as VdiskError).code).toBe("bad-params");
    expect((err as VdiskError).message).toMatch(why);
  });
});

describe("what a device holds", () => {
  test("ext4 made by mkfs.ext4, a blank image and foreign data are told apart", async () => {
    const ext4 = join(t.path, "ext4.img"), blank = join(t.path, "blank.img"), xfs = join(t.path, "xfs.img");
    writeFileSync(ext4, new Uint8Array(0));
    expect(Bun.spawnSync(["truncate", "-s", "8M", ext4]).exitCode).toBe(0);
    expect(Bun.spawnSync(["mkfs.ext4", "-q", "-F", ext4]).exitCode).toBe(0);
    writeFileSync(blank, new Uint8Array(PROBE_BYTES * 2));
    const foreign = new Uint8Array(PROBE_BYTES * 2);
    foreign.set(new TextEncoder().encode("XFSB"), 0);
    writeFileSync(xfs, foreign);
    expect(await probeDevice(ext4)).toBe("ext");
    expect(await probeDevice(blank)).toBe("blank");
    expect(await probeDevice(xfs)).toBe("other");
    // a single byte anywhere in the probed head is data mkfs must not destroy
    const late = new Uint8Array(PROBE_BYTES);
    late[PROBE_BYTES - 1] = 1;
    expect(classify(late)).toBe("other");
    expect(classify(new Uint8Array(100))).toBe("blank");
  });
});

describe("nbd devices", () => {
  test("the lowest device that is neither connected nor claimed", () => {
    const sys = fakeSys({ 0: { connected: true }, 1: { connected: false }, 2: { connected: false }, 10: { connected: false } });
    expect(pickFreeDevice(sys, new Set())).toBe(1);
    expect(pickFreeDevice(sys, new Set([1, 2]))).toBe(10);
    expect(pickFreeDevice(sys, new Set([1, 2, 10]))).toBeNull();
  });

  test("requests completed (reads, writes, discards, flushes) and size, from sysfs", () => {
    const sys = fakeSys({ 3: { connected: true } });
    writeFileSync(join(sys.sysBlock, "nbd3", "stat"), "     100        0     800       10      40        0      320       5        2       20       30       7        0       56        1        9        3\n");
    expect(ioProgress(sys, 3)).toBe(100 + 40 + 7 + 9);
    // a kernel before 4.18 has no discard or flush fields
    writeFileSync(join(sys.sysBlock, "nbd3", "stat"), "5 0 40 1 6 0 48 1 0 2 2\n");
    expect(ioProgress(sys, 3)).toBe(11);
    expect(ioProgress(sys, 4)).toBe(0);
    writeFileSync(join(sys.sysBlock, "nbd3", "size"), "262144\n");
    expect(deviceBytes(sys, 3)).toBe(128 * 1024 * 1024);
  });

  test("no devices and no nbd module: unsupported", () => {
    for (const sys of [fakeSys({}), fakeSys({}, "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko\n")]) {
      let err: unknown;
      try {
        loadNbdModule(sys);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(VdiskError);
      expect((err as VdiskError).code).toBe("unsupported");
    }
    expect(() => loadNbdModule(fakeSys({ 0: { connected: false } }))).not.toThrow();
  });
});

describe("the manager's refusals", () => {
  const noNbd = () => new VdiskManager({ mountRoot: join(t.path, "mnt"), sys: fakeSys({}) });

  test("bad names, URLs and mountpoints are refused before anything is touched", async () => {
    const m = noNbd();
    expect((await refusal(m.attach({ name: "Bad Name", url: "nbd://h/e" }))).code).toBe("bad-params");
    expect((await refusal(m.attach({ name: "d", url: "http://h/e" }))).code).toBe("bad-params");
    expect((await refusal(m.attach({ name: "d", url: "nbd://h/e", mountpoint: "relative" }))).code).toBe("bad-params");
    expect((await refusal(m.attach({ name: "d", url: "nbd://h/e", mountpoint: "/a/../b" }))).code).toBe("bad-params");
    expect((await refusal(m.attach({ name: "d", url: "nbd://h/e", mountpoint: "/" }))).code).toBe("bad-params");
    expect((await refusal(m.attach({ name: "d", url: "nbd://h/e", mountpoint: "/proc" }))).code).toBe("conflict");
    expect(m.list()).toEqual([]);
  });

  test("without a kernel NBD client an attach is unsupported and leaves nothing", async () => {
    const m = noNbd();
    const e = await refusal(m.attach({ name: "d", url: "nbd://127.0.0.1:1/e", format: "ext4", mountpoint: join(t.path, "mnt", "d") }));
    expect(e.code).toBe("unsupported");
    expect(e.message).toMatch(/NBD/);
    expect(m.list()).toEqual([]);
    expect(existsSync(join(t.path, "mnt", "d"))).toBe(false);
  });

  test("detaching or using a vdisk that is not attached", async () => {
    const m = noNbd();
    expect((await refusal(m.detach("nope"))).code).toBe("not-found");
    expect((await refusal(m.acquire("nope", undefined, "c1"))).code).toBe("unsupported");
    const withNbd = new VdiskManager({ mountRoot: join(t.path, "mnt"), sys: fakeSys({ 0: { connected: false } }) });
    expect((await refusal(withNbd.acquire("nope", undefined, "c1"))).code).toBe("not-found");
    await m.release("nope", "c1");
    await m.shutdown();
    expect(m.list()).toEqual([]);
  });
});

describe("zos vdisk attach arguments", () => {
  const usage = (msg: string) => new Error(msg);
  test("flags map onto vdisk.attach params", () => {
    expect(parseAttachArgs(["data", "nbd://h/e", "--format", "ext4", "--mount", "/mnt/d", "--read-only"], usage)).toEqual({ name: "data", url: "nbd://h/e", format: "ext4", mountpoint: "/mnt/d", readOnly: true });
    expect(parseAttachArgs(["data", "nbd://h/e"], usage)).toEqual({ name: "data", url: "nbd://h/e" });
    expect(() => parseAttachArgs(["data"], usage)).toThrow(/usage/);
    expect(() => parseAttachArgs(["data", "nbd://h/e", "--mount"], usage)).toThrow(/needs a value/);
    expect(() => parseAttachArgs(["data", "nbd://h/e", "--bogus"], usage)).toThrow(/unknown option/);
  });
});

describe("vdisk.* over RPC on a host-mode node", () => {
  let node: HostNode;
  beforeAll(async () => {
    node = await startHostNode();
  });
  afterAll(async () => {
    await node?.stop();
  });
  const connect = (key = node.keys.admin) => RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: node.port }, key);

  test("schemas, roles and the host's missing NBD client", async () => {
    const admin = await connect(), operator = await connect(node.keys.operator), reader = await connect(node.keys.reader);
    try {
      expect(await reader.call("vdisk.list")).toEqual([]);
      await expect(operator.call("vdisk.attach", { name: "d", url: "nbd://127.0.0.1/e" })).rejects.toMatchObject({ code: "forbidden" });
      await expect(operator.call("vdisk.detach", { name: "d" })).rejects.toMatchObject({ code: "forbidden" });
      await expect(admin.call("vdisk.attach", { name: "d", url: "http://127.0.0.1/e" })).rejects.toMatchObject({ code: "bad-params", data: { path: "url" } });
      await expect(admin.call("vdisk.attach", { name: "d", url: "nbd://127.0.0.1/e", format: "xfs" })).rejects.toMatchObject({ code: "bad-params", data: { path: "format" } });
      await expect(admin.call("vdisk.attach", { name: "d", url: "nbd://127.0.0.1/e", size: 1 })).rejects.toMatchObject({ code: "bad-params", data: { path: "size" } });
      await expect(admin.call("vdisk.attach", { url: "nbd://127.0.0.1/e" })).rejects.toMatchObject({ code: "bad-params", data: { path: "name" } });
      await expect(admin.call("vdisk.detach", { name: "d" })).rejects.toMatchObject({ code: "not-found" });
      if (!existsSync("/sys/module/nbd")) {
        await expect(admin.call("vdisk.attach", { name: "d", url: "nbd://127.0.0.1:1/e", format: "ext4", mountpoint: join(node.dir, "d") })).rejects.toMatchObject({ code: "unsupported", data: { vdisk: "d" } });
      }
      expect(await reader.call("vdisk.list")).toEqual([]);
    } finally {
      admin.close();
      operator.close();
      reader.close();
    }
  });
});

describe("zos container run with vdisks", () => {
  test("--rw-vdisk and a vdisk --mount become create params", () => {
    const usage = (msg: string) => new Error(msg);
    const p = parseRunArgs(["--flist", "f.fl", "--rw-vdisk", "root=nbd+unix:///e?socket=/s", "--mount", "type=vdisk,vdisk=d,url=nbd://h:1/e,target=/x", "--", "true"], usage);
    expect(p.rwVdisk).toEqual({ vdisk: "root", url: "nbd+unix:///e?socket=/s" });
    expect(p.mounts).toEqual([{ type: "vdisk", vdisk: "d", url: "nbd://h:1/e", target: "/x" }]);
    expect(parseRunArgs(["--flist", "f.fl", "--rw-vdisk", "root", "--", "true"], usage).rwVdisk).toEqual({ vdisk: "root" });
  });
});
