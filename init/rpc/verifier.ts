// Where the RPC server verifies request signatures. A node answering one call at a time (the CLI, a
// health probe) uses Bun's native crypto thread pool, at no memory cost. Once calls overlap, verifier
// threads of our own start (verify-worker.ts; kept from then on; RSS ~6.3 MiB for the first and ~2.7 MiB
// for a second, bundled as in the image, see init/README.md) and take the signatures from a shared
// ring (verify-ring.ts) first-in first-out.
//
// Why not Bun's pool for everything: it runs the jobs the JS thread submits last-in first-out (of 64
// submitted at once, the first finished 28th to 64th), and its two threads and the JS thread took
// turns on the two cores every ~100 µs. At 32 calls in flight a request waited 1.1 ms for its verdict
// at the median and 5 ms at the 99th percentile: most of the server's tail. A verifier of our own
// takes the next job itself, never waiting for the JS thread while jobs are queued, and the JS thread
// takes the verdicts in job order, so no connection's request is overtaken by later ones.
import { availableParallelism } from "node:os";
import type { KeyObject } from "node:crypto";
import { publicKeyObject, verifyOnPool } from "../identity/ed25519.ts";
import { logger } from "../log.ts";
import { CAPACITY, CLAIMED, DIGEST, KEY, MASK, newRingBuffer, PROGRESS, ringViews, SIGNATURE, SLEEPING, SLOT, STOP, SUBMITTED, VALID, type Ring } from "./verify-ring.ts";

const log = logger("rpc");

export type Verdict = (ok: boolean) => void;

export interface VerifierOptions {
  /** Verifier threads once calls overlap. Default: one per core but the JS thread's, at least one and at
   * most two (the JS thread's own ~50 µs per call caps a server near 20k calls/s; two verifiers cover that). */
  threads?: number;
  /** Verifications in flight at once that start the verifier threads. */
  startAt?: number;
  /** With verdicts owed, how long without one before the threads count as hung and the jobs go to
   * Bun's pool (a verification takes ~50 µs). Default 5000 ms. */
  stallMs?: number;
  /** The ring's first job number (int32; tests start near 2^31 to cross the counters' wrap). Default 0. */
  firstJob?: number;
}

export class SignatureVerifier {
  private readonly threads: number;
  private readonly startAt: number;
  private readonly firstJob: number;
  private readonly stallMs: number;
  /** Verifications handed out and not yet reported. */
  private outstanding = 0;
  private ring: Ring | null = null;
  private workers: Worker[] = [];
  /** Jobs written to the ring and verdicts read from it: int32 counters that wrap like the ring's
   * (verify-ring.ts), so compared only for equality or by (submitted - handled) | 0. */
  private submitted = 0;
  private handled = 0;
  private readonly callbacks: (Verdict | undefined)[] = new Array(CAPACITY);
  /** Whether a waiter on PROGRESS is armed. */
  private waiting = false;
  /** After a verifier thread failed: Bun's pool only. */
  private failed = false;

  constructor(opts: VerifierOptions = {}) {
    this.threads = opts.threads ?? Math.min(2, Math.max(1, availableParallelism() - 1));
    this.startAt = opts.startAt ?? 4;
    this.firstJob = (opts.firstJob ?? 0) | 0;
    this.stallMs = opts.stallMs ?? 5000;
  }

  /** Whether the verifier threads are running. */
  get threaded(): boolean {
    return this.ring !== null;
  }

  /** Checks `signature` (64 bytes) over `digest` (32 bytes) under the raw ed25519 `key`, whose parsed
   * form is `object`; `done` gets the verdict. `key` and `digest` may be overwritten once this returns;
   * `signature` must stay untouched until `done` is called (Bun's pool reads it in place, while the
   * ring copies it: copying here would cost every call 64 bytes of garbage). */
  verify(key: Uint8Array, object: KeyObject, digest: Uint8Array, signature: Uint8Array, done: Verdict): void {
    this.outstanding++;
    if (!this.ring && !this.failed && this.outstanding >= this.startAt) this.start();
    // a full ring (CAPACITY calls waiting) overflows onto Bun's pool
    if (!this.ring || ((this.submitted - this.handled) | 0) >= CAPACITY) return verifyOnPool(object, new Uint8Array(digest), signature, (ok) => this.report(done, ok));
    const { control, jobs } = this.ring;
    const slot = this.submitted & MASK;
    const at = slot * SLOT;
    jobs.set(key, at + KEY);
    jobs.set(digest, at + DIGEST);
    jobs.set(signature, at + SIGNATURE);
    this.callbacks[slot] = done;
    this.submitted = (this.submitted + 1) | 0;
    Atomics.store(control, SUBMITTED, this.submitted);
    if (Atomics.load(control, SLEEPING) > 0) Atomics.notify(control, SUBMITTED, 1);
    this.awaitVerdicts();
  }

