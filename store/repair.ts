// Self-repair of an erasure-coded store. One pass:
//  1. list every member and note which members hold which block ids (a member that cannot list
//     is reported; its blocks are still found through the others);
//  2. for each block, check the shards against the current placement: target i must hold a shard
//     with index i that verifies (or, with verify off, just hold something under the id);
//  3. rebuild what is missing, corrupt or misplaced from any k good shards, write it to its
//     target, and only once every target is whole (and verified), delete copies left on
//     non-target members (what a placement change leaves behind).
// A block with fewer than k good shards anywhere is reported unrecoverable and left untouched.
import { StoreError, hex, type BlockId } from "./types.ts";
import { isScannable } from "./backends/backend.ts";
import type { ErasureStore, ShardProbe } from "./erasure/store.ts";
import type { Shard } from "./erasure/shard.ts";

export interface RepairOptions {
  /** Blocks handled at once. */
  concurrency?: number;
  /** Read and check every shard (default); off: trust presence in the listings. */
  verify?: boolean;
  /** Only count what needs repair. */
  dryRun?: boolean;
  signal?: AbortSignal;
  onProgress?: (p: RepairProgress) => void;
}

export interface RepairProgress {
  phase: "scan" | "repair";
  /** Blocks handled so far (phase repair) or listed so far (phase scan). */
  done: number;
  total: number;
  repaired: number;
  degraded: number;
  unrecoverable: number;
}

export interface RepairReport {
  blocks: number;
  /** Blocks whose every target held a good shard and no stray copies. */
  healthy: number;
  /** Blocks below full redundancy when the pass looked at them. */
  degraded: number;
  /** Blocks with copies on members that are not their targets (left by a placement change). */
  misplaced: number;
  /** Blocks brought back to full redundancy by this pass. */
  repaired: number;
  shardsWritten: number;
  straysRemoved: number;
  /** Block ids with fewer than k good shards anywhere. */
  unrecoverable: string[];
  /** Blocks that still lack redundancy after the pass (a target was down). */
  stillDegraded: number;
  /** Members that could not be listed, with the reason. */
  unlisted: { backend: string; error: string }[];
}

interface BlockVerdict {
  missing: number[]; // shard indices whose target lacks a good copy
  strays: number[]; // member indices holding the block outside its targets
  good: Shard[];
}

async function inspect(store: ErasureStore, id: BlockId, holders: Set<number>, verify: boolean, signal?: AbortSignal): Promise<BlockVerdict> {
  const targets = store.targets(id);
  const strays = [...holders].filter((h) => !targets.includes(h));
  if (!verify) {
    const missing = targets.flatMap((t, i) => (holders.has(t) ? [] : [i]));
    return { missing, strays, good: [] };
  }
  const probes = new Map<number, ShardProbe>();
  await Promise.all([...holders].map(async (h) => probes.set(h, await store.probe(id, h, signal))));
  const good = new Map<number, Shard>();
  for (const p of probes.values()) if (p.state === "ok") good.set(p.shard.index, p.shard);
  const missing = targets.flatMap((t, i) => {
    const p = probes.get(t);
    return p?.state === "ok" && p.shard.index === i ? [] : [i];
  });
  return { missing, strays, good: [...good.values()] };
}

async function goodShards(store: ErasureStore, id: BlockId, holders: Set<number>, signal?: AbortSignal): Promise<Shard[]> {
  const found = new Map<number, Shard>();
  await Promise.all(
    [...holders].map(async (h) => {
      const p = await store.probe(id, h, signal);
      if (p.state === "ok") found.set(p.shard.index, p.shard);
    }),
  );
  return [...found.values()];
}

async function runPool<T>(items: T[], concurrency: number, signal: AbortSignal | undefined, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      signal?.throwIfAborted();
      await work(items[next++]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

export async function repair(store: ErasureStore, opts: RepairOptions = {}): Promise<RepairReport> {
  const { concurrency = 4, verify = true, dryRun = false, signal, onProgress } = opts;
  const { k } = store.options;
  const report: RepairReport = {
    blocks: 0, healthy: 0, degraded: 0, misplaced: 0, repaired: 0, shardsWritten: 0, straysRemoved: 0, unrecoverable: [], stillDegraded: 0, unlisted: [],
  };
  const holders = new Map<string, { id: BlockId; members: Set<number> }>();
  const progress = (phase: RepairProgress["phase"], done: number) =>
    onProgress?.({ phase, done, total: holders.size, repaired: report.repaired, degraded: report.degraded, unrecoverable: report.unrecoverable.length });

  for (const [i, member] of store.members.entries()) {
    if (!isScannable(member.backend)) {
      report.unlisted.push({ backend: member.backend.url, error: "backend cannot list its blocks" });
      continue;
    }
    try {
      for await (const id of member.backend.list({ signal })) {
        const h = hex(id);
        let entry = holders.get(h);
        if (!entry) holders.set(h, (entry = { id, members: new Set() }));
        entry.members.add(i);
      }
    } catch (err) {
      signal?.throwIfAborted();
      report.unlisted.push({ backend: member.backend.url, error: (err as Error).message });
    }
    progress("scan", holders.size);
  }
  report.blocks = holders.size;

  let done = 0;
  await runPool([...holders.values()], concurrency, signal, async ({ id, members }) => {
    const verdict = await inspect(store, id, members, verify, signal);
    if (verdict.missing.length === 0 && verdict.strays.length === 0) {
      report.healthy++;
    } else {
      if (verdict.missing.length > 0) report.degraded++;
      if (verdict.strays.length > 0) report.misplaced++;
      if (!dryRun) await mend(store, id, members, verdict, k, verify, report, signal);
    }
    progress("repair", ++done);
  });
  return report;
}

async function mend(store: ErasureStore, id: BlockId, holders: Set<number>, verdict: BlockVerdict, k: number, verified: boolean, report: RepairReport, signal?: AbortSignal) {
  const targets = store.targets(id);
  let whole = true;
  if (verdict.missing.length > 0) {
    const good = verdict.good.length > 0 ? verdict.good : await goodShards(store, id, holders, signal);
    if (good.length < k) {
      report.unrecoverable.push(hex(id));
      return;
    }
    const frames = await store.rebuildFrames(id, good);
    const writes = await Promise.allSettled(verdict.missing.map((i) => store.members[targets[i]].backend.put(id, frames[i], { signal })));
    report.shardsWritten += writes.filter((w) => w.status === "fulfilled").length;
    whole = writes.every((w) => w.status === "fulfilled");
  }
  if (!whole) {
    report.stillDegraded++;
    return;
  }
  // Presence is not proof: without verified targets a stray may be the only good copy of its shard.
  if (!verified && verdict.strays.length > 0) {
    if (verdict.missing.length > 0) report.repaired++;
    return;
  }
  const removals = await Promise.allSettled(verdict.strays.map((m) => store.members[m].backend.delete(id, { signal })));
  report.straysRemoved += removals.filter((r) => r.status === "fulfilled").length;
  report.repaired++;
}

/** Runs a pass every intervalMs until the signal aborts; a failed pass is reported, not fatal. */
export async function repairForever(
  store: ErasureStore,
  intervalMs: number,
  opts: RepairOptions & { onReport: (r: RepairReport | StoreError) => void },
): Promise<void> {
  const { signal } = opts;
  while (!signal?.aborted) {
    try {
      opts.onReport(await repair(store, opts));
    } catch (err) {
      if (signal?.aborted) return;
      opts.onReport(err instanceof StoreError ? err : new StoreError("unavailable", (err as Error).message, {}, { cause: err }));
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, intervalMs);
      signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); }, { once: true });
    });
  }
}
