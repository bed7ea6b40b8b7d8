// One zdb namespace: its append-only data files, its index files and the in-memory index replayed
// from them. Formats: format.ts and FORMAT.md.
//
// Writes are positional (pwrite at the tracked end of the active file): a write that fails half way
// (ENOSPC, EIO) is cut back with ftruncate, so the files never hold a partial entry that a later
// entry would follow. A client is answered only after both the entry and its index record were
// written, so kill -9 loses nothing acknowledged (the bytes are in the page cache); durability
// against power loss follows the fsync policy.
// Once an fsync has put a range of a data file on disk and newer data has pushed it out of the
// newest 64 MiB, its pages are dropped from the page cache (drop-behind.ts).
//
// Recovery at open, per file id in order: the index file is read up to its first torn or damaged
// record. For the newest file the index is then reconciled with the data file: index records that
// point past the end of the data are dropped, and complete entries in the data beyond the last
// indexed one are checked (CRC32C) and re-indexed; the first incomplete or failing entry and
// everything after it is cut off (a torn tail). A missing or damaged index file is rebuilt from its
// data file. Every GET verifies the payload's CRC32C, so damaged bytes are reported, never served.
import * as fs from "node:fs";
import { join } from "node:path";
import { crc32c } from "../../native/index.ts";
import { DropBehind, KEEP_CACHED } from "./drop-behind.ts";
import { Preallocation } from "./preallocation.ts";
import { ZdbError } from "./errors.ts";
import {
  DATA_MAGIC,
  ENTRY_HEADER_SIZE,
  FILE_HEADER_SIZE,
  FLAG_DELETED,
  INDEX_MAGIC,
  INDEX_RECORD_HEADER_SIZE,
  MAX_KEY_LENGTH,
  dataFileName,
  decodeEntryHeader,
  decodeIndexRecord,
  encodeEntryHeader,
  encodeFileHeader,
  encodeIndexRecord,
  entryLength,
  fileIdOf,
  indexFileName,
  isFileHeader,
  type EntryMeta,
} from "./format.ts";

export type FsyncPolicy = "always" | "everysec" | "never";
export type NamespaceMode = "user" | "seq";

export interface NamespaceSettings {
  password: string | null;
  /** With a password set: public namespaces are readable without it, writable only with it. */
  public: boolean;
  /** Live bytes (keys + values) allowed; 0 = unlimited. */
  maxsize: number;
  mode: NamespaceMode;
  /** Write once, read many: no overwrite, no delete. */
  worm: boolean;
}

export interface StorageConfig {
  dataRoot: string;
  indexRoot: string;
  /** A data file is closed and a new one started before it would grow past this many bytes. */
  datasize: number;
  fsync: FsyncPolicy;
  /** Newest data bytes of a namespace kept in the page cache once durable; default KEEP_CACHED (drop-behind.ts). */
  keepCached?: number;
}

/** Where the live value of a key is. */
export interface Entry {
  readonly key: string; // latin1: one char per key byte
  readonly file: number;
  readonly offset: number;
  readonly klen: number;
  readonly size: number;
  readonly timestamp: number;
  readonly crc: number;
  live: boolean;
}

export interface CompactionResult {
  files: number;
  copiedEntries: number;
  reclaimedBytes: number;
}

interface ActiveFile {
  id: number;
  dataFd: number;
  indexFd: number;
  dataSize: number;
  indexSize: number;
  previous: number;
}

const SETTINGS_FILE = "namespace.json";
const defaultSettings: NamespaceSettings = { password: null, public: true, maxsize: 0, mode: "user", worm: false };
/** Compaction gives the event loop back after copying this many bytes, so reads keep flowing. */
const COMPACTION_SLICE = 1024 * 1024;

function now(): number {
  return Math.floor(Date.now() / 1000);
}

function ioError(err: unknown, what: string): ZdbError {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOSPC" || code === "EDQUOT") return new ZdbError("full", "No space left on device", { cause: err });
  return new ZdbError("io", `I/O error while ${what}: ${(err as Error).message}`, { cause: err });
}

function fileSize(fd: number): number {
  return fs.fstatSync(fd).size;
}

export function isValidNamespaceName(name: string): boolean {
  return /^[A-Za-z0-9_.-]{1,128}$/.test(name) && name !== "." && name !== "..";
}

