// Request signatures verified on the server's own verifier threads (init/rpc/verifier.ts): every
// verdict matches a synchronous check, verdicts come back in submission order, a full ring overflows
// onto Bun's pool, and stopping or a verifier thread's death or stall hands owed jobs to the pool.
import { describe, expect, test } from "bun:test";
import { generateKeyPair, publicKeyObject, signMessage, verifySignature, type KeyPair } from "../../init/identity/ed25519.ts";
import { requestDigest } from "../../init/rpc/protocol.ts";
import { SignatureVerifier, type VerifierOptions } from "../../init/rpc/verifier.ts";
import { CAPACITY, STOP, SUBMITTED } from "../../init/rpc/verify-ring.ts";

interface Job {
  key: KeyPair;
  digest: Uint8Array;
  signature: Uint8Array;
  expected: boolean;
}

/** `count` jobs from two keys: most valid, every 5th over a changed digest, every 7th under the other key. */
function jobs(count: number): Job[] {
  const keys = [generateKeyPair(), generateKeyPair()];
  return Array.from({ length: count }, (_, i) => {
    const key = keys[i % 2];
    const digest = requestDigest(new TextEncoder().encode(`request ${i}`));
    const signature = signMessage(i % 7 === 3 ? keys[(i + 1) % 2] : key, digest);
    const checked = i % 5 === 4 ? requestDigest(new TextEncoder().encode(`tampered ${i}`)) : digest;
    return { key, digest: checked, signature, expected: verifySignature(key.publicKey, checked, signature) };
  });
}

/** Submits every job at once; resolves with the verdicts and the order they were reported in. */
function verifyAll(verifier: SignatureVerifier, list: Job[], afterSubmit?: () => void): Promise<{ verdicts: boolean[]; order: number[] }> {
  const verdicts: boolean[] = new Array(list.length);
  const order: number[] = [];
  return new Promise((resolve) => {
    list.forEach((j, i) =>
      verifier.verify(j.key.publicKey, publicKeyObject(j.key.publicKey)!, j.digest, j.signature, (ok) => {
        verdicts[i] = ok;
        order.push(i);
        if (order.length === list.length) resolve({ verdicts, order });
      }),
    );
    afterSubmit?.();
  });
}

/** `promise`'s value, or "timed out" after `ms`: a verdict that is never reported must fail the test, not hang it. */
function within<T>(promise: Promise<T>, ms: number): Promise<T | "timed out"> {
  return Promise.race([promise, new Promise<"timed out">((resolve) => setTimeout(() => resolve("timed out"), ms))]);
}

/** Runs `body` with a verifier made from `opts`, stopped afterwards whatever happens. */
async function withVerifier(opts: VerifierOptions, body: (verifier: SignatureVerifier) => Promise<void>): Promise<void> {
  const verifier = new SignatureVerifier(opts);
  try {
    await body(verifier);
  } finally {
    verifier.stop();
  }
}

