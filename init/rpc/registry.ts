// The method table the RPC server dispatches from. Other parts add their methods with
// registerMethods({ "flist.mount": method({ role: "operator", params: s.object({...}), handler }) }).
import type { Infer, Schema } from "./schema.ts";

export type Role = "reader" | "operator" | "admin";
const rank: Record<Role, number> = { reader: 0, operator: 1, admin: 2 };
export const roles: readonly Role[] = ["reader", "operator", "admin"];

export function roleAllows(have: Role, need: Role): boolean {
  return rank[have] >= rank[need];
}

export interface MethodContext {
  /** base58 id of the verified caller key. */
  callerId: string;
  role: Role;
  /** Aborted when the caller cancels or the connection closes. */
  signal: AbortSignal;
  /** Sends one streamed item before the final result. */
  emit(item: unknown): void;
}

export interface MethodDef<S extends Schema<unknown> = Schema<unknown>> {
  /** Least role allowed to call it. */
  role: Role;
  params: S;
  summary: string;
  handler(params: Infer<S>, ctx: MethodContext): Promise<unknown>;
}

/** Identity helper so a method's handler gets its params type from its schema. */
export function method<S extends Schema<unknown>>(def: MethodDef<S>): MethodDef<S> {
  return def;
}

export const methodNamePattern = /^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$/;

export class MethodRegistry {
  private table = new Map<string, MethodDef>();
  /** Namespace ("container") -> how to load and register its methods, for parts idle PID 1 does not need. */
  private lazy = new Map<string, { load: () => Promise<void>; loading: Promise<void> | null }>();

  /**
   * Registers a namespace whose methods load on first use: `load` imports the part and registers
   * its "<namespace>.*" methods. Until a call arrives the part costs PID 1 no memory (the container
   * stack with the store, yaml and the native addon is ~15 MiB of RSS). A failed load is kept, so
   * every later call gets the same error instead of retrying a broken part.
   */
  registerLazy(namespace: string, load: () => Promise<void>): void {
    if (this.lazy.has(namespace)) throw new Error(`lazy namespace '${namespace}' is already registered`);
    this.lazy.set(namespace, { load, loading: null });
  }

  /** Loads the lazy namespace that `name` belongs to; null when no lazy namespace covers it. */
  loadFor(name: string): Promise<void> | null {
    const dot = name.indexOf(".");
    const entry = dot > 0 ? this.lazy.get(name.slice(0, dot)) : undefined;
    if (!entry) return null;
    entry.loading ??= entry.load();
    return entry.loading;
  }

  /** Loads every lazy namespace (for a full method list); failures leave their methods out. */
  async loadAll(): Promise<void> {
    await Promise.allSettled([...this.lazy.keys()].map((ns) => this.loadFor(`${ns}.`)));
  }

  registerMethods(methods: Record<string, MethodDef<any>>): void {
    for (const [name, def] of Object.entries(methods)) {
      if (!methodNamePattern.test(name)) throw new Error(`invalid method name '${name}' (expected area.verb)`);
      if (this.table.has(name)) throw new Error(`method '${name}' is already registered`);
      this.table.set(name, def as MethodDef);
    }
  }

  get(name: string): MethodDef | undefined {
    return this.table.get(name);
  }

  list(): { name: string; role: Role; summary: string }[] {
    return [...this.table].map(([name, d]) => ({ name, role: d.role, summary: d.summary })).sort((a, b) => a.name.localeCompare(b.name));
  }
}
