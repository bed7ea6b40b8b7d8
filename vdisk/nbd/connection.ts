// One client connection: the handshake, then the transmission phase. Requests are parsed as
// they arrive and run concurrently; each reply is sent when its request completes, so replies
// go out of order. Reading stops while the bytes held for this connection (write payloads being
// applied, reads being served, replies not yet taken by the socket) exceed maxInflightBytes.
import type { BlockExport, Extent } from "./export.ts";
import { ByteQueue } from "./byte-queue.ts";
import { ReplyWriter } from "./reply-writer.ts";
import { Payload } from "./payload.ts";
import { MIN_POOLED, ioBuffers } from "./buffer-pool.ts";
import { Negotiator, type ExportRegistry, type Session } from "./handshake.ts";
import { NbdError, NbdProtocolError, errnoOf } from "./errors.ts";
import * as P from "./protocol.ts";

export interface ConnectionSocket {
  write(data: Uint8Array): number;
  end(): void;
  pause(): void;
  resume(): void;
}

export interface ConnectionOptions {
  maxInflightBytes: number;
  /** A client that has not picked an export by then is disconnected. */
  handshakeTimeoutMs: number;
  /** Most extents sent in one BLOCK_STATUS reply. */
  maxExtents: number;
  log: (message: string) => void;
}

/** Flags each command accepts, beyond FUA (accepted on every command, as the spec requires). */
const ALLOWED_FLAGS: Record<number, number> = {
  [P.CMD_READ]: P.CMD_FLAG_DF,
  [P.CMD_WRITE]: 0,
  [P.CMD_DISC]: 0,
  [P.CMD_FLUSH]: 0,
  [P.CMD_TRIM]: 0,
  [P.CMD_CACHE]: 0,
  [P.CMD_WRITE_ZEROES]: P.CMD_FLAG_NO_HOLE | P.CMD_FLAG_FAST_ZERO,
  [P.CMD_BLOCK_STATUS]: P.CMD_FLAG_REQ_ONE,
};

const text = new TextEncoder();

interface Request {
  flags: number;
  type: number;
  // The 8-byte cookie, echoed as is, kept as two words so a request allocates no buffer.
  cookieHi: number;
  cookieLo: number;
  offset: number;
  length: number;
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

function putU32(b: Uint8Array, at: number, v: number): void {
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
}

function putCookie(b: Uint8Array, req: Request): void {
  putU32(b, 8, req.cookieHi);
  putU32(b, 12, req.cookieLo);
}

/** Simple reply header (magic, error, cookie) at the start of b. */
function simpleHeader(b: Uint8Array, req: Request, errno: number): void {
  putU32(b, 0, P.SIMPLE_REPLY_MAGIC);
  putU32(b, 4, errno);
  putCookie(b, req);
}

/** Structured reply chunk header (magic, flags, type, cookie, length) at the start of b. */
function structuredHeader(b: Uint8Array, req: Request, type: number, length: number): void {
  putU32(b, 0, P.STRUCTURED_REPLY_MAGIC);
  putU32(b, 4, (P.REPLY_FLAG_DONE << 16) | type);
  putCookie(b, req);
  putU32(b, 16, length);
}

export class NbdConnection {
  private readonly queue = new ByteQueue();
  private readonly writer: ReplyWriter;
  private waiter: { n: number; resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  private session: Session | null = null;
  private pendingWrite: Request | null = null; // header read, payload still arriving
  private inflightRequests = 0;
  private inflightBytes = 0;
  private paused = false;
  private disconnecting = false; // NBD_CMD_DISC received: read no more requests
  private ending = false; // close once every queued reply is written
  private closed = false; // no more reading or writing
  private finished = false; // the socket's close was seen

  constructor(
    private readonly socket: ConnectionSocket,
    private readonly exports: ExportRegistry,
    private readonly opts: ConnectionOptions,
    private readonly onFinished: () => void,
  ) {
    this.writer = new ReplyWriter(socket, () => this.updateFlow());
    const io = { read: (n: number) => this.read(n), send: (b: Uint8Array) => this.writer.send(b) };
    const deadline = setTimeout(() => {
      this.opts.log(`nbd: no export chosen within ${opts.handshakeTimeoutMs} ms, dropping the connection`);
      this.hardDisconnect();
    }, opts.handshakeTimeoutMs);
    new Negotiator(io, exports).run().then(
      (session) => {
        clearTimeout(deadline);
        if (!session) return this.end();
        this.session = session;
        this.pump();
      },
      (err) => {
        clearTimeout(deadline);
        if (!this.closed) this.opts.log(`nbd handshake: ${(err as Error).message}`);
        this.hardDisconnect();
      },
    );
  }

  onData(chunk: Uint8Array): void {
    if (this.closed) return;
    this.queue.push(chunk);
    if (this.session) this.pump();
    else if (this.waiter && this.queue.length >= this.waiter.n) {
      const w = this.waiter;
      this.waiter = null;
      w.resolve(this.queue.take(w.n));
    }
  }

  onDrain(): void {
    this.writer.drained();
  }

  /** The socket closed (client vanished or we ended it). In-flight requests finish; replies are dropped. */
  onClose(): void {
    if (this.finished) return;
    this.finished = true;
    this.closed = true;
    this.writer.kill();
    this.waiter?.reject(new NbdProtocolError("client closed the connection during the handshake"));
    this.waiter = null;
    this.onFinished();
  }

  private read(n: number): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new NbdProtocolError("connection closed"));
    if (this.queue.length >= n) return Promise.resolve(this.queue.take(n));
    return new Promise((resolve, reject) => (this.waiter = { n, resolve, reject }));
  }

