// Shared by every bench/<area>.ts: prints a table, writes bench/results/<area>.json and
// replaces that area's table in bench/README.md (between <!-- bench:<area> --> markers).
import { readFileSync, writeFileSync, mkdirSync, existsSync } from "node:fs";
import { cpus, release } from "node:os";
import { join } from "node:path";

export interface BenchResult {
  name: string;
  value: number;
  unit: string;
  /** The named peer measured in the same run; omitted for figures that have none. */
  peer?: string;
  peer_value?: number;
  higher_is_better: boolean;
  goal: string;
}

interface StoredResult extends BenchResult { ratio?: number }

const benchDir = join(import.meta.dir, "..");

export function machineDescription(): string {
  const cpu = cpus()[0]?.model ?? "unknown cpu";
  return `${cpu.trim()}, ${cpus().length} cores, Linux ${release()}`;
}

function round(x: number): number {
  return Number(x.toPrecision(4));
}

function withRatios(results: BenchResult[]): StoredResult[] {
  return results.map((r) => {
    const out: StoredResult = { ...r, value: round(r.value) };
    if (r.peer_value !== undefined) {
      out.peer_value = round(r.peer_value);
      // ratio = ours / peer, whatever the direction; the goal column says which way is good.
      out.ratio = r.peer_value === 0 ? undefined : round(r.value / r.peer_value);
    }
    return out;
  });
}

function markdownTable(results: StoredResult[]): string {
  const rows = results.map((r) =>
    `| ${r.name} | ${r.value} ${r.unit} | ${r.peer ?? "-"} | ${r.peer_value !== undefined ? `${r.peer_value} ${r.unit}` : "-"} | ${r.ratio ?? "-"} | ${r.higher_is_better ? "higher" : "lower"} | ${r.goal} |`,
  );
  return ["| figure | ours | peer | peer value | ratio | better | goal |", "|---|---|---|---|---|---|---|", ...rows].join("\n");
}

export function report(area: string, results: BenchResult[]): void {
  const stored = withRatios(results);
  const date = new Date().toISOString();
  const machine = machineDescription();
  mkdirSync(join(benchDir, "results"), { recursive: true });
  writeFileSync(join(benchDir, "results", `${area}.json`), JSON.stringify({ machine, date, results: stored }, null, 2) + "\n");

  const table = markdownTable(stored);
  console.log(`\n${area} (${machine})\n${table}\n`);

  const readmePath = join(benchDir, "README.md");
  const readme = existsSync(readmePath) ? readFileSync(readmePath, "utf8") : "# Benchmarks\n";
  const section = `<!-- bench:${area} -->\n## ${area}\n\nLast run ${date} on ${machine}.\n\n${table}\n<!-- /bench:${area} -->`;
  const pattern = new RegExp(`<!-- bench:${area} -->[\\s\\S]*?<!-- /bench:${area} -->`);
  writeFileSync(readmePath, pattern.test(readme) ? readme.replace(pattern, section) : `${readme.trimEnd()}\n\n${section}\n`);
}
