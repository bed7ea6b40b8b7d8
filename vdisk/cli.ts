#!/usr/bin/env bun
// zvdisk: manage and serve vdisks. Run `zvdisk help` for usage.
import { closeAll, NbdServer, openVdiskManager, serveVdisks, VdiskError, type VdiskManager } from "./index.ts";
import { execWithServerAllocator } from "../store/index.ts";

const USAGE = `usage: zvdisk [--store URL]... [--catalog URL] COMMAND
  serve [--listen HOST:PORT]... [--unix PATH]... [--cache-mb N] [--read-only] [NAME...]
  create NAME --size SIZE [--block-size SIZE]
  list [--json]
  info NAME [--json]
  snapshot NAME SNAP            (creates NAME@SNAP)
  clone NAME@SNAP NEWNAME
  resize NAME --size SIZE
  delete NAME                   (a vdisk or NAME@SNAP; frees blocks nothing else uses)
  gc                            (frees garbage left by overwrites)
Stores: dir:///path, zdb://host:port/ns, zstore:///etc/zstore.yaml (erasure-coded). Catalogs: dir:///path, zdb://host:port/ns.
Defaults: --store $ZVDISK_STORE, --catalog $ZVDISK_CATALOG. Sizes take K, M, G, T suffixes (powers of 1024).`;

class UsageError extends Error {}

function parseSize(s: string | undefined, what: string): number {
  const m = /^(\d+)\s*([KMGT]?)(i?B)?$/i.exec(s ?? "");
  if (!m) throw new UsageError(`${what} must be a number with an optional K/M/G/T suffix, got ${JSON.stringify(s)}`);
  const mult = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2].toUpperCase() as "" | "K" | "M" | "G" | "T"];
  return Number(m[1]) * mult;
}

interface Parsed {
  positional: string[];
  flags: Map<string, string[]>;
}

const BOOLEAN_FLAGS = new Set(["--json", "--read-only"]);

function parse(argv: string[]): Parsed {
  const positional: string[] = [];
  const flags = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith("--")) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = eq > 0 ? a.slice(0, eq) : a;
    let value = eq > 0 ? a.slice(eq + 1) : "true";
    if (eq < 0 && !BOOLEAN_FLAGS.has(name)) {
      if (i + 1 >= argv.length) throw new UsageError(`${name} needs a value`);
      value = argv[++i];
    }
    flags.set(name, [...(flags.get(name) ?? []), value]);
  }
  return { positional, flags };
}

const one = (p: Parsed, name: string) => p.flags.get(name)?.at(-1);

function human(n: number): string {
  for (const [u, m] of [["T", 2 ** 40], ["G", 2 ** 30], ["M", 2 ** 20], ["K", 2 ** 10]] as const) if (n >= m && n % m === 0) return `${n / m}${u}`;
  return String(n);
}

async function serve(manager: VdiskManager, p: Parsed): Promise<void> {
  const server = new NbdServer();
  const names = await serveVdisks(manager, server, p.positional.length ? p.positional : undefined, { readOnly: one(p, "--read-only") === "true" });
  const listens = p.flags.get("--listen") ?? [];
  const unixes = p.flags.get("--unix") ?? [];
  if (listens.length === 0 && unixes.length === 0) listens.push("127.0.0.1:10809");
  for (const l of listens) {
    const i = l.lastIndexOf(":");
    const addr = server.listen({ host: l.slice(0, i) || "0.0.0.0", port: Number(l.slice(i + 1)) });
    console.log(JSON.stringify({ listening: addr, exports: names }));
  }
  for (const u of unixes) console.log(JSON.stringify({ listening: server.listen({ unix: u }), exports: names }));
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // The operator chose not to wait for the flush (bounded by the store's per-operation timeout).
      console.error(`zvdisk: ${signal} again: exiting without waiting for the flush; ${dirtySummary(manager)} lost`);
      process.exit(1);
    }
    stopping = true;
    console.error(`zvdisk: ${signal}: flushing ${dirtySummary(manager)} before exiting (${signal} again exits at once)`);
    try {
      await closeAll(manager, server);
      process.exit(0);
    } catch (err) {
      if (err instanceof VdiskError) console.error(`zvdisk: ${err.message} (${err.code})`);
      else console.error(`zvdisk: flushing on shutdown failed: ${(err as Error)?.stack ?? err}`);
      process.exit(1);
    }
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

