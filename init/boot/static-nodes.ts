// Device nodes for modules that load on first use, made at boot as `kmod static-nodes` does for
// udev. depmod writes them to modules.devname, one per line: "<module> <devname> <c|b><major>:<minor>"
// (e.g. "fuse fuse c10:229", "tun net/tun c10:200"). Opening such a node before its module is in
// the kernel makes the kernel request_module("char-major-10-229"), which /sbin/modprobe resolves
// through modules.alias. Without the node an open of /dev/fuse fails with ENOENT until something
// else happens to load fuse (here: the service modules loaded in the background after the RPC is up).
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { EEXIST, LibcError, mknod } from "../libc.ts";
import { logger } from "../log.ts";

const log = logger("modules");
const S_IFCHR = 0o020000, S_IFBLK = 0o060000;

export interface StaticNode {
  module: string;
  devname: string;
  type: "c" | "b";
  major: number;
  minor: number;
}

export function parseDevname(text: string): StaticNode[] {
  const out: StaticNode[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\S+)\s+(\S+)\s+([cb])(\d+):(\d+)\s*$/.exec(line);
    if (m && !m[2].split("/").includes("..")) out.push({ module: m[1].replace(/-/g, "_"), devname: m[2], type: m[3] as "c" | "b", major: Number(m[4]), minor: Number(m[5]) });
  }
  return out;
}

/** Makes the missing nodes of modules.devname under devDir (mode 0600, as kmod does); returns their names. */
export function makeStaticNodes(modulesDir: string, devDir = "/dev"): string[] {
  const file = join(modulesDir, "modules.devname");
  if (!existsSync(file)) return [];
  const made: string[] = [];
  for (const n of parseDevname(readFileSync(file, "utf8"))) {
    const path = join(devDir, n.devname);
    if (existsSync(path)) continue;
    try {
      mkdirSync(dirname(path), { recursive: true });
      mknod(path, (n.type === "c" ? S_IFCHR : S_IFBLK) | 0o600, n.major, n.minor);
      made.push(n.devname);
    } catch (e) {
      if (!(e instanceof LibcError && e.errno === EEXIST)) log.warn(`cannot make ${path} for ${n.module}`, (e as Error).message);
    }
  }
  return made;
}
