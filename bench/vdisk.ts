// vdisk benchmark: fio's nbd engine against `zvdisk serve` and `nbdkit memory`, same machine,
// same run, both over unix sockets. Hot-data figures use a vdisk whose working set fits its cache
// (the store is a local dir); the sustained-write figure streams 2 GiB through a 256 MiB cache into
// an erasure-coded store (k=4 m=2) over six local zdb servers, ending with a flush, once with the
// default block size and once with 128 KiB blocks (the alternative vdisk/README.md weighs).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { report, type BenchResult } from "./lib/report.ts";
import { cpuSeconds } from "./lib/proc.ts";
import { randomBytes } from "node:crypto";
import { ZdbProcess } from "../test/store/cluster.ts";
import { openBackend } from "../store/index.ts";
import { DEFAULT_BLOCK_SIZE } from "../vdisk/index.ts";
import { blake2b256 } from "../native/index.ts";

const repo = join(import.meta.dir, "..");
const cli = join(repo, "vdisk", "cli.ts");
const work = mkdtempSync(join(tmpdir(), "bench-vdisk-"));
const RUNTIME = Number(process.env.BENCH_SECONDS ?? 10);
const REGION = "512M"; // working set of the hot-data runs

interface FioSide {
  iops: number;
  bw: number; // bytes/s
  p50: number; // µs
  p99: number;
}

async function fio(uri: string, args: string[]): Promise<{ read: FioSide; write: FioSide }> {
  const proc = Bun.spawn(["fio", "--name=bench", "--ioengine=nbd", `--uri=${uri}`, "--output-format=json", ...args], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`fio ${args.join(" ")} failed: ${err}${out}`);
  const job = JSON.parse(out.slice(out.indexOf("{"))).jobs[0];
  const side = (s: { iops: number; bw_bytes: number; clat_ns?: { percentile?: Record<string, number> } }): FioSide => ({
    iops: s.iops,
    bw: s.bw_bytes,
    p50: (s.clat_ns?.percentile?.["50.000000"] ?? 0) / 1000,
    p99: (s.clat_ns?.percentile?.["99.000000"] ?? 0) / 1000,
  });
  return { read: side(job.read), write: side(job.write) };
}

async function waitForLine(proc: Subprocess<"ignore", "pipe", "pipe">): Promise<string> {
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited: ${await new Response(proc.stderr).text()}`);
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return text;
}

async function zvdisk(storeArgs: string[], ...args: string[]): Promise<void> {
  const proc = Bun.spawn([process.execPath, cli, ...storeArgs, ...args], { stdout: "pipe", stderr: "pipe" });
  if ((await proc.exited) !== 0) throw new Error(`zvdisk ${args.join(" ")}: ${await new Response(proc.stderr).text()}`);
}

async function startZvdisk(storeArgs: string[], name: string, socket: string, cacheMb: number): Promise<Subprocess<"ignore", "pipe", "pipe">> {
  const proc = Bun.spawn([process.execPath, cli, ...storeArgs, "serve", "--unix", socket, "--cache-mb", String(cacheMb), name], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  await waitForLine(proc);
  return proc;
}

async function startNbdkit(socket: string): Promise<Subprocess> {
  const proc = Bun.spawn(["nbdkit", "--foreground", "--exit-with-parent", "-U", socket, "memory", "2G"], { stdout: "ignore", stderr: "inherit" });
  for (let i = 0; i < 100 && !(await Bun.file(socket).exists()); i++) await Bun.sleep(50);
  return proc;
}

const PEER = "nbdkit memory";
const timed = ["--time_based", `--runtime=${RUNTIME}`, "--ramp_time=1", `--size=${REGION}`];

/** Starts a fresh `zvdisk serve` for `name` and a fresh `nbdkit memory`, runs fn, stops both. */
async function sideBySide<T>(storeArgs: string[], name: string, fn: (both: (args: string[]) => Promise<{ ours: Awaited<ReturnType<typeof fio>>; peer: Awaited<ReturnType<typeof fio>> }>) => Promise<T>): Promise<T> {
  const oursSock = join(work, `${name}.sock`);
  const peerSock = join(work, `nbdkit-${name}.sock`);
  const ours = await startZvdisk(storeArgs, name, oursSock, 1536);
  const peer = await startNbdkit(peerSock);
  try {
    return await fn(async (args) => ({ ours: await fio(`nbd+unix:///${name}?socket=${oursSock}`, args), peer: await fio(`nbd+unix:///?socket=${peerSock}`, args) }));
  } finally {
    ours.kill(15);
    peer.kill(15);
    await Promise.all([ours.exited, peer.exited]);
  }
}

