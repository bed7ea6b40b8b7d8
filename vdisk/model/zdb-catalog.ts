// A catalog in a 0-db namespace (user mode): each key is a 0-db key, SET replaces it atomically,
// SCAN lists them. Any node that reaches the 0-db can open the vdisks it names.
import type { BackendSpec } from "../../store/index.ts";
import { ZdbClient } from "../../store/zdb/client.ts";
import type { Catalog } from "./catalog.ts";
import { VdiskError } from "./errors.ts";

type ZdbSpec = Extract<BackendSpec, { kind: "zdb" }>;

export class ZdbCatalog implements Catalog {
  private client: Promise<ZdbClient> | null = null;

  constructor(
    readonly url: string,
    private readonly spec: ZdbSpec,
  ) {}

  private connect(): Promise<ZdbClient> {
    this.client ??= (async () => {
      const a = this.spec.address;
      const c = await ZdbClient.connect("socket" in a ? { path: a.socket } : a, { timeoutMs: this.spec.policy.timeoutMs });
      if (this.spec.password !== undefined) await c.select(this.spec.namespace, this.spec.password);
      else if (this.spec.namespace !== "default") await c.select(this.spec.namespace);
      return c;
    })();
    return this.client;
  }

  /** Runs one call; a broken connection is dropped so the next call reconnects. */
  private async call<T>(what: string, fn: (c: ZdbClient) => Promise<T>): Promise<T> {
    try {
      return await fn(await this.connect());
    } catch (err) {
      const c = this.client;
      this.client = null;
      c?.then((x) => x.close()).catch(() => {});
      throw new VdiskError("catalog", `${what} on ${this.url}: ${(err as Error).message}`, { cause: err });
    }
  }

  get(key: string): Promise<Uint8Array | null> {
    return this.call(`GET ${key}`, (c) => c.get(key));
  }

  async put(key: string, value: Uint8Array): Promise<void> {
    await this.call(`SET ${key}`, (c) => c.set(key, value));
  }

  async delete(key: string): Promise<void> {
    await this.call(`DEL ${key}`, (c) => c.del(key));
  }

  /** Walks SCAN from the start; 0-db ends a scan with the error "No more data". */
  list(prefix: string): Promise<string[]> {
    return this.call(`SCAN ${prefix}`, async (c) => {
      const keys: string[] = [];
      let cursor: Uint8Array | string | null = null;
      for (;;) {
        let reply;
        try {
          reply = await (cursor === null ? c.command("SCAN") : c.command("SCAN", cursor));
        } catch (err) {
          if (/no more data/i.test((err as Error).message)) break;
          throw err;
        }
        const [next, entries] = reply as [Uint8Array | string, [Uint8Array, number, number][]];
        for (const [key] of entries) {
          const k = Buffer.from(key).toString("latin1");
          if (k.startsWith(prefix)) keys.push(k);
        }
        cursor = next;
      }
      return keys.sort();
    });
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = null;
    if (c) await (await c).close();
  }
}
