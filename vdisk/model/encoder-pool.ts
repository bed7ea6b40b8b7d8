// Block encoding (two hash passes, snappy, AES-GCM) is the CPU cost of a flush; a pool of
// workers runs it off the thread that serves NBD requests, on every core but one. Blocks go in
// batches: one message and one wake-up of each thread per batch rather than per block. The copies
// sent to a worker come back with its answer and are reused for the next batch: a fresh 64 KiB
// array per block is new pages from the kernel (page faults and zeroing) every time.
import { cpus } from "node:os";
import type { BlockHash, EncodedBlock } from "../../store/index.ts";

interface Pending {
  resolve: (b: EncodedBlock[]) => void;
  reject: (e: Error) => void;
}

/** Spare copy buffers kept for reuse, per size: enough for the batches a flush has in flight. */
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

  /** Encodes a copy of each of `plains` as they are now, in order; the caller may change them at once. */
  encodeMany(plains: Uint8Array[], hash: BlockHash): Promise<EncodedBlock[]> {
    const copies = plains.map((p) => {
      const spare = this.spares.get(p.length)?.pop();
      const copy = spare ? new Uint8Array(spare) : new Uint8Array(p.length);
      copy.set(p);
      return copy.buffer as ArrayBuffer;
    });
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) for (const w of this.workers) w.ref();
      this.pending.set(seq, { resolve, reject });
      this.worker().postMessage({ seq, plains: copies, hash }, copies);
    });
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
