// Worker side of EncoderPool: encodes a batch of blocks per message (store/chunk.ts) and
// hands the encoded buffers back without copying them, with the plaintext buffers for reuse.
import { encodeBlocks, isBlockHash, type BlockHash } from "../../store/chunk.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent<{ seq: number; plains: ArrayBuffer[]; hash: BlockHash }>) => {
  const { seq, plains, hash } = e.data;
  try {
    // No default: a message that lost its hash must fail, not store blocks the record cannot read.
    if (!isBlockHash(hash)) throw new Error(`unknown block hash ${JSON.stringify(hash)}`);
    const blocks = encodeBlocks(plains.map((p) => new Uint8Array(p)), hash);
    self.postMessage({ seq, blocks, plains }, [...blocks.map((b) => b.data.buffer as ArrayBuffer), ...plains]);
  } catch (err) {
    self.postMessage({ seq, plains, error: String((err as Error)?.message ?? err) }, plains);
  }
};
