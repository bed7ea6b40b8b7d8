// The signed RPC server: the same protocol on a unix socket and on TCP (see protocol.ts for the wire
// format). Every request is checked in this order, each failure getting its own error code:
// envelope -> body fields -> trusted key -> signature -> timestamp window -> nonce replay ->
// method exists -> caller's role -> parameter schema. Only then is the handler called; calls on one
// connection run concurrently and each can stream items and be cancelled.
//
// The one JS thread does framing, CBOR, checks, dispatch and signs each reply (~20 µs); verifying
// each request (~50 µs, the largest cost of a call) runs on other threads (verifier.ts), so both
// cores serve calls. Replies are signed on the JS thread because on a shared pool a reply's signature
// queued behind the verification of every request that arrived before it was done: at 32 calls in
// flight that added up to a millisecond to a call that was otherwise finished, and one more hand-off
// between threads per call. A reply is written as soon as it is signed.
import { chmodSync, existsSync, rmSync } from "node:fs";
import type { Socket, TCPSocketListener, UnixSocketListener } from "bun";
import type { KeyObject } from "node:crypto";
import { keyId, publicKeyObject, type KeyPair } from "../identity/ed25519.ts";
import { logger } from "../log.ts";
import { RpcError, type RpcErrorCode } from "./errors.ts";
import { cbor, encodeResponse, FrameError, FrameReader, isBytes, MAX_FRAME, TIMESTAMP_WINDOW_MS, transientRequestDigest, type ResponseBody } from "./protocol.ts";
import { roleAllows, type MethodContext, type MethodDef, type MethodRegistry, type Role } from "./registry.ts";
import { ReplayCache } from "./replay.ts";
import { SchemaError } from "./schema.ts";
import { SignatureVerifier } from "./verifier.ts";
import type { TrustStore } from "./trust.ts";

const log = logger("rpc");
/** Replies queued for a connection beyond which it is closed (its peer is not reading). */
const MAX_UNSENT_BYTES = 16 << 20;

/**
 * A call in progress: the context its handler gets and the way its answer goes out, in one object,
 * since a handful of closures and an AbortController per call were a measurable share of what a call
 * allocates. The AbortController is made only when the handler asks for the signal: most never do.
 */
class Call implements MethodContext {
  private controller: AbortController | null = null;
  aborted = false;

  constructor(
    private readonly server: RpcServer,
    private readonly socket: Socket<Connection>,
    private readonly id: number,
    private readonly nonce: Uint8Array,
    private readonly method: string,
    readonly callerId: string,
    readonly role: Role,
  ) {}

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.aborted) this.controller.abort();
    return this.controller.signal;
  }

  abort(): void {
    this.aborted = true;
    this.controller?.abort();
  }

  emit(item: unknown): void {
    if (!this.aborted) this.server.send(this.socket, { i: this.id, n: this.nonce, y: "item", r: item });
  }

  finish(result: unknown): void {
    this.settle(this.aborted ? { i: this.id, n: this.nonce, y: "error", e: { code: "cancelled", message: "call was cancelled" } } : { i: this.id, n: this.nonce, y: "result", r: result ?? null });
  }

  fail(e: unknown): void {
    const err = toRpcError(e);
    if (err.code === "internal") log.error(`${this.method} failed`, e);
    this.settle({ i: this.id, n: this.nonce, y: "error", e: { code: err.code, message: err.message, ...(err.data === undefined ? {} : { data: err.data }) } });
  }

  /** The final answer, unless a cancel already gave it or the connection is gone. */
  private settle(response: Omit<ResponseBody, "k" | "t">): void {
    const calls = this.socket.data.calls;
    if (calls.get(this.id) !== this) return;
    calls.delete(this.id);
    this.server.send(this.socket, response);
  }
}

/** The last caller key seen on a connection with its id and parsed form: a connection's requests
 * nearly always come from one caller, and deriving both costs allocations on every request. */
