// The chunk cache: verified plaintext blocks on disk, named by block id, bounded in bytes with
// least-recently-used eviction. Layout: <dir>/<id[0:2]>/<idhex>. (rfs nests one level deeper,
// <id[0:2]>/<id[2:4]>/; below a few hundred thousand chunks that makes a directory per chunk, and
// creating it cost ext4 more than writing the 512 KiB chunk. Chunks found in that layout, left by an
// older version, are moved into this one when the cache is opened.)
// Entries are written to a temporary name and renamed, so a crash never leaves a torn chunk under an
// id; the order of use survives a restart only approximately (by file mtime), which is all LRU needs.
// The bookkeeping (what is cached, the bound, eviction) lives in ChunkCache on one thread; the bytes
// are written by writeChunk wherever the chunk is at hand: a decode worker writes the block it just
// decoded, synchronously, so a cold read pays no thread-pool hand-off or promise per chunk.
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmdirSync, statSync, unlinkSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { FlistError } from "./errors.ts";

/** Where one chunk goes: its final path and the temporary name it is written under first. */
export interface ChunkTarget {
  path: string;
  tmp: string;
}

/**
 * Writes a chunk to its target (temporary name, then rename); false when the disk refused it. Its
 * directories are made only when the first open finds them missing.
 */
export function writeChunk(target: ChunkTarget, data: Uint8Array): boolean {
  let fd: number;
  try {
    try {
      fd = openSync(target.tmp, "w");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      mkdirSync(dirname(target.tmp), { recursive: true });
      fd = openSync(target.tmp, "w");
    }
  } catch {
    return false;
  }
  try {
    try {
      for (let at = 0; at < data.length; ) at += writeSync(fd, data, at, data.length - at);
    } finally {
      closeSync(fd);
    }
    renameSync(target.tmp, target.path);
    return true;
  } catch {
    // A full or broken cache disk costs speed, not correctness: the chunk is served from memory.
    try {
      unlinkSync(target.tmp);
    } catch {}
    return false;
  }
}

const hexName = /^[0-9a-f]{64}$/;

export class ChunkCache {
  /** id hex -> size; Map order is the use order, oldest first. */
  private readonly entries = new Map<string, number>();
  private total = 0;
  private tmpSeq = 0;
  /** Chunks reserved and not settled yet. */
  private readonly writing = new Set<string>();
  private drained: (() => void)[] = [];

  constructor(
    readonly dir: string,
    readonly maxBytes: number,
  ) {
    if (!(maxBytes > 0)) throw new FlistError("usage", `cache size must be positive, got ${maxBytes}`);
    try {
      mkdirSync(dir, { recursive: true });
    } catch (err) {
      throw new FlistError("io", `cannot create cache dir ${dir}: ${(err as Error).message}`, { path: dir }, { cause: err });
    }
    this.scan();
    this.evict();
  }

  private pathOf(name: string): string {
    return join(this.dir, name.slice(0, 2), name);
  }

  private scan(): void {
    const found: { name: string; size: number; mtime: number }[] = [];
    /** A chunk or a leftover in `sub`; a legacy two-level directory has its chunks moved up and goes. */
    const visit = (sub: string, entry: string, legacy: boolean) => {
      const path = join(sub, entry);
      if (!hexName.test(entry)) {
        if (entry.includes(".tmp")) unlinkSync(path); // left by a crash mid-write
        else if (!legacy && /^[0-9a-f]{2}$/.test(entry)) {
          for (const inner of readdirSync(path)) visit(path, inner, true);
          try {
            rmdirSync(path);
          } catch {} // something else lives there: leave it
        }
        return;
      }
      const home = this.pathOf(entry);
      try {
        if (path !== home) renameSync(path, home);
        const st = statSync(home);
        found.push({ name: entry, size: st.size, mtime: st.mtimeMs });
      } catch {} // unreadable or immovable: not counted, as if absent
    };
    for (const a of readdirSync(this.dir)) {
      if (!/^[0-9a-f]{2}$/.test(a)) continue;
      const sub = join(this.dir, a);
      for (const entry of readdirSync(sub)) visit(sub, entry, false);
    }
    found.sort((x, y) => x.mtime - y.mtime);
    for (const f of found) {
      this.entries.set(f.name, f.size);
      this.total += f.size;
    }
  }

  get bytes(): number {
    return this.total;
  }

  get count(): number {
    return this.entries.size;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The cached chunk, or null. A chunk that vanished from disk is forgotten. */
  get(name: string): Uint8Array | null {
    const size = this.entries.get(name);
    if (size === undefined) return null;
    let data: Buffer;
    try {
      data = readFileSync(this.pathOf(name));
    } catch {
      this.forget(name);
      return null;
    }
    this.entries.delete(name);
    this.entries.set(name, size);
    return data;
  }

  /**
   * Room for a chunk about to be written (by writeChunk, on any thread), counted against the bound
   * from now on; null when it is cached or being written already. Each reserve is followed by one
   * settle.
   */
  reserve(name: string, bytes: number): ChunkTarget | null {
    if (this.entries.has(name) || this.writing.has(name)) return null;
    this.writing.add(name);
    this.total += bytes;
    this.evict();
    const path = this.pathOf(name);
    return { path, tmp: `${path}.${process.pid}.${this.tmpSeq++}.tmp` };
  }

  /** Ends a reserve: the chunk is on disk with `written` bytes, or (null) it could not be written. */
  settle(name: string, reservedBytes: number, written: number | null): void {
    if (!this.writing.delete(name)) return;
    this.total -= reservedBytes;
    if (written !== null) {
      this.entries.set(name, written);
      this.total += written;
      this.evict();
    }
    if (this.writing.size === 0) for (const done of this.drained.splice(0)) done();
  }

  /** Stores a chunk on this thread, synchronously. */
  put(name: string, data: Uint8Array): void {
    const target = this.reserve(name, data.length);
    if (target) this.settle(name, data.length, writeChunk(target, data) ? data.length : null);
  }

  /** Waits for reserved chunks still being written (before the process exits). */
  flush(): Promise<void> {
    if (this.writing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }

  private forget(name: string): void {
    const size = this.entries.get(name);
    if (size === undefined) return;
    this.entries.delete(name);
    this.total -= size;
  }

  private evict(): void {
    for (const [name] of this.entries) {
      if (this.total <= this.maxBytes) break;
      this.forget(name);
      try {
        unlinkSync(this.pathOf(name));
      } catch {}
    }
  }
}
