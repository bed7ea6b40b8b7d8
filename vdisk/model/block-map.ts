// The map from block index to the store block holding it. Layout in the store (each piece an rfs
// block: encoded with store/chunk.ts, so it is compressed, encrypted and deduplicated like data):
//   entry  = id (32 bytes) || key (32 bytes); 64 zero bytes = hole (never written, or all zeroes)
//   page   = ENTRIES_PER_PAGE entries (64 KiB plaintext), covering ENTRIES_PER_PAGE blocks
//   root   = one entry per page, naming that page's block (zero entry = a page of holes)
// A vdisk record points at the root. Committing rewrites only the pages that changed and the
// root, so a snapshot is a copy of one root reference and a commit is O(changed pages).
import { getBlock, putBlock, type BlockBackend, type BlockHash, type BlockRef } from "../../store/index.ts";
import type { VdiskRecord } from "./record.ts";
import { VdiskError } from "./errors.ts";
import { isAllZero } from "../segments.ts";

export const ENTRY = 64;
export const ENTRIES_PER_PAGE = 1024;
const PAGE_BYTES = ENTRY * ENTRIES_PER_PAGE;

function refAt(buf: Uint8Array, i: number): BlockRef | null {
  const e = buf.subarray(i * ENTRY, (i + 1) * ENTRY);
  // Copies: the page changes under later set() calls, and a returned ref must not.
  return isAllZero(e) ? null : { id: new Uint8Array(e.subarray(0, 32)), key: new Uint8Array(e.subarray(32, 64)) };
}

function setRef(buf: Uint8Array, i: number, ref: BlockRef | null): void {
  if (ref) {
    buf.set(ref.id, i * ENTRY);
    buf.set(ref.key, i * ENTRY + 32);
  } else buf.fill(0, i * ENTRY, (i + 1) * ENTRY);
}

async function fetch(store: BlockBackend, ref: BlockRef, hash: BlockHash, what: string): Promise<Uint8Array> {
  const plain = await getBlock(store, ref, undefined, hash);
  if (!plain) throw new VdiskError("missing-block", `${what} ${Buffer.from(ref.id).toString("hex")} is not in the store`);
  return plain;
}

export interface CommitResult {
  root: BlockRef | null;
  /** Map blocks (old pages, old root) no longer referenced by this map. */
  released: BlockRef[];
}

export class BlockMap {
  private constructor(
    private blocks: number,
    private pages: (Uint8Array | null)[], // null: every entry of the page is a hole
    private pageRefs: (BlockRef | null)[],
    private root: BlockRef | null,
    /** The vdisk's block hash: its map pages and root are stored with it too. */
    private readonly hash: BlockHash,
    private readonly dirtyPages = new Set<number>(),
  ) {}

  private static empty(blocks: number, hash: BlockHash): BlockMap {
    const n = Math.ceil(blocks / ENTRIES_PER_PAGE);
    return new BlockMap(blocks, new Array(n).fill(null), new Array(n).fill(null), null, hash);
  }

  /** The map of a vdisk or snapshot as its record names it. */
  static async load(store: BlockBackend, record: Pick<VdiskRecord, "root" | "size" | "blockSize" | "blockHash">): Promise<BlockMap> {
    const { root, blockHash: hash } = record;
    const blocks = Math.ceil(record.size / record.blockSize);
    if (!root) return BlockMap.empty(blocks, hash);
    const rootPlain = await fetch(store, root, hash, "map root");
    const n = Math.ceil(blocks / ENTRIES_PER_PAGE);
    if (rootPlain.length !== n * ENTRY) throw new VdiskError("corrupt", `map root has ${rootPlain.length / ENTRY} pages, the size needs ${n}`);
    const pageRefs = Array.from({ length: n }, (_, p) => refAt(rootPlain, p));
    const pages = await Promise.all(
      pageRefs.map(async (ref) => {
        if (!ref) return null;
        const page = await fetch(store, ref, hash, "map page");
        if (page.length !== PAGE_BYTES) throw new VdiskError("corrupt", `map page of ${page.length} bytes`);
        return page;
      }),
    );
    return new BlockMap(blocks, pages, pageRefs, root, hash);
  }

  get blockCount(): number {
    return this.blocks;
  }