interface Caller {
  key: Uint8Array;
  id: string;
  object: KeyObject | null;
}

interface Connection {
  peer: string;
  reader: FrameReader;
  calls: Map<number, Call>;
  caller: Caller | null;
  /** Signed replies the socket has not taken yet, oldest first. */
  outbox: Uint8Array[];
  /** Bytes in the outbox. */
  pendingBytes: number;
  /** After a framing error: read nothing more, end the socket once the outbox is written. */
  closing: boolean;
  closed: boolean;
}

export interface RpcServerOptions {
  identity: KeyPair;
  registry: MethodRegistry;
  trust: TrustStore;
  windowMs?: number;
  maxFrame?: number;
  now?: () => number;
}

export interface RpcStats {
  calls: number;
  rejected: Partial<Record<string, number>>;
  connections: number;
}

/** Rejections are logged, but a flood must not flood the console: at most `perSecond` lines a second. */
class RateLimitedLog {
  private windowStart = 0;
  private count = 0;
  private suppressed = 0;
  constructor(private readonly perSecond = 20) {}
  warn(message: string): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      if (this.suppressed) log.warn(`${this.suppressed} more rejections not logged`);
      this.windowStart = now;
      this.count = 0;
      this.suppressed = 0;
    }
    if (++this.count <= this.perSecond) log.warn(message);
    else this.suppressed++;
  }
}

export class RpcServer {
  private listeners: (TCPSocketListener<Connection> | UnixSocketListener<Connection>)[] = [];
  private readonly replay: ReplayCache;
  private readonly windowMs: number;
  private readonly now: () => number;
  private readonly rejections = new RateLimitedLog();
  readonly stats: RpcStats = { calls: 0, rejected: {}, connections: 0 };
  private sockets = new Set<Socket<Connection>>();
  private readonly verifier: SignatureVerifier;
  /** Where replies are framed before they are written (see encodeResponse); made with the first reply. */
  private replyScratch: Uint8Array | null = null;

  constructor(private readonly opts: RpcServerOptions) {
    this.windowMs = opts.windowMs ?? TIMESTAMP_WINDOW_MS;
    this.replay = new ReplayCache(this.windowMs);
    this.now = opts.now ?? Date.now;
    this.verifier = new SignatureVerifier();
  }

  private handlers() {
    return {
      open: (socket: Socket<Connection>) => {
        socket.data = { peer: socket.remoteAddress || "unix", reader: new FrameReader(this.opts.maxFrame ?? MAX_FRAME), calls: new Map(), caller: null, outbox: [], pendingBytes: 0, closing: false, closed: false };
        this.sockets.add(socket);
        this.stats.connections++;
      },
      data: (socket: Socket<Connection>, chunk: Uint8Array) => this.onData(socket, chunk),
      drain: (socket: Socket<Connection>) => this.flush(socket),
      close: (socket: Socket<Connection>) => this.onClose(socket),
      error: (socket: Socket<Connection>, e: Error) => log.warn(`connection ${socket.data?.peer}: ${e.message}`),
    };
  }

  /** Listens on TCP; returns the bound port (useful with port 0). */
  listenTcp(hostname: string, port: number): number {
    const l = Bun.listen<Connection>({ hostname, port, socket: this.handlers() });
    this.listeners.push(l);
    log.info(`listening on tcp ${hostname}:${l.port}`);
    return l.port;
  }

  listenUnix(path: string): void {
    if (existsSync(path)) rmSync(path); // a stale socket from a previous run
    const l = Bun.listen<Connection>({ unix: path, socket: this.handlers() });
    chmodSync(path, 0o600); // access is by signature, but there is no reason to let others connect
    this.listeners.push(l);
    log.info(`listening on unix ${path}`);
  }

  /** Stops listening and ends every connection (replies already handed to a socket still go out). */
  stop(): void {
    for (const l of this.listeners) l.stop(true);
    this.listeners = [];
    for (const s of this.sockets) s.end();
    this.verifier.stop();
  }

