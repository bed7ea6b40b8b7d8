// Two builds of the node initramfs from the same inputs give the same bytes (cpio and compressed).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createHash } from "node:crypto";
import { buildInitramfs } from "../../initramfs/build.ts";

const dir = mkdtempSync(join(tmpdir(), "zos-repro-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

test("the node initramfs is byte-for-byte reproducible", async () => {
  // level 1 keeps the test quick; the compressor's determinism does not depend on the level
  const a = await buildInitramfs({ level: 1, workDir: join(dir, "a"), output: join(dir, "a.cpio.zst") });
  const b = await buildInitramfs({ level: 1, workDir: join(dir, "b"), output: join(dir, "b.cpio.zst") });
  expect(a.result.cpioBytes).toBe(b.result.cpioBytes);
  expect(sha256(join(dir, "a", "initramfs.cpio"))).toBe(sha256(join(dir, "b", "initramfs.cpio")));
  expect(sha256(a.result.output)).toBe(sha256(b.result.output));
  // what the node needs is in it
  const parts = a.result.parts;
  for (const p of ["bun", "init", "native", "modules", "tools", "libraries", "certificates"]) expect(parts[p]?.bytes).toBeGreaterThan(0);
}, 300_000);
