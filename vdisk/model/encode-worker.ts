// Worker side of EncoderPool: encodes a batch of blocks per message (store/chunk.ts) into the
// output buffers that came with it, and hands the encoded blocks back without copying them (views
// of those buffers), with the plaintext buffers for reuse.
import { encodeBlocks, isBlockHash, type BlockHash } from "../../store/chunk.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent<{ seq: number; plains: ArrayBuffer[]; outputs?: ArrayBuffer[]; hash: BlockHash }>) => {
  const { seq, plains, outputs = [], hash } = e.data;
  try {
    // No default: a message that lost its hash must fail, not store blocks the record cannot read.
    if (!isBlockHash(hash)) throw new Error(`unknown block hash ${JSON.stringify(hash)}`);
    const blocks = encodeBlocks(plains.map((p) => new Uint8Array(p)), hash, outputs.map((o) => new Uint8Array(o)));
    self.postMessage({ seq, blocks, plains }, [...new Set(blocks.map((b) => b.data.buffer as ArrayBuffer)), ...plains]);
  } catch (err) {
    self.postMessage({ seq, plains: [...plains, ...outputs], error: String((err as Error)?.message ?? err) }, [...plains, ...outputs]);
  }
};
