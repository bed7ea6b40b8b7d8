// The read-only filesystem an flist describes, as answers to FUSE requests.
// Node ids are flist inode numbers (the root is 1 in both), so nothing per-node is kept for the kernel:
// FORGET needs no bookkeeping. Everything is immutable, so entries, attributes, file pages, symlinks
// and directory listings are cached by the kernel for a year. OPEN, OPENDIR and their RELEASEs are
// answered by the reader threads (fuse/reader.ts): the handle they give out keys the read-ahead state
// kept here, so two readers of one file do not disturb each other's sequential detection.
import { BLOCK_SIZE, Flist, ROOT_INO, S_IFMT, S_IFDIR, S_IFREG, type BlockRow, type Inode } from "./flist.ts";
import type { BlockFetcher } from "./blocks.ts";
import { ATTR_OUT, ENTRY_OUT, Errno, OUT_HEADER, Op, WRITE_OPS, direntSize, getU64, putAttr, putEntry, setU64, type Attr } from "./fuse/proto.ts";
import { replyBuffer, type FixedReplies, type FuseHandler, type Reply, type Request } from "./fuse/session.ts";

const TTL_SECS = 365 * 24 * 3600;
/** Lookups in a directory answered one query each before its whole listing is loaded (see child()). */
export const LOOKUPS_BEFORE_LISTING = 4;
/** What GETXATTR gets: flists record no extended attributes. */
const NO_XATTR = Errno.ENODATA;
const W_OK = 2;
const BLKSIZE = 65536;

interface Dir {
  list: Inode[];
  byName: Map<string, Inode>;
}

interface FileBlocks {
  node: Inode;
  blocks: BlockRow[];
}

interface Handle {
  file: FileBlocks;
  /** The furthest block this open file's sequential reader has reached. */
  lastBlock: number;
}

/** A Map used as an LRU cache with a bound on entries. */
class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }
  delete(k: K): void {
    this.map.delete(k);
  }
  set(k: K, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size > this.max) this.map.delete(this.map.keys().next().value!);
  }
}

function toAttr(n: Inode): Attr {
  return { ino: n.ino, size: n.size, mtime: n.mtime, ctime: n.ctime, mode: n.mode, nlink: 1, uid: n.uid, gid: n.gid, rdev: n.rdev, blksize: BLKSIZE };
}

/** A LOOKUP reply; a miss is a cacheable negative entry (node id 0): the tree never changes. */
function entryReply(n: Inode | null): Buffer {
  const out = replyBuffer(ENTRY_OUT);
  putEntry(new DataView(out.buffer, out.byteOffset + OUT_HEADER), 0, n ? toAttr(n) : null, TTL_SECS);
  return out;
}

function attrReply(n: Inode): Buffer {
  const out = replyBuffer(ATTR_OUT);
  const dv = new DataView(out.buffer, out.byteOffset + OUT_HEADER);
  setU64(dv, 0, TTL_SECS);
  putAttr(dv, 16, toAttr(n));
  return out;
}

function cstring(body: DataView, off = 0): string {
  const bytes = new Uint8Array(body.buffer, body.byteOffset + off, body.byteLength - off);
  const end = bytes.indexOf(0);
  return Buffer.from(bytes.buffer, bytes.byteOffset, end < 0 ? bytes.length : end).toString("utf8");
}

export interface FlistFsOptions {
  /** Blocks fetched ahead of a sequential reader. */
  readAheadBlocks?: number;
}

export class FlistFs implements FuseHandler {
  private readonly dirs = new Lru<number, Dir>(4096);
  /** Lookups answered by a query, by directory, until its listing is loaded. */
  private readonly unlistedLookups = new Lru<number, number>(4096);
  private readonly inodes = new Lru<number, Inode>(200_000);
  private readonly files = new Lru<number, FileBlocks>(1024);
  /** Read state of open files, by handle; dropped on RELEASE (bounded too: RELEASEs arrive in batches). */
  private readonly handles = new Lru<number, Handle>(4096);
  private readonly readAhead: number;
  private readonly totals: { bytes: number; entries: number };

  constructor(
    readonly flist: Flist,
    readonly fetcher: BlockFetcher,
    opts: FlistFsOptions = {},
  ) {
    this.readAhead = opts.readAheadBlocks ?? 16;
    const t = flist.db.query(`SELECT count(*) AS n, coalesce(sum(CASE WHEN (mode & ${S_IFMT}) = ${S_IFREG} THEN size ELSE 0 END), 0) AS b FROM inode`).get() as { n: number; b: number };
    this.totals = { bytes: Number(t.b), entries: Number(t.n) };
  }

  private node(ino: number): Inode | null {
    let n = this.inodes.get(ino);
    if (!n) {
      n = this.flist.inode(ino) ?? undefined;
      if (n) this.inodes.set(ino, n);
    }
    return n ?? null;
  }

