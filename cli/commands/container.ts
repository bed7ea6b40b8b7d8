// `zos container ...`: run, ls, info, logs [-f], start, stop, restart, rm, exec over the container.* RPC methods.
import { randomBytes } from "node:crypto";
import type { ContainerInfo } from "../../init/containers/index.ts";
import type { RpcClient } from "../../init/rpc/client.ts";
import { RpcCallError } from "../../init/rpc/client.ts";
import type { LogLine } from "../../init/supervisor/log-ring.ts";
import { bytes, duration, table } from "../format.ts";

export interface CliContext {
  json: boolean;
  /** Prints `value` as JSON with --json, else the human text. */
  out(value: unknown, human: () => string): void;
  withNode<T>(fn: (c: RpcClient) => Promise<T>): Promise<T>;
  /** Builds the usage error the CLI exits 2 with. */
  usage(message: string): Error;
  formatLogLine(l: LogLine): string;
}

export const containerHelp = `  container run --flist URL|FILE [--name NAME] [--env K=V]... [--port HOST:CTR[/udp]]...
                [--memory 256M] [--cpus 0.5] [--cpu-weight N] [--pids N] [--restart never|on-failure|always]
                [--mount type=tmpfs,target=/x[,size=64M] | type=flist,flist=F,target=/x | type=vdisk,vdisk=NAME[,url=nbd://H:P/E],target=/x]...
                [--rw-vdisk NAME[=nbd://H:P/E]] (root's writes kept on a vdisk) [--cwd DIR]
                [--user UID[:GID]] [--hostname H] [--network host] [--store URL]... [--privileged] -- CMD...
  container ls | info NAME | logs NAME [-n LINES] [-f]
  container start NAME | stop NAME [-t SECONDS] | restart NAME | rm NAME [-t SECONDS]
  container exec NAME -- CMD...   (admin key)`;

const units: Record<string, number> = { "": 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 };

export function parseSize(v: string): number | null {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$/i.exec(v.trim());
  if (!m) return null;
  return Math.round(Number(m[1]) * units[m[2].toLowerCase()]);
}

interface RunParams {
  name: string;
  flist: string;
  args: string[];
  env: Record<string, string>;
  ports: { hostPort: number; containerPort: number; protocol: "tcp" | "udp" }[];
  mounts: Record<string, unknown>[];
  limits: Record<string, number>;
  stores: string[];
  [k: string]: unknown;
}

