// Read-only views of an flist: the summary `inspect` prints and the listing `tree` prints.
import { Flist, ROOT_INO, S_IFMT, S_IFDIR, S_IFLNK, S_IFREG, type Inode } from "./flist.ts";

export interface FlistSummary {
  entries: number;
  files: number;
  directories: number;
  symlinks: number;
  /** Devices, fifos and sockets. */
  special: number;
  bytes: number;
  blocks: number;
  uniqueBlocks: number;
  routes: { start: number; end: number; url: string }[];
  tags: Record<string, string>;
}

export function summarize(flist: Flist): FlistSummary {
  const count = (sql: string) => Number((flist.db.query(sql).get() as { n: number }).n);
  const byType = (t: number) => count(`SELECT count(*) AS n FROM inode WHERE (mode & ${S_IFMT}) = ${t}`);
  const entries = count("SELECT count(*) AS n FROM inode");
  const files = byType(S_IFREG);
  const directories = byType(S_IFDIR);
  const symlinks = byType(S_IFLNK);
  return {
    entries,
    files,
    directories,
    symlinks,
    special: entries - files - directories - symlinks,
    bytes: count(`SELECT coalesce(sum(size), 0) AS n FROM inode WHERE (mode & ${S_IFMT}) = ${S_IFREG}`),
    blocks: count("SELECT count(*) AS n FROM block"),
    uniqueBlocks: count("SELECT count(DISTINCT id) AS n FROM block"),
    routes: flist.routes().map((r) => ({ start: Number(r.start), end: Number(r.end), url: r.url })),
    tags: Object.fromEntries(flist.tags()),
  };
}

const typeChar: Record<number, string> = { [S_IFDIR]: "d", [S_IFREG]: "-", [S_IFLNK]: "l", 0o060000: "b", 0o020000: "c", 0o010000: "p", 0o140000: "s" };

function permString(mode: number): string {
  const bits = "rwxrwxrwx";
  let s = "";
  for (let i = 0; i < 9; i++) s += mode & (1 << (8 - i)) ? bits[i] : "-";
  return s;
}

/** Visits every entry depth-first in ino order with its path ("/" for the root). */
export function walk(flist: Flist, visit: (path: string, node: Inode) => void): void {
  const go = (path: string, node: Inode) => {
    visit(path, node);
    if ((node.mode & S_IFMT) !== S_IFDIR) return;
    for (const child of flist.children(node.ino)) go(path === "/" ? `/${child.name}` : `${path}/${child.name}`, child);
  };
  go("/", flist.inode(ROOT_INO)!);
}

/** One `ls -l`-like line per entry. */
export function treeLines(flist: Flist, out: (line: string) => void): void {
  walk(flist, (path, n) => {
    const type = typeChar[n.mode & S_IFMT] ?? "?";
    const link = (n.mode & S_IFMT) === S_IFLNK ? ` -> ${new TextDecoder().decode(flist.target(n.ino) ?? new Uint8Array())}` : "";
    out(`${type}${permString(n.mode)} ${n.uid}:${n.gid} ${String(n.size).padStart(12)} ${new Date(n.mtime * 1000).toISOString()} ${path}${link}`);
  });
}
