#!/usr/bin/env bun
// zos: the command line for Zero-OS nodes. Every call is signed with the key from `zos keygen`;
// the node's id is pinned in known_nodes on first contact and a changed one is refused.
import { existsSync, readFileSync } from "node:fs";
import { parse as parseYaml } from "yaml";
import { keyId } from "../init/identity/ed25519.ts";
import { readKeyFile, writeNewKeyFile } from "../init/identity/key-file.ts";
import { base58Decode } from "../init/identity/base58.ts";
import { formatNodeAddress, parseNodeAddress, RpcCallError, RpcClient } from "../init/rpc/client.ts";
import { DEFAULT_TCP_PORT } from "../init/rpc/protocol.ts";
import type { ServiceStatus } from "../init/supervisor/supervisor.ts";
import type { LogLine } from "../init/supervisor/log-ring.ts";
import { bashCompletion } from "./completion.ts";
import { container, containerHelp } from "./commands/container.ts";
import { vdisk, vdiskHelp } from "./commands/vdisk.ts";
import { flist, flistHelp } from "./commands/flist.ts";
import { configPath, configuredNode, keyPath, knownNodeId, knownNodesPath, rememberNode } from "./config.ts";
import { bytes, duration, table } from "./format.ts";

/** Exit codes, so scripts can tell failures apart. */
export const exit = { ok: 0, failed: 1, usage: 2, unreachable: 3, denied: 4, nodeChanged: 5 } as const;

const help = `usage: zos [--node HOST[:PORT]|unix:PATH] [--json] [--key FILE] [--timeout SECONDS] COMMAND

commands:
  keygen                      create this client's key (prints the public key to trust on nodes)
  pubkey                      print this client's public key
  node info                   identity, kernel, cpu, memory, disks, NICs, subsystem health
  service list                every service and its state
  service status NAME
  service start|stop|restart NAME
  service kill NAME SIGNAL
  service logs NAME [-n LINES] [-f]
  service monitor NAME FILE   add a service from a zinit YAML file
  service forget NAME         remove a stopped service
${containerHelp}
${vdiskHelp}
${flistHelp}
  reboot | poweroff
  completion bash             bash completion script

The node comes from --node, else $ZOS_NODE, else "node:" in ${configPath()}. TCP port defaults to ${DEFAULT_TCP_PORT}.
Exit codes: 0 ok, 1 the node reported an error, 2 usage, 3 cannot reach the node,
4 the node refused the key or role, 5 the node's identity changed.`;

class CliError extends Error {
  constructor(readonly exitCode: number, message: string) {
    super(message);
  }
}

interface Options {
  node: string | null;
  json: boolean;
  keyFile: string;
  /** Seconds to wait for an answer, 0 for no limit (streams never time out). */
  timeout: number;
  rest: string[];
}

function parseArgs(argv: string[]): Options {
  const o: Options = { node: null, json: false, keyFile: keyPath(), timeout: 120, rest: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--json") o.json = true;
    else if (a === "--node" || a === "--key" || a === "--timeout") {
      const v = argv[++i];
      if (!v) throw new CliError(exit.usage, `${a} needs a value`);
      if (a === "--node") o.node = v;
      else if (a === "--key") o.keyFile = v;
      else if (!(Number(v) >= 0)) throw new CliError(exit.usage, "--timeout needs a number of seconds (0: no limit)");
      else o.timeout = Number(v);
    } else if (a.startsWith("--node=")) o.node = a.slice(7);
    else if (a === "--") {
      // everything after -- belongs to the command (e.g. a container's command line)
      o.rest.push(...argv.slice(i));
      break;
    } else if (a === "--help" || a === "-h") o.rest.unshift("help");
    else o.rest.push(a);
  }
  return o;
}

function print(o: Options, value: unknown, human: () => string): void {
  console.log(o.json ? JSON.stringify(value) : human());
}

async function connect(o: Options): Promise<{ client: RpcClient; address: string }> {
  const target = o.node || process.env.ZOS_NODE || configuredNode();
  if (!target) throw new CliError(exit.usage, `no node given: use --node HOST[:PORT] or unix:PATH, set ZOS_NODE, or put "node: HOST" in ${configPath()}`);
  let addr;
  try {
    addr = parseNodeAddress(target);
  } catch (e) {
    throw new CliError(exit.usage, (e as Error).message);
  }
  if (!existsSync(o.keyFile)) throw new CliError(exit.usage, `no client key at ${o.keyFile}: run 'zos keygen' and add the printed key to the node (zos.admin=<key>)`);
  const key = readKeyFile(o.keyFile);
  const address = formatNodeAddress(addr);
  const pinned = knownNodeId(address);
  let expect: Uint8Array | undefined;
  if (pinned) expect = base58Decode(pinned);
  try {
    return { client: await RpcClient.connect(addr, key, { expectNodeKey: expect }), address };
  } catch (e) {
    throw new CliError(exit.unreachable, `${(e as Error).message}\nis the node up and reachable? (default TCP port ${DEFAULT_TCP_PORT})`);
  }
}

