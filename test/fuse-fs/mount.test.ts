// The FUSE filesystem under the real kernel: a generated tree (10,000 small files, a 512 MiB file, a
// 5 GiB mostly-zero file, every file type, unicode and 255-byte names, deep nesting, odd owners and
// modes) is packed, mounted by `zflist mount` and compared path by path with its source, then walked
// with tar and find, and read at random offsets across block boundaries.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, closeSync, ftruncateSync, lutimesSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statfsSync, symlinkSync, utimesSync, writeFileSync, writeSync, readdirSync, readFileSync, lstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pack } from "../../fuse-fs/pack.ts";
import { mknod } from "../../fuse-fs/libc.ts";
import { expectSameTree, isMounted, run, startMount, type MountProc } from "./helpers.ts";

const MiB = 1 << 20;
let dir: string, src: string, mnt: string;
let mount: MountProc;

function makeTree(root: string): void {
  // 10,000 small files in 100 directories, each with its own content.
  for (let d = 0; d < 100; d++) {
    const sub = join(root, "small", `d${d}`);
    mkdirSync(sub, { recursive: true });
    for (let f = 0; f < 100; f++) writeFileSync(join(sub, `f${f}`), `file ${d}/${f}\n`.repeat((d * 7 + f) % 50));
  }
  const big = openSync(join(root, "big512"), "w");
  for (let i = 0; i < 512; i++) writeSync(big, randomBytes(MiB));
  closeSync(big);
  // 5 GiB, nearly all zeros, with data straddling block boundaries and beyond 4 GiB.
  const sparse = openSync(join(root, "sparse5g"), "w");
  ftruncateSync(sparse, 5 * 1024 * MiB + 12345);
  for (const at of [0, 512 * 1024 - 100, 3 * 1024 * MiB, 4 * 1024 * MiB + 7, 5 * 1024 * MiB + 12000]) writeSync(sparse, randomBytes(300), 0, 300, at);
  closeSync(sparse);
  writeFileSync(join(root, "empty"), "");
  mkdirSync(join(root, "emptydir"));
  symlinkSync("small/d0/f1", join(root, "rel-link"));
  symlinkSync("/etc/hostname", join(root, "abs-link"));
  symlinkSync("does/not/exist", join(root, "dangling"));
  mknod(join(root, "null"), 0o020666, (1 << 8) | 3);
  mknod(join(root, "blockdev"), 0o060600, (8 << 8) | 1);
  mknod(join(root, "fifo"), 0o010644, 0);
  mknod(join(root, "socket"), 0o140755, 0);
  writeFileSync(join(root, "héllo wörld ✓ 日本語"), "unicode\n");
  writeFileSync(join(root, "x".repeat(255)), "long name\n");
  writeFileSync(join(root, "é".repeat(127) + "z"), "long multibyte name\n");
  let deep = join(root, "deep");
  for (let i = 0; i < 40; i++) deep = join(deep, `level${i}`);
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, "bottom"), "deep\n");
  writeFileSync(join(root, "setuid"), "#!/bin/sh\n");
  chownSync(join(root, "setuid"), 1234, 5678);
  chmodSync(join(root, "setuid"), 0o4755);
  mkdirSync(join(root, "private"), 0o700);
  chownSync(join(root, "private"), 42, 43);
  mkdirSync(join(root, "sticky"));
  chmodSync(join(root, "sticky"), 0o1777);
  utimesSync(join(root, "empty"), 631152000, 631152000); // 1990
  lutimesSync(join(root, "dangling"), 1_000_000_000, 1_000_000_000);
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zflist-mount-"));
  src = join(dir, "src");
  mnt = join(dir, "mnt");
  mkdirSync(src);
  mkdirSync(mnt);
  makeTree(src);
  await pack({ source: src, output: join(dir, "tree.fl"), stores: [`dir://${join(dir, "store")}`] });
  mount = await startMount([join(dir, "tree.fl"), mnt, "--cache", join(dir, "cache"), "--cache-size", "256M"]);
}, 240_000);

