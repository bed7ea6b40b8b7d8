// Fetching a file's blocks: memory, then the disk cache, then the store. Everything that reaches a
// reader was verified (id hash, GCM tag, length); concurrent readers of one block share one download,
// and a download that outlives its deadline fails (so a dead store gives EIO, never a hung read).
import { canGetPieces, decodeBlock, hex, StoreError, type BlockBackend } from "../store/index.ts";
import type { ChunkCache } from "./cache.ts";
import type { DecodePool } from "./decode-pool.ts";
import { BLOCK_SIZE, type BlockRow } from "./flist.ts";

export interface FetcherOptions {
  cache?: ChunkCache;
  /** Deadline of one block download, in ms. */
  timeoutMs?: number;
  /** Decoded blocks kept in memory (each up to 512 KiB). */
  memoryBlocks?: number;
  /** Decode on worker threads instead of inline. */
  decoders?: DecodePool;
}

export const DEFAULT_FETCH_TIMEOUT_MS = 30_000;
const MAX_PREFETCHES = 32;

export class BlockFetcher {
  private readonly memory = new Map<string, Uint8Array>();
  private readonly inFlight = new Map<string, Promise<Uint8Array>>();
  private readonly timeoutMs: number;
  private readonly memoryBlocks: number;

  private readonly store: Promise<BlockBackend>;

  /** `store` may still be opening: blocks in memory or the cache are served meanwhile. */
  constructor(
    store: BlockBackend | Promise<BlockBackend>,
    private readonly opts: FetcherOptions = {},
  ) {
    this.store = Promise.resolve(store);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_FETCH_TIMEOUT_MS;
    this.memoryBlocks = opts.memoryBlocks ?? 64;
  }

  private remember(name: string, data: Uint8Array): void {
    this.memory.delete(name);
    this.memory.set(name, data);
    if (this.memory.size > this.memoryBlocks) this.memory.delete(this.memory.keys().next().value!);
  }

  /** The block if it is already local (memory or disk cache), without waiting. */
  local(ref: BlockRow): Uint8Array | null {
    const name = hex(ref.id);
    const mem = this.memory.get(name);
    if (mem) {
      this.remember(name, mem);
      return mem;
    }
    const disk = this.opts.cache?.get(name) ?? null;
    if (disk) this.remember(name, disk);
    return disk;
  }

  /**
   * The verified plaintext of a block. `expectedLength` (when known from the file size) is checked too,
   * so a block that decodes but is the wrong size is rejected rather than served.
   */
  async get(ref: BlockRow, expectedLength?: number, signal?: AbortSignal): Promise<Uint8Array> {
    const data = this.local(ref) ?? (await this.download(ref, signal));
    if (expectedLength !== undefined && data.length !== expectedLength) {
      throw new StoreError("corrupt", `block holds ${data.length} bytes where the flist needs ${expectedLength}`, { id: hex(ref.id) });
    }
    return data;
  }

  /** Starts fetching a block into the cache without anyone waiting for it (read-ahead). */
  prefetch(ref: BlockRow): void {
    const name = hex(ref.id);
    if (this.memory.has(name) || this.inFlight.has(name) || this.opts.cache?.has(name)) return;
    // Bounded: a reader far ahead of the store must not queue the whole file.
    if (this.inFlight.size >= MAX_PREFETCHES) return;
    this.shared(ref).catch(() => {});
  }

  private download(ref: BlockRow, signal?: AbortSignal): Promise<Uint8Array> {
    const p = this.shared(ref);
    if (!signal) return p;
    // One reader giving up (an interrupted read) must not cancel the download others wait on.
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(new StoreError("aborted", "read interrupted", { id: hex(ref.id) }));
      if (signal.aborted) return onAbort();
      signal.addEventListener("abort", onAbort, { once: true });
      p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  private shared(ref: BlockRow): Promise<Uint8Array> {
    const name = hex(ref.id);
    let p = this.inFlight.get(name);
    if (!p) {
      p = this.fetchOnce(ref, name).finally(() => this.inFlight.delete(name));
      this.inFlight.set(name, p);
    }
    return p;
  }

  private async fetchOnce(ref: BlockRow, name: string): Promise<Uint8Array> {
    const store = await this.store;
    const ctl = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        ctl.abort();
        reject(new StoreError("timeout", `block download took longer than ${this.timeoutMs} ms`, { backend: store.url, id: name }));
      }, this.timeoutMs);
    });
    try {
      const opts = { signal: ctl.signal, timeoutMs: this.timeoutMs };
      // An erasure set hands over its data shards as they came: the decode pool copies them into a
      // buffer of its own anyway, so joining them first would be a copy (and a fresh buffer) for nothing.
      const fetching = canGetPieces(store) ? store.getPieces(ref.id, opts) : store.get(ref.id, opts).then((b) => b && [b]);
      const stored = await Promise.race([fetching, deadline]);
      if (stored === null) throw new StoreError("unavailable", "no store route holds this block", { backend: store.url, id: name });
      const plain = this.opts.decoders ? await this.decodeAndCache(ref, name, stored) : this.decodeInline(ref, name, stored);
      this.remember(name, plain);
      return plain;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Decodes on a worker, which also writes the block to the disk cache (no copy, no hand-off back). */
  private async decodeAndCache(ref: BlockRow, name: string, stored: Uint8Array[]): Promise<Uint8Array> {
    const cache = this.opts.cache;
    const target = cache?.reserve(name, BLOCK_SIZE) ?? null;
    try {
      // Other downloads still running (read-ahead) will bring blocks to batch this one with.
      const { plain, cached } = await this.opts.decoders!.decode(ref, stored, target, this.inFlight.size > 1);
      cache?.settle(name, BLOCK_SIZE, cached ? plain.length : null);
      return plain;
    } catch (err) {
      cache?.settle(name, BLOCK_SIZE, null);
      throw err;
    }
  }

  private decodeInline(ref: BlockRow, name: string, stored: Uint8Array[]): Uint8Array {
    const plain = decodeBlock(ref, stored.length === 1 ? stored[0] : Buffer.concat(stored));
    this.opts.cache?.put(name, plain);
    return plain;
  }
}
