// native/index.ts finds the addon at ZOS_NATIVE_PATH or build/native, and says what to do when
// it is missing.
import { expect, test } from "bun:test";
import { join } from "node:path";

const index = join(import.meta.dir, "..", "..", "native", "index.ts");

function importWith(env: Record<string, string>): { code: number; stderr: string; stdout: string } {
  const run = Bun.spawnSync([process.execPath, "-e", `const n = await import(${JSON.stringify(index)}); console.log(n.crc32c(new Uint8Array(0)))`], {
    env: { ...process.env, ...env },
  });
  return { code: run.exitCode, stderr: run.stderr.toString(), stdout: run.stdout.toString() };
}

test("a missing addon names the path tried and what to do", () => {
  const r = importWith({ ZOS_NATIVE_PATH: "/nonexistent/zos_native.node" });
  expect(r.code).not.toBe(0);
  expect(r.stderr).toContain("zos native addon not found at /nonexistent/zos_native.node");
  expect(r.stderr).toContain("ZOS_NATIVE_PATH");
});

test("ZOS_NATIVE_PATH loads that build", () => {
  const r = importWith({ ZOS_NATIVE_PATH: join(import.meta.dir, "..", "..", "build", "native", "zos_native.node") });
  expect(r.stderr).toBe("");
  expect(r.stdout.trim()).toBe("0");
});
