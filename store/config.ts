// The zstore YAML config: an erasure-coded set of backends in groups (datacenters). Example:
//
//   k: 4                      # data shards per block
//   m: 2                      # parity shards per block
//   survive_group_loss: 1     # whole groups any block must survive losing (default 0: any m backends)
//   write_quorum: 6           # shards a put must store (default k+m)
//   timeout_ms: 10000         # deadline of one put/get (default 10000)
//   hedge_ms: 100             # start parity fetches after this long without k shards (default 100)
//   groups:
//     - name: dc1
//       backends:
//         - zdb://10.0.0.1:9900/blocks
//         - url: zdb://10.0.0.2:9900/blocks
//           key: dc1-b        # stable placement name (default: the URL without its password)
//     - name: dc2
//       backends: [ "dir:///mnt/disk1/blocks" ]
//   repair:
//     interval: 10m           # background repair period (s, m, h suffixes)
//     concurrency: 4          # blocks checked at once
//
// Every key is checked; an unknown or mistyped one is an error that names it.
import { readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { StoreError } from "./types.ts";
import { parseBackendUrl, redactUrl } from "./backends/url.ts";
import { defaultPolicy } from "./ops.ts";
import { openBackend } from "./open.ts";
import { ErasureStore, type ErasureMember } from "./erasure/store.ts";

export interface BackendConfig {
  url: string;
  key: string;
}

export interface StoreConfig {
  k: number;
  m: number;
  surviveGroupLoss: number;
  writeQuorum: number;
  timeoutMs: number;
  hedgeMs: number;
  groups: { name: string; backends: BackendConfig[] }[];
  repair: { intervalMs: number; concurrency: number };
}

class ConfigReader {
  constructor(private readonly source: string) {}

  fail(path: string, why: string): StoreError {
    return new StoreError("bad-config", `${this.source}: ${path}: ${why}`);
  }

  object(value: unknown, path: string, allowed: string[]): Record<string, unknown> {
    if (value === null || typeof value !== "object" || Array.isArray(value)) throw this.fail(path, "must be a mapping");
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) throw this.fail(path ? `${path}.${key}` : key, `unknown key (expected one of ${allowed.join(", ")})`);
    }
    return value as Record<string, unknown>;
  }

  int(value: unknown, path: string, min: number, max: number, fallback?: number): number {
    if (value === undefined && fallback !== undefined) return fallback;
    if (value === undefined) throw this.fail(path, "is required");
    if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
      throw this.fail(path, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`);
    }
    return value;
  }

  duration(value: unknown, path: string, fallback: number): number {
    if (value === undefined) return fallback;
    if (typeof value === "number" && value > 0) return value * 1000;
    const m = typeof value === "string" ? /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(value) : null;
    if (!m) throw this.fail(path, `must be a duration like 30s, 10m or 1h, got ${JSON.stringify(value)}`);
    const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as "ms" | "s" | "m" | "h"];
    return Number(m[1]) * unit;
  }

  string(value: unknown, path: string): string {
    if (typeof value !== "string" || value === "") throw this.fail(path, "must be a non-empty string");
    return value;
  }

  list(value: unknown, path: string): unknown[] {
    if (!Array.isArray(value) || value.length === 0) throw this.fail(path, "must be a non-empty list");
    return value;
  }
}

/** Checks a parsed YAML document; `source` names it in errors. */
export function parseConfig(doc: unknown, source = "config"): StoreConfig {
  const r = new ConfigReader(source);
  const top = r.object(doc, "", ["k", "m", "survive_group_loss", "write_quorum", "timeout_ms", "hedge_ms", "groups", "repair"]);
  const k = r.int(top.k, "k", 1, 254);
  const m = r.int(top.m, "m", 0, 255 - k);
  const surviveGroupLoss = r.int(top.survive_group_loss, "survive_group_loss", 0, 255, 0);
  const writeQuorum = r.int(top.write_quorum, "write_quorum", k, k + m, k + m);
  const timeoutMs = r.int(top.timeout_ms, "timeout_ms", 1, 3_600_000, defaultPolicy.timeoutMs);
  const hedgeMs = r.int(top.hedge_ms, "hedge_ms", 0, 3_600_000, 100);
  const seenUrls = new Set<string>();
  const groups = r.list(top.groups, "groups").map((g, gi) => {
    const group = r.object(g, `groups[${gi}]`, ["name", "backends"]);
    const name = group.name === undefined ? `group${gi}` : r.string(group.name, `groups[${gi}].name`);
    const backends = r.list(group.backends, `groups[${gi}].backends`).map((b, bi) => {
      const path = `groups[${gi}].backends[${bi}]`;
      const entry = typeof b === "string" ? { url: b } : r.object(b, path, ["url", "key"]);
      const url = r.string(entry.url, `${path}.url`);
      const where = typeof b === "string" ? path : `${path}.url`;
      let kind: string;
      try {
        kind = parseBackendUrl(url).kind;
      } catch (err) {
        throw r.fail(where, (err as Error).message);
      }
      if (kind === "zstore") throw r.fail(where, "a member of an erasure-coded set must be a dir, zdb or http backend, not another zstore");
      if (seenUrls.has(url)) throw r.fail(path, `backend ${redactUrl(url)} is listed twice`);
      seenUrls.add(url);
      const key = entry.key === undefined ? redactUrl(url) : r.string(entry.key, `${path}.key`);
      return { url, key };
    });
    return { name, backends };
  });
  const repairDoc = top.repair === undefined ? {} : r.object(top.repair, "repair", ["interval", "concurrency"]);
  const repair = {
    intervalMs: r.duration(repairDoc.interval, "repair.interval", 10 * 60_000),
    concurrency: r.int(repairDoc.concurrency, "repair.concurrency", 1, 256, 4),
  };
  return { k, m, surviveGroupLoss, writeQuorum, timeoutMs, hedgeMs, groups, repair };
}

export function loadConfig(path: string): StoreConfig {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new StoreError("bad-config", `cannot read config ${path}: ${(err as Error).message}`, {}, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new StoreError("bad-config", `${path}: not valid YAML: ${(err as Error).message}`, {}, { cause: err });
  }
  return parseConfig(doc, path);
}

/** Opens every backend of the config (connections are made lazily) as one erasure-coded store. */
export async function openConfiguredStore(config: StoreConfig): Promise<ErasureStore> {
  const members: ErasureMember[] = [];
  try {
    for (const [gi, group] of config.groups.entries()) {
      for (const b of group.backends) members.push({ backend: await openBackend(b.url), key: b.key, group: gi, groupName: group.name });
    }
    return new ErasureStore(members, {
      k: config.k,
      m: config.m,
      groupLoss: config.surviveGroupLoss,
      writeQuorum: config.writeQuorum,
      policy: { ...defaultPolicy, timeoutMs: config.timeoutMs },
      hedgeMs: config.hedgeMs,
    });
  } catch (err) {
    await Promise.allSettled(members.map((mem) => mem.backend.close()));
    throw err;
  }
}
