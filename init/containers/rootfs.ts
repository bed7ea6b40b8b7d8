// A container's root filesystem: the flist mounted read-only through our FUSE filesystem (lower/),
// a tmpfs for the overlay's upper and work dirs (rw/), and overlayfs joining them (rootfs/).
// Extra flists get their own FUSE mounts under mounts/. Mounting goes through mount(8) in a child:
// the FUSE mounts are served by this process, so it must not block inside mount(2) on one of them.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { clearDeadMount, mountFlist, type FlistMount } from "../../fuse-fs/index.ts";
import { mustRun, runCommand } from "./command.ts";
import { ContainerError } from "./errors.ts";
import type { ContainerSpec } from "./spec.ts";

export interface RootfsOptions {
  /** Shared chunk cache of every container's flists. */
  cacheDir: string;
  /** Where flists given by URL are downloaded. */
  flistDir: string;
  /** When set, every flist must carry a valid signature by this ed25519 key (hex). */
  trustedKey: string | null;
}

/** Paths of the mounts under a bundle dir, innermost first, from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : dir + "/";
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => !!p && (p === dir || p.startsWith(prefix)))
    .map((p) => p.replace(/\\040/g, " "))
    .sort((a, b) => b.length - a.length);
}

export async function resolveFlist(source: string, opts: RootfsOptions, container: string): Promise<string> {
  if (!/^https?:\/\//.test(source)) {
    if (!existsSync(source)) throw new ContainerError("not-found", `flist ${source} does not exist on the node`, { container, step: "flist" });
    return source;
  }
  mkdirSync(opts.flistDir, { recursive: true });
  const path = join(opts.flistDir, createHash("sha256").update(source).digest("hex").slice(0, 32) + ".fl");
  if (existsSync(path)) return path;
  let res: Response;
  try {
    res = await fetch(source);
  } catch (e) {
    throw new ContainerError("not-found", `cannot download flist ${source}: ${(e as Error).message}`, { container, step: "flist" }, { cause: e });
  }
  if (!res.ok) throw new ContainerError("not-found", `cannot download flist ${source}: HTTP ${res.status}`, { container, step: "flist" });
  writeFileSync(path + ".part", new Uint8Array(await res.arrayBuffer()));
  renameSync(path + ".part", path);
  return path;
}

function flistFailure(e: unknown, container: string, flist: string): ContainerError {
  if (e instanceof ContainerError) return e;
  const err = e as Error & { code?: string };
  const code = err.name === "FlistError" && (err.code === "bad-signature" || err.code === "bad-flist") ? "bad-flist" : "system";
  return new ContainerError(code, `flist ${flist}: ${err.message}`, { container, step: "flist" }, { cause: e });
}

async function mountOne(flist: string, mountpoint: string, spec: ContainerSpec, opts: RootfsOptions): Promise<FlistMount> {
  mkdirSync(mountpoint, { recursive: true });
  try {
    const path = await resolveFlist(flist, opts, spec.name);
    return await mountFlist({ flist: path, mountpoint, cacheDir: opts.cacheDir, stores: spec.stores, trustedKey: opts.trustedKey ?? undefined, allowOther: true });
  } catch (e) {
    throw flistFailure(e, spec.name, flist);
  }
}

/** The mounted filesystems of one container; `unmount` undoes whatever part was mounted. */
export class Rootfs {
  private flists: FlistMount[] = [];
  /** Host paths of extra flist mounts, indexed like spec.mounts. */
  readonly extraSources: (string | undefined)[] = [];

  constructor(readonly bundle: string) {}

  get rootfs(): string {
    return join(this.bundle, "rootfs");
  }

  async mount(spec: ContainerSpec, opts: RootfsOptions): Promise<void> {
    const lower = join(this.bundle, "lower"), rw = join(this.bundle, "rw");
    this.flists.push(await mountOne(spec.flist, lower, spec, opts));
    for (const [i, m] of spec.mounts.entries()) {
      if (m.type === "vdisk") throw new ContainerError("unsupported", `mounts: vdisk ${m.vdisk} needs an NBD-attached block device, which only a node has`, { container: spec.name, step: "mounts" });
      if (m.type === "flist") {
        const at = join(this.bundle, "mounts", String(i));
        this.flists.push(await mountOne(m.flist, at, spec, opts));
        this.extraSources[i] = at;
      }
    }
    mkdirSync(rw, { recursive: true });
    await mustRun(["mount", "-t", "tmpfs", "-o", `size=${spec.rwSizeBytes},mode=0755`, "zos-rw", rw], "overlay", { container: spec.name });
    mkdirSync(join(rw, "upper"));
    mkdirSync(join(rw, "work"));
    mkdirSync(this.rootfs, { recursive: true });
    await mustRun(["mount", "-t", "overlay", "-o", `lowerdir=${lower},upperdir=${rw}/upper,workdir=${rw}/work`, "zos-overlay", this.rootfs], "overlay", { container: spec.name });
  }

  /**
   * Unmounts everything under the bundle: our own FUSE sessions are ended properly, the rest (left
   * by an init that died, or half-made by a failed create) is detached.
   */
  async unmount(): Promise<void> {
    const sessions = this.flists;
    this.flists = [];
    for (const p of mountsUnder(this.bundle)) {
      if (sessions.some((s) => s.mountpoint === p)) continue;
      if ((await runCommand(["umount", p])).code !== 0) await runCommand(["umount", "-l", p]);
    }
    await Promise.all(sessions.map((s) => s.unmount()));
    for (const p of mountsUnder(this.bundle)) if (!clearDeadMount(p)) await runCommand(["umount", "-l", p]);
    const left = mountsUnder(this.bundle);
    if (left.length) throw new ContainerError("system", `still mounted after teardown: ${left.join(", ")}`, { step: "unmount" });
  }
}