export class Namespace {
  readonly entries = new Map<string, Entry>();
  /** Every entry in write order (file, offset); dead ones stay until pruned. SCAN walks this. */
  private log: Entry[] = [];
  private deadInLog = 0;
  usedBytes = 0;
  settings: NamespaceSettings;
  private active!: ActiveFile;
  private readonly readers = new Map<number, number>(); // sealed file id -> data fd
  private dirty = false;
  private syncing = false;
  private nextSeq = 0;
  private compaction: Promise<CompactionResult> | null = null;
  closed = false;
  private readonly headerScratch = Buffer.allocUnsafe(ENTRY_HEADER_SIZE + MAX_KEY_LENGTH);
  private readonly recordScratch = Buffer.allocUnsafe(INDEX_RECORD_HEADER_SIZE + MAX_KEY_LENGTH);
  private readonly dataDir: string;
  private readonly indexDir: string;
  private readonly dropBehind: DropBehind;
  private readonly preallocation: Preallocation;

  private constructor(readonly name: string, private readonly cfg: StorageConfig) {
    this.dropBehind = new DropBehind(cfg.keepCached ?? KEEP_CACHED);
    this.preallocation = new Preallocation(cfg.datasize);
    this.dataDir = join(cfg.dataRoot, name);
    this.indexDir = join(cfg.indexRoot, name);
    this.settings = { ...defaultSettings };
  }

  /** Opens (replaying its files) or creates a namespace. */
  static open(name: string, cfg: StorageConfig): Namespace {
    const ns = new Namespace(name, cfg);
    ns.load();
    return ns;
  }

  // ---- recovery ----

  private load(): void {
    fs.mkdirSync(this.dataDir, { recursive: true });
    fs.mkdirSync(this.indexDir, { recursive: true });
    const settingsPath = join(this.indexDir, SETTINGS_FILE);
    if (fs.existsSync(settingsPath)) this.settings = { ...defaultSettings, ...JSON.parse(fs.readFileSync(settingsPath, "utf8")) };
    else this.saveSettings();

    const ids = new Set<number>();
    for (const n of fs.readdirSync(this.dataDir)) {
      const id = fileIdOf(n, "d");
      if (id !== null) ids.add(id);
    }
    const sorted = [...ids].sort((a, b) => a - b);
    for (const n of fs.readdirSync(this.indexDir)) {
      const id = fileIdOf(n, "i");
      // An index whose data file is gone describes nothing that can be read.
      if (id !== null && !ids.has(id)) fs.rmSync(join(this.indexDir, n));
    }
    if (sorted.length === 0) {
      this.active = this.createFiles(0);
      return;
    }
    for (let i = 0; i < sorted.length; i++) this.loadFile(sorted[i], i === sorted.length - 1);
  }

  private loadFile(id: number, newest: boolean): void {
    const dataPath = join(this.dataDir, dataFileName(id));
    const indexPath = join(this.indexDir, indexFileName(id));
    const dataFd = fs.openSync(dataPath, newest ? "r+" : "r");
    let dataSize = fileSize(dataFd);
    const head = Buffer.alloc(FILE_HEADER_SIZE);
    fs.readSync(dataFd, head, 0, FILE_HEADER_SIZE, 0);
    if (!isFileHeader(head, DATA_MAGIC, id)) {
      if (newest && dataSize <= FILE_HEADER_SIZE) {
        // Torn while being created: start it again.
        fs.closeSync(dataFd);
        fs.rmSync(dataPath);
        fs.rmSync(indexPath, { force: true });
        this.active = this.createFiles(id);
        return;
      }
      fs.closeSync(dataFd);
      throw new ZdbError("corrupt", `namespace ${this.name}: ${dataPath} does not start with a valid data file header`);
    }

    let records = this.readIndex(indexPath, id);
    let indexFd: number;
    if (records === null || (!newest && records.torn)) {
      // Missing or damaged index: the data file is the truth.
      records = { list: this.scanData(dataFd, FILE_HEADER_SIZE, dataSize), end: 0, torn: false };
      indexFd = this.writeIndexFile(indexPath, id, records.list);
    } else {
      indexFd = fs.openSync(indexPath, newest ? "r+" : "r");
      if (records.torn) fs.ftruncateSync(indexFd, records.end);
    }
    const list = records.list;

    if (newest) {
      let expectedEnd = FILE_HEADER_SIZE;
      let keep = list.length;
      while (keep > 0) {
        const r = list[keep - 1];
        const end = r.offset + entryLength(r.key.length, r.size);
        if (end <= dataSize) {
          expectedEnd = end;
          break;
        }
        keep--;
      }
      if (keep < list.length) {
        list.length = keep;
        fs.ftruncateSync(indexFd, FILE_HEADER_SIZE + list.reduce((s, r) => s + INDEX_RECORD_HEADER_SIZE + r.key.length, 0));
      }
      let indexSize = fileSize(indexFd);
      if (dataSize > expectedEnd) {
        const tail = this.scanData(dataFd, expectedEnd, dataSize);
        for (const r of tail) {
          const n = encodeIndexRecord(this.recordScratch, r);
          fs.writeSync(indexFd, this.recordScratch, 0, n, indexSize);
          indexSize += n;
          list.push(r);
        }
        const end = tail.length ? tail[tail.length - 1].offset + entryLength(tail[tail.length - 1].key.length, tail[tail.length - 1].size) : expectedEnd;
        if (end < dataSize) {
          fs.ftruncateSync(dataFd, end);
          dataSize = end;
        }
      }
      this.active = {
        id,
        dataFd,
        indexFd,
        dataSize,
        indexSize,
        previous: list.length ? list[list.length - 1].offset : 0,
      };
      this.dropBehind.start();
      this.preallocation.reset(dataSize);
    } else {
      fs.closeSync(indexFd);
      this.readers.set(id, dataFd);
    }
    for (const r of list) this.apply(id, r);
  }

