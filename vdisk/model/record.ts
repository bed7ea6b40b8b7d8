// The catalog record of a vdisk or snapshot, stored as JSON under `disk/<name>`:
//   { "format": 1|2, "kind": "vdisk"|"snapshot", "name", "size", "blockSize",
//     "blockHash": "blake3"|"blake2b",  -- the hash of its blocks' keys and ids, map included (store/chunk.ts);
//                                        snapshots and clones keep their origin's, as they share its blocks.
//                                        Format 1 (written before blockHash existed): BLAKE2b, the field absent.
//                                        Format 2: the field says. A BLAKE3 record is format 2, so a server
//                                        that predates it refuses the record ("bad format") rather than
//                                        reading its blocks as BLAKE2b, or copying it into a snapshot
//                                        without the field.
//     "root": null | { "id": hex, "key": hex },   -- the map's root block in the store (null: all holes)
//     "origin": name of the snapshot a clone came from, or null,
//     "created": ISO time, "generation": commits so far }
// Snapshots are named `<vdisk>@<snapshot>`. Garbage lists (blocks a commit or a delete stopped
// referencing) are JSON `{ "ids": [hex...] }` under `garbage/<time>-<random>`.
import { isBlockHash, type BlockHash, type BlockRef } from "../../store/index.ts";
import { VdiskError } from "./errors.ts";

export interface VdiskRecord {
  kind: "vdisk" | "snapshot";
  name: string;
  size: number;
  blockSize: number;
  blockHash: BlockHash;
  root: BlockRef | null;
  origin: string | null;
  created: string;
  generation: number;
}

const namePart = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

/** A vdisk name, or `<vdisk>@<snapshot>` when allowSnapshot. */
export function checkName(name: string, allowSnapshot = false): void {
  const parts = name.split("@");
  const ok = parts.length === 1 ? namePart.test(name) : allowSnapshot && parts.length === 2 && parts.every((p) => namePart.test(p));
  if (!ok) throw new VdiskError("bad-name", `bad ${allowSnapshot ? "vdisk or snapshot" : "vdisk"} name ${JSON.stringify(name)} (letters, digits, . _ -; snapshots as disk@snap)`);
}

/** What a new vdisk's blocks are hashed with: BLAKE3 costs half of BLAKE2b per block here (store/chunk.ts). */
export const NEW_VDISK_BLOCK_HASH: BlockHash = "blake3";

export const recordKey = (name: string) => `disk/${name}`;

const toHex = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("hex");
const fromHex = (s: unknown, what: string): Uint8Array => {
  if (typeof s !== "string" || !/^[0-9a-f]{64}$/.test(s)) throw new VdiskError("corrupt", `${what} is not 32 bytes of hex`);
  return new Uint8Array(Buffer.from(s, "hex"));
};

export function encodeRecord(r: VdiskRecord): Uint8Array {
  const json = { format: r.blockHash === "blake2b" ? 1 : 2, ...r, root: r.root && { id: toHex(r.root.id), key: toHex(r.root.key) } };
  return new TextEncoder().encode(JSON.stringify(json, null, 1) + "\n");
}

export function decodeRecord(bytes: Uint8Array, key: string): VdiskRecord {
  let j: Record<string, unknown>;
  try {
    j = JSON.parse(new TextDecoder().decode(bytes));
  } catch (err) {
    throw new VdiskError("corrupt", `catalog record ${key} is not JSON`, { cause: err });
  }
  const bad = (field: string) => new VdiskError("corrupt", `catalog record ${key}: bad ${field}`);
  if (j.format !== 1 && j.format !== 2) throw bad("format");
  if (j.kind !== "vdisk" && j.kind !== "snapshot") throw bad("kind");
  if (typeof j.name !== "string") throw bad("name");
  if (!Number.isSafeInteger(j.size) || (j.size as number) < 0) throw bad("size");
  if (!Number.isSafeInteger(j.blockSize) || (j.blockSize as number) <= 0) throw bad("blockSize");
  if (!Number.isSafeInteger(j.generation)) throw bad("generation");
  const blockHash = j.format === 1 ? (j.blockHash ?? "blake2b") : j.blockHash;
  if (!isBlockHash(blockHash)) throw bad("blockHash");
  if (j.format === 1 && blockHash !== "blake2b") throw bad("format (1 is BLAKE2b only)");
  const root = j.root as { id?: unknown; key?: unknown } | null;
  return {
    kind: j.kind,
    name: j.name,
    size: j.size as number,
    blockSize: j.blockSize as number,
    blockHash,
    root: root === null ? null : { id: fromHex(root?.id, "root id"), key: fromHex(root?.key, "root key") },
    origin: typeof j.origin === "string" ? j.origin : null,
    created: String(j.created ?? ""),
    generation: j.generation as number,
  };
}

export { toHex };