  /**
   * A directory's entry by name (null when missing; undefined when `parent` is no directory). The
   * first few lookups in a directory whose listing is not loaded are one indexed query each: a
   * container's exec looks up a couple of names in /bin and /lib, and loading a listing of
   * hundreds of entries for that cost more than the start's other FUSE requests together. A
   * directory asked more often is loaded whole, so a lookup-heavy workload stays O(1) per name.
   */
  private child(parent: number, name: string): Inode | null | undefined {
    let d = this.dirs.get(parent);
    if (!d) {
      const asked = (this.unlistedLookups.get(parent) ?? 0) + 1;
      if (asked <= LOOKUPS_BEFORE_LISTING) {
        const p = this.node(parent);
        if (!p || (p.mode & S_IFMT) !== S_IFDIR) return undefined;
        this.unlistedLookups.set(parent, asked);
        const c = this.flist.lookup(parent, name);
        if (c) this.inodes.set(c.ino, c);
        return c;
      }
      const loaded = this.dir(parent);
      if (!loaded) return undefined;
      d = loaded;
    }
    return d.byName.get(name) ?? null;
  }

  private dir(ino: number): Dir | null {
    let d = this.dirs.get(ino);
    if (d) return d;
    const n = this.node(ino);
    if (!n || (n.mode & S_IFMT) !== S_IFDIR) return null;
    const list = this.flist.children(ino);
    d = { list, byName: new Map(list.map((c) => [c.name, c])) };
    for (const c of list) this.inodes.set(c.ino, c);
    this.dirs.set(ino, d);
    return d;
  }

  /**
   * The flist's record of a path relative to the root ("etc/hosts"; "" is the root), symlinks not
   * followed; null when missing. Asked of the flist in this process, not through the mount.
   */
  entry(path: string): Inode | null {
    let n = this.node(ROOT_INO);
    for (const name of path.split("/").filter(Boolean)) {
      n = this.child(n!.ino, name) ?? null;
      if (!n) return null;
    }
    return n;
  }

  handle(req: Request): Reply | Promise<Reply> {
    const { h, body } = req;
    switch (h.opcode) {
      case Op.LOOKUP: {
        const child = this.child(h.nodeid, cstring(body));
        if (child === undefined) return this.node(h.nodeid) ? Errno.ENOTDIR : Errno.ENOENT;
        return entryReply(child);
      }
      case Op.FORGET:
      case Op.BATCH_FORGET:
        return null;
      case Op.GETATTR: {
        const n = this.node(h.nodeid);
        return n ? attrReply(n) : Errno.ENOENT;
      }
      case Op.READLINK: {
        const target = this.flist.target(h.nodeid);
        if (!target) return Errno.EINVAL;
        const out = replyBuffer(target.length);
        out.set(target, OUT_HEADER);
        return out;
      }
      case Op.READ:
        return this.read(getU64(body, 0), h.nodeid, getU64(body, 8), body.getUint32(16, true), req.signal);
      case Op.READDIR:
      case Op.READDIRPLUS:
        return this.readdir(h.nodeid, getU64(body, 8), body.getUint32(16, true), h.opcode === Op.READDIRPLUS);
      case Op.FLUSH:
        return Errno.ENOSYS; // nothing is ever written: the kernel stops sending FLUSH on every close
      case Op.FSYNC:
      case Op.FSYNCDIR:
        return replyBuffer(0);
      case Op.STATFS:
        return this.statfs();
      case Op.GETXATTR:
        return NO_XATTR;
      case Op.LISTXATTR: {
        const size = body.getUint32(0, true);
        if (size !== 0) return replyBuffer(0);
        return replyBuffer(8); // fuse_getxattr_out { size: 0 }
      }
      case Op.ACCESS:
        return body.getUint32(0, true) & W_OK ? Errno.EROFS : replyBuffer(0);
      default:
        return WRITE_OPS.has(h.opcode) ? Errno.EROFS : Errno.ENOSYS;
    }
  }

  /**
   * The root's attributes and entries, STATFS and GETXATTR, for the
   * reader threads to answer alone: the first requests of every new mount, and the ones overlayfs
   * and a container's start send most (the kernel looks up /proc, /dev, /etc, /bin... in the lower).
   */
  fixedReplies(): FixedReplies {
    const root = this.dir(ROOT_INO)!;
    const names = new Map(root.list.map((c) => [c.name, entryReply(c)] as [string, Uint8Array]));
    return {
      // the root's children are known to the kernel by LOOKUP, whose entries carry their attributes
      attrs: new Map([[ROOT_INO, attrReply(this.node(ROOT_INO)!)]]),
      entries: new Map([[ROOT_INO, names]]),
      missing: entryReply(null),
      byOpcode: new Map<number, Uint8Array | number>([[Op.STATFS, this.statfs()], [Op.GETXATTR, NO_XATTR]]),
    };
  }

  released(fhs: number[]): void {
    for (const fh of fhs) this.handles.delete(fh);
  }

