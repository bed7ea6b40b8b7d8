// `zstore status`: is each backend answering, and how many blocks are below full redundancy.
import type { ErasureStore } from "./erasure/store.ts";
import { isScannable } from "./backends/backend.ts";
import { repair, type RepairReport } from "./repair.ts";

export interface BackendHealth {
  url: string;
  group: string;
  healthy: boolean;
  latencyMs?: number;
  error?: string;
}

export interface StoreStatus {
  k: number;
  m: number;
  backends: BackendHealth[];
  /** The dry-run repair pass: blocks, degraded (below full redundancy), unrecoverable, misplaced. */
  blocks: RepairReport;
}

export async function storeStatus(store: ErasureStore, opts: { verify?: boolean; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<StoreStatus> {
  const backends = await Promise.all(
    store.members.map(async (mem): Promise<BackendHealth> => {
      const base = { url: mem.backend.url, group: mem.groupName };
      if (!isScannable(mem.backend)) return { ...base, healthy: false, error: "backend cannot be checked" };
      const started = performance.now();
      try {
        await mem.backend.ping({ timeoutMs: opts.timeoutMs ?? 2000, signal: opts.signal });
        return { ...base, healthy: true, latencyMs: Math.round((performance.now() - started) * 100) / 100 };
      } catch (err) {
        return { ...base, healthy: false, error: (err as Error).message };
      }
    }),
  );
  const blocks = await repair(store, { dryRun: true, verify: opts.verify ?? false, signal: opts.signal });
  return { k: store.options.k, m: store.options.m, backends, blocks };
}
