// Time as the supervisor sees it, injectable so tests can drive backoff without sleeping.
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

type RealHandle = { immediate: ReturnType<typeof setImmediate> } | { timer: ReturnType<typeof setTimeout> };

export const realClock: Clock = {
  now: () => Date.now(),
  // a zero delay skips the timer queue: Bun's timers take a millisecond or more even at 0
  setTimeout: (fn, ms): RealHandle => (ms <= 0 ? { immediate: setImmediate(fn) } : { timer: setTimeout(fn, ms) }),
  clearTimeout: (h) => {
    const handle = h as RealHandle;
    if ("immediate" in handle) clearImmediate(handle.immediate);
    else clearTimeout(handle.timer);
  },
};

/** A clock that only moves when told to; timers fire in due order during advance(). */
export class FakeClock implements Clock {
  private t = 0;
  private nextId = 1;
  private timers = new Map<number, { at: number; fn: () => void }>();

  constructor(start = 1_000_000) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Delays of the pending timers, soonest first. */
  pending(): number[] {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
    }
    this.t = end;
  }
}
