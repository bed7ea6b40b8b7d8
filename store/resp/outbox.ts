// The sending side of a RESP connection: values are encoded into one reusable RespWriter and leave
// in one socket write per flush. What the socket does not take is sent on drain: small remainders
// are copied aside, a big one is sent from the writer's buffer while the writer uses another.
import { RespWriter } from "./writer.ts";

const LEND_THRESHOLD = 64 * 1024;

export class Outbox {
  readonly writer: RespWriter;
  private backlog: Buffer[] = [];
  backlogBytes = 0;
  /** The writer buffer the backlog still sends from, handed back once the backlog is empty. */
  private lent: Buffer | null = null;
  /** A big buffer ready to become the writer's again, so big replies do not allocate each time. */
  private spare: Buffer | null = null;

  constructor(
    private readonly write: (data: Uint8Array) => number,
    initialSize = 16 * 1024,
  ) {
    this.writer = new RespWriter(initialSize);
  }

  /** Sends what the writer holds; returns false while bytes wait for a drain. */
  flush(): boolean {
    const w = this.writer;
    if (w.length === 0) return this.drain();
    const view = w.view();
    const n = this.backlog.length === 0 ? Math.max(this.write(view), 0) : 0;
    if (n < view.length) {
      if (view.length - n >= LEND_THRESHOLD && this.lent === null) {
        // A big remainder (a big value) is sent from the writer's own buffer, and the writer
        // continues in another one: no copy.
        this.keep(view.subarray(n));
        this.lent = w.swap(this.spare);
        this.spare = null;
      } else this.keep(Buffer.from(view.subarray(n)));
    }
    w.reset();
    w.shrink(4 * 1024 * 1024);
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
    if (this.lent !== null) {
      this.spare = this.lent;
      this.lent = null;
    }
    return true;
  }

  clear(): void {
    this.backlog = [];
    this.backlogBytes = 0;
    this.lent = null;
    this.writer.reset();
  }

  private keep(b: Buffer): void {
    this.backlog.push(b);
    this.backlogBytes += b.length;
  }
}
