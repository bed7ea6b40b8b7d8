// The replay cache remembers each caller's nonce until the request's timestamp leaves the window, and
// forgets it then (anything older is refused by its timestamp).
import { expect, test } from "bun:test";
import { ReplayCache } from "../../init/rpc/replay.ts";

const windowMs = 60_000;
const t0 = 1_800_000_000_000;
const nonce = (n: number) => new Uint8Array(16).fill(n);

test("a nonce is accepted once per caller", () => {
  const c = new ReplayCache(windowMs);
  expect(c.check("alice", nonce(1), t0, t0)).toBe("ok");
  expect(c.check("alice", nonce(1), t0, t0 + 10)).toBe("replay");
  expect(c.check("alice", nonce(2), t0, t0 + 10)).toBe("ok");
  // another caller's use of the same nonce is not a replay of alice's
  expect(c.check("bob", nonce(1), t0, t0 + 10)).toBe("ok");
});

test("a nonce is remembered for as long as its timestamp is inside the window, then forgotten", () => {
  const c = new ReplayCache(windowMs);
  // a request stamped 50 s ahead of the node's clock is valid until 110 s from now
  expect(c.check("alice", nonce(1), t0 + 50_000, t0)).toBe("ok");
  expect(c.check("alice", nonce(2), t0, t0)).toBe("ok");
  expect(c.check("alice", nonce(1), t0 + 50_000, t0 + 109_000)).toBe("replay");
  expect(c.size).toBe(1); // nonce 2 (valid until t0 + 60 s) is gone by now
  expect(c.check("alice", nonce(2), t0 + 100_000, t0 + 109_000)).toBe("ok");
  expect(c.check("alice", nonce(3), t0 + 150_000, t0 + 112_000)).toBe("ok");
  expect(c.size).toBe(2); // nonce 1 has left the window
});

test("a full cache refuses new nonces until old ones expire", () => {
  const c = new ReplayCache(windowMs, 3);
  for (let i = 0; i < 3; i++) expect(c.check("alice", nonce(i), t0, t0)).toBe("ok");
  expect(c.check("alice", nonce(9), t0, t0)).toBe("full");
  expect(c.check("alice", nonce(0), t0, t0)).toBe("replay");
  expect(c.check("alice", nonce(9), t0 + 62_000, t0 + 62_000)).toBe("ok");
  expect(c.size).toBe(1);
});

test("tens of thousands of nonces: each is refused again while valid, and forgotten to the second", () => {
  const c = new ReplayCache(windowMs);
  const seen: Uint8Array[] = [];
  // 50,000 nonces stamped over 50 s: they spread over several expiry generations and tables grow
  for (let i = 0; i < 50_000; i++) {
    const n = crypto.getRandomValues(new Uint8Array(16));
    seen.push(n);
    expect(c.check("alice", n, t0 + i, t0 + i)).toBe("ok");
  }
  expect(c.size).toBe(50_000);
  for (let i = 0; i < 50_000; i += 7) expect(c.check("alice", seen[i], t0 + i, t0 + 50_000)).toBe("replay");
  // a nonce stamped t0 + i ms is remembered until the end of second ceil(i / 1000) + 60: at t0 + 85 s
  // the 24,001 stamped up to t0 + 24 s are forgotten, the rest are not
  expect(c.check("alice", seen[0], t0 + 85_000, t0 + 85_000)).toBe("ok");
  expect(c.check("alice", seen[24_001], t0 + 24_001, t0 + 85_000)).toBe("replay");
  expect(c.size).toBe(50_000 - 24_001 + 1);
});

test("a nonce used again after it expired is remembered afresh", () => {
  const c = new ReplayCache(windowMs);
  expect(c.check("alice", nonce(5), t0, t0)).toBe("ok");
  // expired at t0 + 60 s but its slot is not reclaimed yet (same expiry generation): it is absent
  expect(c.check("alice", nonce(5), t0 + 1_000, t0 + 61_000)).toBe("ok");
  expect(c.check("alice", nonce(5), t0 + 1_000, t0 + 61_500)).toBe("replay");
  expect(c.size).toBe(1);
});
