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
  crc32c(data: Uint8Array, seed: number | undefined): number;
  snappyCompress(data: Uint8Array): Uint8Array;
  snappyDecompress(data: Uint8Array, maxLength: number | undefined): Uint8Array;
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

/** Unkeyed BLAKE2b with a 1..64-byte digest. */
export function blake2b(data: Uint8Array, outLength: number): Uint8Array {
  return addon.blake2b(data, outLength);
}

/** CRC-32C (Castagnoli), the 0-db entry checksum. Pass a previous result as `seed` to continue it. */
export function crc32c(data: Uint8Array, seed?: number): number {
  return addon.crc32c(data, seed);
}

/** Raw (unframed) snappy compression, as rfs uses. */
export function snappyCompress(data: Uint8Array): Uint8Array {
  return addon.snappyCompress(data);
}

/**
 * Raw snappy decompression. Throws RangeError (code ERR_SNAPPY_CORRUPT) on corrupt input, and
 * RangeError when the output would exceed `maxLength` (default 256 MiB).
 */
export function snappyDecompress(data: Uint8Array, maxLength?: number): Uint8Array {
  return addon.snappyDecompress(data, maxLength);
}
