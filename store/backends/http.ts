// A read-only hub: GET <base>/<hex[0:2]>/<hex>, falling back to rfs's flat <base>/<hex> on 404.
import { StoreError, hex, type BlockId, type OpOptions } from "../types.ts";
import { runOp, type OpPolicy } from "../ops.ts";
import { checkId, type ScannableBackend } from "./backend.ts";

export class HttpBackend implements Omit<ScannableBackend, "list"> {
  readonly readOnly = true;

  constructor(
    readonly url: string,
    private readonly base: string,
    private readonly policy: OpPolicy,
  ) {}

  private candidates(id: BlockId): string[] {
    const h = hex(id);
    return [`${this.base}/${h.slice(0, 2)}/${h}`, `${this.base}/${h}`];
  }

  /** The first candidate that answers 200, or null if all say 404; other statuses are failures. */
  private async fetchFirst(id: BlockId, method: "GET" | "HEAD", signal: AbortSignal): Promise<Response | null> {
    for (const target of this.candidates(id)) {
      const res = await fetch(target, { method, signal });
      if (res.status === 404) {
        await res.body?.cancel();
        continue;
      }
      if (res.status !== 200) {
        await res.body?.cancel();
        const code = res.status >= 500 || res.status === 429 ? "unavailable" : "protocol";
        throw new StoreError(code, `${method} ${target} answered ${res.status} ${res.statusText}`);
      }
      return res;
    }
    return null;
  }

  async has(id: BlockId, opts?: OpOptions): Promise<boolean> {
    checkId(id);
    return runOp({ backend: this.url, id: hex(id), op: "has" }, this.policy, opts, async (signal) =>
      (await this.fetchFirst(id, "HEAD", signal)) !== null,
    );
  }

  async get(id: BlockId, opts?: OpOptions): Promise<Uint8Array | null> {
    checkId(id);
    return runOp({ backend: this.url, id: hex(id), op: "get" }, this.policy, opts, async (signal) => {
      const res = await this.fetchFirst(id, "GET", signal);
      return res ? new Uint8Array(await res.arrayBuffer()) : null;
    });
  }

  async put(id: BlockId): Promise<void> {
    throw new StoreError("read-only", "an http hub is read-only", { backend: this.url, id: hex(id) });
  }

  async delete(id: BlockId): Promise<void> {
    throw new StoreError("read-only", "an http hub is read-only", { backend: this.url, id: hex(id) });
  }

  ping(opts?: OpOptions): Promise<void> {
    return runOp({ backend: this.url, op: "ping" }, this.policy, opts, async (signal) => {
      const res = await fetch(this.base + "/", { method: "HEAD", signal });
      await res.body?.cancel();
      if (res.status >= 500) throw new StoreError("unavailable", `HEAD ${this.base}/ answered ${res.status}`);
    });
  }

  async close(): Promise<void> {}
}
