// A vdisk served as an NBD export: blocks of the store under a BlockMap, with a bounded local
// write-back cache in front.
//
// Durability: a write is applied to the cache and acknowledged; FLUSH (and FUA) encode every
// dirty block into the store, commit the changed map pages and root, and replace the catalog
// record, in that order, before replying. Unflushed writes are lost if the process dies; a
// background write-back (every writebackIntervalMs, 30 s by default like the kernel's dirty expiry,
// and whenever dirty bytes pass half the cache) bounds that window, and writers wait when dirty
// bytes reach 3/4 of the cache, until write-back brings them back under it.
//
// Whole-block zeroes and trims are map edits (the block becomes a hole, nothing is stored);
// all-zero blocks found at flush become holes too. Identical blocks get the same id, so they are
// stored once (dedup).
import { getBlock, putMany, type BlockBackend, type BlockRef, type EncodedBlock, type StoreError } from "../../store/index.ts";
import type { BlockExport, BlockSizes, Extent, ZeroOptions } from "../nbd/export.ts";
import { NbdError } from "../nbd/errors.ts";
import { Payload } from "../nbd/payload.ts";
import { EIO, ENOTSUP } from "../nbd/protocol.ts";
import { isAllZero, segments } from "../segments.ts";
import { BlockMap } from "./block-map.ts";
import type { Catalog } from "./catalog.ts";
import { decodeRecord, encodeRecord, recordKey, type VdiskRecord } from "./record.ts";
import { VdiskError } from "./errors.ts";
import { BoundedRun, type ReadWriteLock } from "./concurrency.ts";

/** Block encoding off the serving thread (EncoderPool). */
export interface BlockEncoder {
  /** Encodes copies of `plains`, taken at the call. */
  encode(plains: Uint8Array[]): Promise<EncodedBlock[]>;
  /** Takes back the buffers of encoded blocks that are stored, for reuse. */
  recycle(blocks: EncodedBlock[]): void;
}

export interface VdiskOptions {
  /** Bytes of block data kept in memory; dirty data may reach 3/4 of it before writers wait. */
  cacheBytes: number;
  /** Background write-back period; 0 disables it. */
  writebackIntervalMs: number;
  /** Store puts running at once during a flush a client waits for; background write-back uses 1/8. */
  putConcurrency: number;
  log: (message: string) => void;
}

interface CacheEntry {
  data: Uint8Array;
  dirty: boolean;
  /** Bumped by every change, so a flush knows whether what it stored is still current. */
  version: number;
  /**
   * Its buffer may be read outside the cache later (views sent to a connection, an entry handed
   * to the waiters of a fetch), so it is never reused for another block.
   */
  shared?: boolean;
}

/** Evicted block buffers kept for new blocks; enough to cover a burst of 1 MiB writes. */
const MAX_SPARE_BLOCKS = 64;

/**
 * Dirty blocks encoded in one message to the encoder and put in one turn of the event loop. Per
 * block, a flush costs thread and process wake-ups (the encoder, each backend connection's server)
 * as much as bytes; a batch pays them once.
 */
const FLUSH_BATCH = 8;

/** Most blocks one BLOCK_STATUS answer describes; the protocol allows a shorter answer. */
const MAX_STATUS_BLOCKS = 65536;

export class Vdisk implements BlockExport {
  readonly multiConn = true; // one cache per process, shared by every connection
  readonly fastZero = true; // whole blocks are map edits; partial ones say ENOTSUP when they would need a fetch
  readonly blockSizes: BlockSizes;
  readonly description: string;
  private readonly bs: number;
  private readonly cacheMap = new Map<number, CacheEntry>(); // in LRU order, oldest first
  private readonly loading = new Map<number, Promise<CacheEntry | null>>();
  private cachedBytes = 0;
  private dirtyBytes = 0;
  /** Blocks the uncommitted map no longer references; recorded as garbage after the next commit. */
  private released: BlockRef[] = [];
  private running: Promise<void> | null = null;
  private queued: Promise<void> | null = null;
  /** Writers held at the high-water mark until write-back brings dirty data under it. */
  private throttled: ((then: Promise<void> | void) => void)[] = [];
  private timer: ReturnType<typeof setInterval> | null = null;
  private closed = false;

