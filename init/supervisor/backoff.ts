// Restart delay policy: initial * factor^n capped at max; n resets once a run lasted `stableMs`.
// zinit restarts every 2 s forever; growing the delay keeps a crash loop from eating the node.
export interface BackoffPolicy {
  initialMs: number;
  factor: number;
  maxMs: number;
  stableMs: number;
}

export const defaultBackoff: BackoffPolicy = { initialMs: 2000, factor: 1.5, maxMs: 300_000, stableMs: 60_000 };

export class Backoff {
  private failures = 0;
  constructor(readonly policy: BackoffPolicy = defaultBackoff) {}

  /** Records the end of a run that lasted `ranMs` and returns how long to wait before the next start. */
  next(ranMs: number): number {
    if (ranMs >= this.policy.stableMs) this.failures = 0;
    const delay = Math.min(this.policy.initialMs * this.policy.factor ** this.failures, this.policy.maxMs);
    this.failures++;
    return Math.round(delay);
  }
  reset(): void {
    this.failures = 0;
  }
  get consecutiveFailures(): number {
    return this.failures;
  }
}
