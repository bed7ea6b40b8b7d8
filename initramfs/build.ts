// Builds the Zero-OS initramfs (or the boot benchmark's floor image) and copies the kernel next to it.
//   bun initramfs/build.ts [--floor] [--compression zstd|xz] [--level N] [--out FILE]
// Defaults: the node image, zstd -19, out/initramfs.cpio.zst (floor: build/floor/initramfs.cpio.zst).
// Writes <out>.manifest.json with the kernel release and the size of each part.
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { assembleFloor, assembleNode } from "./contents.ts";
import { writeCpio } from "./cpio.ts";
import { run } from "./exec.ts";
import { fetchKernel, type Kernel } from "./kernel.ts";
import type { ImageTree, PartSize } from "./tree.ts";

export const ROOT = resolve(import.meta.dir, "..");
export type Compression = "zstd" | "xz";

export class BuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BuildError";
  }
}

/** The real Bun binary behind node_modules/.bin/bun (a symlink into the pinned npm package). */
export function pinnedBun(): string {
  return realpathSync(join(ROOT, "node_modules", ".bin", "bun"));
}

/**
 * Compresses deterministically: single-threaded, so the output depends only on the input.
 * xz uses the CRC32 check because the kernel's xz decoder supports no other. Written aside and
 * renamed, so a VM booting the previous image while this runs never reads half a file.
 */
export async function compress(input: string, output: string, kind: Compression, level: number): Promise<void> {
  const partial = `${output}.partial`;
  rmSync(partial, { force: true });
  if (kind === "zstd") {
    await run(["zstd", "-q", ...(level > 19 ? ["--ultra"] : []), `-${level}`, "--single-thread", "-f", "-o", partial, input]);
  } else {
    const data = await run(["sh", "-c", `xz --check=crc32 -${level} -T1 -c "$1" > "$2"`, "xz", input, partial]);
    if (data) throw new BuildError(`xz printed unexpected output: ${data}`);
  }
  renameSync(partial, output);
}

/**
 * Bundles init/main.ts into `outDir`: init.js, the entry preinit runs, and the chunks it loads with
 * import() (containers, flists: the store, fuse-fs, yaml, node:net). Split, not one file, so a boot
 * parses and links only what PID 1 needs before the RPC answers (~40% less start-up CPU than the
 * single file, whose hoisted imports loaded node:net and node:dgram at start). Run from ROOT: the
 * bundle's path comments and chunk hashes depend on the working directory. Not `--bytecode`: Bun 1.4
 * makes bytecode only for CommonJS output, which freezes import.meta.url at the build path, and the
 * worker threads (fuse-fs) are found relative to it. Returns the file names written.
 */
export async function bundleInit(outDir: string): Promise<string[]> {
  const main = join(ROOT, "init", "main.ts");
  if (!existsSync(main)) throw new BuildError(`${main} does not exist: the node image needs init's entry point`);
  rmSync(outDir, { recursive: true, force: true });
  await run([process.execPath, "build", main, "--target=bun", "--splitting", "--entry-naming=init.js", "--outdir", outDir], { cwd: ROOT });
  const files = readdirSync(outDir).sort();
  if (!files.includes("init.js")) throw new BuildError(`bun build wrote no init.js in ${outDir}`);
  return files;
}

