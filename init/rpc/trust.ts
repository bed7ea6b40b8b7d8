// Which caller keys the node accepts and with what role (admin > operator > reader).
import { readFileSync } from "node:fs";
import { keyId, parsePublicKey } from "../identity/ed25519.ts";
import { roles, type Role } from "./registry.ts";

export class TrustStore {
  private keys = new Map<string, Role>();

  /** Adds a key; a key listed twice keeps its highest role. */
  add(key: Uint8Array | string, role: Role): void {
    const id = typeof key === "string" ? keyId(parsePublicKey(key)) : keyId(key);
    const prev = this.keys.get(id);
    if (!prev || roles.indexOf(role) > roles.indexOf(prev)) this.keys.set(id, role);
  }

  roleOf(key: Uint8Array): Role | undefined {
    return this.keys.get(keyId(key));
  }

  /** The role of a key given by its id (base58, as keyId returns). */
  roleOfId(id: string): Role | undefined {
    return this.keys.get(id);
  }

  get size(): number {
    return this.keys.size;
  }

  /** Lines of `<role> <key> [comment]`; '#' starts a comment line. Throws naming the line on bad input. */
  addFile(path: string): void {
    const lines = readFileSync(path, "utf8").split("\n");
    lines.forEach((raw, i) => {
      const line = raw.trim();
      if (!line || line.startsWith("#")) return;
      const [role, key] = line.split(/\s+/);
      if (!roles.includes(role as Role)) throw new Error(`${path}:${i + 1}: role must be one of ${roles.join(", ")}, got '${role}'`);
      try {
        this.add(key ?? "", role as Role);
      } catch (e) {
        throw new Error(`${path}:${i + 1}: ${(e as Error).message}`);
      }
    });
  }
}
