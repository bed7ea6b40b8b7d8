// Module selection from modules.dep, on a written example and on Debian's real kernel package
// (fetched with apt-get download, checked with kmod's own modinfo and depmod output), and init's
// boot-time choice of drivers by modalias, checked against kmod's own alias resolution.
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { globToRegExp, ModprobeError, modprobeChild, modulesForDevices, parseDeviceAliases, ShippedModules } from "../../init/boot/modules.ts";
import { NODE_MODULES } from "../../initramfs/contents.ts";
import { fetchKernel } from "../../initramfs/kernel.ts";
import { gzippedModulesDep, ModuleError, moduleName, parseModulesDep, resolveModules, stageModules } from "../../initramfs/modules.ts";
import { parseLdd, sharedLibraries } from "../../initramfs/shared-libs.ts";

const dir = mkdtempSync(join(tmpdir(), "zos-modules-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const example = [
  "kernel/fs/ext4/ext4.ko.xz: kernel/lib/crc16.ko.xz kernel/fs/mbcache.ko.xz kernel/fs/jbd2/jbd2.ko.xz",
  "kernel/fs/jbd2/jbd2.ko.xz:",
  "kernel/fs/mbcache.ko.xz:",
  "kernel/lib/crc16.ko.xz:",
  "kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko.xz kernel/net/core/failover.ko.xz",
  "kernel/drivers/net/net_failover.ko.xz: kernel/net/core/failover.ko.xz",
  "kernel/net/core/failover.ko.xz:",
  "kernel/drivers/char/hw_random/virtio-rng.ko.xz:",
  "",
].join("\n");

describe("modules.dep resolution", () => {
  const dep = parseModulesDep(example);

  test("names drop the directory and the compressed suffix, with - read as _", () => {
    expect(moduleName("kernel/drivers/char/hw_random/virtio-rng.ko.zst")).toBe("virtio_rng");
    expect([...dep.keys()]).toContain("virtio_rng");
  });

  test("dependencies come before the module, each once, in modprobe's order", () => {
    expect(resolveModules(dep, new Set(), ["virtio_net", "ext4", "failover"])).toEqual([
      "kernel/net/core/failover.ko.xz",
      "kernel/drivers/net/net_failover.ko.xz",
      "kernel/drivers/net/virtio_net.ko.xz",
      "kernel/fs/jbd2/jbd2.ko.xz",
      "kernel/fs/mbcache.ko.xz",
      "kernel/lib/crc16.ko.xz",
      "kernel/fs/ext4/ext4.ko.xz",
    ]);
  });

  test("built-in modules need nothing; an unknown one is an error", () => {
    expect(resolveModules(dep, new Set(["unix"]), ["unix", "virtio-rng"])).toEqual(["kernel/drivers/char/hw_random/virtio-rng.ko.xz"]);
    expect(() => resolveModules(dep, new Set(), ["no_such_driver"])).toThrow(ModuleError);
  });

  test("gzipped modules.dep: module and dependency paths renamed, nothing else", () => {
    expect(gzippedModulesDep("kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\nkernel/lib/crc16.ko:\n")).toBe(
      "kernel/fs/ext4/ext4.ko.gz: kernel/lib/crc16.ko.gz kernel/fs/jbd2/jbd2.ko.gz\nkernel/lib/crc16.ko.gz:\n");
    expect(gzippedModulesDep("kernel/net/kops.ko:\n")).toBe("kernel/net/kops.ko.gz:\n");
  });

  test("a malformed line is reported with its number", () => {
    expect(() => parseModulesDep("kernel/a.ko:\nnonsense\n")).toThrow(/line 2/);
  });
});

describe("Debian's kernel", () => {
  test("staging nbd, ext4 and virtio_net keeps their dependencies and depmod indexes them", async () => {
    const kernel = await fetchKernel(resolve(import.meta.dir, "../../build/kernel"));
    expect(kernel.release).toMatch(/^\d+\.\d+\.\d+-\d+-amd64$/);
    expect(existsSync(kernel.vmlinuz)).toBe(true);
    const staged = await stageModules(kernel.modulesDir, kernel.release, ["nbd", "ext4", "virtio_net"], join(dir, "stage"));
    const names = staged.files.map(moduleName);
    expect(names).toContain("jbd2");
    expect(names.indexOf("jbd2")).toBeLessThan(names.indexOf("ext4"));
    expect(names).toContain("failover");
    const dep = parseModulesDep(readFileSync(join(staged.dir, "modules.dep"), "utf8"));
    expect([...dep.keys()].sort()).toEqual([...names].sort());
    // every staged file is a gzipped ELF module, named so in modules.dep, that kmod's modinfo reads once inflated
    expect(staged.files.every((f) => f.endsWith(".ko.gz"))).toBe(true);
    expect(readFileSync(join(staged.dir, "modules.dep"), "utf8")).not.toMatch(/\.ko(?!\.gz)/);
    const ext4 = Bun.gunzipSync(readFileSync(join(staged.dir, staged.files.find((f) => moduleName(f) === "ext4")!)));
    expect(Buffer.from(ext4.subarray(0, 4))).toEqual(Buffer.from("\x7fELF", "latin1"));
    writeFileSync(join(dir, "ext4.ko"), ext4);
    const modinfo = Bun.spawnSync(["modinfo", "-F", "depends", join(dir, "ext4.ko")]);
    expect(modinfo.stdout.toString().trim().split(",").sort()).toEqual(["crc16", "jbd2", "mbcache"]);
  }, 180_000);
});

describe("shared libraries", () => {
  test("ldd output: resolved libraries and the interpreter, vdso skipped, missing ones refused", () => {
    const out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
    expect(parseLdd("x", out)).toEqual(["/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]);
    expect(() => parseLdd("x", "\tlibgone.so.1 => not found\n")).toThrow(/libgone.so.1 not found/);
  });

  test("a real binary's closure includes libc and its loader", async () => {
    const libs = await sharedLibraries("/usr/sbin/mkfs.ext4");
    expect(libs.some((l) => l.endsWith("/libc.so.6"))).toBe(true);
    expect(libs.some((l) => l.endsWith("/libext2fs.so.2"))).toBe(true);
    expect(libs.some((l) => /ld-linux-x86-64\.so\.2$/.test(l))).toBe(true);
  });
});

describe("boot drivers by modalias", () => {
  test("modules.alias globs: * and ? match anything, [] sets and [!] negation, the rest literally", () => {
    expect(globToRegExp("pci:v00008086d*sv*").test("pci:v00008086d000010D3sv00001AF4")).toBe(true);
    expect(globToRegExp("pci:v00008086d*sv*").test("pci:v00001AF4d000010D3sv00001AF4")).toBe(false);
    expect(globToRegExp("a?c").test("abc")).toBe(true);
    expect(globToRegExp("a?c").test("ac")).toBe(false);
    expect(globToRegExp("x[0-3]y").test("x2y")).toBe(true);
    expect(globToRegExp("x[!0-3]y").test("x2y")).toBe(false);
    expect(globToRegExp("a.b+c").test("aXb+c")).toBe(false);
  });

  const aliasText = [
    "# Aliases extracted from modules themselves.",
    "alias fs-overlay overlay",
    "alias devname:fuse fuse",
    "alias nft-expr-ct nft_ct",
    "alias pci:v00001AF4d*sv*sd*bc*sc*i* virtio_pci",
    "alias virtio:d00000001v* virtio_net",
    "alias pci:v00008086d000010D3sv*sd*bc*sc*i* e1000e",
    "alias pci:v*d*sv*sd*bc01sc06i01* ahci",
    "alias cpu:type:x86,ven*fam*mod*:feature:*0094* crc32c_intel",
  ].join("\n");

  test("only device aliases count; a device gets every driver whose pattern matches, the CPU too", () => {
    const aliases = parseDeviceAliases(aliasText);
    expect(aliases.map((a) => a.module).sort()).toEqual(["ahci", "crc32c_intel", "e1000e", "virtio_net", "virtio_pci"]);
    const qemu = [
      "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00", // virtio-net-pci
      "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01", // q35's ICH9 AHCI
      "cpu:type:x86,ven0002fam0019mod0011:feature:,0000,0001,0093,0094,0095",
    ];
    expect([...modulesForDevices(aliases, qemu)].sort()).toEqual(["ahci", "crc32c_intel", "virtio_pci"]);
    // the virtio devices appear once virtio_pci is loaded: the next round finds their driver
    expect([...modulesForDevices(aliases, [...qemu, "virtio:d00000001v00001AF4"])]).toContain("virtio_net");
  });

  test("on Debian's kernel: the image's modules, resolved as kmod resolves QEMU's modaliases", async () => {
    const kernel = await fetchKernel(resolve(import.meta.dir, "../../build/kernel"));
    const root = join(dir, "image");
    const staged = await stageModules(kernel.modulesDir, kernel.release, Object.values(NODE_MODULES).flat(), root);
    const aliases = parseDeviceAliases(readFileSync(join(staged.dir, "modules.alias"), "utf8"));
    const devices = [
      "pci:v00001AF4d00001000sv00001AF4sd00000001bc02sc00i00",
      "pci:v00001AF4d00001001sv00001AF4sd00000002bc01sc00i00",
      "pci:v00008086d00002922sv00001AF4sd00001100bc01sc06i01",
      "pci:v00008086d000010D3sv00008086sd00000000bc02sc00i00", // the e1000e QEMU emulates
      "pci:v00008086d00001533sv00008086sd00000000bc02sc00i00", // an i210 (igb)
      "virtio:d00000001v00001AF4",
      "virtio:d00000002v00001AF4",
      "pci:v00001234d00001111sv00001AF4sd00001100bc03sc00i00", // QEMU's VGA: nothing in the image drives it
    ];
    const kmod = new Set<string>();
    for (const m of devices) {
      const out = Bun.spawnSync(["modprobe", "-d", root, "-S", kernel.release, "-R", m]);
      for (const name of out.stdout.toString().split("\n").filter(Boolean)) kmod.add(name.replace(/-/g, "_"));
    }
    const ours = modulesForDevices(aliases, devices);
    expect([...ours].sort()).toEqual([...kmod].sort());
    for (const name of ["virtio_pci", "virtio_net", "virtio_blk", "ahci", "e1000e", "igb"]) expect(ours).toContain(name);
    for (const name of ["nvme", "ixgbe", "mlx5_core", "tg3"]) expect(ours).not.toContain(name);

    // what no device claims loads after the RPC is up: the services' modules, not their dependencies
    const shipped = new ShippedModules(staged.dir, join(dir, "no-proc-modules"));
    const later = shipped.serviceModules(aliases);
    for (const name of ["nbd", "fuse", "overlay", "veth", "br_netfilter", "nft_chain_nat", "ext4"]) expect(later).toContain(name);
    for (const name of ["virtio_net", "igb", "nvme", "jbd2", "nf_tables", "bridge"]) expect(later).not.toContain(name);
    // a name the image lacks is a failure before any syscall
    expect(shipped.load(["no_such_module"])).toEqual({ loaded: [], present: 0, failed: ["no_such_module"] });
  }, 180_000);
});

describe("modprobe child (disk controllers at boot, service modules after)", () => {
  const fake = (body: string) => {
    const path = join(dir, `modprobe-${Math.random().toString(36).slice(2)}`);
    writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return path;
  };

  test("complaints and a non-zero exit reject with the names asked for", async () => {
    const modprobe = fake('echo "modprobe: can\'t load module ahci: Invalid argument" >&2; exit 1');
    const err = await modprobeChild(["ahci", "nvme"], { modprobe }).catch((e) => e);
    expect(err).toBeInstanceOf(ModprobeError);
    expect(err.names).toEqual(["ahci", "nvme"]);
    expect(err.message).toContain("Invalid argument");
  });

  test("a module for hardware this machine lacks is not a failure", async () => {
    const modprobe = fake('echo "modprobe: can\'t load module efivarfs: No such device" >&2; exit 1');
    await modprobeChild(["efivarfs"], { modprobe });
  });

  test("a child past its bound is killed and reported", async () => {
    const modprobe = fake("exec sleep 600");
    const err = await modprobeChild(["ahci"], { modprobe, timeoutMs: 50 }).catch((e) => e);
    expect(err).toBeInstanceOf(ModprobeError);
    expect(err.reason).toContain("SIGKILL");
  });
});
