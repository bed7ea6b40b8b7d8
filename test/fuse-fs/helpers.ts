// Shared by the fuse-fs tests: running `zflist mount` as a child process (the daemon must not share a
// thread with code that reads its mount), and comparing a mounted tree with its source.
import { closeSync, lstatSync, openSync, readFileSync, readSync, readdirSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { expect } from "bun:test";

export const bun = process.execPath;
export const cli = join(import.meta.dir, "../../fuse-fs/cli.ts");

export interface MountProc {
  proc: ReturnType<typeof Bun.spawn>;
  /** Everything the daemon wrote to stderr so far. */
  log(): string;
  /** SIGTERM, then wait for exit. */
  stop(): Promise<number>;
}

export function isMounted(mountpoint: string): boolean {
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .some((l) => l.split(" ")[4] === mountpoint);
}

/** Starts `zflist mount` and resolves once it reports the mount (or rejects with its output if it exits). */
export async function startMount(args: string[]): Promise<MountProc> {
  const proc = Bun.spawn([bun, cli, "mount", ...args], { stdout: "pipe", stderr: "pipe" });
  let err = "";
  const reader = proc.stderr.getReader();
  const decoder = new TextDecoder();
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      err += decoder.decode(value);
    }
  })();
  while (!err.includes(" mounted on ")) {
    const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(20).then(() => false)]);
    if (exited) {
      await pump;
      throw new Error(`zflist mount exited ${proc.exitCode}: ${err}`);
    }
  }
  return {
    proc,
    log: () => err,
    async stop() {
      proc.kill("SIGTERM");
      const code = await proc.exited;
      await pump;
      return code;
    },
  };
}

export function run(cmd: string[]): { code: number; out: string; err: string } {
  const r = Bun.spawnSync(cmd, { stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** True when both files hold the same bytes; read in 8 MiB steps so 5 GiB files need no memory. */
export function sameContent(a: string, b: string): boolean {
  const fa = openSync(a, "r"), fb = openSync(b, "r");
  const ba = Buffer.allocUnsafe(8 << 20), bb = Buffer.allocUnsafe(8 << 20);
  try {
    for (;;) {
      const na = readFull(fa, ba), nb = readFull(fb, bb);
      if (na !== nb || !ba.subarray(0, na).equals(bb.subarray(0, nb))) return false;
      if (na === 0) return true;
    }
  } finally {
    closeSync(fa);
    closeSync(fb);
  }
}

function readFull(fd: number, buf: Buffer): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, null);
    if (n === 0) break;
    got += n;
  }
  return got;
}

/** Every path's type+mode, owner, size (not for directories), mtime, rdev and link target. */
export function describeTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string) => {
    const path = join(root, rel);
    const st = lstatSync(path, { bigint: true });
    const target = st.isSymbolicLink() ? readlinkSync(path) : "";
    out.set(rel || "/", `${st.mode.toString(8)} ${st.uid}:${st.gid} ${st.isDirectory() ? "-" : st.size} ${st.mtimeNs / 1_000_000_000n} ${st.rdev} ${target}`);
    if (st.isDirectory()) for (const n of readdirSync(path)) walk(rel ? join(rel, n) : n);
  };
  walk("");
  return out;
}

/** Asserts two trees have the same entries, metadata and file contents. */
export function expectSameTree(source: string, mounted: string): number {
  const a = describeTree(source);
  const b = describeTree(mounted);
  expect([...b.keys()].sort()).toEqual([...a.keys()].sort());
  let files = 0;
  for (const [rel, desc] of a) {
    expect(`${rel} ${b.get(rel)}`).toBe(`${rel} ${desc}`);
    if ((parseInt(desc.split(" ")[0], 8) & 0o170000) === 0o100000) {
      files++;
      if (!sameContent(join(source, rel), join(mounted, rel))) throw new Error(`content of ${rel} differs`);
    }
  }
  return files;
}
