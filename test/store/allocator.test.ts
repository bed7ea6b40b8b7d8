// The data servers re-execute themselves in place with mimalloc's purge delay raised (store/allocator.ts).
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { envWithoutAllocatorSetting, ZdbProcess } from "./cluster.ts";
import { ZdbClient } from "../../store/zdb/client.ts";
import { PURGE_DELAY_VARIABLE, SERVER_PURGE_DELAY } from "../../store/index.ts";

let server: ZdbProcess | null = null;
afterEach(async () => {
  await server?.destroy();
  server = null;
});

function environOf(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0").filter(Boolean);
  return new Map(entries.map((e) => [e.slice(0, e.indexOf("=")), e.slice(e.indexOf("=") + 1)]));
}

async function ping(port: number): Promise<unknown> {
  const c = await ZdbClient.connect({ host: "127.0.0.1", port });
  try {
    return await c.command("PING");
  } finally {
    await c.close();
  }
}

test("zstore serve started without the setting runs with it, under the pid and with the arguments it was started with", async () => {
  server = await ZdbProcess.start({ env: envWithoutAllocatorSetting({ BUN_OPTIONS: "--smol" }) });
  expect(environOf(server.proc.pid).get(PURGE_DELAY_VARIABLE)).toBe(String(SERVER_PURGE_DELAY.zdb));
  // The arguments as they were: Bun's flags from BUN_OPTIONS stay there, not added to the command line.
  const cmdline = readFileSync(`/proc/${server.proc.pid}/cmdline`, "utf8").split("\0").filter(Boolean);
  expect(cmdline.slice(1)).toEqual([join(import.meta.dir, "../../store/cli.ts"), "serve", "--data", server.dataDir, "--listen", "127.0.0.1:0", "--fsync", "never"]);
  expect(String(await ping(server.port))).toBe("PONG");
});

test("an operator's own value is kept", async () => {
  server = await ZdbProcess.start({ env: { [PURGE_DELAY_VARIABLE]: "250" } });
  expect(environOf(server.proc.pid).get(PURGE_DELAY_VARIABLE)).toBe("250");
  expect(String(await ping(server.port))).toBe("PONG");
});

test("under Bun's profiler it does not re-execute (the profiler's signals would kill the new image)", async () => {
  const profiles = mkdtempSync(join(tmpdir(), "zstore-prof-"));
  try {
    server = await ZdbProcess.start({ env: envWithoutAllocatorSetting({ BUN_OPTIONS: `--cpu-prof-md --cpu-prof-dir=${profiles}` }) });
    expect(environOf(server.proc.pid).has(PURGE_DELAY_VARIABLE)).toBe(false);
    expect(String(await ping(server.port))).toBe("PONG");
  } finally {
    rmSync(profiles, { recursive: true, force: true });
  }
});