  private pump(): void {
    const session = this.session!;
    while (!this.paused && !this.disconnecting && !this.closed) {
      if (this.pendingWrite) {
        const req = this.pendingWrite;
        if (this.queue.length < req.length) return;
        this.pendingWrite = null;
        this.start(req, new Payload(this.queue.takeViews(req.length)));
        continue;
      }
      if (this.queue.length < P.REQUEST_HEADER_LENGTH) return;
      const h = this.queue.take(P.REQUEST_HEADER_LENGTH);
      if (u32(h, 0) !== P.REQUEST_MAGIC) {
        this.opts.log("nbd: request without magic, dropping the connection");
        return this.hardDisconnect();
      }
      const req: Request = {
        flags: (h[4] << 8) | h[5],
        type: (h[6] << 8) | h[7],
        cookieHi: u32(h, 8),
        cookieLo: u32(h, 12),
        offset: u32(h, 16) * 0x1_0000_0000 + u32(h, 20),
        length: u32(h, 24),
      };
      if (req.type === P.CMD_WRITE) {
        // The payload has to be consumed to stay in step; one larger than promised is not read.
        if (req.length > session.export.blockSizes.maximum) {
          this.opts.log(`nbd: write of ${req.length} bytes exceeds the maximum, dropping the connection`);
          return this.hardDisconnect();
        }
        this.pendingWrite = req;
        this.hold(req.length);
        continue;
      }
      if (req.type === P.CMD_DISC) {
        this.disconnecting = true;
        this.maybeFinishDisc();
        return;
      }
      this.start(req, null);
    }
  }

  private hold(bytes: number): void {
    this.inflightBytes += bytes;
    this.updateFlow();
  }

  private updateFlow(): void {
    const held = this.inflightBytes + this.writer.pendingBytes;
    if (!this.paused && held > this.opts.maxInflightBytes) {
      this.paused = true;
      this.socket.pause();
    } else if (this.paused && held <= this.opts.maxInflightBytes / 2) {
      this.paused = false;
      this.socket.resume();
      if (this.session) queueMicrotask(() => this.pump());
    }
    this.maybeFinishDisc();
  }

  /** Validates and runs one request; its reply is queued when it settles. */
  private start(req: Request, payload: Payload | null): void {
    const exp = this.session!.export;
    if (req.type === P.CMD_READ && this.readCached(req, exp)) return;
    const held = req.type === P.CMD_READ ? req.length : 0;
    if (held) this.hold(held);
    const payloadBytes = payload ? req.length : 0;
    this.inflightRequests++;
    const done = () => {
      this.inflightRequests--;
      this.inflightBytes -= held + payloadBytes;
      this.updateFlow();
    };
    let result: void | Promise<void>;
    try {
      this.check(req, exp);
      result = this.dispatch(req, payload, exp);
    } catch (err) {
      this.replyError(req, err);
      return done();
    }
    if (result instanceof Promise) {
      result.then(done, (err) => {
        this.replyError(req, err);
        done();
      });
    } else done();
  }

