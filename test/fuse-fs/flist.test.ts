// The flist format and the offline tools: pack to a dir:// store, inspect, tag, unpack, and the schema
// as the plain sqlite3 client sees it (compared against rfs's schema/schema.sql).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, readdirSync, rmSync, symlinkSync, utimesSync, writeFileSync, chownSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Flist } from "../../fuse-fs/flist.ts";
import { pack } from "../../fuse-fs/pack.ts";
import { unpack } from "../../fuse-fs/unpack.ts";
import { summarize } from "../../fuse-fs/inspect.ts";
import { mknod } from "../../fuse-fs/libc.ts";

const bun = process.execPath;
const cli = join(import.meta.dir, "../../fuse-fs/cli.ts");
let dir: string;

function run(cmd: string[]): { code: number; out: string; err: string } {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "zflist-"));
  const src = join(dir, "src");
  mkdirSync(join(src, "d/e"), { recursive: true });
  writeFileSync(join(src, "d/small"), "hello\n");
  // 2.5 blocks of patterned data, so block boundaries and a short last block are exercised.
  const big = Buffer.alloc(512 * 1024 * 2 + 1000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 31 + (i >> 13)) & 0xff;
  writeFileSync(join(src, "d/e/big"), big);
  writeFileSync(join(src, "empty"), "");
  symlinkSync("../empty", join(src, "d/link"));
  symlinkSync("/nowhere/at/all", join(src, "dangling"));
  mknod(join(src, "null"), 0o020644, (1 << 8) | 3);
  mknod(join(src, "pipe"), 0o010600, 0);
  writeFileSync(join(src, "d/owned"), "x");
  chownSync(join(src, "d/owned"), 1234, 5678);
  chmodSync(join(src, "d/owned"), 0o4751);
  utimesSync(join(src, "d/owned"), 1_500_000_000, 1_500_000_000);
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("flist", () => {
  test("pack writes rfs's schema, readable by the sqlite3 client", async () => {
    const fl = join(dir, "a.fl");
    const store = join(dir, "store");
    await pack({ source: join(dir, "src"), output: fl, stores: [`dir://${store}`] });
    // rfs schema/schema.sql, as (table, column, declared type).
    const want = [
      ["inode", "ino", "INTEGER"], ["inode", "parent", "INTEGER"], ["inode", "name", "VARCHAR(255)"], ["inode", "size", "INTEGER"],
      ["inode", "uid", "INTEGER"], ["inode", "gid", "INTEGER"], ["inode", "mode", "INTEGER"], ["inode", "rdev", "INTEGER"],
      ["inode", "ctime", "INTEGER"], ["inode", "mtime", "INTEGER"],
      ["extra", "ino", "INTEGER"], ["extra", "data", "VARCHAR(4096)"],
      ["block", "ino", "INTEGER"], ["block", "id", "VARCHAR(32)"], ["block", "key", "VARCHAR(32)"],
      ["tag", "key", "VARCHAR(10)"], ["tag", "value", "VARCHAR(255)"],
      ["route", "start", "integer"], ["route", "end", "integer"], ["route", "url", "VARCHAR(2048)"],
    ];
    const got: string[][] = [];
    for (const table of ["inode", "extra", "block", "tag", "route"]) {
      const r = run(["sqlite3", "-separator", "|", fl, `SELECT name, type, pk FROM pragma_table_info('${table}')`]);
      expect(r.code).toBe(0);
      for (const line of r.out.trim().split("\n")) {
        const [name, type] = line.split("|");
        got.push([table, name, type]);
      }
    }
    // pragma_table_info reports declared types upper-cased; rfs's route columns are written "integer".
    expect(got).toEqual(want.map(([t, c, ty]) => [t, c, ty.toUpperCase()]));
    const idx = run(["sqlite3", fl, "SELECT name || ' ' || tbl_name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_%' ORDER BY name"]);
    expect(idx.out.trim().split("\n")).toEqual(["block_ino block", "parents inode"]);
    const root = run(["sqlite3", fl, "SELECT ino, parent, name FROM inode ORDER BY ino LIMIT 1"]);
    expect(root.out.trim()).toBe("1|0|/");
    // ids and keys are 32-byte blobs, as rfs binds them.
    const blk = run(["sqlite3", fl, "SELECT DISTINCT typeof(id), length(id), typeof(key), length(key) FROM block"]);
    expect(blk.out.trim()).toBe("blob|32|blob|32");
  });

  test("rows record type, mode, owner, times, rdev, targets and blocks", async () => {
    const f = Flist.open(join(dir, "a.fl"));
    const root = f.inode(1)!;
    const d = f.lookup(1, "d")!;
    const owned = f.lookup(d.ino, "owned")!;
    expect(owned).toMatchObject({ uid: 1234, gid: 5678, mode: 0o104751, mtime: 1_500_000_000, size: 1 });
    const dev = f.lookup(root.ino, "null")!;
    expect(dev.mode).toBe(0o020644);
    expect(dev.rdev).toBe((1 << 8) | 3);
    expect(f.lookup(root.ino, "pipe")!.mode).toBe(0o010600);
    expect(new TextDecoder().decode(f.target(f.lookup(d.ino, "link")!.ino)!)).toBe("../empty");
    const big = f.lookup(f.lookup(d.ino, "e")!.ino, "big")!;
    expect(f.blocks(big.ino).length).toBe(3);
    expect(f.blocks(f.lookup(1, "empty")!.ino).length).toBe(0);
    const s = summarize(f);
    expect(s).toMatchObject({ files: 4, directories: 3, symlinks: 2, special: 2, blocks: 5, routes: [{ start: 0, end: 255 }] });
    f.close();
  });

  test("unpack restores the tree exactly", async () => {
    const out = join(dir, "out");
    await unpack({ flist: join(dir, "a.fl"), target: out, preserveOwnership: true });
    const walk = (root: string, rel = ""): string[] => {
      const st = lstatSync(join(root, rel));
      const line = `${rel}|${st.mode}|${st.uid}|${st.gid}|${st.isDirectory() ? "-" : st.size}|${Math.floor(st.mtimeMs / 1000)}|${st.rdev}`;
      const extra = st.isSymbolicLink() ? readlinkSync(join(root, rel)) : st.isFile() ? Bun.hash(readFileSync(join(root, rel))).toString() : "";
      const kids = st.isDirectory() ? readdirSync(join(root, rel)).sort().flatMap((n) => walk(root, join(rel, n))) : [];
      return [`${line}|${extra}`, ...kids];
    };
    expect(walk(out)).toEqual(walk(join(dir, "src")));
  });

  test("pack strips route passwords unless told to keep them; tags via the CLI", async () => {
    const fl = join(dir, "b.fl");
    const store = join(dir, "store");
    const r = run([bun, cli, "pack", join(dir, "src/d/e"), "-o", fl, "-s", `00-7f=dir://${store}`, "-s", `80-ff=dir://${store}`, "--tag", "author=me"]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const f = Flist.open(fl, { write: true });
    expect(f.routes().map((x) => [x.start, x.end])).toEqual([[0, 0x7f], [0x80, 0xff]]);
    f.addRoute({ start: 0, end: 255, url: "zdb://user:secret@127.0.0.1:9900/ns" });
    f.close();
    expect(run([bun, cli, "tag", fl, "get", "author"]).out).toBe("me\n");
    expect(run([bun, cli, "tag", fl, "set", "description", "a b c"]).code).toBe(0);
    expect(run([bun, cli, "tag", fl, "list"]).out).toBe("author=me\ndescription=a b c\nversion=1\n");
    const missing = run([bun, cli, "tag", fl, "get", "nope"]);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("not-found");
    const inspect = JSON.parse(run([bun, cli, "inspect", fl, "--json"]).out);
    expect(inspect.files).toBe(1);
    const { stripPassword } = await import("../../fuse-fs/urls.ts");
    expect(stripPassword("zdb://user:secret@127.0.0.1:9900/ns")).toBe("zdb://user@127.0.0.1:9900/ns");
  });

  test("a name that is not UTF-8 is packed (recorded lossily, as rfs does)", async () => {
    const odd = join(dir, "odd");
    mkdirSync(odd);
    writeFileSync(Buffer.concat([Buffer.from(odd + "/f"), Buffer.from([0xff]), Buffer.from("g")]), "bytes");
    await pack({ source: odd, output: join(dir, "odd.fl"), stores: [`dir://${join(dir, "store")}`] });
    const f = Flist.open(join(dir, "odd.fl"));
    const node = f.lookup(1, "f\uFFFDg")!;
    expect(node.size).toBe(5);
    expect(f.blocks(node.ino).length).toBe(1);
    f.close();
  });

  test("a file that is not an flist is a typed error", () => {
    const bad = join(dir, "bad.fl");
    writeFileSync(bad, "not sqlite at all, just text that is long enough to be a header".repeat(10));
    expect(() => Flist.open(bad)).toThrow(/not an rfs flist|cannot open|file is not a database/);
    const r = run([bun, cli, "inspect", bad]);
    expect(r.code).toBe(1);
    expect(r.err).toContain("bad-flist");
  });
});
