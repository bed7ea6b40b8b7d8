// Repair progress: a bar on a terminal, one JSON object per line otherwise (for logs and tools).
import type { RepairProgress, RepairReport } from "../repair.ts";

export interface ProgressSink {
  update(p: RepairProgress): void;
  done(r: RepairReport): void;
}

export function progressSink(tty: boolean, out: NodeJS.WriteStream = process.stderr, json: NodeJS.WritableStream = process.stdout): ProgressSink {
  if (!tty) {
    let lastLine = 0;
    return {
      update(p) {
        // One line per 1% (and the last), so a log of a big store stays readable.
        const step = Math.max(1, Math.floor(p.total / 100));
        if (p.phase === "repair" && p.done !== p.total && p.done - lastLine < step) return;
        lastLine = p.done;
        json.write(JSON.stringify({ event: "progress", ...p }) + "\n");
      },
      done(r) {
        json.write(JSON.stringify({ event: "done", ...r }) + "\n");
      },
    };
  }
  let lastDraw = 0;
  return {
    update(p) {
      const now = performance.now();
      if (now - lastDraw < 100 && p.done !== p.total) return;
      lastDraw = now;
      if (p.phase === "scan") {
        out.write(`\rscanning: ${p.done} blocks found`);
        return;
      }
      const width = 30;
      const frac = p.total ? p.done / p.total : 1;
      const bar = "#".repeat(Math.round(frac * width)).padEnd(width, ".");
      out.write(`\r[${bar}] ${p.done}/${p.total} ${(frac * 100).toFixed(0)}%  repaired ${p.repaired}  degraded ${p.degraded}  lost ${p.unrecoverable}`);
    },
    done(r) {
      out.write(
        `\n${r.blocks} blocks: ${r.healthy} healthy, ${r.degraded} degraded, ${r.repaired} repaired (${r.shardsWritten} shards written, ${r.straysRemoved} strays removed), ${r.stillDegraded} still degraded, ${r.unrecoverable.length} unrecoverable\n`,
      );
      for (const u of r.unlisted) out.write(`  could not list ${u.backend}: ${u.error}\n`);
      for (const id of r.unrecoverable) out.write(`  unrecoverable: ${id}\n`);
    },
  };
}
