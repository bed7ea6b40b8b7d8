// The typed surface other parts use to reach the content-addressed store.
// Blocks are addressed by a 32-byte id; backends hold opaque bytes (ciphertext) under that id.

/** A 32-byte block id: BLAKE2b-256 of the stored (encrypted) bytes. */
export type BlockId = Uint8Array;

export interface OpOptions {
  /** Aborts the operation; the promise rejects with a StoreError of code "aborted". */
  signal?: AbortSignal;
  /** Overrides the backend's default timeout, in milliseconds. */
  timeoutMs?: number;
}

/** One place that stores blocks: a dir, a 0-db namespace, an HTTP hub, or an erasure-coded set of them. */
export interface BlockBackend {
  /** The URL it was opened from, with any password removed. */
  readonly url: string;
  readonly readOnly: boolean;
  has(id: BlockId, opts?: OpOptions): Promise<boolean>;
  /** Resolves null when the block is not stored; rejects with StoreError on failure. */
  get(id: BlockId, opts?: OpOptions): Promise<Uint8Array | null>;
  put(id: BlockId, data: Uint8Array, opts?: OpOptions): Promise<void>;
  delete(id: BlockId, opts?: OpOptions): Promise<void>;
  close(): Promise<void>;
}

export type StoreErrorCode =
  | "timeout"
  | "aborted"
  | "unavailable" // the backend cannot be reached
  | "corrupt" // bytes came back but do not match their id or tag
  | "read-only"
  | "full" // the backend refused the write for lack of space
  | "not-enough-shards" // an erasure-coded read found fewer than k good shards
  | "bad-url"
  | "bad-config"
  | "protocol";

export class StoreError extends Error {
  constructor(
    readonly code: StoreErrorCode,
    message: string,
    readonly context: { backend?: string; id?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "StoreError";
  }
}

export function hex(id: Uint8Array): string {
  return Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString("hex");
}