  private check(req: Request, exp: BlockExport): void {
    const session = this.session!;
    const ctx = { export: exp.name, offset: req.offset, length: req.length };
    const allowed = ALLOWED_FLAGS[req.type];
    if (allowed === undefined) throw new NbdError(P.EINVAL, `unknown command ${req.type}`, ctx);
    if (req.flags & ~(allowed | P.CMD_FLAG_FUA)) throw new NbdError(P.EINVAL, `flags 0x${req.flags.toString(16)} not valid for command ${req.type}`, ctx);
    if (req.flags & P.CMD_FLAG_DF && !session.structured) throw new NbdError(P.EINVAL, "DF needs structured replies", ctx);
    if (req.flags & P.CMD_FLAG_FAST_ZERO && !(session.flags & P.TF_SEND_FAST_ZERO)) throw new NbdError(P.EINVAL, "FAST_ZERO not advertised", ctx);
    if (req.type === P.CMD_FLUSH) {
      if (req.offset !== 0 || req.length !== 0) throw new NbdError(P.EINVAL, "FLUSH offset and length must be zero", ctx);
      return;
    }
    const writes = req.type === P.CMD_WRITE || req.type === P.CMD_TRIM || req.type === P.CMD_WRITE_ZEROES;
    if (writes && exp.readOnly) throw new NbdError(P.EPERM, "export is read-only", ctx);
    if (req.type === P.CMD_BLOCK_STATUS && !session.allocationContext) throw new NbdError(P.EINVAL, "no meta context was selected", ctx);
    if (req.length === 0) throw new NbdError(P.EINVAL, "zero-length request", ctx);
    if (req.offset + req.length > exp.size()) throw new NbdError(writes ? P.ENOSPC : P.EINVAL, "request extends past the end of the export", ctx);
    if (req.type === P.CMD_READ && req.length > exp.blockSizes.maximum) throw new NbdError(P.EINVAL, "read longer than the maximum block size", ctx);
    if (session.blockSizesAgreed) {
      const min = exp.blockSizes.minimum;
      if (req.offset % min !== 0 || req.length % min !== 0) throw new NbdError(P.EINVAL, `request not aligned to ${min} bytes`, ctx);
    }
  }

  private dispatch(req: Request, payload: Payload | null, exp: BlockExport): void | Promise<void> {
    const fua = (req.flags & P.CMD_FLAG_FUA) !== 0;
    switch (req.type) {
      case P.CMD_READ:
        return this.doRead(req, exp);
      case P.CMD_WRITE:
        return this.then(exp.write(payload!, req.offset, fua), req);
      case P.CMD_FLUSH:
        return this.then(exp.flush(), req);
      case P.CMD_TRIM:
        return this.then(exp.trim(req.offset, req.length, fua), req);
      case P.CMD_CACHE:
        return this.then(exp.cache(req.offset, req.length), req);
      case P.CMD_WRITE_ZEROES:
        return this.then(exp.zero(req.offset, req.length, { fua, fast: (req.flags & P.CMD_FLAG_FAST_ZERO) !== 0 }), req);
      case P.CMD_BLOCK_STATUS: {
        const r = exp.extents(req.offset, req.length);
        if (r instanceof Promise) return r.then((e) => this.replyExtents(req, e));
        return this.replyExtents(req, r);
      }
    }
  }

  private then(r: void | Promise<void>, req: Request): void | Promise<void> {
    if (r instanceof Promise) return r.then(() => this.replyOk(req));
    this.replyOk(req);
  }

  private readHeaderLength(): number {
    return this.session!.structured ? P.STRUCTURED_REPLY_HEADER_LENGTH + 8 : P.SIMPLE_REPLY_HEADER_LENGTH;
  }

  private readHeader(buf: Uint8Array, req: Request): void {
    if (!this.session!.structured) return simpleHeader(buf, req, 0);
    structuredHeader(buf, req, P.REPLY_TYPE_OFFSET_DATA, req.length + 8);
    putU32(buf, 20, Math.floor(req.offset / 0x1_0000_0000));
    putU32(buf, 24, req.offset >>> 0);
  }

