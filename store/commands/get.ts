// zstore get: fetch rfs blocks by "<id> <key>" (or id:key) and write their plaintext in order.
import { parseArgs } from "node:util";
import { createWriteStream } from "node:fs";
import { getBlock, type BlockRef } from "../chunk.ts";
import { StoreError } from "../types.ts";
import { openFromArgs, runCommand, UsageError } from "./common.ts";

const usage = "usage: zstore get [-c CONFIG | -s [xx-xx=]URL ...] [-o OUT] [--parallel N] (ID:KEY ... | -)   (- reads \"ID KEY\" lines from stdin)";

function parseRef(text: string): BlockRef {
  const m = /^([0-9a-f]{64})[\s:]+([0-9a-f]{64})$/i.exec(text.trim());
  if (!m) throw new UsageError(`not a block reference "ID KEY" or "ID:KEY" (64 hex digits each): "${text.trim().slice(0, 140)}"`);
  return { id: Buffer.from(m[1], "hex"), key: Buffer.from(m[2], "hex") };
}

export function getCommand(argv: string[]): Promise<number> {
  return runCommand("get", usage, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", short: "c" },
        store: { type: "string", short: "s", multiple: true },
        output: { type: "string", short: "o" },
        parallel: { type: "string", default: "8" },
      },
      allowPositionals: true,
    });
    if (positionals.length === 0) throw new UsageError("give block references, or - to read them from stdin");
    const texts = positionals.length === 1 && positionals[0] === "-"
      ? (await Bun.stdin.text()).split("\n").filter((l) => l.trim() !== "")
      : positionals;
    const refs = texts.map(parseRef);
    const parallel = Math.max(1, Number(values.parallel) || 1);
    const store = await openFromArgs(values);
    const out = values.output ? createWriteStream(values.output) : process.stdout;
    try {
      const fetchOne = async (ref: BlockRef) => {
        const plain = await getBlock(store, ref);
        if (plain === null) throw new StoreError("unavailable", "block not found in any backend", { id: Buffer.from(ref.id).toString("hex") });
        return plain;
      };
      const inflight: Promise<Uint8Array>[] = [];
      let next = 0;
      while (next < refs.length || inflight.length > 0) {
        while (next < refs.length && inflight.length < parallel) inflight.push(fetchOne(refs[next++]));
        const plain = await inflight.shift()!;
        if (!out.write(plain)) await new Promise((r) => out.once("drain", r));
      }
    } finally {
      if (out !== process.stdout) await new Promise((r) => (out as ReturnType<typeof createWriteStream>).end(r));
      await store.close();
    }
    return 0;
  });
}