afterAll(async () => {
  if (mount) expect(await mount.stop()).toBe(0);
  expect(isMounted(mnt)).toBe(false);
  rmSync(dir, { recursive: true, force: true });
}, 60_000);

describe("mounted flist", () => {
  test("every path matches its source: type, mode, owner, size, mtime, rdev, target, content", () => {
    const files = expectSameTree(src, mnt);
    expect(files).toBe(10_000 + 8);
  }, 120_000);

  test("tar and find see the same tree", () => {
    const count = (cmd: string) => {
      const r = run(["bash", "-o", "pipefail", "-c", cmd]);
      expect(r.err.replace("tar: ./socket: socket ignored\n", "")).toBe("");
      return r.out.trim();
    };
    const list = (root: string) => count(`cd ${root} && tar cf - --exclude ./big512 --exclude ./sparse5g . | tar tf - | sort | md5sum`);
    expect(list(mnt)).toBe(list(src));
    const finds = (root: string) => count(`cd ${root} && find . | wc -l && find . -type f | wc -l && find . -type l | wc -l && find . -type d | wc -l`);
    expect(finds(mnt)).toBe(finds(src));
    // root, small/ and its 100 dirs and 10,000 files, 14 other top-level entries, deep/ with 40 levels
    // and its file, setuid, private, sticky.
    expect(finds(mnt).split("\n")[0]).toBe(String(1 + 1 + 100 + 10_000 + 14 + 41 + 1 + 3));
  }, 60_000);

  test("random preads across block boundaries match the source", () => {
    const B = 512 * 1024;
    for (const name of ["big512", "sparse5g"]) {
      const a = openSync(join(src, name), "r"), b = openSync(join(mnt, name), "r");
      const size = lstatSync(join(src, name)).size;
      const ba = Buffer.alloc(3 * MiB), bb = Buffer.alloc(3 * MiB);
      const offsets = [0, B - 1, B, size - 1, size - 5000, 4 * 1024 * MiB + 1, 3 * 1024 * MiB - 10];
      for (let i = 0; i < 150; i++) {
        const block = Math.floor(Math.random() * (size / B));
        offsets.push(Math.max(0, block * B - Math.floor(Math.random() * 4096)));
      }
      for (const off of offsets.filter((o) => o < size)) {
        const len = 1 + Math.floor(Math.random() * (3 * MiB - 1));
        const na = readSync(a, ba, 0, len, off), nb = readSync(b, bb, 0, len, off);
        expect(nb).toBe(na);
        if (!ba.subarray(0, na).equals(bb.subarray(0, nb))) throw new Error(`${name}: ${len} bytes at ${off} differ`);
      }
      // Past the end: nothing, no error.
      expect(readSync(b, bb, 0, 100, size + 10)).toBe(0);
      closeSync(a);
      closeSync(b);
    }
  });

  test("writes are refused with EROFS; missing names are ENOENT; statfs and xattrs answer", () => {
    expect(() => writeFileSync(join(mnt, "new"), "x")).toThrow(/EROFS|read-only/i);
    expect(() => writeFileSync(join(mnt, "empty"), "x")).toThrow(/EROFS|read-only/i);
    expect(() => mkdirSync(join(mnt, "newdir"))).toThrow(/EROFS|read-only/i);
    expect(() => rmSync(join(mnt, "empty"))).toThrow(/EROFS|read-only/i);
    expect(() => lstatSync(join(mnt, "nope"))).toThrow(/ENOENT/);
    expect(() => lstatSync(join(mnt, "nope"))).toThrow(/ENOENT/); // now from the kernel's negative cache
    const fs = statfsSync(mnt);
    expect(fs.files).toBeGreaterThan(10_000);
    const getfattr = run(["getfattr", "-d", join(mnt, "empty")]);
    expect(getfattr.code).toBe(0);
    expect(getfattr.out).toBe("");
    const one = run(["getfattr", "-n", "user.missing", join(mnt, "empty")]);
    expect(one.err).toContain("No such attribute");
    expect(readFileSync(join(mnt, "small/d3/f4"), "utf8")).toBe("file 3/4\n".repeat(25));
    expect(readdirSync(join(mnt, "emptydir"))).toEqual([]);
  });
});
