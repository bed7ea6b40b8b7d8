// pack: walks a directory tree, stores every file's 512 KiB blocks in the store and writes an flist.
// Directories are recorded before their children (a parent's ino is always smaller), files' blocks in
// file order. Blocks the store already holds, and blocks seen earlier in this run, are not sent again.
import { closeSync, lstatSync, openSync, readSync, readdirSync, readlinkSync, renameSync, rmSync, type BigIntStats } from "node:fs";
import { resolve } from "node:path";
import { encodeBlock, openStore, parseRoute, hex, type BlockBackend, type EncodedBlock } from "../store/index.ts";
import { FlistError } from "./errors.ts";
import { BLOCK_SIZE, Flist, S_IFMT, S_IFDIR, S_IFLNK, S_IFREG } from "./flist.ts";
import { stripPassword } from "./urls.ts";

export interface PackProgress {
  files: number;
  bytes: number;
  blocks: number;
  /** Blocks actually sent (the rest were already stored). */
  uploaded: number;
}

export interface PackOptions {
  /** The directory to pack. */
  source: string;
  /** Where to write the flist; an existing file is replaced. */
  output: string;
  /** rfs route specs, `[xx-xx=]url`; every block goes to each route covering its id. */
  stores: string[];
  /** Keep passwords in the route URLs recorded in the flist (rfs strips them by default). */
  keepPasswords?: boolean;
  tags?: Record<string, string>;
  /** Uploads kept in flight at once. */
  parallel?: number;
  onProgress?: (p: PackProgress) => void;
}

export const FLIST_VERSION = "1";
/** Packing is a batch job: a store slowed by other load should delay it, not fail it. */
const PACK_OP_TIMEOUT_MS = 120_000;

function sec(ns: bigint): number {
  return Number(ns / 1_000_000_000n);
}

/** Reads up to buf.length bytes at the current position, looping over short reads. */
function readFull(fd: number, buf: Buffer): number {
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, null);
    if (n === 0) break;
    got += n;
  }
  return got;
}

const zeroBlock = Buffer.alloc(BLOCK_SIZE);

class Uploader {
  private readonly sent = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private failure: unknown = null;
  /** Sparse and preallocated files are mostly zero blocks: encode that one once. */
  private zeroEncoded: EncodedBlock | null = null;
  readonly progress: PackProgress = { files: 0, bytes: 0, blocks: 0, uploaded: 0 };

  constructor(
    private readonly store: BlockBackend,
    private readonly parallel: number,
  ) {}

  encode(plain: Buffer): EncodedBlock {
    if (plain.length === BLOCK_SIZE && plain.equals(zeroBlock)) return (this.zeroEncoded ??= encodeBlock(zeroBlock));
    return encodeBlock(plain);
  }

  /** Queues one block for storing; waits only when `parallel` uploads are already running. */
  async add(block: EncodedBlock): Promise<void> {
    if (this.failure) throw this.failure;
    this.progress.blocks++;
    const name = hex(block.id);
    if (this.sent.has(name)) return;
    this.sent.add(name);
    const p = (async () => {
      if (await this.store.has(block.id, { timeoutMs: PACK_OP_TIMEOUT_MS })) return;
      await this.store.put(block.id, block.data, { timeoutMs: PACK_OP_TIMEOUT_MS });
      this.progress.uploaded++;
    })().then(
      () => void this.inFlight.delete(p),
      (err) => {
        this.inFlight.delete(p);
        this.failure ??= err;
      },
    );
    this.inFlight.add(p);
    while (this.inFlight.size >= this.parallel) await Promise.race(this.inFlight);
  }

  async drain(): Promise<void> {
    await Promise.all(this.inFlight);
    if (this.failure) throw this.failure;
  }
}

