// zdb server vs Debian redis-server (appendonly yes, appendfsync everysec), both driven by
// redis-benchmark: SET and GET with 4 KiB and 512 KiB values, 50 clients, in one run.
// Each server gets a fresh temp dir and an ephemeral port; ops/s come from redis-benchmark's CSV,
// best of two alternating rounds per side.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BenchResult } from "../lib/report.ts";
import { startZdb } from "../../test/store/zdb-process.ts";

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

/** ops/s per test name ("SET", "GET") from one redis-benchmark run. */
async function redisBenchmark(port: number, c: Case): Promise<Map<string, number>> {
  const args = ["redis-benchmark", "-h", "127.0.0.1", "-p", String(port), "-c", String(CLIENTS), "-n", String(c.requests), "-r", String(c.keyspace), "-d", String(c.size), "-t", "set,get", "--csv"];
  const p = Bun.spawn(args, { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  if ((await p.exited) !== 0) throw new Error(`redis-benchmark failed: ${err}`);
  const result = new Map<string, number>();
  for (const line of out.split("\n")) {
    const m = /^"(SET|GET)","([\d.]+)"/.exec(line);
    if (m) result.set(m[1], Number(m[2]));
  }
  if (!result.has("SET") || !result.has("GET")) throw new Error(`redis-benchmark printed no SET/GET figures:\n${out}\n${err}`);
  return result;
}

async function withRedis<T>(fn: (port: number) => Promise<T>): Promise<T> {
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
    return await fn(port);
  } finally {
    p.kill("SIGKILL");
    await p.exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

async function withZdb<T>(fn: (port: number) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), "bench-zdb-"));
  const z = await startZdb(join(dir, "data"), ["--fsync", "everysec"]);
  try {
    return await fn(z.port);
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
    const ours = new Map<string, number>();
    const peer = new Map<string, number>();
    const keepBest = (into: Map<string, number>, from: Map<string, number>) => {
      for (const [op, v] of from) into.set(op, Math.max(into.get(op) ?? 0, v));
    };
    for (let round = 0; round < ROUNDS; round++) {
      keepBest(ours, await withZdb((port) => redisBenchmark(port, c)));
      keepBest(peer, await withRedis((port) => redisBenchmark(port, c)));
    }
    for (const [op, goal] of [["SET", 0.5], ["GET", 0.7]] as const) {
      results.push({
        name: `zdb ${op} ${c.label}, ${CLIENTS} clients (redis-benchmark)`,
        value: ours.get(op)!,
        unit: "ops/s",
        peer: "redis-server appendonly everysec",
        peer_value: peer.get(op)!,
        higher_is_better: true,
        goal: `>= ${goal}x peer`,
      });
    }
  }
  return results;
}
