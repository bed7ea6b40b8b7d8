// A mount over the erasure-coded store (three real zdb servers, k=2 m=1): files read back intact,
// the decode workers leave every block verified in the chunk cache, and with one server killed the
// same files read back from a fresh cache, rebuilt from parity.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Flist } from "../../fuse-fs/flist.ts";
import { pack } from "../../fuse-fs/pack.ts";
import { hex } from "../../store/index.ts";
import { ZdbProcess } from "../store/cluster.ts";
import { expectSameTree, startMount } from "./helpers.ts";

let dir: string, src: string, flist: string;
const servers: ZdbProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zflist-ec-"));
  src = join(dir, "src");
  mkdirSync(join(src, "sub"), { recursive: true });
  writeFileSync(join(src, "three-blocks"), randomBytes(3 * 512 * 1024 - 1234));
  writeFileSync(join(src, "compressible"), Buffer.alloc(700_000, "zero-os "));
  writeFileSync(join(src, "sub", "small"), "hello erasure");
  writeFileSync(join(src, "empty"), "");
  for (let i = 0; i < 3; i++) servers.push(await ZdbProcess.start({ namespace: "blocks" }));
  const config = join(dir, "zstore.yaml");
  writeFileSync(config, `k: 2\nm: 1\ngroups:\n  - name: dc\n    backends:\n${servers.map((z) => `      - ${z.url("blocks")}\n`).join("")}`);
  flist = join(dir, "tree.fl");
  await pack({ source: src, output: flist, stores: [`zstore://${config}`] });
});

afterAll(async () => {
  await Promise.all(servers.map((z) => z.destroy()));
  rmSync(dir, { recursive: true, force: true });
});

/** Mounts the flist with a fresh cache, compares the tree with the source, returns the cache dir. */
async function mountAndCompare(name: string): Promise<string> {
  const mnt = join(dir, `mnt-${name}`);
  const cache = join(dir, `cache-${name}`);
  mkdirSync(mnt);
  const m = await startMount([flist, mnt, "--cache", cache]);
  try {
    expect(expectSameTree(src, mnt)).toBe(4);
  } finally {
    expect(await m.stop()).toBe(0);
  }
  return cache;
}

test("files read back intact and every block lands verified in the chunk cache", async () => {
  const cache = await mountAndCompare("all");
  const f = Flist.open(flist);
  try {
    const expected = new Map<string, Buffer>();
    for (const name of ["three-blocks", "compressible", "sub/small"]) {
      const data = readFileSync(join(src, name));
      const node = name.split("/").reduce((parent, part) => f.lookup(parent, part)!.ino, 1);
      f.blocks(node).forEach((b, i) => expected.set(hex(b.id), data.subarray(i * 512 * 1024, (i + 1) * 512 * 1024)));
    }
    const files = readdirSync(cache, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
    expect(files.map((e) => e.name).sort()).toEqual([...expected.keys()].sort());
    for (const e of files) expect(Buffer.compare(readFileSync(join(e.parentPath, e.name)), expected.get(e.name)!)).toBe(0);
  } finally {
    f.close();
  }
});

test("with one server gone the blocks are rebuilt from parity", async () => {
  await servers[0].kill();
  await mountAndCompare("degraded");
});