  constructor(
    private record: VdiskRecord,
    private readonly map: BlockMap,
    private readonly store: BlockBackend,
    private readonly catalog: Catalog,
    private readonly reclaimLock: ReadWriteLock,
    private readonly recordGarbage: (refs: BlockRef[]) => Promise<void>,
    /** Encodes copies of blocks (store/chunk.ts), taken at the call, off the serving thread. */
    private readonly encoder: BlockEncoder,
    private readonly opts: VdiskOptions,
    readonly readOnly: boolean,
  ) {
    this.bs = record.blockSize;
    // 512: the sector every client uses; the block size is what avoids read-modify-write.
    this.blockSizes = { minimum: 512, preferred: Math.min(record.blockSize, 64 * 1024), maximum: 32 * 1024 * 1024 };
    this.description = record.kind === "snapshot" ? `vdisk snapshot ${record.name}` : `vdisk ${record.name}`;
    if (!readOnly && opts.writebackIntervalMs > 0) {
      this.timer = setInterval(() => {
        if (this.dirtyBytes > 0 || this.map.dirty) this.writeBack(false);
      }, opts.writebackIntervalMs);
      this.timer.unref?.();
    }
  }

  get name(): string {
    return this.record.name;
  }

  get info(): Readonly<VdiskRecord> {
    return this.record;
  }

  size(): number {
    return this.record.size;
  }

  /** Blocks written but not yet stored: what is lost if the process ends now. */
  get dirtyBlocks(): number {
    return this.dirtyBytes / this.bs;
  }

  readCached(into: Uint8Array, offset: number): boolean {
    // Two passes, no allocation: a 4 KiB read is one block, and this is every cached read's path.
    const bs = this.bs;
    const end = offset + into.length;
    for (let b = Math.floor(offset / bs); b * bs < end; b++) if (!this.cacheMap.has(b) && !this.map.isHole(b)) return false;
    for (let pos = offset; pos < end; ) {
      const block = Math.floor(pos / bs);
      const within = pos - block * bs;
      const n = Math.min(bs - within, end - pos);
      const e = this.cacheMap.get(block);
      if (e) {
        into.set(e.data.subarray(within, within + n), pos - offset);
        this.touch(block, e);
      } else into.fill(0, pos - offset, pos - offset + n);
      pos += n;
    }
    return true;
  }

  cachedViews(offset: number, length: number): Uint8Array[] | null {
    const segs = segments(offset, length, this.bs);
    const views: Uint8Array[] = [];
    for (const s of segs) {
      const e = this.cacheMap.get(s.block);
      if (e) {
        views.push(e.data.subarray(s.within, s.within + s.length));
        e.shared = true;
        this.touch(s.block, e);
      } else if (this.map.isHole(s.block)) views.push(this.zeroBlock.subarray(0, s.length));
      else return null;
    }
    return views;
  }

  /** Read-only by convention: what holes read as, shared by every view of a hole. */
  private get zeroBlock(): Uint8Array {
    return (this.zeroes ??= new Uint8Array(this.bs));
  }

  private zeroes: Uint8Array | null = null;

  read(into: Uint8Array, offset: number): void | Promise<void> {
    if (this.readCached(into, offset)) return;
    let waits: Promise<void>[] | null = null;
    for (const s of segments(offset, into.length, this.bs)) {
      const e = this.cacheMap.get(s.block);
      if (e) {
        into.set(e.data.subarray(s.within, s.within + s.length), s.at);
        this.touch(s.block, e);
      } else if (this.map.isHole(s.block)) into.fill(0, s.at, s.at + s.length);
      else
        (waits ??= []).push(
          this.load(s.block).then((loaded) => {
            if (loaded) into.set(loaded.data.subarray(s.within, s.within + s.length), s.at);
            else into.fill(0, s.at, s.at + s.length); // zeroed while it was being fetched
          }),
        );
    }
    if (waits) return Promise.all(waits).then(() => {});
  }

  write(data: Payload, offset: number, fua: boolean): void | Promise<void> {
    let waits: Promise<void>[] | null = null;
    for (const s of segments(offset, data.length, this.bs)) {
      const r = this.writeSegment(s.block, s.within, data, s.at, s.length);
      if (r) (waits ??= []).push(r);
    }
    return this.afterWrite(waits, fua);
  }

