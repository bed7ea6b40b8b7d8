// The public entry of store/: the block-store interface, backends by URL, rfs routing, block
// encoding, the erasure-coded store with its config, repair and status. Other parts import from here only.
export * from "./types.ts";
export { openBackend, openStore } from "./open.ts";
export { parseBackendUrl, redactUrl, type BackendSpec } from "./backends/url.ts";
export { isScannable, canGetPieces, type ScannableBackend, type PiecewiseGetBackend } from "./backends/backend.ts";
export { RoutedStore, parseRoute, type Route, type RouteSpec } from "./routes.ts";
export { encodeBlock, encodeBlocks, encodedCapacity, decodeBlock, decodeBlocks, putBlock, getBlock, isBlockHash, MAX_PLAIN_LENGTH, type BlockHash, type BlockRef, type EncodedBlock } from "./chunk.ts";
export { defaultPolicy, type OpPolicy } from "./ops.ts";
// putMany(backend, blocks: { id, data }[], { concurrency?, timeoutMs?, signal? }) => Promise<(StoreError | null)[]>:
// many blocks at once, per-block outcomes; cheapest on an ErasureStore (its own putMany).
export { putMany, type PutManyOptions } from "./put-many.ts";
export { ErasureStore, groupCapFor, type ErasureMember, type ErasureOptions, type ShardProbe } from "./erasure/store.ts";
export { Placement, type PlacementMember } from "./erasure/placement.ts";
export { parseConfig, loadConfig, openConfiguredStore, type StoreConfig } from "./config.ts";
export { repair, repairForever, type RepairOptions, type RepairProgress, type RepairReport } from "./repair.ts";
export { storeStatus, type StoreStatus, type BackendHealth } from "./status.ts";
export { execWithServerAllocator, PURGE_DELAY_VARIABLE, SERVER_PURGE_DELAY } from "./allocator.ts";