export async function pack(opts: PackOptions): Promise<PackProgress> {
  const source = resolve(opts.source);
  let rootStat: BigIntStats;
  try {
    rootStat = lstatSync(source, { bigint: true });
  } catch (err) {
    throw new FlistError("io", `cannot stat ${source}: ${(err as Error).message}`, { path: source }, { cause: err });
  }
  if ((Number(rootStat.mode) & S_IFMT) !== S_IFDIR) throw new FlistError("usage", `${source} is not a directory`, { path: source });
  if (opts.stores.length === 0) throw new FlistError("usage", "pack needs at least one store (-s URL)");

  const store = await openStore(opts.stores);
  // Written beside the output and renamed into place, so a failed pack leaves no half flist.
  const partial = `${opts.output}.partial`;
  const flist = Flist.create(partial);
  const up = new Uploader(store, opts.parallel ?? 16);
  const buf = Buffer.allocUnsafe(BLOCK_SIZE);
  let lastReport = 0;
  const report = (force = false) => {
    const now = Date.now();
    if (opts.onProgress && (force || now - lastReport > 200)) {
      lastReport = now;
      opts.onProgress({ ...up.progress });
    }
  };

  try {
    flist.db.exec("BEGIN");
    for (const spec of opts.stores) {
      const r = parseRoute(spec);
      flist.addRoute({ start: r.start, end: r.end, url: opts.keepPasswords ? r.url : stripPassword(r.url) });
    }
    flist.setTag("version", FLIST_VERSION);
    for (const [k, v] of Object.entries(opts.tags ?? {})) flist.setTag(k, v);

    const record = (parent: number, name: string, path: Buffer, st: BigIntStats): number => {
      const mode = Number(st.mode);
      const target = (mode & S_IFMT) === S_IFLNK ? readlinkSync(path, { encoding: "buffer" }) : undefined;
      return flist.addInode({
        parent,
        name,
        size: Number(st.size),
        uid: Number(st.uid),
        gid: Number(st.gid),
        mode,
        rdev: Number(st.rdev),
        ctime: sec(st.ctimeNs),
        mtime: sec(st.mtimeNs),
        target,
      });
    };

    const packFile = async (ino: number, path: Buffer, size: number) => {
      const fd = openSync(path, "r");
      let total = 0;
      try {
        for (;;) {
          const n = readFull(fd, buf);
          if (n === 0) break;
          const block = up.encode(buf.subarray(0, n));
          flist.addBlock(ino, { id: block.id, key: block.key });
          await up.add(block);
          total += n;
          up.progress.bytes += n;
          report();
          if (n < BLOCK_SIZE) break;
        }
      } finally {
        closeSync(fd);
      }
      // A file that changed while packed is recorded as the bytes that were stored.
      if (total !== size) flist.db.query("UPDATE inode SET size = ? WHERE ino = ?").run(total, ino);
    };

    // Paths are handled as bytes, so a name that is not valid UTF-8 is still found on disk; the flist
    // records it lossily, as rfs does.
    const slash = Buffer.from("/");
    const dirs: { ino: number; path: Buffer }[] = [{ ino: record(0, "/", Buffer.from(source), rootStat), path: Buffer.from(source) }];
    while (dirs.length > 0) {
      const dir = dirs.pop()!;
      let names: Buffer[];
      try {
        names = readdirSync(dir.path, { encoding: "buffer" }).sort(Buffer.compare);
      } catch (err) {
        throw new FlistError("io", `cannot list ${dir.path}: ${(err as Error).message}`, { path: dir.path.toString() }, { cause: err });
      }
      for (const rawName of names) {
        const name = rawName.toString("utf8");
        const path = Buffer.concat([dir.path, slash, rawName]);
        let st: BigIntStats;
        try {
          st = lstatSync(path, { bigint: true });
        } catch (err) {
          throw new FlistError("io", `cannot stat ${path}: ${(err as Error).message}`, { path: path.toString() }, { cause: err });
        }
        const ino = record(dir.ino, name, path, st);
        const type = Number(st.mode) & S_IFMT;
        if (type === S_IFDIR) dirs.push({ ino, path });
        else if (type === S_IFREG) {
          up.progress.files++;
          try {
            await packFile(ino, path, Number(st.size));
          } catch (err) {
            if (err instanceof FlistError || (err as Error).name === "StoreError") throw err;
            throw new FlistError("io", `cannot read ${path}: ${(err as Error).message}`, { path: path.toString() }, { cause: err });
          }
        }
      }
    }
    await up.drain();
    flist.db.exec("COMMIT");
  } catch (err) {
    if (flist.db.inTransaction) flist.db.exec("ROLLBACK");
    flist.close();
    rmSync(partial, { force: true });
    await store.close();
    throw err;
  }
  flist.close();
  renameSync(partial, opts.output);
  await store.close();
  report(true);
  return up.progress;
}
