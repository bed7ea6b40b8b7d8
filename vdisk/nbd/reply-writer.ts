// Batches replies into few socket writes. Small replies are built in place in one batch buffer
// (reserve(): a cached 4 KiB read is copied once, from the cache into the batch, and costs no
// allocation); large ones are queued as their own buffers (send()). Everything queued in one turn
// of the event loop is written at the end of the turn. When the kernel socket buffer is full the
// rest waits for the drain callback, and `pendingBytes` lets the connection stop reading requests
// until the client catches up.

export interface WritableSocket {
  write(data: Uint8Array): number;
}

const BATCH_BYTES = 512 * 1024;
/** Replies up to this size are built in (or copied into) the batch; larger ones are sent as they are. */
export const MAX_BATCHED = 128 * 1024 + 64;

export class ReplyWriter {
  /** Buffers ready to write, in order; the batch's filled region joins them at each flush. */
  private parts: Uint8Array[] = [];
  /** Completion callbacks by part; a partly written part keeps its callback under the remainder. */
  private done = new Map<Uint8Array, () => void>();
  private batch: Uint8Array | null = null;
  private batchStart = 0; // first byte of the batch not yet moved to parts
  private batchEnd = 0; // first free byte of the batch
  pendingBytes = 0;
  private scheduled = false;
  private blocked = false;
  private dead = false;

  constructor(
    private readonly socket: WritableSocket,
    private readonly onProgress: () => void,
  ) {}

  /**
   * Room for an n-byte reply in the batch, to be filled before control returns to the event loop
   * (it is written at the end of the turn); null when n is too large for the batch.
   */
  reserve(n: number): Uint8Array | null {
    if (n > MAX_BATCHED) return null;
    if (this.dead) return new Uint8Array(n); // filled and dropped, as send() drops
    if (!this.batch || this.batchEnd + n > this.batch.length) {
      this.seal();
      // The old batch may still be waiting in parts (socket full): never overwrite it.
      this.batch = new Uint8Array(BATCH_BYTES);
      this.batchStart = this.batchEnd = 0;
    }
    const out = this.batch.subarray(this.batchEnd, this.batchEnd + n);
    this.batchEnd += n;
    this.pendingBytes += n;
    this.schedule();
    return out;
  }

  /** Takes back the latest reserve(), which was not filled after all. */
  unreserve(buf: Uint8Array): void {
    if (this.dead || buf.buffer !== this.batch?.buffer || buf.byteOffset + buf.length !== this.batchEnd) return;
    this.batchEnd -= buf.length;
    this.pendingBytes -= buf.length;
  }

  /** Queues buf; `done` runs once the socket has taken all of it (not when the connection dies). */
  send(buf: Uint8Array, done?: () => void): void {
    if (this.dead) return;
    if (!done && buf.length <= MAX_BATCHED) {
      this.reserve(buf.length)!.set(buf);
      return;
    }
    this.seal(); // replies reserved before this one stay ahead of it
    if (done) this.done.set(buf, done);
    this.parts.push(buf);
    this.pendingBytes += buf.length;
    this.schedule();
  }

  /** Queues views to go out as they are, right after everything queued so far (no copy, no callback). */
  sendViews(views: Uint8Array[]): void {
    if (this.dead) return;
    this.seal();
    for (const v of views) {
      this.parts.push(v);
      this.pendingBytes += v.length;
    }
    this.schedule();
  }

  /** Called from the socket's drain callback. */
  drained(): void {
    this.blocked = false;
    this.flush();
  }

  /** Drops everything queued: the socket is gone. */
  kill(): void {
    this.dead = true;
    this.parts = [];
    this.done.clear();
    this.batch = null;
    this.pendingBytes = 0;
  }

  get idle(): boolean {
    return this.parts.length === 0 && this.batchEnd === this.batchStart;
  }

  private schedule(): void {
    if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }

  /** Moves the batch's filled region to the end of parts. */
  private seal(): void {
    if (!this.batch || this.batchEnd === this.batchStart) return;
    this.parts.push(this.batch.subarray(this.batchStart, this.batchEnd));
    this.batchStart = this.batchEnd;
  }

  private flush(): void {
    this.scheduled = false;
    this.seal();
    while (!this.blocked && !this.dead && this.parts.length > 0) {
      const buf = this.parts[0];
      const n = this.socket.write(buf);
      const written = n > 0 ? n : 0;
      this.pendingBytes -= written;
      const done = this.done.get(buf);
      if (done) this.done.delete(buf);
      if (written < buf.length) {
        const rest = buf.subarray(written);
        if (done) this.done.set(rest, done);
        this.parts[0] = rest;
        this.blocked = true;
      } else {
        this.parts.shift();
        done?.();
      }
    }
    // Everything the batch held is in the kernel now: it can be filled again from the start.
    if (this.parts.length === 0) this.batchStart = this.batchEnd = 0;
    this.onProgress();
  }
}
