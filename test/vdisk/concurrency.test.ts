// BoundedRun: the put pipeline of a flush (concurrency limit, raising it mid-run, failures).
import { expect, test } from "bun:test";
import { BoundedRun } from "../../vdisk/model/concurrency.ts";

function tracker() {
  let active = 0;
  const seen: number[] = [];
  const fn = async (ms: number) => {
    active++;
    seen.push(active);
    await Bun.sleep(ms);
    active--;
  };
  return { seen, fn };
}

test("never runs more than the limit, and runs every item", async () => {
  const t = tracker();
  const done: number[] = [];
  const run = new BoundedRun(Array.from({ length: 20 }, (_, i) => i), 3, async (i) => {
    await t.fn(1);
    done.push(i);
  });
  await run.done;
  expect(Math.max(...t.seen)).toBe(3);
  expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => i));
});

test("raising the limit mid-run starts more workers", async () => {
  let active = 0;
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const run = new BoundedRun(Array.from({ length: 40 }, (_, i) => i), 1, async () => {
    active++;
    await gate;
  });
  expect(active).toBe(1);
  run.raise(8);
  expect(active).toBe(8); // the new workers start at once
  release();
  await run.done;
  expect(active).toBe(40);
});

test("an empty run is done at once; after a failure nothing new starts, and it rejects once the started ones settle", async () => {
  await new BoundedRun<number>([], 4, async () => {}).done;
  const started: number[] = [];
  const finished: number[] = [];
  const run = new BoundedRun([1, 2, 3, 4], 2, async (i) => {
    started.push(i);
    if (i === 2) throw new Error("put failed");
    await Bun.sleep(1);
    finished.push(i);
  });
  await expect(run.done).rejects.toThrow("put failed");
  expect(started).toEqual([1, 2]);
  expect(finished).toEqual([1]);
});
