// Worker side of EncoderPool: encodes one block per message (store/chunk.ts) and hands the
// buffers back without copying them.
import { encodeBlock } from "../../store/chunk.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent<{ seq: number; plain: ArrayBuffer }>) => {
  try {
    const r = encodeBlock(new Uint8Array(e.data.plain));
    self.postMessage({ seq: e.data.seq, id: r.id, key: r.key, data: r.data }, [r.data.buffer as ArrayBuffer]);
  } catch (err) {
    self.postMessage({ seq: e.data.seq, error: String((err as Error)?.message ?? err) });
  }
};
