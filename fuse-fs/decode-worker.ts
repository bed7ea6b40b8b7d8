// Decodes (verifies, decrypts, decompresses) blocks off the main thread, and writes each decoded block
// to the chunk cache when asked: at ~2 ms per 512 KiB block, decoding inline would cap a cold read
// near 250 MB/s and stall every other request meanwhile. Blocks come in batches (what queued up while
// this worker was busy), whose id hashes run together (decodeBlocks). Each block's bytes arrive in a
// buffer the pool lends (DecodeRequest.buffer) and go back with the answer, so that memory is reused hot.
import { decodeBlocks, type StoreErrorCode } from "../store/index.ts";
import { writeChunk, type ChunkTarget } from "./cache.ts";

declare const self: Worker;

export interface DecodeRequest {
  seq: number;
  id: Uint8Array;
  key: Uint8Array;
  /** Holds the stored block in its first `length` bytes; returned in the answer. */
  buffer: ArrayBuffer;
  length: number;
  /** Where to write the decoded block in the chunk cache, if anywhere. */
  cache: ChunkTarget | null;
}

export type DecodeAnswer =
  | { seq: number; buffer: ArrayBuffer; plain: Uint8Array; cached: boolean }
  | { seq: number; buffer: ArrayBuffer; error: { code: StoreErrorCode; message: string } };

self.onmessage = (e: MessageEvent<DecodeRequest[]>) => {
  const batch = e.data;
  const results = decodeBlocks(batch.map((r) => ({ ref: r, data: new Uint8Array(r.buffer, 0, r.length) })));
  const transfer: ArrayBuffer[] = [];
  const answers = batch.map((r, i): DecodeAnswer => {
    const result = results[i];
    transfer.push(r.buffer);
    if (!(result instanceof Uint8Array)) return { seq: r.seq, buffer: r.buffer, error: { code: result.code, message: result.message } };
    transfer.push(result.buffer as ArrayBuffer);
    return { seq: r.seq, buffer: r.buffer, plain: result, cached: r.cache !== null && writeChunk(r.cache, result) };
  });
  self.postMessage(answers, transfer);
};
