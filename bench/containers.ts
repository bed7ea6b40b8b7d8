// Container benchmark. One host-mode init in private mount + network namespaces (as in the tests),
// a busybox root packed into an flist on a dir:// store, all in one run:
//  - create-to-running from the flist with its chunks cached: the first container of the flist (which
//    makes its FUSE mount) and one whose flist another container already mounted, with a private
//    network (netns, veth, bridge) and with host networking, against plain `crun run --detach` of the same root already
//    extracted on disk with a config.json of the same shape (the floor), timed inside the node's
//    namespaces so both sides pay the same process start-up. The floor comes in two kinds: with a
//    network namespace of its own (as `crun spec`'s default config has; crun makes it, empty), held
//    against our private-network rows, and with the host's network, held against our host-network
//    row. The goal (<= 2x the floor) is held against the first row: a new container with
//    the default private network from an flist whose chunks are cached and nothing else prepared.
//    The rows with the flist already mounted show what the FUSE mount costs. Both sides first run
//    WARMUP rounds that are not counted (init's JIT and the kernel's caches warm up, as on a node
//    that has been running a while); their median is reported on its own row;
//  - cold start: the flist's blocks on a local zdb server (`zstore serve`) and an empty chunk cache;
//  - 50 containers created concurrently: total time, and init's RSS growth per container.
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unpack } from "../fuse-fs/index.ts";
import { ociConfig } from "../init/containers/oci.ts";
import { withDefaults } from "../init/containers/spec.ts";
import type { ContainerInfo } from "../init/containers/index.ts";
import { bun, busyboxFlist, repoRoot, startNsNode } from "../test/containers/helpers.ts";
import { report, type BenchResult } from "./lib/report.ts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);
const WARMUP = 5;
const CONCURRENT = 50;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Runs inside the node's namespaces: for each line "N BUNDLE" on stdin, times `crun run --detach`
 * of that extracted bundle as container floor-N, prints the milliseconds, and deletes it. Driven
 * round by round, interleaved with ours, so both sides see the same machine load.
 */
const floorScript = `
const [root] = process.argv.slice(-1);
const crun = (...a) => ["crun", "--root", root, "--cgroup-manager=disabled", ...a];
for await (const line of console) {
  const [n, bundle] = line.trim().split(" ");
  const id = "floor-" + n;
  const t0 = performance.now();
  // no pipes: the detached container would hold them open
  const r = Bun.spawnSync(crun("run", "--detach", "--bundle", bundle, id), { stdio: ["ignore", "ignore", "ignore"] });
  const ms = performance.now() - t0;
  Bun.spawnSync(crun("delete", "--force", id), { stdio: ["ignore", "ignore", "ignore"] });
  console.log(r.exitCode === 0 ? String(ms) : "failed " + r.exitCode);
}
`;

function rssKb(pid: number): number {
  const status = Bun.spawnSync(["cat", `/proc/${pid}/status`]).stdout.toString();
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]);
}

