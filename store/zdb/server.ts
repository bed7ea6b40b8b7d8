// The zdb server: 0-db's dialect of RESP over TCP and/or a unix socket (Bun.listen), one
// Namespace per directory under the data and index roots.
//
// Every data event is decoded and executed synchronously, and all replies it produced leave in
// one socket write. Commands of one connection run strictly in order; COMPACT is the only one that
// completes later, and the connection holds its following commands until it does, while other
// connections keep being served. Under fsync=always the namespaces written by a batch are fsynced
// once before the batch's replies are sent (group commit); if that fails the connection is closed
// without replying, so nothing unsynced is acknowledged. Consecutive SETs of one event are
// collected and written to their namespace together (one data and one index write, see
// Namespace.putMany) before the next other command runs, so replies and effects keep their order.
import type { Socket, TCPSocketListener, UnixSocketListener } from "bun";
import * as fs from "node:fs";
import { RespDecoder, RespFrameTooLarge, RespProtocolError, type RespValue } from "../resp/decoder.ts";
import { Outbox } from "../resp/outbox.ts";
import { commands, setMany, type ZdbContext } from "./commands.ts";
import { ZdbError } from "./errors.ts";
import { Namespace, isValidNamespaceName, type FsyncPolicy, type StorageConfig } from "./namespace.ts";
import { Session } from "./session.ts";

export interface ZdbServerOptions {
  dataDir: string;
  /** Defaults to dataDir. */
  indexDir?: string;
  /** TCP listener; omit host to listen on no TCP port at all (socket only). */
  host?: string;
  port?: number;
  socketPath?: string;
  fsync?: FsyncPolicy;
  /** Data file size at which a new file is started; default 256 MiB as in 0-db. */
  datasize?: number;
  /** Without one, every client is admin (as in 0-db). */
  adminPassword?: string | null;
  log?: (message: string) => void;
}

/** 0-db limits. */
export const LIMITS = { maxBulk: 8 * 1024 * 1024, maxArray: 1024, maxLine: 64 * 1024, maxDepth: 1 };

const DEFAULT_DATASIZE = 256 * 1024 * 1024;
/** Stop reading from a client whose replies pile up unread beyond this. */
const MAX_BACKLOG = 64 * 1024 * 1024;

const commandTable = new Map(Object.entries(commands));

/** A SET with its two arguments, in any letter case. */
function isSet(v: RespValue | RespFrameTooLarge): v is Buffer[] {
  if (!Array.isArray(v) || v.length !== 3 || !isCommand(v)) return false;
  const name = v[0];
  return name.length === 3 && (name[0] | 0x20) === 0x73 && (name[1] | 0x20) === 0x65 && (name[2] | 0x20) === 0x74;
}

function isCommand(v: RespValue): v is Buffer[] {
  if (!Array.isArray(v) || v.length === 0) return false;
  for (let i = 0; i < v.length; i++) if (!(v[i] instanceof Uint8Array)) return false;
  return true;
}

class Connection {
  readonly session: Session;
  readonly out: Outbox;
  private readonly decoder: RespDecoder;
  private waiting: (RespValue | RespFrameTooLarge)[] = [];
  /** Consecutive SETs received and not yet run: they are written to the namespace together. */
  private sets: Buffer[][] = [];
  private busy = false;
  private closed = false;

  constructor(
    private readonly server: ZdbServer,
    private readonly socket: Socket<Connection>,
  ) {
    this.session = new Session(server.defaultNamespace, server.adminPassword === null);
    this.out = new Outbox((b) => socket.write(b));
    this.decoder = new RespDecoder((v) => this.onCommand(v), LIMITS);
  }