  /** Reads an index file; null when it is missing or has no valid header. */
  private readIndex(path: string, id: number): { list: EntryMeta[]; end: number; torn: boolean } | null {
    let b: Buffer;
    try {
      b = fs.readFileSync(path);
    } catch {
      return null;
    }
    if (!isFileHeader(b, INDEX_MAGIC, id)) return null;
    const list: EntryMeta[] = [];
    let at = FILE_HEADER_SIZE;
    for (;;) {
      const r = decodeIndexRecord(b, at);
      if (r === null) break;
      list.push(r);
      at += r.length;
    }
    return { list, end: at, torn: at !== b.length };
  }

  /** Reads entries from a data file, stopping at the first one that is incomplete or fails its CRC. */
  private scanData(fd: number, from: number, size: number): EntryMeta[] {
    const out: EntryMeta[] = [];
    const hdr = Buffer.allocUnsafe(ENTRY_HEADER_SIZE);
    let pos = from;
    while (pos + ENTRY_HEADER_SIZE <= size) {
      if (fs.readSync(fd, hdr, 0, ENTRY_HEADER_SIZE, pos) !== ENTRY_HEADER_SIZE) break;
      const h = decodeEntryHeader(hdr);
      const len = entryLength(h.keyLength, h.size);
      // No entry has an empty key (put refuses one), and zeroed bytes pass the CRC (crc32c of no
      // bytes is 0): a tail the file's size covers but whose blocks never reached the disk.
      if (h.keyLength === 0 || pos + len > size || (h.flags & ~FLAG_DELETED) !== 0) break;
      if (h.flags & FLAG_DELETED && h.size !== 0) break;
      const body = Buffer.allocUnsafe(h.keyLength + h.size);
      if (fs.readSync(fd, body, 0, body.length, pos + ENTRY_HEADER_SIZE) !== body.length) break;
      if (crc32c(body.subarray(h.keyLength)) >>> 0 !== h.crc) break;
      out.push({ key: body.subarray(0, h.keyLength), flags: h.flags, offset: pos, size: h.size, timestamp: h.timestamp, crc: h.crc });
      pos += len;
    }
    return out;
  }

  private writeIndexFile(path: string, id: number, list: EntryMeta[]): number {
    const fd = fs.openSync(path, "w+");
    let at = 0;
    at += fs.writeSync(fd, encodeFileHeader(INDEX_MAGIC, id, now()), 0, FILE_HEADER_SIZE, 0);
    for (const r of list) {
      const n = encodeIndexRecord(this.recordScratch, r);
      at += fs.writeSync(fd, this.recordScratch, 0, n, at);
    }
    return fd;
  }

  private apply(file: number, r: EntryMeta): void {
    const key = Buffer.from(r.key.buffer, r.key.byteOffset, r.key.length).toString("latin1");
    this.retire(key);
    if (this.settings.mode === "seq" && r.key.length === 8) {
      this.nextSeq = Math.max(this.nextSeq, Number(Buffer.from(r.key.buffer, r.key.byteOffset, 8).readBigUInt64LE(0)) + 1);
    }
    if (r.flags & FLAG_DELETED) return;
    this.track({ key, file, offset: r.offset, klen: r.key.length, size: r.size, timestamp: r.timestamp, crc: r.crc, live: true });
  }

  private retire(key: string): void {
    const old = this.entries.get(key);
    if (old === undefined) return;
    old.live = false;
    this.deadInLog++;
    this.usedBytes -= old.klen + old.size;
    this.entries.delete(key);
  }

  private track(e: Entry): void {
    this.entries.set(e.key, e);
    this.log.push(e);
    this.usedBytes += e.klen + e.size;
    if (this.deadInLog > 1024 && this.deadInLog > this.log.length / 2 && this.compaction === null) {
      this.log = this.log.filter((x) => x.live);
      this.deadInLog = 0;
    }
  }

  // ---- files ----