  /** A regular file's block list, by inode (shared by every handle on it). */
  private file(ino: number): FileBlocks | null {
    let f = this.files.get(ino);
    if (f) return f;
    const node = this.node(ino);
    if (!node || (node.mode & S_IFMT) !== S_IFREG) return null;
    f = { node, blocks: this.flist.blocks(ino) };
    this.files.set(ino, f);
    return f;
  }

  /** The read state of an open file, made on its first READ. */
  private openFile(fh: number, ino: number): Handle | null {
    let h = this.handles.get(fh);
    if (h && h.file.node.ino === ino) return h;
    const file = this.file(ino);
    if (!file) return null;
    h = { file, lastBlock: -1 };
    this.handles.set(fh, h);
    return h;
  }

  private read(fh: number, ino: number, offset: number, size: number, signal: AbortSignal): Reply | Promise<Reply> {
    const handle = this.openFile(fh, ino);
    if (!handle) return Errno.EINVAL;
    const f = handle.file;
    const end = Math.min(offset + size, f.node.size);
    if (offset >= end) return replyBuffer(0);
    const first = Math.floor(offset / BLOCK_SIZE);
    const last = Math.floor((end - 1) / BLOCK_SIZE);
    // The kernel's read-ahead sends several requests at once, slightly out of order: a read that
    // starts near where the last one was counts as sequential.
    const sequential = first <= handle.lastBlock + 1 && first >= handle.lastBlock - 4;
    handle.lastBlock = sequential ? Math.max(last, handle.lastBlock) : last;
    if (sequential) {
      for (let i = last + 1; i <= last + this.readAhead && i < f.blocks.length; i++) this.fetcher.prefetch(f.blocks[i]);
    }
    // The reply is the blocks' own bytes in pieces, written with one writev: no copy into a reply buffer.
    const pieces: Uint8Array[] = new Array(last - first + 1);
    const piece = (i: number, data: Uint8Array) => {
      const blockStart = i * BLOCK_SIZE;
      pieces[i - first] = data.subarray(Math.max(offset, blockStart) - blockStart, Math.min(end, blockStart + data.length) - blockStart);
    };
    const expected = (i: number) => Math.min(BLOCK_SIZE, f.node.size - i * BLOCK_SIZE);
    let missing: number[] | null = null;
    for (let i = first; i <= last; i++) {
      const ref = f.blocks[i];
      if (!ref) {
        console.error(`zflist: inode ${f.node.ino}: ${f.node.size}-byte file has only ${f.blocks.length} blocks`);
        return Errno.EIO;
      }
      const data = this.fetcher.local(ref);
      if (data && data.length === expected(i)) piece(i, data);
      else (missing ??= []).push(i);
    }
    if (!missing) return pieces;
    const need = missing;
    return Promise.all(need.map((i) => this.fetcher.get(f.blocks[i], expected(i), signal))).then((datas) => {
      datas.forEach((d, k) => piece(need[k], d));
      return pieces;
    });
  }

  private readdir(ino: number, offset: number, size: number, plus: boolean): Reply {
    const d = this.dir(ino);
    if (!d) return Errno.ENOTDIR;
    const self = this.node(ino)!;
    const parent = ino === ROOT_INO ? self : (this.node(self.parent) ?? self);
    const out = Buffer.alloc(OUT_HEADER + size);
    const dv = new DataView(out.buffer, out.byteOffset + OUT_HEADER, size);
    let pos = 0;
    for (let i = offset; i < d.list.length + 2; i++) {
      const dot = i < 2;
      const n = i === 0 ? self : i === 1 ? parent : d.list[i - 2];
      const name = i === 0 ? "." : i === 1 ? ".." : n.name;
      const nameLen = Buffer.byteLength(name);
      const len = direntSize(nameLen, plus);
      if (pos + len > size) break;
      let at = pos;
      if (plus) {
        // "." and ".." carry no entry: the kernel skips them, and a node id 0 says "no attributes".
        putEntry(dv, at, dot ? null : toAttr(n), TTL_SECS);
        at += ENTRY_OUT;
      }
      setU64(dv, at, n.ino);
      setU64(dv, at + 8, i + 1);
      dv.setUint32(at + 16, nameLen, true);
      dv.setUint32(at + 20, (n.mode & S_IFMT) >> 12, true);
      out.write(name, OUT_HEADER + at + 24, "utf8");
      pos += len;
    }
    return out.subarray(0, OUT_HEADER + pos);
  }

  private statfs(): Buffer {
    const out = replyBuffer(80);
    const dv = new DataView(out.buffer, out.byteOffset + OUT_HEADER);
    setU64(dv, 0, Math.ceil(this.totals.bytes / 4096));
    setU64(dv, 24, this.totals.entries);
    dv.setUint32(40, 4096, true); // bsize
    dv.setUint32(44, 255, true); // namelen
    dv.setUint32(48, 4096, true); // frsize
    return out;
  }
}
