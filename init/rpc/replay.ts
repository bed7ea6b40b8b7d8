// Nonces seen within the timestamp window. A request is accepted only once: the window bounds how long
// a nonce must be remembered, because anything older is rejected by its timestamp anyway.
export class ReplayCache {
  private seen = new Map<string, number>();
  private lastSweep = 0;

  constructor(readonly windowMs: number, readonly maxEntries = 1_000_000) {}

  /** Records the nonce; returns false when it was already seen (a replay) or the cache is full. */
  check(key: Uint8Array, nonce: Uint8Array, timestamp: number, now = Date.now()): "ok" | "replay" | "full" {
    if (now - this.lastSweep > 1000) this.sweep(now);
    const id = Buffer.from(key).toString("base64") + Buffer.from(nonce).toString("base64");
    if (this.seen.has(id)) return "replay";
    if (this.seen.size >= this.maxEntries) return "full";
    // remember until the request's timestamp leaves the window
    this.seen.set(id, timestamp + this.windowMs);
    return "ok";
  }

  private sweep(now: number): void {
    this.lastSweep = now;
    for (const [id, expires] of this.seen) if (expires < now) this.seen.delete(id);
  }

  get size(): number {
    return this.seen.size;
  }
}
