// OPEN/RELEASE and OPENDIR/RELEASEDIR under the real kernel: the kernel sends them, every open is
// released, thousands of files held open at once read correctly while big files stream in parallel,
// and the open flags do what they say (pages and listings stay cached across opens, no FLUSH on close).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mountFlist, pack, type FlistMount } from "../../fuse-fs/index.ts";

const FILES = 3000;
let dir: string, src: string, mnt: string;
let m: FlistMount;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zflist-handles-"));
  src = join(dir, "src");
  mnt = join(dir, "mnt");
  for (let d = 0; d < FILES / 100; d++) {
    mkdirSync(join(src, "many", `d${d}`), { recursive: true });
    for (let f = 0; f < 100; f++) writeFileSync(join(src, "many", `d${d}`, `f${f}`), randomBytes(1 + ((d * 100 + f) % 3000)));
  }
  for (let i = 0; i < 3; i++) writeFileSync(join(src, `big${i}`), randomBytes(6 << 20));
  mkdirSync(mnt);
  await pack({ source: src, output: join(dir, "x.fl"), stores: [`dir://${join(dir, "store")}`] });
  m = await mountFlist({ flist: join(dir, "x.fl"), mountpoint: mnt, cacheDir: join(dir, "cache"), cacheBytes: 256 << 20 });
}, 120_000);

afterAll(async () => {
  await m?.unmount();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs a command in a child process (this thread answers the kernel) and returns its stdout. */
async function child(cmd: string[]): Promise<string> {
  const p = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${err}${out}`);
  return out;
}

/** The kernel sends RELEASE after close(2) returns, from its own work queue: wait until it has. */
async function releasedAll(): Promise<Record<string, number>> {
  for (let i = 0; i < 500; i++) {
    const c = m.requestCounts();
    if ((c.RELEASE ?? 0) === (c.OPEN ?? 0) && (c.RELEASEDIR ?? 0) === (c.OPENDIR ?? 0)) return c;
    await Bun.sleep(20);
  }
  return m.requestCounts();
}

test("thousands of files held open at once read correctly while big files stream; every open is released", async () => {
  const streams = [0, 1, 2, 0].map((i) => child(["cmp", join(mnt, `big${i}`), join(src, `big${i}`)]));
  const held = child(["python3", join(import.meta.dir, "hold-open.py"), mnt, src, "many"]);
  expect(await held).toBe(`same ${FILES}\n`);
  await Promise.all(streams);
  const c = await releasedAll();
  expect(c.OPEN).toBeGreaterThanOrEqual(FILES + 4);
  expect(c.RELEASE).toBe(c.OPEN);
  expect(c.OPENDIR).toBeGreaterThanOrEqual(FILES / 100 + 1);
  expect(c.RELEASEDIR).toBe(c.OPENDIR);
  expect(c.FLUSH ?? 0).toBe(0); // FOPEN_NOFLUSH
}, 120_000);

test("a reopened file keeps its cached pages and a reopened directory its listing", async () => {
  const file = join(mnt, "many/d3/f7");
  await child(["cat", file]);
  await child(["ls", join(mnt, "many/d4")]);
  const before = await releasedAll();
  for (let i = 0; i < 5; i++) {
    expect(Buffer.from(await child(["base64", "-w0", file]), "base64").equals(Buffer.from(await Bun.file(join(src, "many/d3/f7")).arrayBuffer()))).toBe(true);
    await child(["ls", join(mnt, "many/d4")]);
  }
  const after = await releasedAll();
  expect(after.OPEN).toBeGreaterThanOrEqual(before.OPEN + 5);
  expect(after.OPENDIR).toBeGreaterThanOrEqual(before.OPENDIR + 5);
  // FOPEN_KEEP_CACHE and FOPEN_CACHE_DIR: no new READ or READDIR for what the kernel already holds.
  expect(after.READ).toBe(before.READ);
  expect((after.READDIR ?? 0) + (after.READDIRPLUS ?? 0)).toBe((before.READDIR ?? 0) + (before.READDIRPLUS ?? 0));
}, 60_000);
