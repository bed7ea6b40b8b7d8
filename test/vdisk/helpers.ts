// Shared by the vdisk tests: running real clients, sparse test images, and a raw NBD client for
// the malformed-input cases no real client will produce.
import { openSync, writeSync, closeSync, ftruncateSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ByteQueue } from "../../vdisk/nbd/byte-queue.ts";
import { VdiskManager } from "../../vdisk/model/manager.ts";
import { openCatalog } from "../../vdisk/model/catalog.ts";
import type { BlockBackend } from "../../store/index.ts";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(cmd: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  const proc = Bun.spawn(cmd, { stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill(9), opts.timeoutMs ?? 120_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export async function mustRun(cmd: string[], opts?: { timeoutMs?: number }): Promise<string> {
  const r = await run(cmd, opts);
  if (r.code !== 0) throw new Error(`${cmd.join(" ")} exited ${r.code}: ${r.stderr}${r.stdout}`);
  return r.stdout;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A deterministic pseudo-random generator (xorshift32), so failures reproduce. */
export function randomBytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A sparse raw image of `size` bytes with random data in `extents` ([offset, length] pairs). */
export function makeSparseImage(path: string, size: number, extents: [number, number][], seed = 1): void {
  const fd = openSync(path, "w");
  ftruncateSync(fd, size);
  extents.forEach(([offset, length], i) => writeSync(fd, randomBytes(length, seed + i), 0, length, offset));
  closeSync(fd);
}

/** A minimal NBD client speaking raw bytes, for handshakes and requests real clients never send. */
export class RawClient {
  private readonly queue = new ByteQueue();
  private waiter: (() => void) | null = null;
  closed = false;

  private constructor(private readonly socket: import("bun").Socket<undefined>) {}

  static async connect(port: number): Promise<RawClient> {
    let client!: RawClient;
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_s, chunk) => {
          client.queue.push(new Uint8Array(chunk));
          client.wake();
        },
        drain: () => client.pushOut(),
        close: () => {
          client.closed = true;
          client.wake();
        },
        error: () => {
          client.closed = true;
          client.wake();
        },
      },
    });
    client = new RawClient(socket);
    return client;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    w?.();
  }

  private unsent: Uint8Array[] = [];

  /** Queues bytes; what the kernel does not take now is written on drain. */
  send(buf: Uint8Array): void {
    this.unsent.push(buf);
    this.pushOut();
  }

  private pushOut(): void {
    while (this.unsent.length) {
      const b = this.unsent[0];
      const n = this.socket.write(b);
      if (n < 0) return;
      if (n < b.length) {
        this.unsent[0] = b.subarray(n);
        return;
      }
      this.unsent.shift();
    }
  }

  /** Resolves n bytes, or null when the server closed the connection first. */
  async read(n: number): Promise<Uint8Array | null> {
    while (this.queue.length < n) {
      if (this.closed) return null;
      await new Promise<void>((r) => (this.waiter = r));
    }
    return new Uint8Array(this.queue.take(n));
  }

  /** Resolves true once the server has closed the connection. */
  async waitClosed(): Promise<boolean> {
    while (!this.closed) {
      if (this.queue.length) this.queue.skip(this.queue.length);
      await new Promise<void>((r) => (this.waiter = r));
    }
    return true;
  }

  destroy(): void {
    this.socket.terminate();
  }

  /** Greeting, client flags, and the options until GO on `name` (structured replies if asked). */
  async handshake(name: string, opts: { structured?: boolean; blockSize?: boolean } = {}): Promise<{ size: bigint; flags: number }> {
    const greeting = await this.read(18);
    if (!greeting) throw new Error("no greeting");
    this.send(u32(3)); // FIXED_NEWSTYLE | NO_ZEROES
    if (opts.structured) {
      this.option(8, new Uint8Array(0));
      const r = await this.optionReply();
      if (r.type !== 1) throw new Error(`structured reply refused: ${r.type}`);
    }
    const nameBytes = new TextEncoder().encode(name);
    const infos = opts.blockSize ? [3] : [];
    const data = new Uint8Array(4 + nameBytes.length + 2 + 2 * infos.length);
    const v = new DataView(data.buffer);
    v.setUint32(0, nameBytes.length);
    data.set(nameBytes, 4);
    v.setUint16(4 + nameBytes.length, infos.length);
    infos.forEach((t, i) => v.setUint16(6 + nameBytes.length + 2 * i, t));
    this.option(7, data);
    let size = 0n;
    let flags = 0;
    for (;;) {
      const r = await this.optionReply();
      if (r.type === 1) return { size, flags };
      if (r.type !== 3) throw new Error(`GO failed with reply type 0x${r.type.toString(16)}`);
      const dv = new DataView(r.data.buffer);
      if (dv.getUint16(0) === 0) {
        size = dv.getBigUint64(2);
        flags = dv.getUint16(10);
      }
    }
  }

  option(option: number, data: Uint8Array): void {
    const h = new Uint8Array(16 + data.length);
    const v = new DataView(h.buffer);
    v.setBigUint64(0, 0x49484156454f5054n);
    v.setUint32(8, option);
    v.setUint32(12, data.length);
    h.set(data, 16);
    this.send(h);
  }

  async optionReply(): Promise<{ option: number; type: number; data: Uint8Array }> {
    const h = await this.read(20);
    if (!h) throw new Error("connection closed while waiting for an option reply");
    const v = new DataView(h.buffer);
    const data = (await this.read(v.getUint32(16))) ?? new Uint8Array(0);
    return { option: v.getUint32(8), type: v.getUint32(12), data };
  }

  request(type: number, offset: number, length: number, opts: { flags?: number; cookie?: number; payload?: Uint8Array } = {}): void {
    const h = new Uint8Array(28 + (opts.payload?.length ?? 0));
    const v = new DataView(h.buffer);
    v.setUint32(0, 0x25609513);
    v.setUint16(4, opts.flags ?? 0);
    v.setUint16(6, type);
    v.setBigUint64(8, BigInt(opts.cookie ?? 1));
    v.setBigUint64(16, BigInt(offset));
    v.setUint32(24, length);
    if (opts.payload) h.set(opts.payload, 28);
    this.send(h);
  }

  /** Reads one simple reply: the errno, the cookie and, for successful reads, `dataLength` bytes. */
  async simpleReply(dataLength = 0): Promise<{ error: number; cookie: number; data: Uint8Array | null } | null> {
    const h = await this.read(16);
    if (!h) return null;
    const v = new DataView(h.buffer);
    if (v.getUint32(0) !== 0x67446698) throw new Error("not a simple reply");
    const error = v.getUint32(4);
    const data = error === 0 && dataLength ? await this.read(dataLength) : null;
    return { error, cookie: Number(v.getBigUint64(8)), data };
  }
}

