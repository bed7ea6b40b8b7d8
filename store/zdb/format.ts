// On-disk format of a zdb namespace (full description in FORMAT.md next to this file).
// All integers little-endian.
//
// Data file  <data>/<ns>/d<NNNNN>:  header "DAT0" u32 version=1, u32 fileId, u32 created (unix s)
//   then entries, each: u8 idlength | u32 datalength | u32 previous | u32 crc32c | u8 flags | u32 timestamp
//                       | key[idlength] | payload[datalength]
//   previous = offset of the previous entry in the same file (0 for the first); crc32c covers the payload;
//   flags bit 0 = tombstone (a delete; datalength 0).
// Index file <index>/<ns>/i<NNNNN>: header "IDX0" u32 version=1, u32 fileId, u32 created
//   then records, each: u8 idlength | u8 flags | u32 offset | u32 datalength | u32 timestamp | u32 crc32c
//                       | u32 reccrc | key[idlength]
//   offset = where the entry starts in d<fileId>; crc32c = the payload's (copied from the entry);
//   reccrc = CRC32C of the record's first 18 bytes followed by the key, so a torn record is recognised.
import { crc32c } from "../../native/index.ts";

export const FORMAT_VERSION = 1;
export const FILE_HEADER_SIZE = 16;
export const DATA_MAGIC = 0x30544144; // "DAT0" read as u32 LE
export const INDEX_MAGIC = 0x30584449; // "IDX0"

export const ENTRY_HEADER_SIZE = 18;
export const INDEX_RECORD_HEADER_SIZE = 22;
export const FLAG_DELETED = 1;

export const MAX_KEY_LENGTH = 255;

export function dataFileName(fileId: number): string {
  return `d${String(fileId).padStart(5, "0")}`;
}

export function indexFileName(fileId: number): string {
  return `i${String(fileId).padStart(5, "0")}`;
}

/** Parses d00042 / i00042 into 42; null for any other name. */
export function fileIdOf(name: string, prefix: "d" | "i"): number | null {
  const m = /^([di])(\d{5,10})$/.exec(name);
  return m && m[1] === prefix ? Number(m[2]) : null;
}

export function encodeFileHeader(magic: number, fileId: number, created: number): Buffer {
  const b = Buffer.alloc(FILE_HEADER_SIZE);
  b.writeUInt32LE(magic, 0);
  b.writeUInt32LE(FORMAT_VERSION, 4);
  b.writeUInt32LE(fileId, 8);
  b.writeUInt32LE(created, 12);
  return b;
}

/** True when b holds a file header of this kind, version and id. */
export function isFileHeader(b: Uint8Array, magic: number, fileId: number): boolean {
  if (b.length < FILE_HEADER_SIZE) return false;
  const v = Buffer.from(b.buffer, b.byteOffset, FILE_HEADER_SIZE);
  return v.readUInt32LE(0) === magic && v.readUInt32LE(4) === FORMAT_VERSION && v.readUInt32LE(8) === fileId;
}

/** The fields an entry and its index record share. */
export interface EntryMeta {
  key: Uint8Array;
  flags: number;
  offset: number; // of the entry header in its data file
  size: number; // payload length
  timestamp: number;
  crc: number; // CRC32C of the payload
}

/** Writes an entry header followed by the key into out at 0; returns the byte count. */
export function encodeEntryHeader(out: Buffer, m: EntryMeta, previous: number): number {
  out[0] = m.key.length;
  out.writeUInt32LE(m.size, 1);
  out.writeUInt32LE(previous, 5);
  out.writeUInt32LE(m.crc, 9);
  out[13] = m.flags;
  out.writeUInt32LE(m.timestamp, 14);
  out.set(m.key, ENTRY_HEADER_SIZE);
  return ENTRY_HEADER_SIZE + m.key.length;
}

export interface EntryHeader {
  keyLength: number;
  size: number;
  previous: number;
  crc: number;
  flags: number;
  timestamp: number;
}

export function decodeEntryHeader(b: Buffer, at = 0): EntryHeader {
  return {
    keyLength: b[at],
    size: b.readUInt32LE(at + 1),
    previous: b.readUInt32LE(at + 5),
    crc: b.readUInt32LE(at + 9),
    flags: b[at + 13],
    timestamp: b.readUInt32LE(at + 14),
  };
}

/** Writes an index record into out at 0; returns the byte count. */
export function encodeIndexRecord(out: Buffer, m: EntryMeta): number {
  out[0] = m.key.length;
  out[1] = m.flags;
  out.writeUInt32LE(m.offset, 2);
  out.writeUInt32LE(m.size, 6);
  out.writeUInt32LE(m.timestamp, 10);
  out.writeUInt32LE(m.crc, 14);
  out.set(m.key, INDEX_RECORD_HEADER_SIZE);
  const rc = crc32c(m.key, crc32c(out.subarray(0, 18)));
  out.writeUInt32LE(rc >>> 0, 18);
  return INDEX_RECORD_HEADER_SIZE + m.key.length;
}

/**
 * Decodes the record at b[at]; returns null when fewer bytes than a whole record remain or when its
 * checksum does not match (a torn or damaged record). The key is a copy.
 */
export function decodeIndexRecord(b: Buffer, at: number): (EntryMeta & { length: number }) | null {
  if (at + INDEX_RECORD_HEADER_SIZE > b.length) return null;
  const klen = b[at];
  const length = INDEX_RECORD_HEADER_SIZE + klen;
  if (at + length > b.length) return null;
  const key = b.subarray(at + INDEX_RECORD_HEADER_SIZE, at + length);
  const rc = crc32c(key, crc32c(b.subarray(at, at + 18))) >>> 0;
  if (rc !== b.readUInt32LE(at + 18)) return null;
  return {
    key: Uint8Array.prototype.slice.call(key),
    flags: b[at + 1],
    offset: b.readUInt32LE(at + 2),
    size: b.readUInt32LE(at + 6),
    timestamp: b.readUInt32LE(at + 10),
    crc: b.readUInt32LE(at + 14),
    length,
  };
}

/** Bytes an entry occupies in its data file. */
export function entryLength(keyLength: number, size: number): number {
  return ENTRY_HEADER_SIZE + keyLength + size;
}
