// make bench-boot: how long a node takes from QEMU start to answering a signed node.info, side by
// side with the floor — the same kernel booting a minimal initramfs whose init is a one-line Bun
// script that prints and powers off — plus the initramfs size by part (zstd vs xz) and init's RSS.
// Software emulation (TCG), 2 vCPUs, 2 GiB, as the tests run. Needs `make image`. The machine is
// shared with other work, so each figure is the best of ROUNDS runs (the least disturbed one).
import { mkdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { report, type BenchResult } from "./lib/report.ts";
import { buildInitramfs, compress, ROOT } from "../initramfs/build.ts";
import { writeCpio } from "../initramfs/cpio.ts";
import { IMAGE, kernelCmdline } from "../scripts/boot-config.ts";
import { startNode, waitRpcReady, withTimeout } from "../scripts/node-vm.ts";
import { QemuVm } from "../scripts/qemu.ts";

const ROUNDS = 3;
const work = join(ROOT, "build", "bench-boot");
rmSync(work, { recursive: true, force: true });
mkdirSync(work, { recursive: true });
const MB = (n: number) => n / 1e6;
const best = (xs: number[]) => Math.min(...xs);

async function floorSeconds(initrd: string, round: number): Promise<number> {
  const vm = new QemuVm({ kernel: IMAGE.kernel, initrd, cmdline: kernelCmdline(), consoleLog: join(work, `floor-${round}.log`) });
  try {
    await vm.waitFor(/floor: bun pid 1 up/, "floor init printed", 300_000);
    return vm.elapsedMs() / 1000;
  } finally {
    await vm.waitExit(60_000).catch(() => vm.stop());
  }
}

/** Guest uptime (the kernel's console timestamps) at each boot milestone, for the per-round timeline. */
const MILESTONES: [string, RegExp][] = [
  ["initramfs unpacked, /init runs", /\[\s*([\d.]+)\] Run \/init as init process/],
  ["init starts", /\[\s*([\d.]+)\] zos-init: boot: zos init starting/],
  ["hardware modules loaded", /\[\s*([\d.]+)\] zos-init: modules: modules for this machine/],
  ["RPC listening", /\[\s*([\d.]+)\] zos-init: rpc: listening on tcp/],
  ["DHCP address", /\[\s*([\d.]+)\] zos-init: network: \S+ bound to/],
];
function guestTimeline(consoleText: string): string {
  return MILESTONES.map(([what, re]) => `${what} ${re.exec(consoleText)?.[1] ?? "?"}`).join(", ");
}

/** Seconds to RPC-ready, and init's VmRSS read by a oneshot service through the RPC. */
async function nodeRun(initramfs: string, label: string, round: number): Promise<{ seconds: number; rssMB: number }> {
  const node = await startNode({ initramfs, consoleLog: join(work, `${label}-${round}.log`) });
  try {
    await waitRpcReady(node, 300_000);
    const seconds = node.vm.elapsedMs() / 1000;
    const c = await node.connect();
    await withTimeout(c.call("service.monitor", { name: "rss", config: { oneshot: true, exec: "/bin/busybox grep VmRSS /proc/1/status" } }), 20_000);
    let rssKb = NaN;
    for (let i = 0; i < 60 && Number.isNaN(rssKb); i++) {
      await Bun.sleep(500);
      const lines = await withTimeout(c.call<{ line: string }[]>("service.logs", { name: "rss" }), 20_000);
      const m = lines.map((l) => /VmRSS:\s+(\d+) kB/.exec(l.line)).find(Boolean);
      if (m) rssKb = Number(m[1]);
    }
    await withTimeout(c.call("node.poweroff"), 20_000);
    c.close();
    await node.vm.waitExit(90_000);
    console.log(`  ${label} guest uptime (s): ${guestTimeline(node.vm.console)}`);
    return { seconds, rssMB: rssKb / 1024 };
  } finally {
    await node.vm.stop();
  }
}

console.log("building the floor initramfs (zstd -19) and an xz -9 copy of the node's ...");
const floor = await buildInitramfs({ floor: true, workDir: join(work, "floor"), output: join(work, "floor.cpio.zst") });
const xzNode = await buildInitramfs({ compression: "xz", level: 9, workDir: join(work, "node-xz"), output: join(work, "initramfs.cpio.xz") });

const floorTimes: number[] = [], zstdTimes: number[] = [], xzTimes: number[] = [], rss: number[] = [];
for (let round = 0; round < ROUNDS; round++) {
  floorTimes.push(await floorSeconds(floor.result.output, round));
  const z = await nodeRun(IMAGE.initramfs, "node-zstd", round);
  zstdTimes.push(z.seconds);
  rss.push(z.rssMB);
  xzTimes.push((await nodeRun(xzNode.result.output, "node-xz", round)).seconds);
  console.log(`round ${round + 1}: floor ${floorTimes.at(-1)!.toFixed(1)} s, node zstd ${zstdTimes.at(-1)!.toFixed(1)} s, node xz ${xzTimes.at(-1)!.toFixed(1)} s, init RSS ${rss.at(-1)!.toFixed(1)} MB`);
}

const results: BenchResult[] = [
  { name: `QEMU start -> RPC ready (zstd initramfs), best of ${ROUNDS}`, value: best(zstdTimes), unit: "s", peer: "floor: same kernel, one-line Bun PID 1", peer_value: best(floorTimes), higher_is_better: false, goal: "<= 1.5x floor" },
  { name: `QEMU start -> RPC ready (xz initramfs), best of ${ROUNDS}`, value: best(xzTimes), unit: "s", peer: "floor: same kernel, one-line Bun PID 1", peer_value: best(floorTimes), higher_is_better: false, goal: "<= 1.5x floor" },
  { name: "initramfs compressed (zstd -19)", value: MB(statSync(IMAGE.initramfs).size), unit: "MB", peer: "xz -9 (crc32)", peer_value: MB(xzNode.result.compressedBytes), higher_is_better: false, goal: "<= 60 MB" },
  { name: "init (PID 1) RSS after boot, VmRSS", value: best(rss), unit: "MB", higher_is_better: false, goal: "-" },
];

// each part alone, compressed the way the image is, to show where the bytes go
for (const part of Object.keys(xzNode.result.parts)) {
  const cpio = join(work, `part-${part}.cpio`), zst = `${cpio}.zst`;
  writeCpio(cpio, xzNode.tree.partEntries(part));
  await compress(cpio, zst, "zstd", 19);
  results.push({ name: `initramfs part "${part}" (uncompressed ${MB(xzNode.result.parts[part].bytes).toFixed(1)} MB), zstd -19`, value: MB(statSync(zst).size), unit: "MB", higher_is_better: false, goal: "-" });
}

report("boot", results);