export function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

/**
 * An in-memory store whose puts and/or gets wait, while gated, until the test lets them through
 * (`waiting[i].finish()`) or fails them: for write-back and fetch-failure timing without sleeps.
 */
export class GatedStore implements BlockBackend {
  readonly url = "gated:";
  readonly readOnly = false;
  readonly blocks = new Map<string, Uint8Array>();
  readonly waiting: { finish: () => void; fail: (e: Error) => void }[] = [];

  constructor(public gate: { puts: boolean; gets: boolean }) {}

  private held<T>(gated: boolean, op: () => T): Promise<T> {
    if (!gated) return Promise.resolve(op());
    return new Promise((resolve, reject) => this.waiting.push({ finish: () => resolve(op()), fail: reject }));
  }
  async has(id: Uint8Array): Promise<boolean> {
    return this.blocks.has(Buffer.from(id).toString("hex"));
  }
  get(id: Uint8Array): Promise<Uint8Array | null> {
    return this.held(this.gate.gets, () => this.blocks.get(Buffer.from(id).toString("hex")) ?? null);
  }
  put(id: Uint8Array, data: Uint8Array): Promise<void> {
    return this.held(this.gate.puts, () => void this.blocks.set(Buffer.from(id).toString("hex"), new Uint8Array(data)));
  }
  async delete(id: Uint8Array): Promise<void> {
    this.blocks.delete(Buffer.from(id).toString("hex"));
  }
  async close(): Promise<void> {}

  /** Resolves once at least n operations are waiting (block encoding runs on a worker first). */
  async waitingFor(n: number): Promise<void> {
    while (this.waiting.length < n) await Bun.sleep(2);
  }
}

/**
 * A vdisk `name` of `blocks` blocks over a GatedStore, its catalog in `dir`, with no periodic
 * write-back: the cache size and put concurrency are what the write-back tests turn.
 */
export async function gatedVdisk(
  dir: string,
  name: string,
  opts: { gate: { puts: boolean; gets: boolean }; blockSize: number; blocks: number; cacheBlocks: number; putConcurrency?: number },
) {
  const store = new GatedStore(opts.gate);
  const catalog = await openCatalog(`dir://${join(dir, name)}`);
  const manager = new VdiskManager({ store, catalog, cacheBytes: opts.cacheBlocks * opts.blockSize, writebackIntervalMs: 0, putConcurrency: opts.putConcurrency, log: () => {} });
  await manager.create(name, opts.blocks * opts.blockSize, { blockSize: opts.blockSize });
  return { store, manager, vdisk: await manager.openVdisk(name) };
}
