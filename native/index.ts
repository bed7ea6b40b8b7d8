// The typed TypeScript face of the Rust addon (native/src): the only way the project calls it.
// Loads $ZOS_NATIVE_PATH if set, else build/native/zos_native.node (built by `make build`).
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";

interface NativeAddon {
  blake3(data: Uint8Array, key: Uint8Array | undefined, outLength: number | undefined): Uint8Array;
  blake3Parallel(data: Uint8Array): Uint8Array;
  blake3HasherNew(key: Uint8Array | undefined): NativeHandle;
  blake3HasherUpdate(handle: NativeHandle, data: Uint8Array): void;
  blake3HasherDigest(handle: NativeHandle, outLength: number | undefined): Uint8Array;
  blake2b(data: Uint8Array, outLength: number): Uint8Array;
  blake2bMany(inputs: Uint8Array[], outLength: number): Uint8Array;
  crc32c(data: Uint8Array, seed: number | undefined): number;
  snappyCompress(data: Uint8Array, storeIncompressible: boolean | undefined): Uint8Array;
  snappyCompressInto(data: Uint8Array, out: Uint8Array, storeIncompressible: boolean | undefined): number;
  snappyMaxCompressedLength(length: number): number;
  snappyDecompress(data: Uint8Array, maxLength: number | undefined): Uint8Array;
  rsEncode(k: number, m: number, data: Uint8Array[], path: RsPath | undefined): Uint8Array[];
  rsReconstruct(k: number, m: number, shards: (Uint8Array | null)[], path: RsPath | undefined): Uint8Array[];
  rsVerify(k: number, m: number, shards: Uint8Array[], path: RsPath | undefined): boolean;
  rsEncodeAsync(k: number, m: number, data: Uint8Array[], path: RsPath | undefined): Promise<Uint8Array[]>;
  rsReconstructAsync(k: number, m: number, shards: (Uint8Array | null)[], path: RsPath | undefined): Promise<Uint8Array[]>;
  rsEncodeInto(k: number, m: number, data: Uint8Array[], parity: Uint8Array[], path: RsPath | undefined): Uint8Array[];
  rsReconstructInto(k: number, m: number, shards: Uint8Array[], missing: number[], path: RsPath | undefined): Uint8Array[];
  rsPaths(): RsPath[];
}

/** An opaque native object (a JS external); only this file handles them. */
declare const nativeHandle: unique symbol;
type NativeHandle = { readonly [nativeHandle]: true };

function load(): NativeAddon {
  const path = process.env.ZOS_NATIVE_PATH ?? join(import.meta.dir, "..", "build", "native", "zos_native.node");
  if (!existsSync(path)) {
    const hint = process.env.ZOS_NATIVE_PATH ? "ZOS_NATIVE_PATH points to a missing file" : "run `make build` in the repository root";
    throw new Error(`zos native addon not found at ${path}: ${hint}`);
  }
  return createRequire(import.meta.url)(path) as NativeAddon;
}

const addon = load();

/** BLAKE3 of `data`; keyed mode with a 32-byte `key`; `outLength` bytes of output (default 32). */
export function blake3(data: Uint8Array, opts?: { key?: Uint8Array; outLength?: number }): Uint8Array {
  return addon.blake3(data, opts?.key, opts?.outLength);
}

/** BLAKE3 of `data` hashed on all cores; worth it from about 128 KiB up. */
export function blake3Parallel(data: Uint8Array): Uint8Array {
  return addon.blake3Parallel(data);
}

