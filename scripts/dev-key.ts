// The development admin key: made on first use in build/zos-config/ (the zos CLI's config dir for
// `make run`), and trusted by the images `make image` and `make run` build unless ZOS_ADMIN names
// other keys. Production images should be built with ZOS_ADMIN=<the operators' public keys>.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { keyId, type KeyPair } from "../init/identity/ed25519.ts";
import { readKeyFile, writeNewKeyFile } from "../init/identity/key-file.ts";
import { ROOT } from "./boot-config.ts";

export const DEV_CONFIG_DIR = join(ROOT, "build", "zos-config");

export function devAdminKey(): KeyPair {
  const path = join(DEV_CONFIG_DIR, "key");
  return existsSync(path) ? readKeyFile(path) : writeNewKeyFile(path);
}

/** ZOS_ADMIN (comma-separated public keys) if set, else the development key. */
export function imageAdminKeys(): string[] {
  const env = process.env.ZOS_ADMIN?.split(",").map((k) => k.trim()).filter(Boolean);
  return env?.length ? env : [keyId(devAdminKey().publicKey)];
}
