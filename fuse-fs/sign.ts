// Signed flists: an ed25519 signature over a canonical digest of all metadata, kept in the tag
// `signature` as `ed25519:<public key hex>:<signature hex>`. The digest (SHA-256) covers, in order:
//   "zflist-sign-v1\0"
//   per inode by ino:       'I' u64 ino, u64 parent, str name, u64 size, u32 uid, u32 gid, u32 mode,
//                           u64 rdev, i64 ctime, i64 mtime, then 'L' str target if it has one
//   per block by ino, rowid: 'B' u64 ino, 32-byte id, 32-byte key
//   per route by rowid:     'R' u8 start, u8 end, str url
//   per tag by key (all but "signature"): 'T' str key, str value
// where integers are little-endian and str is u32 byte length + UTF-8 bytes. Every field has a fixed
// width or a length, so two different flists cannot produce the same byte stream.
import { createHash, createPrivateKey, createPublicKey, sign, verify, type Hash } from "node:crypto";
import { readFileSync } from "node:fs";
import { FlistError } from "./errors.ts";
import { Flist } from "./flist.ts";

export const SIGNATURE_TAG = "signature";
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519_PREFIX = Buffer.from("302a300506032b6570032100", "hex");

class Canon {
  private readonly buf = Buffer.alloc(64);
  constructor(private readonly h: Hash) {}
  tag(c: string): void {
    this.h.update(c);
  }
  u8(n: number): void {
    this.buf.writeUInt8(n & 0xff, 0);
    this.h.update(this.buf.subarray(0, 1));
  }
  u32(n: number): void {
    this.buf.writeUInt32LE(n >>> 0, 0);
    this.h.update(this.buf.subarray(0, 4));
  }
  i64(n: number): void {
    this.buf.writeBigInt64LE(BigInt(n), 0);
    this.h.update(this.buf.subarray(0, 8));
  }
  bytes(b: Uint8Array): void {
    this.h.update(b);
  }
  str(s: string | Uint8Array): void {
    const b = typeof s === "string" ? Buffer.from(s, "utf8") : s;
    this.u32(b.length);
    this.h.update(b);
  }
}

export function metadataDigest(flist: Flist): Buffer {
  const h = createHash("sha256");
  const c = new Canon(h);
  h.update("zflist-sign-v1\0");
  const inodes = flist.db.query("SELECT i.ino, i.parent, i.name, i.size, i.uid, i.gid, i.mode, i.rdev, i.ctime, i.mtime, e.data FROM inode i LEFT JOIN extra e ON e.ino = i.ino ORDER BY i.ino");
  for (const r of inodes.iterate() as IterableIterator<Record<string, unknown>>) {
    c.tag("I");
    c.i64(Number(r.ino));
    c.i64(Number(r.parent));
    c.str(String(r.name));
    c.i64(Number(r.size));
    c.u32(Number(r.uid));
    c.u32(Number(r.gid));
    c.u32(Number(r.mode));
    c.i64(Number(r.rdev));
    c.i64(Number(r.ctime));
    c.i64(Number(r.mtime));
    if (r.data !== null && r.data !== undefined) {
      c.tag("L");
      c.str(r.data instanceof Uint8Array ? r.data : String(r.data));
    }
  }
  for (const r of flist.db.query("SELECT ino, id, key FROM block ORDER BY ino, rowid").iterate() as IterableIterator<{ ino: number; id: Uint8Array; key: Uint8Array }>) {
    c.tag("B");
    c.i64(Number(r.ino));
    c.bytes(r.id);
    c.bytes(r.key);
  }
  for (const r of flist.routes()) {
    c.tag("R");
    c.u8(Number(r.start));
    c.u8(Number(r.end));
    c.str(String(r.url));
  }
  for (const [k, v] of flist.tags()) {
    if (k === SIGNATURE_TAG) continue;
    c.tag("T");
    c.str(k);
    c.str(v);
  }
  return h.digest();
}

/** A 32-byte ed25519 seed from a key file holding it as 64 hex characters or 32 raw bytes. */
export function readSeed(path: string): Buffer {
  const raw = readFileSync(path);
  const text = raw.toString("utf8").trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, "hex");
  if (raw.length === 32) return raw;
  throw new FlistError("usage", `${path} holds neither 64 hex characters nor 32 raw bytes of ed25519 seed`, { path });
}

export function publicKeyOf(seed: Uint8Array): Buffer {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(priv).export({ format: "der", type: "spki" });
  return spki.subarray(spki.length - 32);
}

/** Signs the flist in place (replacing any earlier signature); returns the public key in hex. */
export function signFlist(path: string, seed: Uint8Array): string {
  if (seed.length !== 32) throw new FlistError("usage", `an ed25519 seed is 32 bytes, got ${seed.length}`);
  const flist = Flist.open(path, { write: true });
  try {
    const priv = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: "der", type: "pkcs8" });
    const signature = sign(null, metadataDigest(flist), priv);
    const pub = publicKeyOf(seed).toString("hex");
    flist.setTag(SIGNATURE_TAG, `ed25519:${pub}:${signature.toString("hex")}`);
    return pub;
  } finally {
    flist.close();
  }
}

/** Throws FlistError "bad-signature" unless the flist is signed by `trustedKeyHex` and unchanged since. */
export function verifyFlist(flist: Flist, trustedKeyHex: string): void {
  const ctx = { flist: flist.path };
  if (!/^[0-9a-fA-F]{64}$/.test(trustedKeyHex)) throw new FlistError("usage", "a trusted key is 64 hex characters (32-byte ed25519 public key)");
  const tag = flist.tag(SIGNATURE_TAG);
  if (tag === null) throw new FlistError("bad-signature", "flist is not signed", ctx);
  const m = /^ed25519:([0-9a-f]{64}):([0-9a-f]{128})$/.exec(tag);
  if (!m) throw new FlistError("bad-signature", "signature tag is malformed", ctx);
  if (m[1] !== trustedKeyHex.toLowerCase()) throw new FlistError("bad-signature", `flist is signed by ${m[1]}, not by the trusted key`, ctx);
  const pub = createPublicKey({ key: Buffer.concat([SPKI_ED25519_PREFIX, Buffer.from(m[1], "hex")]), format: "der", type: "spki" });
  if (!verify(null, metadataDigest(flist), pub, Buffer.from(m[2], "hex"))) {
    throw new FlistError("bad-signature", "signature does not match the flist's contents (altered after signing)", ctx);
  }
}
