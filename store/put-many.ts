// Putting many blocks at once, for callers that have a batch at hand (a vdisk flush): on an
// erasure-coded store this is ErasureStore.putMany (one deadline for the batch, no timer or
// controller per block); on any other backend, `concurrency` put() calls at a time.
import { StoreError, hex, type BlockBackend, type BlockId, type OpOptions } from "./types.ts";
import { asStoreError } from "./ops.ts";
import { checkId } from "./backends/backend.ts";
import { ErasureStore } from "./erasure/store.ts";

export interface PutManyOptions extends OpOptions {
  /** Blocks written at once; default 32. */
  concurrency?: number;
}

/**
 * Stores every block; resolves, in the order given, to null for each block stored and the
 * StoreError put() gave for each that was not. opts.timeoutMs bounds the whole call (without it,
 * each put has the backend's own deadline); blocks not written by then fail with "timeout".
 * Rejects only for a malformed id (TypeError), before writing any.
 */
export async function putMany(backend: BlockBackend, blocks: { id: BlockId; data: Uint8Array }[], opts: PutManyOptions = {}): Promise<(StoreError | null)[]> {
  if (backend instanceof ErasureStore) return backend.putMany(blocks, opts);
  for (const b of blocks) checkId(b.id);
  const deadline = opts.timeoutMs === undefined ? Infinity : performance.now() + opts.timeoutMs;
  const results: (StoreError | null)[] = [];
  let next = 0;
  const lane = async () => {
    while (next < blocks.length) {
      const i = next++;
      const { id, data } = blocks[i];
      const left = deadline - performance.now();
      if (left <= 0) {
        results[i] = new StoreError("timeout", `putMany timed out after ${opts.timeoutMs} ms`, { backend: backend.url, id: hex(id) });
        continue;
      }
      results[i] = await backend.put(id, data, { signal: opts.signal, timeoutMs: left === Infinity ? undefined : left }).then(
        () => null,
        (err) => asStoreError(err, { backend: backend.url, id: hex(id), op: "put" }),
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(opts.concurrency ?? 32, blocks.length) }, lane));
  return results;
}
