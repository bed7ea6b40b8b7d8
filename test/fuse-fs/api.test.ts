// The programmatic API init uses: mountFlist in this process (reads go through child processes, since
// this thread answers the kernel), request counts, unmount; and the pack progress bar on a terminal.
import { afterAll, beforeAll, expect, spyOn, test } from "bun:test";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mountFlist, pack } from "../../fuse-fs/index.ts";
import { Flist } from "../../fuse-fs/flist.ts";
import { LOOKUPS_BEFORE_LISTING } from "../../fuse-fs/fs.ts";
import { bun, cli, isMounted } from "./helpers.ts";

let dir: string;
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zflist-api-"));
  mkdirSync(join(dir, "src/sub"), { recursive: true });
  writeFileSync(join(dir, "src/sub/hello"), "hello from the store\n");
  writeFileSync(join(dir, "src/big"), Buffer.alloc(3 << 20, 7));
  await pack({ source: join(dir, "src"), output: join(dir, "x.fl"), stores: [`dir://${join(dir, "store")}`] });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function child(cmd: string[]): Promise<string> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")}: ${err}`);
  return out;
}

test("mountFlist mounts, serves, counts requests and unmounts", async () => {
  const mnt = join(dir, "mnt");
  mkdirSync(mnt);
  const m = await mountFlist({ flist: join(dir, "x.fl"), mountpoint: mnt, cacheDir: join(dir, "cache"), cacheBytes: 64 << 20 });
  try {
    expect(isMounted(mnt)).toBe(true);
    expect(await child(["cat", join(mnt, "sub/hello")])).toBe("hello from the store\n");
    expect(await child(["ls", mnt])).toBe("big\nsub\n");
    expect(await child(["bash", "-c", `cmp ${join(mnt, "big")} ${join(dir, "src/big")} && echo same`])).toBe("same\n");
    const counts = m.requestCounts();
    expect(counts.INIT).toBe(1);
    expect(counts.READ).toBeGreaterThan(0);
  } finally {
    await m.unmount();
  }
  expect(isMounted(mnt)).toBe(false);
  await m.closed;
});

test("a missing name is cached by the kernel as a negative entry: ENOENT to callers, one LOOKUP", async () => {
  const mnt = join(dir, "mnt-negative");
  mkdirSync(mnt);
  const m = await mountFlist({ flist: join(dir, "x.fl"), mountpoint: mnt, cacheDir: join(dir, "cache"), cacheBytes: 64 << 20 });
  // Five lstats in each of two processes: the kernel's dentry cache is shared, so only the first asks us.
  const lstats = `import os, sys
for _ in range(5):
    try:
        os.lstat(sys.argv[1]); print("found")
    except FileNotFoundError:
        print("ENOENT")`;
  try {
    const before = m.requestCounts().LOOKUP ?? 0;
    for (let i = 0; i < 2; i++) expect(await child(["python3", "-c", lstats, join(mnt, "sub/nope")])).toBe("ENOENT\n".repeat(5));
    // "sub" once, "nope" once; an ENOENT reply would be asked again on every lstat.
    expect(m.requestCounts().LOOKUP).toBe(before + 2);
  } finally {
    await m.unmount();
  }
});

