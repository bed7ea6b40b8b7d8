// The CLI's files, in $ZOS_CONFIG_DIR (else $XDG_CONFIG_HOME/zos, else ~/.config/zos):
//   key          this client's ed25519 seed (64 hex digits, mode 0400), made by `zos keygen`
//   known_nodes  "<address> <node id>" lines: node ids pinned on first contact, like ssh known_hosts
//   config       YAML; `node: HOST[:PORT] | unix:PATH` is the default node
import { appendFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";

export function configDir(): string {
  if (process.env.ZOS_CONFIG_DIR) return process.env.ZOS_CONFIG_DIR;
  return join(process.env.XDG_CONFIG_HOME || join(homedir(), ".config"), "zos");
}

export const keyPath = () => join(configDir(), "key");
export const knownNodesPath = () => join(configDir(), "known_nodes");
export const configPath = () => join(configDir(), "config");

export function configuredNode(): string | null {
  if (!existsSync(configPath())) return null;
  const doc = parseYaml(readFileSync(configPath(), "utf8")) as { node?: unknown } | null;
  return typeof doc?.node === "string" ? doc.node : null;
}

export function knownNodeId(address: string): string | null {
  if (!existsSync(knownNodesPath())) return null;
  for (const line of readFileSync(knownNodesPath(), "utf8").split("\n")) {
    const [addr, id] = line.trim().split(/\s+/);
    if (addr === address && id) return id;
  }
  return null;
}

export function rememberNode(address: string, nodeId: string): void {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  appendFileSync(knownNodesPath(), `${address} ${nodeId}\n`, { mode: 0o600 });
}
