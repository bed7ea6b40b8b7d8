// A verifier thread: takes request signatures from the shared ring (verify-ring.ts) in order and
// writes each verdict back. It never waits on the JS thread while jobs are queued, and it sleeps in
// Atomics.wait when there are none.
import type { KeyObject } from "node:crypto";
import { verify } from "node:crypto";
import { publicKeyObject } from "../identity/ed25519.ts";
import { CLAIMED, DIGEST, INVALID, KEY, MASK, PROGRESS, ringViews, SIGNATURE, SLEEPING, SLOT, STOP, SUBMITTED, VALID } from "./verify-ring.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent<SharedArrayBuffer>) => run(e.data);

function run(buffer: SharedArrayBuffer): void {
  const { control, jobs, verdicts } = ringViews(buffer);
  // a connection's requests nearly always come from one caller: keep its parsed key at hand
  const lastKey = new Uint8Array(DIGEST - KEY);
  let lastObject: KeyObject | null = null;
  for (;;) {
    if (Atomics.load(control, STOP)) return; // read on every turn, so after every wake-up too
    const claimed = Atomics.load(control, CLAIMED);
    const submitted = Atomics.load(control, SUBMITTED);
    if (claimed === submitted) {
      Atomics.add(control, SLEEPING, 1);
      // checked again after announcing the sleep: a job submitted in between is not missed
      if (Atomics.load(control, SUBMITTED) === submitted && !Atomics.load(control, STOP)) Atomics.wait(control, SUBMITTED, submitted);
      Atomics.sub(control, SLEEPING, 1);
      continue;
    }
    if (Atomics.compareExchange(control, CLAIMED, claimed, (claimed + 1) | 0) !== claimed) continue; // another verifier took it
    const slot = claimed & MASK;
    const at = slot * SLOT;
    const key = jobs.subarray(at + KEY, at + DIGEST);
    if (lastObject === null || Buffer.compare(key, lastKey) !== 0) {
      lastKey.set(key);
      lastObject = publicKeyObject(lastKey);
    }
    let ok = false;
    try {
      ok = lastObject !== null && verify(null, jobs.subarray(at + DIGEST, at + SIGNATURE), lastObject, jobs.subarray(at + SIGNATURE, at + SLOT));
    } catch {
      ok = false;
    }
    Atomics.store(verdicts, slot, ok ? VALID : INVALID);
    Atomics.add(control, PROGRESS, 1);
    Atomics.notify(control, PROGRESS);
  }
}
