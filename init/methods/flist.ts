// flist.* methods: read-only flist mounts on the node itself (outside any container), for operators
// and tests that want a tree served by fuse-fs. Flists are resolved the way containers resolve theirs
// (a path on the node, or an http(s) URL downloaded once); mounts live under <stateDir>/flists unless
// the caller names a mount point, share one chunk cache, and are unmounted at shutdown.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { Flist, mountFlist, verifyFlist, type FlistMount } from "../../fuse-fs/index.ts";
import { TRUSTED_FLIST_KEY_FILE } from "../containers/index.ts";
import { mountsUnder, resolveFlist } from "../containers/flist-source.ts";
import { logger } from "../log.ts";
import { RpcError } from "../rpc/errors.ts";
import { method, type MethodDef, type MethodRegistry } from "../rpc/registry.ts";
import { s } from "../rpc/schema.ts";

const log = logger("flists");

export interface FlistMountInfo {
  url: string;
  /** The flist file on the node (the download, for a URL). */
  path: string;
  mountpoint: string;
  stores: string[];
  /** The trusted key the flist's signature verified under, if one was required. */
  verifiedKey: string | null;
  mountedAt: number;
  /** FUSE requests served, by operation. */
  requests: Record<string, number>;
}

interface Entry {
  info: Omit<FlistMountInfo, "requests">;
  mount: FlistMount;
}

