// zstore bench: put and get throughput of the configured store with random blocks, deleted afterwards.
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { blake3 } from "../../native/index.ts";
import type { BlockBackend, BlockId } from "../types.ts";
import { openFromArgs, parseSize, runCommand, UsageError } from "./common.ts";

const usage = "usage: zstore bench [-c CONFIG | -s URL ...] [--size 512k] [--blocks 256] [--parallel 16]";

export interface Throughput {
  putMBps: number;
  getMBps: number;
  ids: BlockId[];
}

/** Runs `work(i)` for i < count with `parallel` in flight; resolves to seconds taken. */
export async function timed(count: number, parallel: number, work: (i: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, async () => {
    while (next < count) await work(next++);
  }));
  return (performance.now() - started) / 1000;
}

/**
 * Puts `blocks` distinct blocks of `size` bytes (random base, a counter in the first bytes), then
 * gets them all back and checks each one. MB/s counts block bytes (1 MB = 10^6 bytes).
 */
export async function measureThroughput(store: BlockBackend, opts: { size: number; blocks: number; parallel: number }): Promise<Throughput> {
  const base = randomBytes(opts.size);
  const makeBlock = (i: number) => {
    const b = new Uint8Array(base);
    new DataView(b.buffer).setUint32(0, i, true);
    return b;
  };
  const ids: BlockId[] = new Array(opts.blocks);
  const putSeconds = await timed(opts.blocks, opts.parallel, async (i) => {
    const b = makeBlock(i);
    ids[i] = blake3(b);
    await store.put(ids[i], b);
  });
  const getSeconds = await timed(opts.blocks, opts.parallel, async (i) => {
    const got = await store.get(ids[i]);
    if (!got || got.length !== opts.size || new DataView(got.buffer, got.byteOffset).getUint32(0, true) !== i) {
      throw new Error(`block ${i} did not read back`);
    }
  });
  const bytes = opts.size * opts.blocks;
  return { putMBps: bytes / putSeconds / 1e6, getMBps: bytes / getSeconds / 1e6, ids };
}

export function benchCommand(argv: string[]): Promise<number> {
  return runCommand("bench", usage, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", short: "c" },
        store: { type: "string", short: "s", multiple: true },
        size: { type: "string", default: "512k" },
        blocks: { type: "string", default: "256" },
        parallel: { type: "string", default: "16" },
      },
      allowPositionals: true,
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const size = parseSize(values.size!, "--size");
    const blocks = Number(values.blocks);
    const parallel = Number(values.parallel);
    if (!(size > 0 && blocks > 0 && parallel > 0)) throw new UsageError("--size, --blocks and --parallel must be positive");
    const store = await openFromArgs(values);
    try {
      const r = await measureThroughput(store, { size, blocks, parallel });
      process.stdout.write(`put ${r.putMBps.toFixed(1)} MB/s, get ${r.getMBps.toFixed(1)} MB/s (${blocks} blocks of ${size} bytes, ${parallel} in flight)\n`);
      await Promise.all(r.ids.map((id) => store.delete(id)));
    } finally {
      await store.close();
    }
    return 0;
  });
}