  /**
   * Background write-back. The periodic one is throttled so it leaves the CPU to client requests;
   * one started because dirty data passed half the cache runs at full concurrency, and is started
   * again as soon as it ends while dirty data stays above half, so the store is kept busy while
   * clients keep writing and they rarely reach the 3/4 mark where they wait.
   */
  private writeBack(pressure: boolean): void {
    if (pressure) this.puts?.raise(this.batchesAtOnce(true));
    if (this.running || this.queued) return;
    this.startFlush(pressure).catch((err) => this.opts.log(`vdisk ${this.name}: background write-back: ${(err as Error).message}`));
  }

  /** Makes every completed write durable; a background write-back in progress is sped up. */
  flush(): Promise<void> {
    this.puts?.raise(this.batchesAtOnce(true));
    if (this.queued) return this.queued;
    if (this.running) {
      const q = this.running.then(
        () => {},
        () => {},
      ).then(() => {
        this.queued = null;
        return this.startFlush();
      });
      this.queued = q;
      return q;
    }
    return this.startFlush();
  }

  trim(offset: number, length: number, fua: boolean): void | Promise<void> {
    return this.zero(offset, length, { fua, fast: false });
  }

  zero(offset: number, length: number, opts: ZeroOptions): void | Promise<void> {
    const segs = segments(offset, length, this.bs);
    if (opts.fast) {
      const slow = segs.some((s) => s.length < this.bs && !this.cacheMap.has(s.block) && !this.map.isHole(s.block));
      if (slow) throw new NbdError(ENOTSUP, "zeroing part of a block that is not cached needs a fetch", { export: this.name, offset, length });
    }
    let waits: Promise<void>[] | null = null;
    let zeroes: Payload | null = null;
    for (const s of segs) {
      if (s.length === this.bs) {
        this.dropEntry(s.block);
        const old = this.map.set(s.block, null);
        if (old) this.released.push(old);
        continue;
      }
      if (!this.cacheMap.has(s.block) && this.map.isHole(s.block)) continue;
      zeroes ??= Payload.of(this.zeroBlock);
      const r = this.writeSegment(s.block, s.within, zeroes, 0, s.length);
      if (r) (waits ??= []).push(r);
    }
    return this.afterWrite(waits, opts.fua);
  }

  cache(offset: number, length: number): void | Promise<void> {
    const loads: Promise<unknown>[] = [];
    let budget = this.opts.cacheBytes / 2 - this.dirtyBytes;
    for (const s of segments(offset, length, this.bs)) {
      if (budget <= 0) break;
      if (this.cacheMap.has(s.block) || this.map.isHole(s.block)) continue;
      loads.push(this.load(s.block));
      budget -= this.bs;
    }
    if (loads.length) return Promise.all(loads).then(() => {});
  }

  extents(offset: number, length: number): Extent[] {
    const limit = MAX_STATUS_BLOCKS * this.bs - (offset % this.bs);
    return segments(offset, Math.min(length, limit), this.bs).map((s) => {
      const hole = !this.cacheMap.has(s.block) && this.map.isHole(s.block);
      return { length: s.length, hole, zero: hole };
    });
  }

  /** Changes the size; the caller (the manager) has checked it. Flushes, so the new size is durable. */
  async resize(size: number): Promise<void> {
    const blocks = Math.ceil(size / this.bs);
    const tail = size % this.bs;
    if (size < this.record.size && tail !== 0) await this.zero(size, this.bs - tail, { fua: false, fast: false });
    for (const b of [...this.cacheMap.keys()]) if (b >= blocks) this.dropEntry(b);
    this.released.push(...this.map.resize(blocks));
    this.record = { ...this.record, size };
    this.sizeChanged = true;
    await this.flush();
  }

  private sizeChanged = false;

  /** Every block the in-memory map references, including uncommitted edits and garbage not yet recorded. */
  *references(): Generator<BlockRef> {
    yield* this.map.references();
    yield* this.released;
  }