  /** Whether requests are verified on the server's own verifier threads (they start once calls overlap). */
  get verifierThreaded(): boolean {
    return this.verifier.threaded;
  }

  private onData(socket: Socket<Connection>, chunk: Uint8Array): void {
    const conn = socket.data;
    if (conn.closed || conn.closing) return;
    conn.reader.push(chunk);
    for (;;) {
      let payload: Uint8Array | null;
      try {
        payload = conn.reader.next();
      } catch (e) {
        // the stream cannot be resynchronised after a bad length: answer, then close
        const err = e as FrameError;
        this.reject(socket, null, null, err.length === 0 ? "bad-frame" : "frame-too-large", err.message);
        conn.closing = true;
        this.flush(socket);
        return;
      }
      if (!payload) return;
      try {
        this.onFrame(socket, payload);
      } catch (e) {
        log.error(`unexpected error handling a frame from ${conn.peer}`, e);
        this.send(socket, { i: null, n: null, y: "error", e: { code: "internal", message: "internal error" } });
      }
      // answering verified requests on the way may have closed this connection (replies unread)
      if (conn.closed) return;
    }
  }

  private onFrame(socket: Socket<Connection>, payload: Uint8Array): void {
    let env: unknown;
    try {
      env = cbor.decode(payload);
    } catch (e) {
      return this.reject(socket, null, null, "malformed-cbor", `request is not valid CBOR: ${(e as Error).message}`);
    }
    const envelope = env as { b?: unknown; s?: unknown } | null;
    if (!envelope || typeof envelope !== "object" || !isBytes(envelope.b) || !isBytes(envelope.s))
      return this.reject(socket, null, null, "malformed-envelope", "request must be a map {b: body bytes, s: signature bytes}");
    if (envelope.s.length !== 64) return this.reject(socket, null, null, "malformed-envelope", `signature must be 64 bytes, got ${envelope.s.length}`);

    let raw: unknown;
    try {
      raw = cbor.decode(envelope.b);
    } catch (e) {
      return this.reject(socket, null, null, "malformed-cbor", `request body is not valid CBOR: ${(e as Error).message}`);
    }
    const body = raw as Record<string, unknown> | null;
    if (!body || typeof body !== "object" || Array.isArray(body)) return this.reject(socket, null, null, "bad-request", "request body must be a map");
    const id = typeof body.i === "number" && Number.isSafeInteger(body.i) && body.i >= 0 ? body.i : null;
    const nonce = isBytes(body.n, 16) ? body.n : null;
    const problem =
      id === null ? "field i (request id) must be a non-negative integer"
      : typeof body.m !== "string" || body.m.length === 0 || body.m.length > 128 ? "field m (method) must be a string of 1-128 characters"
      : typeof body.t !== "number" || !Number.isFinite(body.t) ? "field t (timestamp, unix ms) must be a number"
      : nonce === null ? "field n (nonce) must be 16 bytes"
      : !isBytes(body.k, 32) ? "field k (caller key) must be 32 bytes"
      : !("p" in body) ? "field p (params) is missing"
      : null;
    if (problem) return this.reject(socket, id, nonce, "bad-request", problem);
    const method = body.m as string, key = body.k as Uint8Array, ts = body.t as number;

    const caller = callerOf(socket.data, key);
    const callerId = caller.id;
    const role = this.opts.trust.roleOfId(callerId);
    if (!role) return this.reject(socket, id, nonce, "unknown-key", `key ${callerId} is not trusted by this node`);
    if (!caller.object) return this.reject(socket, id, nonce, "bad-signature", "signature does not verify for the request body and key");
    this.verifier.verify(caller.key, caller.object, transientRequestDigest(envelope.b), envelope.s, (ok) => {
      if (socket.data.closed || socket.data.closing) return;
      if (!ok) return this.reject(socket, id, nonce, "bad-signature", "signature does not verify for the request body and key");
      try {
        this.onVerified(socket, body, id!, nonce!, method, ts, role, callerId);
      } catch (e) {
        log.error(`unexpected error handling a request from ${socket.data.peer}`, e);
      }
    });
  }

