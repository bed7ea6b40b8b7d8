// Decodes (verifies, decrypts, decompresses) blocks off the main thread: at ~2 ms per 512 KiB block,
// decoding inline would cap a cold read near 250 MB/s and stall every other request meanwhile.
import { decodeBlock, StoreError } from "../store/index.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent<{ seq: number; id: Uint8Array; key: Uint8Array; data: Uint8Array }>) => {
  const { seq, id, key, data } = e.data;
  try {
    const plain = decodeBlock({ id, key }, data);
    self.postMessage({ seq, plain }, [plain.buffer as ArrayBuffer]);
  } catch (err) {
    const code = err instanceof StoreError ? err.code : "corrupt";
    self.postMessage({ seq, error: { code, message: (err as Error).message } });
  }
};
