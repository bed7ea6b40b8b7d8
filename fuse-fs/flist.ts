// The rfs flist ("FungiList") database: reading and writing it with bun:sqlite.
// The schema is rfs's schema/schema.sql byte for byte in meaning (same tables, columns, declared types
// and indexes), so flists travel both ways. See FORMAT.md for the meaning of every column.
import { Database, type Statement } from "bun:sqlite";
import { existsSync, rmSync } from "node:fs";
import { FlistError } from "./errors.ts";

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS inode (
    ino INTEGER PRIMARY KEY AUTOINCREMENT,
    parent INTEGER,
    name VARCHAR(255),
    size INTEGER,
    uid INTEGER,
    gid INTEGER,
    mode INTEGER,
    rdev INTEGER,
    ctime INTEGER,
    mtime INTEGER
);
CREATE INDEX IF NOT EXISTS parents ON inode (parent);
CREATE TABLE IF NOT EXISTS extra (
    ino INTEGER PRIMARY KEY,
    data VARCHAR(4096)
);
CREATE TABLE IF NOT EXISTS block (
    ino INTEGER,
    id VARCHAR(32),
    key VARCHAR(32)
);
CREATE INDEX IF NOT EXISTS block_ino ON block (ino);
CREATE TABLE IF NOT EXISTS tag (
    key VARCHAR(10) PRIMARY KEY,
    value VARCHAR(255)
);
CREATE TABLE IF NOT EXISTS route (
    start integer,
    end integer,
    url VARCHAR(2048)
);
`;

/** Plaintext bytes per block; every block of a file but the last holds exactly this many. */
export const BLOCK_SIZE = 512 * 1024;
export const ROOT_INO = 1;

export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

export interface Inode {
  ino: number;
  parent: number;
  name: string;
  size: number;
  uid: number;
  gid: number;
  /** Raw st_mode: file type and permission bits. */
  mode: number;
  rdev: number;
  /** Seconds since the epoch. */
  ctime: number;
  mtime: number;
}

export interface NewInode extends Omit<Inode, "ino"> {
  /** Symlink target bytes, kept in the extra table. */
  target?: Uint8Array;
}

export interface BlockRow {
  id: Uint8Array;
  key: Uint8Array;
}

export interface RouteRow {
  start: number;
  end: number;
  url: string;
}

const INODE_COLUMNS = "ino, parent, name, size, uid, gid, mode, rdev, ctime, mtime";

function asBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return new TextEncoder().encode(v);
  return new Uint8Array(0);
}

/** One flist file. Opened read-only for mounting and inspecting, read-write for packing and tagging. */
export class Flist {
  private readonly q: {
    inode: Statement;
    children: Statement;
    lookup: Statement;
    target: Statement;
    blocks: Statement;
    tag: Statement;
    tags: Statement;
    routes: Statement;
  };

  private constructor(
    readonly path: string,
    readonly db: Database,
  ) {
    const prep = (sql: string) => {
      try {
        return db.prepare(sql);
      } catch (err) {
        throw new FlistError("bad-flist", `not an rfs flist (${(err as Error).message})`, { flist: path }, { cause: err });
      }
    };
    this.q = {
      inode: prep(`SELECT ${INODE_COLUMNS} FROM inode WHERE ino = ?`),
      children: prep(`SELECT ${INODE_COLUMNS} FROM inode WHERE parent = ? ORDER BY ino`),
      // Names that are not UTF-8 are packed lossily, so two rows of a directory can share a name: the
      // last one (highest ino) is chosen, as a directory's listing turned into a Map by name keeps
      // it (FlistFs), so a name resolves to one inode whichever way it is looked up.
      lookup: prep(`SELECT ${INODE_COLUMNS} FROM inode WHERE parent = ? AND name = ? ORDER BY ino DESC LIMIT 1`),
      target: prep("SELECT data FROM extra WHERE ino = ?"),
      blocks: prep("SELECT id, key FROM block WHERE ino = ? ORDER BY rowid"),
      tag: prep("SELECT value FROM tag WHERE key = ?"),
      tags: prep("SELECT key, value FROM tag ORDER BY key"),
      routes: prep("SELECT start, end, url FROM route ORDER BY rowid"),
    };
  }

  static open(path: string, opts: { write?: boolean } = {}): Flist {
    if (!existsSync(path)) throw new FlistError("not-found", `no flist at ${path}`, { flist: path });
    let db: Database;
    try {
      db = new Database(path, opts.write ? { readwrite: true } : { readonly: true });
    } catch (err) {
      throw new FlistError("bad-flist", `cannot open ${path} as SQLite: ${(err as Error).message}`, { flist: path }, { cause: err });
    }
    const f = new Flist(path, db);
    if (!f.inode(ROOT_INO)) throw new FlistError("bad-flist", "flist has no root inode (ino 1)", { flist: path });
    return f;
  }

  /** Creates a fresh flist (replacing any file at path) with rfs's schema and journal mode. */
  static create(path: string): Flist {
    rmSync(path, { force: true });
    const db = new Database(path, { create: true, readwrite: true });
    db.exec("PRAGMA journal_mode = DELETE");
    db.exec(SCHEMA);
    return new Flist(path, db);
  }

  inode(ino: number): Inode | null {
    return (this.q.inode.get(ino) as Inode | null) ?? null;
  }

  /** Children of a directory in ino order (the order they were packed), which readdir offsets rely on. */
  children(parent: number): Inode[] {
    return this.q.children.all(parent) as Inode[];
  }

  lookup(parent: number, name: string): Inode | null {
    return (this.q.lookup.get(parent, name) as Inode | null) ?? null;
  }

  /** The symlink target, as bytes; null when the inode has none. */
  target(ino: number): Uint8Array | null {
    const row = this.q.target.get(ino) as { data: unknown } | null;
    return row ? asBytes(row.data) : null;
  }

  blocks(ino: number): BlockRow[] {
    const rows = this.q.blocks.all(ino) as { id: unknown; key: unknown }[];
    return rows.map((r, i) => {
      const id = asBytes(r.id);
      const key = asBytes(r.key);
      if (id.length !== 32 || key.length !== 32) {
        throw new FlistError("bad-flist", `block ${i} of inode ${ino} has a ${id.length}-byte id and ${key.length}-byte key (want 32 each)`, { flist: this.path, ino });
      }
      return { id, key };
    });
  }

  tag(key: string): string | null {
    const row = this.q.tag.get(key) as { value: string } | null;
    return row ? String(row.value) : null;
  }

  tags(): [string, string][] {
    return (this.q.tags.all() as { key: string; value: string }[]).map((r) => [String(r.key), String(r.value)]);
  }

  routes(): RouteRow[] {
    return this.q.routes.all() as RouteRow[];
  }

  setTag(key: string, value: string): void {
    this.db.query("INSERT OR REPLACE INTO tag (key, value) VALUES (?, ?)").run(key, value);
  }

  deleteTag(key: string): boolean {
    return this.db.query("DELETE FROM tag WHERE key = ?").run(key).changes > 0;
  }

  addRoute(route: RouteRow): void {
    this.db.query("INSERT INTO route (start, end, url) VALUES (?, ?, ?)").run(route.start, route.end, route.url);
  }

  addInode(n: NewInode): number {
    const r = this.db
      .query("INSERT INTO inode (parent, name, size, uid, gid, mode, rdev, ctime, mtime) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
      .run(n.parent, n.name, n.size, n.uid, n.gid, n.mode, n.rdev, n.ctime, n.mtime);
    const ino = Number(r.lastInsertRowid);
    if (n.target) this.db.query("INSERT INTO extra (ino, data) VALUES (?, ?)").run(ino, n.target);
    return ino;
  }

  addBlock(ino: number, block: BlockRow): void {
    this.db.query("INSERT INTO block (ino, id, key) VALUES (?, ?, ?)").run(ino, block.id, block.key);
  }

  /** Runs fn in one transaction: packing thousands of rows one commit at a time would be slow. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    this.db.close();
  }
}