function explain(e: RpcCallError, address: string, o: Options): CliError {
  switch (e.code) {
    case "node-key-mismatch": {
      const d = e.data as { got: string; expected: string };
      return new CliError(exit.nodeChanged, `the node at ${address} identifies as ${d.got}, but ${knownNodesPath()} pins ${d.expected}.\nif the node was reinstalled, delete its line from ${knownNodesPath()}; otherwise someone may be impersonating it.`);
    }
    case "unknown-key":
      return new CliError(exit.denied, `the node does not trust this client's key ${safeKeyId(o.keyFile)}.\nadd it on the node: zos.admin=<key> on the kernel command line, or a line in its keys file.`);
    case "forbidden":
    case "bad-signature":
      return new CliError(exit.denied, `${e.code}: ${e.message}`);
    case "stale-timestamp":
      return new CliError(exit.denied, `${e.message}`);
    case "connection-closed":
    case "connection-error":
    case "unreachable":
      return new CliError(exit.unreachable, `${address}: ${e.message}`);
    default:
      return new CliError(exit.failed, `${e.code}: ${e.message}`);
  }
}

function safeKeyId(path: string): string {
  try {
    return keyId(readKeyFile(path).publicKey);
  } catch {
    return "(unreadable)";
  }
}

function serviceRows(list: ServiceStatus[]): string {
  const now = Date.now();
  return table(
    ["NAME", "STATE", "TARGET", "PID", "RESTARTS", "SINCE", "NOTE"],
    list.map((s) => [s.name, s.state, s.target, s.pid, s.restarts, duration(now - s.since), s.lastError ?? (s.nextStartInMs !== null ? `restart in ${duration(s.nextStartInMs)}` : "")]),
  );
}

function formatLogLine(l: LogLine): string {
  return `${new Date(l.ts).toISOString()} ${l.stream === "stderr" ? "!" : " "} ${l.line}`;
}

function need(rest: string[], n: number, usage: string): string[] {
  if (rest.length < n) throw new CliError(exit.usage, `usage: zos ${usage}`);
  return rest;
}

async function withNode<T>(o: Options, fn: (c: RpcClient) => Promise<T>, limited = false): Promise<T> {
  const { client, address } = await connect(o);
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const answer = fn(client);
    const result = !limited || o.timeout === 0 ? await answer : await Promise.race([
      answer,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new CliError(exit.unreachable, `no answer from ${address} within ${o.timeout} s; the node may be overloaded or hung (--timeout SECONDS, 0 for none)`)), o.timeout * 1000);
      }),
    ]);
    if (!knownNodeId(address) && client.nodeId) {
      rememberNode(address, client.nodeId);
      console.error(`zos: pinned node ${client.nodeId} for ${address} in ${knownNodesPath()}`);
    }
    if (client.clockOffsetMs !== 0)
      console.error(`zos: the node's clock is ${Math.round(client.clockOffsetMs / 1000)} s off this machine's; the call was signed again at the node's time (give the node an NTP server: zos.ntp=HOST)`);
    return result;
  } catch (e) {
    if (e instanceof RpcCallError) throw explain(e, address, o);
    throw e;
  } finally {
    clearTimeout(timer);
    client.close();
  }
}

async function nodeInfo(o: Options): Promise<void> {
  const info = await withNode(o, (c) => c.call<Record<string, any>>("node.info"), true);
  print(o, info, () => {
    const lines = [
      `id        ${info.id}`,
      `version   ${info.version} (${info.mode})`,
      `uptime    system ${duration(info.uptimeSeconds.system * 1000)}, init ${duration(info.uptimeSeconds.init * 1000)}`,
      `kernel    ${info.kernel.release}`,
      `cpu       ${info.cpu.count} x ${info.cpu.model}`,
      `memory    ${bytes(info.memory.availableBytes)} available of ${bytes(info.memory.totalBytes)}`,
      `services  ${info.services}`,
      "",
      table(["DISK", "SIZE", "MODEL"], info.disks.map((d: any) => [d.name, bytes(d.sizeBytes), d.model])),
      "",
      table(["NIC", "MAC", "STATE", "ADDRESSES"], info.nics.map((n: any) => [n.name, n.mac, n.state, n.addresses.join(" ")])),
    ];
    const failing = Object.entries(info.health as Record<string, { ok: boolean; detail: string }>).filter(([, h]) => !h.ok);
    if (failing.length) lines.push("", "failing subsystems:", ...failing.map(([n, h]) => `  ${n}: ${h.detail}`));
    return lines.join("\n");
  });
}

