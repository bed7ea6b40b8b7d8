// Worker side of EncoderPool: encodes a batch of blocks per message (store/chunk.ts) and hands the
// buffers back without copying them.
import { encodeBlock } from "../../store/chunk.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent<{ seq: number; plains: ArrayBuffer[] }>) => {
  try {
    const blocks = e.data.plains.map((p) => encodeBlock(new Uint8Array(p)));
    self.postMessage({ seq: e.data.seq, blocks }, blocks.map((b) => b.data.buffer as ArrayBuffer));
  } catch (err) {
    self.postMessage({ seq: e.data.seq, error: String((err as Error)?.message ?? err) });
  }
};
