// Command-line flags of init (host mode, and overrides in PID 1 mode).
import { parsePublicKey } from "./identity/ed25519.ts";
import { DEFAULT_TCP_PORT } from "./rpc/protocol.ts";

export interface InitArgs {
  configDir: string | null;
  stateDir: string | null;
  listen: { host: string; port: number }[];
  socket: string | null;
  keys: { role: "admin" | "operator" | "reader"; key: string }[];
  keysFile: string | null;
  debug: boolean;
}

export const usage = `usage: init/main.ts [--config-dir DIR] [--state-dir DIR] [--listen HOST:PORT]... [--socket PATH]
                    [--admin-key KEY]... [--operator-key KEY]... [--reader-key KEY]... [--keys FILE] [--debug]
As PID 1 it boots the machine; otherwise it runs as a supervisor (host mode).
Default TCP port ${DEFAULT_TCP_PORT}; KEY is an ed25519 public key in base58 or hex (see \`zos keygen\`).`;

export class ArgsError extends Error {}

export function parseListen(v: string): { host: string; port: number } {
  const m = /^\[([^\]]+)\]:(\d+)$/.exec(v) ?? /^([^:]*):(\d+)$/.exec(v);
  if (!m) throw new ArgsError(`--listen ${v}: expected HOST:PORT, e.g. 127.0.0.1:${DEFAULT_TCP_PORT}`);
  const port = Number(m[2]);
  if (port > 65535) throw new ArgsError(`--listen ${v}: port out of range`);
  return { host: m[1] || "0.0.0.0", port };
}

export function parseInitArgs(argv: string[]): InitArgs {
  const a: InitArgs = { configDir: null, stateDir: null, listen: [], socket: null, keys: [], keysFile: null, debug: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined) throw new ArgsError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case "--config-dir": a.configDir = value(); break;
      case "--state-dir": a.stateDir = value(); break;
      case "--listen": a.listen.push(parseListen(value())); break;
      case "--socket": a.socket = value(); break;
      case "--keys": a.keysFile = value(); break;
      case "--debug": a.debug = true; break;
      case "--admin-key": case "--operator-key": case "--reader-key": {
        const key = value();
        try {
          parsePublicKey(key);
        } catch (e) {
          throw new ArgsError(`${flag}: ${(e as Error).message}`);
        }
        a.keys.push({ role: flag.slice(2, -4) as "admin" | "operator" | "reader", key });
        break;
      }
      default: throw new ArgsError(`unknown argument '${flag}'\n${usage}`);
    }
  }
  return a;
}
