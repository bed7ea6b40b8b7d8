// Client side of the signed RPC protocol (protocol.ts): used by the `zos` CLI, tests and benchmarks.
// Every response must verify under one node key for the connection's lifetime; when the caller
// pinned a key (known_nodes), any other key fails every call with code "node-key-mismatch".
import type { Socket } from "bun";
import { keyId, verifySignatureAsync, type KeyPair } from "../identity/ed25519.ts";
import { DEFAULT_TCP_PORT, encodeRequest, FrameReader, parseResponse, type ResponseBody } from "./protocol.ts";

export type NodeAddress = { kind: "tcp"; host: string; port: number } | { kind: "unix"; path: string };

export class RpcCallError extends Error {
  constructor(readonly code: string, message: string, readonly data?: unknown) {
    super(message);
    this.name = "RpcCallError";
  }
}

/** "unix:/run/zos.sock", "host", "host:port", "[v6]:port". */
export function parseNodeAddress(text: string): NodeAddress {
  if (text.startsWith("unix:")) {
    const path = text.slice(5);
    if (!path) throw new Error("unix: needs a socket path, e.g. unix:/run/zos.sock");
    return { kind: "unix", path };
  }
  const m = /^\[([^\]]+)\](?::(\d+))?$/.exec(text) ?? /^([^:]+)(?::(\d+))?$/.exec(text);
  if (!m) throw new Error(`'${text}' is not HOST[:PORT] or unix:PATH`);
  const port = m[2] === undefined ? DEFAULT_TCP_PORT : Number(m[2]);
  if (!(port > 0 && port < 65536)) throw new Error(`invalid port in '${text}'`);
  return { kind: "tcp", host: m[1], port };
}

export function formatNodeAddress(a: NodeAddress): string {
  return a.kind === "unix" ? `unix:${a.path}` : `${a.host.includes(":") ? `[${a.host}]` : a.host}:${a.port}`;
}

interface PendingCall {
  nonce: Uint8Array;
  /** Signs the request again at the node's time; null once used (one retry per call). */
  resignAtNodeTime: (() => void) | null;
  resolve(v: unknown): void;
  reject(e: Error): void;
  onItem?: (item: unknown) => void;
}

export interface CallOptions {
  onItem?: (item: unknown) => void;
  signal?: AbortSignal;
}

export class RpcClient {
  private nextId = 1;
  private pending = new Map<number, PendingCall>();
  private reader = new FrameReader();
  private queue: Uint8Array[] = [];
  private closedError: RpcCallError | null = null;
  /** Responses in arrival order, each after its signature checked out. */
  private inbox: Promise<void> = Promise.resolve();
  nodeKey: Uint8Array | null;
  /**
   * How far the node's clock is ahead of ours, learned from a signed stale-timestamp refusal: a node
   * without NTP (or a loaded VM) drifts, and an operator must still reach it to fix that.
   */
  clockOffsetMs = 0;

  private constructor(private socket: Socket<undefined> | null, private readonly key: KeyPair, expectNodeKey?: Uint8Array) {
    this.nodeKey = expectNodeKey ?? null;
  }

  static async connect(address: NodeAddress, key: KeyPair, opts: { expectNodeKey?: Uint8Array } = {}): Promise<RpcClient> {
    const client = new RpcClient(null, key, opts.expectNodeKey);
    const handlers = {
      data: (_s: Socket<undefined>, chunk: Uint8Array) => client.onData(chunk),
      drain: () => client.flush(),
      // after the responses already read: a reply followed at once by a close still counts
      close: () => client.afterInbox(() => client.failAll(new RpcCallError("connection-closed", "the node closed the connection"))),
      error: (_s: Socket<undefined>, e: Error) => client.afterInbox(() => client.failAll(new RpcCallError("connection-error", e.message))),
    };
    try {
      client.socket = address.kind === "unix"
        ? await Bun.connect({ unix: address.path, socket: handlers })
        : await Bun.connect({ hostname: address.host, port: address.port, socket: handlers });
    } catch (e) {
      throw new RpcCallError("unreachable", `cannot connect to ${formatNodeAddress(address)}: ${(e as Error).message}`);
    }
    return client;
  }

  get nodeId(): string | null {
    return this.nodeKey ? keyId(this.nodeKey) : null;
  }

