#!/usr/bin/env bun
// zflist: make, inspect, unpack, tag, sign and mount rfs flists.
import { FlistError } from "./errors.ts";
import { Flist } from "./flist.ts";
import { summarize, treeLines } from "./inspect.ts";
import { pack, type PackProgress } from "./pack.ts";
import { unpack } from "./unpack.ts";
import { DEFAULT_CACHE_BYTES, mountFlist } from "./index.ts";
import { readSeed, signFlist, verifyFlist } from "./sign.ts";

const usage = `usage: zflist <command> ...
  pack DIR -o x.fl -s [xx-xx=]URL... [--keep-password] [--tag k=v]...
  inspect x.fl [--json]
  tree x.fl
  unpack x.fl DIR [-s URL]... [--preserve-ownership]
  tag x.fl list | get KEY | set KEY VALUE | delete KEY
  sign x.fl --key KEYFILE          (KEYFILE: 32-byte ed25519 seed, hex or raw)
  verify x.fl --trusted-key PUBKEY
  mount x.fl MOUNTPOINT --cache DIR [--cache-size N[K|M|G]] [-s URL]... [--trusted-key PUBKEY] [--timeout MS]`;

interface Parsed {
  positional: string[];
  flags: Map<string, string[]>;
  switches: Set<string>;
}

/** Flags that take a value; anything else starting with -- is a switch. */
const valued = new Set(["-o", "-s", "--tag", "--key", "--trusted-key", "--cache", "--cache-size", "--timeout"]);

function parse(args: string[]): Parsed {
  const p: Parsed = { positional: [], flags: new Map(), switches: new Set() };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (valued.has(a)) {
      if (i + 1 >= args.length) throw new FlistError("usage", `${a} needs a value`);
      const list = p.flags.get(a) ?? [];
      list.push(args[++i]);
      p.flags.set(a, list);
    } else if (a.startsWith("-") && a.length > 1) p.switches.add(a);
    else p.positional.push(a);
  }
  return p;
}

function one(p: Parsed, flag: string, required = true): string | undefined {
  const v = p.flags.get(flag);
  if (!v?.length) {
    if (required) throw new FlistError("usage", `missing ${flag}`);
    return undefined;
  }
  return v[v.length - 1];
}

function need(p: Parsed, n: number, what: string): string[] {
  if (p.positional.length !== n) throw new FlistError("usage", `expected ${what}`);
  return p.positional;
}

export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)i?B?$/i.exec(text.trim());
  if (!m) throw new FlistError("usage", `not a size: "${text}"`);
  const mult = { "": 1, K: 1 << 10, M: 1 << 20, G: 1 << 30, T: 2 ** 40 }[m[2].toUpperCase() as "" | "K" | "M" | "G" | "T"];
  return Math.floor(Number(m[1]) * mult);
}

