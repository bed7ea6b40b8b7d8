// The NBD server: a set of named exports served on any number of TCP and unix-socket listeners.
// Exports can be added and removed while clients are connected; a removed export stays usable by
// the connections that already negotiated it.
import type { Socket, TCPSocketListener, UnixSocketListener } from "bun";
import { lstatSync, unlinkSync } from "node:fs";
import type { BlockExport } from "./export.ts";
import type { ExportRegistry } from "./handshake.ts";
import { NbdConnection, type ConnectionOptions } from "./connection.ts";

/** Exports found by name when a client asks, beyond those added with addExport (e.g. a catalog). */
export interface ExportSource {
  open(name: string): Promise<BlockExport | undefined>;
  list(): Promise<{ name: string; description: string }[]>;
}

export interface NbdServerOptions {
  /** Bytes one connection may hold in flight before the server stops reading its requests. */
  maxInflightBytes?: number;
  handshakeTimeoutMs?: number;
  maxExtents?: number;
  log?: (message: string) => void;
}

export type ListenAddress = { host: string; port: number } | { unix: string };

type Listener = TCPSocketListener<NbdConnection | undefined> | UnixSocketListener<NbdConnection | undefined>;

export class NbdServer implements ExportRegistry {
  private readonly exports = new Map<string, BlockExport>();
  private readonly listeners: Listener[] = [];
  private readonly connections = new Set<Socket<NbdConnection | undefined>>();
  private readonly connOpts: ConnectionOptions;
  private source: ExportSource | null = null;

  constructor(opts: NbdServerOptions = {}) {
    this.connOpts = {
      maxInflightBytes: opts.maxInflightBytes ?? 64 * 1024 * 1024,
      handshakeTimeoutMs: opts.handshakeTimeoutMs ?? 30_000,
      maxExtents: opts.maxExtents ?? 4096,
      log: opts.log ?? ((m) => console.error(m)),
    };
  }

  addExport(exp: BlockExport): void {
    if (this.exports.has(exp.name)) throw new Error(`export ${JSON.stringify(exp.name)} already exists`);
    this.exports.set(exp.name, exp);
  }

  removeExport(name: string): boolean {
    return this.exports.delete(name);
  }

  /** Also serve whatever `source` can open, looked up at each client's request. */
  setSource(source: ExportSource | null): void {
    this.source = source;
  }

  async get(name: string): Promise<BlockExport | undefined> {
    return this.exports.get(name) ?? (await this.source?.open(name));
  }

  async list(): Promise<{ name: string; description: string }[]> {
    const out = new Map<string, { name: string; description: string }>();
    for (const e of this.exports.values()) out.set(e.name, { name: e.name, description: e.description });
    for (const e of (await this.source?.list()) ?? []) if (!out.has(e.name)) out.set(e.name, e);
    return [...out.values()];
  }

  /** Starts listening; returns the bound address (the real port when 0 was asked). */
  listen(addr: ListenAddress): ListenAddress {
    const handlers = {
      open: (socket: Socket<NbdConnection | undefined>) => {
        this.connections.add(socket);
        if ("setNoDelay" in socket) socket.setNoDelay(true);
        socket.data = new NbdConnection(socket, this, this.connOpts, () => this.connections.delete(socket));
      },
      data: (socket: Socket<NbdConnection | undefined>, chunk: Buffer) => socket.data?.onData(chunk),
      drain: (socket: Socket<NbdConnection | undefined>) => socket.data?.onDrain(),
      close: (socket: Socket<NbdConnection | undefined>) => {
        this.connections.delete(socket);
        socket.data?.onClose();
      },
      error: (socket: Socket<NbdConnection | undefined>, err: Error) => {
        this.connOpts.log(`nbd socket error: ${err.message}`);
        this.connections.delete(socket);
        socket.data?.onClose();
      },
    };
    if ("unix" in addr) {
      // A socket file left by a server that died would make listen fail: the path is ours.
      if (lstatSync(addr.unix, { throwIfNoEntry: false })?.isSocket()) unlinkSync(addr.unix);
      const l = Bun.listen<NbdConnection | undefined>({ unix: addr.unix, socket: handlers });
      this.listeners.push(l);
      return addr;
    }
    const l = Bun.listen<NbdConnection | undefined>({ hostname: addr.host, port: addr.port, socket: handlers });
    this.listeners.push(l);
    return { host: addr.host, port: l.port };
  }

  /** Stops listening and drops every connection. */
  close(): void {
    for (const l of this.listeners.splice(0)) l.stop(true);
    for (const s of this.connections) s.end();
    this.connections.clear();
  }
}
