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
