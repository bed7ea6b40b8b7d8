// The zos RPC wire format, shared by the server (init) and the client (cli).
//
//   frame    = u32 big-endian N (1 <= N <= MAX_FRAME) || N bytes of CBOR
//   request  = { "b": bstr body, "s": bstr(64) sig }
//   body     = { "m": tstr method, "p": params, "i": uint id (unique among the connection's open calls),
//                "t": uint unix ms, "n": bstr(16) random nonce, "k": bstr(32) caller ed25519 key }
//   sig      = ed25519_caller( SHA-256("zos-rpc-request-v1\0" || body) )
//   response = { "b": bstr rbody, "s": bstr(64) rsig }
//   rbody    = { "i": id | null, "n": request nonce | null, "k": bstr(32) node key, "t": uint unix ms,
//                "y": "item" | "result" | "error", "r"?: value, "e"?: { "code": tstr, "message": tstr, "data"?: any } }
//   rsig     = ed25519_node( SHA-256("zos-rpc-response-v1\0" || rbody) )
//
// Signing the body bytes (not a re-encoding) means both sides never need canonical CBOR. The response
// repeats the request nonce so a recorded response cannot answer another request. A call streams zero or
// more "item" responses, then exactly one "result" or "error". "rpc.cancel" {id} aborts an open call.
import { createHash, randomBytes } from "node:crypto";
// "cbor-x/encode" resolves to its index.js: the same codec without loading the optional native
// cbor-extract addon, which would cost PID 1 about 6 MiB of RSS for no gain on small frames.
import { Encoder } from "cbor-x/encode";
import { signInto, verifySignature, type KeyPair } from "../identity/ed25519.ts";
import type { RpcErrorCode } from "./errors.ts";

export const DEFAULT_TCP_PORT = 7722;
export const DEFAULT_SOCKET_PATH = "/run/zos.sock";
export const MAX_FRAME = 1 << 20;
export const TIMESTAMP_WINDOW_MS = 60_000;
const requestDomain = Buffer.from("zos-rpc-request-v1\0");
const responseDomain = Buffer.from("zos-rpc-response-v1\0");

export const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false });

// cbor-x's RESET_BUFFER_MODE (exported by its encode.js, not by its types): the next encode writes at
// the same place of the encoder's buffer again. For a body that is copied into its frame at once, that
// spares a new 8 KiB buffer every few messages.
const RESET_BUFFER_MODE = 1024;

/** Encodes `value`; the bytes are valid only until the next encode. */
function encodeTransient(value: unknown): Uint8Array {
  return (cbor as unknown as { encode(v: unknown, mode: number): Uint8Array }).encode(value, RESET_BUFFER_MODE);
}

export function frame(payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out.set(payload, 4);
  return out;
}

/** Accumulates stream bytes and yields whole frame payloads; a length over the limit is an error. */
export class FrameReader {
  private buf: Uint8Array = new Uint8Array(0);
  constructor(readonly maxFrame = MAX_FRAME) {}

  /** Keeps a reference to `chunk`: Bun hands every `data` event a Buffer of its own. */
  push(chunk: Uint8Array): void {
    if (this.buf.length === 0) this.buf = chunk;
    else {
      const b = new Uint8Array(this.buf.length + chunk.length);
      b.set(this.buf);
      b.set(chunk, this.buf.length);
      this.buf = b;
    }
  }

  /** The next complete payload, null when more bytes are needed; throws FrameError on a bad length. */
  next(): Uint8Array | null {
    if (this.buf.length < 4) return null;
    const b = this.buf;
    const n = ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
    if (n === 0 || n > this.maxFrame) throw new FrameError(n);
    if (this.buf.length < 4 + n) return null;
    const payload = this.buf.subarray(4, 4 + n);
    this.buf = this.buf.subarray(4 + n);
    return payload;
  }
}

export class FrameError extends Error {
  constructor(readonly length: number) {
    super(length === 0 ? "empty frame" : `frame of ${length} bytes exceeds the ${MAX_FRAME} byte limit`);
    this.name = "FrameError";
  }
}

export interface RequestBody {
  m: string;
  p: unknown;
  i: number;
  t: number;
  n: Uint8Array;
  k: Uint8Array;
}

export interface ResponseBody {
  i: number | null;
  n: Uint8Array | null;
  k: Uint8Array;
  t: number;
  y: "item" | "result" | "error";
  r?: unknown;
  e?: { code: RpcErrorCode | string; message: string; data?: unknown };
}

export function digest(domain: Buffer, body: Uint8Array): Uint8Array {
  return createHash("sha256").update(domain).update(body).digest();
}

// The server digests two messages per call; one reused hasher and output spare a hash object and a
// digest buffer each time (~1 KB of garbage per call; the JS heap's collections pause every call in flight).
const hasher = new Bun.CryptoHasher("sha256");
const digestOut = new Uint8Array(64); // CryptoHasher.digest writes into no less than 64 bytes
const digestView = digestOut.subarray(0, 32);

/** digest(), into memory that the next call overwrites: for a digest used at once (copied or signed). */
function transientDigest(domain: Buffer, body: Uint8Array): Uint8Array {
  hasher.update(domain);
  hasher.update(body);
  hasher.digest(digestOut);
  return digestView;
}

