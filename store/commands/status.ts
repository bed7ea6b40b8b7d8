// zstore status: backend health and how many blocks are below full redundancy.
import { parseArgs } from "node:util";
import { storeStatus } from "../status.ts";
import { openErasureFromArgs, runCommand, UsageError } from "./common.ts";

const usage = "usage: zstore status [-c CONFIG] [--verify] [--json]";

export function statusCommand(argv: string[]): Promise<number> {
  return runCommand("status", usage, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", short: "c" },
        verify: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
      },
      allowPositionals: true,
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const { store } = await openErasureFromArgs(values);
    try {
      const s = await storeStatus(store, { verify: values.verify });
      if (values.json) {
        process.stdout.write(JSON.stringify(s, null, 2) + "\n");
      } else {
        process.stdout.write(`erasure coding ${s.k}+${s.m}, ${s.backends.length} backends\n`);
        for (const b of s.backends) {
          process.stdout.write(`  ${b.healthy ? "up  " : "DOWN"}  ${b.group.padEnd(10)} ${b.url}${b.healthy ? `  ${b.latencyMs} ms` : `  ${b.error}`}\n`);
        }
        const r = s.blocks;
        process.stdout.write(`blocks: ${r.blocks}, below full redundancy: ${r.degraded}, unrecoverable: ${r.unrecoverable.length}, misplaced: ${r.misplaced}${values.verify ? " (shards verified)" : " (by presence; --verify reads every shard)"}\n`);
        for (const u of r.unlisted) process.stdout.write(`  not listed: ${u.backend}: ${u.error}\n`);
      }
      return s.backends.every((b) => b.healthy) && s.blocks.degraded === 0 && s.blocks.unlisted.length === 0 ? 0 : 1;
    } finally {
      await store.close();
    }
  });
}
