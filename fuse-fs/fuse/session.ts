// One FUSE mount: /dev/fuse opened and mounted with mount(2), INIT negotiated, reader threads started,
// and requests dispatched to a handler whose replies are written back on the fd they came from.
// Handlers may answer asynchronously; many requests are in flight at once and INTERRUPT aborts one.
import { closeSync, openSync, readFileSync, readSync, realpathSync, statSync, writeSync, writeFileSync, writevSync } from "node:fs";
import { FlistError } from "../errors.ts";
import { LibcError, MNT_DETACH, MS_RDONLY, fuseClone, mount, umount2 } from "../libc.ts";
import { Errno, IN_HEADER, Init, KERNEL_VERSION, OPCODE_SLOTS, OUR_MINOR, OUT_HEADER, Op, opName, parseInHeader, type InHeader } from "./proto.ts";
import type { ReaderMessage, ReaderStart } from "./reader.ts";

/**
 * A handler's answer: a buffer whose first OUT_HEADER bytes are left for the reply header; or the
 * payload in pieces (a READ spanning blocks), written after the header with one writev so block data
 * is never copied into a reply buffer; a positive errno; or null for requests that take no reply.
 */
export type Reply = Buffer | Uint8Array[] | number | null;

export interface Request {
  h: InHeader;
  /** The request body after fuse_in_header. */
  body: DataView;
  /** Aborted when the kernel interrupts the request. */
  signal: AbortSignal;
}

/**
 * Replies that never change for the life of the mount, handed to the reader threads so they answer
 * these requests themselves: a request answered here costs no postMessage to the main thread and no
 * wait for its event loop, which a container's start (mount handshake, overlay lookups, exec) pays
 * a dozen times. Each reply is a whole buffer with OUT_HEADER bytes of headroom (replyBuffer);
 * the reader fills in the header.
 */
export interface FixedReplies {
  /** GETATTR, by node id (fuse_attr_out). */
  attrs: Map<number, Uint8Array>;
  /** LOOKUP in a directory given whole here, by its node id: name -> fuse_entry_out. */
  entries: Map<number, Map<string, Uint8Array>>;
  /** LOOKUP of a name missing from such a directory: a negative fuse_entry_out, which the kernel caches. */
  missing: Uint8Array;
  /** Requests answered alike whatever their node or body (STATFS, GETXATTR), by opcode: a reply or an errno. */
  byOpcode: Map<number, Uint8Array | number>;
}

export interface FuseHandler {
  handle(req: Request): Reply | Promise<Reply>;
  /** Replies the readers may give without asking handle() (an immutable tree); asked once, before mounting. */
  fixedReplies?(): FixedReplies;
  /** Called once, after INIT, with what was negotiated. */
  init?(conn: Negotiated): void;
  /** File handles the kernel released (OPEN and RELEASE themselves are answered by the readers). */
  released?(fhs: number[]): void;
}

export interface Negotiated {
  minor: number;
  flags: number;
  maxPages: number;
  readdirplus: boolean;
}

export interface SessionOptions {
  mountpoint: string;
  /** st_mode of the root directory (type bits included). */
  rootMode: number;
  /** Shown as the mount source in /proc/mounts. */
  fsname?: string;
  /** Reader threads (each on its own cloned fd). */
  readers?: number;
  allowOther?: boolean;
  /** Bytes the kernel may read ahead per file; written to the mount's bdi. */
  readAheadKb?: number;
}

const MAX_PAGES = 256; // 1 MiB requests
/** The kernel refuses reads into less than 8 KiB (FUSE_MIN_READ_BUFFER); INIT itself is 104 bytes. */
const INIT_READ_BUFFER = 8192;

/** Kernel-side constants of an init reply. */
const MAX_BACKGROUND = 64;
const CONGESTION_THRESHOLD = 48;

/** Buffer with OUT_HEADER bytes of headroom for a reply of n payload bytes. */
export function replyBuffer(n: number): Buffer {
  return Buffer.alloc(OUT_HEADER + n);
}

function isEnotconn(path: string): boolean {
  try {
    statSync(path);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ENOTCONN";
  }
}

/**
 * A mount whose daemon died (killed, crashed) answers every access with ENOTCONN and blocks reuse of
 * its mount point; it is detached so the next mount works.
 */
export function clearDeadMount(path: string): boolean {
  if (!isEnotconn(path)) return false;
  umount2(path, MNT_DETACH);
  return true;
}

// Written out at each use: the image build finds worker entries by this exact expression
// (initramfs/build.ts) and ships them beside the init bundle.
const newReader = () => new Worker(new URL("./reader.ts", import.meta.url).href);

