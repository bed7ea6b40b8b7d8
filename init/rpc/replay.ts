// Nonces seen within the timestamp window. A request is accepted only once: the window bounds how long
// a nonce must be remembered, because anything older is rejected by its timestamp anyway.
//
// The nonces live in typed arrays, not in JS strings or Set entries: at 10k calls/s a 60 s window holds
// ~600,000 nonces, and as heap objects every garbage collection had to walk them (eden pauses grew from
// ~0.5 ms to 2.5-12 ms with 100-300k entries: that was the RPC server's p99).
//
// Layout: entries are filed in generations by the second they expire in, one generation per SPAN_S
// seconds of expiry; each generation is an open-addressing hash table (linear probing) of 6 u32 words
// a slot:
//   [0..3] the 16-byte nonce as four little-endian u32
//   [4]    caller index + 1 (0 = empty slot; callers are trusted keys, so their number is small)
//   [5]    expiry second (unix seconds): the entry is forgotten once that second is over
// A lookup probes every live generation (at most window*2/SPAN_S + 2 of them); a generation is dropped
// as a whole once its last second is over. Entries expire to the second (they count as absent from
// then on, and `size` drops) even though their slot is reclaimed with the whole generation.
const SPAN_S = 8;
const WORDS = 6;
const MIN_SLOTS = 256;

export class ReplayCache {
  private callers = new Map<string, number>();
  private generations: Generation[] = [];
  /** Live entries per expiry second, so `size` and the limit are exact to the second. */
  private perSecond = new Map<number, number>();
  private live = 0;
  private forgottenBefore = -Infinity;
  /** Per-process hash seed, so a caller cannot pick nonces that all land on the same probe chain. */
  private readonly seed = crypto.getRandomValues(new Uint32Array(1))[0];

  constructor(readonly windowMs: number, readonly maxEntries = 1_000_000) {}

  /** Records the nonce of `callerId`; "replay" when it was seen already, "full" when there is no room. */
  check(callerId: string, nonce: Uint8Array, timestamp: number, now = Date.now()): "ok" | "replay" | "full" {
    const current = Math.floor(now / 1000);
    if (current > this.forgottenBefore) this.forgetExpired(current);
    // the caller is part of the key, so one trusted caller cannot burn another's nonces
    let caller = this.callers.get(callerId);
    if (caller === undefined) this.callers.set(callerId, (caller = this.callers.size + 1));
    const w0 = word(nonce, 0), w1 = word(nonce, 4), w2 = word(nonce, 8), w3 = word(nonce, 12);
    const hash = mix(this.seed, w0, w1, w2, w3, caller);
    for (const g of this.generations) {
      const slot = g.find(hash, w0, w1, w2, w3, caller);
      if (slot >= 0 && g.table[slot + 5] >= current) return "replay";
    }
    if (this.live >= this.maxEntries) return "full";
    // remember until the request's timestamp leaves the window
    const expiry = Math.ceil((timestamp + this.windowMs) / 1000);
    this.generationFor(Math.floor(expiry / SPAN_S)).insert(hash, w0, w1, w2, w3, caller, expiry);
    this.perSecond.set(expiry, (this.perSecond.get(expiry) ?? 0) + 1);
    this.live++;
    return "ok";
  }

  get size(): number {
    return this.live;
  }

  /** Forgets every second before `current`; drops generations whose seconds are all over. */
  private forgetExpired(current: number): void {
    this.forgottenBefore = current;
    for (const [second, count] of this.perSecond) {
      if (second >= current) continue;
      this.live -= count;
      this.perSecond.delete(second);
    }
    this.generations = this.generations.filter((g) => (g.span + 1) * SPAN_S > current);
  }

  private generationFor(span: number): Generation {
    for (const g of this.generations) if (g.span === span) return g;
    const g = new Generation(span, this.seed);
    this.generations.push(g);
    return g;
  }
}

function word(b: Uint8Array, i: number): number {
  return (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)) >>> 0;
}

function mix(seed: number, w0: number, w1: number, w2: number, w3: number, caller: number): number {
  let h = seed ^ Math.imul(caller, 0x9e3779b1);
  h = Math.imul(h ^ w0, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ w1, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ w2, 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13) ^ w3, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** One generation's hash table; see the layout above. */
class Generation {
  table = new Uint32Array(MIN_SLOTS * WORDS);
  mask = MIN_SLOTS - 1;
  used = 0;
  constructor(readonly span: number, private readonly seed: number) {}

  /** The word offset of the entry's slot, or -1 when it is not here. */
  find(hash: number, w0: number, w1: number, w2: number, w3: number, caller: number): number {
    const t = this.table;
    for (let i = hash & this.mask; ; i = (i + 1) & this.mask) {
      const s = i * WORDS;
      if (t[s + 4] === 0) return -1;
      if (t[s + 4] === caller && t[s] === w0 && t[s + 1] === w1 && t[s + 2] === w2 && t[s + 3] === w3) return s;
    }
  }

  insert(hash: number, w0: number, w1: number, w2: number, w3: number, caller: number, expiry: number): void {
    const existing = this.find(hash, w0, w1, w2, w3, caller);
    if (existing >= 0) {
      // the same nonce, already expired (a live one is a replay): it starts a new life
      this.table[existing + 5] = expiry;
      return;
    }
    // keep the load under 3/4 so probe chains stay short
    if ((this.used + 1) * 4 > (this.mask + 1) * 3) this.grow();
    this.put(hash, w0, w1, w2, w3, caller, expiry);
  }

  private put(hash: number, w0: number, w1: number, w2: number, w3: number, caller: number, expiry: number): void {
    const t = this.table;
    let i = hash & this.mask;
    while (t[i * WORDS + 4] !== 0) i = (i + 1) & this.mask;
    const s = i * WORDS;
    t[s] = w0; t[s + 1] = w1; t[s + 2] = w2; t[s + 3] = w3; t[s + 4] = caller; t[s + 5] = expiry;
    this.used++;
  }

  /** Doubles the table and re-files every entry. */
  private grow(): void {
    const old = this.table;
    const slots = (this.mask + 1) * 2;
    this.table = new Uint32Array(slots * WORDS);
    this.mask = slots - 1;
    this.used = 0;
    for (let s = 0; s < old.length; s += WORDS) {
      if (old[s + 4] === 0) continue;
      const hash = mix(this.seed, old[s], old[s + 1], old[s + 2], old[s + 3], old[s + 4]);
      this.put(hash, old[s], old[s + 1], old[s + 2], old[s + 3], old[s + 4], old[s + 5]);
    }
  }
}
