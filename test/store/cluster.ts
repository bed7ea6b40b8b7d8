// Starts real zdb server processes (`zstore serve`) on loopback ephemeral ports for tests and benchmarks.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ZdbClient } from "../../store/zdb/client.ts";
import { PURGE_DELAY_VARIABLE } from "../../store/index.ts";

const repo = join(import.meta.dir, "..", "..");

export class ZdbProcess {
  private constructor(
    readonly proc: Subprocess<"ignore", "pipe", "pipe">,
    readonly port: number,
    readonly dataDir: string,
  ) {}

  /** Starts a server on a fresh data directory, or on `dataDir` to bring a killed one back. */
  static async start(opts: { namespace?: string; fsync?: string; dataDir?: string; admin?: string; port?: number; /** The whole environment (default: this process's). */ env?: Record<string, string> } = {}): Promise<ZdbProcess> {
    const dataDir = opts.dataDir ?? mkdtempSync(join(tmpdir(), "zstore-zdb-"));
    const proc = Bun.spawn(
      [process.execPath, join(repo, "store", "cli.ts"), "serve", "--data", dataDir, "--listen", `127.0.0.1:${opts.port ?? 0}`, "--fsync", opts.fsync ?? "never", ...(opts.admin ? ["--admin", opts.admin] : [])],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: opts.env ?? process.env },
    );
    const port = await readPort(proc);
    const z = new ZdbProcess(proc, port, dataDir);
    if (opts.namespace) {
      const c = await ZdbClient.connect({ host: "127.0.0.1", port });
      if (opts.admin) await c.auth(opts.admin);
      await c.command("NSNEW", opts.namespace);
      await c.close();
    }
    return z;
  }

  url(namespace = "default", query = ""): string {
    return `zdb://127.0.0.1:${this.port}/${namespace}${query}`;
  }

  /** kill -9: the backend disappears the hard way. */
  async kill(): Promise<void> {
    this.proc.kill(9);
    await this.proc.exited;
  }

  async destroy(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) await this.kill();
    rmSync(this.dataDir, { recursive: true, force: true });
  }
}

async function readPort(proc: Subprocess<"ignore", "pipe", "pipe">): Promise<number> {
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) {
      const err = await new Response(proc.stderr).text();
      throw new Error(`zdb server exited before listening: ${err || text}`);
    }
    text += decoder.decode(value);
    const m = /zdb listening on [^\n]*:(\d+)\n/.exec(text);
    if (m) {
      reader.releaseLock();
      // Keep draining stdout so the server never blocks on a full pipe.
      void proc.stdout.pipeTo(new WritableStream()).catch(() => {});
      void new Response(proc.stderr).text().catch(() => {});
      return Number(m[1]);
    }
  }
}

/** This process's environment without the allocator setting, plus `extra`: a data server started with it re-executes itself to set it (store/allocator.ts). */
export function envWithoutAllocatorSetting(extra: Record<string, string> = {}): Record<string, string> {
  const env = { ...process.env, ...extra } as Record<string, string>;
  delete env[PURGE_DELAY_VARIABLE];
  return env;
}
