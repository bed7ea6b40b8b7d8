// A vdisk server on the host for whole-OS tests: vdisks created with zvdisk in a dir:// store and
// served over NBD on a free port, reached by the node (QEMU user-net) at 10.0.2.2.
import { join } from "node:path";

export interface HostVdiskServer {
  port: number;
  /** SIGSTOP: connections stay open and nothing answers (a hung server, not a closed one). */
  freeze(): void;
  stop(): Promise<void>;
}

export async function startVdiskServer(root: string, names: string[], size = "128M"): Promise<HostVdiskServer> {
  const cli = [process.execPath, join(import.meta.dir, "../../vdisk/cli.ts"), "--store", `dir://${root}/blocks`, "--catalog", `dir://${root}/catalog`];
  for (const name of names) {
    const created = Bun.spawnSync([...cli, "create", name, "--size", size]);
    if (created.exitCode !== 0) throw new Error(`zvdisk create ${name}: ${created.stderr.toString()}`);
  }
  const proc = Bun.spawn([...cli, "serve", "--listen", "127.0.0.1:0", ...names], { stdout: "pipe", stderr: "inherit" });
  const reader = (proc.stdout as ReadableStream<Uint8Array>).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`zvdisk serve exited: ${text}`);
    text += new TextDecoder().decode(value);
    const m = /"port":(\d+)/.exec(text);
    if (m) {
      void (async () => { while (!(await reader.read()).done); })();
      return {
        port: Number(m[1]),
        freeze: () => proc.kill("SIGSTOP"),
        stop: async () => {
          proc.kill("SIGCONT");
          proc.kill();
          await proc.exited;
        },
      };
    }
  }
}
