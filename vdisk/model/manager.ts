// The vdisk lifecycle over a store and a catalog: create, list, snapshot, clone, resize, delete,
// open for serving, and reclamation.
//
// Reclamation is mark-and-sweep: commits and deletes record the blocks they stopped referencing
// as garbage candidates; a sweep marks every block reachable from every vdisk and snapshot in the
// catalog and deletes only the candidates nobody marks. A block shared with a snapshot, a clone
// or another vdisk (dedup) is therefore never freed. Sweeps and flushes of this process exclude
// each other; see vdisk/README.md for running several writers against one catalog.
import { randomBytes } from "node:crypto";
import type { BlockBackend, BlockHash, BlockRef } from "../../store/index.ts";
import { BlockMap } from "./block-map.ts";
import type { Catalog } from "./catalog.ts";
import { VdiskError } from "./errors.ts";
import { checkName, decodeRecord, encodeRecord, NEW_VDISK_BLOCK_HASH, recordKey, toHex, type VdiskRecord } from "./record.ts";
import { ReadWriteLock } from "./concurrency.ts";
import { Vdisk, type BlockEncoder, type VdiskOptions } from "./vdisk.ts";
import { EncoderPool } from "./encoder-pool.ts";

// 64 KiB; 128 KiB was measured and rejected (vdisk/README.md, "Block size").
export const DEFAULT_BLOCK_SIZE = 64 * 1024;
const MAX_SIZE = 64 * 2 ** 40; // 64 TiB keeps the map root under the store's 64 MiB block limit

export interface VdiskManagerOptions extends Partial<VdiskOptions> {
  store: BlockBackend;
  catalog: Catalog;
}

export interface VdiskInfo extends VdiskRecord {
  /** Blocks with data (not holes). */
  allocatedBlocks: number;
}

export interface GcReport {
  candidates: number;
  deleted: number;
  kept: number;
}

function checkSize(size: number, blockSize: number): void {
  if (!Number.isSafeInteger(size) || size <= 0 || size % 512 !== 0 || size > MAX_SIZE) throw new VdiskError("bad-size", `size ${size} must be a positive multiple of 512 up to 64 TiB`);
  if (!Number.isSafeInteger(blockSize) || blockSize < 4096 || blockSize > 1024 * 1024 || (blockSize & (blockSize - 1)) !== 0) throw new VdiskError("bad-size", `block size ${blockSize} must be a power of two from 4 KiB to 1 MiB`);
}

export class VdiskManager {
  readonly store: BlockBackend;
  readonly catalog: Catalog;
  private readonly opts: VdiskOptions;
  private readonly open = new Map<string, Vdisk>();
  private readonly opening = new Map<string, Promise<Vdisk>>();
  private readonly reclaimLock = new ReadWriteLock();
  private readonly encoder = new EncoderPool();

  constructor(o: VdiskManagerOptions) {
    this.store = o.store;
    this.catalog = o.catalog;
    this.opts = {
      cacheBytes: o.cacheBytes ?? 256 * 1024 * 1024,
      writebackIntervalMs: o.writebackIntervalMs ?? 30_000,
      putConcurrency: o.putConcurrency ?? 32,
      log: o.log ?? ((m) => console.error(m)),
    };
  }

  async get(name: string): Promise<VdiskRecord | null> {
    checkName(name, true);
    const live = this.open.get(name);
    if (live) return live.info;
    const bytes = await this.catalog.get(recordKey(name));
    return bytes ? decodeRecord(bytes, recordKey(name)) : null;
  }

  private async must(name: string): Promise<VdiskRecord> {
    const r = await this.get(name);
    if (!r) throw new VdiskError("not-found", `no vdisk or snapshot named ${JSON.stringify(name)}`);
    return r;
  }

  private async putNew(record: VdiskRecord): Promise<void> {
    if (await this.catalog.get(recordKey(record.name))) throw new VdiskError("exists", `${JSON.stringify(record.name)} already exists`);
    await this.catalog.put(recordKey(record.name), encodeRecord(record));
  }

