// Nonces seen within the timestamp window. A request is accepted only once: the window bounds how long
// a nonce must be remembered, because anything older is rejected by its timestamp anyway.
//
// Entries are filed by the second they expire in, so forgetting costs only what expires. (Sweeping
// the whole map once a second stalled the event loop for milliseconds with 10k calls/s coming in,
// about 600,000 nonces in a 60 s window: that was the RPC server's p99.)
export class ReplayCache {
  private seen = new Set<string>();
  /** Expiry second -> the ids that expire within it. */
  private expiring = new Map<number, string[]>();
  /** Every second below this one has been forgotten; NaN until the first check. */
  private nextSecond = NaN;

  constructor(readonly windowMs: number, readonly maxEntries = 1_000_000) {}

  /** Records the nonce of `callerId`; "replay" when it was seen already, "full" when there is no room. */
  check(callerId: string, nonce: Uint8Array, timestamp: number, now = Date.now()): "ok" | "replay" | "full" {
    this.forgetExpired(now);
    // the caller is part of the id, so one trusted caller cannot burn another's nonces
    const id = callerId + Buffer.from(nonce.buffer, nonce.byteOffset, nonce.byteLength).toString("latin1");
    if (this.seen.has(id)) return "replay";
    if (this.seen.size >= this.maxEntries) return "full";
    this.seen.add(id);
    // remember until the request's timestamp leaves the window
    const second = Math.ceil((timestamp + this.windowMs) / 1000);
    const list = this.expiring.get(second);
    if (list) list.push(id);
    else this.expiring.set(second, [id]);
    return "ok";
  }

  private forgetExpired(now: number): void {
    const current = Math.floor(now / 1000);
    if (Number.isNaN(this.nextSecond) || this.expiring.size === 0) this.nextSecond = current;
    // a second's ids expire at its end at the latest: forget each second once it is over
    for (; this.nextSecond < current; this.nextSecond++) {
      const list = this.expiring.get(this.nextSecond);
      if (!list) continue;
      for (const id of list) this.seen.delete(id);
      this.expiring.delete(this.nextSecond);
    }
  }

  get size(): number {
    return this.seen.size;
  }
}
