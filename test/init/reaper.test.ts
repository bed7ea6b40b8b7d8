import { expect, test, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { bun } from "./helpers.ts";

// these start real processes; on a loaded 2-core machine they need more than the 5 s default
setDefaultTimeout(120_000);

// zombies found through /proc/<pid>/task/<tid>/children, and by reading every /proc/<pid>/stat as on a
// kernel without those files
test.each(["children-files", "all-pids"])("orphaned grandchildren are reaped while Bun.spawn children keep their exit codes (%s)", async (source) => {
  const proc = Bun.spawn([bun, join(import.meta.dir, "fixtures", "orphans.ts"), "20", source], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect(err).toBe("");
  expect(code).toBe(0);
  const r = JSON.parse(out);
  expect(r.codesMatch).toBe(true);
  expect(r.reaped).toBe(100);
  expect(r.zombies).toEqual([]);
});
