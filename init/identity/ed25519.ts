// Ed25519 through node:crypto (BoringSSL in Bun): measured fastest of the three candidates here
// (see bench/init.ts). Keys travel as raw 32-byte values; node:crypto wants DER, so the fixed
// PKCS#8 / SPKI prefixes for Ed25519 (RFC 8410) are prepended.
import { createPrivateKey, createPublicKey, randomBytes, sign, verify, type KeyObject } from "node:crypto";
import { base58Decode, base58Encode } from "./base58.ts";

const pkcs8Prefix = Buffer.from("302e020100300506032b657004220420", "hex");
const spkiPrefix = Buffer.from("302a300506032b6570032100", "hex");

export interface KeyPair {
  seed: Uint8Array;
  publicKey: Uint8Array;
  privateKey: KeyObject;
}

export function keyPairFromSeed(seed: Uint8Array): KeyPair {
  if (seed.length !== 32) throw new Error(`an ed25519 seed is 32 bytes, got ${seed.length}`);
  const privateKey = createPrivateKey({ key: Buffer.concat([pkcs8Prefix, seed]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  return { seed, publicKey: new Uint8Array(spki.subarray(spki.length - 32)), privateKey };
}

/** A new key pair from the kernel's CSPRNG (getrandom). */
export function generateKeyPair(): KeyPair {
  return keyPairFromSeed(new Uint8Array(randomBytes(32)));
}

export function signMessage(key: KeyPair, message: Uint8Array): Uint8Array {
  return new Uint8Array(sign(null, message, key.privateKey));
}

/** signMessage into `out` (64 bytes), sparing the copy. */
export function signInto(key: KeyPair, message: Uint8Array, out: Uint8Array): void {
  out.set(sign(null, message, key.privateKey));
}

// Parsing a public key costs more than verifying; callers are few, so cache the parsed objects.
const publicKeyCache = new Map<string, KeyObject>();

/** The parsed form of a raw public key (cached); null when it is not a point on the curve. */
export function publicKeyObject(publicKey: Uint8Array): KeyObject | null {
  const id = Buffer.from(publicKey).toString("hex");
  let key = publicKeyCache.get(id);
  if (!key) {
    try {
      key = createPublicKey({ key: Buffer.concat([spkiPrefix, publicKey]), format: "der", type: "spki" });
    } catch {
      return null; // not a point on the curve
    }
    if (publicKeyCache.size > 10_000) publicKeyCache.clear();
    publicKeyCache.set(id, key);
  }
  return key;
}

export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const key = publicKeyObject(publicKey);
  if (!key) return false;
  try {
    return verify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** Verifies on Bun's native crypto thread pool, leaving the event loop free; measured ~1.5x the
 * calls/s of the synchronous form on 2 cores. Accepts and rejects exactly what verifySignature does. */
export function verifySignatureAsync(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): Promise<boolean> {
  const key = publicKey.length === 32 ? publicKeyObject(publicKey) : null;
  if (!key) return Promise.resolve(false);
  return new Promise((resolve) => verifyOnPool(key, message, signature, resolve));
}

/** verifySignatureAsync for a key already parsed by publicKeyObject, reporting to a callback: the RPC
 * server calls it for every request and spares the promises. */
export function verifyOnPool(key: KeyObject, message: Uint8Array, signature: Uint8Array, done: (ok: boolean) => void): void {
  if (signature.length !== 64) return queueMicrotask(() => done(false));
  try {
    verify(null, message, key, signature, (err, ok) => done(!err && ok));
  } catch {
    queueMicrotask(() => done(false));
  }
}

const keyIdCache = new Map<string, string>();

/** The node id / key id shown to people: base58 of the 32-byte public key. Base58 of a 32-byte
 * number costs ~25 µs of BigInt division; the RPC server needs it per request, so it is cached. */
export function keyId(publicKey: Uint8Array): string {
  const hex = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("hex");
  let id = keyIdCache.get(hex);
  if (id === undefined) {
    id = base58Encode(publicKey);
    if (keyIdCache.size > 10_000) keyIdCache.clear();
    keyIdCache.set(hex, id);
  }
  return id;
}

/** Accepts a public key written as base58 (as `zos keygen` prints) or as 64 hex digits. */
export function parsePublicKey(text: string): Uint8Array {
  const t = text.trim();
  let bytes: Uint8Array;
  if (/^[0-9a-fA-F]{64}$/.test(t)) bytes = new Uint8Array(Buffer.from(t, "hex"));
  else {
    try {
      bytes = base58Decode(t);
    } catch {
      throw new Error(`'${t}' is neither base58 nor 64 hex digits`);
    }
  }
  if (bytes.length !== 32) throw new Error(`'${t}' decodes to ${bytes.length} bytes; an ed25519 public key is 32`);
  return bytes;
}
