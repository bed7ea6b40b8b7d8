// rfs block encoding, so blocks written here are readable by rfs and the reverse
// (threefoldtech/rfs, rfs/src/store/bs.rs):
//   key   = BLAKE2b-256(plaintext)            (BLAKE2b with a 32-byte digest, unkeyed)
//   comp  = snappy raw (not framed) of plaintext
//   data  = AES-256-GCM(key, nonce = key[0..12], no AAD) of comp, stored as ciphertext || 16-byte tag
//   id    = BLAKE2b-256(data)                 (the name the block is stored under)
// The nonce repeats only for identical plaintext, which then yields identical data: that is the dedup.
// Vdisks created since 2026-11-26 use the same layout with BLAKE3-256 for both key and id (BlockHash
// "blake3"): the two hashes were over half the cost of encoding a block, and BLAKE3 costs ~0.19
// CPU-s per GiB here against ~0.41 for four-lane BLAKE2b. Such blocks are not rfs blocks; flists
// keep BLAKE2b. A reader must know which hash a block was written with (a vdisk records it).
// BLAKE3 blocks that do not compress hold snappy literals (see storeIncompressible); any snappy
// decoder reads both, so decoding does not depend on it.
import { createCipheriv, createDecipheriv } from "node:crypto";
import { blake2b256, blake2b256Many, blake3, snappyCompress, snappyCompressInto, snappyDecompress, snappyMaxCompressedLength } from "../native/index.ts";
import { StoreError, hex, type BlockBackend, type BlockId, type OpOptions } from "./types.ts";

const TAG_LENGTH = 16;
/** Largest plaintext decode will produce; rfs blocks are 512 KiB, vdisk blocks are smaller. */
export const MAX_PLAIN_LENGTH = 64 * 1024 * 1024;

/** What an flist row (block.id, block.key) holds to find and open one block. */
export interface BlockRef {
  id: BlockId;
  key: Uint8Array;
}

export interface EncodedBlock extends BlockRef {
  /** The bytes stored under id. */
  data: Uint8Array;
}

/** The hash behind a block's key and id: "blake2b" (rfs, the default) or "blake3". */
export type BlockHash = "blake2b" | "blake3";

const hashOne: Record<BlockHash, (data: Uint8Array) => Uint8Array> = {
  blake2b: blake2b256,
  blake3: (data) => blake3(data),
};

/** Whether `x` names a block hash (what a record or a message says, checked before use). */
export function isBlockHash(x: unknown): x is BlockHash {
  return typeof x === "string" && Object.hasOwn(hashOne, x);
}

/** Each input's hash. BLAKE2b hashes several inputs at once in the SIMD lanes; BLAKE3 already spreads one input's 1 KiB chunks over them. */
const hashMany: Record<BlockHash, (inputs: Uint8Array[]) => Uint8Array[]> = {
  blake2b: blake2b256Many,
  blake3: (inputs) => inputs.map((data) => blake3(data)),
};

function nonceOf(key: Uint8Array): Uint8Array {
  return key.subarray(0, 12);
}

/** The most bytes encoding `plainLength` bytes can give: the buffer size `into` needs (encodeBlocks). */
export function encodedCapacity(plainLength: number): number {
  return snappyMaxCompressedLength(plainLength) + TAG_LENGTH;
}

/**
 * Whether a block that does not compress is stored as snappy literals without the search for
 * matches (native snappyCompress): a third of the cost of encoding random 64 KiB blocks. Not for
 * rfs blocks, which keep the bytes rfs itself writes, so that the same content is the same block.
 */
const storeIncompressible: Record<BlockHash, boolean> = { blake2b: false, blake3: true };

/**
 * snappy, then AES-256-GCM: ciphertext || tag. Into the start of `into` when given (a reused
 * buffer of encodedCapacity bytes: compressed there, then overwritten by the ciphertext), else
 * into a new buffer of the exact size.
 */
function seal(plain: Uint8Array, key: Uint8Array, hash: BlockHash, into?: Uint8Array): Uint8Array {
  const store = storeIncompressible[hash];
  const compressed = into ? into.subarray(0, snappyCompressInto(plain, into, store)) : snappyCompress(plain, store);
  const cipher = createCipheriv("aes-256-gcm", key, nonceOf(key), { authTagLength: TAG_LENGTH });
  const body = cipher.update(compressed);
  cipher.final(); // GCM yields no further bytes; this computes the tag
  // Not zero-filled (every byte is written next), and never a slice of a shared pool: a vdisk
  // encoder transfers data.buffer to another thread. A plain Uint8Array, whose slice() copies.
  const size = body.length + TAG_LENGTH;
  const data = into ? into.subarray(0, size) : new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size);
  data.set(body, 0);
  data.set(cipher.getAuthTag(), body.length);
  return data;
}

export function encodeBlock(plain: Uint8Array, hash: BlockHash = "blake2b"): EncodedBlock {
  const key = hashOne[hash](plain);
  const data = seal(plain, key, hash);
  return { id: hashOne[hash](data), key, data };
}

/**
 * encodeBlock of each of `plains`, in order, for writers with a batch at hand (a vdisk flush).
 * The two hash passes are over half the cost of encoding; here each runs over the whole batch
 * (BLAKE2b: several blocks at once in the lanes of the SIMD unit, native blake2b256Many).
 * With `into`, block i is encoded into the start of into[i] (encodedCapacity(plains[i].length)
 * bytes, reused by the caller), and its data is a view of it.
 */
