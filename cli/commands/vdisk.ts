// `zos vdisk attach|detach|ls` over the node's vdisk.* methods; every other subcommand is zvdisk's
// (create, serve, list, snapshot, ...), run here on this machine against its own stores.
import type { VdiskInfo } from "../../init/vdisks/manager.ts";
import type { CliContext } from "./container.ts";
import { bytes, duration, table } from "../format.ts";

export const vdiskHelp = `  vdisk attach NAME nbd://HOST[:PORT]/EXPORT|nbd+unix:///EXPORT?socket=PATH [--format ext4] [--mount DIR] [--read-only]
                              connect an NBD export on the node (ext4 made if blank and --format given)
  vdisk detach NAME | vdisk ls
  vdisk create|serve|list|info|snapshot|clone|resize|delete|gc ...   zvdisk on this machine (zos vdisk help)`;

function rows(list: VdiskInfo[]): string {
  const now = Date.now();
  return table(
    ["NAME", "DEVICE", "SIZE", "MOUNTPOINT", "MODE", "USERS", "UP", "URL"],
    list.map((v) => [v.name, v.device, bytes(v.sizeBytes), v.mountpoint, v.readOnly ? "ro" : "rw", v.users.join(",") || null, duration(now - v.attachedAt), v.url]),
  );
}

export function parseAttachArgs(argv: string[], usage: (m: string) => Error): Record<string, unknown> {
  const [name, url, ...opts] = argv;
  if (!name || !url || name.startsWith("-") || url.startsWith("-")) throw usage("usage: zos vdisk attach NAME URL [--format ext4] [--mount DIR] [--read-only]");
  const p: Record<string, unknown> = { name, url };
  for (let i = 0; i < opts.length; i++) {
    const flag = opts[i];
    if (flag === "--read-only") p.readOnly = true;
    else if (flag === "--format" || flag === "--mount") {
      const v = opts[++i];
      if (v === undefined) throw usage(`${flag} needs a value`);
      p[flag === "--format" ? "format" : "mountpoint"] = v;
    } else throw usage(`vdisk attach: unknown option '${flag}'`);
  }
  return p;
}

export async function vdisk(rest: string[], ctx: CliContext): Promise<number> {
  const [sub, name] = rest;
  const { out } = ctx;
  switch (sub) {
    case "attach": {
      const params = parseAttachArgs(rest.slice(1), ctx.usage);
      const v = await ctx.withNode((c) => c.call<VdiskInfo>("vdisk.attach", params));
      out(v, () => `${rows([v])}${v.formatted ? "\n(made a new filesystem: the vdisk was blank)" : ""}`);
      return 0;
    }
    case "detach": {
      if (!name || name.startsWith("-")) throw ctx.usage("usage: zos vdisk detach NAME");
      const r = await ctx.withNode((c) => c.call("vdisk.detach", { name }));
      out(r, () => `detached ${name}`);
      return 0;
    }
    case "ls": {
      const list = await ctx.withNode((c) => c.call<VdiskInfo[]>("vdisk.list"));
      out(list, () => rows(list));
      return 0;
    }
    default: {
      const { zvdisk } = await import("../../vdisk/cli.ts");
      return zvdisk(rest);
    }
  }
}
