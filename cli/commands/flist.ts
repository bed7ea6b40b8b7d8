// `zos flist mount|unmount|ls` over the node's flist.* methods; every other subcommand is zflist's
// (pack, inspect, tree, unpack, tag, sign, verify), run here on this machine.
import type { FlistMountInfo } from "../../init/methods/flist.ts";
import type { CliContext } from "./container.ts";
import { duration, table } from "../format.ts";

export const flistHelp = `  flist mount URL|FILE [--mountpoint DIR] [-s STORE]... [--trusted-key PUBHEX]...
                              mount an flist read-only on the node (prints where)
  flist unmount MOUNTPOINT | flist ls
  flist pack|inspect|tree|unpack|tag|sign|verify ...   zflist on this machine (zos flist help)`;

function rows(list: FlistMountInfo[]): string {
  const now = Date.now();
  return table(
    ["MOUNTPOINT", "UP", "SIGNED BY", "READS", "URL"],
    list.map((m) => [m.mountpoint, duration(now - m.mountedAt), m.verifiedKey ? m.verifiedKey.slice(0, 16) : null, String(m.requests.READ ?? 0), m.url]),
  );
}

export function parseFlistMountArgs(argv: string[], usage: (m: string) => Error): Record<string, unknown> {
  const [url, ...opts] = argv;
  if (!url || url.startsWith("-")) throw usage("usage: zos flist mount URL|FILE [--mountpoint DIR] [-s STORE]... [--trusted-key PUBHEX]...");
  const p: { url: string; mountpoint?: string; stores?: string[]; trustedKeys?: string[] } = { url };
  for (let i = 0; i < opts.length; i++) {
    const flag = opts[i];
    const v = opts[++i];
    if (v === undefined) throw usage(`${flag} needs a value`);
    if (flag === "--mountpoint") p.mountpoint = v;
    else if (flag === "-s" || flag === "--store") (p.stores ??= []).push(v);
    else if (flag === "--trusted-key") (p.trustedKeys ??= []).push(v.toLowerCase());
    else throw usage(`flist mount: unknown option '${flag}'`);
  }
  return p;
}

export async function flist(rest: string[], ctx: CliContext): Promise<number> {
  const [sub, arg] = rest;
  const { out } = ctx;
  switch (sub) {
    case "mount": {
      const params = parseFlistMountArgs(rest.slice(1), ctx.usage);
      const m = await ctx.withNode((c) => c.call<FlistMountInfo>("flist.mount", params));
      out(m, () => m.mountpoint);
      return 0;
    }
    case "unmount": {
      if (!arg || arg.startsWith("-")) throw ctx.usage("usage: zos flist unmount MOUNTPOINT");
      const r = await ctx.withNode((c) => c.call("flist.unmount", { mountpoint: arg }));
      out(r, () => `unmounted ${arg}`);
      return 0;
    }
    case "ls": {
      const list = await ctx.withNode((c) => c.call<FlistMountInfo[]>("flist.list"));
      out(list, () => rows(list));
      return 0;
    }
    default: {
      const { zflist } = await import("../../fuse-fs/cli.ts");
      // zos takes --json for itself; zflist's inspect is the one subcommand with a JSON form
      return zflist(ctx.json && sub === "inspect" ? [...rest, "--json"] : rest);
    }
  }
}
