// zstore repair: one pass, or every --every interval (background mode), with progress.
import { parseArgs } from "node:util";
import { repair, repairForever, type RepairReport } from "../repair.ts";
import { StoreError } from "../types.ts";
import { openErasureFromArgs, runCommand, UsageError } from "./common.ts";
import { progressSink } from "./progress.ts";

const usage = "usage: zstore repair [-c CONFIG] [--no-verify] [--dry-run] [--json] [--background [--every 10m]]";

function parseInterval(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!m) throw new UsageError(`--every: not a duration like 30s, 10m, 1h: "${text}"`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
}

export function repairCommand(argv: string[]): Promise<number> {
  return runCommand("repair", usage, async () => {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        config: { type: "string", short: "c" },
        "no-verify": { type: "boolean", default: false },
        "dry-run": { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        background: { type: "boolean", default: false },
        every: { type: "string" },
      },
      allowPositionals: true,
    });
    if (positionals.length) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const { store, config } = await openErasureFromArgs(values);
    const sink = progressSink(Boolean(process.stderr.isTTY) && !values.json);
    const opts = {
      verify: !values["no-verify"],
      dryRun: values["dry-run"],
      concurrency: config.repair.concurrency,
      onProgress: sink.update,
    };
    try {
      if (values.background || values.every) {
        const interval = values.every ? parseInterval(values.every) : config.repair.intervalMs;
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once("SIGTERM", onSignal);
        process.once("SIGINT", onSignal);
        await repairForever(store, interval, {
          ...opts,
          signal: stop.signal,
          onReport: (r: RepairReport | StoreError) => {
            if (r instanceof StoreError) process.stderr.write(`zstore repair: pass failed: ${r.code}: ${r.message}\n`);
            else sink.done(r);
          },
        });
        return 0;
      }
      const report = await repair(store, opts);
      sink.done(report);
      return report.unrecoverable.length > 0 || report.stillDegraded > 0 ? 1 : 0;
    } finally {
      await store.close();
    }
  });
}
