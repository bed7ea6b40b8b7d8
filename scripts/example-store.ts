// The local store `make run` gives its node: a 0-db-compatible server (store/commands/serve.ts)
// holding the blocks of an example flist — a busybox root the build packs with zflist — and an HTTP
// server for the .fl file itself. The node reaches both through QEMU user-net's host address 10.0.2.2.
import { copyFileSync, existsSync, mkdirSync, rmSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { run } from "../initramfs/exec.ts";
import { sharedLibraries } from "../initramfs/shared-libs.ts";
import { ROOT } from "./boot-config.ts";
import { serveDirectory } from "./ipxe.ts";

/** The host as a node under QEMU user networking sees it. */
export const HOST_FROM_GUEST = "10.0.2.2";

export interface ExampleStore {
  /** zdb URL as the node reaches it. */
  storeUrl: string;
  /** HTTP URL of the busybox flist as the node reaches it. */
  flistUrl: string;
  stop(): Promise<void>;
}

/** A minimal root filesystem: busybox, its libraries, and a link per applet in /bin. */
export async function makeBusyboxRoot(dir: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  const busybox = "/usr/bin/busybox";
  for (const path of ["/bin/busybox", ...(await sharedLibraries(busybox))]) {
    mkdirSync(join(dir, dirname(path)), { recursive: true });
    copyFileSync(path === "/bin/busybox" ? busybox : path, join(dir, path));
  }
  const applets = (await run([busybox, "--list"])).split("\n").filter((a) => /^[a-z0-9_.[-]+$/.test(a) && a !== "busybox");
  for (const a of applets) if (!existsSync(join(dir, "bin", a))) symlinkSync("busybox", join(dir, "bin", a));
  for (const d of ["etc", "tmp", "proc", "sys", "dev", "root"]) mkdirSync(join(dir, d), { recursive: true });
}

/** Starts zdb on a free port, packs the busybox flist into it, and serves the .fl over HTTP. */
export async function startExampleStore(workDir: string): Promise<ExampleStore> {
  const dataDir = join(workDir, "zdb");
  mkdirSync(dataDir, { recursive: true });
  const zdb = Bun.spawn([process.execPath, join(ROOT, "store", "commands", "serve.ts"), "--data", dataDir, "--listen", "127.0.0.1:0"], {
    stdout: "pipe", stderr: "inherit",
  });
  const port = await readListeningPort(zdb.stdout as ReadableStream<Uint8Array>);
  let http: ReturnType<typeof serveDirectory> | null = null;
  try {
    const root = join(workDir, "busybox-root"), flists = join(workDir, "flists");
    mkdirSync(flists, { recursive: true });
    const fl = join(flists, "busybox.fl");
    if (!existsSync(fl)) {
      await makeBusyboxRoot(root);
      await run([process.execPath, join(ROOT, "fuse-fs", "cli.ts"), "pack", root, "-o", fl, "-s", `zdb://127.0.0.1:${port}`]);
    }
    http = serveDirectory(flists, 0);
    const httpPort = http.port;
    return {
      storeUrl: `zdb://${HOST_FROM_GUEST}:${port}`,
      flistUrl: `http://${HOST_FROM_GUEST}:${httpPort}/busybox.fl`,
      stop: async () => {
        http?.stop(true);
        zdb.kill("SIGTERM");
        await zdb.exited;
      },
    };
  } catch (e) {
    http?.stop(true);
    zdb.kill("SIGTERM");
    throw e;
  }
}

/** Reads zdb's "zdb listening on HOST:PORT" line, then keeps draining so zdb never blocks on the pipe. */
async function readListeningPort(stdout: ReadableStream<Uint8Array>): Promise<number> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`zdb exited before listening; it printed: ${text}`);
    text += decoder.decode(value, { stream: true });
    const m = /zdb listening on [^\s]+:(\d+)/.exec(text);
    if (m) {
      void (async () => { while (!(await reader.read()).done); })();
      return Number(m[1]);
    }
  }
}
