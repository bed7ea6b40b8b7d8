// Fixed-newstyle negotiation: the server greeting, then option haggling until the client picks
// an export (NBD_OPT_GO or NBD_OPT_EXPORT_NAME) or gives up. Layouts in vdisk/nbd/PROTOCOL.md.
import type { BlockExport } from "./export.ts";
import { NbdProtocolError } from "./errors.ts";
import * as P from "./protocol.ts";

export interface HandshakeIO {
  read(n: number): Promise<Uint8Array>;
  send(buf: Uint8Array): void;
}

/** Where the handshake finds exports; lookups may be asynchronous (an export opened on demand). */
export interface ExportRegistry {
  get(name: string): Promise<BlockExport | undefined>;
  list(): Promise<{ name: string; description: string }[]>;
}

/** What the client agreed to, carried into the transmission phase. */
export interface Session {
  export: BlockExport;
  structured: boolean;
  /** Context id of base:allocation, 0 when not selected. */
  allocationContext: number;
  /** The client asked for NBD_INFO_BLOCK_SIZE and so promised to respect it. */
  blockSizesAgreed: boolean;
  flags: number;
}

/** Largest option payload read; longer ones end the connection (export names are <= 4 KiB). */
export const MAX_OPTION_LENGTH = 64 * 1024;
const ALLOCATION_CONTEXT_ID = 1;
const text = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

function u16(v: number): Uint8Array {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, v);
  return b;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

export function transmissionFlags(exp: BlockExport, structured: boolean): number {
  let flags = P.TF_HAS_FLAGS | P.TF_SEND_FLUSH | P.TF_SEND_FUA | P.TF_SEND_CACHE;
  if (exp.readOnly) flags |= P.TF_READ_ONLY;
  else {
    flags |= P.TF_SEND_TRIM | P.TF_SEND_WRITE_ZEROES;
    if (exp.fastZero) flags |= P.TF_SEND_FAST_ZERO;
  }
  if (structured) flags |= P.TF_SEND_DF;
  if (exp.multiConn) flags |= P.TF_CAN_MULTI_CONN;
  return flags;
}

/** Reads the option payload fields; throws Invalid when they do not add up to the option length. */
class OptionData {
  private off = 0;
  private readonly view: DataView;
  constructor(private readonly data: Uint8Array) {
    this.view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  }
  private need(n: number): void {
    if (this.off + n > this.data.length) throw new InvalidOption("option data is shorter than its fields");
  }
  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.off);
    this.off += 2;
    return v;
  }
  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.off);
    this.off += 4;
    return v;
  }
  string(n: number): string {
    if (n > 4096) throw new InvalidOption(`string of ${n} bytes exceeds 4096`);
    this.need(n);
    const bytes = this.data.subarray(this.off, this.off + n);
    this.off += n;
    try {
      return decoder.decode(bytes);
    } catch {
      throw new InvalidOption("string is not UTF-8");
    }
  }
  end(): void {
    if (this.off !== this.data.length) throw new InvalidOption("option data is longer than its fields");
  }
}

class InvalidOption extends Error {}

export class Negotiator {
  private structured = false;
  private allocationFor: string | null = null; // export name base:allocation was selected for

  constructor(
    private readonly io: HandshakeIO,
    private readonly exports: ExportRegistry,
  ) {}

  /** Resolves the session, or null when the client aborted. Throws NbdProtocolError on garbage. */
  async run(): Promise<Session | null> {
    const greeting = new Uint8Array(18);
    const g = new DataView(greeting.buffer);
    g.setBigUint64(0, P.NBDMAGIC);
    g.setBigUint64(8, P.IHAVEOPT);
    g.setUint16(16, P.FLAG_FIXED_NEWSTYLE | P.FLAG_NO_ZEROES);
    this.io.send(greeting);

    const clientFlags = view(await this.io.read(4)).getUint32(0);
    if (clientFlags & ~P.CLIENT_FLAGS_KNOWN) throw new NbdProtocolError(`unknown client flags 0x${clientFlags.toString(16)}`);
    const noZeroes = (clientFlags & P.FLAG_NO_ZEROES) !== 0;

    for (;;) {
      const header = view(await this.io.read(16));
      if (header.getBigUint64(0) !== P.IHAVEOPT) throw new NbdProtocolError("option without IHAVEOPT magic");
      const option = header.getUint32(8);
      const length = header.getUint32(12);
      if (length > MAX_OPTION_LENGTH) throw new NbdProtocolError(`option ${option} of ${length} bytes is too long`);
      const data = new Uint8Array(await this.io.read(length)); // a copy: received chunks may be views

      if (option === P.OPT_EXPORT_NAME) return await this.exportName(data, noZeroes);
      if (option === P.OPT_ABORT) {
        this.reply(option, P.REP_ACK);
        return null;
      }
      try {
        const session = await this.option(option, data);
        if (session) return session;
      } catch (err) {
        if (!(err instanceof InvalidOption)) throw err;
        this.error(option, P.REP_ERR_INVALID, err.message);
      }
    }
  }

