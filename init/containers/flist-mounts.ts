// Read-only flist mounts shared between containers: every container started from the same flist
// (same file, store routes and trust key) uses one FUSE mount as its overlay lower layer, so the
// second container of an flist costs no new mount, reader thread or chunk cache. A mount lives while
// a container uses it and is unmounted when the last one goes.
import { createHash } from "node:crypto";
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { clearDeadMount, mountFlist, type FlistMount, type Inode } from "../../fuse-fs/index.ts";
import { runCommand } from "./command.ts";
import { ContainerError } from "./errors.ts";
import { mountsUnder, resolveFlist } from "./flist-source.ts";

export interface FlistMountOptions {
  /** Mount points live under here, one directory per shared mount. */
  dir: string;
  /** Shared chunk cache of every flist's blocks. */
  cacheDir: string;
  /** Where flists given by URL are downloaded. */
  flistDir: string;
  /** When set, every flist must carry a valid signature by this ed25519 key (hex). */
  trustedKey: string | null;
}

interface Shared {
  users: number;
  ready: Promise<FlistMount>;
}

export interface FlistLease {
  mountpoint: string;
  /** The flist's record of a path relative to its root, read without a FUSE request; null when missing. */
  entry(path: string): Inode | null;
  release(): Promise<void>;
}

function failure(e: unknown, container: string, flist: string): ContainerError {
  if (e instanceof ContainerError) return e;
  const err = e as Error & { code?: string };
  const code = err.name === "FlistError" && (err.code === "bad-signature" || err.code === "bad-flist") ? "bad-flist" : "system";
  return new ContainerError(code, `flist ${flist}: ${err.message}`, { container, step: "flist" }, { cause: e });
}

export class FlistMounts {
  private readonly shared = new Map<string, Shared>();

  constructor(readonly opts: FlistMountOptions) {}

  /** Detaches mounts a previous init left behind (their FUSE daemon died with it). */
  async clearStale(): Promise<void> {
    for (const p of mountsUnder(this.opts.dir)) if (!clearDeadMount(p)) await runCommand(["umount", "-l", p]);
    rmSync(this.opts.dir, { recursive: true, force: true });
  }

  get count(): number {
    return this.shared.size;
  }

  async acquire(flist: string, stores: string[] | undefined, container: string): Promise<FlistLease> {
    let path: string;
    try {
      path = await resolveFlist(flist, this.opts.flistDir, container);
    } catch (e) {
      throw failure(e, container, flist);
    }
    const key = createHash("sha256").update(JSON.stringify([path, stores ?? [], this.opts.trustedKey])).digest("hex").slice(0, 24);
    let s = this.shared.get(key);
    if (!s) {
      const mountpoint = join(this.opts.dir, key);
      mkdirSync(mountpoint, { recursive: true });
      const entry: Shared = {
        users: 0,
        ready: mountFlist({ flist: path, mountpoint, cacheDir: this.opts.cacheDir, stores, trustedKey: this.opts.trustedKey ?? undefined, allowOther: true, readers: 1 }),
      };
      s = entry;
      this.shared.set(key, entry);
      entry.ready.catch(() => {
        if (this.shared.get(key) === entry) this.shared.delete(key);
        rmSync(mountpoint, { recursive: true, force: true });
      });
    }
    s.users++;
    let mount: FlistMount;
    try {
      mount = await s.ready;
    } catch (e) {
      s.users--;
      throw failure(e, container, flist);
    }
    const entry = s;
    let released = false;
    return {
      mountpoint: mount.mountpoint,
      entry: (path) => mount.entry(path),
      release: async () => {
        if (released) return;
        released = true;
        if (--entry.users > 0) return;
        this.shared.delete(key);
        await mount.unmount();
        rmSync(mount.mountpoint, { recursive: true, force: true });
      },
    };
  }
}
