// ReplyWriter: replies built in the batch, large buffers and views interleaved, a socket that takes
// a few bytes at a time: every byte goes out once, each reply whole and in queue order, and a
// batch still waiting for the socket is never overwritten by later replies.
import { expect, test } from "bun:test";
import { MAX_BATCHED, ReplyWriter } from "../../vdisk/nbd/reply-writer.ts";
import { randomBytes } from "./helpers.ts";

/** Takes at most `chunk` bytes per write, and nothing more until drained. */
class TrickleSocket {
  readonly out: number[] = [];
  open = true;
  constructor(private readonly chunk: number) {}
  write(data: Uint8Array): number {
    if (!this.open) return 0;
    const n = Math.min(this.chunk, data.length);
    for (let i = 0; i < n; i++) this.out.push(data[i]);
    this.open = false;
    return n;
  }
}

const turn = () => new Promise<void>((r) => setTimeout(r, 0));

test("batched, large and view replies come out whole and in order through a trickling socket", async () => {
  const socket = new TrickleSocket(1000);
  const w = new ReplyWriter(socket, () => {});
  const expected: Uint8Array[] = [];
  const reserveFilled = (n: number, seed: number) => {
    const r = w.reserve(n)!;
    const data = randomBytes(n, seed);
    r.set(data);
    expected.push(data);
  };
  let bigDone = false;
  reserveFilled(16, 1);
  reserveFilled(4112, 2);
  const big = randomBytes(MAX_BATCHED + 1, 3);
  w.send(big, () => (bigDone = true));
  expected.push(big.slice());
  const views = [randomBytes(70_000, 4), randomBytes(70_000, 5)];
  w.sendViews(views);
  expected.push(...views);
  reserveFilled(4112, 6);
  // An unfilled reservation taken back leaves no trace.
  w.unreserve(w.reserve(300)!);
  await turn();
  expect(bigDone).toBe(false);
  // More replies while the socket is blocked: they must land after what is still queued.
  for (let i = 0; i < 200; i++) reserveFilled(4112, 100 + i);
  const drainAll = async () => {
    const total = expected.reduce((a, b) => a + b.length, 0);
    for (let i = 0; i < 10_000 && socket.out.length < total; i++) {
      socket.open = true;
      w.drained();
      await turn();
    }
  };
  await drainAll();
  expect(w.idle).toBe(true);
  // Everything went out: the next replies reuse the batch from its start.
  reserveFilled(16, 998);
  reserveFilled(4112, 999);
  await drainAll();
  const want = Buffer.concat(expected);
  expect(socket.out.length).toBe(want.length);
  expect(Buffer.from(socket.out).equals(want)).toBe(true);
  expect(bigDone).toBe(true);
  expect(w.idle).toBe(true);
  expect(w.pendingBytes).toBe(0);
});

test("reserve refuses what does not fit the batch; a killed writer drops everything", async () => {
  const socket = new TrickleSocket(1 << 30);
  const w = new ReplyWriter(socket, () => {});
  expect(w.reserve(MAX_BATCHED + 1)).toBeNull();
  w.reserve(16)!.fill(7);
  w.kill();
  w.send(new Uint8Array(10));
  await turn();
  expect(socket.out.length).toBe(0);
  expect(w.pendingBytes).toBe(0);
});
