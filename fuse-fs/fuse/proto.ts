// The FUSE kernel protocol (include/uapi/linux/fuse.h), the parts a read-only filesystem speaks.
// All integers are little-endian host order (x86-64/arm64). Layouts used here:
//   fuse_in_header  (40): u32 len, u32 opcode, u64 unique, u64 nodeid, u32 uid, u32 gid, u32 pid,
//                         u16 total_extlen, u16 padding
//   fuse_out_header (16): u32 len, i32 error (negative errno), u64 unique
//   fuse_attr       (88): u64 ino, size, blocks, atime, mtime, ctime; u32 atimensec, mtimensec,
//                         ctimensec, mode, nlink, uid, gid, rdev, blksize, flags
//   fuse_entry_out (128): u64 nodeid, generation, entry_valid, attr_valid; u32 entry_valid_nsec,
//                         attr_valid_nsec; fuse_attr
//   fuse_attr_out  (104): u64 attr_valid; u32 attr_valid_nsec, dummy; fuse_attr
//   fuse_init_in   (16 or 64): u32 major, minor, max_readahead, flags; [7.36+] u32 flags2, unused[11]
//   fuse_init_out  (64): u32 major, minor, max_readahead, flags; u16 max_background,
//                         congestion_threshold; u32 max_write, time_gran; u16 max_pages, map_alignment;
//                         u32 flags2, max_stack_depth; u16 request_timeout; u16 unused[11]
//   fuse_open_out  (16): u64 fh; u32 open_flags; i32 backing_id
//   fuse_read_in   (40): u64 fh, offset; u32 size, read_flags; u64 lock_owner; u32 flags, padding
//   fuse_dirent  (24+name, padded to 8): u64 ino, off; u32 namelen, type; name
//   fuse_direntplus: fuse_entry_out then fuse_dirent
//   fuse_kstatfs   (80): u64 blocks, bfree, bavail, files, ffree; u32 bsize, namelen, frsize, padding,
//                         spare[6]
//   fuse_getxattr_in (8): u32 size, padding; then the NUL-terminated name. fuse_getxattr_out (8): u32 size, padding
//   fuse_batch_forget_in (8): u32 count, dummy; then count x {u64 nodeid, nlookup}

export const IN_HEADER = 40;
export const OUT_HEADER = 16;
export const ATTR_SIZE = 88;
export const ENTRY_OUT = 40 + ATTR_SIZE;
export const ATTR_OUT = 16 + ATTR_SIZE;
export const DIRENT_BASE = 24;

export const Op = {
  LOOKUP: 1, FORGET: 2, GETATTR: 3, SETATTR: 4, READLINK: 5, SYMLINK: 6, MKNOD: 8, MKDIR: 9, UNLINK: 10,
  RMDIR: 11, RENAME: 12, LINK: 13, OPEN: 14, READ: 15, WRITE: 16, STATFS: 17, RELEASE: 18, FSYNC: 20,
  SETXATTR: 21, GETXATTR: 22, LISTXATTR: 23, REMOVEXATTR: 24, FLUSH: 25, INIT: 26, OPENDIR: 27,
  READDIR: 28, RELEASEDIR: 29, FSYNCDIR: 30, GETLK: 31, SETLK: 32, SETLKW: 33, ACCESS: 34, CREATE: 35,
  INTERRUPT: 36, BMAP: 37, DESTROY: 38, IOCTL: 39, POLL: 40, BATCH_FORGET: 42, FALLOCATE: 43,
  READDIRPLUS: 44, RENAME2: 45, LSEEK: 46, COPY_FILE_RANGE: 47, SYNCFS: 50, TMPFILE: 51, STATX: 52,
  COPY_FILE_RANGE_64: 53,
} as const;

const opNames = new Map<number, string>(Object.entries(Op).map(([k, v]) => [v, k]));
export function opName(opcode: number): string {
  return opNames.get(opcode) ?? `opcode ${opcode}`;
}

/** Operations that would change the tree: a read-only filesystem answers EROFS. */
export const WRITE_OPS: ReadonlySet<number> = new Set([
  Op.SETATTR, Op.SYMLINK, Op.MKNOD, Op.MKDIR, Op.UNLINK, Op.RMDIR, Op.RENAME, Op.LINK, Op.WRITE, Op.SETXATTR,
  Op.REMOVEXATTR, Op.CREATE, Op.FALLOCATE, Op.RENAME2, Op.COPY_FILE_RANGE, Op.TMPFILE, Op.COPY_FILE_RANGE_64,
]);