  call<T = unknown>(method: string, params: unknown = null, opts: CallOptions = {}): Promise<T> {
    if (this.closedError) return Promise.reject(this.closedError);
    const id = this.nextId++;
    const { bytes, body } = encodeRequest(this.key, method, params, id, Date.now() + this.clockOffsetMs);
    return new Promise<T>((resolve, reject) => {
      const pending: PendingCall = { nonce: body.n, resolve: resolve as (v: unknown) => void, reject, onItem: opts.onItem, resignAtNodeTime: null };
      // same id, fresh nonce: a refused request never reached the node's replay cache or call table
      pending.resignAtNodeTime = () => {
        pending.resignAtNodeTime = null;
        const again = encodeRequest(this.key, method, params, id, Date.now() + this.clockOffsetMs);
        pending.nonce = again.body.n;
        this.write(again.bytes);
      };
      this.pending.set(id, pending);
      if (opts.signal) {
        const onAbort = () => {
          if (this.pending.has(id)) this.call("rpc.cancel", { id }).catch(() => {});
        };
        if (opts.signal.aborted) onAbort();
        else opts.signal.addEventListener("abort", onAbort, { once: true });
      }
      this.write(bytes);
    });
  }

  close(): void {
    this.socket?.end();
    this.failAll(new RpcCallError("connection-closed", "client closed the connection"));
  }

  private write(bytes: Uint8Array): void {
    this.queue.push(bytes);
    if (this.queue.length === 1) this.flush();
  }

  private flush(): void {
    while (this.socket && this.queue.length > 0) {
      const head = this.queue[0];
      const n = this.socket.write(head);
      if (n < head.length) {
        this.queue[0] = head.subarray(Math.max(0, n));
        return;
      }
      this.queue.shift();
    }
  }

  private onData(chunk: Uint8Array): void {
    this.reader.push(chunk);
    for (;;) {
      let parsed: ReturnType<typeof parseResponse>;
      try {
        const payload = this.reader.next();
        if (!payload) return;
        parsed = parseResponse(payload);
      } catch (e) {
        return this.abandon(new RpcCallError("bad-response", `invalid response from node: ${(e as Error).message}`));
      }
      const { body, digest, signature } = parsed;
      if (this.nodeKey && Buffer.compare(this.nodeKey, body.k) !== 0)
        return this.abandon(new RpcCallError("node-key-mismatch", `node answered with key ${keyId(body.k)} but ${keyId(this.nodeKey)} was expected`, { got: keyId(body.k), expected: keyId(this.nodeKey) }));
      this.nodeKey = body.k;
      // verify on the crypto thread pool, but hand responses on in arrival order (items before results)
      const verified = verifySignatureAsync(body.k, digest, signature);
      this.inbox = this.inbox.then(async () => {
        if (this.closedError) return;
        if (!(await verified)) return this.abandon(new RpcCallError("bad-response", "invalid response from node: signature does not verify"));
        this.dispatch(body);
      });
    }
  }

  private afterInbox(fn: () => void): void {
    this.inbox = this.inbox.then(fn);
  }

  private abandon(e: RpcCallError): void {
    this.failAll(e);
    this.socket?.end();
  }

  private dispatch(body: ResponseBody): void {
    // an error with no id means the node could not even read our frame: no call can succeed now
    if (body.i === null && body.y === "error") {
      this.failAll(new RpcCallError(body.e?.code ?? "internal", body.e?.message ?? "unknown error"));
      return;
    }
    const call = body.i === null ? undefined : this.pending.get(body.i);
    // a response must echo the request's nonce; the only exception is the cancellation notice
    const cancelled = body.y === "error" && body.e?.code === "cancelled" && body.n === null;
    // anything else is not an answer to a call we made (e.g. the reply to a cancelled call's late result)
    if (!call || (!cancelled && (!body.n || Buffer.compare(body.n, call.nonce) !== 0))) return;
    if (body.y === "item") {
      call.onItem?.(body.r);
      return;
    }
    if (body.y === "error" && body.e?.code === "stale-timestamp" && call.resignAtNodeTime) {
      // body.t is the node's clock, covered by the signature just verified
      this.clockOffsetMs = body.t - Date.now();
      return call.resignAtNodeTime();
    }
    this.pending.delete(body.i!);
    if (body.y === "result") call.resolve(body.r);
    else call.reject(new RpcCallError(body.e?.code ?? "internal", body.e?.message ?? "unknown error", body.e?.data));
  }

  private failAll(e: RpcCallError): void {
    this.closedError ??= e;
    for (const c of this.pending.values()) c.reject(e);
    this.pending.clear();
  }
}
