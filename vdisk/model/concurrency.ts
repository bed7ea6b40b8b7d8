// Small concurrency tools for the vdisk model.

/** Many readers (flushes) or one writer (reclamation), so a sweep never races a commit. */
export class ReadWriteLock {
  private readers = 0;
  private writer = false;
  private waiters: (() => void)[] = [];

  async read<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer) await this.wait();
    this.readers++;
    try {
      return await fn();
    } finally {
      this.readers--;
      this.wake();
    }
  }

  async write<T>(fn: () => Promise<T>): Promise<T> {
    while (this.writer || this.readers > 0) await this.wait();
    this.writer = true;
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.wake();
    }
  }

  private wait(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

/**
 * Runs fn over items with at most `limit` running at once; the limit can be raised while it runs
 * (a background write-back that a client's FLUSH now waits for). After a failure no item is
 * started: against a store that stopped answering, each further round would wait out another
 * per-operation timeout, so a flush of a large cache (a shutdown's) would take rounds x timeout
 * to give up rather than one timeout. Rejects with the first failure once everything started has
 * settled; the items not run are the caller's to retry.
 */
export class BoundedRun<T> {
  private next = 0;
  private active = 0;
  private failed = false;
  private error: unknown;
  private finish!: () => void;
  private fail!: (e: unknown) => void;
  readonly done: Promise<void>;

  constructor(
    private readonly items: T[],
    private limit: number,
    private readonly fn: (item: T) => Promise<void>,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.finish = resolve;
      this.fail = reject;
    });
    this.fill();
  }

  raise(limit: number): void {
    if (limit <= this.limit) return;
    this.limit = limit;
    this.fill();
  }

  private fill(): void {
    while (!this.failed && this.active < this.limit && this.next < this.items.length) {
      this.active++;
      void this.worker();
    }
    if (this.active === 0) this.settle();
  }

  private async worker(): Promise<void> {
    while (!this.failed && this.next < this.items.length && this.active <= this.limit) {
      const item = this.items[this.next++];
      try {
        await this.fn(item);
      } catch (err) {
        if (!this.failed) {
          this.failed = true;
          this.error = err;
        }
      }
    }
    this.active--;
    if (this.active === 0 && (this.failed || this.next >= this.items.length)) this.settle();
  }

  private settle(): void {
    if (this.failed) this.fail(this.error);
    else this.finish();
  }
}