  /** The rest of the checks, once the signature is known good; then dispatch. */
  private onVerified(socket: Socket<Connection>, body: Record<string, unknown>, id: number, nonce: Uint8Array, method: string, ts: number, role: Role, callerId: string): void {
    const skew = ts - this.now();
    if (Math.abs(skew) > this.windowMs)
      return this.reject(socket, id, nonce, "stale-timestamp", `timestamp is ${Math.round(skew / 1000)} s off the node's clock (window ±${this.windowMs / 1000} s); check the clocks`);
    const seen = this.replay.check(callerId, nonce, ts, this.now());
    if (seen === "replay") return this.reject(socket, id, nonce, "replay", "this nonce was already used; every request needs a fresh one");
    if (seen === "full") return this.reject(socket, id, nonce, "unavailable", "replay cache is full; retry shortly");

    const conn = socket.data;
    if (method === "rpc.cancel") return this.cancel(socket, id, nonce, callerId, body.p);
    if (conn.calls.has(id)) return this.reject(socket, id, nonce, "duplicate-id", `request id ${id} is already in use on this connection`);
    const def = this.opts.registry.get(method);
    if (def) return this.dispatch(socket, def, body, id, nonce, method, role, callerId);
    const loading = this.opts.registry.loadFor(method);
    if (!loading) return this.reject(socket, id, nonce, "unknown-method", `no method named '${method}'`);
    loading.then(
      () => {
        if (conn.closed) return;
        const loaded = this.opts.registry.get(method);
        if (!loaded) return this.reject(socket, id, nonce, "unknown-method", `no method named '${method}'`);
        if (conn.calls.has(id)) return this.reject(socket, id, nonce, "duplicate-id", `request id ${id} is already in use on this connection`);
        this.dispatch(socket, loaded, body, id, nonce, method, role, callerId);
      },
      (e) => this.reject(socket, id, nonce, "unavailable", `${method} is unavailable: its part failed to load: ${(e as Error).message}`),
    );
  }

  /** Role and parameter checks for a known method, then the call. */
  private dispatch(socket: Socket<Connection>, def: MethodDef, body: Record<string, unknown>, id: number, nonce: Uint8Array, method: string, role: Role, callerId: string): void {
    const conn = socket.data;
    if (!roleAllows(role, def.role)) return this.reject(socket, id, nonce, "forbidden", `${method} needs role ${def.role}; key ${callerId} has ${role}`);
    let params: unknown;
    try {
      params = def.params.parse(body.p, "");
    } catch (e) {
      if (e instanceof SchemaError) return this.reject(socket, id, nonce, "bad-params", e.message, { path: e.path });
      throw e;
    }

    this.stats.calls++;
    const call = new Call(this, socket, id, nonce, method, callerId, role);
    conn.calls.set(id, call);
    let running: Promise<unknown>;
    try {
      running = def.handler(params, call);
    } catch (e) {
      running = Promise.reject(e);
    }
    running.then((result) => call.finish(result), (e) => call.fail(e));
  }

  private cancel(socket: Socket<Connection>, id: number, nonce: Uint8Array, callerId: string, p: unknown): void {
    const target = (p as { id?: unknown } | null)?.id;
    if (typeof target !== "number") return this.reject(socket, id, nonce, "bad-params", "id: expected the integer id of a call on this connection", { path: "id" });
    const call = socket.data.calls.get(target);
    if (call && call.callerId !== callerId) return this.reject(socket, id, nonce, "forbidden", "only the caller that made a call can cancel it");
    if (call) {
      socket.data.calls.delete(target);
      call.abort();
      this.send(socket, { i: target, n: null, y: "error", e: { code: "cancelled", message: "call was cancelled" } });
    }
    this.send(socket, { i: id, n: nonce, y: "result", r: { cancelled: Boolean(call) } });
  }

