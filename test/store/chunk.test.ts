// rfs block encoding: fixed vectors made by an independent implementation (Python hashlib BLAKE2b,
// pyca/cryptography AES-GCM, hand-written raw snappy streams), plus round trips and tamper checks.
import { describe, expect, test } from "bun:test";
import { blake2b, blake3 } from "hash-wasm";
import { blake2b256 } from "../../native/index.ts";
import { decodeBlock, decodeBlocks, encodeBlock, encodeBlocks, getBlock, putBlock, openBackend, StoreError, hex } from "../../store/index.ts";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const h = (s: string) => new Uint8Array(Buffer.from(s, "hex"));

// "hello world" is short enough that snappy stores it as one literal, so encode must match byte for byte.
const hello = {
  plain: new TextEncoder().encode("hello world"),
  key: h("256c83b297114d201b30179f3f0ef0cace9783622da5974326b436178aeef610"),
  data: h("ee4728dcead273b489d54d9464c03cf17853c6f001d196ee1efebb5563"),
  id: h("d917c0529e8b76d494ceb149a6faa1bd527b7415f5cf7ca728ad941622414267"),
};
// "abcd" x4, compressed by hand as literal "abcd" + a 12-byte back-reference (tag 0x2e, offset 4).
const repeated = {
  plain: new TextEncoder().encode("abcdabcdabcdabcd"),
  key: h("4cb7cc15362d2897445fc7cbf6bb261ec3e1ebf07dfa5d7ffd35a660bebe146b"),
  data: h("89f1b61fff8b8aa748e997e4b9922a3b93d37ce7c7c026b5a8"),
  id: h("5a152f835190781b73f7303091f67c85c989cf18347cbca00e55fe630344ad8b"),
};

function expectCorrupt(fn: () => unknown) {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StoreError);
    expect((err as StoreError).code).toBe("corrupt");
    return;
  }
  throw new Error("expected a corrupt error");
}

