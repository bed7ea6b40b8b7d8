// The 0-db command set. Each command writes exactly one reply into the connection's RespWriter or
// throws a ZdbError, which the connection turns into the error reply. Replies follow 0-db:
// SET answers the key (the new id in seq mode) or nil when nothing changed; DEL answers +OK or
// "Key not found"; SCAN/RSCAN answer [next-cursor, [[key, size, timestamp], ...]] and "No more data"
// at the end (SCANX is the same); CHECK answers 1 (intact) or 0 (damaged); LENGTH and KEYTIME
// answer a key's size and timestamp; FLUSH (admin) empties the selected namespace.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { RespWriter } from "../resp/writer.ts";
import { ZdbError } from "./errors.ts";
import { MAX_KEY_LENGTH } from "./format.ts";
import { isValidNamespaceName, type Namespace, type NamespaceSettings } from "./namespace.ts";
import type { Session } from "./session.ts";

export interface ZdbContext {
  readonly namespaces: Map<string, Namespace>;
  readonly adminPassword: string | null;
  createNamespace(name: string): Namespace;
  deleteNamespace(name: string): void;
  /** Lines of server-wide facts for INFO. */
  infoLines(): string[];
}

type Args = Buffer[];
type Handler = (ctx: ZdbContext, s: Session, args: Args, out: RespWriter) => void | Promise<void>;

interface Command {
  /** Argument count including the command name; max -1 = unbounded. */
  min: number;
  max: number;
  run: Handler;
}

/** Entries per SCAN/RSCAN reply. */
const SCAN_BATCH = 16;

function key(arg: Buffer): Buffer {
  if (arg.length > MAX_KEY_LENGTH) throw new ZdbError("limit", `Key too large: ${arg.length} bytes, at most ${MAX_KEY_LENGTH}`);
  return arg;
}

function keyString(arg: Buffer): string {
  return key(arg).toString("latin1");
}

function text(arg: Buffer): string {
  return arg.toString("utf8");
}

function sha1hex(s: string): string {
  return createHash("sha1").update(s).digest("hex");
}

function equalSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Writes the value of one key as a bulk, nil, or an error when its bytes fail their checksum. */
function replyValue(ns: Namespace, k: string, out: RespWriter): void {
  const e = ns.lookup(k);
  if (e === undefined) {
    out.nil();
    return;
  }
  const mark = out.length;
  const at = out.reserveBulk(e.size);
  if (!ns.readPayload(e, out.buf, at)) {
    out.rewind(mark);
    out.error("Data corrupted: the stored value fails its CRC32C check");
  }
}

function consumeChallenge(s: Session): string {
  const c = s.challenge;
  s.challenge = null;
  if (c === null) throw new ZdbError("denied", "No challenge pending: send AUTH SECURE CHALLENGE first");
  return c;
}

function requireMode(value: string): NamespaceSettings["mode"] {
  if (value === "user" || value === "userkey") return "user";
  if (value === "seq" || value === "sequential") return "seq";
  throw new ZdbError("arguments", `Invalid mode "${value}": user or seq`);
}

function flag(value: string, name: string): boolean {
  if (value === "1" || value === "yes" || value === "true") return true;
  if (value === "0" || value === "no" || value === "false") return false;
  throw new ZdbError("arguments", `Invalid ${name} "${value}": 0 or 1`);
}

function namespaceOf(ctx: ZdbContext, name: string): Namespace {
  const ns = ctx.namespaces.get(name);
  if (ns === undefined) throw new ZdbError("not-found", `Namespace not found: ${name}`);
  return ns;
}

function scan(reverse: boolean): Handler {
  return (_ctx, s, args, out) => {
    const ns = s.current();
    const { next, entries } = ns.scan(args.length > 1 ? text(args[1]) : null, SCAN_BATCH, reverse);
    out.arrayHeader(2);
    out.bulkString(next);
    out.arrayHeader(entries.length);
    for (const e of entries) {
      out.arrayHeader(3);
      out.bulk(Buffer.from(e.key, "latin1"));
      out.integer(e.size);
      out.integer(e.timestamp);
    }
  };
}

function namespaceInfo(ns: Namespace): string {
  const st = ns.settings;
  return [
    "# namespace",
    `name: ${ns.name}`,
    `entries: ${ns.entries.size}`,
    `public: ${st.public ? "yes" : "no"}`,
    `password: ${st.password !== null ? "yes" : "no"}`,
    `data_size_bytes: ${ns.usedBytes}`,
    `data_size_mb: ${(ns.usedBytes / 1048576).toFixed(2)}`,
    `data_limits_bytes: ${st.maxsize}`,
    `data_files: ${ns.dataFiles}`,
    `disk_bytes: ${ns.diskBytes()}`,
    `mode: ${st.mode === "seq" ? "sequential" : "userkey"}`,
    `worm: ${st.worm ? "yes" : "no"}`,
    `compacting: ${ns.compacting ? "yes" : "no"}`,
    "",
  ].join("\n");
}

