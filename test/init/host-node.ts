// Starts a real host-mode init process (init/main.ts) for end-to-end tests and stops it afterwards.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateKeyPair, keyId, type KeyPair } from "../../init/identity/ed25519.ts";
import { bun, repoRoot, tempDir } from "./helpers.ts";

export interface HostNode {
  dir: string;
  configDir: string;
  socket: string;
  port: number;
  nodeId: string;
  proc: ReturnType<typeof Bun.spawn>;
  keys: { admin: KeyPair; operator: KeyPair; reader: KeyPair };
  output(): string;
  stop(): Promise<void>;
}

export async function startHostNode(services: Record<string, string> = {}, opts: { stateDir?: string } = {}): Promise<HostNode> {
  const t = tempDir("zos-node-");
  const configDir = join(t.path, "services");
  const stateDir = opts.stateDir ?? join(t.path, "state");
  mkdirSync(configDir);
  for (const [name, yaml] of Object.entries(services)) writeFileSync(join(configDir, `${name}.yaml`), yaml);
  const keys = { admin: generateKeyPair(), operator: generateKeyPair(), reader: generateKeyPair() };
  const socket = join(t.path, "zos.sock");
  const proc = Bun.spawn(
    [bun, join(repoRoot, "init", "main.ts"), "--config-dir", configDir, "--state-dir", stateDir, "--socket", socket, "--listen", "127.0.0.1:0",
      "--admin-key", keyId(keys.admin.publicKey), "--operator-key", keyId(keys.operator.publicKey), "--reader-key", keyId(keys.reader.publicKey)],
    { stdout: "pipe", stderr: "pipe" },
  );
  const { ready, output } = await readyLine<{ tcp: number[]; nodeId: string }>(proc);
  return {
    dir: t.path, configDir, socket, port: ready.tcp[0], nodeId: ready.nodeId, proc, keys,
    output,
    stop: async () => {
      proc.kill("SIGTERM");
      await proc.exited;
      t.cleanup();
    },
  };
}

/**
 * Waits for the JSON `ready` line host-mode init prints on stdout, collecting stderr meanwhile so a
 * failed start reports why.
 */
export async function readyLine<T>(proc: Bun.Subprocess<"ignore" | "inherit" | "pipe", "pipe", "pipe">): Promise<{ ready: T; output: () => string }> {
  let err = "";
  (async () => {
    for await (const chunk of proc.stderr as ReadableStream<Uint8Array>) err += new TextDecoder().decode(chunk);
  })();
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`init exited before it was ready:\n${err}`);
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { ready: JSON.parse(out.split("\n")[0]) as T, output: () => err };
}