test("lookups in a directory answer the same before and after its listing is loaded", async () => {
  mkdirSync(join(dir, "src-many/sub/many"), { recursive: true });
  for (let i = 0; i < 12; i++) writeFileSync(join(dir, `src-many/sub/many/f${i}`), "x".repeat(i));
  await pack({ source: join(dir, "src-many"), output: join(dir, "many.fl"), stores: [`dir://${join(dir, "store")}`] });
  const mnt = join(dir, "mnt-lookups");
  mkdirSync(mnt);
  const m = await mountFlist({ flist: join(dir, "many.fl"), mountpoint: mnt, cacheDir: join(dir, "cache"), cacheBytes: 64 << 20 });
  // lstat by name only (no listing asked): the first few are single queries, the rest from the loaded listing
  const names = ["f3", "nope", "f0", "f11", "f7", "f1", "also-missing", "f10", "f2", "f5", "f4", "f6", "f8", "f9"];
  const lstats = `import os, sys
for n in sys.argv[2:]:
    try:
        print(os.lstat(os.path.join(sys.argv[1], n)).st_size)
    except FileNotFoundError:
        print("ENOENT")`;
  const many = m.entry("sub/many")!.ino;
  // which way each lookup in sub/many went: single queries, then one load of its listing
  const queried = spyOn(Flist.prototype, "lookup");
  const listed = spyOn(Flist.prototype, "children");
  try {
    const out = await child(["python3", "-c", lstats, join(mnt, "sub/many"), ...names]);
    expect(out).toBe(names.map((n) => (n.startsWith("f") ? n.slice(1) : "ENOENT") + "\n").join(""));
    expect(queried.mock.calls.filter(([parent]) => parent === many).map(([, name]) => name)).toEqual(names.slice(0, LOOKUPS_BEFORE_LISTING));
    expect(listed.mock.calls.filter(([parent]) => parent === many)).toHaveLength(1);
  } finally {
    queried.mockRestore();
    listed.mockRestore();
    await m.unmount();
  }
});

test("entry() reads the flist's records without asking the mount", async () => {
  const mnt = join(dir, "mnt-entry");
  mkdirSync(mnt);
  const m = await mountFlist({ flist: join(dir, "x.fl"), mountpoint: mnt, cacheDir: join(dir, "cache"), cacheBytes: 64 << 20 });
  try {
    const before = m.requestCounts();
    expect(m.entry("sub/hello")?.size).toBe("hello from the store\n".length);
    expect(m.entry("/sub")!.mode & 0o170000).toBe(0o040000);
    expect(m.entry("")!.ino).toBe(1);
    expect([m.entry("nope"), m.entry("sub/hello/deeper"), m.entry("big/x")]).toEqual([null, null, null]);
    expect(m.requestCounts()).toEqual(before);
  } finally {
    await m.unmount();
  }
});

test("a store that cannot be opened fails the mount, which is undone", async () => {
  const mnt = join(dir, "mnt-badstore");
  mkdirSync(mnt);
  writeFileSync(join(dir, "not-a-dir"), "");
  const mounting = mountFlist({ flist: join(dir, "x.fl"), mountpoint: mnt, cacheDir: join(dir, "cache"), stores: [`dir://${join(dir, "not-a-dir/store")}`] });
  await expect(mounting).rejects.toThrow(/not-a-dir/);
  expect(isMounted(mnt)).toBe(false);
});

test("pack shows a progress bar on a terminal", () => {
  const r = Bun.spawnSync(["script", "-qec", `${bun} ${cli} pack ${join(dir, "src")} -o ${join(dir, "y.fl")} -s dir://${join(dir, "store")}`, "/dev/null"], { stdout: "pipe", stderr: "pipe" });
  expect(r.exitCode).toBe(0);
  const out = r.stdout.toString();
  expect(out).toMatch(/2 files +3\.0 MiB +7 blocks \(0 sent\) +[\d.]+ \w+\/s/);
  expect(out).toContain("packed 2 files");
});

test("a chunk cache shared by later mounts refetches chunks removed from its directory meanwhile", async () => {
  const cacheDir = join(dir, "shared-cache");
  const cached = () => readdirSync(cacheDir, { recursive: true }).filter((p) => /[0-9a-f]{64}$/.test(String(p))).length;
  for (const round of [1, 2]) {
    const mnt = join(dir, `shared${round}`);
    mkdirSync(mnt);
    const m = await mountFlist({ flist: join(dir, "x.fl"), mountpoint: mnt, cacheDir, cacheBytes: 64 << 20 });
    try {
      expect(await child(["bash", "-c", `cmp ${join(mnt, "big")} ${join(dir, "src/big")} && echo same`])).toBe("same\n");
    } finally {
      await m.unmount();
    }
    expect(cached()).toBeGreaterThan(0);
    // Emptied behind the back of the cache the next mount reuses.
    for (const e of readdirSync(cacheDir)) rmSync(join(cacheDir, e), { recursive: true, force: true });
  }
});