/**
 * Runs consecutive SETs of one connection (each args = ["SET", key, value]) as one write to the
 * namespace (Namespace.putMany) and writes their replies in order: the key (the new id in seq
 * mode), nil when the value was unchanged, or the error of that SET alone.
 */
export function setMany(s: Session, sets: Args[], out: RespWriter): void {
  // Per SET: its own argument error, or its place among the items written.
  const refused: (ZdbError | undefined)[] = [];
  const items: { key: Uint8Array; value: Uint8Array }[] = [];
  for (const args of sets) {
    try {
      items.push({ key: key(args[1]), value: args[2] });
      refused.push(undefined);
    } catch (err) {
      if (!(err instanceof ZdbError)) throw err;
      refused.push(err);
    }
  }
  let results: (Uint8Array | null | ZdbError)[] = [];
  if (items.length > 0) {
    try {
      results = s.forWrite().putMany(items);
    } catch (err) {
      if (!(err instanceof ZdbError)) throw err;
      results = items.map(() => err);
    }
  }
  let next = 0;
  for (const r0 of refused) {
    const r = r0 ?? results[next++];
    if (r === null) out.nil();
    else if (r instanceof ZdbError) out.error(r.message);
    else out.bulk(r);
  }
}

export const commands: Record<string, Command> = {
  PING: {
    min: 1,
    max: 2,
    run: (_c, _s, args, out) => (args.length === 2 ? out.bulk(args[1]) : out.simple("PONG")),
  },

  TIME: {
    min: 1,
    max: 1,
    run: (_c, _s, _a, out) => {
      const us = Date.now() * 1000;
      out.arrayHeader(2);
      out.bulkString(String(Math.floor(us / 1e6)));
      out.bulkString(String(us % 1e6));
    },
  },

  AUTH: {
    min: 2,
    max: 3,
    run: (ctx, s, args, out) => {
      const admin = ctx.adminPassword;
      if (admin === null) throw new ZdbError("denied", "Authentication is disabled: no admin password is set, every client is admin");
      if (args.length === 3) {
        if (text(args[1]).toUpperCase() !== "SECURE") throw new ZdbError("arguments", "Usage: AUTH password | AUTH SECURE CHALLENGE | AUTH SECURE <sha1(challenge:password)>");
        const arg = text(args[2]);
        if (arg.toUpperCase() === "CHALLENGE") {
          s.challenge = randomBytes(16).toString("hex");
          out.simple(s.challenge);
          return;
        }
        if (!equalSecret(arg.toLowerCase(), sha1hex(`${consumeChallenge(s)}:${admin}`))) throw new ZdbError("denied", "Access denied");
      } else if (!equalSecret(text(args[1]), admin)) throw new ZdbError("denied", "Access denied");
      s.admin = true;
      s.writable = true;
      out.simple("OK");
    },
  },

  SELECT: {
    min: 2,
    max: 4,
    run: (ctx, s, args, out) => {
      const ns = namespaceOf(ctx, text(args[1]));
      const pw = ns.settings.password;
      // Only a client that proved the admin password passes namespace passwords; on a server
      // without one, namespace passwords still hold.
      let granted = pw === null || (s.admin && ctx.adminPassword !== null);
      if (args.length === 4) {
        if (text(args[2]).toUpperCase() !== "SECURE") throw new ZdbError("arguments", "Usage: SELECT namespace [password | SECURE <sha1(challenge:password)>]");
        const proof = sha1hex(`${consumeChallenge(s)}:${pw ?? ""}`);
        if (!equalSecret(text(args[3]).toLowerCase(), proof)) throw new ZdbError("denied", "Access denied");
        granted = true;
      } else if (args.length === 3) {
        if (pw !== null && !equalSecret(text(args[2]), pw)) throw new ZdbError("denied", "Access denied");
        granted = true;
      }
      if (!granted && !ns.settings.public) throw new ZdbError("denied", "Namespace protected: password required");
      s.ns = ns;
      s.writable = granted;
      out.simple("OK");
    },
  },

  SET: {
    min: 3,
    max: 3,
    run: (_c, s, args, out) => setMany(s, [args], out),
  },

  GET: {
    min: 2,
    max: 2,
    run: (_c, s, args, out) => replyValue(s.current(), keyString(args[1]), out),
  },

  MGET: {
    min: 2,
    max: -1,
    run: (_c, s, args, out) => {
      const ns = s.current();
      const keys = args.slice(1).map(keyString);
      out.arrayHeader(keys.length);
      for (const k of keys) replyValue(ns, k, out);
    },
  },

  DEL: {
    min: 2,
    max: 2,
    run: (_c, s, args, out) => {
      s.forWrite().remove(key(args[1]));
      out.simple("OK");
    },
  },

  EXISTS: {
    min: 2,
    max: 2,
    run: (_c, s, args, out) => out.integer(s.current().lookup(keyString(args[1])) ? 1 : 0),
  },

  CHECK: {
    min: 2,
    max: 2,
    run: (_c, s, args, out) => {
      const ns = s.current();
      const e = ns.lookup(keyString(args[1]));
      if (e === undefined) out.nil();
      else out.integer(ns.check(e) ? 1 : 0);
    },
  },

  LENGTH: {
    min: 2,
    max: 2,
    run: (_c, s, args, out) => {
      const e = s.current().lookup(keyString(args[1]));
      if (e === undefined) out.nil();
      else out.integer(e.size);
    },
  },

  KEYTIME: {
    min: 2,
    max: 2,
    run: (_c, s, args, out) => {
      const e = s.current().lookup(keyString(args[1]));
      if (e === undefined) out.nil();
      else out.integer(e.timestamp);
    },
  },

  SCAN: { min: 1, max: 2, run: scan(false) },
  SCANX: { min: 1, max: 2, run: scan(false) },
  RSCAN: { min: 1, max: 2, run: scan(true) },

  DBSIZE: {
    min: 1,
    max: 1,
    run: (_c, s, _a, out) => out.integer(s.current().entries.size),
  },

  INFO: {
    min: 1,
    max: 1,
    run: (ctx, s, _a, out) => {
      const lines = [...ctx.infoLines(), "", "# connection", `namespace: ${s.ns.name}`, `admin: ${s.admin ? "yes" : "no"}`, ""];
      out.bulkString(lines.join("\n"));
    },
  },

  NSNEW: {
    min: 2,
    max: 2,
    run: (ctx, s, args, out) => {
      s.requireAdmin();
      const name = text(args[1]);
      if (!isValidNamespaceName(name)) throw new ZdbError("arguments", "Invalid namespace name: 1-128 of A-Z a-z 0-9 _ . -");
      if (ctx.namespaces.has(name)) throw new ZdbError("exists", "This namespace is not available");
      ctx.createNamespace(name);
      out.simple("OK");
    },
  },

  NSDEL: {
    min: 2,
    max: 2,
    run: (ctx, s, args, out) => {
      s.requireAdmin();
      const name = text(args[1]);
      if (name === "default") throw new ZdbError("denied", "Cannot delete the default namespace");
      namespaceOf(ctx, name);
      ctx.deleteNamespace(name);
      out.simple("OK");
    },
  },

  NSLIST: {
    min: 1,
    max: 1,
    run: (ctx, _s, _a, out) => {
      out.arrayHeader(ctx.namespaces.size);
      for (const name of ctx.namespaces.keys()) out.bulkString(name);
    },
  },

  NSINFO: {
    min: 2,
    max: 2,
    run: (ctx, _s, args, out) => out.bulkString(namespaceInfo(namespaceOf(ctx, text(args[1])))),
  },

  NSSET: {
    min: 4,
    max: 4,
    run: (ctx, s, args, out) => {
      s.requireAdmin();
      const ns = namespaceOf(ctx, text(args[1]));
      const prop = text(args[2]).toLowerCase();
      const value = text(args[3]);
      const next = { ...ns.settings };
      switch (prop) {
        case "password":
          // 0-db: "*" (or an empty string) removes the password.
          next.password = value === "*" || value === "" ? null : value;
          break;
        case "public":
          next.public = flag(value, "public");
          break;
        case "maxsize": {
          const n = Number(value);
          if (!Number.isSafeInteger(n) || n < 0) throw new ZdbError("arguments", `Invalid maxsize "${value}": bytes, 0 = unlimited`);
          next.maxsize = n;
          break;
        }
        case "mode":
          next.mode = requireMode(value.toLowerCase());
          if (next.mode !== ns.settings.mode && (ns.entries.size > 0 || ns.usedBytes > 0 || ns.dataFiles > 1))
            throw new ZdbError("denied", "Cannot change the mode of a namespace that holds data");
          break;
        case "worm":
          next.worm = flag(value, "worm");
          break;
        default:
          throw new ZdbError("arguments", `Unknown namespace property "${prop}": password, public, maxsize, mode, worm`);
      }
      ns.setSettings(next);
      out.simple("OK");
    },
  },

  FLUSH: {
    min: 1,
    max: 1,
    run: (_c, s, _a, out) => {
      s.requireAdmin();
      s.forWrite().flush();
      out.simple("OK");
    },
  },

  COMPACT: {
    min: 1,
    max: 1,
    run: async (_c, s, _a, out) => {
      const r = await s.forWrite().compact();
      out.simple(`OK files=${r.files} copied=${r.copiedEntries} reclaimed=${r.reclaimedBytes}`);
    },
  },
};
