// The sending side of a RESP connection: values are encoded into one reusable RespWriter and leave
// in one socket write per flush. What the socket does not take is copied aside and sent on drain,
// so the writer can be reused at once.
import { RespWriter } from "./writer.ts";

const DETACH_THRESHOLD = 64 * 1024;

export class Outbox {
  readonly writer: RespWriter;
  private backlog: Buffer[] = [];
  backlogBytes = 0;

  constructor(
    private readonly write: (data: Uint8Array) => number,
    initialSize = 16 * 1024,
  ) {
    this.writer = new RespWriter(initialSize);
  }

  /** Sends what the writer holds; returns false while bytes wait for a drain. */
  flush(): boolean {
    const w = this.writer;
    if (w.length > 0) {
      if (this.backlog.length === 0) {
        const view = w.view();
        const n = Math.max(this.write(view), 0);
        if (n < view.length) {
          // A large remainder (a big value) is handed over as is and the writer gets a fresh
          // buffer; copying it would cost more than the allocation.
          if (view.length - n >= DETACH_THRESHOLD) {
            this.keep(view.subarray(n));
            w.detach();
          } else this.keep(Buffer.from(view.subarray(n)));
        }
      } else {
        this.keep(Buffer.from(w.view()));
      }
      w.reset();
      w.shrink(4 * 1024 * 1024);
    }
    return this.drain();
  }

  /** Retries the backlog (call on the socket's drain event); true when nothing is left. */
  drain(): boolean {
    while (this.backlog.length > 0) {
      const head = this.backlog[0];
      const n = Math.max(this.write(head), 0);
      this.backlogBytes -= n;
      if (n >= head.length) this.backlog.shift();
      else {
        if (n > 0) this.backlog[0] = head.subarray(n);
        return false;
      }
    }
    return true;
  }

  clear(): void {
    this.backlog = [];
    this.backlogBytes = 0;
    this.writer.reset();
  }

  private keep(b: Buffer): void {
    this.backlog.push(b);
    this.backlogBytes += b.length;
  }
}