describe("signature verifier", () => {
  // The second: ~30 h at 20k calls/s, with `job % CAPACITY` the wrapped (negative) job number gave a
  // negative slot, the verifier thread died on a RangeError and the node stayed on Bun's pool.
  test.each([
    ["verdicts on the verifier threads match a synchronous check and come back in submission order", {}],
    ["job counters wrapping past 2^31 - 1 keep the verifier threads, the verdicts and their order", { firstJob: 2 ** 31 - 100 }],
  ] as [string, VerifierOptions][])("%s", (_name, extra) =>
    withVerifier({ threads: 2, startAt: 1, ...extra }, async (verifier) => {
      const list = jobs(300);
      expect(list.some((j) => !j.expected) && list.some((j) => j.expected)).toBe(true);
      const { verdicts, order } = await verifyAll(verifier, list);
      expect(verifier.threaded).toBe(true);
      expect(verdicts).toEqual(list.map((j) => j.expected));
      expect(order).toEqual(list.map((_, i) => i));
    }),
  );

  // On the pool a throw was an uncaught exception (in PID 1); on the threads it ended the drain.
  test.each([
    ["on the verifier thread", { threads: 1, startAt: 1 }],
    ["on Bun's pool", { startAt: 1_000_000 }],
  ] as [string, VerifierOptions][])("a verdict callback that throws %s is logged and does not hold up the verdicts after it", (_where, opts) =>
    withVerifier(opts, async (verifier) => {
      const list = jobs(100);
      let reports = 0;
      const throwing = {
        verify: (key, object, digest, signature, done) =>
          verifier.verify(key, object, digest, signature, (ok) => {
            done(ok);
            if (reports++ % 10 === 0) throw new Error(`callback ${reports} throws`);
          }),
      } as SignatureVerifier;
      // no verify() after these: before, the drain stopped at the first throw and the rest waited for one
      const result = await within(verifyAll(throwing, list), 3000);
      expect(result === "timed out" ? result : result.verdicts).toEqual(list.map((j) => j.expected));
    }));

  test("more jobs than the ring holds overflow onto Bun's pool with the same verdicts", () =>
    withVerifier({ threads: 1, startAt: 1 }, async (verifier) => {
      const list = jobs(CAPACITY + 200);
      const { verdicts } = await verifyAll(verifier, list);
      expect(verdicts).toEqual(list.map((j) => j.expected));
    }));

  test("stopping with jobs owed verifies them on Bun's pool", async () => {
    const verifier = new SignatureVerifier({ threads: 1, startAt: 1 });
    const list = jobs(200);
    const { verdicts } = await verifyAll(verifier, list, () => verifier.stop());
    expect(verifier.threaded).toBe(false);
    expect(verdicts).toEqual(list.map((j) => j.expected));
  });

  test("a verifier thread that dies: its owed jobs are verified on Bun's pool, once each, and later calls keep working", () =>
    withVerifier({ threads: 1, startAt: 1 }, async (verifier) => {
      const list = jobs(300);
      // no error event: only its close tells
      const result = await within(verifyAll(verifier, list, () => verifier["workers"][0].terminate()), 5000);
      if (result === "timed out") throw new Error("jobs owed by the dead thread were never reported");
      expect(result.verdicts).toEqual(list.map((j) => j.expected));
      await Bun.sleep(50); // a second report of any job would come by now
      expect(result.order.toSorted((a, b) => a - b)).toEqual(list.map((_, i) => i));
      expect(verifier.threaded).toBe(false);
      const later = jobs(20);
      expect((await verifyAll(verifier, later)).verdicts).toEqual(later.map((j) => j.expected));
      expect(verifier.threaded).toBe(false);
    }));

  test("verifier threads that stop taking jobs without exiting: after stallMs the owed jobs go to Bun's pool", () =>
    withVerifier({ threads: 1, startAt: 1, stallMs: 200 }, async (verifier) => {
      const first = jobs(10);
      expect((await verifyAll(verifier, first)).verdicts).toEqual(first.map((j) => j.expected));
      // the thread leaves its loop but lives on (its message handler keeps it): no error, no close
      const { control } = verifier["ring"]!;
      Atomics.store(control, STOP, 1);
      Atomics.add(control, SUBMITTED, 1); // wakes it, see stop()
      Atomics.notify(control, SUBMITTED);
      await Bun.sleep(20);
      Atomics.sub(control, SUBMITTED, 1);
      const list = jobs(50);
      const result = await within(verifyAll(verifier, list), 3000);
      expect(result === "timed out" ? result : result.verdicts).toEqual(list.map((j) => j.expected));
      expect(verifier.threaded).toBe(false);
    }));

  test("a digest overwritten once verify returns (the server's is transient) does not change the verdict", async () => {
    // on the threads, then on Bun's pool
    for (const startAt of [1, 1000]) {
      await withVerifier({ threads: 1, startAt }, async (verifier) => {
        const list = jobs(40);
        const { verdicts } = await verifyAll({
          verify: (key, object, digest, signature, done) => {
            const scratch = new Uint8Array(digest);
            verifier.verify(key, object, scratch, signature, done);
            scratch.fill(0);
          },
        } as SignatureVerifier, list);
        expect(verdicts).toEqual(list.map((j) => j.expected));
      });
    }
  });

  test("calls one at a time stay on Bun's pool; the threads start once calls overlap", () =>
    withVerifier({ threads: 1, startAt: 4 }, async (verifier) => {
      const list = jobs(10);
      for (const j of list) expect((await verifyAll(verifier, [j])).verdicts).toEqual([j.expected]);
      expect(verifier.threaded).toBe(false);
      expect((await verifyAll(verifier, list)).verdicts).toEqual(list.map((j) => j.expected));
      expect(verifier.threaded).toBe(true);
    }));
});
