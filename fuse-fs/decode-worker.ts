// Decodes (verifies, decrypts, decompresses) blocks off the main thread, and writes each decoded block
// to the chunk cache when asked: at ~2 ms per 512 KiB block, decoding inline would cap a cold read
// near 250 MB/s and stall every other request meanwhile. The block's bytes arrive in a buffer the pool
// lends (DecodeRequest.buffer) and go back with the answer, so that memory is reused hot.
import { decodeBlock, StoreError, type StoreErrorCode } from "../store/index.ts";
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

self.onmessage = (e: MessageEvent<DecodeRequest>) => {
  const { seq, id, key, buffer, length, cache } = e.data;
  let answer: DecodeAnswer;
  try {
    const plain = decodeBlock({ id, key }, new Uint8Array(buffer, 0, length));
    answer = { seq, buffer, plain, cached: cache !== null && writeChunk(cache, plain) };
    self.postMessage(answer, [buffer, plain.buffer as ArrayBuffer]);
  } catch (err) {
    const code = err instanceof StoreError ? err.code : "corrupt";
    answer = { seq, buffer, error: { code, message: (err as Error).message } };
    self.postMessage(answer, [buffer]);
  }
};
