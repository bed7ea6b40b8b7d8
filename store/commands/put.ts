// zstore put: cut a file (or stdin) into rfs blocks, store them, print "<id> <key>" per block in order.
import { parseArgs } from "node:util";
import { putBlock } from "../chunk.ts";
import { hex } from "../types.ts";
import { openFromArgs, parseSize, runCommand, UsageError } from "./common.ts";

const usage = "usage: zstore put [-c CONFIG | -s [xx-xx=]URL ...] [--block-size 512k] [--parallel N] FILE|-";

/** Yields the stream cut into pieces of exactly `size` bytes (the last one shorter). */
async function* blocksOf(stream: ReadableStream<Uint8Array>, size: number): AsyncIterable<Uint8Array> {
  let buf = new Uint8Array(size);
  let fill = 0;
  for await (const chunk of stream) {
    let off = 0;
    while (off < chunk.length) {
      const n = Math.min(size - fill, chunk.length - off);
      buf.set(chunk.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === size) {
        yield buf;
        buf = new Uint8Array(size);
        fill = 0;
      }
    }
  }
  if (fill > 0) yield buf.subarray(0, fill);
}

export function putCommand(argv: string[]): Promise<number> {
  return runCommand("put", usage, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", short: "c" },
        store: { type: "string", short: "s", multiple: true },
        "block-size": { type: "string", default: "512k" },
        parallel: { type: "string", default: "8" },
      },
      allowPositionals: true,
    });
    if (positionals.length !== 1) throw new UsageError("give exactly one FILE (or - for stdin)");
    const blockSize = parseSize(values["block-size"]!, "--block-size");
    const parallel = Number(values.parallel);
    if (!(blockSize > 0) || !(parallel >= 1)) throw new UsageError("--block-size and --parallel must be positive");
    const input = positionals[0] === "-" ? Bun.stdin.stream() : Bun.file(positionals[0]).stream();
    const store = await openFromArgs(values);
    try {
      // Stores up to `parallel` blocks at once, printing refs in input order.
      const inflight: Promise<string>[] = [];
      for await (const block of blocksOf(input, blockSize)) {
        inflight.push(putBlock(store, block).then((ref) => `${hex(ref.id)} ${hex(ref.key)}\n`));
        if (inflight.length >= parallel) process.stdout.write(await inflight.shift()!);
      }
      for (const line of inflight) process.stdout.write(await line);
    } finally {
      await store.close();
    }
    return 0;
  });
}