function human(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes, u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(u ? 1 : 0)} ${units[u]}`;
}

function progressBar(): (p: PackProgress) => void {
  if (!process.stderr.isTTY) return () => {};
  const start = Date.now();
  return (p) => {
    const secs = Math.max(0.001, (Date.now() - start) / 1000);
    process.stderr.write(`\r\x1b[K${p.files} files  ${human(p.bytes)}  ${p.blocks} blocks (${p.uploaded} sent)  ${human(p.bytes / secs)}/s`);
  };
}

async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const p = parse(rest);
  switch (cmd) {
    case "pack": {
      const [dir] = need(p, 1, "one DIR to pack");
      const tags: Record<string, string> = {};
      for (const t of p.flags.get("--tag") ?? []) {
        const eq = t.indexOf("=");
        if (eq < 1) throw new FlistError("usage", `--tag wants key=value, got "${t}"`);
        tags[t.slice(0, eq)] = t.slice(eq + 1);
      }
      const bar = progressBar();
      const result = await pack({
        source: dir,
        output: one(p, "-o")!,
        stores: p.flags.get("-s") ?? [],
        keepPasswords: p.switches.has("--keep-password"),
        tags,
        onProgress: bar,
      });
      if (process.stderr.isTTY) process.stderr.write("\n");
      console.log(`packed ${result.files} files, ${human(result.bytes)} in ${result.blocks} blocks (${result.uploaded} uploaded)`);
      return 0;
    }
    case "inspect": {
      const [file] = need(p, 1, "x.fl");
      const flist = Flist.open(file);
      const s = summarize(flist);
      flist.close();
      if (p.switches.has("--json")) {
        console.log(JSON.stringify(s, null, 2));
        return 0;
      }
      console.log(`entries:     ${s.entries} (${s.files} files, ${s.directories} directories, ${s.symlinks} symlinks, ${s.special} special)`);
      console.log(`bytes:       ${s.bytes} (${human(s.bytes)})`);
      console.log(`blocks:      ${s.blocks} (${s.uniqueBlocks} distinct)`);
      console.log("routes:");
      for (const r of s.routes) console.log(`  ${r.start.toString(16).padStart(2, "0")}-${r.end.toString(16).padStart(2, "0")} ${r.url}`);
      console.log("tags:");
      for (const [k, v] of Object.entries(s.tags)) console.log(`  ${k} = ${v}`);
      return 0;
    }
    case "tree": {
      const [file] = need(p, 1, "x.fl");
      const flist = Flist.open(file);
      const lines: string[] = [];
      treeLines(flist, (l) => lines.push(l));
      flist.close();
      process.stdout.write(lines.join("\n") + "\n");
      return 0;
    }
    case "unpack": {
      const [file, dir] = need(p, 2, "x.fl DIR");
      const r = await unpack({ flist: file, target: dir, stores: p.flags.get("-s"), preserveOwnership: p.switches.has("--preserve-ownership") });
      console.log(`unpacked ${r.files} files, ${human(r.bytes)}`);
      return 0;
    }
    case "tag": {
      const [file, op, key, value] = p.positional;
      if (!file || !op) throw new FlistError("usage", "tag x.fl list|get|set|delete ...");
      const flist = Flist.open(file, { write: op === "set" || op === "delete" });
      try {
        if (op === "list") for (const [k, v] of flist.tags()) console.log(`${k}=${v}`);
        else if (op === "get") {
          const v = key === undefined ? null : flist.tag(key);
          if (v === null) throw new FlistError("not-found", `no tag "${key}"`, { flist: file });
          console.log(v);
        } else if (op === "set") {
          if (key === undefined || value === undefined) throw new FlistError("usage", "tag x.fl set KEY VALUE");
          flist.setTag(key, value);
        } else if (op === "delete") {
          if (key === undefined || !flist.deleteTag(key)) throw new FlistError("not-found", `no tag "${key}"`, { flist: file });
        } else throw new FlistError("usage", `unknown tag operation "${op}"`);
      } finally {
        flist.close();
      }
      return 0;
    }
    case "sign": {
      const [file] = need(p, 1, "x.fl");
      const pub = signFlist(file, readSeed(one(p, "--key")!));
      console.log(`signed; public key ${pub}`);
      return 0;
    }
    case "verify": {
      const [file] = need(p, 1, "x.fl");
      const flist = Flist.open(file);
      try {
        verifyFlist(flist, one(p, "--trusted-key")!);
      } finally {
        flist.close();
      }
      console.log("signature ok");
      return 0;
    }
    case "mount": {
      const [file, mountpoint] = need(p, 2, "x.fl MOUNTPOINT");
      const timeout = one(p, "--timeout", false);
      const m = await mountFlist({
        flist: file,
        mountpoint,
        cacheDir: one(p, "--cache")!,
        cacheBytes: parseSize(one(p, "--cache-size", false) ?? String(DEFAULT_CACHE_BYTES)),
        stores: p.flags.get("-s"),
        trustedKey: one(p, "--trusted-key", false),
        timeoutMs: timeout === undefined ? undefined : Number(timeout),
      });
      console.error(`zflist: ${file} mounted on ${mountpoint}`);
      const stop = () => void m.unmount();
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      process.on("SIGUSR1", () => console.error(`zflist: requests ${JSON.stringify(m.requestCounts())}`));
      await m.closed;
      console.error(`zflist: ${mountpoint} unmounted`);
      return 0;
    }
    default:
      console.error(usage);
      return cmd === undefined || cmd === "help" || cmd === "--help" ? 0 : 2;
  }
}

/** Runs one zflist command (argv without the program name), e.g. for `zos flist ...`; resolves to the exit code. */
export async function zflist(argv: string[]): Promise<number> {
  try {
    return await main(argv);
  } catch (err) {
    const e = err as Error & { code?: string };
    console.error(`zflist: ${e.name === "FlistError" || e.name === "StoreError" ? `${e.code}: ` : ""}${e.message}`);
    return e.name === "FlistError" && e.code === "usage" ? 2 : 1;
  }
}

if (import.meta.main) zflist(process.argv.slice(2)).then((code) => process.exit(code));
