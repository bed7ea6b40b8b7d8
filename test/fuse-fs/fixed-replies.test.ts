// The reader threads answer the root's entries and attributes, STATFS and GETXATTR themselves
// (FlistFs.fixedReplies): callers must see exactly what the main thread's handler answers, and
// those requests must never reach it. Stats are taken by a child process: this thread answers FUSE.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pack } from "../../fuse-fs/index.ts";
import { Flist, ROOT_INO } from "../../fuse-fs/flist.ts";
import { FlistFs } from "../../fuse-fs/fs.ts";
import { BlockFetcher } from "../../fuse-fs/blocks.ts";
import { FuseSession, type FuseHandler } from "../../fuse-fs/fuse/session.ts";
import { opName } from "../../fuse-fs/fuse/proto.ts";
import { openStore } from "../../store/index.ts";

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zflist-fixed-"));
  const src = join(dir, "src");
  mkdirSync(join(src, "etc"), { recursive: true });
  writeFileSync(join(src, "etc/hostname"), "box\n");
  writeFileSync(join(src, "file"), "at the root\n", { mode: 0o640 });
  symlinkSync("etc/hostname", join(src, "link"));
  await pack({ source: src, output: join(dir, "x.fl"), stores: [`dir://${join(dir, "store")}`] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What a process sees of the mount: lstat of root names, a missing one, one level down, xattrs, statvfs, a read. */
const probe = `import os, sys, errno
m = sys.argv[1]
def st(p):
    try:
        s = os.lstat(os.path.join(m, p)); return [s.st_ino, s.st_mode, s.st_size, s.st_uid, s.st_gid, s.st_mtime_ns, s.st_nlink]
    except OSError as e:
        return errno.errorcode[e.errno]
def xattr(p):
    try:
        return os.getxattr(os.path.join(m, p), "user.x", follow_symlinks=False).decode()
    except OSError as e:
        return errno.errorcode[e.errno]
v = os.statvfs(m)
print([st(""), st("etc"), st("file"), st("link"), st("missing"), st("etc/hostname"), st("etc/missing"),
       xattr("file"), xattr("etc"), [v.f_bsize, v.f_blocks, v.f_files, v.f_namemax],
       os.readlink(os.path.join(m, "link")), open(os.path.join(m, "etc/hostname")).read()])`;

async function seen(withFixed: boolean): Promise<{ out: string; asked: string[] }> {
  const mnt = join(dir, withFixed ? "fixed" : "plain");
  mkdirSync(mnt);
  const flist = Flist.open(join(dir, "x.fl"));
  const store = await openStore([`dir://${join(dir, "store")}`]);
  const fs = new FlistFs(flist, new BlockFetcher(store));
  const asked: string[] = [];
  const handler: FuseHandler = {
    handle(req) {
      asked.push(`${opName(req.h.opcode)} ${req.h.nodeid}`);
      return fs.handle(req);
    },
    released: (fhs) => fs.released(fhs),
  };
  if (withFixed) handler.fixedReplies = () => fs.fixedReplies();
  const session = await FuseSession.mount(handler, { mountpoint: mnt, rootMode: flist.inode(ROOT_INO)!.mode, readers: 1 });
  try {
    const p = Bun.spawn(["python3", "-c", probe, mnt], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    if (code !== 0) throw new Error(err);
    return { out, asked };
  } finally {
    session.unmount();
    await session.closed;
    flist.close();
    await store.close();
  }
}

test("the readers' own answers equal the handler's, and root lookups, attributes, STATFS and GETXATTR never reach it", async () => {
  const plain = await seen(false);
  const fixed = await seen(true);
  expect(fixed.out).toBe(plain.out);
  const [root, etc, file, link, missing, deeper, deeperMissing, xattrFile, xattrEtc, statvfs, target, content] = JSON.parse(fixed.out.replace(/'/g, '"'));
  expect(root[1] & 0o170000).toBe(0o040000);
  expect(etc[1] & 0o170000).toBe(0o040000);
  expect([file[1] & 0o7777, file[2]]).toEqual([0o640, "at the root\n".length]);
  expect(link[1] & 0o170000).toBe(0o120000);
  expect([missing, deeperMissing]).toEqual(["ENOENT", "ENOENT"]);
  expect(deeper[2]).toBe(4);
  expect([xattrFile, xattrEtc]).toEqual(["ENODATA", "ENODATA"]);
  expect(statvfs[2]).toBe(5); // root, etc, etc/hostname, file, link
  expect([target, content]).toEqual(["etc/hostname", "box\n"]);

  // without fixed replies the handler is asked all of these; with them, only what lies below the root
  const rootish = (a: string[]) => a.filter((r) => /^(LOOKUP 1|GETATTR|STATFS|GETXATTR)\b/.test(r));
  expect(rootish(plain.asked)).toContain("LOOKUP 1");
  expect(rootish(plain.asked)).toContain("STATFS 1");
  expect(rootish(plain.asked).some((r) => r.startsWith("GETXATTR"))).toBe(true);
  expect(rootish(fixed.asked)).toEqual([]);
  expect(fixed.asked).toContain(`LOOKUP ${etc[0]}`);
  expect(fixed.asked.some((r) => r.startsWith("READLINK") || r.startsWith("READ "))).toBe(true);
});
