// Block encoding (two hash passes, snappy, AES-GCM) is the CPU cost of a flush; a pool of
// workers runs it off the thread that serves NBD requests, on every core but one. Blocks go in
// batches: one message and one wake-up of each thread per batch rather than per block. The copies
// sent to a worker come back with its answer and are reused for the next batch, and so are the
// buffers the blocks are encoded into, once the caller has stored them (recycle): a fresh 64 KiB
// array per block is new pages from the kernel (page faults and zeroing) every time, and one made
// on the worker's thread and freed on this one goes back to the worker's heap only lazily.
import { cpus } from "node:os";
import { encodedCapacity, type BlockHash, type EncodedBlock } from "../../store/index.ts";

interface Pending {
  resolve: (b: EncodedBlock[]) => void;
  reject: (e: Error) => void;
}

/** Spare buffers (plaintext copies and encoding outputs) kept for reuse, per size: enough for the blocks a flush has in flight. */
const MAX_SPARES = 64;

export class EncoderPool {
  private readonly workers: Worker[] = [];
  private readonly spares = new Map<number, ArrayBuffer[]>();
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private next = 0;

  constructor(readonly size = Math.max(1, Math.min(8, cpus().length - 1))) {}

  private worker(): Worker {
    if (this.workers.length < this.size) {
      const w = new Worker(new URL("./encode-worker.ts", import.meta.url).href);
      if (this.pending.size === 0) w.unref();
      w.onmessage = (e: MessageEvent<{ seq: number; blocks?: EncodedBlock[]; plains: ArrayBuffer[]; error?: string }>) => {
        this.keepSpares(e.data.plains);
        const p = this.pending.get(e.data.seq);
        if (!p) return;
        this.forget(e.data.seq);
        if (e.data.error !== undefined) p.reject(new Error(`block encoding failed: ${e.data.error}`));
        else p.resolve(e.data.blocks!);
      };
      w.onerror = (e) => {
        // A dead worker fails everything in flight; callers retry on the next flush.
        for (const [seq, p] of this.pending) {
          this.forget(seq);
          p.reject(new Error(`encoder worker failed: ${e.message}`));
        }
      };
      this.workers.push(w);
      return w;
    }
    return this.workers[this.next++ % this.workers.length];
  }

  /**
   * Encodes a copy of each of `plains` as they are now, in order; the caller may change them at
   * once. Give the blocks back with recycle() once they are stored.
   */
  encodeMany(plains: Uint8Array[], hash: BlockHash): Promise<EncodedBlock[]> {
    const copies = plains.map((p) => {
      const copy = this.buffer(p.length);
      new Uint8Array(copy).set(p);
      return copy;
    });
    const outputs = plains.map((p) => this.buffer(encodedCapacity(p.length)));
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) for (const w of this.workers) w.ref();
      this.pending.set(seq, { resolve, reject });
      this.worker().postMessage({ seq, plains: copies, outputs, hash }, [...copies, ...outputs]);
    });
  }

  /**
   * Takes back the buffers of blocks encodeMany returned, for the next batches. Only for blocks
   * nothing refers to any more: stored, with no write still reading them.
   */
  recycle(blocks: EncodedBlock[]): void {
    this.keepSpares(blocks.map((b) => b.data.buffer as ArrayBuffer));
  }

  private buffer(size: number): ArrayBuffer {
    return this.spares.get(size)?.pop() ?? new ArrayBuffer(size);
  }

  /**
   * Idle workers are unref'd so they never keep the process alive, but one with work in flight
   * must: on shutdown with the store's connections gone, a flush waiting only for its encoding
   * otherwise lets the event loop run dry, and the process exits 0 with the dirty blocks unstored
   * and unreported.
   */
  private forget(seq: number): void {
    this.pending.delete(seq);
    if (this.pending.size === 0) for (const w of this.workers) w.unref();
  }

  private keepSpares(buffers: ArrayBuffer[]): void {
    for (const b of buffers) {
      let list = this.spares.get(b.byteLength);
      if (!list) this.spares.set(b.byteLength, (list = []));
      if (list.length < MAX_SPARES) list.push(b);
    }
  }

  close(): void {
    for (const w of this.workers.splice(0)) w.terminate();
  }
}
