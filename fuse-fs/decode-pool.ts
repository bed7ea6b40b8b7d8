// A small pool of decode workers (decode-worker.ts). Each worker has one batch at a time: blocks
// that arrive while both are busy queue here and go together to the first worker to finish, whose
// id hashes then run several blocks at once (decodeBlocks); a block that finds a worker idle goes at
// once, alone. A block travels to its worker in a buffer lent from a free list and comes back with the
// answer: a fresh 512 KiB buffer per block costs more in first-touch page faults than copying into it.
import { StoreError, hex } from "../store/index.ts";
import type { ChunkTarget } from "./cache.ts";
import type { DecodeAnswer, DecodeRequest } from "./decode-worker.ts";
import type { BlockRow } from "./flist.ts";

interface Job {
  request: DecodeRequest;
  resolve: (done: Decoded) => void;
  reject: (err: Error) => void;
  /** The worker decoding it; -1 while queued. */
  worker: number;
}

export interface Decoded {
  plain: Uint8Array;
  /** Whether the worker wrote it to the requested cache target. */
  cached: boolean;
}

/** Blocks sent to a worker at once: the SIMD BLAKE2b hashes four per pass (AVX2 lanes). */
const BATCH = 4;
/** How long a block that may wait (more are on their way) waits for others to fill a batch. */
const BATCH_WAIT_MS = 3;
/** Lent buffers are sized in these steps, so blocks of nearby sizes share them. */
const BUFFER_STEP = 64 * 1024;
/** Free buffers kept; more are dropped (a burst of reads needs them only while it lasts). */
const FREE_BUFFERS = 16;
/** Free buffers are let go once no block has been decoded for this long (PID 1 keeps no idle megabytes). */
const IDLE_RELEASE_MS = 2000;

export class DecodePool {
  private readonly workers: Worker[] = [];
  /** Per worker: whether a batch is out on it. */
  private readonly working: boolean[] = [];
  private readonly queue: Job[] = [];
  /** Jobs sent to a worker, by seq. */
  private readonly sent = new Map<number, Job>();
  private free: ArrayBuffer[] = [];
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** Sends a partial batch that waited BATCH_WAIT_MS. */
  private batchTimer: ReturnType<typeof setTimeout> | undefined;
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

  private startWorker(i: number): void {
    const w = new Worker(new URL("./decode-worker.ts", import.meta.url).href);
    w.onmessage = (e: MessageEvent<DecodeAnswer[]>) => this.answer(i, e.data);
    // A worker that fails gives EIO for the blocks it had (their cache reservations end) and is
    // replaced, rather than leaving reads and the unmount-time cache flush waiting forever.
    w.onerror = (e) => this.replaceWorker(i, new StoreError("unavailable", `decode worker failed: ${e.message}`));
    // Idle decoders must not keep a finished process alive.
    w.unref();
    this.workers[i] = w;
    this.working[i] = false;
  }

  private answer(worker: number, answers: DecodeAnswer[]): void {
    this.working[worker] = false;
    for (const a of answers) {
      if (this.free.length < FREE_BUFFERS) this.free.push(a.buffer);
      const job = this.sent.get(a.seq);
      if (!job) continue;
      this.sent.delete(a.seq);
      if ("plain" in a) job.resolve({ plain: a.plain, cached: a.cached });
      else job.reject(new StoreError(a.error.code, a.error.message));
    }
    this.dispatch();
    if (this.sent.size === 0) {
      clearTimeout(this.idleTimer);
      this.idleTimer = setTimeout(() => (this.free = []), IDLE_RELEASE_MS);
      this.idleTimer.unref();
    }
  }

  private replaceWorker(worker: number, err: StoreError): void {
    for (const [seq, job] of this.sent) {
      if (job.worker !== worker) continue;
      this.sent.delete(seq);
      job.reject(err);
    }
    this.workers[worker].terminate();
    this.startWorker(worker);
    this.dispatch();
  }

  /** Sends what is queued to the idle workers, up to BATCH blocks each. */
  private dispatch(): void {
    clearTimeout(this.batchTimer);
    this.batchTimer = undefined;
    for (let w = 0; w < this.workers.length && this.queue.length > 0; w++) {
      if (this.working[w]) continue;
      const batch = this.queue.splice(0, BATCH);
      for (const job of batch) {
        job.worker = w;
        this.sent.set(job.request.seq, job);
      }
      this.working[w] = true;
      this.workers[w].postMessage(
        batch.map((j) => j.request),
        batch.map((j) => j.request.buffer),
      );
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
   * cache target, the worker also writes the plaintext there. `moreComing` says other blocks are being
   * fetched (read-ahead): this one may then wait up to BATCH_WAIT_MS for them to fill a batch, since a
   * batch's id checks cost less than half as much per block; a block alone goes at once.
   */
  decode(ref: BlockRow, pieces: Uint8Array[], cache: ChunkTarget | null = null, moreComing = false): Promise<Decoded> {
    if (!this.workers.length) for (let i = 0; i < this.size; i++) this.startWorker(i);
    clearTimeout(this.idleTimer);
    const length = pieces.reduce((n, p) => n + p.length, 0);
    const buffer = this.lend(length);
    const bytes = new Uint8Array(buffer);
    let at = 0;
    for (const p of pieces) {
      bytes.set(p, at);
      at += p.length;
    }
    const request: DecodeRequest = { seq: this.seq++, id: ref.id, key: ref.key, buffer, length, cache };
    return new Promise<Decoded>((resolve, reject) => {
      this.queue.push({ request, resolve, reject, worker: -1 });
      if (!moreComing || this.queue.length >= BATCH) this.dispatch();
      else this.batchTimer ??= setTimeout(() => this.dispatch(), BATCH_WAIT_MS);
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
