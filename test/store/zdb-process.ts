// Starts `bun store/commands/serve.ts` as a real child process on an ephemeral port, for tests
// and benchmarks, and kills it (politely or with SIGKILL).
import type { Subprocess } from "bun";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const repo = join(import.meta.dir, "..", "..");
const serveScript = join(repo, "store", "commands", "serve.ts");

export interface ZdbProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  port: number;
  dataDir: string;
  /** Kills with SIGKILL (no clean shutdown) and waits for the exit. */
  kill9(): Promise<void>;
  /** SIGTERM and wait. */
  stop(): Promise<void>;
  stderr(): Promise<string>;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `${prefix}-`));
}

export async function startZdb(dataDir: string, extra: string[] = []): Promise<ZdbProcess> {
  const proc = Bun.spawn([process.execPath, serveScript, "--data", dataDir, "--listen", "127.0.0.1:0", ...extra], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const reader = proc.stdout.getReader();
  let text = "";
  const decoder = new TextDecoder();
  let port = 0;
  while (port === 0) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`zdb server exited before listening: ${await new Response(proc.stderr).text()}`);
    text += decoder.decode(value);
    const m = /zdb listening on [^\s]+:(\d+)\n/.exec(text);
    if (m) port = Number(m[1]);
  }
  reader.releaseLock();
  return {
    proc,
    port,
    dataDir,
    async kill9() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
    stderr: () => new Response(proc.stderr).text(),
  };
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Runs redis-cli against port; returns its stdout. Output is redis-cli's human format (--no-raw:
 * "(error) ...", quoted strings, "(nil)", "(integer) n") unless args ask for --raw.
 */
export async function redisCli(port: number, args: string[], stdin?: Uint8Array): Promise<string> {
  const mode = args.includes("--raw") ? [] : ["--no-raw"];
  const p = Bun.spawn(["redis-cli", "-p", String(port), ...mode, ...args], {
    stdin: stdin ?? "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const code = await p.exited;
  if (code !== 0) throw new Error(`redis-cli ${args.join(" ")} exited ${code}: ${err}`);
  return out;
}