  private reject(socket: Socket<Connection>, id: number | null, nonce: Uint8Array | null, code: RpcErrorCode, message: string, data?: unknown): void {
    this.stats.rejected[code] = (this.stats.rejected[code] ?? 0) + 1;
    this.rejections.warn(`rejected request${id === null ? "" : ` ${id}`} from ${socket.data.peer}: ${code}: ${message}`);
    this.send(socket, { i: id, n: nonce, y: "error", e: { code, message, ...(data === undefined ? {} : { data }) } });
  }

  /** Signs a reply and writes it (or queues it behind unwritten ones). Also used by Call. */
  send(socket: Socket<Connection>, body: Omit<ResponseBody, "k" | "t">): void {
    const conn = socket.data;
    if (!conn || conn.closed) return;
    let bytes: Uint8Array;
    try {
      bytes = encodeResponse(this.opts.identity, body, this.now(), (this.replyScratch ??= new Uint8Array(64 * 1024)));
    } catch (e) {
      // a reply that cannot be encoded or signed cannot be sent, and the ones after it must not overtake it
      log.error(`encoding a reply to ${conn.peer} failed; closing the connection`, e);
      socket.end();
      this.onClose(socket);
      return;
    }
    // what the socket does not take at once is kept, copied out of the scratch the next reply reuses
    const inScratch = bytes.buffer === this.replyScratch!.buffer;
    if (conn.outbox.length === 0) {
      const n = Math.max(0, socket.write(bytes));
      if (n === bytes.length) return;
      bytes = bytes.subarray(n);
    }
    if (inScratch) bytes = bytes.slice();
    conn.outbox.push(bytes);
    conn.pendingBytes += bytes.length;
    if (conn.pendingBytes > MAX_UNSENT_BYTES) {
      // a peer that stopped reading (say, following a chatty log) must not grow our memory without bound
      log.warn(`closing connection from ${conn.peer}: ${conn.pendingBytes} bytes of replies unread`);
      socket.end();
      this.onClose(socket);
      return;
    }
  }

  /** Writes replies from the head of the outbox until it is empty or the socket is full. */
  private flush(socket: Socket<Connection>): void {
    const conn = socket.data;
    while (conn.outbox.length > 0) {
      const head = conn.outbox[0];
      const n = Math.max(0, socket.write(head));
      conn.pendingBytes -= n;
      if (n < head.length) {
        conn.outbox[0] = head.subarray(n);
        return; // the rest goes out on `drain`
      }
      conn.outbox.shift();
    }
    if (conn.closing && !conn.closed) {
      // the error reply to a bad frame is out; the stream cannot be resynchronised
      socket.end();
      this.onClose(socket);
    }
  }

  private onClose(socket: Socket<Connection>): void {
    const conn = socket.data;
    this.sockets.delete(socket);
    if (!conn) return;
    conn.closed = true;
    conn.outbox = [];
    conn.pendingBytes = 0;
    for (const c of conn.calls.values()) c.abort();
    conn.calls.clear();
  }
}

function callerOf(conn: Connection, key: Uint8Array): Caller {
  const last = conn.caller;
  if (last && Buffer.compare(last.key, key) === 0) return last;
  conn.caller = { key: new Uint8Array(key), id: keyId(key), object: publicKeyObject(key) };
  return conn.caller;
}

/** Maps errors from handlers to RPC errors: typed errors keep their code, anything else is internal. */
export function toRpcError(e: unknown): RpcError {
  if (e instanceof RpcError) return e;
  if (e instanceof SchemaError) return new RpcError("bad-params", e.message, { path: e.path });
  const code = (e as { code?: unknown })?.code;
  const known: Record<string, RpcErrorCode> = { "not-found": "not-found", exists: "conflict", running: "conflict", invalid: "conflict" };
  if (typeof code === "string" && known[code]) return new RpcError(known[code], (e as Error).message);
  return new RpcError("internal", e instanceof Error ? e.message : String(e));
}