  private createFiles(id: number): ActiveFile {
    const dataPath = join(this.dataDir, dataFileName(id));
    const indexPath = join(this.indexDir, indexFileName(id));
    let dataFd = -1;
    let indexFd = -1;
    try {
      dataFd = fs.openSync(dataPath, "wx+");
      indexFd = fs.openSync(indexPath, "w+");
      const t = now();
      if (fs.writeSync(dataFd, encodeFileHeader(DATA_MAGIC, id, t), 0, FILE_HEADER_SIZE, 0) !== FILE_HEADER_SIZE) throw Object.assign(new Error("short write"), { code: "ENOSPC" });
      if (fs.writeSync(indexFd, encodeFileHeader(INDEX_MAGIC, id, t), 0, FILE_HEADER_SIZE, 0) !== FILE_HEADER_SIZE) throw Object.assign(new Error("short write"), { code: "ENOSPC" });
      this.dropBehind.start();
      this.preallocation.reset(FILE_HEADER_SIZE);
      return { id, dataFd, indexFd, dataSize: FILE_HEADER_SIZE, indexSize: FILE_HEADER_SIZE, previous: 0 };
    } catch (err) {
      if (dataFd >= 0) fs.closeSync(dataFd);
      if (indexFd >= 0) fs.closeSync(indexFd);
      fs.rmSync(dataPath, { force: true });
      fs.rmSync(indexPath, { force: true });
      throw ioError(err, `creating data file ${dataFileName(id)} of namespace ${this.name}`);
    }
  }

  /** Seals the active file (it stays open for reads) and starts the next one. */
  private rollover(): void {
    const old = this.active;
    this.preallocation.release(old.dataFd, old.dataSize);
    this.active = this.createFiles(old.id + 1);
    this.readers.set(old.id, old.dataFd);
    if (this.cfg.fsync === "never") fs.closeSync(old.indexFd);
    else {
      const sealed = this.dropBehind.seal(old.dataFd, old.dataSize);
      fs.fsync(old.dataFd, (err) => sealed(!err));
      fs.fsync(old.indexFd, () => fs.close(old.indexFd, () => {}));
    }
  }

  private fdOf(file: number): number {
    return file === this.active.id ? this.active.dataFd : this.readers.get(file)!;
  }

  /**
   * Appends one entry and its index record; returns the entry's offset. On failure both files are
   * cut back to where they were, so nothing is half written.
   */
  private append(key: Uint8Array, flags: number, value: Uint8Array | null, size: number, timestamp: number, crc: number): number {
    if (this.active.dataSize + entryLength(key.length, size) > this.cfg.datasize && this.active.dataSize > FILE_HEADER_SIZE) this.rollover();
    const a = this.active;
    const offset = a.dataSize;
    const meta: EntryMeta = { key, flags, offset, size, timestamp, crc };
    const hlen = encodeEntryHeader(this.headerScratch, meta, a.previous);
    const rlen = encodeIndexRecord(this.recordScratch, meta);
    this.preallocation.reserve(a.dataFd, offset, offset + hlen + size);
    try {
      const n = value !== null && size > 0
        ? fs.writevSync(a.dataFd, [this.headerScratch.subarray(0, hlen), value], offset)
        : fs.writeSync(a.dataFd, this.headerScratch, 0, hlen, offset);
      if (n !== hlen + size) throw Object.assign(new Error(`short write of ${n} of ${hlen + size} bytes`), { code: "ENOSPC" });
      const m = fs.writeSync(a.indexFd, this.recordScratch, 0, rlen, a.indexSize);
      if (m !== rlen) throw Object.assign(new Error(`short write of ${m} of ${rlen} bytes`), { code: "ENOSPC" });
    } catch (err) {
      this.preallocation.reset(offset);
      try {
        fs.ftruncateSync(a.dataFd, offset);
        fs.ftruncateSync(a.indexFd, a.indexSize);
      } catch {
        // The original error says what went wrong; recovery at restart cuts any partial tail.
      }
      throw ioError(err, `writing to namespace ${this.name}`);
    }
    a.dataSize += hlen + size;
    a.indexSize += rlen;
    a.previous = offset;
    this.dirty = true;
    return offset;
  }

  // ---- operations ----

  lookup(key: string): Entry | undefined {
    return this.entries.get(key);
  }

