// What the NBD server serves: an export is a plugin in the nbdkit sense. The server validates
// every request (ranges, flags, read-only, alignment) before calling it, so an export only
// implements storage. Methods may return synchronously: a cache hit then costs no promise.
import type { Payload } from "./payload.ts";

export interface Extent {
  length: number;
  /** Not allocated in the backing storage. */
  hole: boolean;
  /** Reads as zeroes. */
  zero: boolean;
}

export interface BlockSizes {
  /** Smallest addressable unit; requests from clients that agreed to block sizes must be multiples. */
  minimum: number;
  preferred: number;
  /** Largest READ/WRITE payload accepted. */
  maximum: number;
}

export interface ZeroOptions {
  fua: boolean;
  /** NBD_CMD_FLAG_FAST_ZERO: fail with ENOTSUP rather than zero slowly. */
  fast: boolean;
}

type MaybePromise<T> = T | Promise<T>;

export interface BlockExport {
  readonly name: string;
  readonly description: string;
  readonly readOnly: boolean;
  readonly blockSizes: BlockSizes;
  /** True when all connections share one state, so FLUSH on one covers writes made on another. */
  readonly multiConn: boolean;
  /** True when zeroing never costs more than writing zeroes (NBD_FLAG_SEND_FAST_ZERO). */
  readonly fastZero: boolean;
  /** Current size in bytes; read at each negotiation and each request. */
  size(): number;
  /** Fills `into` with the bytes at `offset`. */
  read(into: Uint8Array, offset: number): MaybePromise<void>;
  /**
   * Fills `into` and returns true when every byte is at hand without waiting (a cache hit);
   * otherwise returns false, and `into` may hold anything. Lets the server answer such reads
   * synchronously, in place in its reply batch.
   */
  readCached(into: Uint8Array, offset: number): boolean;
  /**
   * The bytes at `offset` as views of the export's own memory, in order, when every byte is at
   * hand; else null. Large reads are sent from them without a copy, so the views must stay valid
   * (never reused for other data); a later write may still change them before they are sent,
   * which a read concurrent with that write is allowed to see.
   */
  cachedViews(offset: number, length: number): Uint8Array[] | null;
  /**
   * Stores `data` at `offset`. The export copies what it keeps; the payload's bytes stay valid
   * and unchanged until the returned promise settles.
   */
  write(data: Payload, offset: number, fua: boolean): MaybePromise<void>;
  /** Makes every write that has completed durable. */
  flush(): MaybePromise<void>;
  trim(offset: number, length: number, fua: boolean): MaybePromise<void>;
  zero(offset: number, length: number, opts: ZeroOptions): MaybePromise<void>;
  /** Prefetch hint. */
  cache(offset: number, length: number): MaybePromise<void>;
  /** Consecutive extents from offset, covering at most length bytes and at least one byte. */
  extents(offset: number, length: number): MaybePromise<Extent[]>;
}