function dirtySummary(manager: VdiskManager): string {
  const open = manager.openVdisks();
  const blocks = open.reduce((n, v) => n + v.dirtyBlocks, 0);
  return `${blocks} dirty blocks of ${open.length} open vdisks`;
}

async function main(argv: string[]): Promise<void> {
  const p = parse(argv);
  const [command, ...args] = p.positional;
  p.positional = args;
  if (!command || command === "help") {
    console.log(USAGE);
    return;
  }
  if (command === "serve") execWithServerAllocator("vdisk"); // before any store connection is opened
  const store = p.flags.get("--store") ?? (process.env.ZVDISK_STORE ? process.env.ZVDISK_STORE.split(/\s+/) : []);
  const catalog = one(p, "--catalog") ?? process.env.ZVDISK_CATALOG;
  if (store.length === 0 || !catalog) throw new UsageError("a store (--store or ZVDISK_STORE) and a catalog (--catalog or ZVDISK_CATALOG) are needed");
  const cacheMb = one(p, "--cache-mb");
  const manager = await openVdiskManager({ store, catalog, cacheBytes: cacheMb ? Number(cacheMb) * 2 ** 20 : undefined });
  const json = one(p, "--json") === "true";
  const need = (n: number) => {
    if (args.length !== n) throw new UsageError(`${command} takes ${n} argument${n === 1 ? "" : "s"}`);
  };
  switch (command) {
    case "serve":
      return serve(manager, p);
    case "create": {
      need(1);
      const r = await manager.create(args[0], parseSize(one(p, "--size"), "--size"), { blockSize: one(p, "--block-size") ? parseSize(one(p, "--block-size"), "--block-size") : undefined });
      console.log(`created ${r.name}: ${human(r.size)} in ${human(r.blockSize)} blocks`);
      break;
    }
    case "list": {
      const list = await manager.list();
      if (json) console.log(JSON.stringify(list.map(({ root: _root, ...r }) => r)));
      else for (const r of list) console.log(`${r.name}\t${r.kind}\t${human(r.size)}${r.origin ? `\tfrom ${r.origin}` : ""}`);
      break;
    }
    case "info": {
      need(1);
      const { root, ...info } = await manager.info(args[0]);
      const out = { ...info, root: root ? Buffer.from(root.id).toString("hex") : null, allocatedBytes: info.allocatedBlocks * info.blockSize };
      console.log(json ? JSON.stringify(out) : Object.entries(out).map(([k, v]) => `${k}: ${v}`).join("\n"));
      break;
    }
    case "snapshot":
      need(2);
      console.log(`created ${(await manager.snapshot(args[0], args[1])).name}`);
      break;
    case "clone":
      need(2);
      console.log(`created ${(await manager.clone(args[0], args[1])).name} from ${args[0]}`);
      break;
    case "resize": {
      need(1);
      const r = await manager.resize(args[0], parseSize(one(p, "--size"), "--size"));
      console.log(`${r.name} is now ${human(r.size)}`);
      break;
    }
    case "delete": {
      need(1);
      const g = await manager.delete(args[0]);
      console.log(`deleted ${args[0]}; freed ${g.deleted} blocks, kept ${g.kept} still in use`);
      break;
    }
    case "gc": {
      const g = await manager.gc();
      console.log(`freed ${g.deleted} of ${g.candidates} candidate blocks`);
      break;
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  }
  await manager.store.close();
  await manager.catalog.close();
}

/**
 * Runs one zvdisk command (argv without the program name), e.g. for `zos vdisk ...`. Resolves the
 * exit status; `serve` keeps running and exits on SIGTERM/SIGINT.
 */
export async function zvdisk(argv: string[]): Promise<number> {
  try {
    await main(argv);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) console.error(`zvdisk: ${err.message}\n${USAGE}`);
    else if (err instanceof VdiskError) console.error(`zvdisk: ${err.message} (${err.code})`);
    else console.error(`zvdisk: ${(err as Error)?.stack ?? err}`);
    return err instanceof UsageError ? 2 : 1;
  }
}

if (import.meta.main) {
  const status = await zvdisk(process.argv.slice(2));
  if (status !== 0) process.exit(status);
}
