// Shared by init tests: temp dirs, polling until a condition holds, process liveness from /proc.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const repoRoot = join(import.meta.dir, "..", "..");
export const bun = join(repoRoot, "node_modules", ".bin", "bun");

export function tempDir(prefix = "zos-init-"): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Polls `cond` until it returns a truthy value; the bound only turns a hang into a failure. */
export async function until<T>(cond: () => T | Promise<T>, what: string, boundMs = 20_000): Promise<NonNullable<T>> {
  const end = Date.now() + boundMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(10);
  }
}

/** A pid is alive when /proc has it and it is not a zombie. */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
