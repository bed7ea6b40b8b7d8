// rfs routing: each route covers an inclusive range of id[0] ("00-7f=url"; a bare url covers 00-ff).
// Writes go to every writable route that covers the id; reads try the covering routes in random order and
// return the first hit, as rfs's Router does.
import { StoreError, hex, type BlockBackend, type BlockId, type OpOptions } from "./types.ts";
import { checkId } from "./backends/backend.ts";

export interface Route {
  start: number;
  end: number;
  backend: BlockBackend;
}

export interface RouteSpec {
  start: number;
  end: number;
  url: string;
}

const routePattern = /^([0-9a-f]{2})-([0-9a-f]{2})=(.+)$/i;

/** Parses rfs's `xx-xx=url` (hex, inclusive) or a bare url. */
export function parseRoute(text: string): RouteSpec {
  const m = routePattern.exec(text);
  if (!m) return { start: 0, end: 0xff, url: text };
  const start = parseInt(m[1], 16);
  const end = parseInt(m[2], 16);
  if (start > end) throw new StoreError("bad-url", `route range ${m[1]}-${m[2]} is empty (start after end)`);
  return { start, end, url: m[3] };
}

function shuffled<T>(items: T[]): T[] {
  const out = items.slice();
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

export class RoutedStore implements BlockBackend {
  readonly url: string;
  readonly readOnly: boolean;

  constructor(readonly routes: Route[]) {
    if (routes.length === 0) throw new StoreError("bad-config", "a routed store needs at least one route");
    this.url = routes
      .map((r) => (r.start === 0 && r.end === 0xff ? r.backend.url : `${r.start.toString(16).padStart(2, "0")}-${r.end.toString(16).padStart(2, "0")}=${r.backend.url}`))
      .join(" ");
    this.readOnly = routes.every((r) => r.backend.readOnly);
  }

  private matching(id: BlockId): BlockBackend[] {
    checkId(id);
    const found = this.routes.filter((r) => id[0] >= r.start && id[0] <= r.end).map((r) => r.backend);
    if (found.length === 0) {
      throw new StoreError("bad-config", `no route covers id[0]=${id[0].toString(16).padStart(2, "0")}`, { backend: this.url, id: hex(id) });
    }
    return found;
  }

  /** Tries each covering backend until one answers a hit; misses and failures move on to the next. */
  private async firstHit<T>(id: BlockId, miss: T, ask: (b: BlockBackend) => Promise<T>): Promise<T> {
    const errors: unknown[] = [];
    for (const backend of shuffled(this.matching(id))) {
      try {
        const got = await ask(backend);
        if (got !== miss) return got;
      } catch (err) {
        if (err instanceof StoreError && err.code === "aborted") throw err;
        errors.push(err);
      }
    }
    if (errors.length === 0) return miss;
    const first = errors[0] instanceof StoreError ? errors[0] : undefined;
    throw new StoreError(
      first?.code ?? "unavailable",
      `every route for block failed: ${errors.map((e) => (e as Error).message).join("; ")}`,
      { backend: this.url, id: hex(id) },
      { cause: new AggregateError(errors) },
    );
  }

  has(id: BlockId, opts?: OpOptions): Promise<boolean> {
    return this.firstHit(id, false, (b) => b.has(id, opts));
  }

  get(id: BlockId, opts?: OpOptions): Promise<Uint8Array | null> {
    return this.firstHit<Uint8Array | null>(id, null, (b) => b.get(id, opts));
  }

  /** Covering routes that accept writes; a read-only hub next to a writable store is skipped. */
  private writable(id: BlockId): BlockBackend[] {
    const found = this.matching(id).filter((b) => !b.readOnly);
    if (found.length === 0) throw new StoreError("read-only", "every route covering this block is read-only", { backend: this.url, id: hex(id) });
    return found;
  }

  async put(id: BlockId, data: Uint8Array, opts?: OpOptions): Promise<void> {
    await Promise.all(this.writable(id).map((b) => b.put(id, data, opts)));
  }

  async delete(id: BlockId, opts?: OpOptions): Promise<void> {
    await Promise.all(this.writable(id).map((b) => b.delete(id, opts)));
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.routes.map((r) => r.backend.close()));
  }
}
