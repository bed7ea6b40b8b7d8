// A sparse in-memory export, the NBD server's reference plugin (like `nbdkit memory`): pages are
// allocated on first write, and trimmed or zeroed whole pages are freed again.
import type { BlockExport, BlockSizes, Extent, ZeroOptions } from "./nbd/export.ts";
import type { Payload } from "./nbd/payload.ts";
import { segments } from "./segments.ts";

const PAGE = 64 * 1024;
/** Read-only by convention: the data of every unallocated page. */
const ZERO_PAGE = new Uint8Array(PAGE);

export class MemoryExport implements BlockExport {
  readonly multiConn = true; // one process-wide state, nothing cached per connection
  readonly fastZero = true; // zeroing frees pages or memsets, never slower than a write
  readonly blockSizes: BlockSizes = { minimum: 1, preferred: 4096, maximum: 32 * 1024 * 1024 };
  private readonly pages = new Map<number, Uint8Array>();

  constructor(
    readonly name: string,
    private readonly bytes: number,
    readonly description = "",
    readonly readOnly = false,
  ) {}

  size(): number {
    return this.bytes;
  }

  read(into: Uint8Array, offset: number): void {
    for (const s of segments(offset, into.length, PAGE)) {
      const page = this.pages.get(s.block);
      const dst = into.subarray(s.at, s.at + s.length);
      if (page) dst.set(page.subarray(s.within, s.within + s.length));
      else dst.fill(0);
    }
  }

  readCached(into: Uint8Array, offset: number): boolean {
    this.read(into, offset);
    return true;
  }

  cachedViews(offset: number, length: number): Uint8Array[] {
    return segments(offset, length, PAGE).map((s) => (this.pages.get(s.block) ?? ZERO_PAGE).subarray(s.within, s.within + s.length));
  }

  write(data: Payload, offset: number): void {
    for (const s of segments(offset, data.length, PAGE)) {
      let page = this.pages.get(s.block);
      if (!page) this.pages.set(s.block, (page = new Uint8Array(PAGE)));
      data.copyTo(page, s.within, s.at, s.length);
    }
  }

  flush(): void {}

  trim(offset: number, length: number): void {
    this.zero(offset, length);
  }

  zero(offset: number, length: number, _opts?: ZeroOptions): void {
    for (const s of segments(offset, length, PAGE)) {
      if (s.length === PAGE) this.pages.delete(s.block);
      else this.pages.get(s.block)?.fill(0, s.within, s.within + s.length);
    }
  }

  cache(): void {}

  extents(offset: number, length: number): Extent[] {
    return segments(offset, length, PAGE).map((s) => {
      const hole = !this.pages.has(s.block);
      return { length: s.length, hole, zero: hole };
    });
  }
}
