// Module selection from modules.dep, on a written example and on Debian's real kernel package
// (fetched with apt-get download, checked with kmod's own modinfo and depmod output).
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fetchKernel } from "../../initramfs/kernel.ts";
import { ModuleError, moduleName, parseModulesDep, resolveModules, stageModules } from "../../initramfs/modules.ts";
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
    // every staged file is a plain ELF module that modinfo (kmod) can read
    const ext4 = join(staged.dir, staged.files.find((f) => moduleName(f) === "ext4")!);
    expect(readFileSync(ext4).subarray(0, 4)).toEqual(Buffer.from("\x7fELF", "latin1"));
    const modinfo = Bun.spawnSync(["modinfo", "-F", "depends", ext4]);
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
