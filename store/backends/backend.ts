// What repair and status need from a backend beyond the BlockBackend interface other parts use.
import type { BlockBackend, BlockId, OpOptions } from "../types.ts";

export interface ScannableBackend extends BlockBackend {
  /** Every block id stored, in no particular order. */
  list(opts?: { signal?: AbortSignal }): AsyncIterable<BlockId>;
  /** Resolves when the backend answers; rejects with a StoreError saying why not. */
  ping(opts?: OpOptions): Promise<void>;
}

/** A put whose bytes the caller writes straight into the backend's outgoing buffer (zdb). */
export interface ReservedPut {
  /** Exactly the value's bytes; fill all of them, then send or cancel, with nothing in between. */
  readonly value: Uint8Array;
  /** Resolves or rejects as put() does (a single attempt, no retry). */
  send(): Promise<void>;
  cancel(): void;
}

export interface InPlacePutBackend extends BlockBackend {
  /** Null when the backend cannot take one now (no live connection): use put(). */
  reservePut(id: BlockId, length: number): ReservedPut | null;
}

export function canPutInPlace(b: BlockBackend): b is InPlacePutBackend {
  return typeof (b as Partial<InPlacePutBackend>).reservePut === "function";
}

/** A backend that can hand over a block as the pieces it was received in (an erasure set: its data shards). */
export interface PiecewiseGetBackend extends BlockBackend {
  /** The block's bytes in order; null when it is not stored. Rejects as get() does. */
  getPieces(id: BlockId, opts?: OpOptions): Promise<Uint8Array[] | null>;
}

export function canGetPieces(b: BlockBackend): b is PiecewiseGetBackend {
  return typeof (b as Partial<PiecewiseGetBackend>).getPieces === "function";
}

export function isScannable(b: BlockBackend): b is ScannableBackend {
  return typeof (b as Partial<ScannableBackend>).list === "function" && typeof (b as Partial<ScannableBackend>).ping === "function";
}

export function checkId(id: BlockId): void {
  if (!(id instanceof Uint8Array) || id.length !== 32) {
    throw new TypeError(`block id must be 32 bytes, got ${id instanceof Uint8Array ? id.length : typeof id}`);
  }
}