/** requestDigest, valid until the next transient digest (the server copies it into the verifier's ring). */
export function transientRequestDigest(body: Uint8Array): Uint8Array {
  return transientDigest(requestDomain, body);
}

export function requestDigest(body: Uint8Array): Uint8Array {
  return digest(requestDomain, body);
}

export function responseDigest(body: Uint8Array): Uint8Array {
  return digest(responseDomain, body);
}

export function newNonce(): Uint8Array {
  return new Uint8Array(randomBytes(16));
}

/**
 * A framed envelope {b: body, s: signature} with room for the signature: the map is written by hand
 * (its layout is fixed) so a reply costs one buffer and one copy of its body instead of a second CBOR
 * encode and a framing copy. `sig` is where the 64 signature bytes go.
 *   u32 length || A2 | 61 "b" | bstr header | body | 61 "s" | 58 40 | signature
 */
export function frameEnvelope(body: Uint8Array, scratch?: Uint8Array): { bytes: Uint8Array; sig: Uint8Array } {
  const header = body.length < 24 ? 1 : body.length < 0x100 ? 2 : body.length < 0x10000 ? 3 : 5;
  const payload = 3 + header + body.length + 4 + 64;
  const bytes = scratch && scratch.length >= 4 + payload ? scratch.subarray(0, 4 + payload) : new Uint8Array(4 + payload);
  writeUint(bytes, 0, payload, 4);
  bytes[4] = 0xa2; // map of 2
  bytes[5] = 0x61; // text of 1
  bytes[6] = 0x62; // "b"
  if (header === 1) bytes[7] = 0x40 | body.length;
  else {
    bytes[7] = header === 2 ? 0x58 : header === 3 ? 0x59 : 0x5a;
    writeUint(bytes, 8, body.length, header - 1);
  }
  let at = 7 + header;
  bytes.set(body, at);
  at += body.length;
  bytes.set(SIGNATURE_KEY, at);
  return { bytes, sig: bytes.subarray(at + 4) };
}
const SIGNATURE_KEY = new Uint8Array([0x61, 0x73, 0x58, 0x40]); // "s": bytes of 64

/** Writes `value` big-endian in `width` bytes at `at`. */
function writeUint(bytes: Uint8Array, at: number, value: number, width: number): void {
  for (let i = width - 1; i >= 0; i--, value = Math.floor(value / 256)) bytes[at + i] = value & 0xff;
}

/** Encodes and signs a request; returns the framed bytes and the body it carries. */
export function encodeRequest(key: KeyPair, method: string, params: unknown, id: number, now = Date.now()): { bytes: Uint8Array; body: RequestBody } {
  const body: RequestBody = { m: method, p: params ?? null, i: id, t: now, n: newNonce(), k: key.publicKey };
  const b = encodeTransient(body);
  const { bytes, sig } = frameEnvelope(b);
  signInto(key, requestDigest(b), sig);
  return { bytes, body };
}

/**
 * Encodes, signs and frames a response. With `scratch`, a response that fits is framed in it (and is
 * valid until the next use of `scratch`): the server writes most replies to their socket at once, and
 * a fresh frame per reply was a third of the garbage a call made.
 */
export function encodeResponse(key: KeyPair, body: Omit<ResponseBody, "k" | "t">, now = Date.now(), scratch?: Uint8Array): Uint8Array {
  // a literal of one of two shapes, not a spread: cheaper to build and to encode (same bytes)
  const full = body.e === undefined ? { i: body.i, n: body.n, y: body.y, r: body.r, k: key.publicKey, t: now } : { i: body.i, n: body.n, y: body.y, e: body.e, k: key.publicKey, t: now };
  const b = encodeTransient(full);
  const { bytes, sig } = frameEnvelope(b, scratch);
  signInto(key, transientDigest(responseDomain, b), sig);
  return bytes;
}

export function isBytes(v: unknown, len?: number): v is Uint8Array {
  return v instanceof Uint8Array && (len === undefined || v.length === len);
}

/** Decodes a response frame payload without checking its signature; throws on malformed input.
 * `digest` and `signature` are what verifySignature(body.k, digest, signature) must accept. */
export function parseResponse(payload: Uint8Array): { body: ResponseBody; digest: Uint8Array; signature: Uint8Array } {
  const env = cbor.decode(payload) as { b?: unknown; s?: unknown };
  if (!env || !isBytes(env.b) || !isBytes(env.s, 64)) throw new Error("malformed response envelope");
  const body = cbor.decode(env.b) as ResponseBody;
  if (!body || !isBytes(body.k, 32) || !["item", "result", "error"].includes(body.y)) throw new Error("malformed response body");
  return { body, digest: responseDigest(env.b), signature: env.s };
}

/** Decodes and verifies a response frame payload; throws on anything malformed or forged. */
export function decodeResponse(payload: Uint8Array): ResponseBody {
  const { body, digest, signature } = parseResponse(payload);
  if (!verifySignature(body.k, digest, signature)) throw new Error("response signature does not verify");
  return body;
}
