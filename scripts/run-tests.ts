// Runs every test suite with `bun test` and ends with the one summary line CI reads:
// "N passed, N failed[, N skipped]". Counts come from Bun's JUnit report, not from its console output.
import { mkdirSync, readFileSync, existsSync, rmSync } from "node:fs";

const reportPath = "build/test-results/junit.xml";
mkdirSync("build/test-results", { recursive: true });
if (existsSync(reportPath)) rmSync(reportPath);

const args = process.argv.slice(2);
const proc = Bun.spawn(
  // Integration tests start real processes; 60 s per test unless a test sets its own bound.
  [process.execPath, "test", "--timeout=60000", "--reporter=junit", `--reporter-outfile=${reportPath}`, ...args],
  { stdio: ["inherit", "inherit", "inherit"] },
);
const exitCode = await proc.exited;

let passed = 0, failed = 0, skipped = 0;
if (existsSync(reportPath)) {
  const xml = readFileSync(reportPath, "utf8");
  // Each <testcase> is one test; a child <failure>/<error>/<skipped> says how it ended.
  for (const m of xml.matchAll(/<testcase\b[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g)) {
    const body = m[1] ?? "";
    if (/<(failure|error)\b/.test(body)) failed++;
    else if (/<skipped\b/.test(body)) skipped++;
    else passed++;
  }
}
// A runner that died before writing its report, or exited non-zero with no failing test, still fails.
if (exitCode !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 ? 1 : 0);