  /**
   * Stores value under key (user mode) or under a new or existing 8-byte id (seq mode).
   * Returns the key it was stored under, or null when the stored value was already identical.
   */
  put(keyBytes: Uint8Array, value: Uint8Array): Uint8Array | null {
    let key = keyBytes;
    if (this.settings.mode === "seq") {
      if (key.length === 0) {
        key = Buffer.alloc(8);
        (key as Buffer).writeBigUInt64LE(BigInt(this.nextSeq));
      } else if (key.length !== 8) throw new ZdbError("arguments", "Invalid key: a sequential namespace takes an empty key or an 8-byte id");
    } else if (key.length === 0) throw new ZdbError("arguments", "Invalid key: empty");
    const keyStr = Buffer.from(key.buffer, key.byteOffset, key.length).toString("latin1");
    const old = this.entries.get(keyStr);
    if (this.settings.mode === "seq" && keyBytes.length === 8 && old === undefined) throw new ZdbError("not-found", "Key not found: a sequential namespace only updates ids it handed out");
    const crc = crc32c(value) >>> 0;
    if (old !== undefined) {
      if (this.settings.worm) throw new ZdbError("read-only", "Namespace is in worm mode: keys cannot be overwritten");
      if (old.size === value.length && old.crc === crc && this.sameBytes(old, value)) return null;
    }
    if (this.settings.maxsize > 0 && this.usedBytes - (old ? old.klen + old.size : 0) + key.length + value.length > this.settings.maxsize) {
      throw new ZdbError("full", "No space left on this namespace (maxsize reached)");
    }
    const timestamp = now();
    const offset = this.append(key, 0, value, value.length, timestamp, crc);
    if (this.settings.mode === "seq" && keyBytes.length === 0) this.nextSeq++;
    this.retire(keyStr);
    this.track({ key: keyStr, file: this.active.id, offset, klen: key.length, size: value.length, timestamp, crc, live: true });
    return key;
  }

  /**
   * Stores a run of values, as put() would one after the other, with one data write and one index
   * write for the whole run: at small values the two syscalls per entry cost more than the bytes.
   * Each entry is planned against the namespace plus the entries planned before it (overwrites,
   * unchanged values, maxsize), written, and only then applied to the in-memory index; if the
   * write fails the files are cut back and the entries go through put() one by one, so each gets
   * exactly the answer (stored, or its own error) it would have had alone. Sequential
   * namespaces, and a run that would start a new data file, take put() per entry.
   * Returns per entry what put() returns, or the ZdbError it throws.
   */
  putMany(items: { key: Uint8Array; value: Uint8Array }[]): (Uint8Array | null | ZdbError)[] {
    const results: (Uint8Array | null | ZdbError)[] = [];
    const one = (i: number) => {
      try {
        results[i] = this.put(items[i].key, items[i].value);
      } catch (err) {
        if (!(err instanceof ZdbError)) throw err;
        results[i] = err;
      }
    };
    if (items.length < 2 || this.settings.mode === "seq") {
      for (let i = 0; i < items.length; i++) one(i);
      return results;
    }
    const a = this.active;
    const planned: { item: number; keyStr: string; crc: number; offset: number }[] = [];
    // What this run has stored so far, by key: overrides the index while planning.
    const overlay = new Map<string, { size: number; klen: number; crc: number; value: Uint8Array }>();
    let used = this.usedBytes;
    let end = a.dataSize;
    let i = 0;
    for (; i < items.length; i++) {
      const { key, value } = items[i];
      if (key.length === 0) {
        results[i] = new ZdbError("arguments", "Invalid key: empty");
        continue;
      }
      const len = entryLength(key.length, value.length);
      if (end + len > this.cfg.datasize && end > FILE_HEADER_SIZE) break; // the rest starts a new file
      const keyStr = Buffer.from(key.buffer, key.byteOffset, key.length).toString("latin1");
      const crc = crc32c(value) >>> 0;
      const pending = overlay.get(keyStr);
      const old = pending ?? this.entries.get(keyStr);
      if (old !== undefined) {
        if (this.settings.worm) {
          results[i] = new ZdbError("read-only", "Namespace is in worm mode: keys cannot be overwritten");
          continue;
        }
        if (old.size === value.length && old.crc === crc) {
          const same = pending ? Buffer.from(pending.value.buffer, pending.value.byteOffset, pending.value.length).equals(value) : this.sameBytes(old as Entry, value);
          if (same) {
            results[i] = null;
            continue;
          }
        }
      }
      const next = used - (old ? old.klen + old.size : 0) + key.length + value.length;
      if (this.settings.maxsize > 0 && next > this.settings.maxsize) {
        results[i] = new ZdbError("full", "No space left on this namespace (maxsize reached)");
        continue;
      }
      used = next;
      overlay.set(keyStr, { size: value.length, klen: key.length, crc, value });
      planned.push({ item: i, keyStr, crc, offset: end });
      results[i] = key;
      end += len;
    }
    if (planned.length > 0 && !this.appendRun(planned.map((p) => ({ key: items[p.item].key, keyStr: p.keyStr, value: items[p.item].value, crc: p.crc, offset: p.offset })))) {
      // Entries after the first planned one were judged against a run that did not happen
      // (an identical value "already stored", room under maxsize): judge them all again.
      for (let j = planned[0].item; j < i; j++) one(j);
    }
    for (; i < items.length; i++) one(i);
    return results;
  }