  /** Flushes and stops the background write-back. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    if (!this.readOnly) await this.flush();
  }

  // ---- cache ----

  private touch(block: number, e: CacheEntry): void {
    this.cacheMap.delete(block);
    this.cacheMap.set(block, e);
  }

  private insert(block: number, e: CacheEntry): void {
    this.cacheMap.set(block, e);
    this.cachedBytes += this.bs;
    if (e.dirty) this.dirtyBytes += this.bs;
    if (this.cachedBytes > this.opts.cacheBytes) this.evict();
  }

  private dropEntry(block: number): void {
    const e = this.cacheMap.get(block);
    if (!e) return;
    this.cacheMap.delete(block);
    this.cachedBytes -= this.bs;
    if (e.dirty) this.dirtyBytes -= this.bs;
    this.releaseThrottled();
  }

  /**
   * Blocks fetched for a write that has not landed yet, with the number of such writes. They are
   * not evicted: with many small writes to uncached blocks and a cache full of dirty data, each
   * fetched block would otherwise be evicted by the next fetch before its write lands, again and
   * again (a livelock seen with 128 fio writers through a 4 MiB cache of 128 KiB blocks).
   */
  private readonly fetchingForWrite = new Map<number, number>();

  /** Drops clean blocks, oldest first, until the cache fits; dirty blocks wait for a flush. */
  private evict(): void {
    for (const [block, e] of this.cacheMap) {
      if (this.cachedBytes <= this.opts.cacheBytes) return;
      if (!e.dirty && !this.fetchingForWrite.has(block)) {
        this.cacheMap.delete(block);
        this.cachedBytes -= this.bs;
        if (!e.shared && e.data.length === this.bs && this.spareBlocks.length < MAX_SPARE_BLOCKS) this.spareBlocks.push(e.data);
      }
    }
  }

  /**
   * Buffers of evicted blocks, reused for new ones: a fresh 64 KiB array is new pages from the
   * kernel (faults, zeroing, unmapping when collected), which cost more than the copy into it
   * when a stream of writes replaces the cache's contents. Nothing else holds them: flushes
   * encode copies, reads copy out synchronously, and shared buffers are not kept.
   */
  private readonly spareBlocks: Uint8Array[] = [];

  /** A block buffer whose contents are the caller's to overwrite entirely. */
  private blockBuffer(): Uint8Array {
    return this.spareBlocks.pop() ?? new Uint8Array(this.bs);
  }

  private markDirty(e: CacheEntry): void {
    e.version++;
    if (!e.dirty) {
      e.dirty = true;
      this.dirtyBytes += this.bs;
    }
  }

  /** Fetches a block into the cache; null when it became a hole meanwhile. */
  private load(block: number): Promise<CacheEntry | null> {
    const pending = this.loading.get(block);
    if (pending) return pending;
    const ref = this.map.get(block);
    if (!ref) return Promise.resolve(this.cacheMap.get(block) ?? null);
    const p = getBlock(this.store, ref, undefined, this.record.blockHash)
      .then((plain) => {
        if (!plain) throw new NbdError(EIO, `block ${block} (${Buffer.from(ref.id).toString("hex")}) is missing from the store`, { export: this.name });
        if (plain.length !== this.bs) throw new NbdError(EIO, `block ${block} has ${plain.length} bytes, not ${this.bs}`, { export: this.name });
        const current = this.cacheMap.get(block);
        if (current) return current; // written while we fetched: that is newer
        const now = this.map.get(block);
        if (!now) return null; // zeroed while we fetched
        if (Buffer.compare(now.id, ref.id) !== 0) {
          // Rewritten, flushed and evicted while we fetched: fetch what the map names now.
          this.loading.delete(block);
          return this.load(block);
        }
        const e: CacheEntry = { data: plain, dirty: false, version: 0, shared: true };
        this.insert(block, e);
        return e;
      })
      .finally(() => {
        if (this.loading.get(block) === p) this.loading.delete(block);
      });
    this.loading.set(block, p);
    return p;
  }

