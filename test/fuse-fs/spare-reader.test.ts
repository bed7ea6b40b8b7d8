// The spare reader thread (fuse/session.ts) makes mounts skip a worker's boot; it must neither keep a
// process alive that is otherwise done nor pile up threads over mount/unmount cycles, and a reader
// whose mount ended is the next mount's (no boot at all).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bun } from "./helpers.ts";

const dir = mkdtempSync(join(tmpdir(), "zflist-spare-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("mount cycles leave no threads or mounts behind and the process exits on its own", async () => {
  const p = Bun.spawn([bun, join(import.meta.dir, "mount-cycles.ts"), dir], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  expect(err).toBe("");
  expect(code).toBe(0);
  const { base, after, readerThreads } = JSON.parse(out) as { base: number; after: number; readerThreads: number };
  // Bun grows its own pools (GC, I/O) lazily, so a thread or two may appear; a leak of the spare or
  // of a mount's readers would add at least one per cycle (20 cycles, 2 readers each)
  expect(after - base).toBeLessThan(5);
  // 20 one-reader mounts in a row ran on the thread the previous one let go; booting a reader per mount
  // would show 20 (a spare booted while a mount is up, if a cycle ever took a second, adds one each)
  expect(readerThreads).toBeLessThan(5);
  expect(readFileSync("/proc/self/mountinfo", "utf8")).not.toContain(dir);
});
