import { expect, test, setDefaultTimeout } from "bun:test";
import { join } from "node:path";
import { bun } from "./helpers.ts";

// these start real processes; on a loaded 2-core machine they need more than the 5 s default
setDefaultTimeout(120_000);

test("orphaned grandchildren are reaped while Bun.spawn children keep their exit codes", async () => {
  const proc = Bun.spawn([bun, join(import.meta.dir, "fixtures", "orphans.ts"), "20"], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  expect(err).toBe("");
  expect(code).toBe(0);
  const r = JSON.parse(out);
  expect(r.codesMatch).toBe(true);
  expect(r.reaped).toBe(100);
  expect(r.zombies).toEqual([]);
});