async function service(o: Options, rest: string[]): Promise<void> {
  const [sub, name] = rest;
  switch (sub) {
    case "list": {
      const list = await withNode(o, (c) => c.call<ServiceStatus[]>("service.list"), true);
      return print(o, list, () => serviceRows(list));
    }
    case "status":
    case "start":
    case "stop":
    case "restart":
    case "forget": {
      need(rest, 2, `service ${sub} NAME`);
      const r = await withNode(o, (c) => c.call<ServiceStatus | { forgotten: string }>(`service.${sub}`, { name }), true);
      return print(o, r, () => ("state" in r ? serviceRows([r]) : `forgot ${name}`));
    }
    case "kill": {
      need(rest, 3, "service kill NAME SIGNAL");
      const r = await withNode(o, (c) => c.call<ServiceStatus>("service.kill", { name, signal: rest[2].toUpperCase() }), true);
      return print(o, r, () => serviceRows([r]));
    }
    case "monitor": {
      need(rest, 3, "service monitor NAME FILE.yaml");
      let config: unknown;
      try {
        config = parseYaml(readFileSync(rest[2], "utf8"));
      } catch (e) {
        throw new CliError(exit.usage, `${rest[2]}: ${(e as Error).message}`);
      }
      const r = await withNode(o, (c) => c.call<ServiceStatus>("service.monitor", { name, config }), true);
      return print(o, r, () => serviceRows([r]));
    }
    case "logs": {
      need(rest, 2, "service logs NAME [-n LINES] [-f]");
      const follow = rest.includes("-f") || rest.includes("--follow");
      const nIdx = rest.findIndex((a) => a === "-n" || a === "--lines");
      const lines = nIdx >= 0 ? Number(rest[nIdx + 1]) : undefined;
      if (lines !== undefined && !(Number.isInteger(lines) && lines >= 0)) throw new CliError(exit.usage, "-n needs a non-negative number of lines");
      const show = (l: LogLine) => console.log(o.json ? JSON.stringify(l) : formatLogLine(l));
      if (!follow) {
        const r = await withNode(o, (c) => c.call<LogLine[]>("service.logs", { name, lines }), true);
        if (o.json) console.log(JSON.stringify(r));
        else r.forEach(show);
        return;
      }
      const stop = new AbortController();
      process.once("SIGINT", () => stop.abort());
      process.once("SIGTERM", () => stop.abort());
      await withNode(o, (c) =>
        c.call("service.logs", { name, lines: lines ?? 50, follow: true }, { onItem: (l) => show(l as LogLine), signal: stop.signal }).catch((e) => {
          if (e instanceof RpcCallError && e.code === "cancelled") return;
          throw e;
        }),
      );
      return;
    }
    default:
      throw new CliError(exit.usage, `usage: zos service list|status|start|stop|restart|kill|logs|monitor|forget ...`);
  }
}

async function run(argv: string[]): Promise<void> {
  const o = parseArgs(argv);
  const [cmd, ...rest] = o.rest;
  switch (cmd) {
    case undefined:
    case "help":
      console.log(help);
      return;
    case "keygen": {
      if (existsSync(o.keyFile)) throw new CliError(exit.failed, `a key already exists at ${o.keyFile} (public key ${safeKeyId(o.keyFile)}); remove it first to make a new one`);
      const key = writeNewKeyFile(o.keyFile);
      const id = keyId(key.publicKey);
      return print(o, { publicKey: id, path: o.keyFile }, () => `${id}\nsaved to ${o.keyFile}; trust it on a node with zos.admin=${id}`);
    }
    case "pubkey":
      if (!existsSync(o.keyFile)) throw new CliError(exit.usage, `no client key at ${o.keyFile}: run 'zos keygen'`);
      return print(o, { publicKey: safeKeyId(o.keyFile) }, () => safeKeyId(o.keyFile));
    case "node":
      if (rest[0] !== "info") throw new CliError(exit.usage, "usage: zos node info");
      return nodeInfo(o);
    case "service":
      return service(o, rest);
    case "container":
    case "vdisk":
    case "flist":
      process.exitCode = await (cmd === "container" ? container : cmd === "vdisk" ? vdisk : flist)(rest, { json: o.json, out: (value, human) => print(o, value, human), withNode: (fn) => withNode(o, fn), usage: (m) => new CliError(exit.usage, m), formatLogLine });
      return;
    case "reboot":
    case "poweroff": {
      const r = await withNode(o, (c) => c.call(`node.${cmd}`), true);
      return print(o, r, () => `${cmd} accepted; the node is stopping its services`);
    }
    case "completion":
      if (rest[0] !== "bash") throw new CliError(exit.usage, "usage: zos completion bash");
      process.stdout.write(bashCompletion);
      return;
    default:
      throw new CliError(exit.usage, `unknown command '${cmd}'; see zos help`);
  }
}

if (import.meta.main) {
  try {
    await run(process.argv.slice(2));
    process.exit(process.exitCode ?? exit.ok);
  } catch (e) {
    if (e instanceof CliError) {
      console.error(`zos: ${e.message}`);
      process.exit(e.exitCode);
    }
    console.error(`zos: ${(e as Error).stack ?? e}`);
    process.exit(exit.failed);
  }
}