async function hotData(): Promise<BenchResult[]> {
  const storeArgs = ["--store", `dir://${join(work, "blocks")}`, "--catalog", `dir://${join(work, "catalog")}`];
  await zvdisk(storeArgs, "create", "hot", "--size", "2G");
  await zvdisk(storeArgs, "create", "fresh", "--size", "2G");
  // Reads: fill the working set with random data (so neither side can skip it), flush, measure.
  const reads = await sideBySide(storeArgs, "hot", async (both) => {
    await both(["--rw=write", "--bs=1M", "--iodepth=8", `--size=${REGION}`, "--refill_buffers", "--end_fsync=1"]);
    return {
      rr: await both(["--rw=randread", "--bs=4k", "--iodepth=32", ...timed]),
      lat: await both(["--rw=randread", "--bs=4k", "--iodepth=1", ...timed]),
      sr: await both(["--rw=read", "--bs=1M", "--iodepth=8", ...timed]),
    };
  });
  // Writes: fresh processes and an empty vdisk, so each run starts from a clean cache; the
  // write-back to the store (every 30 s, or at half the cache) runs when it comes due.
  const writes = await sideBySide(storeArgs, "fresh", async (both) => ({
    rw: await both(["--rw=randwrite", "--bs=4k", "--iodepth=32", "--refill_buffers", ...timed]),
    sw: await both(["--rw=write", "--bs=1M", "--iodepth=8", "--refill_buffers", ...timed]),
  }));
  const { rr, lat, sr } = reads;
  const { rw, sw } = writes;
  return [
    { name: "4 KiB random read, QD32, hot (IOPS)", value: rr.ours.read.iops, unit: "IOPS", peer: PEER, peer_value: rr.peer.read.iops, higher_is_better: true, goal: ">= 1.0x nbdkit memory" },
    { name: "4 KiB random write, QD32, write-back (IOPS)", value: rw.ours.write.iops, unit: "IOPS", peer: PEER, peer_value: rw.peer.write.iops, higher_is_better: true, goal: ">= 0.7x nbdkit memory" },
    { name: "1 MiB sequential read, QD8, hot", value: sr.ours.read.bw / 1e6, unit: "MB/s", peer: PEER, peer_value: sr.peer.read.bw / 1e6, higher_is_better: true, goal: ">= 0.8x nbdkit memory" },
    { name: "1 MiB sequential write, QD8, write-back", value: sw.ours.write.bw / 1e6, unit: "MB/s", peer: PEER, peer_value: sw.peer.write.bw / 1e6, higher_is_better: true, goal: "info" },
    { name: "4 KiB random read latency p50, QD1", value: lat.ours.read.p50, unit: "µs", peer: PEER, peer_value: lat.peer.read.p50, higher_is_better: false, goal: "info" },
    { name: "4 KiB random read latency p99, QD1", value: lat.ours.read.p99, unit: "µs", peer: PEER, peer_value: lat.peer.read.p99, higher_is_better: false, goal: "info" },
  ];
}

/** CPU seconds of these processes over fn: what a GiB costs on the machine, however busy it is. */
async function cpuOver<T>(pids: number[], fn: () => Promise<T>): Promise<{ result: T; cpu: number }> {
  const before = pids.map(cpuSeconds);
  const result = await fn();
  return { result, cpu: pids.reduce((sum, pid, i) => sum + cpuSeconds(pid) - before[i], 0) };
}

interface Sustained {
  mbps: number;
  cpuPerGiB: number;
}

/** What the store itself takes: blocks of the vdisk block size put 32 at a time, 512 MiB. */
async function rawStorePut(config: string, zdbPids: number[]): Promise<Sustained> {
  const store = await openBackend(`zstore://${config}`);
  try {
    const BLOCK = DEFAULT_BLOCK_SIZE;
    const COUNT = (512 * 2 ** 20) / BLOCK;
    const base = new Uint8Array(randomBytes(BLOCK));
    let next = 0;
    const start = performance.now();
    const client = process.cpuUsage();
    const { cpu } = await cpuOver(zdbPids, () =>
      Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < COUNT) {
            const b = new Uint8Array(base);
            new DataView(b.buffer).setUint32(0, next++);
            await store.put(blake2b256(b), b);
          }
        }),
      ),
    );
    const used = process.cpuUsage(client);
    const bytes = BLOCK * COUNT;
    return { mbps: bytes / 1e6 / ((performance.now() - start) / 1000), cpuPerGiB: (cpu + (used.user + used.system) / 1e6) / (bytes / 2 ** 30) };
  } finally {
    await store.close();
  }
}

