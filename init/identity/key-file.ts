// Key files hold the 32-byte ed25519 seed as 64 hex digits and a newline, mode 0400.
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { generateKeyPair, keyPairFromSeed, type KeyPair } from "./ed25519.ts";

export class KeyFileError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = "KeyFileError";
  }
}

export function readKeyFile(path: string): KeyPair {
  let text: string;
  try {
    text = readFileSync(path, "utf8").trim();
  } catch (e) {
    throw new KeyFileError(path, `cannot read key: ${(e as Error).message}`);
  }
  if (!/^[0-9a-f]{64}$/i.test(text)) throw new KeyFileError(path, "not a key file (expected 64 hex digits)");
  return keyPairFromSeed(new Uint8Array(Buffer.from(text, "hex")));
}

export function writeNewKeyFile(path: string): KeyPair {
  const key = generateKeyPair();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  // 'wx' never overwrites an existing identity
  writeFileSync(path, Buffer.from(key.seed).toString("hex") + "\n", { mode: 0o400, flag: "wx" });
  chmodSync(path, 0o400);
  return key;
}

/** The key at `path`, created on first use. */
export function loadOrCreateKey(path: string): { key: KeyPair; created: boolean } {
  if (existsSync(path)) {
    const mode = statSync(path).mode & 0o777;
    if (mode & 0o077) chmodSync(path, 0o400); // tighten a key someone loosened
    return { key: readKeyFile(path), created: false };
  }
  return { key: writeNewKeyFile(path), created: true };
}