  /**
   * The hot path: a read the export answers from memory is built right in the reply batch (or,
   * when larger than the batch takes, sent from the export's memory), with no promise and nothing
   * held. False when it must take the general path: an invalid request, or data not at hand.
   */
  private readCached(req: Request, exp: BlockExport): boolean {
    try {
      this.check(req, exp);
    } catch {
      return false; // the general path sends the error
    }
    const headerLength = this.readHeaderLength();
    const buf = this.writer.reserve(headerLength + req.length);
    if (!buf) {
      // Too large to copy into the batch: sent straight from the export's memory.
      const views = exp.cachedViews(req.offset, req.length);
      if (!views) return false;
      this.readHeader(this.writer.reserve(headerLength)!, req);
      this.writer.sendViews(views);
      return true;
    }
    if (!exp.readCached(buf.subarray(headerLength), req.offset)) {
      this.writer.unreserve(buf);
      return false;
    }
    this.readHeader(buf, req);
    return true;
  }

  /** The data lands right behind the reply header, so the reply is one buffer. */
  private doRead(req: Request, exp: BlockExport): void | Promise<void> {
    const headerLength = this.readHeaderLength();
    // Not zero-filled: every byte is written below or by read(). Large ones are reused.
    const buf = ioBuffers.take(headerLength + req.length);
    const release = buf.length >= MIN_POOLED ? () => ioBuffers.give(buf) : undefined;
    const sendReply = () => this.writer.send(buf, release);
    this.readHeader(buf, req);
    const r = exp.read(buf.subarray(headerLength), req.offset);
    if (r instanceof Promise) return r.then(sendReply);
    sendReply();
  }

  private replyOk(req: Request): void {
    simpleHeader(this.writer.reserve(P.SIMPLE_REPLY_HEADER_LENGTH)!, req, 0);
  }

  private replyExtents(req: Request, extents: Extent[]): void {
    const list: Extent[] = [];
    // Merge neighbours with the same status; cap the count (the spec allows a short answer).
    for (const e of extents) {
      const last = list[list.length - 1];
      if (last && last.hole === e.hole && last.zero === e.zero) last.length += e.length;
      else if (list.length < this.opts.maxExtents) list.push({ ...e });
      else break;
    }
    if (req.flags & P.CMD_FLAG_REQ_ONE) list.length = Math.min(list.length, 1);
    const payload = 4 + 8 * list.length;
    const buf = new Uint8Array(P.STRUCTURED_REPLY_HEADER_LENGTH + payload);
    const v = new DataView(buf.buffer);
    structuredHeader(buf, req, P.REPLY_TYPE_BLOCK_STATUS, payload);
    v.setUint32(20, this.session!.allocationContext);
    let off = 24;
    for (const e of list) {
      v.setUint32(off, Math.min(e.length, 0xffffffff));
      v.setUint32(off + 4, (e.hole ? P.STATE_HOLE : 0) | (e.zero ? P.STATE_ZERO : 0));
      off += 8;
    }
    this.writer.send(buf);
  }

  private replyError(req: Request, err: unknown): void {
    const errno = errnoOf(err);
    if (!(err instanceof NbdError)) this.opts.log(`nbd: command ${req.type} at ${req.offset}+${req.length}: ${(err as Error)?.message ?? err}`);
    if (!this.session!.structured) return simpleHeader(this.writer.reserve(P.SIMPLE_REPLY_HEADER_LENGTH)!, req, errno);
    const message = text.encode(String((err as Error)?.message ?? err).slice(0, 512));
    const buf = this.writer.reserve(P.STRUCTURED_REPLY_HEADER_LENGTH + 6 + message.length)!;
    structuredHeader(buf, req, P.REPLY_TYPE_ERROR, 6 + message.length);
    putU32(buf, 20, errno);
    buf[24] = message.length >>> 8;
    buf[25] = message.length;
    buf.set(message, 26);
  }

  /** NBD_CMD_DISC: the outstanding requests are answered, then the connection is closed. */
  private maybeFinishDisc(): void {
    if (this.disconnecting && this.inflightRequests === 0) this.end();
    if (this.ending && !this.closed && this.writer.idle) {
      this.closed = true;
      this.socket.end();
    }
  }

  /** A soft close: replies already queued are written first. */
  private end(): void {
    if (this.ending) return;
    this.ending = true;
    queueMicrotask(() => this.maybeFinishDisc());
  }

  private hardDisconnect(): void {
    if (this.closed) return;
    this.closed = true;
    this.writer.kill();
    this.socket.end();
  }
}
