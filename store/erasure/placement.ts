// Where the k+m shards of a block live, computed from the block id and the backend set alone.
//
// Rule (changing it relocates every shard, so it is part of the on-disk contract):
//   for shard i = 0..n-1 in order, pick the backend b with the highest score(id, i, b) among those
//   that hold no shard of this block yet and whose group holds fewer than `groupCap` shards.
//   score = fmix32 chain over (seed(b), id bytes 0..15 as four u32 LE words, i), where
//   seed(b) = first u32 LE of BLAKE3(b.key) and b.key is the backend's stable name (its id or URL).
// This is rendezvous hashing per shard: adding a backend takes over only the shards it now wins
// (about n/N of them), removing one moves only its own shards, and no table has to be stored.
// The greedy pick never paints itself into a corner: every pick uses one unit of the total
// capacity sum(min(groupCap, |group|)), so it succeeds whenever that total is at least n.
import { blake3 } from "../../native/index.ts";
import type { BlockId } from "../types.ts";

export interface PlacementMember {
  /** Stable name used for hashing; keep it when a backend's address changes. */
  key: string;
  group: number;
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function memberSeed(key: string): number {
  const d = blake3(new TextEncoder().encode(key));
  return (d[0] | (d[1] << 8) | (d[2] << 16) | (d[3] << 24)) >>> 0;
}

export class Placement {
  private readonly seeds: number[];

  constructor(
    readonly members: PlacementMember[],
    readonly shards: number,
    readonly groupCap: number,
  ) {
    this.seeds = members.map((m) => memberSeed(m.key));
  }

  /** Total shards the set can hold for one block under the group cap. */
  static capacity(members: PlacementMember[], groupCap: number): number {
    const sizes = new Map<number, number>();
    for (const m of members) sizes.set(m.group, (sizes.get(m.group) ?? 0) + 1);
    let total = 0;
    for (const size of sizes.values()) total += Math.min(size, groupCap);
    return total;
  }

  /** targets[i] = index into members of the backend that holds shard i. */
  targets(id: BlockId): number[] {
    const w = new DataView(id.buffer, id.byteOffset, 16);
    const words = [w.getUint32(0, true), w.getUint32(4, true), w.getUint32(8, true), w.getUint32(12, true)];
    const used = new Uint8Array(this.members.length);
    const perGroup = new Map<number, number>();
    const out: number[] = [];
    for (let i = 0; i < this.shards; i++) {
      let best = -1;
      let bestScore = -1;
      for (let b = 0; b < this.members.length; b++) {
        if (used[b] || (perGroup.get(this.members[b].group) ?? 0) >= this.groupCap) continue;
        let h = this.seeds[b];
        for (const word of words) h = fmix32(h ^ word);
        h = fmix32(h ^ i);
        if (h > bestScore) {
          bestScore = h;
          best = b;
        }
      }
      if (best < 0) throw new RangeError(`placement needs ${this.shards} backends under the group cap, has ${Placement.capacity(this.members, this.groupCap)}`);
      used[best] = 1;
      perGroup.set(this.members[best].group, (perGroup.get(this.members[best].group) ?? 0) + 1);
      out.push(best);
    }
    return out;
  }
}