/** Slots in the per-opcode request counters (every opcode above is smaller). */
export const OPCODE_SLOTS = 64;

/** INIT flags (fuse_init_in/out.flags; flags2 holds bits 32..63). */
export const Init = {
  ASYNC_READ: 1 << 0,
  BIG_WRITES: 1 << 5,
  DO_READDIRPLUS: 1 << 13,
  READDIRPLUS_AUTO: 1 << 14,
  PARALLEL_DIROPS: 1 << 18,
  MAX_PAGES: 1 << 22,
  CACHE_SYMLINKS: 1 << 23,
  INIT_EXT: 1 << 30,
} as const;

export const FOPEN_KEEP_CACHE = 1 << 1;
export const FOPEN_CACHE_DIR = 1 << 3;
/** No FLUSH on close (kernel 5.17+; older kernels ignore it and get ENOSYS once). */
export const FOPEN_NOFLUSH = 1 << 5;

export const Errno = {
  EPERM: 1, ENOENT: 2, EINTR: 4, EIO: 5, EBADF: 9, EAGAIN: 11, EACCES: 13, ENOTDIR: 20, EINVAL: 22,
  ERANGE: 34, EROFS: 30, ENOSYS: 38, ENODATA: 61, EPROTO: 71,
} as const;

export const KERNEL_VERSION = 7;
/** The newest protocol minor whose messages this implementation understands. */
export const OUR_MINOR = 45;

export interface InHeader {
  len: number;
  opcode: number;
  unique: bigint;
  nodeid: number;
  uid: number;
  gid: number;
  pid: number;
}

export function parseInHeader(dv: DataView): InHeader {
  return {
    len: dv.getUint32(0, true),
    opcode: dv.getUint32(4, true),
    unique: dv.getBigUint64(8, true),
    nodeid: getU64(dv, 16),
    uid: dv.getUint32(24, true),
    gid: dv.getUint32(28, true),
    pid: dv.getUint32(32, true),
  };
}

/** A u64 as a JS number (node ids, offsets and sizes all stay below 2^53). */
export function getU64(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint32(off + 4, true) * 4294967296;
}

/** Writes a number as a two's-complement 64-bit integer (negative times included). */
export function setU64(dv: DataView, off: number, n: number): void {
  dv.setUint32(off, n >>> 0, true);
  dv.setUint32(off + 4, Math.floor(n / 4294967296) >>> 0, true);
}

export interface Attr {
  ino: number;
  size: number;
  mtime: number;
  ctime: number;
  mode: number;
  nlink: number;
  uid: number;
  gid: number;
  rdev: number;
  blksize: number;
}

export function putAttr(dv: DataView, off: number, a: Attr): void {
  setU64(dv, off, a.ino);
  setU64(dv, off + 8, a.size);
  setU64(dv, off + 16, Math.ceil(a.size / 512));
  setU64(dv, off + 24, a.mtime); // atime: flists record none
  setU64(dv, off + 32, a.mtime);
  setU64(dv, off + 40, a.ctime);
  dv.setUint32(off + 48, 0, true);
  dv.setUint32(off + 52, 0, true);
  dv.setUint32(off + 56, 0, true);
  dv.setUint32(off + 60, a.mode, true);
  dv.setUint32(off + 64, a.nlink, true);
  dv.setUint32(off + 68, a.uid, true);
  dv.setUint32(off + 72, a.gid, true);
  dv.setUint32(off + 76, a.rdev >>> 0, true);
  dv.setUint32(off + 80, a.blksize, true);
  dv.setUint32(off + 84, 0, true);
}

/** fuse_entry_out; nodeid 0 is a cacheable negative entry. */
export function putEntry(dv: DataView, off: number, a: Attr | null, validSecs: number): void {
  setU64(dv, off, a ? a.ino : 0);
  setU64(dv, off + 8, 0);
  setU64(dv, off + 16, validSecs);
  setU64(dv, off + 24, validSecs);
  dv.setUint32(off + 32, 0, true);
  dv.setUint32(off + 36, 0, true);
  if (a) putAttr(dv, off + 40, a);
  else new Uint8Array(dv.buffer, dv.byteOffset + off + 40, ATTR_SIZE).fill(0);
}

export function direntSize(nameLen: number, plus: boolean): number {
  return (plus ? ENTRY_OUT : 0) + ((DIRENT_BASE + nameLen + 7) & ~7);
}
