// What one client connection carries between commands: its namespace, its rights, and the
// namespaces it wrote to since the last flush (synced before replies leave, under fsync=always).
import type { Namespace } from "./namespace.ts";
import { ZdbError } from "./errors.ts";

export class Session {
  /** May run admin commands: proved the admin password, or the server has none (as in 0-db). */
  admin: boolean;
  /** May write to the selected namespace (it has no password, or the password was given). */
  writable: boolean;
  /** The nonce of a pending AUTH SECURE / SELECT ... SECURE exchange. */
  challenge: string | null = null;
  readonly written = new Set<Namespace>();

  constructor(
    public ns: Namespace,
    adminByDefault: boolean,
  ) {
    this.admin = adminByDefault;
    this.writable = ns.settings.password === null;
  }

  /** The selected namespace, unless it has been deleted meanwhile. */
  current(): Namespace {
    if (this.ns.closed) throw new ZdbError("not-found", `Namespace ${this.ns.name} was deleted, SELECT another one`);
    return this.ns;
  }

  /** The selected namespace, for a write. */
  forWrite(): Namespace {
    const ns = this.current();
    if (!this.writable) throw new ZdbError("read-only", "Namespace is read-only for this connection (password required to write)");
    this.written.add(ns);
    return ns;
  }

  requireAdmin(): void {
    if (!this.admin) throw new ZdbError("denied", "Permission denied: admin required (AUTH first)");
  }
}
