// An erasure-coded block store over groups (datacenters) of backends.
// put: split into k data shards, add m parity shards (native Reed-Solomon), frame each with its own
// checksum (shard.ts) and write shard i to placement target i (placement.ts), all in parallel.
// A shard bound for a zdb backend is built inside that connection's outgoing buffer (reservePut),
// so the block's bytes are copied once on their way to the socket.
// get: fetch the k data shards from their targets; every miss, failure or bad checksum starts the
// next parity fetch, and a hedge timer starts all of them when a backend is slow, so a backend that
// never answers costs hedgeMs, not a timeout. The first k shards that verify rebuild the block.
// If the targets cannot supply k (placement changed and repair has not run yet), every other
// backend in the set is asked too: a shard is self-describing, so it is usable wherever it sits.
import { rsEncodeInto, rsReconstruct } from "../../native/index.ts";
import { StoreError, hex, type BlockBackend, type BlockId, type OpOptions } from "../types.ts";
import { runOp, asStoreError, type OpPolicy } from "../ops.ts";
import { canPutInPlace, checkId, isScannable, type ReservedPut } from "../backends/backend.ts";
import { Placement } from "./placement.ts";
import { FramePool, frameLength, framePayload, newFrame, openFrame, payloadLength, sealFrame, writeFrameHeader, type Shard } from "./shard.ts";

export interface ErasureMember {
  backend: BlockBackend;
  /** Stable placement name; defaults to the backend URL. */
  key: string;
  group: number;
  groupName: string;
}

export interface ErasureOptions {
  k: number;
  m: number;
  /** Whole groups whose loss every block must survive (0: any m backends). */
  groupLoss: number;
  /** Shards that must be stored for a put to succeed; default k+m. */
  writeQuorum: number;
  /** Deadline of a whole put or get. */
  policy: OpPolicy;
  /** After this long without k good shards, all parity fetches start. */
  hedgeMs: number;
}

/** What a read found at one backend for one block. */
export type ShardProbe =
  | { member: number; state: "ok"; shard: Shard }
  | { member: number; state: "missing" }
  | { member: number; state: "corrupt"; reason: string }
  | { member: number; state: "failed"; error: StoreError };

export function groupCapFor(m: number, groupLoss: number): number {
  return groupLoss > 0 ? Math.floor(m / groupLoss) : Number.MAX_SAFE_INTEGER;
}

export class ErasureStore implements BlockBackend {
  readonly readOnly = false;
  readonly url: string;
  readonly placement: Placement;
  readonly n: number;
  private readonly pool = new FramePool();

  constructor(
    readonly members: ErasureMember[],
    readonly options: ErasureOptions,
  ) {
    const { k, m, groupLoss, writeQuorum } = options;
    this.n = k + m;
    if (k < 1 || m < 0 || this.n > 255) throw new StoreError("bad-config", `k=${k} m=${m}: need k >= 1, m >= 0, k+m <= 255`);
    if (writeQuorum < k || writeQuorum > this.n) throw new StoreError("bad-config", `write quorum ${writeQuorum} must be between k=${k} and k+m=${this.n}`);
    const cap = groupCapFor(m, groupLoss);
    if (cap === 0) throw new StoreError("bad-config", `surviving the loss of ${groupLoss} groups needs m >= ${groupLoss}, m is ${m}`);
    const keys = new Set<string>();
    for (const mem of members) {
      if (keys.has(mem.key)) throw new StoreError("bad-config", `backend "${mem.key}" appears twice`);
      keys.add(mem.key);
    }
    const groups = new Set(members.map((mem) => mem.group)).size;
    if (groupLoss >= groups && groupLoss > 0) throw new StoreError("bad-config", `cannot survive losing ${groupLoss} of ${groups} groups`);
    const capacity = Placement.capacity(members, cap);
    if (capacity < this.n) {
      throw new StoreError(
        "bad-config",
        `k+m=${this.n} shards need ${this.n} backends${groupLoss ? ` with at most ${cap} per group (to survive losing ${groupLoss} group${groupLoss > 1 ? "s" : ""})` : ""}; the set can hold ${capacity}`,
      );
    }
    this.placement = new Placement(members.map((mem) => ({ key: mem.key, group: mem.group })), this.n, cap);
    this.url = `erasure(k=${k},m=${m}; ${members.length} backends in ${groups} groups)`;
  }

  targets(id: BlockId): number[] {
    return this.placement.targets(id);
  }

  /** Encodes a block into its k+m sealed shard frames. */
  encode(id: BlockId, data: Uint8Array): Uint8Array[] {
    const { k, m } = this.options;
    if (data.length > 0xffffffff) throw new RangeError("block larger than 4 GiB");
    const frames: Uint8Array[] = [];
    for (let i = 0; i < this.n; i++) frames.push(newFrame(i, k, m, data.length));
    return this.encodeInto(id, data, frames);
  }

