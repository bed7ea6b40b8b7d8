// A directory of blobs, laid out as rfs does: <root>/<hex[0:2]>/<hex>; rfs's older flat layout
// <root>/<hex> is still read. Writes go to a temporary name in the same directory and are renamed
// into place, so a crash never leaves a torn blob under a block's name.
import { mkdir, readdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { hex, type BlockId, type OpOptions } from "../types.ts";
import { runOp, type OpPolicy } from "../ops.ts";
import { checkId, type ScannableBackend } from "./backend.ts";

const hexName = /^[0-9a-f]{64}$/;

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

export class DirBackend implements ScannableBackend {
  readonly readOnly = false;

  constructor(
    readonly url: string,
    readonly root: string,
    private readonly policy: OpPolicy,
  ) {}

  /** Where a block is written, and where it is looked for first. */
  pathOf(id: BlockId): string {
    const h = hex(id);
    return join(this.root, h.slice(0, 2), h);
  }

  private legacyPathOf(id: BlockId): string {
    return join(this.root, hex(id));
  }

  private async op<T>(op: string, id: BlockId | undefined, opts: OpOptions | undefined, fn: (signal: AbortSignal) => Promise<T>) {
    if (id) checkId(id);
    return runOp({ backend: this.url, id: id && hex(id), op }, this.policy, opts, fn);
  }

  has(id: BlockId, opts?: OpOptions): Promise<boolean> {
    return this.op("has", id, opts, async () => {
      for (const path of [this.pathOf(id), this.legacyPathOf(id)]) {
        try {
          if ((await stat(path)).isFile()) return true;
        } catch (err) {
          if (!isMissing(err)) throw err;
        }
      }
      return false;
    });
  }

  get(id: BlockId, opts?: OpOptions): Promise<Uint8Array | null> {
    return this.op("get", id, opts, async (signal) => {
      for (const path of [this.pathOf(id), this.legacyPathOf(id)]) {
        try {
          const buf = await readFile(path, { signal });
          return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
        } catch (err) {
          if (!isMissing(err)) throw err;
        }
      }
      return null;
    });
  }

  put(id: BlockId, data: Uint8Array, opts?: OpOptions): Promise<void> {
    return this.op("put", id, opts, async (signal) => {
      const path = this.pathOf(id);
      const dir = join(path, "..");
      const tmp = join(dir, `.${hex(id)}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`);
      try {
        try {
          await writeFile(tmp, data, { signal });
        } catch (err) {
          if (!isMissing(err)) throw err;
          await mkdir(dir, { recursive: true }); // first blob of this fan-out directory
          await writeFile(tmp, data, { signal });
        }
        await rename(tmp, path);
      } catch (err) {
        await unlink(tmp).catch(() => {});
        throw err;
      }
    });
  }

  delete(id: BlockId, opts?: OpOptions): Promise<void> {
    return this.op("delete", id, opts, async () => {
      for (const path of [this.pathOf(id), this.legacyPathOf(id)]) {
        try {
          await unlink(path);
        } catch (err) {
          if (!isMissing(err)) throw err;
        }
      }
    });
  }

  ping(opts?: OpOptions): Promise<void> {
    return this.op("ping", undefined, opts, async () => {
      const s = await stat(this.root);
      if (!s.isDirectory()) throw new Error(`${this.root} is not a directory`);
    });
  }

  async *list(opts?: { signal?: AbortSignal }): AsyncIterable<BlockId> {
    let top: string[];
    try {
      top = await readdir(this.root);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for (const name of top) {
      opts?.signal?.throwIfAborted();
      if (hexName.test(name)) {
        yield Buffer.from(name, "hex");
      } else if (/^[0-9a-f]{2}$/.test(name)) {
        for (const inner of await readdir(join(this.root, name)).catch(() => [] as string[])) {
          if (hexName.test(inner) && inner.startsWith(name)) yield Buffer.from(inner, "hex");
        }
      }
    }
  }

  async close(): Promise<void> {}
}

/** Opens (creating if needed) the directory store. */
export async function openDirBackend(url: string, root: string, policy: OpPolicy): Promise<DirBackend> {
  await mkdir(root, { recursive: true });
  return new DirBackend(url, root, policy);
}
