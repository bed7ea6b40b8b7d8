// Payload.copyTo and ByteQueue.takeViews: a write's bytes taken from the received chunks without
// joining them, copied out at any offset, across any number of chunk boundaries.
import { expect, test } from "bun:test";
import { ByteQueue } from "../../vdisk/nbd/byte-queue.ts";
import { Payload } from "../../vdisk/nbd/payload.ts";

function bytes(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);
}

test("takeViews returns views of the queued chunks, in order, without copying", () => {
  const q = new ByteQueue();
  const chunks = [bytes(10, 1), bytes(7, 2), bytes(20, 3)];
  for (const c of chunks) q.push(c);
  q.take(4);
  const views = q.takeViews(25);
  expect(views.map((v) => v.length)).toEqual([6, 7, 12]);
  expect(views[0].buffer).toBe(chunks[0].buffer);
  expect(views[2].buffer).toBe(chunks[2].buffer);
  expect(q.length).toBe(8);
  expect(Buffer.from(q.take(8)).equals(Buffer.from(chunks[2].subarray(12)))).toBe(true);
  expect(() => q.takeViews(1)).toThrow(RangeError);
});

test("copyTo copies any range of a payload spread over parts, including empty parts", () => {
  const whole = bytes(100, 9);
  const parts = [whole.subarray(0, 13), whole.subarray(13, 13), whole.subarray(13, 64), whole.subarray(64, 65), whole.subarray(65)];
  const p = new Payload(parts);
  expect(p.length).toBe(100);
  for (const [from, n] of [[0, 100], [0, 13], [13, 0], [12, 2], [13, 51], [20, 60], [64, 1], [99, 1], [100, 0]]) {
    const into = new Uint8Array(n + 6).fill(0xee);
    p.copyTo(into, 3, from, n);
    expect(Buffer.from(into.subarray(3, 3 + n)).equals(Buffer.from(whole.subarray(from, from + n)))).toBe(true);
    expect([...into.subarray(0, 3), ...into.subarray(3 + n)]).toEqual([0xee, 0xee, 0xee, 0xee, 0xee, 0xee]);
  }
  expect(() => p.copyTo(new Uint8Array(10), 0, 95, 6)).toThrow(RangeError);
  expect(() => p.copyTo(new Uint8Array(10), 0, -1, 2)).toThrow(RangeError);
});
