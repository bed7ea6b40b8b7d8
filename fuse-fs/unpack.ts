// unpack: recreates an flist's tree in a directory, fetching and verifying every block.
// Directory modes and times are applied after their contents are written (bottom-up), since writing
// into a directory changes its mtime and a read-only mode would stop the writes.
import { chmodSync, closeSync, ftruncateSync, lchownSync, lutimesSync, mkdirSync, openSync, symlinkSync, utimesSync, writeSync } from "node:fs";
import { join, resolve } from "node:path";
import { openStore } from "../store/index.ts";
import { BlockFetcher } from "./blocks.ts";
import { FlistError } from "./errors.ts";
import { BLOCK_SIZE, Flist, ROOT_INO, S_IFMT, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, S_IFSOCK, type Inode } from "./flist.ts";
import { mknod } from "./libc.ts";
import { routeSpecs } from "./routes.ts";

export interface UnpackOptions {
  flist: string;
  target: string;
  /** Overrides the flist's own routes (e.g. when it was packed with passwords stripped). */
  stores?: string[];
  /** chown every entry to the uid/gid in the flist (needs root). */
  preserveOwnership?: boolean;
  /** Blocks fetched at once. */
  parallel?: number;
  timeoutMs?: number;
}

function isZero(b: Uint8Array): boolean {
  for (let i = 0; i < b.length; i += 8192) {
    const end = Math.min(b.length, i + 8192);
    for (let j = i; j < end; j++) if (b[j] !== 0) return false;
  }
  return true;
}

export async function unpack(opts: UnpackOptions): Promise<{ files: number; bytes: number }> {
  const flist = Flist.open(opts.flist);
  const store = await openStore(opts.stores?.length ? opts.stores : routeSpecs(flist));
  const fetcher = new BlockFetcher(store, { timeoutMs: opts.timeoutMs, memoryBlocks: 4 });
  const parallel = opts.parallel ?? 8;
  const stats = { files: 0, bytes: 0 };
  const dirsToFinish: { path: string; node: Inode }[] = [];

  const own = (path: string, n: Inode) => {
    if (opts.preserveOwnership) lchownSync(path, n.uid, n.gid);
  };

  const writeFile = async (path: string, n: Inode) => {
    const blocks = flist.blocks(n.ino);
    const expected = Math.ceil(n.size / BLOCK_SIZE);
    if (blocks.length !== expected) {
      throw new FlistError("bad-flist", `${n.size}-byte file has ${blocks.length} blocks, want ${expected}`, { flist: opts.flist, path, ino: n.ino });
    }
    const fd = openSync(path, "w", 0o600);
    try {
      for (let first = 0; first < blocks.length; first += parallel) {
        const batch = blocks.slice(first, first + parallel);
        const datas = await Promise.all(
          batch.map((b, k) => {
            const i = first + k;
            return fetcher.get(b, Math.min(BLOCK_SIZE, n.size - i * BLOCK_SIZE));
          }),
        );
        datas.forEach((d, k) => {
          // Zero blocks stay holes: a sparse source unpacks sparse.
          if (!isZero(d)) writeSync(fd, d, 0, d.length, (first + k) * BLOCK_SIZE);
        });
      }
      ftruncateSync(fd, n.size);
    } finally {
      closeSync(fd);
    }
    stats.files++;
    stats.bytes += n.size;
  };

  const make = async (path: string, n: Inode) => {
    const type = n.mode & S_IFMT;
    const perm = n.mode & 0o7777;
    switch (type) {
      case S_IFDIR:
        mkdirSync(path, { recursive: true });
        for (const child of flist.children(n.ino)) await make(join(path, child.name), child);
        dirsToFinish.push({ path, node: n });
        return;
      case S_IFREG:
        await writeFile(path, n);
        break;
      case S_IFLNK: {
        const target = flist.target(n.ino);
        if (!target) throw new FlistError("bad-flist", "symlink has no target in the extra table", { flist: opts.flist, path, ino: n.ino });
        symlinkSync(Buffer.from(target), path);
        own(path, n);
        lutimesSync(path, n.mtime, n.mtime);
        return;
      }
      case S_IFBLK:
      case S_IFCHR:
      case S_IFIFO:
      case S_IFSOCK:
        mknod(path, type | perm, n.rdev);
        break;
      default:
        throw new FlistError("bad-flist", `unknown file type ${type.toString(8)}`, { flist: opts.flist, path, ino: n.ino });
    }
    own(path, n);
    chmodSync(path, perm);
    utimesSync(path, n.mtime, n.mtime);
  };

  try {
    const root = flist.inode(ROOT_INO)!;
    await make(resolve(opts.target), root);
    for (const { path, node } of dirsToFinish) {
      own(path, node);
      chmodSync(path, node.mode & 0o7777);
      utimesSync(path, node.mtime, node.mtime);
    }
  } finally {
    flist.close();
    await store.close();
  }
  return stats;
}