  /** Applies `length` bytes of `src` from `at` inside one block; a promise only when the block must be fetched first. */
  private writeSegment(block: number, within: number, src: Payload, at: number, length: number): Promise<void> | null {
    const e = this.cacheMap.get(block);
    if (e) {
      src.copyTo(e.data, within, at, length);
      this.touch(block, e);
      this.markDirty(e);
    } else if (length === this.bs) {
      // Inserted dirty, so the eviction that insert() may run cannot drop it.
      const data = this.blockBuffer();
      src.copyTo(data, 0, at, length);
      this.insert(block, { data, dirty: true, version: 1 });
    } else if (this.map.isHole(block)) {
      const data = this.blockBuffer();
      data.fill(0);
      src.copyTo(data, within, at, length);
      this.insert(block, { data, dirty: true, version: 1 });
    } else {
      this.fetchingForWrite.set(block, (this.fetchingForWrite.get(block) ?? 0) + 1);
      return this.load(block)
        .then(() => this.writeSegment(block, within, src, at, length) ?? undefined)
        .finally(() => {
          const n = this.fetchingForWrite.get(block)! - 1;
          if (n > 0) this.fetchingForWrite.set(block, n);
          else this.fetchingForWrite.delete(block);
        });
    }
    return null;
  }

  private get highWater(): number {
    return (this.opts.cacheBytes * 3) / 4;
  }

  private get lowWater(): number {
    return this.opts.cacheBytes / 2;
  }

  private afterWrite(waits: Promise<void>[] | null, fua: boolean): void | Promise<void> {
    if (!waits && !fua && this.dirtyBytes <= this.lowWater) return;
    return (async () => {
      if (waits) await allLanded(waits);
      if (fua) await this.flush();
      else if (this.dirtyBytes > this.highWater) await this.underHighWater();
      else if (this.dirtyBytes > this.lowWater) this.writeBack(true);
    })();
  }

  /**
   * Holds a writer while dirty data is over the high-water mark, as the kernel's dirty throttling
   * does: it goes on as soon as write-back has stored enough, not after a whole flush, so the
   * store is kept streaming instead of draining the cache to empty while every writer waits (and
   * then idling while they refill it). After a failed write-back the held writers wait for one
   * flush that retries it, and fail with its error if that fails too: a dead store answers EIO,
   * a passing hiccup does not.
   */
  private underHighWater(): Promise<void> {
    this.writeBack(true);
    return new Promise((resolve) => this.throttled.push(resolve));
  }

  private releaseThrottled(failed = false): void {
    if (this.throttled.length === 0 || (!failed && this.dirtyBytes > this.highWater)) return;
    const held = this.throttled;
    this.throttled = [];
    const then = failed ? this.flush() : undefined;
    for (const release of held) release(then);
  }

  /** After a successful write-back or flush: go on while dirty data stays above half the cache. */
  private afterFlush(): void {
    if (this.dirtyBytes > this.lowWater) this.writeBack(true);
  }

  // ---- flush ----

  private startFlush(urgent = true): Promise<void> {
    const p = this.reclaimLock.read(() => this.doFlush(urgent)).finally(() => {
      if (this.running === p) this.running = null;
    });
    this.running = p;
    p.then(
      () => this.afterFlush(),
      // the flush's caller (or the write-back's log) reports it; held writers wait for a retry
      () => this.releaseThrottled(true),
    );
    return p;
  }

  /**
   * Refuses to commit over a record someone else committed since we read it (another server
   * serving the same vdisk, or a resize from another process): the last writer would silently
   * drop the other's data. The check and the write are not atomic; it catches a second writer,
   * it does not arbitrate a race between two commits in the same instant.
   */
  private async checkNotSuperseded(): Promise<void> {
    const key = recordKey(this.record.name);
    const bytes = await this.catalog.get(key);
    const current = bytes ? decodeRecord(bytes, key) : null;
    if (!current || current.generation !== this.record.generation) {
      throw new VdiskError("busy", `vdisk ${this.record.name} was ${current ? `committed elsewhere (generation ${current.generation}, ours ${this.record.generation})` : "deleted"} while served here; not overwriting it`);
    }
  }

  /** The puts of the flush in progress, so a FLUSH can raise their concurrency. */
  private puts: BoundedRun<[number, CacheEntry][]> | null = null;

  /** Blocks per batch of the flush in progress: fewer in a background write-back, which stays gentle. */
  private batchSize = FLUSH_BATCH;

