// Fetches Debian's prebuilt kernel package (the one the linux-image-amd64 metapackage depends on
// today) with `apt-get download`, unpacks it under build/kernel/ and runs depmod on it, since the
// .deb ships no modules.dep (its postinst makes one on an installed system).
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { run } from "./exec.ts";

export interface Kernel {
  /** The kernel release, e.g. "6.1.0-56-amd64" (the /lib/modules/<release> name). */
  release: string;
  /** The Debian package it came from, e.g. "linux-image-6.1.0-56-amd64". */
  packageName: string;
  vmlinuz: string;
  /** /lib/modules/<release> of the unpacked package, with modules.dep. */
  modulesDir: string;
}

export class KernelError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "KernelError";
  }
}

/** The real package behind linux-image-amd64, read from apt's dependency list. */
export async function resolveKernelPackage(): Promise<string> {
  const out = await run(["apt-cache", "depends", "linux-image-amd64"]);
  const m = out.match(/Depends:\s+(linux-image-\d\S*-amd64)\b/);
  if (!m) throw new KernelError(`linux-image-amd64 has no linux-image-<version>-amd64 dependency (run apt-get update?):\n${out}`);
  return m[1];
}

/** Downloads and unpacks the kernel into `buildDir` unless it is already there. */
export async function fetchKernel(buildDir: string): Promise<Kernel> {
  const packageName = await resolveKernelPackage();
  const release = packageName.replace(/^linux-image-/, "");
  const dir = join(buildDir, packageName);
  const root = join(dir, "root");
  const vmlinuz = join(root, "boot", `vmlinuz-${release}`);
  const modulesDir = join(root, "lib", "modules", release);
  if (!existsSync(join(modulesDir, "modules.dep"))) {
    mkdirSync(dir, { recursive: true });
    // apt-get download writes into the working directory; its _apt sandbox warning is harmless.
    await run(["apt-get", "download", "-q", packageName], { cwd: dir });
    const deb = readdirSync(dir).find((f) => f.startsWith(`${packageName}_`) && f.endsWith(".deb"));
    if (!deb) throw new KernelError(`apt-get download left no ${packageName}_*.deb in ${dir}`);
    const tmp = `${root}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    await run(["dpkg-deb", "-x", join(dir, deb), tmp]);
    await run(["depmod", "-b", tmp, release]);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
  }
  if (!existsSync(vmlinuz)) throw new KernelError(`${packageName} has no ${vmlinuz}`);
  return { release, packageName, vmlinuz, modulesDir };
}
