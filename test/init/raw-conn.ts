// A bare protocol connection for tests: sends arbitrary bytes, collects verified responses in order.
import type { Socket } from "bun";
import { signMessage, type KeyPair } from "../../init/identity/ed25519.ts";
import { cbor, decodeResponse, frame, FrameReader, newNonce, requestDigest, type ResponseBody } from "../../init/rpc/protocol.ts";
import { until } from "./helpers.ts";

export class RawConn {
  responses: ResponseBody[] = [];
  closed = false;
  private reader = new FrameReader();
  private constructor(private socket: Socket<undefined> | null) {}

  static async open(target: { port: number } | { unix: string }): Promise<RawConn> {
    const c = new RawConn(null);
    const socket = {
      data: (_s: Socket<undefined>, chunk: Uint8Array) => {
        c.reader.push(chunk);
        for (let p = c.reader.next(); p; p = c.reader.next()) c.responses.push(decodeResponse(p));
      },
      close: () => {
        c.closed = true;
      },
    };
    c.socket = "port" in target ? await Bun.connect({ hostname: "127.0.0.1", port: target.port, socket }) : await Bun.connect({ unix: target.unix, socket });
    return c;
  }

  send(bytes: Uint8Array): void {
    this.socket!.write(bytes);
  }

  /** Waits for the next response after the ones already taken. */
  private taken = 0;
  async next(): Promise<ResponseBody> {
    await until(() => this.responses.length > this.taken || this.closed, "a response");
    if (this.responses.length <= this.taken) throw new Error("connection closed without a response");
    return this.responses[this.taken++];
  }

  close(): void {
    this.socket?.end();
  }
}

export interface BodyFields {
  m?: unknown;
  p?: unknown;
  i?: unknown;
  t?: unknown;
  n?: unknown;
  k?: unknown;
}

/** A request frame with any body fields, signed by `signer` (or a given signature). */
export function craft(key: KeyPair, fields: BodyFields = {}, opts: { signer?: KeyPair; omit?: string[]; signature?: Uint8Array } = {}): Uint8Array {
  const body: Record<string, unknown> = { m: "node.info", p: null, i: 1, t: Date.now(), n: newNonce(), k: key.publicKey, ...fields };
  for (const f of opts.omit ?? []) delete body[f];
  const b = cbor.encode(body);
  const s = opts.signature ?? signMessage(opts.signer ?? key, requestDigest(b));
  return frame(cbor.encode({ b, s }));
}
