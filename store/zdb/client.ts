// A small pipelined 0-db client over TCP or a unix socket. Commands are written back to back
// (coalesced into one socket write per tick) and replies are matched in order. Every command has
// its own deadline: a backend that accepts and never answers rejects the caller with a StoreError
// of code "timeout" instead of hanging it; the late reply, if it ever comes, is discarded.
// Deadlines are kept by one watchdog timer per connection, armed for the earliest deadline of the
// commands still waiting, rather than a timer per command: at tens of thousands of small commands
// a second, timer and abort-listener bookkeeping cost more than the RESP framing.
import { createHash } from "node:crypto";
import type { Socket } from "bun";
import { RespDecoder, RespError, RespFrameTooLarge, RespProtocolError, type RespValue } from "../resp/decoder.ts";
import { Outbox } from "../resp/outbox.ts";
import { StoreError, type StoreErrorCode } from "../types.ts";

export type ZdbAddress = { host: string; port: number } | { path: string };

export interface ZdbClientOptions {
  /** Default deadline of each command, in milliseconds. */
  timeoutMs?: number;
  /** Deadline for establishing the connection, in milliseconds. */
  connectTimeoutMs?: number;
}

export interface ZdbCallOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
}

export type ZdbArg = string | Uint8Array;

/** See ZdbClient.reserveSet. */
export interface ReservedSet {
  readonly value: Uint8Array;
  send(opts?: ZdbCallOptions): Promise<RespValue>;
  cancel(): void;
}

interface Pending {
  resolve: (v: RespValue) => void;
  reject: (e: StoreError) => void;
  /** performance.now() after which the command fails with "timeout". */
  deadline: number;
  timeoutMs: number;
  command: ZdbArg;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
  settled: boolean;
}

/** Replies are 0-db values up to 8 MiB; allow headroom for arrays of them (MGET, SCAN). */
const REPLY_LIMITS = { maxBulk: 64 * 1024 * 1024, maxArray: 1 << 20, maxLine: 1024 * 1024, maxDepth: 8 };

/** Maps a 0-db error reply to the store's error vocabulary. */
function codeOfReply(message: string): StoreErrorCode {
  if (/no space|full|maxsize/i.test(message)) return "full";
  if (/read-only|read only|permission denied|worm/i.test(message)) return "read-only";
  return "protocol";
}

export function describeAddress(addr: ZdbAddress): string {
  return "path" in addr ? `zdb+unix://${addr.path}` : `zdb://${addr.host}:${addr.port}`;
}

export class ZdbClient {
  private readonly queue: Pending[] = [];
  private queueHead = 0;
  private readonly out: Outbox;
  private flushScheduled = false;
  private closed = false;
  private readonly decoder: RespDecoder;
  /** Commands sent and not yet settled; the watchdog runs only while there are some. */
  private unsettled = 0;
  private watchdog: ReturnType<typeof setTimeout> | undefined;
  private watchdogAt = Infinity;
  /** A reserveSet not yet sent or cancelled: its bytes sit at the end of the outgoing buffer. */
  private reserving = false;

  private constructor(
    private socket: Socket<undefined> | null,
    readonly label: string,
    private readonly timeoutMs: number,
  ) {
    this.decoder = new RespDecoder((v) => this.onReply(v), REPLY_LIMITS);
    this.out = new Outbox((data) => this.socket?.write(data) ?? data.length);
  }

