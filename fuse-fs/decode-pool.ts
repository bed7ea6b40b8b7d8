// A small pool of decode workers (decode-worker.ts); each block goes to the least busy one.
// A block travels to its worker in a buffer lent from a free list and comes back with the answer:
// a fresh 512 KiB buffer per block costs more in first-touch page faults than copying into it.
import { StoreError, hex } from "../store/index.ts";
import type { ChunkTarget } from "./cache.ts";
import type { DecodeAnswer, DecodeRequest } from "./decode-worker.ts";
import type { BlockRow } from "./flist.ts";

interface Pending {
  resolve: (done: Decoded) => void;
  reject: (err: Error) => void;
  worker: number;
}

export interface Decoded {
  plain: Uint8Array;
  /** Whether the worker wrote it to the requested cache target. */
  cached: boolean;
}

/** Lent buffers are sized in these steps, so blocks of nearby sizes share them. */
const BUFFER_STEP = 64 * 1024;
/** Free buffers kept; more are dropped (a burst of reads needs them only while it lasts). */
const FREE_BUFFERS = 16;
/** Free buffers are let go once no block has been decoded for this long (PID 1 keeps no idle megabytes). */
const IDLE_RELEASE_MS = 2000;

export class DecodePool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private free: ArrayBuffer[] = [];
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private seq = 0;

  /**
   * Workers start with the first block to decode: a mount whose chunks are all in the disk cache (a
   * container's usual start) never decodes, and booting them would compete with its first requests.
   */
  constructor(private readonly size: number) {}

  /** Buffers kept for lending (they go after IDLE_RELEASE_MS without decoding). */
  get spareBuffers(): number {
    return this.free.length;
  }

  private start(): void {
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(new URL("./decode-worker.ts", import.meta.url).href);
      w.onmessage = (e: MessageEvent<DecodeAnswer>) => this.answer(e.data);
      // A worker that dies fails what it was decoding (the reads get EIO, cache reservations end)
      // rather than leaving them waiting forever.
      w.onerror = (e) => this.failWorker(i, new StoreError("unavailable", `decode worker failed: ${e.message}`));
      // Idle decoders must not keep a finished process alive.
      w.unref();
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  private answer(a: DecodeAnswer): void {
    if (this.free.length < FREE_BUFFERS) this.free.push(a.buffer);
    const p = this.pending.get(a.seq);
    if (!p) return;
    this.pending.delete(a.seq);
    this.busy[p.worker]--;
    if (this.pending.size === 0) {
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => (this.free = []), IDLE_RELEASE_MS);
      this.idleTimer.unref();
    }
    if ("plain" in a) p.resolve({ plain: a.plain, cached: a.cached });
    else p.reject(new StoreError(a.error.code, a.error.message));
  }

  private failWorker(worker: number, err: StoreError): void {
    for (const [seq, p] of this.pending) {
      if (p.worker !== worker) continue;
      this.pending.delete(seq);
      this.busy[worker]--;
      p.reject(err);
    }
  }

  /** A free buffer of at least `length` bytes. */
  private lend(length: number): ArrayBuffer {
    for (let i = this.free.length - 1; i >= 0; i--) {
      if (this.free[i].byteLength >= length) return this.free.splice(i, 1)[0];
    }
    return new ArrayBuffer(Math.ceil(Math.max(length, 1) / BUFFER_STEP) * BUFFER_STEP);
  }

  /**
   * decodeBlock on a worker, over the stored block given in pieces (copied into a lent buffer); with a
   * cache target, the worker also writes the plaintext there.
   */
  decode(ref: BlockRow, pieces: Uint8Array[], cache: ChunkTarget | null = null): Promise<Decoded> {
    if (!this.workers.length) this.start();
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.busy[i] < this.busy[w]) w = i;
    clearTimeout(this.idleTimer);
    const length = pieces.reduce((n, p) => n + p.length, 0);
    const buffer = this.lend(length);
    const bytes = new Uint8Array(buffer);
    let at = 0;
    for (const p of pieces) {
      bytes.set(p, at);
      at += p.length;
    }
    const seq = this.seq++;
    this.busy[w]++;
    const request: DecodeRequest = { seq, id: ref.id, key: ref.key, buffer, length, cache };
    return new Promise<Decoded>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, worker: w });
      this.workers[w].postMessage(request, [buffer]);
    }).catch((err: Error) => {
      throw err instanceof StoreError ? new StoreError(err.code, err.message, { id: hex(ref.id) }) : err;
    });
  }
}

let shared: DecodePool | null = null;

/** One pool for every mount in the process (PID 1 may hold many): its workers are unref'd and idle cheaply. */
export function sharedDecodePool(): DecodePool {
  return (shared ??= new DecodePool(2));
}