  async create(name: string, size: number, opts: { blockSize?: number } = {}): Promise<VdiskRecord> {
    checkName(name);
    const blockSize = opts.blockSize ?? DEFAULT_BLOCK_SIZE;
    checkSize(size, blockSize);
    const record: VdiskRecord = { kind: "vdisk", name, size, blockSize, blockHash: NEW_VDISK_BLOCK_HASH, root: null, origin: null, created: new Date().toISOString(), generation: 0 };
    await this.putNew(record);
    return record;
  }

  async list(): Promise<VdiskRecord[]> {
    const keys = await this.catalog.list("disk/");
    const out: VdiskRecord[] = [];
    for (const key of keys) {
      const name = key.slice("disk/".length);
      const r = await this.get(name);
      if (r) out.push(r);
    }
    return out;
  }

  async info(name: string): Promise<VdiskInfo> {
    const r = await this.must(name);
    const map = await BlockMap.load(this.store, r);
    let allocated = 0;
    for (let b = 0; b < map.blockCount; b++) if (!map.isHole(b)) allocated++;
    return { ...r, allocatedBlocks: allocated };
  }

  /** Opens a vdisk (writable) or snapshot (read-only) for serving; one instance per name per process. */
  openVdisk(name: string, opts: { readOnly?: boolean } = {}): Promise<Vdisk> {
    const existing = this.open.get(name);
    if (existing) return Promise.resolve(existing);
    // Two clients asking at once must share one instance (one cache per vdisk).
    let pending = this.opening.get(name);
    if (!pending) {
      pending = this.load(name, opts).finally(() => this.opening.delete(name));
      this.opening.set(name, pending);
    }
    return pending;
  }

  private async load(name: string, opts: { readOnly?: boolean }): Promise<Vdisk> {
    const r = await this.must(name);
    const map = await BlockMap.load(this.store, r);
    const readOnly = r.kind === "snapshot" || (opts.readOnly ?? false);
    const v = new Vdisk(r, map, this.store, this.catalog, this.reclaimLock, (refs) => this.recordGarbage(refs), this.blockEncoder(r.blockHash), this.opts, readOnly);
    this.open.set(name, v);
    return v;
  }

  /** The shared encoder, with the hash a vdisk's blocks are made with. */
  private blockEncoder(hash: BlockHash): BlockEncoder {
    return { encode: (plains) => this.encoder.encodeMany(plains, hash), recycle: (blocks) => this.encoder.recycle(blocks) };
  }

  /** The vdisks open (being served) now. */
  openVdisks(): Vdisk[] {
    return [...this.open.values()];
  }

  /** Flushes and forgets an open vdisk; it is forgotten even when the final flush fails. */
  async closeVdisk(name: string): Promise<void> {
    const v = this.open.get(name);
    if (!v) return;
    try {
      await v.close();
    } finally {
      this.open.delete(name);
    }
  }

  /** An immutable copy of the vdisk's map as of now (an open vdisk is flushed first). */
  async snapshot(name: string, snap: string): Promise<VdiskRecord> {
    checkName(name);
    checkName(snap);
    await this.open.get(name)?.flush();
    const r = await this.must(name);
    if (r.kind !== "vdisk") throw new VdiskError("bad-name", `${name} is not a vdisk`);
    const record: VdiskRecord = { ...r, kind: "snapshot", name: `${name}@${snap}`, origin: name, created: new Date().toISOString(), generation: 0 };
    await this.putNew(record);
    return record;
  }

  /** A new writable vdisk sharing every block of the snapshot until it is written (copy-on-write). */
  async clone(snapshot: string, name: string): Promise<VdiskRecord> {
    checkName(snapshot, true);
    checkName(name);
    const s = await this.must(snapshot);
    if (s.kind !== "snapshot") throw new VdiskError("bad-name", `${snapshot} is not a snapshot (clone from disk@snap)`);
    const record: VdiskRecord = { ...s, kind: "vdisk", name, origin: snapshot, created: new Date().toISOString(), generation: 0 };
    await this.putNew(record);
    return record;
  }

