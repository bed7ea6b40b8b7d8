// Batches replies into few socket writes: everything queued in one turn of the event loop is
// written together at the end of the turn, small buffers coalesced into one. When the kernel
// socket buffer is full the rest waits for the drain callback, and `pendingBytes` lets the
// connection stop reading requests until the client catches up.

export interface WritableSocket {
  write(data: Uint8Array): number;
}

const COALESCE_LIMIT = 256 * 1024;

export class ReplyWriter {
  private parts: Uint8Array[] = [];
  /** Completion callbacks by part; a partly written part keeps its callback under the remainder. */
  private done = new Map<Uint8Array, () => void>();
  pendingBytes = 0;
  private scheduled = false;
  private blocked = false;
  private dead = false;

  constructor(
    private readonly socket: WritableSocket,
    private readonly onProgress: () => void,
  ) {}

  /** Queues buf; `done` runs once the socket has taken all of it (not when the connection dies). */
  send(buf: Uint8Array, done?: () => void): void {
    if (this.dead) return;
    if (done) this.done.set(buf, done);
    this.parts.push(buf);
    this.pendingBytes += buf.length;
    if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
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
    this.pendingBytes = 0;
  }

  get idle(): boolean {
    return this.parts.length === 0;
  }

  private flush(): void {
    this.scheduled = false;
    while (!this.blocked && !this.dead && this.parts.length > 0) {
      const buf = this.nextBatch();
      const n = this.socket.write(buf);
      const written = n > 0 ? n : 0;
      this.pendingBytes -= written;
      const done = this.done.get(buf);
      if (done) this.done.delete(buf);
      if (written < buf.length) {
        const rest = buf.subarray(written);
        if (done) this.done.set(rest, done);
        this.parts.unshift(rest);
        this.blocked = true;
      } else done?.();
    }
    this.onProgress();
  }

  /** Takes the next part, merged with its small neighbours. */
  private nextBatch(): Uint8Array {
    const first = this.parts[0];
    let count = 1;
    let total = first.length;
    while (count < this.parts.length && total + this.parts[count].length <= COALESCE_LIMIT) total += this.parts[count++].length;
    if (count === 1) return this.parts.shift()!;
    const out = new Uint8Array(total);
    let off = 0;
    for (const p of this.parts.splice(0, count)) {
      out.set(p, off);
      off += p.length;
      const done = this.done.get(p);
      if (done) {
        this.done.delete(p);
        done(); // copied: the part itself is free again
      }
    }
    return out;
  }
}