  /** Fills the payloads of k+m frames whose headers are written, and seals them. */
  private encodeInto(id: BlockId, data: Uint8Array, frames: Uint8Array[]): Uint8Array[] {
    const { k, m } = this.options;
    const len = payloadLength(data.length, k);
    const dataPayloads = frames.slice(0, k).map(framePayload);
    for (let i = 0; i < k; i++) {
      const piece = data.subarray(Math.min(data.length, i * len), Math.min(data.length, (i + 1) * len));
      dataPayloads[i].set(piece);
      dataPayloads[i].fill(0, piece.length); // zero padding past the end of the block
    }
    // Parity goes straight into its frames: no allocation, no copy.
    if (m > 0) rsEncodeInto(k, m, dataPayloads, frames.slice(k).map(framePayload));
    for (const f of frames) sealFrame(id, f);
    return frames;
  }

  /** Rebuilds all k+m shard frames from at least k good ones (for repair). */
  async rebuildFrames(id: BlockId, good: Shard[]): Promise<Uint8Array[]> {
    return this.encode(id, Buffer.concat(this.pieces(id, good)));
  }

  async put(id: BlockId, data: Uint8Array, opts?: OpOptions): Promise<void> {
    checkId(id);
    await runOp({ backend: this.url, id: hex(id), op: "put" }, this.options.policy, opts, () => this.writeShards(id, data));
  }

  /**
   * Puts many blocks, `concurrency` (default 32) at a time, under one deadline for the whole call
   * (opts.timeoutMs, else the store's). Resolves, in the order given, to null for each block
   * stored and the StoreError that put() would have thrown for each that was not; a block still
   * being written at the deadline or abort gets a "timeout" or "aborted" error (its shards may
   * still land, as with put()). Rejects only for a malformed id (TypeError), before writing any.
   * For a caller with many blocks at hand (a vdisk flush): no deadline timer or controller per
   * block, and per-block outcomes instead of one error for all.
   */
  async putMany(blocks: { id: BlockId; data: Uint8Array }[], opts?: OpOptions & { concurrency?: number }): Promise<(StoreError | null)[]> {
    for (const b of blocks) checkId(b.id);
    const results: (StoreError | null | undefined)[] = blocks.map(() => undefined);
    const { retries, retryDelayMs } = this.options.policy;
    const timeoutMs = opts?.timeoutMs ?? this.options.policy.timeoutMs;
    let stop: StoreError | null = null;
    let wake: () => void = () => {};
    const stopped = new Promise<void>((resolve) => (wake = resolve));
    const end = (e: StoreError) => {
      stop ??= e;
      wake();
    };
    const timer = setTimeout(() => end(new StoreError("timeout", `putMany timed out after ${timeoutMs} ms`, { backend: this.url })), timeoutMs);
    const onAbort = () => end(new StoreError("aborted", "putMany aborted", { backend: this.url }));
    if (opts?.signal?.aborted) onAbort();
    else opts?.signal?.addEventListener("abort", onAbort, { once: true });
    let next = 0;
    const lane = async () => {
      while (stop === null && next < blocks.length) {
        const i = next++;
        const { id, data } = blocks[i];
        // Retried as put() retries (runOp): only "unavailable", with the same backoff.
        for (let n = 0; stop === null; n++) {
          try {
            await Promise.race([this.writeShards(id, data), stopped]);
            if (stop === null) results[i] = null;
            break;
          } catch (err) {
            const e = asStoreError(err, { backend: this.url, id: hex(id), op: "put" });
            if (e.code !== "unavailable" || n >= retries) {
              results[i] = e;
              break;
            }
            await Promise.race([Bun.sleep(retryDelayMs * 2 ** n), stopped]);
          }
        }
      }
    };
    try {
      await Promise.all(Array.from({ length: Math.min(opts?.concurrency ?? 32, blocks.length) }, lane));
    } finally {
      clearTimeout(timer);
      opts?.signal?.removeEventListener("abort", onAbort);
    }
    return results.map((r, i) => (r === undefined ? new StoreError(stop!.code, stop!.message, { backend: this.url, id: hex(blocks[i].id) }) : r));
  }

