// Block encoding (two BLAKE2b passes, snappy, AES-GCM) is the CPU cost of a flush; a pool of
// workers runs it off the thread that serves NBD requests, on every core but one. Blocks go in
// batches: one message and one wake-up of each thread per batch rather than per block.
import { cpus } from "node:os";
import type { EncodedBlock } from "../../store/index.ts";

interface Pending {
  resolve: (b: EncodedBlock[]) => void;
  reject: (e: Error) => void;
}

export class EncoderPool {
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private next = 0;

  constructor(readonly size = Math.max(1, Math.min(8, cpus().length - 1))) {}

  private worker(): Worker {
    if (this.workers.length < this.size) {
      const w = new Worker(new URL("./encode-worker.ts", import.meta.url).href);
      w.unref();
      w.onmessage = (e: MessageEvent<{ seq: number; blocks?: EncodedBlock[]; error?: string }>) => {
        const p = this.pending.get(e.data.seq);
        if (!p) return;
        this.pending.delete(e.data.seq);
        if (e.data.error !== undefined) p.reject(new Error(`block encoding failed: ${e.data.error}`));
        else p.resolve(e.data.blocks!);
      };
      w.onerror = (e) => {
        // A dead worker fails everything in flight; callers retry on the next flush.
        for (const [seq, p] of this.pending) {
          this.pending.delete(seq);
          p.reject(new Error(`encoder worker failed: ${e.message}`));
        }
      };
      this.workers.push(w);
      return w;
    }
    return this.workers[this.next++ % this.workers.length];
  }

  /**
   * Encodes each of `plains`, in order. Their buffers are transferred to the worker (the caller
   * must not reuse them); a view that does not span its whole buffer is copied first.
   */
  encodeMany(plains: Uint8Array[]): Promise<EncodedBlock[]> {
    const buffers = plains.map((p) => (p.byteOffset === 0 && p.byteLength === p.buffer.byteLength ? p : new Uint8Array(p)).buffer as ArrayBuffer);
    const seq = ++this.seq;
    return new Promise((resolve, reject) => {
      this.pending.set(seq, { resolve, reject });
      this.worker().postMessage({ seq, plains: buffers }, buffers);
    });
  }

  close(): void {
    for (const w of this.workers.splice(0)) w.terminate();
  }
}
