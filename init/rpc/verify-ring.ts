// The shared memory between the RPC server and its verifier threads (verify-worker.ts).
//
//   control  Int32Array(5):
//     [SUBMITTED] jobs written by the JS thread; job n goes to slot n & (CAPACITY - 1). The counters
//                 are int32 and wrap (past 2^31 - 1 comes -2^31, ~30 h at 20k calls/s), so they are
//                 only compared for equality or through their difference (a - b) | 0
//     [CLAIMED]   jobs taken by a verifier (compare-and-swap, so each job goes to exactly one)
//     [PROGRESS]  verdicts written; a verifier adds 1 per verdict and notifies the JS thread's waiter
//     [SLEEPING]  verifiers blocked in Atomics.wait on SUBMITTED (the JS thread notifies only if > 0)
//     [STOP]      1: verifiers exit (set with a change of SUBMITTED, so a verifier about to sleep wakes)
//   jobs     CAPACITY slots of 128 bytes: caller key (32) | request digest (32) | signature (64)
//   verdicts CAPACITY bytes: 0 pending, 1 valid, 2 invalid; the JS thread zeroes a verdict it has read
//
// The JS thread reads verdicts in job order, so calls are answered first-in first-out.
export const SUBMITTED = 0, CLAIMED = 1, PROGRESS = 2, SLEEPING = 3, STOP = 4;
export const CAPACITY = 1024;
/** A job's slot is `job & MASK`: a mask, unlike `%`, stays in range for the negative job numbers a wrapped counter gives. */
export const MASK = CAPACITY - 1;
if ((CAPACITY & MASK) !== 0) throw new Error("verify-ring: CAPACITY must be a power of two");
/** Where a job's fields start in its slot, and the slot's size. */
export const KEY = 0, DIGEST = 32, SIGNATURE = 64, SLOT = 128;
export const VALID = 1, INVALID = 2;

/** Room for the control words ahead of the jobs. */
const CONTROL_BYTES = 32;

export interface Ring {
  control: Int32Array;
  jobs: Uint8Array;
  verdicts: Uint8Array;
}

/** The views over one SharedArrayBuffer, on either side. */
export function ringViews(buffer: SharedArrayBuffer): Ring {
  return {
    control: new Int32Array(buffer, 0, 5),
    jobs: new Uint8Array(buffer, CONTROL_BYTES, CAPACITY * SLOT),
    verdicts: new Uint8Array(buffer, CONTROL_BYTES + CAPACITY * SLOT, CAPACITY),
  };
}

export function newRingBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(CONTROL_BYTES + CAPACITY * SLOT + CAPACITY);
}