const loadAvg = () => Number(readFileSync("/proc/loadavg", "utf8").split(" ")[0]);
const loadAtStart = loadAvg();
const fx = await busyboxFlist();
const work = mkdtempSync(join(tmpdir(), "bench-containers-"));
const node = await startNsNode(work);
const c = await node.client();
const results: BenchResult[] = [];
try {
  const create = (name: string, extra: Record<string, unknown> = {}) => c.call<ContainerInfo>("container.create", { name, flist: fx.flist, args: ["sleep", "1000"], ...extra });
  const remove = (name: string) => c.call("container.delete", { name, timeoutMs: 0 });

  // the floor: the same root extracted on disk, a config.json of the same shape without our mounts;
  // the "netns" bundle's config asks crun for a network namespace of its own, the "host" one not
  const rootfs = join(work, "floor-rootfs");
  mkdirSync(rootfs);
  await unpack({ flist: fx.flist, target: rootfs, preserveOwnership: true });
  const etc = join(work, "floor-etc");
  mkdirSync(etc);
  for (const f of ["hostname", "hosts", "resolv.conf"]) writeFileSync(join(etc, f), "");
  const spec = withDefaults({ name: "floor", flist: fx.flist, args: ["sleep", "1000"], network: "host" });
  const config = ociConfig(spec, { etcFiles: { hostname: join(etc, "hostname"), hosts: join(etc, "hosts"), resolv: join(etc, "resolv.conf") }, netnsPath: null, flistMountSources: [], cgroupsPath: null, nofileHard: 1024 });
  const FLOOR_KINDS = ["netns", "host"] as const;
  type FloorKind = (typeof FLOOR_KINDS)[number];
  const bundles: Record<FloorKind, string> = { netns: join(work, "floor-netns"), host: join(work, "floor-host") };
  const linux = config.linux as { namespaces: { type: string }[] };
  for (const kind of FLOOR_KINDS) {
    mkdirSync(bundles[kind]);
    const namespaces = kind === "netns" ? [...linux.namespaces, { type: "network" }] : linux.namespaces;
    writeFileSync(join(bundles[kind], "config.json"), JSON.stringify({ ...config, root: { ...(config.root as object), path: rootfs }, linux: { ...linux, namespaces } }));
  }
  const floorProc = Bun.spawn(["nsenter", "-t", String(node.pid), "-m", "-n", bun, "-e", floorScript, join(work, "floor-crun")], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const floorLines = (floorProc.stdout as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let floorBuffered = "";
  const floorTimes: Record<FloorKind, number[]> = { netns: [], host: [] };
  let floorRound = 0;
  const floorOnce = async (kind: FloorKind): Promise<number> => {
    floorProc.stdin.write(`${floorRound++} ${bundles[kind]}\n`);
    floorProc.stdin.flush();
    while (!floorBuffered.includes("\n")) {
      const { value, done } = await floorLines.read();
      if (done) throw new Error("floor helper exited");
      floorBuffered += decoder.decode(value, { stream: true });
    }
    const line = floorBuffered.slice(0, floorBuffered.indexOf("\n"));
    floorBuffered = floorBuffered.slice(line.length + 1);
    if (line.startsWith("failed")) throw new Error(`floor crun run (${kind}) ${line}`);
    return Number(line);
  };
  /** One floor run of each kind; counted unless it is a warm-up round. */
  const floorRounds = async (counted = true) => {
    for (const kind of FLOOR_KINDS) {
      const ms = await floorOnce(kind);
      if (counted) floorTimes[kind].push(ms);
    }
  };

  // warm the chunk cache and the bridge once; init keeps its mount thread from then on
  const rssIdle = rssKb(node.pid);
  await create("warm");
  await remove("warm");
  const rssWarm = rssKb(node.pid);
  const warmupTimes: number[] = [];
  const firstTimes: number[] = [];
  for (let i = 0; i < WARMUP + ROUNDS; i++) {
    const t0 = performance.now();
    await create(`f${i}`);
    (i < WARMUP ? warmupTimes : firstTimes).push(performance.now() - t0);
    await remove(`f${i}`);
    await floorRounds(i >= WARMUP);
  }
  const first = median(firstTimes);
  // the fastest rounds of both sides: what each costs when the machine let it run undisturbed
  const firstFastest = Math.min(...firstTimes), floorFastest = Math.min(...floorTimes.netns);
  // from here on a container of the same flist keeps its FUSE mount up, as on a node running several
  await create("keeper");

  const timed = async (extra: Record<string, unknown>) => {
    const times: number[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const t0 = performance.now();
      const info = await create(`b${i}`, extra);
      times.push(performance.now() - t0);
      if (info.state !== "running") throw new Error(`b${i} is ${info.state}`);
      await remove(`b${i}`);
      await floorRounds();
    }
    return median(times);
  };
  const ours = await timed({});
  const oursHost = await timed({ network: "host" });
  await remove("keeper");

  floorProc.stdin.end();
  await floorProc.exited;
  const floor = median(floorTimes.netns);
  const floorHost = median(floorTimes.host);
  const FLOOR = "crun run -d, extracted root, own network namespace";
  const FLOOR_HOST = "crun run -d, extracted root, host network";
  results.push(
    { name: "create-to-running, first container of a cached flist (FUSE mount made), private network", value: first, unit: "ms", peer: FLOOR, peer_value: floor, higher_is_better: false, goal: "<= 2x floor" },
    { name: "create-to-running, first container of a cached flist, private network: fastest round", value: firstFastest, unit: "ms", peer: `${FLOOR}: fastest round`, peer_value: floorFastest, higher_is_better: false, goal: "informational (on a busy machine)" },
    { name: "create-to-running, first container of a cached flist, private network, against the host-network floor", value: first, unit: "ms", peer: FLOOR_HOST, peer_value: floorHost, higher_is_better: false, goal: "informational (the floor before 2026-11-26; crun's default config has its own netns)" },
    { name: `create-to-running, first container of a cached flist: the ${WARMUP} warm-up rounds (not counted above)`, value: median(warmupTimes), unit: "ms", peer: FLOOR, peer_value: floor, higher_is_better: false, goal: "informational" },
    { name: "create-to-running, flist already mounted, private network", value: ours, unit: "ms", peer: FLOOR, peer_value: floor, higher_is_better: false, goal: "informational (goal is the first row)" },
    { name: "create-to-running, flist already mounted, host network", value: oursHost, unit: "ms", peer: FLOOR_HOST, peer_value: floorHost, higher_is_better: false, goal: "informational (goal is the first row)" },
  );

  // cold start: blocks on a zdb server inside the node's network namespace, chunk cache emptied each time
  const zdbData = join(work, "zdb");
  mkdirSync(zdbData);
  const zdb = Bun.spawn(["nsenter", "-t", String(node.pid), "-n", bun, join(repoRoot, "store/cli.ts"), "serve", "--data", zdbData, "--listen", "127.0.0.1:0", "--fsync", "never"], { stdout: "pipe", stderr: "pipe" });
  try {
    const reader = zdb.stdout.getReader();
    let text = "";
    let port = 0;
    while (!port) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`zdb exited: ${await new Response(zdb.stderr).text()}`);
      text += new TextDecoder().decode(value);
      port = Number(/zdb listening on [^\n]*:(\d+)\n/.exec(text)?.[1] ?? 0);
    }
    reader.releaseLock();
    void zdb.stdout.pipeTo(new WritableStream()).catch(() => {});
    const zdbFlist = join(work, "zdb.fl");
    const packed = node.inNode([bun, join(repoRoot, "fuse-fs/cli.ts"), "pack", join(fx.dir, "root"), "-o", zdbFlist, "-s", `zdb://127.0.0.1:${port}/default`]);
    if (packed.code !== 0) throw new Error(`pack to zdb failed: ${packed.err}`);
    const cache = join(node.stateDir, "containers", "cache");
    const cold: number[] = [];
    for (let i = 0; i < 5; i++) {
      for (const e of readdirSync(cache)) rmSync(join(cache, e), { recursive: true, force: true });
      const t0 = performance.now();
      // the process start reads busybox through the mount, so "running" includes fetching its blocks
      await create(`cold${i}`, { flist: zdbFlist });
      cold.push(performance.now() - t0);
      await remove(`cold${i}`);
    }
    results.push({ name: "create-to-running, cold (zdb store, empty chunk cache)", value: median(cold), unit: "ms", peer: FLOOR, peer_value: floor, higher_is_better: false, goal: "report" });
  } finally {
    zdb.kill();
    await zdb.exited;
  }

  // 50 at once
  const rssBefore = rssKb(node.pid);
  const names = Array.from({ length: CONCURRENT }, (_, i) => `many${i}`);
  const t0 = performance.now();
  const infos = await Promise.all(names.map((n) => create(n)));
  const total = performance.now() - t0;
  if (!infos.every((i) => i.state === "running")) throw new Error("not all 50 are running");
  const rssAfter = rssKb(node.pid);
  // each container's `crun run` stays as its parent (the exit-status monitor): count its memory too
  const monitors = Bun.spawnSync(["pgrep", "-P", String(node.pid), "-x", "crun"]).stdout.toString().split("\n").filter(Boolean).map(Number);
  const monitorKb = monitors.reduce((sum, pid) => sum + rssKb(pid), 0) / Math.max(1, monitors.length);
  await Promise.all(names.map(remove));
  results.push(
    { name: `${CONCURRENT} containers created concurrently, total`, value: total / 1000, unit: "s", higher_is_better: false, goal: "report" },
    { name: "init RSS kept after the first container was made and removed", value: (rssWarm - rssIdle) / 1024, unit: "MiB", higher_is_better: false, goal: "report" },
    { name: "init RSS growth per running container", value: (rssAfter - rssBefore) / 1024 / CONCURRENT, unit: "MiB", higher_is_better: false, goal: "report" },
    { name: "RSS of a container's crun monitor process", value: monitorKb / 1024, unit: "MiB", higher_is_better: false, goal: "report" },
  );
} finally {
  c.close();
  await node.stop();
  fx.cleanup();
  rmSync(work, { recursive: true, force: true });
}
// the figures are medians of rounds interleaved with the floor's; the load says how busy the machine was
results.push({ name: "machine load average (1 min) at start / end of run", value: loadAtStart, unit: "", peer: "at end", peer_value: loadAvg(), higher_is_better: false, goal: "context: 2 cores" });
report("containers", results);
