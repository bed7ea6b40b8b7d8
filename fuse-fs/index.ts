// The programmatic face of fuse-fs, for init and the CLI: mount an flist, pack, unpack, sign.
import { resolve } from "node:path";
import { openStore, type BlockBackend } from "../store/index.ts";
import { BlockFetcher, DEFAULT_FETCH_TIMEOUT_MS } from "./blocks.ts";
import { ChunkCache } from "./cache.ts";
import { sharedDecodePool } from "./decode-pool.ts";
import { FlistError } from "./errors.ts";
import { Flist, ROOT_INO, type Inode } from "./flist.ts";
import { FlistFs } from "./fs.ts";
import { FuseSession } from "./fuse/session.ts";
import { routeSpecs } from "./routes.ts";
import { verifyFlist } from "./sign.ts";

export { FlistError } from "./errors.ts";
export { Flist, type Inode } from "./flist.ts";
export { pack, type PackOptions, type PackProgress } from "./pack.ts";
export { unpack, type UnpackOptions } from "./unpack.ts";
export { signFlist, verifyFlist } from "./sign.ts";
export { clearDeadMount } from "./fuse/session.ts";

export const DEFAULT_CACHE_BYTES = 4 * 1024 ** 3;

export interface MountFlistOptions {
  flist: string;
  mountpoint: string;
  /** Directory of verified plaintext blocks, shared by mounts of flists on the same store. */
  cacheDir: string;
  cacheBytes?: number;
  /** Store routes (`[xx-xx=]url`) replacing the flist's own, e.g. to add a password rfs stripped. */
  stores?: string[];
  /** An already opened store (tests, or init sharing one store between mounts). */
  store?: BlockBackend;
  /** Hex ed25519 public key: refuse the flist unless its signature tag verifies under it. */
  trustedKey?: string;
  /** Deadline of one block download; a read needing a block the store does not deliver in time fails with EIO. */
  timeoutMs?: number;
  /** Reader threads on /dev/fuse. */
  readers?: number;
  allowOther?: boolean;
}

export interface FlistMount {
  readonly mountpoint: string;
  /** Settles when the filesystem is gone (unmounted by us or anyone else). */
  readonly closed: Promise<void>;
  /** Unmounts (lazily if busy), waits for the session to end and releases the flist and store. */
  unmount(): Promise<void>;
  /** FUSE requests served so far, by operation. */
  requestCounts(): Record<string, number>;
  /** The flist's record of a path relative to the root, read in this process (no FUSE request); null when missing. */
  entry(path: string): Inode | null;
}

/**
 * Chunk caches by directory and bound, kept for the process: opening one lists every chunk on disk
 * (~4 ms per 1000 chunks), which a container's first start would otherwise wait for on each mount.
 * Sharing one also keeps two mounts of the same cache from counting and evicting behind each other's
 * back; chunks removed from outside are forgotten when a read misses them.
 */
const caches = new Map<string, ChunkCache>();

function chunkCache(dir: string, maxBytes: number): ChunkCache {
  const key = `${resolve(dir)}\0${maxBytes}`;
  let cache = caches.get(key);
  if (!cache) caches.set(key, (cache = new ChunkCache(dir, maxBytes)));
  return cache;
}

export async function mountFlist(opts: MountFlistOptions): Promise<FlistMount> {
  const flist = Flist.open(opts.flist);
  let opening: Promise<BlockBackend> | undefined;
  let store: BlockBackend;
  let cache: ChunkCache;
  let fs: FlistFs;
  let session: FuseSession;
  try {
    // Verified on the very handle that serves the mount, so the file cannot change in between.
    if (opts.trustedKey) verifyFlist(flist, opts.trustedKey);
    // The store opens while the kernel mounts: no request before INIT needs it, and cached blocks never do.
    opening = opts.store ? Promise.resolve(opts.store) : openStore(opts.stores?.length ? opts.stores : routeSpecs(flist));
    cache = chunkCache(opts.cacheDir, opts.cacheBytes ?? DEFAULT_CACHE_BYTES);
    const fetcher = new BlockFetcher(opening, { cache, timeoutMs: opts.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS, decoders: sharedDecodePool() });
    fs = new FlistFs(flist, fetcher);
    const mounting = FuseSession.mount(fs, {
      mountpoint: opts.mountpoint,
      rootMode: flist.inode(ROOT_INO)!.mode,
      fsname: opts.flist,
      readers: opts.readers,
      allowOther: opts.allowOther,
      readAheadKb: 1024,
    });
    // both settle before a failure is handled: neither a session nor a store is left behind
    const [opened, mounted] = await Promise.allSettled([opening, mounting]);
    if (mounted.status === "fulfilled" && opened.status === "rejected") {
      mounted.value.unmount();
      await mounted.value.closed;
    }
    if (opened.status === "rejected") throw opened.reason;
    store = opened.value;
    if (mounted.status === "rejected") throw mounted.reason;
    session = mounted.value;
  } catch (err) {
    flist.close();
    if (opening && !opts.store) await opening.then((s) => s.close(), () => {});
    throw err instanceof FlistError || (err as Error).name === "StoreError" ? err : new FlistError("mount", (err as Error).message, { flist: opts.flist }, { cause: err });
  }
  const release = session.closed.then(async () => {
    flist.close();
    await cache.flush();
    if (!opts.store) await store.close();
  });
  return {
    mountpoint: opts.mountpoint,
    closed: release,
    requestCounts: () => session.counts(),
    entry: (path) => fs.entry(path),
    async unmount() {
      session.unmount();
      await release;
    },
  };
}