/**
 * One reader thread kept ahead of need: booting a worker (a JS heap, reader.ts loaded) costs
 * milliseconds, and a container's first start waits for its flist mount. The spare idles unref'd
 * (it never keeps the process alive) until a mount takes it. Exactly one spare exists at a time.
 * It comes back two ways, neither on a mount's heels: a reader whose mount ended is idle again and
 * becomes the spare (no boot at all), and otherwise a fresh one boots once no mount was made for
 * SPARE_DELAY_MS, so its boot does not compete with the container that mount was made for.
 */
let spare: Worker | null = null;
const SPARE_DELAY_MS = 1000;
let spareTimer: ReturnType<typeof setTimeout> | null = null;

/** Keeps `w` (a worker idle in reader.ts, waiting for a ReaderStart) as the spare; false if one exists. */
function keepSpare(w: Worker): boolean {
  if (spare) return false;
  w.unref();
  w.onmessage = null;
  // A spare that failed is dropped; the next mount starts its own reader.
  w.onerror = () => {
    if (spare === w) spare = null;
    w.terminate();
  };
  spare = w;
  return true;
}

function startSpareLater(): void {
  if (spareTimer) clearTimeout(spareTimer);
  spareTimer = setTimeout(() => {
    spareTimer = null;
    if (!spare) keepSpare(newReader());
  }, SPARE_DELAY_MS);
  spareTimer.unref();
}

function takeReader(): Worker {
  const w = spare ?? newReader();
  spare = null;
  w.ref();
  return w;
}

keepSpare(newReader());

export class FuseSession {
  readonly fds: number[] = [];
  private readonly workers: Worker[] = [];
  private readonly pending = new Map<bigint, AbortController>();
  /** Requests seen, by opcode, counted by the readers (some requests never reach this thread). */
  private readonly opcodeCounts = new SharedArrayBuffer(OPCODE_SLOTS * 4);
  private openReaders = 0;
  private unmounted = false;
  private resolveClosed!: () => void;
  /** Settles when every reader has stopped (unmounted, or the connection aborted). */
  readonly closed = new Promise<void>((r) => (this.resolveClosed = r));
  negotiated: Negotiated | null = null;
  /** The mount point's canonical path, resolved before mounting (resolving it after would call into us). */
  private target = "";
  private fixed: FixedReplies | null = null;
  /** True once INIT was answered or failed. */
  private initSettled = false;
  private initDone!: (err?: Error) => void;
  private readonly initialized = new Promise<void>((resolve, reject) => (this.initDone = (err) => {
    this.initSettled = true;
    if (err) reject(err);
    else resolve();
  }));

  private constructor(
    readonly opts: SessionOptions,
    private readonly handler: FuseHandler,
  ) {
    // ended() rejects `initialized` even when nothing awaits it any more (INIT failed before any
    // reader started: mount() already throws its own error); observed here, that rejection is never
    // an unhandled one, which would end a CLI. mount() still awaits it and sees it.
    this.initialized.catch(() => {});
  }

  static async mount(handler: FuseHandler, opts: SessionOptions): Promise<FuseSession> {
    const s = new FuseSession(opts, handler);
    try {
      clearDeadMount(opts.mountpoint);
    } catch (err) {
      throw new FlistError("mount", `cannot detach the dead mount at ${opts.mountpoint}: ${(err as Error).message}`, { path: opts.mountpoint }, { cause: err });
    }
    try {
      s.target = realpathSync(opts.mountpoint);
    } catch (err) {
      throw new FlistError("mount", `mount point ${opts.mountpoint}: ${(err as Error).message}`, { path: opts.mountpoint }, { cause: err });
    }
    s.fixed = handler.fixedReplies?.() ?? null;
    const fd = openSync("/dev/fuse", "r+");
    s.fds.push(fd);
    const data = [`fd=${fd}`, `rootmode=${opts.rootMode.toString(8)}`, "user_id=0", "group_id=0", "default_permissions"];
    if (opts.allowOther ?? true) data.push("allow_other");
    try {
      mount(opts.fsname ?? "zflist", opts.mountpoint, "fuse.zflist", MS_RDONLY, data.join(","));
    } catch (err) {
      closeSync(fd);
      throw new FlistError("mount", `cannot mount ${opts.mountpoint}: ${(err as Error).message}`, { path: opts.mountpoint }, { cause: err });
    }
    try {
      s.answerInit(fd);
      for (let i = 1; i < (opts.readers ?? 4); i++) {
        const clone = openSync("/dev/fuse", "r+");
        s.fds.push(clone);
        fuseClone(clone, fd);
      }
      s.fds.forEach((f, i) => s.startReader(f, i));
      // The bdi exists once mount(2) returned.
      s.tuneReadAhead();
      await s.initialized;
    } catch (err) {
      s.unmount();
      // with readers running, the last one to stop ends the session
      if (s.openReaders === 0) s.ended((err as Error).message);
      throw err instanceof FlistError ? err : new FlistError("mount", `FUSE session setup failed: ${(err as Error).message}`, { path: opts.mountpoint }, { cause: err });
    } finally {
      startSpareLater();
    }
    return s;
  }