/** Streaming BLAKE3. `digest` does not end the hasher: more `update`s may follow. */
export class Blake3Hasher {
  readonly #handle: NativeHandle;
  constructor(opts?: { key?: Uint8Array }) {
    this.#handle = addon.blake3HasherNew(opts?.key);
  }
  update(data: Uint8Array): this {
    addon.blake3HasherUpdate(this.#handle, data);
    return this;
  }
  digest(outLength?: number): Uint8Array {
    return addon.blake3HasherDigest(this.#handle, outLength);
  }
}

/** BLAKE2b with a 32-byte digest: the block hash of the rfs flist format. */
export function blake2b256(data: Uint8Array): Uint8Array {
  return addon.blake2b(data, 32);
}

/**
 * blake2b256 of each input, in order: several inputs are hashed at once in the lanes of the SIMD
 * unit, so a batch of blocks costs well under one call per block.
 */
export function blake2b256Many(inputs: Uint8Array[]): Uint8Array[] {
  const all = addon.blake2bMany(inputs, 32);
  return inputs.map((_, i) => all.subarray(i * 32, i * 32 + 32));
}

/** Unkeyed BLAKE2b with a 1..64-byte digest. */
export function blake2b(data: Uint8Array, outLength: number): Uint8Array {
  return addon.blake2b(data, outLength);
}

/** CRC-32C (Castagnoli), the 0-db entry checksum. Pass a previous result as `seed` to continue it. */
export function crc32c(data: Uint8Array, seed?: number): number {
  return addon.crc32c(data, seed);
}

/**
 * Raw (unframed) snappy compression, as rfs uses. With `storeIncompressible`, data whose start and
 * middle do not compress is written as snappy literals without searching it for matches (any
 * decoder reads it; the bytes differ from what rfs writes for the same data).
 */
export function snappyCompress(data: Uint8Array, storeIncompressible?: boolean): Uint8Array {
  return addon.snappyCompress(data, storeIncompressible);
}

/**
 * snappyCompress into `out` (reused by the caller: no allocation, no copy); returns the
 * compressed length. `out` must hold snappyMaxCompressedLength(data.length) bytes and must not
 * overlap `data` (RangeError otherwise).
 */
export function snappyCompressInto(data: Uint8Array, out: Uint8Array, storeIncompressible?: boolean): number {
  return addon.snappyCompressInto(data, out, storeIncompressible);
}

/** The most bytes snappy can compress `length` bytes into. */
export function snappyMaxCompressedLength(length: number): number {
  return addon.snappyMaxCompressedLength(length);
}

/**
 * Raw snappy decompression. Throws RangeError (code ERR_SNAPPY_CORRUPT) on corrupt input, and
 * RangeError when the output would exceed `maxLength` (default 256 MiB).
 */
export function snappyDecompress(data: Uint8Array, maxLength?: number): Uint8Array {
  return addon.snappyDecompress(data, maxLength);
}

/** A CPU code path of the Reed-Solomon arithmetic; all give identical bytes. */
export type RsPath = "gfni-avx512" | "avx2" | "ssse3" | "scalar";
/** Forces a CPU path (tests and benchmarks); the default is the fastest this CPU supports. */
export interface RsOptions { path?: RsPath }

/** The Reed-Solomon CPU paths this machine supports, fastest first. */
export function rsPaths(): RsPath[] {
  return addon.rsPaths();
}

// Reed-Solomon over GF(2^8), systematic Cauchy matrix (ISA-L's gf_gen_cauchy1_matrix), k + m <= 256.
// Shards are read in place; computed shards are new Buffers (Uint8Array subclass). Bad arguments throw TypeError or
// RangeError (err.code ERR_INVALID_ARG_TYPE / ERR_OUT_OF_RANGE) naming the problem.
// The async variants compute on a worker thread: do not modify, transfer or resize the shards
// until the promise settles.

/** k equal-length data shards -> m parity shards. */
export function rsEncode(k: number, m: number, data: Uint8Array[], opts?: RsOptions): Uint8Array[] {
  return addon.rsEncode(k, m, data, opts?.path);
}

/**
 * `shards` has k + m entries, null for a missing one (at most m missing). Returns all k + m
 * shards: the given ones as they are, the missing ones rebuilt.
 */
export function rsReconstruct(k: number, m: number, shards: (Uint8Array | null)[], opts?: RsOptions): Uint8Array[] {
  return addon.rsReconstruct(k, m, shards, opts?.path);
}

/** Whether the m parity shards (shards[k..]) match the k data shards. */
export function rsVerify(k: number, m: number, shards: Uint8Array[], opts?: RsOptions): boolean {
  return addon.rsVerify(k, m, shards, opts?.path);
}

/** `rsEncode` into the caller's m parity buffers (no allocation); returns `parity`. */
export function rsEncodeInto(k: number, m: number, data: Uint8Array[], parity: Uint8Array[], opts?: RsOptions): Uint8Array[] {
  return addon.rsEncodeInto(k, m, data, parity, opts?.path);
}

/**
 * Rebuilds in place the shards whose indices are in `missing` (at most m) from the others;
 * `shards` holds all k + m buffers. Returns `shards`.
 */
export function rsReconstructInto(k: number, m: number, shards: Uint8Array[], missing: number[], opts?: RsOptions): Uint8Array[] {
  return addon.rsReconstructInto(k, m, shards, missing, opts?.path);
}

/** `rsEncode` on a worker thread. Arguments are checked synchronously (a bad one throws). */
export function rsEncodeAsync(k: number, m: number, data: Uint8Array[], opts?: RsOptions): Promise<Uint8Array[]> {
  return addon.rsEncodeAsync(k, m, data, opts?.path);
}

/** `rsReconstruct` on a worker thread. Arguments are checked synchronously (a bad one throws). */
export function rsReconstructAsync(k: number, m: number, shards: (Uint8Array | null)[], opts?: RsOptions): Promise<Uint8Array[]> {
  return addon.rsReconstructAsync(k, m, shards, opts?.path);
}