  onData(chunk: Buffer): void {
    try {
      this.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof RespProtocolError)) throw err;
      this.runSets();
      this.out.writer.error(`Protocol error: ${err.message}`);
      this.flush();
      this.close();
      return;
    }
    this.runSets();
    if (!this.busy) this.flush();
  }

  private onCommand(v: RespValue | RespFrameTooLarge): void {
    if (this.busy) this.waiting.push(v);
    else this.execute(v);
  }

  private execute(v: RespValue | RespFrameTooLarge): void {
    const out = this.out.writer;
    this.server.commandsExecuted++;
    if (isSet(v)) {
      this.sets.push(v);
      return;
    }
    this.runSets();
    if (v instanceof RespFrameTooLarge) {
      out.error(`Limit exceeded: ${v.message}`);
      return;
    }
    if (!isCommand(v)) {
      out.error("Protocol error: a command is a non-empty array of bulk strings");
      return;
    }
    const args = v;
    let name = args[0].toString("latin1");
    // Clients mostly send upper case; only other spellings pay for the conversion.
    let cmd = commandTable.get(name);
    if (cmd === undefined) {
      name = name.toUpperCase();
      cmd = commandTable.get(name);
    }
    if (cmd === undefined) {
      out.error(`Command not supported: ${name.slice(0, 64)}`);
      return;
    }
    if (args.length < cmd.min || (cmd.max >= 0 && args.length > cmd.max)) {
      out.error(`Wrong number of arguments for ${name}`);
      return;
    }
    const mark = out.length;
    try {
      const pending = cmd.run(this.server, this.session, args, out);
      if (pending instanceof Promise) {
        this.busy = true;
        pending.then(
          () => this.resume(),
          (err) => {
            this.fail(err, out.length);
            this.resume();
          },
        );
      }
    } catch (err) {
      this.fail(err, mark);
    }
  }

  /** Runs the SETs collected so far as one write; their replies go out in order, as always. */
  private runSets(): void {
    if (this.sets.length === 0) return;
    const sets = this.sets;
    this.sets = [];
    const out = this.out.writer;
    const mark = out.length;
    try {
      setMany(this.session, sets, out);
    } catch (err) {
      out.rewind(mark);
      this.server.log(`internal error: ${(err as Error)?.stack ?? String(err)}`);
      for (let i = 0; i < sets.length; i++) out.error(`Internal error: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  private fail(err: unknown, mark: number): void {
    const out = this.out.writer;
    out.rewind(mark);
    if (err instanceof ZdbError) out.error(err.message);
    else {
      this.server.log(`internal error: ${(err as Error)?.stack ?? String(err)}`);
      out.error(`Internal error: ${(err as Error)?.message ?? String(err)}`);
    }
  }

  /** After an asynchronous command: send its reply, then run what queued up behind it. */
  private resume(): void {
    this.busy = false;
    while (!this.busy && this.waiting.length > 0) this.execute(this.waiting.shift()!);
    this.runSets();
    if (!this.busy) this.flush();
  }

  private flush(): void {
    if (this.closed) return;
    const written = this.session.written;
    if (written.size > 0) {
      if (this.server.fsync === "always") {
        try {
          for (const ns of written) ns.syncIfDirty();
        } catch (err) {
          this.server.log(`closing a connection unanswered: ${(err as Error).message}`);
          written.clear();
          this.out.clear();
          this.close();
          return;
        }
      }
      written.clear();
    }
    if (!this.out.flush() && this.out.backlogBytes > MAX_BACKLOG) this.socket.pause();
  }

  onDrain(): void {
    if (this.out.drain()) this.socket.resume();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.end();
  }

  /** The peer went away: drop whatever was still to be sent. */
  onClose(): void {
    this.closed = true;
    this.waiting = [];
    this.sets = [];
    this.out.clear();
  }
}

export class ZdbServer implements ZdbContext {
  readonly namespaces = new Map<string, Namespace>();
  readonly adminPassword: string | null;
  readonly fsync: FsyncPolicy;
  readonly storage: StorageConfig;
  commandsExecuted = 0;
  private clients = 0;
  private readonly startedAt = Date.now();
  private tcp: TCPSocketListener<Connection> | null = null;
  private unix: UnixSocketListener<Connection> | null = null;
  private syncTimer: ReturnType<typeof setInterval> | null = null;
  readonly log: (message: string) => void;

  private constructor(readonly opts: ZdbServerOptions) {
    this.adminPassword = opts.adminPassword ?? null;
    this.fsync = opts.fsync ?? "everysec";
    this.storage = {
      dataRoot: opts.dataDir,
      indexRoot: opts.indexDir ?? opts.dataDir,
      datasize: opts.datasize ?? DEFAULT_DATASIZE,
      fsync: this.fsync,
    };
    this.log = opts.log ?? ((m) => console.error(`zdb: ${m}`));
  }

  /** Opens every namespace found on disk (replaying its index), then starts listening. */
  static async start(opts: ZdbServerOptions): Promise<ZdbServer> {
    const srv = new ZdbServer(opts);
    srv.openNamespaces();
    srv.listen();
    if (srv.fsync === "everysec") {
      srv.syncTimer = setInterval(() => {
        for (const ns of srv.namespaces.values()) ns.syncInBackground();
      }, 1000);
    }
    return srv;
  }

  get port(): number | null {
    return this.tcp?.port ?? null;
  }

  get defaultNamespace(): Namespace {
    return this.namespaces.get("default")!;
  }

  private openNamespaces(): void {
    const { dataRoot, indexRoot } = this.storage;
    fs.mkdirSync(dataRoot, { recursive: true });
    fs.mkdirSync(indexRoot, { recursive: true });
    const names = new Set<string>(["default"]);
    for (const root of [dataRoot, indexRoot]) {
      for (const d of fs.readdirSync(root, { withFileTypes: true })) {
        if (d.isDirectory() && isValidNamespaceName(d.name)) names.add(d.name);
      }
    }
    for (const name of names) this.namespaces.set(name, Namespace.open(name, this.storage));
  }

  private listen(): void {
    const server = this;
    const handlers = {
      open(socket: Socket<Connection>) {
        socket.data = new Connection(server, socket);
        server.clients++;
      },
      data(socket: Socket<Connection>, chunk: Buffer) {
        socket.data.onData(chunk);
      },
      drain(socket: Socket<Connection>) {
        socket.data.onDrain();
      },
      close(socket: Socket<Connection>) {
        socket.data.onClose();
        server.clients--;
      },
      error(_socket: Socket<Connection>, err: Error) {
        server.log(`client socket error: ${err.message}`);
      },
    };
    if (this.opts.host !== undefined) {
      this.tcp = Bun.listen<Connection>({ hostname: this.opts.host, port: this.opts.port ?? 9900, socket: handlers });
    }
    if (this.opts.socketPath !== undefined) {
      fs.rmSync(this.opts.socketPath, { force: true });
      this.unix = Bun.listen<Connection>({ unix: this.opts.socketPath, socket: handlers });
    }
    if (this.tcp === null && this.unix === null) throw new ZdbError("arguments", "zdb server needs a TCP address or a unix socket path");
  }

  createNamespace(name: string): Namespace {
    const ns = Namespace.open(name, this.storage);
    this.namespaces.set(name, ns);
    return ns;
  }

  deleteNamespace(name: string): void {
    const ns = this.namespaces.get(name);
    if (ns === undefined) return;
    this.namespaces.delete(name);
    ns.destroy();
  }

  infoLines(): string[] {
    let entries = 0;
    let bytes = 0;
    for (const ns of this.namespaces.values()) {
      entries += ns.entries.size;
      bytes += ns.usedBytes;
    }
    return [
      "# server",
      "server_name: zstore zdb (0-db compatible)",
      `uptime_seconds: ${Math.floor((Date.now() - this.startedAt) / 1000)}`,
      `fsync: ${this.fsync}`,
      `datasize_bytes: ${this.storage.datasize}`,
      `data_path: ${this.storage.dataRoot}`,
      `index_path: ${this.storage.indexRoot}`,
      `admin_password: ${this.adminPassword === null ? "no" : "yes"}`,
      "",
      "# clients",
      `clients_connected: ${this.clients}`,
      `commands_executed: ${this.commandsExecuted}`,
      "",
      "# storage",
      `namespaces: ${this.namespaces.size}`,
      `entries: ${entries}`,
      `data_size_bytes: ${bytes}`,
    ];
  }

  async stop(): Promise<void> {
    if (this.syncTimer) clearInterval(this.syncTimer);
    this.tcp?.stop(true);
    this.unix?.stop(true);
    if (this.opts.socketPath !== undefined) fs.rmSync(this.opts.socketPath, { force: true });
    for (const ns of this.namespaces.values()) ns.close();
  }
}
