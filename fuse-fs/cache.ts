// The chunk cache: verified plaintext blocks on disk, named by block id, bounded in bytes with
// least-recently-used eviction. Layout as rfs's cache: <dir>/<id[0:2]>/<id[2:4]>/<idhex>.
// Entries are written to a temporary name and renamed, so a crash never leaves a torn chunk under an
// id; the order of use survives a restart only approximately (by file mtime), which is all LRU needs.
import { mkdirSync, readFileSync, readdirSync, statSync, unlinkSync } from "node:fs";
import { mkdir, rename, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { FlistError } from "./errors.ts";

const hexName = /^[0-9a-f]{64}$/;

export class ChunkCache {
  /** id hex -> size; Map order is the use order, oldest first. */
  private readonly entries = new Map<string, number>();
  private total = 0;
  private tmpSeq = 0;
  private readonly writing = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();

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
    return join(this.dir, name.slice(0, 2), name.slice(2, 4), name);
  }

  private scan(): void {
    const found: { name: string; size: number; mtime: number }[] = [];
    for (const a of readdirSync(this.dir)) {
      if (!/^[0-9a-f]{2}$/.test(a)) continue;
      for (const b of readdirSync(join(this.dir, a))) {
        const sub = join(this.dir, a, b);
        for (const name of readdirSync(sub)) {
          const path = join(sub, name);
          if (!hexName.test(name)) {
            if (name.includes(".tmp")) unlinkSync(path); // left by a crash mid-write
            continue;
          }
          const st = statSync(path);
          found.push({ name, size: st.size, mtime: st.mtimeMs });
        }
      }
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
   * Stores a chunk without blocking the caller's thread; it is listed (and counted against the bound)
   * once it is on disk under its name. Never rejects.
   */
  put(name: string, data: Uint8Array): Promise<void> {
    if (this.entries.has(name) || this.writing.has(name)) return Promise.resolve();
    // Room is made before writing, so chunks in flight count against the bound too.
    this.total += data.length;
    this.evict();
    const p = this.write(name, data).finally(() => {
      this.writing.delete(name);
      this.inFlight.delete(p);
    });
    this.writing.add(name);
    this.inFlight.add(p);
    return p;
  }

  private async write(name: string, data: Uint8Array): Promise<void> {
    const path = this.pathOf(name);
    const tmp = `${path}.${process.pid}.${this.tmpSeq++}.tmp`;
    try {
      await mkdir(join(this.dir, name.slice(0, 2), name.slice(2, 4)), { recursive: true });
      await writeFile(tmp, data);
      await rename(tmp, path);
    } catch {
      // A full or broken cache disk costs speed, not correctness: the chunk is served from memory.
      await unlink(tmp).catch(() => {});
      this.total -= data.length;
      return;
    }
    this.entries.set(name, data.length);
    this.evict();
  }

  /** Waits for chunks still being written (before the process exits). */
  async flush(): Promise<void> {
    await Promise.all(this.inFlight);
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