describe("rfs block encoding", () => {
  test("encode matches an independently computed rfs block", () => {
    const block = encodeBlock(hello.plain);
    expect(hex(block.key)).toBe(hex(hello.key));
    expect(hex(block.data)).toBe(hex(hello.data));
    expect(hex(block.id)).toBe(hex(hello.id));
  });

  test("decode reads independently produced blocks, including a snappy back-reference", () => {
    expect(Buffer.from(decodeBlock(hello, hello.data)).toString()).toBe("hello world");
    expect(Buffer.from(decodeBlock(repeated, repeated.data)).toString()).toBe("abcdabcdabcdabcd");
  });

  test("key and id are BLAKE2b-256 as computed by hash-wasm", async () => {
    const plain = new Uint8Array(512 * 1024);
    for (let i = 0; i < plain.length; i++) plain[i] = (i * 7919) & 0xff;
    const block = encodeBlock(plain);
    expect(hex(block.key)).toBe(await blake2b(plain, 256));
    expect(hex(block.id)).toBe(await blake2b(block.data, 256));
    expect(block.data.length).toBeLessThan(plain.length); // compressed before encryption
    expect(Buffer.compare(decodeBlock(block, block.data), plain)).toBe(0);
  });

  test("with BLAKE3 (vdisks): key and id are BLAKE3-256 as computed by hash-wasm; decoding with the other hash is corrupt", async () => {
    const plain = new Uint8Array(64 * 1024);
    for (let i = 0; i < plain.length; i++) plain[i] = (i * 7919) & 0xff;
    const [block] = encodeBlocks([plain], "blake3");
    expect(hex(block.key)).toBe(await blake3(plain, 256));
    expect(hex(block.id)).toBe(await blake3(block.data, 256));
    expect(hex(encodeBlock(plain, "blake3").id)).toBe(hex(block.id));
    expect(Buffer.compare(decodeBlock(block, block.data, undefined, "blake3"), plain)).toBe(0);
    expect(Buffer.compare(decodeBlocks([{ ref: block, data: block.data }], undefined, "blake3")[0] as Uint8Array, plain)).toBe(0);
    expectCorrupt(() => decodeBlock(block, block.data));
    expect(decodeBlocks([{ ref: block, data: block.data }])[0]).toBeInstanceOf(StoreError);
  });

  test("round trips empty, tiny and incompressible blocks; identical content dedups", () => {
    const random = crypto.getRandomValues(new Uint8Array(65536));
    for (const plain of [new Uint8Array(0), new Uint8Array([1]), random]) {
      const a = encodeBlock(plain);
      const b = encodeBlock(plain.slice());
      expect(hex(a.id)).toBe(hex(b.id));
      expect(Buffer.compare(decodeBlock(a, a.data), plain)).toBe(0);
    }
  });

  test("blocks of any size decode intact one after another, each result its own bytes", () => {
    // Sizes around the 64 KiB decryption steps and above the 1 MiB the reused scratch buffer serves.
    const sizes = [65535, 65536, 65537, 512 * 1024, 1024 * 1024 - 17, 1024 * 1024 + 16, 3 * 1024 * 1024 + 5];
    const plains = sizes.map((n) => crypto.getRandomValues(new Uint8Array(n)));
    const decoded = plains.map((p) => {
      const b = encodeBlock(p);
      return decodeBlock(b, b.data);
    });
    plains.forEach((p, i) => expect(Buffer.compare(decoded[i], p)).toBe(0));
    // A block whose GCM tag fails (its id matches its altered bytes) after a good one leaves nothing of itself in the good one's result.
    const good = encodeBlock(plains[3]);
    const bad = encodeBlock(plains[2]);
    bad.data[100] ^= 1;
    const first = decodeBlock(good, good.data);
    expectCorrupt(() => decodeBlock({ id: blake2b256(bad.data), key: bad.key }, bad.data));
    expect(Buffer.compare(first, plains[3])).toBe(0);
  });

  test("decodeBlocks decodes a batch as decodeBlock does each block, a bad one failing alone", () => {
    const plains = [512 * 1024, 1, 0, 100_000, 512 * 1024].map((n) => crypto.getRandomValues(new Uint8Array(n)));
    const blocks = plains.map((p) => encodeBlock(p));
    const altered = blocks[3].data.slice();
    altered[5] ^= 1;
    const results = decodeBlocks([
      ...blocks.map((b) => ({ ref: b, data: b.data })),
      { ref: blocks[3], data: altered }, // fails the id check
      { ref: { id: blocks[1].id, key: blocks[0].key }, data: blocks[1].data }, // right id, wrong key: fails GCM
    ]);
    plains.forEach((p, i) => expect(Buffer.compare(results[i] as Uint8Array, p)).toBe(0));
    for (const bad of results.slice(plains.length)) {
      expect(bad).toBeInstanceOf(StoreError);
      expect((bad as StoreError).code).toBe("corrupt");
    }
    expect((results[plains.length] as StoreError).message).toMatch(/do not hash to their id/);
    expect((results[plains.length + 1] as StoreError).message).toMatch(/AES-GCM/);
  });

  test("a flipped byte, a wrong key or a truncated block is reported corrupt", () => {
    const flipped = hello.data.slice();
    flipped[3] ^= 1;
    expectCorrupt(() => decodeBlock(hello, flipped));
    expectCorrupt(() => decodeBlock({ id: hello.id, key: repeated.key }, hello.data));
    expectCorrupt(() => decodeBlock({ id: h(hex(new Uint8Array(32))), key: hello.key }, hello.data.subarray(0, 8)));
    // The id matches but the key is wrong: only the GCM tag can tell.
    const truncatedId = encodeBlock(new Uint8Array(4));
    expectCorrupt(() => decodeBlock({ id: truncatedId.id, key: hello.key }, truncatedId.data));
  });

  test("putBlock/getBlock through a dir store; missing blocks read as null", async () => {
    const root = mkdtempSync(join(tmpdir(), "zstore-chunk-"));
    try {
      const store = await openBackend(`dir://${root}`);
      const ref = await putBlock(store, hello.plain);
      expect(hex(ref.id)).toBe(hex(hello.id));
      expect(Buffer.from((await getBlock(store, ref))!).toString()).toBe("hello world");
      expect(await getBlock(store, repeated)).toBeNull();
      await store.close();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