  get rootRef(): BlockRef | null {
    return this.root;
  }

  get dirty(): boolean {
    return this.dirtyPages.size > 0;
  }

  get(block: number): BlockRef | null {
    const page = this.pages[Math.floor(block / ENTRIES_PER_PAGE)];
    return page ? refAt(page, block % ENTRIES_PER_PAGE) : null;
  }

  isHole(block: number): boolean {
    const page = this.pages[Math.floor(block / ENTRIES_PER_PAGE)];
    if (!page) return true;
    const i = (block % ENTRIES_PER_PAGE) * ENTRY;
    for (let k = i; k < i + ENTRY; k++) if (page[k] !== 0) return false;
    return true;
  }

  /** Sets one entry; returns the reference it replaced. */
  set(block: number, ref: BlockRef | null): BlockRef | null {
    const p = Math.floor(block / ENTRIES_PER_PAGE);
    let page = this.pages[p];
    if (!page) {
      if (!ref) return null;
      page = this.pages[p] = new Uint8Array(PAGE_BYTES);
    }
    const old = refAt(page, block % ENTRIES_PER_PAGE);
    if (!old && !ref) return null;
    if (old && ref && Buffer.compare(old.id, ref.id) === 0) return null;
    setRef(page, block % ENTRIES_PER_PAGE, ref);
    this.dirtyPages.add(p);
    return old;
  }

  /** Every block reference of the map, data and map blocks alike (for reclamation). */
  *references(): Generator<BlockRef> {
    if (this.root) yield this.root;
    for (let p = 0; p < this.pages.length; p++) {
      const ref = this.pageRefs[p];
      if (ref) yield ref;
      const page = this.pages[p];
      if (page) for (let i = 0; i < ENTRIES_PER_PAGE; i++) {
        const r = refAt(page, i);
        if (r) yield r;
      }
    }
  }

  /** Changes the number of blocks; entries past the new end are dropped and returned. */
  resize(blocks: number): BlockRef[] {
    const dropped: BlockRef[] = [];
    for (let b = blocks; b < this.blocks; b++) {
      const old = this.set(b, null);
      if (old) dropped.push(old);
    }
    const n = Math.ceil(blocks / ENTRIES_PER_PAGE);
    for (let p = n; p < this.pages.length; p++) this.dirtyPages.delete(p);
    const droppedPages = this.pageRefs.slice(n).filter((r): r is BlockRef => r !== null);
    this.pages.length = Math.min(this.pages.length, n);
    this.pageRefs.length = Math.min(this.pageRefs.length, n);
    while (this.pages.length < n) {
      this.pages.push(null);
      this.pageRefs.push(null);
    }
    this.blocks = blocks;
    this.rootStale = true;
    return [...dropped, ...droppedPages];
  }

  /** The root in the store does not describe the pages (a resize, or a commit that failed midway). */
  private rootStale = false;

  /** Writes the changed pages and a new root to the store. */
  async commit(store: BlockBackend): Promise<CommitResult> {
    if (!this.dirty && !this.rootStale) return { root: this.root, released: [] };
    const changed = [...this.dirtyPages];
    this.dirtyPages.clear();
    this.rootStale = true;
    const released: BlockRef[] = [];
    try {
      await Promise.all(
        changed.map(async (p) => {
          const page = this.pages[p];
          const ref = page && !isAllZero(page) ? await putBlock(store, page, undefined, this.hash) : null;
          const old = this.pageRefs[p];
          if (old && (!ref || Buffer.compare(old.id, ref.id) !== 0)) released.push(old);
          this.pageRefs[p] = ref;
          if (!ref) this.pages[p] = null;
        }),
      );
    } catch (err) {
      for (const p of changed) this.dirtyPages.add(p); // retried by the next commit
      throw err;
    }
    const rootPlain = new Uint8Array(this.pageRefs.length * ENTRY);
    this.pageRefs.forEach((r, p) => setRef(rootPlain, p, r));
    const root = isAllZero(rootPlain) ? null : await putBlock(store, rootPlain, undefined, this.hash);
    if (this.root && (!root || Buffer.compare(this.root.id, root.id) !== 0)) released.push(this.root);
    this.root = root;
    this.rootStale = false;
    return { root, released };
  }
}