const hexKey = s.string({ min: 64, max: 64, pattern: /^[0-9a-f]{64}$/ });
const absPath = s.string({ min: 2, max: 1024, pattern: /^\// });

/** Maps fuse-fs, store and resolver failures onto RPC codes, keeping their message. */
function rpcError(e: unknown, url: string): RpcError {
  if (e instanceof RpcError) return e;
  const err = e as Error & { code?: string };
  const code =
    err.name === "ContainerError" ? (err.code ?? "internal") // from resolveFlist: not-found
    : err.name === "FlistError" ? (err.code === "bad-flist" || err.code === "bad-signature" ? "bad-params" : err.code === "not-found" ? "not-found" : "internal")
    : err.name === "StoreError" ? "unavailable"
    : "internal";
  return new RpcError(code, `flist ${url}: ${err.message}`, { url, cause: err.code ?? err.name });
}

export class NodeFlists {
  private readonly mounts = new Map<string, Entry>();
  /** Mount points with a flist.mount in progress: a second call for one of them is a conflict, not a stacked mount. */
  private readonly mounting = new Set<string>();
  private readonly mountDir: string;
  private readonly cacheDir: string;
  private readonly downloadDir: string;
  /** The node's own flist key (the one containers require), if configured. */
  private readonly nodeKey: string | null;

  constructor(stateDir: string) {
    const d = join(stateDir, "flists");
    this.mountDir = join(d, "mounts");
    this.cacheDir = join(d, "cache");
    this.downloadDir = join(d, "downloads");
    const keyFile = join(stateDir, "containers", TRUSTED_FLIST_KEY_FILE);
    this.nodeKey = existsSync(keyFile) ? readFileSync(keyFile, "utf8").trim() : null;
  }

  /** Detaches mounts a previous init left under our directory (their daemon died with it). */
  clearStale(): void {
    for (const p of mountsUnder(this.mountDir)) {
      try {
        Bun.spawnSync(["umount", "-l", p]);
      } catch (e) {
        log.error(`detaching stale flist mount ${p}`, e);
      }
    }
    rmSync(this.mountDir, { recursive: true, force: true });
  }

  /**
   * The key whose signature must verify, if any. A node key (when configured) is always required,
   * like for containers; trustedKeys narrows further: one of them must verify too.
   */
  private verify(path: string, trustedKeys: string[] | undefined): string | null {
    const flist = Flist.open(path);
    try {
      if (this.nodeKey) verifyFlist(flist, this.nodeKey);
      if (!trustedKeys?.length) return this.nodeKey;
      const errors: string[] = [];
      for (const key of trustedKeys) {
        try {
          verifyFlist(flist, key);
          return this.nodeKey ?? key;
        } catch (e) {
          errors.push((e as Error).message);
        }
      }
      throw new RpcError("bad-params", `flist ${path} is not signed by any of the ${trustedKeys.length} trusted keys: ${errors.join("; ")}`, { path: "trustedKeys" });
    } finally {
      flist.close();
    }
  }

  async mount(p: { url: string; stores?: string[]; mountpoint?: string; trustedKeys?: string[] }): Promise<FlistMountInfo> {
    const stores = p.stores ?? [];
    const mountpoint = p.mountpoint ? resolve(p.mountpoint) : join(this.mountDir, createHash("sha256").update(JSON.stringify([p.url, stores])).digest("hex").slice(0, 24));
    const taken = this.mounts.get(mountpoint);
    if (taken) throw new RpcError("conflict", `${mountpoint} already serves flist ${taken.info.url}`, { mountpoint });
    if (this.mounting.has(mountpoint)) throw new RpcError("conflict", `${mountpoint} is being mounted by another call`, { mountpoint });
    if (mountsUnder(mountpoint).includes(mountpoint)) throw new RpcError("conflict", `${mountpoint} is already a mount point`, { mountpoint });
    this.mounting.add(mountpoint);
    try {
      return await this.mountAt(mountpoint, stores, p);
    } finally {
      this.mounting.delete(mountpoint);
    }
  }

  private async mountAt(mountpoint: string, stores: string[], p: { url: string; trustedKeys?: string[] }): Promise<FlistMountInfo> {
    let mount: FlistMount;
    let path: string;
    let verifiedKey: string | null;
    try {
      path = await resolveFlist(p.url, this.downloadDir, p.url);
      verifiedKey = this.verify(path, p.trustedKeys);
      mkdirSync(mountpoint, { recursive: true });
      // Verified again on the handle that serves the mount, so a file swapped meanwhile is refused.
      mount = await mountFlist({ flist: path, mountpoint, cacheDir: this.cacheDir, stores: stores.length ? stores : undefined, trustedKey: verifiedKey ?? undefined, allowOther: true });
    } catch (e) {
      if (mountpoint.startsWith(this.mountDir + "/")) rmSync(mountpoint, { recursive: true, force: true });
      throw rpcError(e, p.url);
    }
    const entry: Entry = { info: { url: p.url, path, mountpoint, stores, verifiedKey, mountedAt: Date.now() }, mount };
    this.mounts.set(mountpoint, entry);
    // Unmounted behind our back (umount by hand): forget it.
    mount.closed.then(() => this.forget(entry));
    log.info(`flist ${p.url} mounted on ${mountpoint}`);
    return this.describe(entry);
  }

  private forget(entry: Entry): void {
    if (this.mounts.get(entry.info.mountpoint) !== entry) return;
    this.mounts.delete(entry.info.mountpoint);
    if (entry.info.mountpoint.startsWith(this.mountDir + "/")) rmSync(entry.info.mountpoint, { recursive: true, force: true });
  }

  private describe(e: Entry): FlistMountInfo {
    return { ...e.info, requests: e.mount.requestCounts() };
  }

  /** Unmounts (lazily when files are still open: they keep being served until closed). */
  async unmount(mountpoint: string): Promise<{ unmounted: string }> {
    const entry = this.mounts.get(resolve(mountpoint));
    if (!entry) throw new RpcError("not-found", `no flist is mounted on ${mountpoint} by this node`, { mountpoint });
    await entry.mount.unmount();
    this.forget(entry);
    log.info(`flist ${entry.info.url} unmounted from ${entry.info.mountpoint}`);
    return { unmounted: entry.info.mountpoint };
  }

  list(): FlistMountInfo[] {
    return [...this.mounts.values()].map((e) => this.describe(e));
  }

  async shutdown(): Promise<void> {
    await Promise.all(
      [...this.mounts.keys()].map((m) =>
        this.unmount(m).catch((e) => log.error(`unmounting flist at ${m}`, e)),
      ),
    );
  }
}

export function flistMethods(flists: NodeFlists): Record<string, MethodDef<any>> {
  return {
    "flist.mount": method({
      role: "operator", summary: "mount an flist (node path or http(s) URL) read-only; returns where",
      params: s.object({
        url: s.string({ min: 1, max: 2048 }),
        stores: s.optional(s.array(s.string({ min: 1, max: 2048 }), { max: 32 })),
        mountpoint: s.optional(absPath),
        trustedKeys: s.optional(s.array(hexKey, { max: 16 })),
      }),
      handler: (p) => flists.mount(p),
    }),
    "flist.unmount": method({
      role: "operator", summary: "unmount an flist this node mounted (lazily if files are open)",
      params: s.object({ mountpoint: absPath }),
      handler: (p) => flists.unmount(p.mountpoint),
    }),
    "flist.list": method({ role: "reader", summary: "flists mounted by flist.mount, with request counts", params: s.object({}), handler: async () => flists.list() }),
  };
}

/** Registers flist.* on the node; stale mounts of a previous init are detached first. */
export function startFlists(registry: MethodRegistry, stateDir: string): NodeFlists {
  const flists = new NodeFlists(stateDir);
  flists.clearStale();
  registry.registerMethods(flistMethods(flists));
  return flists;
}

export { isAbsolute };
