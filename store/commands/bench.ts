// zstore bench: put and get throughput of the configured store with random blocks, deleted afterwards.
import { parseArgs } from "node:util";
import { randomBytes } from "node:crypto";
import { blake3 } from "../../native/index.ts";
import type { BlockBackend, BlockId } from "../types.ts";
import { openFromArgs, parseSize, runCommand, UsageError } from "./common.ts";

const usage = "usage: zstore bench [-c CONFIG | -s URL ...] [--size 512k] [--blocks 256] [--parallel 16]";

/** Runs `work(worker, i)` for i < count with `parallel` workers; resolves to seconds taken. */
export async function timed(count: number, parallel: number, work: (worker: number, i: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(parallel, count) }, async (_, worker) => {
    while (next < count) await work(worker, next++);
  }));
  return (performance.now() - started) / 1000;
}

/**
 * `count` distinct blocks of `size` bytes: one random base with the block number in its first four
 * bytes. Ids are computed up front and each worker refills its own buffer, so a timed run measures
 * the store, not the making of test data.
 */
export class BenchBlocks {
  readonly ids: BlockId[];
  private readonly base: Uint8Array;

  constructor(readonly size: number, readonly count: number) {
    this.base = new Uint8Array(randomBytes(size));
    const scratch = new Uint8Array(size);
    this.ids = Array.from({ length: count }, (_, i) => blake3(this.fill(scratch, i)));
  }

  fill(buf: Uint8Array, i: number): Uint8Array {
    buf.set(this.base);
    new DataView(buf.buffer, buf.byteOffset).setUint32(0, i, true);
    return buf;
  }

  /** Puts every block with `parallel` in flight; resolves to seconds taken. */
  putAll(store: BlockBackend, parallel: number): Promise<number> {
    const buffers = Array.from({ length: parallel }, () => new Uint8Array(this.size));
    return timed(this.count, parallel, (w, i) => store.put(this.ids[i], this.fill(buffers[w], i)));
  }

  /** Gets every block back and checks it is the right one; resolves to seconds taken. */
  getAll(store: BlockBackend, parallel: number): Promise<number> {
    return timed(this.count, parallel, async (_, i) => {
      const got = await store.get(this.ids[i]);
      if (!got || got.length !== this.size || new DataView(got.buffer, got.byteOffset).getUint32(0, true) !== i) {
        throw new Error(`block ${i} did not read back`);
      }
    });
  }
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
      const data = new BenchBlocks(size, blocks);
      const mb = (size * blocks) / 1e6;
      const putMBps = mb / (await data.putAll(store, parallel));
      const getMBps = mb / (await data.getAll(store, parallel));
      process.stdout.write(`put ${putMBps.toFixed(1)} MB/s, get ${getMBps.toFixed(1)} MB/s (${blocks} blocks of ${size} bytes, ${parallel} in flight)\n`);
      await Promise.all(data.ids.map((id) => store.delete(id)));
    } finally {
      await store.close();
    }
    return 0;
  });
}