  /**
   * Writes planned entries (offsets already assigned from the active file's end, in order) with
   * one pwritev and one index write, and applies them to the index. False when a write failed; the
   * files are then cut back as they were and nothing was applied.
   */
  private appendRun(run: { key: Uint8Array; keyStr: string; value: Uint8Array; crc: number; offset: number }[]): boolean {
    const a = this.active;
    const timestamp = now();
    let headerBytes = 0;
    for (const r of run) headerBytes += ENTRY_HEADER_SIZE + r.key.length;
    const headers = Buffer.allocUnsafe(headerBytes);
    const records = Buffer.allocUnsafe(headerBytes + run.length * (INDEX_RECORD_HEADER_SIZE - ENTRY_HEADER_SIZE));
    const iov: Uint8Array[] = [];
    let h = 0;
    let rlen = 0;
    let previous = a.previous;
    for (const r of run) {
      const meta: EntryMeta = { key: r.key, flags: 0, offset: r.offset, size: r.value.length, timestamp, crc: r.crc };
      const n = encodeEntryHeader(headers.subarray(h), meta, previous);
      iov.push(headers.subarray(h, h + n));
      if (r.value.length > 0) iov.push(r.value);
      h += n;
      rlen += encodeIndexRecord(records.subarray(rlen), meta);
      previous = r.offset;
    }
    const last = run[run.length - 1];
    const end = last.offset + entryLength(last.key.length, last.value.length);
    this.preallocation.reserve(a.dataFd, a.dataSize, end);
    try {
      // IOV_MAX is 1024 on Linux: the writes are positional, so any split point will do.
      let at = a.dataSize;
      for (let from = 0; from < iov.length; from += 1024) {
        const slice = iov.slice(from, from + 1024);
        const want = slice.reduce((n, b) => n + b.length, 0);
        const n = fs.writevSync(a.dataFd, slice, at);
        if (n !== want) throw Object.assign(new Error(`short write of ${n} of ${want} bytes`), { code: "ENOSPC" });
        at += n;
      }
      const m = fs.writeSync(a.indexFd, records, 0, rlen, a.indexSize);
      if (m !== rlen) throw Object.assign(new Error(`short write of ${m} of ${rlen} bytes`), { code: "ENOSPC" });
    } catch {
      this.preallocation.reset(a.dataSize);
      try {
        fs.ftruncateSync(a.dataFd, a.dataSize);
        fs.ftruncateSync(a.indexFd, a.indexSize);
      } catch {
        // put() per entry reports the error; recovery at restart cuts any partial tail.
      }
      return false;
    }
    a.dataSize = end;
    a.indexSize += rlen;
    a.previous = last.offset;
    this.dirty = true;
    for (const r of run) {
      this.retire(r.keyStr);
      this.track({ key: r.keyStr, file: a.id, offset: r.offset, klen: r.key.length, size: r.value.length, timestamp, crc: r.crc, live: true });
    }
    return true;
  }

  private sameBytes(e: Entry, value: Uint8Array): boolean {
    const b = Buffer.allocUnsafe(e.size);
    return this.readPayload(e, b, 0) && b.equals(value);
  }

  /** Appends a tombstone. Throws not-found when the key is not stored. */
  remove(keyBytes: Uint8Array): void {
    const keyStr = Buffer.from(keyBytes.buffer, keyBytes.byteOffset, keyBytes.length).toString("latin1");
    if (!this.entries.has(keyStr)) throw new ZdbError("not-found", "Key not found");
    if (this.settings.worm) throw new ZdbError("read-only", "Namespace is in worm mode: keys cannot be deleted");
    this.append(keyBytes, FLAG_DELETED, null, 0, now(), 0);
    this.retire(keyStr);
  }

  /** Reads e's payload into target[at..] and verifies its CRC32C; false when it is damaged. */
  readPayload(e: Entry, target: Uint8Array, at: number): boolean {
    if (e.size > 0) {
      let n: number;
      try {
        n = fs.readSync(this.fdOf(e.file), target, at, e.size, e.offset + ENTRY_HEADER_SIZE + e.klen);
      } catch {
        return false;
      }
      if (n !== e.size) return false;
    }
    return crc32c(target.subarray(at, at + e.size)) >>> 0 === e.crc;
  }

