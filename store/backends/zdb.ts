// A 0-db namespace as a block backend, as rfs uses it: the raw 32-byte id is the key, GET reads,
// SET writes (overwriting, so repair can replace a corrupt shard), DEL deletes, EXISTS answers has.
// The connection is made on first use and remade after it breaks, so a backend that is down when
// the store opens, or restarts later, costs failed operations, not a broken store. After a failed
// connect the backend rests (250 ms, doubling to 5 s) and fails operations at once meanwhile, so a
// dead datacenter does not make every read wait for connect attempts and retries.
import { ZdbClient, type ZdbAddress } from "../zdb/client.ts";
import { StoreError, hex, type BlockId, type OpOptions } from "../types.ts";
import { BackendResting, asStoreError, runOp, type OpContext, type OpPolicy } from "../ops.ts";
import { checkId, type InPlacePutBackend, type ReservedPut, type ScannableBackend } from "./backend.ts";
import type { BackendSpec } from "./url.ts";

type ZdbSpec = Extract<BackendSpec, { kind: "zdb" }>;

export class ZdbBackend implements ScannableBackend, InPlacePutBackend {
  readonly readOnly = false;
  readonly url: string;
  private readonly policy: OpPolicy;
  private connecting: Promise<ZdbClient> | null = null;
  /** The connection `connecting` resolved to, while it is believed healthy. */
  private live: ZdbClient | null = null;
  private closed = false;
  private restingUntil = 0;
  /** A connection still selecting its namespace; close() ends it rather than waiting for it. */
  private handshaking: ZdbClient | null = null;
  private restMs = 0;

  constructor(private readonly spec: ZdbSpec) {
    this.url = spec.url;
    this.policy = spec.policy;
  }

  private address(): ZdbAddress {
    const a = this.spec.address;
    return "socket" in a ? { path: a.socket } : a;
  }

  private async connect(timeoutMs: number): Promise<ZdbClient> {
    const client = await ZdbClient.connect(this.address(), { timeoutMs, connectTimeoutMs: timeoutMs });
    this.handshaking = client;
    try {
      const { namespace, password } = this.spec;
      if (namespace !== "default") await client.select(namespace, password);
      else if (password !== undefined) await client.auth(password);
      if (this.closed) throw new StoreError("unavailable", "backend is closed", { backend: this.url });
      return client;
    } catch (err) {
      await client.close();
      throw err;
    } finally {
      this.handshaking = null;
    }
  }

  /** The live connection, made on demand; concurrent callers share one attempt. */
  private client(timeoutMs: number): Promise<ZdbClient> {
    if (this.closed) return Promise.reject(new StoreError("unavailable", "backend is closed", { backend: this.url }));
    if (!this.connecting) {
      const wait = this.restingUntil - Date.now();
      if (wait > 0) return Promise.reject(new BackendResting(`backend failed to connect; next attempt in ${wait} ms`, { backend: this.url }));
      const attempt = this.connect(timeoutMs);
      this.connecting = attempt;
      attempt.then(
        (c) => {
          this.restMs = 0;
          if (this.connecting === attempt) this.live = c;
        },
        () => {
          if (this.connecting === attempt) this.connecting = null;
          this.restMs = Math.min(Math.max(this.restMs * 2, 250), 5000);
          this.restingUntil = Date.now() + this.restMs;
        },
      );
    }
    return this.connecting;
  }

  /** Forgets a connection that failed, so the next attempt (a retry) dials again. */
  private drop(client: ZdbClient, err: unknown): void {
    if (!(err instanceof StoreError && err.code === "unavailable")) return;
    if (this.live === client) {
      // Forgotten at once, so a retry that follows right away dials instead of reusing it.
      this.live = null;
      this.connecting = null;
      void client.close();
      return;
    }
    if (this.connecting) {
      const current = this.connecting;
      current.then((c) => {
        if (c === client && this.connecting === current) {
          this.connecting = null;
          void c.close();
        }
      }, () => {});
    }
  }

  /** A command on the live connection failed: forget the connection if it broke; say which backend and block. */
  private failed(client: ZdbClient, err: unknown, ctx: OpContext): StoreError {
    this.drop(client, err);
    const e = asStoreError(err, ctx);
    return new StoreError(e.code, e.message, { backend: ctx.backend, id: ctx.id }, { cause: e.cause ?? e });
  }