export function encodeBlocks(plains: Uint8Array[], hash: BlockHash = "blake2b", into?: Uint8Array[]): EncodedBlock[] {
  const keys = hashMany[hash](plains);
  const sealed = plains.map((p, i) => seal(p, keys[i], hash, into?.[i]));
  const ids = hashMany[hash](sealed);
  return sealed.map((data, i) => ({ id: ids[i], key: keys[i], data }));
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.compare(a, b) === 0;
}

/**
 * GCM output is produced in steps of this size into a scratch buffer this thread keeps: one
 * decipher.update over a whole 512 KiB block returns a fresh 512 KiB buffer each time, whose
 * first-touch page faults cost more than the decryption; 64 KiB outputs are recycled hot.
 */
const DECRYPT_STEP = 64 * 1024;
/** Blocks up to this size decrypt through the scratch buffer; bigger ones (rare) get their own. */
const SCRATCH_MAX = 1024 * 1024;
let scratch = new Uint8Array(0);

/** The compressed bytes inside `body` (ciphertext without its tag), authenticated by final(). */
function decrypt(ref: BlockRef, body: Uint8Array, tag: Uint8Array): Uint8Array {
  const decipher = createDecipheriv("aes-256-gcm", ref.key, nonceOf(ref.key), { authTagLength: TAG_LENGTH });
  decipher.setAuthTag(tag);
  if (body.length > SCRATCH_MAX) {
    const whole = decipher.update(body);
    decipher.final(); // authenticates; GCM yields no further bytes
    return whole;
  }
  if (scratch.length < body.length) scratch = new Uint8Array(SCRATCH_MAX);
  for (let at = 0; at < body.length; at += DECRYPT_STEP) scratch.set(decipher.update(body.subarray(at, Math.min(at + DECRYPT_STEP, body.length))), at);
  decipher.final();
  return scratch.subarray(0, body.length);
}

/** Checks the id, the GCM tag and the compression; any mismatch is StoreError "corrupt". */
export function decodeBlock(ref: BlockRef, data: Uint8Array, maxPlainLength = MAX_PLAIN_LENGTH, hash: BlockHash = "blake2b"): Uint8Array {
  return openBlock(ref, data, hashOne[hash](data), maxPlainLength);
}

/**
 * decodeBlock of each block, in order, for readers with several at hand (a decode worker's queue):
 * the id hashes, the largest part of decoding, run over the whole batch (BLAKE2b: several blocks at
 * once in the lanes of the SIMD unit, native blake2b256Many). Each result is the plaintext, or the
 * StoreError that decodeBlock would have thrown for that block.
 */
export function decodeBlocks(blocks: { ref: BlockRef; data: Uint8Array }[], maxPlainLength = MAX_PLAIN_LENGTH, hash: BlockHash = "blake2b"): (Uint8Array | StoreError)[] {
  const hashes = hashMany[hash](blocks.map((b) => b.data));
  return blocks.map((b, i) => {
    try {
      return openBlock(b.ref, b.data, hashes[i], maxPlainLength);
    } catch (err) {
      if (err instanceof StoreError) return err;
      throw err;
    }
  });
}

/** decodeBlock with the hash of `data` already computed. */
function openBlock(ref: BlockRef, data: Uint8Array, hash: Uint8Array, maxPlainLength: number): Uint8Array {
  const context = { id: hex(ref.id) };
  if (ref.key.length !== 32) throw new StoreError("corrupt", `block key must be 32 bytes, got ${ref.key.length}`, context);
  if (!equalBytes(hash, ref.id)) throw new StoreError("corrupt", "block bytes do not hash to their id", context);
  if (data.length < TAG_LENGTH) throw new StoreError("corrupt", `block of ${data.length} bytes is shorter than its GCM tag`, context);
  let compressed: Uint8Array;
  try {
    compressed = decrypt(ref, data.subarray(0, data.length - TAG_LENGTH), data.subarray(data.length - TAG_LENGTH));
  } catch (err) {
    throw new StoreError("corrupt", "block fails AES-GCM authentication (wrong key or altered bytes)", context, { cause: err });
  }
  // The plaintext is a new buffer (snappy writes it), so the scratch is free again on return.
  try {
    return snappyDecompress(compressed, maxPlainLength);
  } catch (err) {
    throw new StoreError("corrupt", `block does not decompress: ${(err as Error).message}`, context, { cause: err });
  }
}

/** Encodes and stores one block; returns what the flist must record to read it back. */
export async function putBlock(store: BlockBackend, plain: Uint8Array, opts?: OpOptions, hash: BlockHash = "blake2b"): Promise<BlockRef> {
  const block = encodeBlock(plain, hash);
  await store.put(block.id, block.data, opts);
  return { id: block.id, key: block.key };
}

/** Fetches and decodes one block; null when no backend holds it. */
export async function getBlock(store: BlockBackend, ref: BlockRef, opts?: OpOptions, hash: BlockHash = "blake2b"): Promise<Uint8Array | null> {
  const data = await store.get(ref.id, opts);
  if (data === null) return null;
  try {
    return decodeBlock(ref, data, MAX_PLAIN_LENGTH, hash);
  } catch (err) {
    if (err instanceof StoreError) throw new StoreError(err.code, err.message, { backend: store.url, id: hex(ref.id) }, { cause: err.cause });
    throw err;
  }
}
