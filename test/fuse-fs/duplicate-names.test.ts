// Names that are not UTF-8 are packed lossily, so one directory can hold two rows with the same name.
// A LOOKUP of such a name must give the same inode whether it is answered by the indexed query (the
// first lookups in a directory) or from the directory's loaded listing (later ones).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { Database } from "bun:sqlite";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pack } from "../../fuse-fs/index.ts";
import { Flist } from "../../fuse-fs/flist.ts";
import { FlistFs } from "../../fuse-fs/fs.ts";
import { BlockFetcher } from "../../fuse-fs/blocks.ts";
import { Op, OUT_HEADER } from "../../fuse-fs/fuse/proto.ts";
import { openStore } from "../../store/index.ts";

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zflist-dupnames-"));
  mkdirSync(join(dir, "src/d"), { recursive: true });
  for (const n of ["same", "b", "c", "e", "f"]) writeFileSync(join(dir, "src/d", n), n);
  await pack({ source: join(dir, "src"), output: join(dir, "x.fl"), stores: [`dir://${join(dir, "store")}`] });
  // a second row named "same" in d, as two names that differ only in their invalid bytes become
  const db = new Database(join(dir, "x.fl"), { readwrite: true });
  db.exec("INSERT INTO inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) SELECT parent, name, 99, uid, gid, mode, rdev, ctime, mtime FROM inode WHERE name = 'same'");
  db.close();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let unique = 1n;
/** The node id a LOOKUP of `name` in directory `parent` answers with. */
async function lookup(fs: FlistFs, parent: number, name: string): Promise<bigint> {
  const body = Buffer.from(name + "\0");
  const h = { len: 0, opcode: Op.LOOKUP, unique: unique++, nodeid: parent, uid: 0, gid: 0, pid: 0 };
  const reply = (await fs.handle({ h, body: new DataView(body.buffer, body.byteOffset, body.length), signal: new AbortController().signal })) as Buffer;
  return reply.readBigUInt64LE(OUT_HEADER);
}

test("a name held twice in a directory resolves to one inode before and after the listing loads", async () => {
  const flist = Flist.open(join(dir, "x.fl"));
  const fs = new FlistFs(flist, new BlockFetcher(await openStore([`dir://${join(dir, "store")}`])));
  const d = flist.lookup(1, "d")!.ino;
  const rows = flist.children(d).filter((c) => c.name === "same");
  expect(rows).toHaveLength(2);
  const indexed = await lookup(fs, d, "same");
  // enough other lookups that the directory's listing is loaded
  for (const n of ["b", "c", "e", "f", "b"]) await lookup(fs, d, n);
  const listed = await lookup(fs, d, "same");
  expect(listed).toBe(indexed);
});
