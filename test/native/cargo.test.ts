// The crate's own unit tests (cargo test): GF(2^8) field laws against bitwise multiplication, the
// GFNI bit matrices applied by their definition, every CPU kernel path against the scalar one,
// exhaustive erasure patterns, and the CRC-32C table path (the JS tests only reach SSE4.2).
import { expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";

test("cargo test passes", () => {
  const run = spawnSync("cargo", ["test", "--release", "--quiet"], {
    cwd: join(import.meta.dir, "..", "..", "native"),
    encoding: "utf8",
  });
  if (run.status !== 0) console.error(run.stdout, run.stderr);
  expect(run.status).toBe(0);
  expect(run.stdout).toMatch(/test result: ok\. [1-9]\d* passed; 0 failed/);
}, 600_000);
