// `zstore serve` as a process: bad arguments are refused with a usage message, a unix socket
// only server answers redis-cli, SIGTERM shuts it down cleanly with the data kept.
import { afterEach, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { removeDir, tempDir } from "./zdb-process.ts";

const serve = join(import.meta.dir, "..", "..", "store", "commands", "serve.ts");
const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeDir));

function dir(): string {
  const d = tempDir("zdb-serve");
  dirs.push(d);
  return d;
}

describe("zstore serve", () => {
  test("refuses bad arguments with exit code 2", () => {
    const d = dir();
    for (const [args, message] of [
      [[], "--data DIR is required"],
      [["--data", d, "--fsync", "sometimes"], "--fsync must be always, everysec or never"],
      [["--data", d, "--listen", "nowhere"], "--listen wants HOST:PORT"],
      [["--data", d, "--datasize", "12"], "--datasize must be a byte count"],
      [["--data", d, "--colour", "blue"], "colour"],
    ] as const) {
      const p = Bun.spawnSync([process.execPath, serve, ...args], { stderr: "pipe" });
      expect(p.exitCode).toBe(2);
      expect(p.stderr.toString()).toContain(message);
    }
  });

  test("unix socket only, SIGTERM stops it with the data kept", async () => {
    const d = dir();
    const socket = join(d, "zdb.sock");
    const start = async () => {
      const p = Bun.spawn([process.execPath, serve, "--data", join(d, "data"), "--socket", socket, "--fsync", "always"], { stdout: "pipe", stderr: "pipe" });
      const reader = p.stdout.getReader();
      const line = new TextDecoder().decode((await reader.read()).value);
      expect(line).toBe(`zdb listening on unix:${socket}\n`);
      reader.releaseLock();
      return p;
    };
    const cli = (...args: string[]) => Bun.spawnSync(["redis-cli", "-s", socket, ...args]).stdout.toString().trim();
    const p = await start();
    expect(cli("SET", "k", "v")).toBe("k");
    p.kill("SIGTERM");
    expect(await p.exited).toBe(0);
    const p2 = await start();
    expect(cli("GET", "k")).toBe("v");
    p2.kill("SIGTERM");
    expect(await p2.exited).toBe(0);
  });
});