export function parseRunArgs(argv: string[], usage: (m: string) => Error): RunParams {
  const dash = argv.indexOf("--");
  const opts = dash >= 0 ? argv.slice(0, dash) : argv;
  const p: RunParams = { name: "", flist: "", args: dash >= 0 ? argv.slice(dash + 1) : [], env: {}, ports: [], mounts: [], limits: {}, stores: [] };
  for (let i = 0; i < opts.length; i++) {
    const flag = opts[i];
    const value = (): string => {
      const v = opts[++i];
      if (v === undefined) throw usage(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--flist": p.flist = value(); break;
      case "--name": p.name = value(); break;
      case "--cwd": p.cwd = value(); break;
      case "--hostname": p.hostname = value(); break;
      case "--store": p.stores.push(value()); break;
      case "--privileged": p.privileged = true; break;
      case "--rw-vdisk": {
        const v = value(), eq = v.indexOf("=");
        p.rwVdisk = eq < 0 ? { vdisk: v } : { vdisk: v.slice(0, eq), url: v.slice(eq + 1) };
        break;
      }
      case "--restart": p.restart = value(); break;
      case "--network": p.network = value() === "host" ? "host" : "private"; break;
      case "--env": case "-e": {
        const v = value(), eq = v.indexOf("=");
        if (eq <= 0) throw usage(`--env ${v}: expected KEY=VALUE`);
        p.env[v.slice(0, eq)] = v.slice(eq + 1);
        break;
      }
      case "--port": case "-p": {
        const v = value(), m = /^(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(v);
        if (!m) throw usage(`--port ${v}: expected HOST:CONTAINER[/tcp|/udp], e.g. 8080:80`);
        p.ports.push({ hostPort: Number(m[1]), containerPort: Number(m[2]), protocol: (m[3] ?? "tcp") as "tcp" | "udp" });
        break;
      }
      case "--memory": case "-m": {
        const v = value(), n = parseSize(v);
        if (n === null) throw usage(`--memory ${v}: expected a size like 256M`);
        p.limits.memoryBytes = n;
        break;
      }
      case "--cpus": case "--cpu-weight": case "--pids": {
        const v = value(), n = Number(v);
        if (!Number.isFinite(n)) throw usage(`${flag} ${v}: expected a number`);
        p.limits[{ "--cpus": "cpus", "--cpu-weight": "cpuWeight", "--pids": "pids" }[flag]] = n;
        break;
      }
      case "--user": {
        const v = value(), m = /^(\d+)(?::(\d+))?$/.exec(v);
        if (!m) throw usage(`--user ${v}: expected UID[:GID]`);
        p.user = { uid: Number(m[1]), gid: Number(m[2] ?? m[1]) };
        break;
      }
      case "--mount": {
        const v = value();
        const fields = Object.fromEntries(v.split(",").map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
        const mount: Record<string, unknown> = { ...fields };
        if (fields.size !== undefined) {
          const n = parseSize(fields.size);
          if (n === null) throw usage(`--mount ${v}: bad size`);
          delete mount.size;
          mount.sizeBytes = n;
        }
        p.mounts.push(mount);
        break;
      }
      default:
        throw usage(`container run: unknown option '${flag}' (the command goes after --)`);
    }
  }
  if (!p.flist) throw usage("container run needs --flist URL|FILE");
  if (!p.args.length) throw usage("container run needs a command after --");
  p.name ||= `c-${randomBytes(3).toString("hex")}`;
  return p;
}

function rows(list: ContainerInfo[]): string {
  const now = Date.now();
  return table(
    ["NAME", "STATE", "PID", "IP", "PORTS", "RESTARTS", "UP", "COMMAND"],
    list.map((c) => [
      c.name, c.state + (c.lastExit?.oomKilled ? " (OOM)" : ""), c.pid, c.ip, c.ports.map((p) => `${p.hostPort}->${p.containerPort}/${p.protocol}`).join(",") || null,
      c.restarts, c.startedAt && c.state === "running" ? duration(now - c.startedAt) : null, c.args.join(" "),
    ]),
  );
}

function detail(c: ContainerInfo): string {
  const lines = [rows([c]), "", `flist     ${c.flist}`, `restart   ${c.restart}${c.nextStartInMs !== null ? ` (next start in ${duration(c.nextStartInMs)})` : ""}`];
  if (c.lastExit) lines.push(`last exit ${c.lastExit.signal ?? `code ${c.lastExit.code}`}${c.lastExit.oomKilled ? ", killed for exceeding its memory limit" : ""} at ${new Date(c.lastExit.at).toISOString()}`);
  if (c.lastError) lines.push(`error     ${c.lastError}`);
  if (!c.limitsEnforced) lines.push("limits    not enforced on this node (no cgroup v2)");
  else if (c.resources) lines.push(`resources memory ${c.resources.memoryBytes === null ? "-" : bytes(c.resources.memoryBytes)}, cpu ${c.resources.cpuUsec === null ? "-" : `${(c.resources.cpuUsec / 1e6).toFixed(2)}s`}, pids ${c.resources.pids ?? "-"}`);
  return lines.join("\n");
}

function seconds(rest: string[], usage: (m: string) => Error): number | undefined {
  const i = rest.indexOf("-t");
  if (i < 0) return undefined;
  const n = Number(rest[i + 1]);
  if (!(n >= 0)) throw usage("-t needs a number of seconds");
  return Math.round(n * 1000);
}

export async function container(rest: string[], ctx: CliContext): Promise<number> {
  const [sub, name] = rest;
  const { out } = ctx;
  const needName = (usage: string) => {
    if (!name || name.startsWith("-")) throw ctx.usage(`usage: zos container ${usage}`);
    return name;
  };
  switch (sub) {
    case "run": {
      const params = parseRunArgs(rest.slice(1), ctx.usage);
      const info = await ctx.withNode((c) =>
        c.call<ContainerInfo>("container.create", params, { onItem: (i) => ctx.json || console.error(`zos: ${(i as { step: string }).step}${(i as { detail?: string }).detail ? ` ${(i as { detail?: string }).detail}` : ""}`) }),
      );
      out(info, () => detail(info));
      return 0;
    }
    case "ls": case "list": {
      const list = await ctx.withNode((c) => c.call<ContainerInfo[]>("container.list"));
      out(list, () => rows(list));
      return 0;
    }
    case "info": case "start": case "restart": {
      needName(`${sub} NAME`);
      const method = sub === "info" ? "container.info" : `container.${sub}`;
      const info = await ctx.withNode((c) => c.call<ContainerInfo>(method, { name }));
      out(info, () => detail(info));
      return 0;
    }
    case "stop": {
      needName("stop NAME [-t SECONDS]");
      const info = await ctx.withNode((c) => c.call<ContainerInfo>("container.stop", { name, timeoutMs: seconds(rest, ctx.usage) }));
      out(info, () => detail(info));
      return 0;
    }
    case "rm": case "delete": {
      needName("rm NAME [-t SECONDS]");
      const r = await ctx.withNode((c) => c.call("container.delete", { name, timeoutMs: seconds(rest, ctx.usage) }));
      out(r, () => `removed ${name}`);
      return 0;
    }
    case "logs": {
      needName("logs NAME [-n LINES] [-f]");
      const follow = rest.includes("-f") || rest.includes("--follow");
      const nIdx = rest.findIndex((a) => a === "-n" || a === "--lines");
      const lines = nIdx >= 0 ? Number(rest[nIdx + 1]) : undefined;
      if (lines !== undefined && !(Number.isInteger(lines) && lines >= 0)) throw ctx.usage("-n needs a non-negative number of lines");
      const show = (l: LogLine) => console.log(ctx.json ? JSON.stringify(l) : ctx.formatLogLine(l));
      if (!follow) {
        const r = await ctx.withNode((c) => c.call<LogLine[]>("container.logs", { name, lines }));
        r.forEach(show);
        return 0;
      }
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      process.once("SIGTERM", () => stop.abort());
      await ctx.withNode((c) =>
        c.call("container.logs", { name, lines: lines ?? 50, follow: true }, { onItem: (l) => show(l as LogLine), signal: stop.signal }).catch((e) => {
          if (e instanceof RpcCallError && e.code === "cancelled") return;
          throw e;
        }),
      );
      return 0;
    }
    case "exec": {
      needName("exec NAME -- CMD...");
      const dash = rest.indexOf("--");
      const args = dash >= 0 ? rest.slice(dash + 1) : rest.slice(2);
      if (!args.length) throw ctx.usage("usage: zos container exec NAME -- CMD...");
      const r = await ctx.withNode((c) => c.call<{ code: number; stdout: string; stderr: string }>("container.exec", { name, args }));
      if (ctx.json) console.log(JSON.stringify(r));
      else {
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
      }
      return r.code;
    }
    default:
      throw ctx.usage(`usage:\n${containerHelp}`);
  }
}
