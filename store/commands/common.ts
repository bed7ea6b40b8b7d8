// What the zstore subcommands share: opening the store named on the command line, and errors.
import { StoreError, type BlockBackend } from "../types.ts";
import { loadConfig, openConfiguredStore, type StoreConfig } from "../config.ts";
import { openStore } from "../open.ts";
import type { ErasureStore } from "../erasure/store.ts";

export const DEFAULT_CONFIG = process.env.ZSTORE_CONFIG ?? "/etc/zstore.yaml";

export class UsageError extends Error {}

/** Opens `-s route...` (rfs-style, no erasure coding) or else the erasure-coded store of `-c config`. */
export async function openFromArgs(values: { config?: string; store?: string[] }): Promise<BlockBackend> {
  if (values.store && values.store.length > 0) {
    if (values.config) throw new UsageError("give either --config or --store, not both");
    return openStore(values.store);
  }
  return openConfiguredStore(loadConfig(values.config ?? DEFAULT_CONFIG));
}

export async function openErasureFromArgs(values: { config?: string }): Promise<{ store: ErasureStore; config: StoreConfig }> {
  const config = loadConfig(values.config ?? DEFAULT_CONFIG);
  return { store: await openConfiguredStore(config), config };
}

/** Runs a command body, turning typed errors into one line on stderr and an exit status. */
export async function runCommand(name: string, usage: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith?.("ERR_PARSE_ARGS")) {
      process.stderr.write(`zstore ${name}: ${(err as Error).message}\n${usage}\n`);
      return 2;
    }
    if (err instanceof StoreError) {
      const where = [err.context.backend, err.context.id && `block ${err.context.id}`].filter(Boolean).join(", ");
      process.stderr.write(`zstore ${name}: ${err.code}: ${err.message}${where && !err.message.includes(err.context.backend ?? "\0") ? ` (${where})` : ""}\n`);
      return 1;
    }
    throw err;
  }
}

/** Parses sizes like 512k, 4M, 1G or plain bytes. */
export function parseSize(text: string, what: string): number {
  const m = /^(\d+)([kmg]?)(i?b)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`${what}: not a size: "${text}"`);
  const unit = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 }[m[2].toLowerCase() as "" | "k" | "m" | "g"];
  return Number(m[1]) * unit;
}