  /** Stops the verifier threads; jobs they still owe are verified on Bun's pool. */
  stop(): void {
    const ring = this.ring;
    if (!ring) return;
    this.ring = null;
    Atomics.store(ring.control, STOP, 1);
    // SUBMITTED changes too: a verifier that read STOP as 0 just before and has yet to call
    // Atomics.wait(SUBMITTED, its value) would otherwise sleep through this notify for good (terminate
    // need not interrupt Atomics.wait). It sees STOP when the wait returns; should it take the extra
    // "job" first, its verdict goes into a ring no one reads.
    Atomics.add(ring.control, SUBMITTED, 1);
    Atomics.notify(ring.control, SUBMITTED);
    Atomics.notify(ring.control, PROGRESS); // releases our own waiter
    for (const w of this.workers) w.terminate();
    this.workers = [];
    this.waiting = false;
    for (; this.handled !== this.submitted; this.handled = (this.handled + 1) | 0) {
      const slot = this.handled & MASK;
      const done = this.callbacks[slot]!;
      this.callbacks[slot] = undefined;
      const at = slot * SLOT;
      // copies: the slots are not ours once the ring is gone
      const object = publicKeyObject(ring.jobs.slice(at + KEY, at + DIGEST));
      if (!object) queueMicrotask(() => this.report(done, false));
      else verifyOnPool(object, ring.jobs.slice(at + DIGEST, at + SIGNATURE), ring.jobs.slice(at + SIGNATURE, at + SLOT), (ok) => this.report(done, ok));
    }
  }

  /**
   * A callback that throws is logged, never passed on: in the drain it would end the loop (the
   * verdicts after it would wait, with no waiter armed, for some later verify(); for good once
   * calls stop), and on Bun's pool it would be an uncaught exception in PID 1.
   */
  private report(done: Verdict, ok: boolean): void {
    this.outstanding--;
    try {
      done(ok);
    } catch (e) {
      log.error("signature verdict callback threw", e);
    }
  }

  private start(): void {
    const buffer = newRingBuffer();
    const ring = ringViews(buffer);
    const fail = (why: string) => this.fail(ring, why);
    this.ring = ring;
    this.submitted = this.handled = this.firstJob;
    // before any verifier reads them
    ring.control[SUBMITTED] = ring.control[CLAIMED] = this.firstJob;
    try {
      for (let i = 0; i < this.threads; i++) {
        const w = new Worker(new URL("./verify-worker.ts", import.meta.url).href);
        w.onerror = (e) => fail(`failed: ${e.message}`);
        // a thread that ends without an error would otherwise hold every job it was owed for good
        w.addEventListener("close", () => fail("exited"));
        w.postMessage(buffer);
        // idle verifiers must not keep a finished process alive
        w.unref();
        this.workers.push(w);
      }
    } catch (e) {
      return fail(`cannot start: ${(e as Error).message}`); // e.g. verify-worker.ts missing from the image
    }
    log.info(`calls overlap: started ${this.threads} signature verifier thread(s)`);
  }

  private fail(ring: Ring, why: string): void {
    // a thread of a ring already stopped (whose stop() terminated it, say) is no failure of this one
    if (this.ring !== ring) return;
    log.error(`signature verifier thread: ${why}; verifying on Bun's pool from now on`);
    this.failed = true;
    this.stop();
  }

  /** Keeps one waiter on PROGRESS while verdicts are owed; it takes them in job order. */
  private awaitVerdicts(): void {
    const ring = this.ring;
    if (!ring) return;
    const seen = Atomics.load(ring.control, PROGRESS);
    // verdicts already in are taken now (on every submission too), not when the waiter's wake-up
    // comes round the event loop: under load the JS thread is rarely idle, and that wait was the
    // longest step of a slow call after the queue itself (p99 2.4 ms from verdict to handling)
    if (Atomics.load(ring.verdicts, this.handled & MASK) !== 0) return this.drain(ring);
    if (this.waiting) return;
    const wait = Atomics.waitAsync(ring.control, PROGRESS, seen, this.stallMs);
    if (!wait.async) return this.drain(ring); // a verdict came in since `seen`
    this.waiting = true;
    void wait.value.then((how) => {
      if (this.ring !== ring) return;
      this.waiting = false;
      // a thread that hangs, or stops taking jobs without exiting, would hold every owed job for good
      if (how === "timed-out") return this.fail(ring, `no verdict for ${this.stallMs} ms with jobs owed`);
      this.drain(ring);
    });
  }

  private drain(ring: Ring): void {
    while (this.ring === ring && this.handled !== this.submitted) {
      const slot = this.handled & MASK;
      const verdict = Atomics.load(ring.verdicts, slot);
      if (verdict === 0) break;
      ring.verdicts[slot] = 0;
      const done = this.callbacks[slot]!;
      this.callbacks[slot] = undefined;
      this.handled = (this.handled + 1) | 0;
      this.report(done, verdict === VALID);
    }
    if (this.ring === ring && this.handled !== this.submitted) this.awaitVerdicts();
  }
}
