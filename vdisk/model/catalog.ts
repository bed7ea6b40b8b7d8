// The catalog: the small mutable records that name vdisks and snapshots (each points at an
// immutable, content-addressed map in the store). A catalog is a key/value space with atomic
// replacement of one key. `dir:///path` keeps one file per key, written to a temporary name,
// fsynced and renamed into place; `zdb://host:port/ns` keeps them in a 0-db namespace
// (zdb-catalog.ts). Any node that reaches the same store and catalog can serve a vdisk.
import { mkdir, readdir, readFile, rename, unlink, open } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { parseBackendUrl, redactUrl } from "../../store/index.ts";
import { VdiskError } from "./errors.ts";
import { ZdbCatalog } from "./zdb-catalog.ts";

export interface Catalog {
  readonly url: string;
  get(key: string): Promise<Uint8Array | null>;
  /** Replaces the value atomically: a reader sees the old or the new value, never a mix. */
  put(key: string, value: Uint8Array): Promise<void>;
  delete(key: string): Promise<void>;
  /** Keys starting with prefix. */
  list(prefix: string): Promise<string[]>;
  close(): Promise<void>;
}

const keyPattern = /^[A-Za-z0-9._@-]+(\/[A-Za-z0-9._@-]+)*$/;

function checkKey(key: string): void {
  if (!keyPattern.test(key) || key.split("/").some((p) => p === "." || p === "..")) throw new VdiskError("bad-name", `bad catalog key ${JSON.stringify(key)}`);
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === "ENOENT" || code === "ENOTDIR";
}

export class DirCatalog implements Catalog {
  constructor(
    readonly url: string,
    private readonly root: string,
  ) {}

  private path(key: string): string {
    checkKey(key);
    return join(this.root, key);
  }

  async get(key: string): Promise<Uint8Array | null> {
    try {
      return new Uint8Array(await readFile(this.path(key)));
    } catch (err) {
      if (isMissing(err)) return null;
      throw new VdiskError("catalog", `cannot read ${key} from ${this.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    const path = this.path(key);
    const dir = join(path, "..");
    const tmp = join(dir, `.${randomBytes(6).toString("hex")}.tmp`);
    try {
      await mkdir(dir, { recursive: true });
      const fh = await open(tmp, "w");
      try {
        await fh.writeFile(value);
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      const dh = await open(dir, "r");
      try {
        await dh.sync(); // the rename itself must survive a crash
      } finally {
        await dh.close();
      }
    } catch (err) {
      await unlink(tmp).catch(() => {});
      throw new VdiskError("catalog", `cannot write ${key} to ${this.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await unlink(this.path(key));
    } catch (err) {
      if (!isMissing(err)) throw new VdiskError("catalog", `cannot delete ${key} from ${this.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  async list(prefix: string): Promise<string[]> {
    const slash = prefix.lastIndexOf("/");
    const dirKey = slash >= 0 ? prefix.slice(0, slash) : "";
    let names: string[];
    try {
      names = await readdir(dirKey ? this.path(dirKey) : this.root);
    } catch (err) {
      if (isMissing(err)) return [];
      throw new VdiskError("catalog", `cannot list ${prefix} in ${this.url}: ${(err as Error).message}`, { cause: err });
    }
    return names
      .filter((n) => !n.startsWith("."))
      .map((n) => (dirKey ? `${dirKey}/${n}` : n))
      .filter((k) => k.startsWith(prefix))
      .sort();
  }

  async close(): Promise<void> {}
}

/** Opens a catalog from its URL: `dir:///path` (or a bare absolute path), or `zdb://host:port/namespace`. */
export async function openCatalog(url: string): Promise<Catalog> {
  let root: string;
  if (url.startsWith("zdb:")) {
    const spec = parseBackendUrl(url);
    if (spec.kind !== "zdb") throw new VdiskError("bad-config", `bad zdb catalog URL ${url}`);
    return new ZdbCatalog(redactUrl(url), spec);
  }
  if (url.startsWith("dir://")) root = decodeURIComponent(new URL(url).pathname);
  else if (url.startsWith("/")) root = url;
  else throw new VdiskError("bad-config", `unsupported catalog URL ${JSON.stringify(url)} (expected dir:///path or zdb://host:port/namespace)`);
  await mkdir(root, { recursive: true });
  return new DirCatalog(url, root);
}
