// The encoder worker has no default block hash: a message without one fails instead of storing
// blocks that the vdisk's record could not read back.
import { expect, test } from "bun:test";
import { blake3 } from "../../native/index.ts";
import { encodedCapacity } from "../../store/index.ts";

function ask(message: object, transfer: ArrayBuffer[]): Promise<{ error?: string; blocks?: { id: Uint8Array; data: Uint8Array }[] }> {
  const w = new Worker(new URL("../../vdisk/model/encode-worker.ts", import.meta.url).href);
  return new Promise((resolve) => {
    w.onmessage = (e) => {
      resolve(e.data);
      w.terminate();
    };
    w.postMessage(message, transfer);
  });
}

test("a batch without a hash is refused; with one it is encoded with it", async () => {
  const plain = () => new Uint8Array(4096).fill(7).buffer as ArrayBuffer;
  const missing = plain();
  expect((await ask({ seq: 1, plains: [missing] }, [missing])).error).toContain("unknown block hash");
  const given = plain();
  const output = new ArrayBuffer(encodedCapacity(4096));
  const ok = await ask({ seq: 2, plains: [given], outputs: [output], hash: "blake3" }, [given, output]);
  expect(ok.error).toBeUndefined();
  expect(Buffer.from(ok.blocks![0].id)).toEqual(Buffer.from(blake3(ok.blocks![0].data)));
  expect(ok.blocks![0].data.buffer.byteLength).toBe(encodedCapacity(4096)); // encoded into the buffer sent
});