// Worker threads are started as `new Worker(new URL("./name.ts", import.meta.url))`; bun build leaves
// that URL as it is, so inside the bundle it points next to init.js and its chunks: /usr/lib/zos/name.ts.
const WORKER_RE = /new Worker\(new URL\("\.\/([\w.-]+\.ts)", import\.meta\.url\)/g;
const WORKER_SOURCE_DIRS = ["init", "fuse-fs", "store", "vdisk", "native"];

/** Source path of every worker entry in the parts init may import, keyed by its file name. */
export function findWorkerEntries(): Map<string, string> {
  const found = new Map<string, string>();
  for (const dir of WORKER_SOURCE_DIRS) {
    if (!existsSync(join(ROOT, dir))) continue;
    for (const rel of new Bun.Glob("**/*.ts").scanSync(join(ROOT, dir))) {
      const file = join(ROOT, dir, rel);
      const text = readFileSync(file, "utf8");
      // a worker started any other way would be missing from the image and fail only on a node
      if (text.split("new Worker(").length - 1 !== [...text.matchAll(WORKER_RE)].length)
        throw new BuildError(`${file} starts a Worker without the literal new Worker(new URL("./name.ts", import.meta.url)) the image build looks for`);
      for (const m of text.matchAll(WORKER_RE)) {
        const entry = join(dirname(file), m[1]);
        const other = found.get(m[1]);
        if (other && other !== entry) throw new BuildError(`two workers are named ${m[1]} (${other}, ${entry}): they would share /usr/lib/zos/${m[1]}`);
        found.set(m[1], entry);
      }
    }
  }
  return found;
}

/**
 * Bundles each worker into one file named like its source (.ts: bundled JavaScript is valid
 * TypeScript, and the name is what the bundle asks for). Returns name -> bundled file.
 */
export async function bundleWorkers(outDir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  mkdirSync(outDir, { recursive: true });
  for (const [name, src] of [...findWorkerEntries()].sort()) {
    const file = join(outDir, name);
    await run([process.execPath, "build", src, "--target=bun", "--outfile", file]);
    out.set(name, file);
  }
  return out;
}

/** Compiles /init (preinit.c): freestanding, stripped, without a build id, so the bytes are stable. */
export async function compilePreinit(outFile: string): Promise<void> {
  await run(["gcc", "-Os", "-static", "-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-tree-loop-distribute-patterns",
    "-fno-stack-protector", "-fno-asynchronous-unwind-tables", "-Wl,--build-id=none", "-s",
    "-o", outFile, join(ROOT, "initramfs", "preinit.c")]);
}

export interface BuildResult {
  output: string;
  kernel: Kernel;
  compression: Compression;
  cpioBytes: number;
  compressedBytes: number;
  parts: Record<string, PartSize>;
}

export interface BuildOptions {
  floor?: boolean;
  compression?: Compression;
  level?: number;
  output?: string;
  /** Scratch directory (default build/initramfs or build/floor). */
  workDir?: string;
}

export async function buildInitramfs(opts: BuildOptions = {}): Promise<{ result: BuildResult; tree: ImageTree }> {
  const compression = opts.compression ?? "zstd";
  const level = opts.level ?? (compression === "zstd" ? 19 : 9);
  const work = opts.workDir ?? join(ROOT, "build", opts.floor ? "floor" : "initramfs");
  const output = resolve(opts.output ?? (opts.floor ? join(work, `initramfs.cpio.${compression === "zstd" ? "zst" : "xz"}`) : join(ROOT, "out", "initramfs.cpio.zst")));
  mkdirSync(work, { recursive: true });
  mkdirSync(dirname(output), { recursive: true });
  const kernel = await fetchKernel(join(ROOT, "build", "kernel"));

  const preinit = join(work, "preinit");
  await compilePreinit(preinit);
  let tree: ImageTree;
  if (opts.floor) {
    tree = await assembleFloor(pinnedBun(), preinit);
  } else {
    const nativeAddon = join(ROOT, "build", "native", "zos_native.node");
    if (!existsSync(nativeAddon)) throw new BuildError(`${nativeAddon} is missing: run \`make build\` first`);
    const initBundle = join(work, "init-bundle");
    await bundleInit(initBundle);
    const workers = await bundleWorkers(join(work, "workers"));
    tree = await assembleNode({
      bunPath: pinnedBun(), preinit, kernel, initBundle, workers, nativeAddon,
      caBundle: "/etc/ssl/certs/ca-certificates.crt", stageDir: join(work, "modules-stage"),
    });
  }
  const cpio = join(work, "initramfs.cpio");
  const { bytes } = writeCpio(cpio, tree.entries());
  await compress(cpio, output, compression, level);
  const result: BuildResult = {
    output, kernel, compression, cpioBytes: bytes, compressedBytes: statSync(output).size,
    parts: Object.fromEntries([...tree.sizesByPart()].sort()),
  };
  writeFileSync(`${output}.manifest.json`, JSON.stringify(result, null, 2) + "\n");
  return { result, tree };
}

const MB = (n: number) => `${(n / 1e6).toFixed(1)} MB`;

export function describe(r: BuildResult): string {
  const lines = [`kernel ${r.kernel.release} (${r.kernel.packageName})`];
  for (const [name, p] of Object.entries(r.parts)) lines.push(`  ${name.padEnd(14)} ${String(p.files).padStart(5)} entries ${MB(p.bytes).padStart(9)}`);
  lines.push(`  ${"cpio".padEnd(14)} ${MB(r.cpioBytes).padStart(24)}`);
  lines.push(`  ${`${r.compression}`.padEnd(14)} ${MB(r.compressedBytes).padStart(24)}  ${r.output}`);
  return lines.join("\n");
}

if (import.meta.main) {
  const { values } = parseArgs({
    options: {
      floor: { type: "boolean", default: false },
      compression: { type: "string", default: "zstd" },
      level: { type: "string" },
      out: { type: "string" },
    },
  });
  if (values.compression !== "zstd" && values.compression !== "xz") throw new BuildError(`--compression must be zstd or xz, not ${values.compression}`);
  const { result } = await buildInitramfs({
    floor: values.floor, compression: values.compression,
    level: values.level === undefined ? undefined : Number(values.level), output: values.out,
  });
  if (!values.floor) {
    mkdirSync(join(ROOT, "out"), { recursive: true });
    copyFileSync(result.kernel.vmlinuz, join(ROOT, "out", "vmlinuz"));
  }
  console.log(describe(result));
}