/** 2 GiB of 1 MiB writes through a 256 MiB cache into a fresh vdisk, ending with a flush. */
async function ecWrite(storeArgs: string[], name: string, blockSize: number, zdbPids: number[]): Promise<Sustained> {
  await zvdisk(storeArgs, "create", name, "--size", "4G", "--block-size", String(blockSize));
  const sock = join(work, `${name}.sock`);
  const server = await startZvdisk(storeArgs, name, sock, 256);
  try {
    // end_fsync: the run ends with a FLUSH, so the figure counts data that reached the store.
    const { result, cpu } = await cpuOver([server.pid, ...zdbPids], () =>
      fio(`nbd+unix:///${name}?socket=${sock}`, ["--rw=write", "--bs=1M", "--iodepth=8", "--size=2G", "--refill_buffers", "--end_fsync=1"]),
    );
    return { mbps: result.write.bw / 1e6, cpuPerGiB: cpu / 2 };
  } finally {
    server.kill(15);
    await server.exited;
  }
}

async function sustainedWrite(): Promise<BenchResult[]> {
  const servers = await Promise.all(Array.from({ length: 6 }, () => ZdbProcess.start({ namespace: "vdisk", fsync: "everysec" })));
  try {
    const config = join(work, "zstore.yaml");
    const groups = [0, 1, 2].map((g) => `  - name: dc${g}\n    backends:\n${[0, 1].map((i) => `      - ${servers[g * 2 + i].url("vdisk")}\n`).join("")}`);
    writeFileSync(config, `k: 4\nm: 2\nsurvive_group_loss: 1\ngroups:\n${groups.join("")}`);
    const zdbPids = servers.map((z) => z.proc.pid);
    const raw = await rawStorePut(config, zdbPids);
    const storeArgs = ["--store", `zstore://${config}`, "--catalog", `dir://${join(work, "ec-catalog")}`];
    const ours = await ecWrite(storeArgs, "ec", DEFAULT_BLOCK_SIZE, zdbPids);
    const large = await ecWrite(storeArgs, "ec128k", 128 * 1024, zdbPids);
    const kib = DEFAULT_BLOCK_SIZE / 1024;
    return [
      {
        name: `sustained 1 MiB write into EC store (k=4 m=2, 6 local zdb), 2 GiB + flush, ${kib} KiB blocks`,
        value: ours.mbps,
        unit: "MB/s",
        peer: `the same store's put of ${kib} KiB blocks, 32 at once, no NBD`,
        peer_value: raw.mbps,
        higher_is_better: true,
        goal: ">= 250 MB/s",
      },
      {
        name: `CPU s per GiB of that write: zvdisk serve + 6 zdb (fio not counted)`,
        value: ours.cpuPerGiB,
        unit: "s",
        peer: `the store's put of ${kib} KiB blocks: client + 6 zdb (no NBD, no encoding)`,
        peer_value: raw.cpuPerGiB,
        higher_is_better: false,
        goal: "info: 250 MB/s on 2 cores leaves ~8.6 s per GiB for everything, fio included",
      },
      {
        name: "the same with 128 KiB blocks (not the default; see vdisk/README.md)",
        value: large.mbps,
        unit: "MB/s",
        peer: `${kib} KiB blocks, same run`,
        peer_value: ours.mbps,
        higher_is_better: true,
        goal: "info",
      },
    ];
  } finally {
    await Promise.all(servers.map((z) => z.destroy()));
  }
}

/**
 * Writes out the dirty page cache the previous phase left (the hot-data vdisk's flush on exit is
 * ~1.5 GiB of block files): otherwise the kernel writes it back during the sustained write, and
 * each zdb's once-a-second fsync waits on ext4 journal commits that carry it.
 */
function settleDisk(): void {
  const start = performance.now();
  Bun.spawnSync(["sync"]);
  console.log(`sync before the sustained write: ${((performance.now() - start) / 1000).toFixed(1)} s`);
}

try {
  const hot = await hotData();
  settleDisk();
  const results = [...hot, ...(await sustainedWrite())];
  report("vdisk", results);
} finally {
  rmSync(work, { recursive: true, force: true });
}