  async resize(name: string, size: number): Promise<VdiskRecord> {
    const r = await this.must(name);
    if (r.kind !== "vdisk") throw new VdiskError("bad-name", `${name} is a snapshot; snapshots are immutable`);
    checkSize(size, r.blockSize);
    const live = this.open.get(name);
    if (live) {
      await live.resize(size);
      return live.info;
    }
    // Not served here: open it privately, resize (which commits), and close it.
    const v = await this.openVdisk(name);
    try {
      await v.resize(size);
      return v.info;
    } finally {
      await this.closeVdisk(name);
    }
  }

  /** Removes a vdisk or snapshot and frees its blocks that nothing else references. */
  async delete(name: string): Promise<GcReport> {
    if (this.open.has(name)) throw new VdiskError("busy", `${name} is being served; stop serving it first`);
    const r = await this.must(name);
    const map = await BlockMap.load(this.store, r);
    await this.recordGarbage([...map.references()]);
    await this.catalog.delete(recordKey(name));
    return this.gc();
  }

  async recordGarbage(refs: BlockRef[]): Promise<void> {
    if (refs.length === 0) return;
    const ids = [...new Set(refs.map((r) => toHex(r.id)))];
    const key = `garbage/${Date.now().toString().padStart(15, "0")}-${randomBytes(4).toString("hex")}`;
    await this.catalog.put(key, new TextEncoder().encode(JSON.stringify({ ids }) + "\n"));
  }

  /** Deletes garbage candidates that no vdisk or snapshot in the catalog references. */
  async gc(): Promise<GcReport> {
    return this.reclaimLock.write(async () => {
      const garbageKeys = await this.catalog.list("garbage/");
      const candidates = new Set<string>();
      for (const key of garbageKeys) {
        const bytes = await this.catalog.get(key);
        if (!bytes) continue;
        try {
          for (const id of JSON.parse(new TextDecoder().decode(bytes)).ids as string[]) candidates.add(id);
        } catch (err) {
          throw new VdiskError("corrupt", `garbage list ${key} does not parse`, { cause: err });
        }
      }
      if (candidates.size === 0) return { candidates: 0, deleted: 0, kept: 0 };
      // Mark: open vdisks contribute their in-memory maps (which may be ahead of the catalog).
      const marked = new Set<string>();
      const markMap = (map: Iterable<BlockRef>) => {
        for (const ref of map) marked.add(toHex(ref.id));
      };
      for (const r of await this.list()) {
        markMap((await BlockMap.load(this.store, r)).references());
      }
      for (const v of this.open.values()) markMap(v.references());
      let deleted = 0;
      for (const id of candidates) {
        if (marked.has(id)) continue;
        await this.store.delete(new Uint8Array(Buffer.from(id, "hex")));
        deleted++;
      }
      for (const key of garbageKeys) await this.catalog.delete(key);
      return { candidates: candidates.size, deleted, kept: candidates.size - deleted };
    });
  }

  /**
   * Flushes and closes every open vdisk. A vdisk whose flush fails is closed anyway; the error
   * says, per vdisk, how many written blocks were never stored and so are lost.
   */
  async close(): Promise<void> {
    const failures: { name: string; dirty: number; blockSize: number; err: unknown }[] = [];
    // All at once: against a store that stopped answering, giving up costs one timeout, not one per vdisk.
    await Promise.all([...this.open].map(([name, v]) => this.closeVdisk(name).catch((err) => failures.push({ name, dirty: v.dirtyBlocks, blockSize: v.info.blockSize, err }))));
    this.encoder.close();
    if (failures.length === 0) return;
    const each = failures.map((f) => `vdisk ${f.name}: ${f.dirty} dirty blocks (${f.dirty * f.blockSize} bytes) not stored, lost (${(f.err as Error)?.message ?? f.err})`);
    throw new VdiskError("unflushed", `closing without a complete flush; each vdisk keeps its state as of its last successful flush: ${each.join("; ")}`, { cause: failures[0].err });
  }
}
