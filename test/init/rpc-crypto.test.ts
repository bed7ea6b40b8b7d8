// The RPC server verifies requests and signs replies on Bun's crypto thread pool: the async forms must
// accept and reject exactly what the synchronous ones do, and what they sign must verify.
import { describe, expect, test } from "bun:test";
import { generateKeyPair, signMessage, verifySignature, verifySignatureAsync } from "../../init/identity/ed25519.ts";
import { cbor, decodeResponse, encodeResponse, frameEnvelope, requestDigest } from "../../init/rpc/protocol.ts";

const key = generateKeyPair();
const other = generateKeyPair();
const message = requestDigest(new TextEncoder().encode("a request body"));
const good = signMessage(key, message);

function flipped(bytes: Uint8Array, at: number): Uint8Array {
  const b = new Uint8Array(bytes); // a copy (Buffer#slice would share the digest's memory)
  b[at] ^= 1;
  return b;
}

// the low-order point (0, 1) encodes as 01 00..00: a valid encoding that must never verify a signature
const identityPoint = new Uint8Array(32);
identityPoint[0] = 1;
// y = 2 is not on the curve, so the key cannot even be parsed
const offCurve = new Uint8Array(32);
offCurve[0] = 2;

const cases: [string, Uint8Array, Uint8Array, Uint8Array][] = [
  ["a good signature", key.publicKey, message, good],
  ["another key", other.publicKey, message, good],
  ["a changed message", key.publicKey, flipped(message, 0), good],
  ["a changed R half", key.publicKey, message, flipped(good, 3)],
  ["a changed S half", key.publicKey, message, flipped(good, 40)],
  ["S not reduced mod L", key.publicKey, message, (() => { const b = new Uint8Array(good); b[63] |= 0xf0; return b; })()],
  ["an all-zero signature", key.publicKey, message, new Uint8Array(64)],
  ["a short signature", key.publicKey, message, good.subarray(0, 63)],
  ["a short key", key.publicKey.subarray(0, 31), message, good],
  ["the low-order identity key", identityPoint, message, new Uint8Array(64)],
  ["a key off the curve", offCurve, message, good],
];

describe("verification on the pool matches the main thread", () => {
  for (const [name, pub, msg, sig] of cases) {
    test(name, async () => {
      const sync = verifySignature(pub, msg, sig);
      expect(await verifySignatureAsync(pub, msg, sig)).toBe(sync);
      expect(sync).toBe(name === "a good signature");
    });
  }
  test("many concurrent verifications each get their own answer", async () => {
    const sigs = Array.from({ length: 200 }, (_, i) => (i % 3 === 0 ? flipped(good, i % 64) : good));
    const results = await Promise.all(sigs.map((s) => verifySignatureAsync(key.publicKey, message, s)));
    expect(results).toEqual(sigs.map((s) => verifySignature(key.publicKey, message, s)));
    expect(results.filter(Boolean).length).toBe(sigs.filter((s) => s === good).length);
  });
});

describe("signed replies", () => {
  test("a reply decodes, verifies under the node key and carries the request nonce", () => {
    const nonce = new Uint8Array(16).fill(9);
    const bytes = encodeResponse(key, { i: 7, n: nonce, y: "result", r: { hello: "world" } });
    expect(new DataView(bytes.buffer, bytes.byteOffset).getUint32(0)).toBe(bytes.length - 4);
    const body = decodeResponse(bytes.subarray(4));
    expect(body).toMatchObject({ i: 7, y: "result", r: { hello: "world" } });
    expect(body.n).toEqual(nonce);
    expect(body.k).toEqual(key.publicKey);
  });

  test("the hand-written envelope is the CBOR map {b, s} for every body length class", () => {
    // around each CBOR length-header boundary: 1 byte (< 24), +1 (< 256), +2 (< 65536), +4
    for (const n of [0, 23, 24, 255, 256, 65535, 65536, 70000]) {
      const body = new Uint8Array(n).map((_, i) => i * 7);
      const { bytes, sig } = frameEnvelope(body);
      sig.fill(0xab);
      expect(new DataView(bytes.buffer).getUint32(0)).toBe(bytes.length - 4);
      expect(cbor.decode(bytes.subarray(4))).toEqual({ b: body, s: new Uint8Array(64).fill(0xab) });
    }
  });
});
