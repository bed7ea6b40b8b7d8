// `zvdisk serve` shutting down with dirty blocks in its write-back cache: against a healthy zdb
// store the flush stores them and it exits 0; against a zdb killed -9 or one that stopped
// answering, it says how many blocks are lost and exits 1 instead of exiting 0 with the blocks
// silently unstored (what an unref'd encoder worker did once the store's socket was gone), and a
// second signal does not wait for the store's timeout.
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { readFileSync, rmSync } from "node:fs";
import { PURGE_DELAY_VARIABLE, SERVER_PURGE_DELAY } from "../../store/index.ts";
import type { Subprocess } from "bun";
import { envWithoutAllocatorSetting, ZdbProcess } from "../store/cluster.ts";
import { RawClient, mustRun, tempDir } from "./helpers.ts";

const bun = process.execPath;
const cli = join(import.meta.dir, "../../vdisk/cli.ts");
const BLOCK = 64 * 1024;
const DIRTY = 16;
/** Detects a hang; every exit the tests expect comes long before it. */
const HANG_MS = 30_000;

const dir = tempDir("vdisk-shutdown-");
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A served vdisk on a fresh zdb store (catalog in a directory), with DIRTY blocks written and not flushed. */
async function serveDirty(name: string, storeQuery = "") {
  const zdb = await ZdbProcess.start({ namespace: "blocks" });
  const urls = ["--store", zdb.url("blocks", storeQuery), "--catalog", `dir://${join(dir, name)}`];
  await mustRun([bun, cli, ...urls, "create", "d", "--size", "16M"]);
  // Started without the allocator setting: the server re-executes itself with it (store/allocator.ts),
  // and every test below signals the pid it was started as.
  const proc = Bun.spawn([bun, cli, ...urls, "serve", "--listen", "127.0.0.1:0", "d"], { stdout: "pipe", stderr: "pipe", env: envWithoutAllocatorSetting() });
  const stdout = lines(proc.stdout);
  const port = JSON.parse(await stdout.next('"listening"')).listening.port as number;
  const client = await RawClient.connect(port);
  await client.handshake("d");
  for (let i = 0; i < DIRTY; i++) {
    client.request(1, i * BLOCK, BLOCK, { cookie: i + 1, payload: new Uint8Array(BLOCK).fill(i + 1) });
    expect(await client.simpleReply()).toMatchObject({ error: 0, cookie: i + 1 });
  }
  return { zdb, urls, proc, stderr: lines(proc.stderr) };
}

/** Accumulates a stream's text; next(s) resolves the first line containing s. */
function lines(stream: ReadableStream<Uint8Array>) {
  let text = "";
  let ended = false;
  let wake = () => {};
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      text += decoder.decode(chunk);
      wake();
    }
    ended = true;
    wake();
  })();
  return {
    all: () => text,
    async next(s: string): Promise<string> {
      for (;;) {
        const line = text.split("\n").find((l) => l.includes(s));
        if (line !== undefined) return line;
        if (ended) throw new Error(`stream ended without ${JSON.stringify(s)}: ${text}`);
        await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

/** The exit code, or null if the process had to be killed because it hung. */
async function exitCode(proc: Subprocess): Promise<number | null> {
  const timer = setTimeout(() => proc.kill(9), HANG_MS);
  await proc.exited;
  clearTimeout(timer);
  return proc.signalCode ? null : proc.exitCode;
}

test("SIGTERM with a healthy store stores the dirty blocks and exits 0", async () => {
  const s = await serveDirty("healthy");
  try {
    expect(readFileSync(`/proc/${s.proc.pid}/environ`, "utf8").split("\0")).toContain(`${PURGE_DELAY_VARIABLE}=${SERVER_PURGE_DELAY.vdisk}`);
    s.proc.kill("SIGTERM");
    expect(await exitCode(s.proc)).toBe(0);
    expect(JSON.parse(await mustRun([bun, cli, ...s.urls, "info", "d", "--json"])).allocatedBlocks).toBe(DIRTY);
  } finally {
    await s.zdb.destroy();
  }
}, 60_000);

test("SIGTERM after the zdb store was killed -9: the flush gives up, the lost blocks are counted, exit 1", async () => {
  const s = await serveDirty("killed");
  try {
    await s.zdb.kill();
    s.proc.kill("SIGTERM");
    expect(await exitCode(s.proc)).toBe(1);
    expect(s.stderr.all()).toContain(`flushing ${DIRTY} dirty blocks of 1 open vdisks`);
    expect(s.stderr.all()).toContain(`vdisk d: ${DIRTY} dirty blocks (${DIRTY * BLOCK} bytes) not stored, lost`);
  } finally {
    await s.zdb.destroy();
  }
}, 60_000);

test("a second signal exits at once while the shutdown flush waits on a store that stopped answering", async () => {
  // The store's timeout (10 min) is far beyond the hang bound: only the second signal can end it in time.
  const s = await serveDirty("stopped", "?timeout=600000");
  try {
    s.zdb.proc.kill("SIGSTOP");
    s.proc.kill("SIGTERM");
    await s.stderr.next("flushing"); // the first signal was taken and the flush is waiting
    s.proc.kill("SIGINT");
    expect(await exitCode(s.proc)).toBe(1);
    expect(await s.stderr.next("SIGINT again")).toContain(`${DIRTY} dirty blocks of 1 open vdisks lost`);
  } finally {
    s.zdb.proc.kill("SIGCONT");
    await s.zdb.destroy();
  }
}, 60_000);