  static async connect(addr: ZdbAddress, opts: ZdbClientOptions = {}): Promise<ZdbClient> {
    const label = describeAddress(addr);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    let client: ZdbClient | null = null;
    const handlers = {
      data: (_s: Socket<undefined>, chunk: Buffer) => client?.onData(chunk),
      drain: () => {
        client?.out.drain();
      },
      close: () => client?.fail(new StoreError("unavailable", `connection to ${label} closed`, { backend: label })),
      error: (_s: Socket<undefined>, err: Error) =>
        client?.fail(new StoreError("unavailable", `connection to ${label} failed: ${err.message}`, { backend: label }, { cause: err })),
    };
    const connecting = "path" in addr
      ? Bun.connect({ unix: addr.path, socket: handlers })
      : Bun.connect({ hostname: addr.host, port: addr.port, socket: handlers });
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new StoreError("timeout", `connecting to ${label} took longer than ${opts.connectTimeoutMs ?? timeoutMs} ms`, { backend: label })),
        opts.connectTimeoutMs ?? timeoutMs,
      );
    });
    try {
      const socket = await Promise.race([connecting, deadline]);
      client = new ZdbClient(socket, label, timeoutMs);
      return client;
    } catch (err) {
      connecting.then((s) => s.end(), () => {});
      if (err instanceof StoreError) throw err;
      throw new StoreError("unavailable", `cannot connect to ${label}: ${(err as Error).message}`, { backend: label }, { cause: err });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends one command and resolves with its reply; error replies reject with a StoreError. */
  command(...args: ZdbArg[]): Promise<RespValue> {
    return this.request(args);
  }

  request(args: readonly ZdbArg[], opts: ZdbCallOptions = {}): Promise<RespValue> {
    if (this.reserving) return Promise.reject(new Error(`${String(args[0])} while a reserved SET is outstanding: send or cancel it first`));
    const refused = this.refusal(args[0], opts);
    if (refused) return refused;
    this.out.writer.command(args);
    return this.enqueue(args[0], opts);
  }

  /**
   * A SET whose value the caller writes in place: encodes the command up to a `length`-byte value
   * in the outgoing buffer and returns that value's bytes to fill, then `send` queues the command
   * (resolving as set() does) or `cancel` takes it back. Nothing else may be sent on this client
   * between the two: the bytes move when the buffer grows. Null when the connection is closed.
   * This spares a large value one copy from the caller's buffer into the outgoing one.
   */
  reserveSet(key: Uint8Array, length: number): ReservedSet | null {
    if (this.closed || this.reserving) return null;
    this.reserving = true;
    const w = this.out.writer;
    const mark = w.length;
    w.arrayHeader(3);
    w.bulkString("SET");
    w.bulk(key);
    const at = w.reserveBulk(length);
    let done = false;
    // A connection that failed meanwhile has emptied the buffer already.
    const takeBack = () => {
      if (!this.closed) w.rewind(mark);
    };
    return {
      value: w.buf.subarray(at, at + length),
      send: (opts: ZdbCallOptions = {}) => {
        if (done) throw new Error("reserved SET already sent or cancelled");
        done = true;
        this.reserving = false;
        const refused = this.refusal("SET", opts);
        if (refused) {
          takeBack();
          return refused;
        }
        return this.enqueue("SET", opts);
      },
      cancel: () => {
        if (done) return;
        done = true;
        this.reserving = false;
        takeBack();
      },
    };
  }

  /** A rejection for a command that cannot be sent now, or null. */
  private refusal(command: ZdbArg, opts: ZdbCallOptions): Promise<never> | null {
    if (this.closed) return Promise.reject(new StoreError("unavailable", `connection to ${this.label} is closed`, { backend: this.label }));
    if (opts.signal?.aborted) return Promise.reject(new StoreError("aborted", `${String(command)} aborted`, { backend: this.label }));
    return null;
  }

  /** Waits for the reply of the command just encoded into the outgoing buffer. */
  private enqueue(command: ZdbArg, opts: ZdbCallOptions): Promise<RespValue> {
    return new Promise<RespValue>((resolve, reject) => {
      const timeoutMs = opts.timeoutMs ?? this.timeoutMs;
      const deadline = performance.now() + timeoutMs;
      const p: Pending = { resolve, reject, deadline, timeoutMs, command, signal: opts.signal, onAbort: undefined, settled: false };
      if (opts.signal) {
        p.onAbort = () => this.settle(p, new StoreError("aborted", `${String(command)} aborted`, { backend: this.label }));
        opts.signal.addEventListener("abort", p.onAbort, { once: true });
      }
      this.unsettled++;
      if (deadline < this.watchdogAt) this.armWatchdog(deadline);
      this.queue.push(p);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  async ping(opts?: ZdbCallOptions): Promise<void> {
    await this.request(["PING"], opts);
  }

  async auth(password: string, opts?: ZdbCallOptions): Promise<void> {
    await this.request(["AUTH", password], opts);
  }

  /** Authenticates as admin without sending the password: AUTH SECURE sha1(challenge:password). */
  async authSecure(password: string, opts?: ZdbCallOptions): Promise<void> {
    const challenge = await this.request(["AUTH", "SECURE", "CHALLENGE"], opts);
    if (typeof challenge !== "string") throw new StoreError("protocol", `unexpected challenge reply from ${this.label}`, { backend: this.label });
    const proof = createHash("sha1").update(`${challenge}:${password}`).digest("hex");
    await this.request(["AUTH", "SECURE", proof], opts);
  }

  async select(namespace: string, password?: string, opts?: ZdbCallOptions): Promise<void> {
    await this.request(password === undefined ? ["SELECT", namespace] : ["SELECT", namespace, password], opts);
  }

  /** Resolves null when the key is not stored. */
  async get(key: ZdbArg, opts?: ZdbCallOptions): Promise<Uint8Array | null> {
    const v = await this.request(["GET", key], opts);
    if (v === null || v instanceof Uint8Array) return v;
    throw this.unexpected("GET", v);
  }

  /** Stores value; resolves with the key (the new 8-byte id in seq mode), or null when the value was unchanged. */
  async set(key: ZdbArg, value: Uint8Array, opts?: ZdbCallOptions): Promise<Uint8Array | null> {
    const v = await this.request(["SET", key, value], opts);
    if (v === null || v instanceof Uint8Array) return v;
    throw this.unexpected("SET", v);
  }

  async exists(key: ZdbArg, opts?: ZdbCallOptions): Promise<boolean> {
    const v = await this.request(["EXISTS", key], opts);
    if (typeof v === "number") return v === 1;
    throw this.unexpected("EXISTS", v);
  }

  /** Resolves false when there was no such key. */
  async del(key: ZdbArg, opts?: ZdbCallOptions): Promise<boolean> {
    try {
      await this.request(["DEL", key], opts);
      return true;
    } catch (err) {
      if (err instanceof StoreError && err.code === "protocol" && /key not found/i.test(err.message)) return false;
      throw err;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.fail(new StoreError("unavailable", `connection to ${this.label} closed by the client`, { backend: this.label }));
  }

  private unexpected(cmd: string, v: RespValue): StoreError {
    return new StoreError("protocol", `unexpected ${cmd} reply from ${this.label}: ${typeof v}`, { backend: this.label });
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.socket !== null) this.out.flush();
  }

  private onData(chunk: Buffer): void {
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (err instanceof RespProtocolError) {
        this.fail(new StoreError("protocol", `${this.label} sent invalid RESP: ${err.message}`, { backend: this.label }, { cause: err }));
      } else throw err;
    }
  }

  private onReply(v: RespValue | RespFrameTooLarge): void {
    const p = this.queue[this.queueHead];
    if (p === undefined) {
      this.fail(new StoreError("protocol", `${this.label} sent a reply nobody asked for`, { backend: this.label }));
      return;
    }
    this.queue[this.queueHead++] = undefined as unknown as Pending;
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue.splice(0, this.queueHead);
      this.queueHead = 0;
    }
    if (v instanceof RespFrameTooLarge) this.settle(p, new StoreError("protocol", `reply from ${this.label} too large: ${v.message}`, { backend: this.label }));
    else if (v instanceof RespError) this.settle(p, new StoreError(codeOfReply(v.message), v.message, { backend: this.label }));
    else this.settle(p, null, v);
  }

  private armWatchdog(at: number): void {
    clearTimeout(this.watchdog);
    this.watchdogAt = at;
    this.watchdog = setTimeout(() => this.expire(), Math.max(0, at - performance.now()));
  }

  /** Fails every command past its deadline and re-arms for the earliest one left. */
  private expire(): void {
    this.watchdog = undefined;
    this.watchdogAt = Infinity;
    const now = performance.now();
    let next = Infinity;
    for (let i = this.queueHead; i < this.queue.length; i++) {
      const p = this.queue[i];
      if (p.settled) continue;
      if (p.deadline <= now) {
        this.settle(p, new StoreError("timeout", `${String(p.command)} got no reply from ${this.label} within ${p.timeoutMs} ms`, { backend: this.label }));
      } else if (p.deadline < next) next = p.deadline;
    }
    if (next !== Infinity) this.armWatchdog(next);
  }

  private settle(p: Pending, err: StoreError | null, value?: RespValue): void {
    if (p.settled) return;
    p.settled = true;
    if (--this.unsettled === 0 && this.watchdog !== undefined) {
      clearTimeout(this.watchdog);
      this.watchdog = undefined;
      this.watchdogAt = Infinity;
    }
    if (p.onAbort) p.signal!.removeEventListener("abort", p.onAbort);
    if (err) p.reject(err);
    else p.resolve(value ?? null);
  }

  private fail(err: StoreError): void {
    if (this.closed) return;
    this.closed = true;
    for (let i = this.queueHead; i < this.queue.length; i++) this.settle(this.queue[i], err);
    this.queue.length = 0;
    this.queueHead = 0;
    this.out.clear();
    const s = this.socket;
    this.socket = null;
    s?.end();
  }
}
