// Picks kernel modules and everything they depend on from a kernel's modules.dep and lays them out
// with a fresh modules.dep for the subset, made by depmod itself, each module gzipped (see gzipModules).
//
// modules.dep (written by depmod): one line per module,
//   "<path relative to /lib/modules/<release>>: <dependency path> <dependency path> ..."
// where the dependencies are the full closure, listed so that loading them from the LAST to the
// FIRST, then the module itself, satisfies every symbol. A module's name is its file name without
// ".ko[.xz|.zst|.gz]", with "-" and "_" equivalent (the kernel stores "_").
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { run } from "./exec.ts";

export class ModuleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ModuleError";
  }
}

export interface ModuleDep {
  /** Module path relative to the modules dir, as written in modules.dep. */
  path: string;
  /** Dependency paths in modules.dep order (load last-to-first). */
  deps: string[];
}

export function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "").replaceAll("-", "_");
}

export function parseModulesDep(text: string): Map<string, ModuleDep> {
  const byName = new Map<string, ModuleDep>();
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "") continue;
    const colon = line.indexOf(":");
    if (colon <= 0) throw new ModuleError(`modules.dep line ${i + 1} has no "path:": ${line}`);
    const path = line.slice(0, colon).trim();
    const deps = line.slice(colon + 1).trim().split(/\s+/).filter(Boolean);
    byName.set(moduleName(path), { path, deps });
  }
  return byName;
}

/**
 * The module files that loading `names` needs, dependencies before dependents. Built-in modules
 * (listed in modules.builtin) need nothing and are skipped; an unknown name is an error.
 */
export function resolveModules(dep: Map<string, ModuleDep>, builtin: Set<string>, names: string[]): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const add = (path: string) => {
    if (!seen.has(path)) { seen.add(path); order.push(path); }
  };
  for (const raw of names) {
    const name = raw.replaceAll("-", "_");
    const m = dep.get(name);
    if (!m) {
      if (builtin.has(name)) continue;
      throw new ModuleError(`module ${raw} is neither in modules.dep nor built in`);
    }
    for (const d of [...m.deps].reverse()) add(d);
    add(m.path);
  }
  return order;
}

function readBuiltin(modulesDir: string): Set<string> {
  const file = join(modulesDir, "modules.builtin");
  if (!existsSync(file)) return new Set();
  return new Set(readFileSync(file, "utf8").split("\n").filter(Boolean).map(moduleName));
}

async function decompressTo(src: string, dest: string): Promise<void> {
  if (src.endsWith(".ko")) return copyFileSync(src, dest);
  const tool = src.endsWith(".xz") ? "xz" : src.endsWith(".zst") ? "zstd" : src.endsWith(".gz") ? "gzip" : null;
  if (!tool) throw new ModuleError(`unknown module compression: ${src}`);
  const proc = Bun.spawn([tool, "-dc", src], { stdout: "pipe", stderr: "pipe" });
  const [data, code] = await Promise.all([new Response(proc.stdout).arrayBuffer(), proc.exited]);
  if (code !== 0) throw new ModuleError(`${tool} -dc ${src} failed (exit ${code})`);
  writeFileSync(dest, new Uint8Array(data));
}

export interface StagedModules {
  /** <stageRoot>/lib/modules/<release>: the chosen modules as .ko.gz plus depmod's text index files. */
  dir: string;
  /** Module paths relative to `dir`, dependencies first. */
  files: string[];
}

/** modules.dep with every "x.ko" path (module or dependency) renamed "x.ko.gz". */
export function gzippedModulesDep(text: string): string {
  return text.replace(/\.ko(?=[:\s]|$)/gm, ".ko.gz");
}

/**
 * Gzips each module (x.ko -> x.ko.gz, no name or time in the header, so the bytes are stable) and
 * renames them in modules.dep. Why: the kernel unpacks the whole initramfs before /init runs, and
 * init copies it onto a tmpfs; under emulation each costs tens of ms per uncompressed MB, and the
 * modules are ~21 MB plain against ~5.4 MB gzipped. A module is inflated only when loaded: by init
 * (init/boot/modules.ts) or by busybox modprobe, which reads gzip itself (Debian's kernel has no
 * MODULE_DECOMPRESS). Of depmod's binary indexes only modules.dep.bin names files, and nothing on
 * the node reads it (busybox and init read the text files): removed rather than left stale.
 */
function gzipModules(dir: string, files: string[]): string[] {
  for (const rel of files) {
    const plain = join(dir, rel);
    writeFileSync(`${plain}.gz`, Bun.gzipSync(readFileSync(plain), { level: 9 }));
    rmSync(plain);
  }
  const dep = join(dir, "modules.dep");
  writeFileSync(dep, gzippedModulesDep(readFileSync(dep, "utf8")));
  rmSync(join(dir, "modules.dep.bin"), { force: true });
  return files.map((f) => `${f}.gz`);
}

/**
 * Copies the closure of `names` from `modulesDir` into `<stageRoot>/lib/modules/<release>`, runs
 * depmod there on the plain modules (Debian's kmod reads no gzip) so modules.dep lists only what the
 * initramfs holds, then gzips them.
 */
export async function stageModules(modulesDir: string, release: string, names: string[], stageRoot: string): Promise<StagedModules> {
  const dep = parseModulesDep(readFileSync(join(modulesDir, "modules.dep"), "utf8"));
  const files = resolveModules(dep, readBuiltin(modulesDir), names);
  const dir = join(stageRoot, "lib", "modules", release);
  rmSync(stageRoot, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const staged: string[] = [];
  for (const rel of files) {
    const plain = rel.replace(/\.ko\.(xz|zst|gz)$/, ".ko");
    mkdirSync(dirname(join(dir, plain)), { recursive: true });
    await decompressTo(join(modulesDir, rel), join(dir, plain));
    staged.push(plain);
  }
  // depmod needs these to tell built-in modules from missing ones.
  for (const f of ["modules.builtin", "modules.builtin.modinfo", "modules.order"]) {
    if (existsSync(join(modulesDir, f))) copyFileSync(join(modulesDir, f), join(dir, f));
  }
  await run(["depmod", "-b", stageRoot, release]);
  if (!readdirSync(dir).includes("modules.dep")) throw new ModuleError(`depmod wrote no modules.dep in ${dir}`);
  return { dir, files: gzipModules(dir, staged) };
}
