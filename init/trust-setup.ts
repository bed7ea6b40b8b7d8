// Builds the trusted key set from every source: kernel command line, a keys file, init flags.
import { existsSync } from "node:fs";
import type { InitArgs } from "./args.ts";
import type { ZosCmdline } from "./boot/cmdline.ts";
import type { Health } from "./health.ts";
import { logger } from "./log.ts";
import { TrustStore } from "./rpc/trust.ts";

const log = logger("trust");

export function buildTrust(args: InitArgs, cmdline: ZosCmdline | null, defaultKeysFile: string | null, health: Health): TrustStore {
  const trust = new TrustStore();
  const add = (key: string, role: "admin" | "operator" | "reader", source: string) => {
    try {
      trust.add(key, role);
    } catch (e) {
      log.error(`ignoring ${role} key from ${source}: ${(e as Error).message}`);
      health.fail("trust", `${source}: ${(e as Error).message}`);
    }
  };
  if (cmdline) for (const role of ["admin", "operator", "reader"] as const) for (const k of cmdline[role]) add(k, role, `zos.${role}`);
  for (const k of args.keys) add(k.key, k.role, `--${k.role}-key`);
  const file = args.keysFile ?? (defaultKeysFile && existsSync(defaultKeysFile) ? defaultKeysFile : null);
  if (file) {
    try {
      trust.addFile(file);
    } catch (e) {
      log.error(`keys file: ${(e as Error).message}`);
      health.fail("trust", e);
    }
  }
  log.info(`${trust.size} trusted key(s)`);
  return trust;
}
