// Parameter schemas for RPC methods: each validates an untrusted decoded CBOR value and yields a
// typed value, or throws SchemaError naming the path of the first bad field.
export class SchemaError extends Error {
  constructor(readonly path: string, message: string) {
    super(`${path || "params"}: ${message}`);
    this.name = "SchemaError";
  }
}

export interface Schema<T> {
  parse(value: unknown, path: string): T;
}
export type Infer<S> = S extends Schema<infer T> ? T : never;
type OptionalKeys<Shape> = { [K in keyof Shape]: Shape[K] extends { optional: true } ? K : never }[keyof Shape];
/** Fields built with s.optional() may be absent; the others are required. */
export type ObjectOf<Shape> = { [K in Exclude<keyof Shape, OptionalKeys<Shape>>]: Infer<Shape[K]> } & { [K in OptionalKeys<Shape>]?: Infer<Shape[K]> };

function kind(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (v instanceof Uint8Array) return "bytes";
  return typeof v;
}

export const s = {
  /** Any value; the handler validates it further (e.g. a service file body). */
  unknown(): Schema<unknown> {
    return { parse: (v) => v };
  },
  string(o: { min?: number; max?: number; pattern?: RegExp } = {}): Schema<string> {
    return {
      parse(v, path) {
        if (typeof v !== "string") throw new SchemaError(path, `expected string, got ${kind(v)}`);
        if (v.length < (o.min ?? 0)) throw new SchemaError(path, `shorter than ${o.min}`);
        if (v.length > (o.max ?? 4096)) throw new SchemaError(path, `longer than ${o.max ?? 4096}`);
        if (o.pattern && !o.pattern.test(v)) throw new SchemaError(path, `does not match ${o.pattern}`);
        return v;
      },
    };
  },
  int(o: { min?: number; max?: number } = {}): Schema<number> {
    return {
      parse(v, path) {
        if (typeof v === "bigint" && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) v = Number(v);
        if (typeof v !== "number" || !Number.isSafeInteger(v)) throw new SchemaError(path, `expected integer, got ${kind(v)}`);
        if (o.min !== undefined && v < o.min) throw new SchemaError(path, `less than ${o.min}`);
        if (o.max !== undefined && v > o.max) throw new SchemaError(path, `greater than ${o.max}`);
        return v;
      },
    };
  },
  boolean(): Schema<boolean> {
    return {
      parse(v, path) {
        if (typeof v !== "boolean") throw new SchemaError(path, `expected boolean, got ${kind(v)}`);
        return v;
      },
    };
  },
  oneOf<const T extends string>(values: readonly T[]): Schema<T> {
    return {
      parse(v, path) {
        if (typeof v !== "string" || !values.includes(v as T)) throw new SchemaError(path, `expected one of ${values.join(", ")}`);
        return v as T;
      },
    };
  },
  array<T>(item: Schema<T>, o: { max?: number } = {}): Schema<T[]> {
    return {
      parse(v, path) {
        if (!Array.isArray(v)) throw new SchemaError(path, `expected array, got ${kind(v)}`);
        if (v.length > (o.max ?? 1024)) throw new SchemaError(path, `more than ${o.max ?? 1024} items`);
        return v.map((x, i) => item.parse(x, `${path}[${i}]`));
      },
    };
  },
  record<T>(value: Schema<T>, o: { max?: number; key?: RegExp } = {}): Schema<Record<string, T>> {
    return {
      parse(v, path) {
        if (v === null || typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) throw new SchemaError(path, `expected map, got ${kind(v)}`);
        const entries = Object.entries(v);
        if (entries.length > (o.max ?? 256)) throw new SchemaError(path, `more than ${o.max ?? 256} entries`);
        const out: Record<string, T> = {};
        for (const [k, x] of entries) {
          if (o.key && !o.key.test(k)) throw new SchemaError(`${path}.${k}`, "invalid key");
          out[k] = value.parse(x, `${path}.${k}`);
        }
        return out;
      },
    };
  },
  optional<T>(inner: Schema<T>): Schema<T | undefined> & { optional: true } {
    return { optional: true, parse: (v, path) => (v === undefined || v === null ? undefined : inner.parse(v, path)) };
  },
  /** A map with exactly these fields; unknown fields are rejected so typos do not pass silently. */
  object<Shape extends Record<string, Schema<unknown>>>(shape: Shape): Schema<ObjectOf<Shape>> {
    return {
      parse(v, path) {
        if (v === undefined || v === null) v = {};
        if (typeof v !== "object" || Array.isArray(v) || v instanceof Uint8Array) throw new SchemaError(path, `expected map, got ${kind(v)}`);
        const input = v as Record<string, unknown>;
        for (const k of Object.keys(input)) if (!(k in shape)) throw new SchemaError(path ? `${path}.${k}` : k, "unknown field");
        const out: Record<string, unknown> = {};
        for (const [k, sch] of Object.entries(shape)) {
          const x = sch.parse(input[k], path ? `${path}.${k}` : k);
          if (x !== undefined) out[k] = x;
          else if (!(sch as { optional?: boolean }).optional) throw new SchemaError(path ? `${path}.${k}` : k, "is required");
        }
        return out as ObjectOf<Shape>;
      },
    };
  },
};
