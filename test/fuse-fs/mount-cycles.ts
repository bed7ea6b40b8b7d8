// Run as a child by spare-reader.test.ts: mounts and unmounts an flist a few times with mountFlist and
// prints this process's thread count after the first cycle and after the last, and how many distinct
// worker threads one-reader mounts ran on, then returns without process.exit: it must end by itself
// (the spare reader thread must not keep it alive).
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mountFlist, pack } from "../../fuse-fs/index.ts";

const dir = process.argv[2]!;
const CYCLES = 20;
mkdirSync(join(dir, "src"));
writeFileSync(join(dir, "src/a"), "a\n");
await pack({ source: join(dir, "src"), output: join(dir, "x.fl"), stores: [`dir://${join(dir, "store")}`] });

const threads = () => readdirSync("/proc/self/task").length;
/** Terminated workers' threads end asynchronously: the count once it held still for 50 ms (bounded). */
async function settledThreads(): Promise<number> {
  let n = threads();
  for (let i = 0; i < 40; i++) {
    await Bun.sleep(50);
    if (threads() === n) break;
    n = threads();
  }
  return n;
}

/** Thread ids of the worker threads (Bun names a Worker's JS thread "Worker"); no decode workers run here. */
const workerThreads = () => readdirSync("/proc/self/task").filter((t) => readFileSync(`/proc/self/task/${t}/comm`, "utf8") === "Worker\n");

async function cycle(i: number, readers = 2): Promise<void> {
  const mnt = join(dir, `mnt${i}`);
  mkdirSync(mnt);
  const m = await mountFlist({ flist: join(dir, "x.fl"), mountpoint: mnt, cacheDir: join(dir, "cache"), readers });
  if (readers === 1) for (const t of workerThreads()) readerThreads.add(t);
  await m.unmount();
}
const readerThreads = new Set<string>();

// The first cycle starts the threads that stay for the process's life (decode pool, the next spare).
await cycle(0);
const base = await settledThreads();
for (let i = 1; i <= CYCLES; i++) await cycle(i);
const after = await settledThreads();
for (let i = CYCLES + 1; i <= 2 * CYCLES; i++) await cycle(i, 1);
console.log(JSON.stringify({ base, after, readerThreads: readerThreads.size }));