  /** Batches in flight: putConcurrency blocks for a flush a client waits for, 1/8 of that in the background. */
  private batchesAtOnce(urgent: boolean): number {
    const blocks = urgent ? this.opts.putConcurrency : this.opts.putConcurrency >> 3;
    return Math.max(1, Math.ceil(blocks / this.batchSize));
  }

  private async doFlush(urgent: boolean): Promise<void> {
    if (this.readOnly) return;
    this.batchSize = urgent ? FLUSH_BATCH : Math.min(FLUSH_BATCH, Math.max(1, this.opts.putConcurrency >> 3));
    const batches: [number, CacheEntry][][] = [];
    for (const [block, e] of this.cacheMap) {
      if (!e.dirty) continue;
      if (batches.length === 0 || batches[batches.length - 1].length === this.batchSize) batches.push([]);
      batches[batches.length - 1].push([block, e]);
    }
    const released: BlockRef[] = [];
    this.puts = new BoundedRun(batches, this.batchesAtOnce(urgent), async (batch) => {
      // The encoder copies the blocks as of `versions`; later writes bump the version.
      const versions = batch.map(([, e]) => e.version);
      const refs: (BlockRef | null | undefined)[] = batch.map(() => null);
      const stored: number[] = [];
      const plains: Uint8Array[] = [];
      batch.forEach(([, e], i) => {
        if (isAllZero(e.data)) return;
        stored.push(i);
        plains.push(e.data);
      });
      let failure: StoreError | null = null;
      if (plains.length > 0) {
        const encoded = await this.encoder.encode(plains);
        // One putMany per batch: every shard of the batch is queued in the same turn, so each
        // backend connection sends them in one write and its server takes them in one read.
        const results = await putMany(this.store, encoded, { concurrency: encoded.length });
        // A block that was not stored may still be read by a write cut off by the deadline.
        this.encoder.recycle(encoded.filter((_, j) => results[j] === null));
        results.forEach((err, j) => {
          if (err) {
            failure ??= err;
            refs[stored[j]] = undefined;
          } else refs[stored[j]] = { id: encoded[j].id, key: encoded[j].key };
        });
      }
      batch.forEach(([block, e], i) => {
        const ref = refs[i];
        if (ref === undefined) return; // not stored: stays dirty for the next flush
        if (this.cacheMap.get(block) !== e) return; // zeroed meanwhile: the map already says hole
        const old = this.map.set(block, ref);
        if (old) released.push(old);
        if (e.version === versions[i]) {
          e.dirty = false;
          this.dirtyBytes -= this.bs;
        }
      });
      if (failure) throw failure;
      this.releaseThrottled();
    });
    await this.puts.done.finally(() => {
      this.puts = null;
      this.released.push(...released);
    });
    const commit = await this.map.commit(this.store);
    this.released.push(...commit.released);
    const rootChanged = !sameRef(commit.root, this.record.root);
    if (rootChanged || this.sizeChanged) {
      await this.checkNotSuperseded();
      const next: VdiskRecord = { ...this.record, root: commit.root, generation: this.record.generation + 1 };
      await this.catalog.put(recordKey(this.record.name), encodeRecord(next));
      this.record = next;
      this.sizeChanged = false;
    }
    if (this.released.length) {
      const garbage = this.released;
      this.released = [];
      await this.recordGarbage(garbage).catch((err) => {
        this.released.push(...garbage);
        throw err;
      });
    }
    if (this.cachedBytes > this.opts.cacheBytes) this.evict();
  }
}

/**
 * Waits for every segment of a write, then fails with the first failure. Promise.all would fail
 * as soon as one block's fetch fails, while the other segments still wait for theirs and copy
 * from the payload afterwards: by then the connection has answered the request and the payload is
 * no longer promised to be valid, and a later write the client made to those blocks after the
 * error would be overwritten by this one's stale bytes.
 */
async function allLanded(pending: Promise<void>[]): Promise<void> {
  for (const r of await Promise.allSettled(pending)) if (r.status === "rejected") throw r.reason;
}

function sameRef(a: BlockRef | null, b: BlockRef | null): boolean {
  if (!a || !b) return a === b;
  return Buffer.compare(a.id, b.id) === 0;
}