  private async option(option: number, data: Uint8Array): Promise<Session | null> {
    switch (option) {
      case P.OPT_LIST:
        if (data.length !== 0) throw new InvalidOption("NBD_OPT_LIST takes no data");
        for (const exp of await this.exports.list()) {
          const name = text.encode(exp.name);
          const len = new Uint8Array(4);
          new DataView(len.buffer).setUint32(0, name.length);
          this.reply(option, P.REP_SERVER, concat([len, name, text.encode(exp.description)]));
        }
        this.reply(option, P.REP_ACK);
        return null;
      case P.OPT_STRUCTURED_REPLY:
        if (data.length !== 0) throw new InvalidOption("NBD_OPT_STRUCTURED_REPLY takes no data");
        if (this.structured) throw new InvalidOption("structured replies already negotiated");
        this.structured = true;
        this.reply(option, P.REP_ACK);
        return null;
      case P.OPT_INFO:
      case P.OPT_GO:
        return this.infoOrGo(option, data);
      case P.OPT_LIST_META_CONTEXT:
      case P.OPT_SET_META_CONTEXT:
        await this.metaContext(option, data);
        return null;
      default:
        // STARTTLS, EXTENDED_HEADERS and anything unknown.
        this.error(option, P.REP_ERR_UNSUP, `option ${option} is not supported`);
        return null;
    }
  }

  private async exportName(data: Uint8Array, noZeroes: boolean): Promise<Session> {
    let name: string;
    try {
      name = decoder.decode(data);
    } catch {
      throw new NbdProtocolError("export name is not UTF-8");
    }
    const exp = await this.exports.get(name).catch(() => undefined);
    // EXPORT_NAME cannot carry an error: the spec says to close the connection.
    if (!exp) throw new NbdProtocolError(`no export named ${JSON.stringify(name)}`);
    const flags = transmissionFlags(exp, this.structured);
    const out = new Uint8Array(noZeroes ? 10 : 134);
    const v = new DataView(out.buffer);
    v.setBigUint64(0, BigInt(exp.size()));
    v.setUint16(8, flags);
    this.io.send(out);
    return this.session(exp, name, false, flags);
  }

  private session(exp: BlockExport, name: string, blockSizesAgreed: boolean, flags: number): Session {
    const allocationContext = this.structured && this.allocationFor === name ? ALLOCATION_CONTEXT_ID : 0;
    return { export: exp, structured: this.structured, allocationContext, blockSizesAgreed, flags };
  }

  private async infoOrGo(option: number, data: Uint8Array): Promise<Session | null> {
    const d = new OptionData(data);
    const name = d.string(d.u32());
    const requests: number[] = [];
    for (let n = d.u16(); n > 0; n--) requests.push(d.u16());
    d.end();
    let exp: BlockExport | undefined;
    try {
      exp = await this.exports.get(name);
    } catch (err) {
      this.error(option, P.REP_ERR_UNKNOWN, `cannot open export ${JSON.stringify(name)}: ${(err as Error).message}`);
      return null;
    }
    if (!exp) {
      this.error(option, P.REP_ERR_UNKNOWN, `no export named ${JSON.stringify(name)}`);
      return null;
    }
    const flags = transmissionFlags(exp, this.structured);
    const info = new Uint8Array(12);
    const iv = new DataView(info.buffer);
    iv.setUint16(0, P.INFO_EXPORT);
    iv.setBigUint64(2, BigInt(exp.size()));
    iv.setUint16(10, flags);
    this.reply(option, P.REP_INFO, info);
    if (requests.includes(P.INFO_NAME)) this.reply(option, P.REP_INFO, concat([u16(P.INFO_NAME), text.encode(exp.name)]));
    if (requests.includes(P.INFO_DESCRIPTION)) this.reply(option, P.REP_INFO, concat([u16(P.INFO_DESCRIPTION), text.encode(exp.description)]));
    // Block sizes are always sent: the spec lets a server volunteer them.
    const bs = new Uint8Array(14);
    const bv = new DataView(bs.buffer);
    bv.setUint16(0, P.INFO_BLOCK_SIZE);
    bv.setUint32(2, exp.blockSizes.minimum);
    bv.setUint32(6, exp.blockSizes.preferred);
    bv.setUint32(10, exp.blockSizes.maximum);
    this.reply(option, P.REP_INFO, bs);
    this.reply(option, P.REP_ACK);
    if (option === P.OPT_INFO) return null;
    return this.session(exp, name, requests.includes(P.INFO_BLOCK_SIZE), flags);
  }

  private async metaContext(option: number, data: Uint8Array): Promise<void> {
    if (!this.structured) throw new InvalidOption("meta contexts need structured replies first");
    const d = new OptionData(data);
    const name = d.string(d.u32());
    const queries: string[] = [];
    for (let n = d.u32(); n > 0; n--) queries.push(d.string(d.u32()));
    d.end();
    if (!(await this.exports.get(name).catch(() => undefined))) {
      this.error(option, P.REP_ERR_UNKNOWN, `no export named ${JSON.stringify(name)}`);
      return;
    }
    const listing = option === P.OPT_LIST_META_CONTEXT;
    // LIST with no query lists everything, and "base:" names the whole namespace; SET needs the exact name.
    const matches = listing
      ? queries.length === 0 || queries.some((q) => q === "base:" || q === P.BASE_ALLOCATION)
      : queries.includes(P.BASE_ALLOCATION);
    if (!listing) this.allocationFor = matches ? name : null;
    if (matches) {
      const body = new Uint8Array(4);
      new DataView(body.buffer).setUint32(0, listing ? 0 : ALLOCATION_CONTEXT_ID);
      this.reply(option, P.REP_META_CONTEXT, concat([body, text.encode(P.BASE_ALLOCATION)]));
    }
    this.reply(option, P.REP_ACK);
  }

  private reply(option: number, type: number, data: Uint8Array = new Uint8Array(0)): void {
    const out = new Uint8Array(20 + data.length);
    const v = new DataView(out.buffer);
    v.setBigUint64(0, P.OPTION_REPLY_MAGIC);
    v.setUint32(8, option);
    v.setUint32(12, type);
    v.setUint32(16, data.length);
    out.set(data, 20);
    this.io.send(out);
  }

  private error(option: number, type: number, message: string): void {
    this.reply(option, type, text.encode(message));
  }
}