  /**
   * Runs one command. On a live connection the first attempt goes straight to the client, whose
   * per-command deadline and abort handling already bound it: no deadline timer, controller or
   * listeners of its own, which at small block sizes cost more than the command. Only a failure
   * that a retry may fix, or no connection yet, takes the full path (runOp: connect, retries, one
   * deadline over all of it).
   */
  private op<T>(op: string, id: BlockId | undefined, opts: OpOptions | undefined, fn: (c: ZdbClient, signal: AbortSignal | undefined, timeoutMs: number) => Promise<T>): Promise<T> {
    if (id) checkId(id);
    const timeoutMs = opts?.timeoutMs ?? this.policy.timeoutMs;
    const ctx = { backend: this.url, id: id && hex(id), op };
    const full = (policy: OpPolicy, deadlineMs: number) =>
      runOp(ctx, policy, { signal: opts?.signal, timeoutMs: deadlineMs }, async (signal) => {
        const c = await this.client(deadlineMs);
        try {
          return await fn(c, signal, deadlineMs);
        } catch (err) {
          this.drop(c, err);
          throw err;
        }
      });
    const live = this.live;
    if (live === null || opts?.signal?.aborted) return full(this.policy, timeoutMs);
    const started = performance.now();
    return fn(live, opts?.signal, timeoutMs).catch((err) => {
      const e = this.failed(live, err, ctx);
      const left = timeoutMs - (performance.now() - started);
      if (e.code !== "unavailable" || this.policy.retries === 0 || left <= 0 || opts?.signal?.aborted) throw e;
      // The connection broke under this command: dial again at once (a dead server makes the
      // dial fail and the backend rest), with the retries and time that are left.
      return full({ ...this.policy, retries: this.policy.retries - 1 }, left);
    });
  }

  has(id: BlockId, opts?: OpOptions): Promise<boolean> {
    return this.op("has", id, opts, (c, signal, timeoutMs) => c.exists(id, { signal, timeoutMs }));
  }

  get(id: BlockId, opts?: OpOptions): Promise<Uint8Array | null> {
    return this.op("get", id, opts, (c, signal, timeoutMs) => c.get(id, { signal, timeoutMs }));
  }

  put(id: BlockId, data: Uint8Array, opts?: OpOptions): Promise<void> {
    return this.op("put", id, opts, async (c, signal, timeoutMs) => {
      await c.set(id, data, { signal, timeoutMs });
    });
  }

  /** A SET on the live connection with its value written in place (ZdbClient.reserveSet). */
  reservePut(id: BlockId, length: number): ReservedPut | null {
    checkId(id);
    const live = this.live;
    const reserved = live?.reserveSet(id, length);
    if (!live || !reserved) return null;
    return {
      value: reserved.value,
      send: () =>
        reserved.send({ timeoutMs: this.policy.timeoutMs }).then(
          () => {},
          (err) => {
            throw this.failed(live, err, { backend: this.url, id: hex(id), op: "put" });
          },
        ),
      cancel: () => reserved.cancel(),
    };
  }

  delete(id: BlockId, opts?: OpOptions): Promise<void> {
    return this.op("delete", id, opts, async (c, signal, timeoutMs) => {
      await c.del(id, { signal, timeoutMs });
    });
  }

  ping(opts?: OpOptions): Promise<void> {
    return this.op("ping", undefined, opts, (c, signal, timeoutMs) => c.ping({ signal, timeoutMs }));
  }

  /**
   * Walks the namespace with SCAN: each reply is [next-cursor, [[key, size, timestamp], ...]] and the
   * server ends the walk with the error "No more data". Keys that are not 32 bytes are not blocks.
   */
  async *list(opts?: { signal?: AbortSignal }): AsyncIterable<BlockId> {
    let cursor: Uint8Array | null = null;
    for (;;) {
      const args: (string | Uint8Array)[] = cursor ? ["SCAN", cursor] : ["SCAN"];
      let reply;
      try {
        reply = await this.op("list", undefined, { signal: opts?.signal }, (c, signal, timeoutMs) => c.request(args, { signal, timeoutMs }));
      } catch (err) {
        if (err instanceof StoreError && /no more data/i.test(err.message)) return;
        throw err;
      }
      if (!Array.isArray(reply) || reply.length !== 2 || !(reply[0] instanceof Uint8Array) || !Array.isArray(reply[1])) {
        throw new StoreError("protocol", "SCAN reply is not [cursor, entries]", { backend: this.url });
      }
      cursor = reply[0];
      for (const entry of reply[1]) {
        const key = Array.isArray(entry) ? entry[0] : undefined;
        if (key instanceof Uint8Array && key.length === 32) yield key;
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    const current = this.connecting;
    this.connecting = null;
    this.live = null;
    await this.handshaking?.close();
    if (current) await current.then((c) => c.close(), () => {});
  }
}

export function openZdbBackend(spec: ZdbSpec): ZdbBackend {
  return new ZdbBackend(spec);
}