  /** Full check of a stored entry: header, key and payload checksum. */
  check(e: Entry): boolean {
    const len = entryLength(e.klen, e.size);
    const b = Buffer.allocUnsafe(len);
    let n: number;
    try {
      n = fs.readSync(this.fdOf(e.file), b, 0, len, e.offset);
    } catch {
      return false;
    }
    if (n !== len) return false;
    const h = decodeEntryHeader(b);
    if (h.keyLength !== e.klen || h.size !== e.size || h.crc !== e.crc || h.flags !== 0 || h.timestamp !== e.timestamp) return false;
    if (b.toString("latin1", ENTRY_HEADER_SIZE, ENTRY_HEADER_SIZE + e.klen) !== e.key) return false;
    return crc32c(b.subarray(ENTRY_HEADER_SIZE + e.klen)) >>> 0 === e.crc;
  }

  /**
   * Up to count live entries after (or, reversed, before) cursor, in write order.
   * A cursor is the hex of (file u32, offset u32): opaque to clients, stable across deletes.
   */
  scan(cursor: string | null, count: number, reverse: boolean): { next: string; entries: Entry[] } {
    let pos: number;
    if (cursor === null) pos = reverse ? this.log.length - 1 : 0;
    else {
      if (!/^[0-9a-f]{16}$/.test(cursor)) throw new ZdbError("arguments", "Invalid cursor");
      const file = parseInt(cursor.slice(0, 8), 16);
      const offset = parseInt(cursor.slice(8), 16);
      // First index whose location is > cursor.
      let lo = 0;
      let hi = this.log.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const e = this.log[mid];
        if (e.file < file || (e.file === file && e.offset <= offset)) lo = mid + 1;
        else hi = mid;
      }
      pos = reverse ? lo - 1 : lo;
      if (reverse && lo > 0 && this.log[lo - 1].file === file && this.log[lo - 1].offset === offset) pos = lo - 2;
    }
    const out: Entry[] = [];
    const step = reverse ? -1 : 1;
    for (; pos >= 0 && pos < this.log.length && out.length < count; pos += step) {
      const e = this.log[pos];
      if (e.live) out.push(e);
    }
    if (out.length === 0) throw new ZdbError("no-more-data", "No more data");
    const last = out[out.length - 1];
    return { next: last.file.toString(16).padStart(8, "0") + last.offset.toString(16).padStart(8, "0"), entries: out };
  }

  get dataFiles(): number {
    return this.readers.size + 1;
  }

  /** Bytes the namespace occupies on disk (data and index files). */
  diskBytes(): number {
    let total = 0;
    for (const dir of new Set([this.dataDir, this.indexDir])) {
      for (const n of fs.readdirSync(dir)) total += fs.statSync(join(dir, n)).size;
    }
    return total;
  }

  setSettings(next: NamespaceSettings): void {
    const prev = this.settings;
    this.settings = next;
    try {
      this.saveSettings();
    } catch (err) {
      this.settings = prev;
      throw ioError(err, `saving settings of namespace ${this.name}`);
    }
  }

  private saveSettings(): void {
    const path = join(this.indexDir, SETTINGS_FILE);
    fs.writeFileSync(`${path}.tmp`, JSON.stringify(this.settings));
    fs.renameSync(`${path}.tmp`, path);
  }

  // ---- durability ----

  /** fsync now if anything was written since the last sync (policy "always"). */
  syncIfDirty(): void {
    if (!this.dirty || this.closed) return;
    this.dirty = false;
    const a = this.active;
    try {
      fs.fsyncSync(a.dataFd);
      fs.fsyncSync(a.indexFd);
    } catch (err) {
      throw ioError(err, `syncing namespace ${this.name}`);
    }
    this.dropBehind.synced(a.dataFd, a.dataSize, a.dataSize);
  }

  /** fsync in the background (policy "everysec"); skipped while the previous one runs. */
  syncInBackground(): void {
    if (!this.dirty || this.syncing || this.closed) return;
    this.dirty = false;
    this.syncing = true;
    const a = this.active;
    const durableEnd = a.dataSize; // what this fsync covers; appends made meanwhile wait for the next
    fs.fsync(a.dataFd, (err) => {
      // A file sealed or closed meanwhile is no longer this one's to drop.
      if (!err && !this.closed && a === this.active) this.dropBehind.synced(a.dataFd, durableEnd, a.dataSize);
      fs.fsync(a.indexFd, () => (this.syncing = false));
    });
  }

  // ---- compaction ----

  /** Reclaims the space of overwritten and deleted entries. Concurrent calls share one run. */
  compact(): Promise<CompactionResult> {
    this.compaction ??= this.runCompaction().finally(() => (this.compaction = null));
    return this.compaction;
  }

  get compacting(): boolean {
    return this.compaction !== null;
  }

  // Live entries of every sealed file are appended again to the active file, in write order,
  // a slice at a time; between slices the event loop serves reads and writes as usual (a key
  // written meanwhile simply is not copied). Each copy keeps its payload bytes and checksum,
  // so a damaged entry stays detectable. Once the copies are synced the sealed files are
  // deleted oldest first, so a crash part way leaves older files whose entries the newer
  // files (copies and tombstones) override at replay.
  private async runCompaction(): Promise<CompactionResult> {
    if (this.active.dataSize > FILE_HEADER_SIZE) this.rollover();
    const sealed = [...this.readers.keys()].sort((a, b) => a - b);
    if (sealed.length === 0) return { files: 0, copiedEntries: 0, reclaimedBytes: 0 };
    const lastSealed = sealed[sealed.length - 1];
    const before = this.diskBytes();
    let copied = 0;
    let sliceBytes = 0;
    for (const e of this.log.slice()) {
      if (this.closed) throw new ZdbError("io", `namespace ${this.name} was deleted during compaction`);
      if (!e.live || e.file > lastSealed) continue;
      const payload = Buffer.alloc(e.size);
      if (e.size > 0) fs.readSync(this.fdOf(e.file), payload, 0, e.size, e.offset + ENTRY_HEADER_SIZE + e.klen);
      const keyBytes = Buffer.from(e.key, "latin1");
      const offset = this.append(keyBytes, 0, payload, e.size, e.timestamp, e.crc);
      this.retire(e.key);
      this.track({ key: e.key, file: this.active.id, offset, klen: e.klen, size: e.size, timestamp: e.timestamp, crc: e.crc, live: true });
      copied++;
      sliceBytes += e.size + e.klen;
      if (sliceBytes >= COMPACTION_SLICE) {
        sliceBytes = 0;
        await new Promise((r) => setImmediate(r));
      }
    }
    if (this.settings.mode === "seq" && this.nextSeq > 0) {
      // Keep the highest id handed out on record even if its entries are gone, so ids are not reused.
      const top = Buffer.alloc(8);
      top.writeBigUInt64LE(BigInt(this.nextSeq - 1));
      if (!this.entries.has(top.toString("latin1"))) this.append(top, FLAG_DELETED, null, 0, now(), 0);
    }
    if (this.cfg.fsync !== "never") {
      this.dirty = true;
      this.syncIfDirty();
      for (const [id, fd] of this.readers) if (id > lastSealed) fs.fsyncSync(fd); // copies in files sealed during the run
    }
    while (this.syncing) await new Promise((r) => setTimeout(r, 5));
    for (const id of sealed) {
      this.dropBehind.forget(this.readers.get(id)!);
      fs.closeSync(this.readers.get(id)!);
      this.readers.delete(id);
      fs.rmSync(join(this.dataDir, dataFileName(id)), { force: true });
      fs.rmSync(join(this.indexDir, indexFileName(id)), { force: true });
    }
    this.log = this.log.filter((x) => x.live);
    this.deadInLog = 0;
    return { files: sealed.length, copiedEntries: copied, reclaimedBytes: Math.max(0, before - this.diskBytes()) };
  }

  // ---- lifecycle ----

  close(): void {
    if (this.closed) return;
    if (this.cfg.fsync !== "never") this.syncIfDirty();
    this.closed = true;
    this.preallocation.release(this.active.dataFd, this.active.dataSize);
    fs.closeSync(this.active.dataFd);
    fs.closeSync(this.active.indexFd);
    for (const fd of this.readers.values()) fs.closeSync(fd);
    this.readers.clear();
    this.dropBehind.clear();
  }

  /** Empties the namespace (FLUSH): every data and index file goes, the settings stay. */
  flush(): void {
    if (this.compaction !== null) throw new ZdbError("denied", "Compaction in progress, try again when it is done");
    fs.closeSync(this.active.dataFd);
    fs.closeSync(this.active.indexFd);
    for (const fd of this.readers.values()) fs.closeSync(fd);
    this.readers.clear();
    this.dropBehind.clear();
    try {
      for (const [dir, prefix] of [[this.dataDir, "d"], [this.indexDir, "i"]] as const) {
        for (const n of fs.readdirSync(dir)) if (fileIdOf(n, prefix) !== null) fs.rmSync(join(dir, n));
      }
      this.entries.clear();
      this.log = [];
      this.deadInLog = 0;
      this.usedBytes = 0;
      this.nextSeq = 0;
      this.dirty = false;
      this.active = this.createFiles(0);
    } catch (err) {
      // The old files' descriptors are closed: refuse everything from here on (sessions check
      // `closed`, and close() then does nothing) rather than write to, truncate or close
      // descriptor numbers the process may since have handed out again.
      this.closed = true;
      throw err;
    }
  }

  /** Closes and deletes every file of the namespace. */
  destroy(): void {
    this.close();
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    fs.rmSync(this.indexDir, { recursive: true, force: true });
  }
}
