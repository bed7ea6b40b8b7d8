// Writes the "newc" cpio archive the Linux kernel unpacks into its initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst).
//
// Format: a sequence of entries, then an entry named "TRAILER!!!". Each entry is
//   header: "070701" then 13 fields, each 8 ASCII hex digits:
//           ino, mode, uid, gid, nlink, mtime, filesize, devmajor, devminor,
//           rdevmajor, rdevminor, namesize (name length + 1 for its NUL), check (0 for newc)
//   name:   namesize bytes, NUL-terminated, no leading "/"; header + name padded with NULs to 4 bytes
//   data:   filesize bytes (file contents, or a symlink's target without NUL), padded to 4 bytes
// The kernel creates each entry in order, so a directory must precede its children; it links
// regular files whose nlink > 1 by (ino, devmajor, devminor), so every entry here has its own ino
// and nlink 1 (2 for directories) and no file is a hard link of another.
// Reproducibility: entries are written sorted by path, with uid/gid 0, a fixed mtime and inode
// numbers assigned in that order, so the bytes depend only on the paths, modes and contents.
import { closeSync, openSync, writeSync } from "node:fs";

export type CpioEntry =
  | { kind: "dir"; path: string; mode: number }
  | { kind: "file"; path: string; mode: number; data: Uint8Array }
  | { kind: "symlink"; path: string; target: string }
  | { kind: "char"; path: string; mode: number; major: number; minor: number };

const S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000, S_IFCHR = 0o020000;

export class CpioError extends Error {
  constructor(message: string, readonly path?: string) {
    super(path ? `${path}: ${message}` : message);
    this.name = "CpioError";
  }
}

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new CpioError(`field out of range: ${n}`);
  return n.toString(16).padStart(8, "0");
}

const pad4 = (n: number) => (4 - (n % 4)) % 4;

interface HeaderFields {
  ino: number; mode: number; nlink: number; mtime: number; size: number;
  rdevmajor: number; rdevminor: number; name: string;
}

function header(f: HeaderFields): Uint8Array {
  const name = Buffer.from(f.name + "\0", "utf8");
  const fields = [f.ino, f.mode, 0, 0, f.nlink, f.mtime, f.size, 0, 0, f.rdevmajor, f.rdevminor, name.length, 0];
  const head = Buffer.from("070701" + fields.map(hex8).join(""), "ascii");
  return Buffer.concat([head, name, Buffer.alloc(pad4(head.length + name.length))]);
}

/** Archive path of an absolute or relative path: no leading "/", no "." or empty components. */
export function archivePath(path: string): string {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.length === 0 || parts.includes("..")) throw new CpioError("not a valid archive path", path);
  return parts.join("/");
}

function fieldsOf(e: CpioEntry): { mode: number; nlink: number; data: Uint8Array; rdev: [number, number] } {
  switch (e.kind) {
    case "dir": return { mode: S_IFDIR | (e.mode & 0o7777), nlink: 2, data: new Uint8Array(0), rdev: [0, 0] };
    case "file": return { mode: S_IFREG | (e.mode & 0o7777), nlink: 1, data: e.data, rdev: [0, 0] };
    case "symlink": return { mode: S_IFLNK | 0o777, nlink: 1, data: Buffer.from(e.target, "utf8"), rdev: [0, 0] };
    case "char": return { mode: S_IFCHR | (e.mode & 0o7777), nlink: 1, data: new Uint8Array(0), rdev: [e.major, e.minor] };
  }
}

/**
 * Writes `entries` to `outPath` as a newc archive, sorted by path. Parent directories must be
 * among the entries (the kernel does not create them); a missing one is an error, as is a duplicate.
 */
export function writeCpio(outPath: string, entries: CpioEntry[], mtime = 0): { bytes: number } {
  const sorted = entries.map((e) => ({ ...e, path: archivePath(e.path) }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  const dirs = new Set<string>();
  for (let i = 0; i < sorted.length; i++) {
    const e = sorted[i];
    if (i > 0 && sorted[i - 1].path === e.path) throw new CpioError("duplicate entry", e.path);
    const parent = e.path.includes("/") ? e.path.slice(0, e.path.lastIndexOf("/")) : "";
    if (parent && !dirs.has(parent)) throw new CpioError(`parent directory ${parent} is not in the archive`, e.path);
    if (e.kind === "dir") dirs.add(e.path);
  }
  const fd = openSync(outPath, "w");
  let bytes = 0;
  const put = (b: Uint8Array) => { writeSync(fd, b); bytes += b.length; };
  try {
    sorted.forEach((e, i) => {
      const f = fieldsOf(e);
      put(header({ ino: i + 1, mode: f.mode, nlink: f.nlink, mtime, size: f.data.length, rdevmajor: f.rdev[0], rdevminor: f.rdev[1], name: e.path }));
      if (f.data.length > 0) {
        put(f.data);
        put(new Uint8Array(pad4(f.data.length)));
      }
    });
    put(header({ ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0, rdevmajor: 0, rdevminor: 0, name: "TRAILER!!!" }));
  } finally {
    closeSync(fd);
  }
  return { bytes };
}
