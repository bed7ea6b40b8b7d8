// A small pool of decode workers (decode-worker.ts); each block goes to the least busy one.
import { StoreError, hex, type StoreErrorCode } from "../store/index.ts";
import type { BlockRow } from "./flist.ts";

interface Pending {
  resolve: (plain: Uint8Array) => void;
  reject: (err: Error) => void;
  worker: number;
}

type Answer = { seq: number; plain: Uint8Array } | { seq: number; error: { code: StoreErrorCode; message: string } };

export class DecodePool {
  private readonly workers: Worker[] = [];
  private readonly busy: number[] = [];
  private readonly pending = new Map<number, Pending>();
  private seq = 0;

  /**
   * Workers start with the first block to decode: a mount whose chunks are all in the disk cache (a
   * container's usual start) never decodes, and booting them would compete with its first requests.
   */
  constructor(private readonly size: number) {}

  private start(): void {
    for (let i = 0; i < this.size; i++) {
      const w = new Worker(new URL("./decode-worker.ts", import.meta.url).href);
      w.onmessage = (e: MessageEvent<Answer>) => this.answer(e.data);
      // Idle decoders must not keep a finished process alive.
      w.unref();
      this.workers.push(w);
      this.busy.push(0);
    }
  }

  private answer(a: Answer): void {
    const p = this.pending.get(a.seq);
    if (!p) return;
    this.pending.delete(a.seq);
    this.busy[p.worker]--;
    if ("plain" in a) p.resolve(a.plain);
    else p.reject(new StoreError(a.error.code, a.error.message));
  }

  /** decodeBlock on a worker; `data` is handed over (transferred), so the caller must not reuse it. */
  decode(ref: BlockRow, data: Uint8Array): Promise<Uint8Array> {
    if (!this.workers.length) this.start();
    let w = 0;
    for (let i = 1; i < this.workers.length; i++) if (this.busy[i] < this.busy[w]) w = i;
    const seq = this.seq++;
    this.busy[w]++;
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? data : data.slice();
    return new Promise<Uint8Array>((resolve, reject) => {
      this.pending.set(seq, { resolve, reject, worker: w });
      this.workers[w].postMessage({ seq, id: ref.id, key: ref.key, data: own }, [own.buffer as ArrayBuffer]);
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
