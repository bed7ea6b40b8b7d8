// Containers in init: one manager under <stateDir>/containers, its RPC methods in the registry, and
// the containers of the previous run recreated in the background.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { logger } from "../log.ts";
import type { MethodRegistry } from "../rpc/registry.ts";
import type { VdiskProvider } from "./rootfs.ts";
import { ContainerManager } from "./manager.ts";
import { containerMethods } from "./methods.ts";

export { ContainerManager, type ContainerInfo, type ContainerState, type ExitInfo } from "./manager.ts";
export { ContainerError } from "./errors.ts";
export type { ContainerSpec } from "./spec.ts";

const log = logger("containers");

/** File holding the hex ed25519 key flists must be signed by; absent means unsigned flists are accepted. */
export const TRUSTED_FLIST_KEY_FILE = "flist-trusted-key";

export function startContainers(registry: MethodRegistry, stateDir: string, vdisks: VdiskProvider | null = null): ContainerManager {
  const dir = join(stateDir, "containers");
  const keyFile = join(dir, TRUSTED_FLIST_KEY_FILE);
  const trustedFlistKey = existsSync(keyFile) ? readFileSync(keyFile, "utf8").trim() : null;
  const mgr = new ContainerManager({ stateDir: dir, trustedFlistKey, vdisks });
  registry.registerMethods(containerMethods(mgr));
  mgr.restore().then(
    (failed) => failed.length && log.error(`containers not recreated: ${failed.join(", ")}`),
    (e) => log.error("restoring containers", e),
  );
  return mgr;
}