  /**
   * The kernel queues INIT inside mount(2) (fuse_fill_super sends it before returning), and nothing
   * else can come before it is answered: it is read and answered here, on this thread, before any
   * reader starts, so the handshake costs no hand-off to a reader thread and back. A newer major
   * version is answered with ours, and the kernel's second INIT read in turn.
   */
  private answerInit(fd: number): void {
    const buf = Buffer.allocUnsafe(INIT_READ_BUFFER);
    const counts = new Uint32Array(this.opcodeCounts);
    while (!this.initSettled) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "EINTR") continue;
        throw err;
      }
      const opcode = buf.readUInt32LE(4);
      if (opcode !== Op.INIT) throw new FlistError("mount", `the kernel sent ${opName(opcode)} before INIT`, { path: this.opts.mountpoint });
      Atomics.add(counts, opcode, 1);
      this.dispatch(fd, new Uint8Array(buf.buffer, buf.byteOffset, n));
    }
  }

  /** Requests seen so far, by operation name: what a workload costs the daemon. */
  counts(): Record<string, number> {
    const out: Record<string, number> = {};
    new Uint32Array(this.opcodeCounts).forEach((n, op) => {
      if (n) out[opName(op)] = n;
    });
    return out;
  }

  private startReader(fd: number, index: number): void {
    const w = takeReader();
    this.workers.push(w);
    this.openReaders++;
    w.onmessage = (e: MessageEvent<ReaderMessage>) => {
      const m = e.data;
      if (m instanceof Uint8Array) this.dispatch(fd, m);
      else if ("released" in m) this.handler.released?.(m.released);
      else this.readerStopped(m.closed, w);
    };
    w.onerror = (e) => this.readerStopped(String(e.message), null);
    const start: ReaderStart = { fd, index, stride: this.fds.length, counts: this.opcodeCounts, fixed: this.fixed };
    w.postMessage(start);
  }

  /** `idle`: the worker whose reader returned (it waits for a new start), null if the worker failed. */
  private readerStopped(why: string, idle: Worker | null): void {
    if (idle && keepSpare(idle)) this.workers.splice(this.workers.indexOf(idle), 1);
    if (--this.openReaders > 0) return;
    this.ended(why);
  }

  /** Every reader stopped, or none was started: the fds are closed and `closed` settles. */
  private ended(why: string): void {
    this.initDone(new FlistError("mount", `FUSE connection closed before INIT (${why})`, { path: this.opts.mountpoint }));
    for (const w of this.workers) w.terminate();
    for (const f of this.fds) {
      try {
        closeSync(f);
      } catch {}
    }
    this.fds.length = 0;
    this.resolveClosed();
  }

  /**
   * Raises the kernel's read-ahead for this mount (its backing_dev_info), best effort. The device
   * number comes from mountinfo: stat'ing our own mount from this thread would wait for a reply only
   * this thread can send.
   */
  private tuneReadAhead(): void {
    if (!this.opts.readAheadKb) return;
    try {
      const target = this.target;
      const line = readFileSync("/proc/self/mountinfo", "utf8")
        .split("\n")
        .findLast((l) => l.split(" ")[4] === target && l.includes(" - fuse.zflist "));
      if (line) writeFileSync(`/sys/class/bdi/${line.split(" ")[2]}/read_ahead_kb`, String(this.opts.readAheadKb));
    } catch {
      // Defaults still work, only slower.
    }
  }

  private write(fd: number, unique: bigint, reply: Buffer | Uint8Array[] | number): void {
    let buf: Buffer;
    let pieces: Uint8Array[] | null = null;
    if (typeof reply === "number") {
      buf = Buffer.alloc(OUT_HEADER);
      buf.writeInt32LE(-reply, 4);
      buf.writeUInt32LE(OUT_HEADER, 0);
    } else if (Array.isArray(reply)) {
      pieces = reply;
      buf = Buffer.allocUnsafe(OUT_HEADER);
      buf.writeInt32LE(0, 4);
      buf.writeUInt32LE(reply.reduce((n, p) => n + p.length, OUT_HEADER), 0);
    } else {
      buf = reply;
      buf.writeInt32LE(0, 4);
      buf.writeUInt32LE(buf.length, 0);
    }
    buf.writeBigUInt64LE(unique, 8);
    try {
      // The kernel takes a reply only whole, in one write: writev keeps header and pieces together.
      if (pieces) writevSync(fd, [buf, ...pieces]);
      else writeSync(fd, buf);
    } catch (err) {
      // ENOENT: the request was interrupted and is gone; ENODEV: unmounted meanwhile. Nothing to do.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== "ENOENT" && code !== "ENODEV" && code !== "EBADF") throw err;
    }
  }

  private dispatch(fd: number, data: Uint8Array): void {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const h = parseInHeader(dv);
    const body = new DataView(data.buffer, data.byteOffset + IN_HEADER, data.byteLength - IN_HEADER);
    switch (h.opcode) {
      case Op.INIT:
        return this.init(fd, h, body);
      case Op.INTERRUPT:
        this.pending.get(body.getBigUint64(0, true))?.abort();
        return;
      case Op.DESTROY:
        this.write(fd, h.unique, replyBuffer(0));
        return;
    }
    const ctl = new AbortController();
    let result: Reply | Promise<Reply>;
    try {
      result = this.handler.handle({ h, body, signal: ctl.signal });
    } catch (err) {
      result = this.failure(h, err);
    }
    if (result instanceof Promise) {
      this.pending.set(h.unique, ctl);
      result.then(
        (r) => this.finish(fd, h, r),
        (err) => this.finish(fd, h, this.failure(h, err)),
      );
    } else if (result !== null) this.write(fd, h.unique, result);
  }

  private finish(fd: number, h: InHeader, r: Reply): void {
    const ctl = this.pending.get(h.unique);
    this.pending.delete(h.unique);
    if (ctl?.signal.aborted) r = Errno.EINTR;
    if (r !== null) this.write(fd, h.unique, r);
  }

  /** A handler that throws answers EIO; the reason goes to stderr, once per request. */
  private failure(h: InHeader, err: unknown): number {
    if ((err as { code?: string })?.code === "aborted") return Errno.EINTR;
    console.error(`zflist: ${this.opts.mountpoint}: ${opName(h.opcode)} on node ${h.nodeid}: ${(err as Error)?.message ?? err}`);
    return Errno.EIO;
  }

  private init(fd: number, h: InHeader, body: DataView): void {
    const major = body.getUint32(0, true);
    const minor = body.getUint32(4, true);
    const maxReadahead = body.getUint32(8, true);
    const kernelFlags = body.getUint32(12, true);
    if (major < KERNEL_VERSION) {
      this.write(fd, h.unique, Errno.EPROTO);
      this.initDone(new FlistError("mount", `kernel FUSE ${major}.${minor} is too old`));
      return;
    }
    if (major > KERNEL_VERSION) {
      // A newer major: answer with ours, and the kernel sends INIT again at our version.
      const out = replyBuffer(8);
      out.writeUInt32LE(KERNEL_VERSION, OUT_HEADER);
      out.writeUInt32LE(OUR_MINOR, OUT_HEADER + 4);
      this.write(fd, h.unique, out);
      return;
    }
    const want =
      Init.ASYNC_READ | Init.BIG_WRITES | Init.DO_READDIRPLUS | Init.READDIRPLUS_AUTO | Init.PARALLEL_DIROPS | Init.MAX_PAGES | Init.CACHE_SYMLINKS;
    // INIT_EXT only matters for flags2, none of which we ask for.
    const flags = kernelFlags & want;
    const ourMinor = Math.min(minor, OUR_MINOR);
    const out = replyBuffer(64);
    const dv = new DataView(out.buffer, out.byteOffset + OUT_HEADER, 64);
    dv.setUint32(0, KERNEL_VERSION, true);
    dv.setUint32(4, ourMinor, true);
    dv.setUint32(8, maxReadahead, true);
    dv.setUint32(12, flags, true);
    dv.setUint16(16, MAX_BACKGROUND, true);
    dv.setUint16(18, CONGESTION_THRESHOLD, true);
    dv.setUint32(20, 4096, true); // max_write: nothing is ever written
    dv.setUint32(24, 1_000_000_000, true); // time_gran: flists keep whole seconds
    dv.setUint16(28, flags & Init.MAX_PAGES ? MAX_PAGES : 0, true);
    this.negotiated = { minor: ourMinor, flags, maxPages: flags & Init.MAX_PAGES ? MAX_PAGES : 32, readdirplus: (flags & Init.DO_READDIRPLUS) !== 0 };
    this.handler.init?.(this.negotiated);
    this.write(fd, h.unique, out);
    this.initDone();
  }

  /** Unmounts (lazily if busy). The readers see ENODEV and `closed` settles. */
  unmount(): void {
    if (this.unmounted) return;
    this.unmounted = true;
    try {
      umount2(this.opts.mountpoint, 0);
    } catch (err) {
      if (!(err instanceof LibcError) || err.errno !== 22 /* EINVAL: not mounted */) {
        try {
          umount2(this.opts.mountpoint, MNT_DETACH);
        } catch {}
      }
    }
    // The kernel aborts the connection on unmount: readers blocked in read(2) get ENODEV, and the
    // last one to stop closes the fds (closing them here could race with a read still in progress).
  }
}
