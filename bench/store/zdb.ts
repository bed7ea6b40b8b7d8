// zdb server vs Debian redis-server (appendonly yes, appendfsync everysec), both driven by
// redis-benchmark: SET and GET with 4 KiB and 512 KiB values, 50 clients, in one run.
// Each server gets a fresh temp dir and an ephemeral port; ops/s come from redis-benchmark's CSV,
// best of two alternating rounds per side. SET and GET run one after the other (GET reads the keys
// SET wrote), and the server's CPU time per operation is taken around each: unlike ops/s, it
// barely moves with other load on the machine, so it shows whether a ratio that swung is the
// servers' doing or the machine's.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchResult } from "../lib/report.ts";
import { startZdb } from "../../test/store/zdb-process.ts";
import { cpuSeconds } from "../lib/proc.ts";

interface Case {
  size: number;
  label: string;
  requests: number;
  keyspace: number;
}

const cases: Case[] = [
  { size: 4096, label: "4 KiB", requests: 200_000, keyspace: 10_000 },
  { size: 512 * 1024, label: "512 KiB", requests: 6_000, keyspace: 200 },
];
const CLIENTS = 50;
const ROUNDS = 2;

async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

interface Figures {
  ops: number;
  /** Server CPU microseconds per operation. */
  cpuUs: number;
}

/** ops/s of one redis-benchmark test ("SET" or "GET") and what it cost the server (pid) in CPU. */
async function redisBenchmark(port: number, pid: number, c: Case, op: "SET" | "GET"): Promise<Figures> {
  const args = ["redis-benchmark", "-h", "127.0.0.1", "-p", String(port), "-c", String(CLIENTS), "-n", String(c.requests), "-r", String(c.keyspace), "-d", String(c.size), "-t", op.toLowerCase(), "--csv"];
  const cpu0 = cpuSeconds(pid);
  const p = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new Error(`redis-benchmark failed: ${err}`);
  const cpuUs = ((cpuSeconds(pid) - cpu0) * 1e6) / c.requests;
  for (const line of out.split("\n")) {
    const m = /^"(SET|GET)","([\d.]+)"/.exec(line);
    if (m && m[1] === op) return { ops: Number(m[2]), cpuUs };
  }
  throw new Error(`redis-benchmark printed no ${op} figure:\n${out}\n${err}`);
}

/** SET then GET against one server. */
async function setThenGet(port: number, pid: number, c: Case): Promise<Map<string, Figures>> {
  const set = await redisBenchmark(port, pid, c, "SET");
  const get = await redisBenchmark(port, pid, c, "GET");
  return new Map([["SET", set], ["GET", get]]);
}

async function withRedis<T>(fn: (port: number, pid: number) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "bench-redis-"));
  const port = await freePort();
  const p = Bun.spawn(["redis-server", "--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--logfile", ""], { stdout: "ignore", stderr: "ignore" });
  try {
    for (let i = 0; ; i++) {
      const ping = Bun.spawnSync(["redis-cli", "-p", String(port), "PING"]);
      if (ping.stdout.toString().trim() === "PONG") break;
      if (i > 100) throw new Error("redis-server did not start");
      await Bun.sleep(50);
    }
    return await fn(port, p.pid);
  } finally {
    p.kill("SIGKILL");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

async function withZdb<T>(fn: (port: number, pid: number) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "bench-zdb-"));
  const z = await startZdb(join(dir, "data"), ["--fsync", "everysec"]);
  try {
    return await fn(z.port, z.proc.pid);
  } finally {
    await z.kill9();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function benchZdb(): Promise<BenchResult[]> {
  const results: BenchResult[] = [];
  for (const c of cases) {
    // Two alternating rounds, best of each side: the machine is shared, and alternating keeps a
    // burst of someone else's load from landing on one side only.
    const ours = new Map<string, Figures>();
    const peer = new Map<string, Figures>();
    // Best ops/s and lowest CPU per op, each over the rounds.
    const keepBest = (into: Map<string, Figures>, from: Map<string, Figures>) => {
      for (const [op, f] of from) {
        const had = into.get(op);
        into.set(op, had ? { ops: Math.max(had.ops, f.ops), cpuUs: Math.min(had.cpuUs, f.cpuUs) } : f);
      }
    };
    for (let round = 0; round < ROUNDS; round++) {
      keepBest(ours, await withZdb((port, pid) => setThenGet(port, pid, c)));
      keepBest(peer, await withRedis((port, pid) => setThenGet(port, pid, c)));
    }
    for (const [op, goal] of [["SET", 0.5], ["GET", 0.7]] as const) {
      results.push({
        name: `zdb ${op} ${c.label}, ${CLIENTS} clients (redis-benchmark)`,
        value: ours.get(op)!.ops,
        unit: "ops/s",
        peer: "redis-server appendonly everysec",
        peer_value: peer.get(op)!.ops,
        higher_is_better: true,
        goal: `>= ${goal}x peer`,
      });
      results.push({
        name: `zdb ${op} ${c.label}: server CPU per op`,
        value: ours.get(op)!.cpuUs,
        unit: "µs",
        peer: "redis-server appendonly everysec",
        peer_value: peer.get(op)!.cpuUs,
        higher_is_better: false,
        goal: "informational: load-independent view of the ratio above",
      });
    }
  }
  return results;
}
