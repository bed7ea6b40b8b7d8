// The file tree of an initramfs being assembled, each entry tagged with the part it belongs to
// (bun, init, modules, ...) so the build can report how much each part weighs.
import { readFileSync, readdirSync, realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import { archivePath, type CpioEntry } from "./cpio.ts";
import { sharedLibraries } from "./shared-libs.ts";

export class TreeError extends Error {
  constructor(message: string, readonly path: string) {
    super(`${path}: ${message}`);
    this.name = "TreeError";
  }
}

export interface PartSize { files: number; bytes: number }

export class ImageTree {
  readonly #entries = new Map<string, { part: string; entry: CpioEntry }>();

  /** Adds an entry and any missing parent directories (0755, same part). */
  add(part: string, entry: CpioEntry): void {
    const path = archivePath(entry.path);
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      const existing = this.#entries.get(dir);
      if (!existing) this.#entries.set(dir, { part, entry: { kind: "dir", path: dir, mode: 0o755 } });
      else if (existing.entry.kind !== "dir") throw new TreeError(`is a parent of ${path} but not a directory`, dir);
    }
    const existing = this.#entries.get(path);
    if (existing) {
      if (sameEntry(existing.entry, entry)) return;
      throw new TreeError(`added twice with different contents (parts ${existing.part} and ${part})`, path);
    }
    this.#entries.set(path, { part, entry: { ...entry, path } });
  }

  /** Copies a host file (following symlinks) to `dest`, keeping its permission bits unless given. */
  addHostFile(part: string, dest: string, src: string, mode?: number): void {
    const real = realpathSync(src);
    this.add(part, { kind: "file", path: dest, mode: mode ?? statSync(real).mode & 0o777, data: readFileSync(real) });
  }

  /** Copies a host ELF binary and every shared library it loads, each at the path the loader uses. */
  async addBinary(part: string, dest: string, src: string): Promise<void> {
    this.addHostFile(part, dest, src, 0o755);
    for (const lib of await sharedLibraries(src)) this.addHostFile("libraries", lib, lib, 0o755);
  }

  /** Copies a host directory tree to `dest`, files and subdirectories in name order. */
  addHostDir(part: string, dest: string, src: string): void {
    for (const name of readdirSync(src).sort()) {
      const s = join(src, name), d = `${dest}/${name}`;
      if (statSync(s).isDirectory()) {
        this.add(part, { kind: "dir", path: d, mode: 0o755 });
        this.addHostDir(part, d, s);
      } else {
        this.addHostFile(part, d, s, 0o644);
      }
    }
  }

  entries(): CpioEntry[] {
    return [...this.#entries.values()].map((e) => e.entry);
  }

  sizesByPart(): Map<string, PartSize> {
    const sizes = new Map<string, PartSize>();
    for (const { part, entry } of this.#entries.values()) {
      const s = sizes.get(part) ?? { files: 0, bytes: 0 };
      s.files++;
      if (entry.kind === "file") s.bytes += entry.data.length;
      sizes.set(part, s);
    }
    return sizes;
  }

  /** The entries of one part plus the directories they sit in, for measuring that part alone. */
  partEntries(part: string): CpioEntry[] {
    const mine = [...this.#entries.values()].filter((e) => e.part === part).map((e) => e.entry);
    const dirs = new Set<string>();
    for (const e of mine) {
      const p = e.path.split("/");
      for (let i = 1; i < p.length; i++) dirs.add(p.slice(0, i).join("/"));
    }
    const own = new Set(mine.map((e) => e.path));
    return [...mine, ...[...dirs].filter((d) => !own.has(d)).map((d): CpioEntry => ({ kind: "dir", path: d, mode: 0o755 }))];
  }
}

function sameEntry(a: CpioEntry, b: CpioEntry): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === "file" && b.kind === "file") return a.mode === b.mode && Buffer.from(a.data).equals(Buffer.from(b.data));
  return JSON.stringify({ ...a, path: "" }) === JSON.stringify({ ...b, path: "" });
}
