// Boot's static device nodes (init/boot/static-nodes.ts) from a modules.devname as depmod writes it.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { makeStaticNodes, parseDevname } from "../../init/boot/static-nodes.ts";
import { tempDir } from "./helpers.ts";

const t = tempDir("zos-static-nodes-");
afterAll(() => t.cleanup());

const devname = "# Device nodes to trigger on-demand module loading.\nfuse fuse c10:229\nloop loop-control c10:237\ntun net/tun c10:200\nbad ../escape c1:1\nbtrfs btrfs-control c10:234\n";

test("modules.devname lines become nodes; existing ones are left alone", () => {
  expect(parseDevname(devname).map((n) => `${n.module} ${n.devname} ${n.type}${n.major}:${n.minor}`)).toEqual(["fuse fuse c10:229", "loop loop-control c10:237", "tun net/tun c10:200", "btrfs btrfs-control c10:234"]);
  const modules = join(t.path, "modules"), dev = join(t.path, "dev");
  mkdirSync(modules);
  mkdirSync(dev);
  writeFileSync(join(modules, "modules.devname"), devname);
  writeFileSync(join(dev, "btrfs-control"), "");
  expect(makeStaticNodes(modules, dev)).toEqual(["fuse", "loop-control", "net/tun"]);
  const fuse = statSync(join(dev, "fuse"));
  expect(fuse.isCharacterDevice()).toBe(true);
  expect(fuse.mode & 0o777).toBe(0o600);
  // st_rdev of c10:229 as the kernel's new_encode_dev/old layout puts it for small numbers
  expect(fuse.rdev).toBe((10 << 8) | 229);
  expect(statSync(join(dev, "net", "tun")).rdev).toBe((10 << 8) | 200);
  expect(statSync(join(dev, "btrfs-control")).isFile()).toBe(true);
  expect(makeStaticNodes(modules, dev)).toEqual([]);
  expect(makeStaticNodes(join(t.path, "none"), dev)).toEqual([]);
});