  /**
   * Writes the k+m shards of one block to their targets; resolves once every write settled, or
   * hedgeMs after the write quorum was reached (stragglers keep going and are not waited for).
   * Shard writes carry no abort signal: each is bounded by its backend's own deadline, and the
   * caller's deadline or abort ends the put through runOp's race. A signal per shard costs a
   * listener added and removed per write, which at 64 KiB blocks was a tenth of the put's CPU.
   */
  private writeShards(id: BlockId, data: Uint8Array): Promise<void> {
    const { k, m, writeQuorum, hedgeMs } = this.options;
    if (data.length > 0xffffffff) throw new RangeError("block larger than 4 GiB");
    const targets = this.targets(id);
    const n = this.n;
    // Each frame is built where it will be sent from: inside a zdb connection's outgoing buffer
    // when the backend offers that (one copy of the block's bytes fewer), else in a pooled frame.
    const size = frameLength(data.length, k);
    const reserved: (ReservedPut | null)[] = [];
    const frames: Uint8Array[] = [];
    const pooled: Uint8Array[] = [];
    for (let i = 0; i < n; i++) {
      const backend = this.members[targets[i]].backend;
      const r = canPutInPlace(backend) ? backend.reservePut(id, size) : null;
      reserved.push(r);
      const frame = r ? r.value : this.pool.take(size);
      if (!r) pooled.push(frame);
      frames.push(writeFrameHeader(frame, i, k, m, data.length));
    }
    try {
      this.encodeInto(id, data, frames);
    } catch (err) {
      for (const r of reserved) r?.cancel();
      throw err;
    }
    return new Promise<void>((resolve, reject) => {
      const failures: string[] = [];
      let stored = 0;
      let settled = 0;
      let full = false;
      let done = false;
      let grace: Timer | undefined;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(grace);
        // A failed or cut-off write may still be reading its frame: recycle only when every write succeeded.
        if (stored === n) this.pool.give(pooled);
        if (stored >= writeQuorum) resolve();
        else reject(new StoreError(full ? "full" : "unavailable", `stored ${stored} of ${n} shards, need ${writeQuorum}: ${failures.join("; ")}`));
      };
      const stored1 = () => {
        stored++;
        if (++settled === n) finish();
        else if (stored === writeQuorum) grace = setTimeout(finish, hedgeMs);
      };
      const failed1 = (t: number) => (err: unknown) => {
        full ||= err instanceof StoreError && err.code === "full";
        failures.push(`${this.members[t].backend.url}: ${(err as Error).message}`);
        if (++settled === n) finish();
      };
      // Reserved writes first: a connection takes no other command while one of them is open.
      for (const inPlace of [true, false]) {
        for (let i = 0; i < n; i++) {
          const r = reserved[i];
          if ((r !== null) !== inPlace) continue;
          let write: Promise<void>;
          try {
            write = r ? r.send() : this.members[targets[i]].backend.put(id, frames[i]);
          } catch (err) {
            write = Promise.reject(err);
          }
          write.then(stored1, failed1(targets[i]));
        }
      }
    });
  }

  /** Fetches and checks one member's shard of a block. */
  async probe(id: BlockId, member: number, signal?: AbortSignal): Promise<ShardProbe> {
    try {
      const frame = await this.members[member].backend.get(id, { signal });
      if (frame === null) return { member, state: "missing" };
      const shard = openFrame(id, frame);
      if (typeof shard === "string") return { member, state: "corrupt", reason: shard };
      if (shard.k !== this.options.k || shard.m !== this.options.m) {
        return { member, state: "corrupt", reason: `shard is coded ${shard.k}+${shard.m}, the store uses ${this.options.k}+${this.options.m}` };
      }
      return { member, state: "ok", shard };
    } catch (err) {
      return { member, state: "failed", error: asStoreError(err, { backend: this.members[member].backend.url, id: hex(id), op: "get" }) };
    }
  }

  /**
   * The block's bytes in order, as k pieces: the data shards' payloads (views of the frames as
   * received, rebuilt from parity where one is missing), cut to the block length.
   */
  private pieces(id: BlockId, good: Shard[]): Uint8Array[] {
    const { k, m } = this.options;
    const byIndex: (Shard | undefined)[] = Array.from({ length: this.n }, () => undefined);
    for (const s of good) byIndex[s.index] ??= s;
    const blockLength = good[0].blockLength;
    if (good.some((s) => s.blockLength !== blockLength)) throw new StoreError("corrupt", "shards disagree on the block length", { id: hex(id) });
    let payloads: Uint8Array[];
    if (byIndex.slice(0, k).every(Boolean)) {
      payloads = byIndex.slice(0, k).map((s) => s!.payload);
    } else {
      payloads = (rsReconstruct(k, m, byIndex.map((s) => s?.payload ?? null))).slice(0, k);
    }
    const len = payloadLength(blockLength, k);
    const out: Uint8Array[] = [];
    for (let i = 0; i < k && i * len < blockLength; i++) out.push(payloads[i].subarray(0, Math.min(len, blockLength - i * len)));
    return out;
  }

  /**
   * Collects k good shards: targets first (data shards, then parity as needed or after the hedge
   * delay), then every other member. Returns null when no member holds any shard of the block.
   */
  private async gather(id: BlockId, signal: AbortSignal): Promise<Shard[] | null> {
    const { k } = this.options;
    const targets = this.targets(id);
    const others = this.members.map((_, i) => i).filter((i) => !targets.includes(i));
    const good = new Map<number, Shard>();
    const problems: string[] = [];
    let failures = 0;

    const round = (order: number[], eager: number) =>
      new Promise<void>((resolve) => {
        let next = 0;
        let running = 0;
        let hedge: Timer | undefined;
        let done = false;
        const finish = () => {
          done = true;
          clearTimeout(hedge);
          resolve();
        };
        const launch = () => {
          if (done || next >= order.length) return;
          const member = order[next++];
          running++;
          // No signal per probe (see writeShards): the get's deadline or abort ends it through
          // runOp, and a probe still out then is bounded by its backend's deadline.
          this.probe(id, member).then((p) => {
            running--;
            if (done) return;
            const before = good.size;
            if (p.state === "ok") good.set(p.shard.index, p.shard);
            else if (p.state === "corrupt") problems.push(`${this.members[member].backend.url}: ${p.reason}`);
            else if (p.state === "failed") {
              failures++;
              problems.push(`${this.members[member].backend.url}: ${p.error.message}`);
            }
            if (good.size >= k) return finish();
            if (good.size === before) launch(); // nothing new (missing, bad, or a duplicate index): ask the next
            if (running === 0 && next >= order.length) finish();
          });
        };
        for (let i = 0; i < eager; i++) launch();
        if (running === 0) return finish();
        hedge = setTimeout(() => {
          while (next < order.length) launch();
        }, this.options.hedgeMs);
      });

    await round(targets, k);
    if (good.size < k && others.length > 0) await round(others, others.length);
    signal.throwIfAborted();
    if (good.size >= k) return [...good.values()];
    if (good.size === 0 && problems.length === 0) return null;
    throw new StoreError(
      failures > 0 && good.size === 0 && problems.length === failures ? "unavailable" : "not-enough-shards",
      `found ${good.size} good shards of ${this.n}, need ${k}${problems.length ? `: ${problems.join("; ")}` : ""}`,
      { backend: this.url, id: hex(id) },
    );
  }

  async get(id: BlockId, opts?: OpOptions): Promise<Uint8Array | null> {
    const parts = await this.getPieces(id, opts);
    return parts && Buffer.concat(parts);
  }

  /**
   * get() without joining the pieces: for a reader that copies the block somewhere anyway (into a
   * buffer it hands to a decode thread), one fresh block-sized buffer fewer per read.
   */
  async getPieces(id: BlockId, opts?: OpOptions): Promise<Uint8Array[] | null> {
    checkId(id);
    return runOp({ backend: this.url, id: hex(id), op: "get" }, { ...this.options.policy, retries: 0 }, opts, async (signal) => {
      const good = await this.gather(id, signal);
      return good && this.pieces(id, good);
    });
  }

  /** True when at least k shards of the block are present (not verified: that takes a get). */
  async has(id: BlockId, opts?: OpOptions): Promise<boolean> {
    checkId(id);
    return runOp({ backend: this.url, id: hex(id), op: "has" }, { ...this.options.policy, retries: 0 }, opts, async (signal) => {
      const answers = await Promise.allSettled(this.members.map((mem) => mem.backend.has(id, { signal })));
      return answers.filter((a) => a.status === "fulfilled" && a.value).length >= this.options.k;
    });
  }

  /** Removes every shard of the block from every member that answers. */
  async delete(id: BlockId, opts?: OpOptions): Promise<void> {
    checkId(id);
    await runOp({ backend: this.url, id: hex(id), op: "delete" }, this.options.policy, opts, async (signal) => {
      const results = await Promise.allSettled(this.members.map((mem) => mem.backend.delete(id, { signal })));
      const failed = results.filter((r) => r.status === "rejected").length;
      if (failed > 0) throw new StoreError("unavailable", `delete failed on ${failed} of ${this.members.length} backends; retry to finish`);
    });
  }

  /** Union of the ids every reachable member lists; members that cannot list are reported. */
  async *list(opts?: { signal?: AbortSignal; onError?: (member: number, err: StoreError) => void }): AsyncIterable<BlockId> {
    const seen = new Set<string>();
    for (let i = 0; i < this.members.length; i++) {
      const backend = this.members[i].backend;
      if (!isScannable(backend)) continue;
      try {
        for await (const id of backend.list({ signal: opts?.signal })) {
          const h = hex(id);
          if (seen.has(h)) continue;
          seen.add(h);
          yield id;
        }
      } catch (err) {
        opts?.onError?.(i, asStoreError(err, { backend: backend.url, op: "list" }));
      }
    }
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.members.map((mem) => mem.backend.close()));
  }
}
