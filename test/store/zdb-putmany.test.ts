// Namespace.putMany (how the zdb server writes a run of pipelined SETs: one data write, one index
// write) must answer and store exactly what the same SETs one at a time would: a model-based
// property test against put() on a twin namespace, before and after a reopen; and a run that
// crosses the data file size still splits files correctly.
import { afterEach, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { join } from "node:path";
import { Namespace, type NamespaceSettings, type StorageConfig } from "../../store/zdb/namespace.ts";
import { ZdbError } from "../../store/zdb/errors.ts";
import { removeDir, tempDir } from "./zdb-process.ts";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeDir));

function config(datasize: number): StorageConfig {
  const d = tempDir("zdb-putmany");
  dirs.push(d);
  return { dataRoot: join(d, "data"), indexRoot: join(d, "index"), datasize, fsync: "never" };
}

/** Every live key and its value, as read back from the files. */
function contents(ns: Namespace): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, e] of ns.entries) {
    const b = Buffer.alloc(e.size);
    if (!ns.readPayload(e, b, 0)) throw new Error(`${k} is damaged`);
    out.set(k, b.toString("hex"));
  }
  return out;
}

function outcome(r: Uint8Array | null | ZdbError | unknown): string {
  if (r === null) return "unchanged";
  if (r instanceof ZdbError) return `error ${r.code}: ${r.message}`;
  if (r instanceof Uint8Array) return `stored ${Buffer.from(r).toString("latin1")}`;
  throw r;
}

// Few keys and few distinct values, so runs overwrite, repeat identical values and hit maxsize.
const item = fc.record({
  key: fc.constantFrom("", "a", "b", "c", "dd"),
  value: fc.constantFrom("", "x", "yy", "zzzz", "x".repeat(300)),
});
const run = fc.array(item, { minLength: 1, maxLength: 12 });

describe("zdb putMany", () => {
  test("answers and stores exactly what put() one at a time does", () => {
    fc.assert(
      fc.property(fc.array(run, { minLength: 1, maxLength: 6 }), fc.constantFrom(0, 700, 2000), fc.boolean(), (runs, maxsize, worm) => {
        const settings: NamespaceSettings = { password: null, public: true, maxsize, mode: "user", worm };
        const cfgMany = config(1024 * 1024);
        const cfgOne = config(1024 * 1024);
        const many = Namespace.open("n", cfgMany);
        const one = Namespace.open("n", cfgOne);
        many.setSettings(settings);
        one.setSettings(settings);
        for (const r of runs) {
          const items = r.map((i) => ({ key: Buffer.from(i.key), value: Buffer.from(i.value) }));
          const got = many.putMany(items).map(outcome);
          const want = items.map((i) => {
            try {
              return outcome(one.put(i.key, i.value));
            } catch (err) {
              return outcome(err);
            }
          });
          expect(got).toEqual(want);
          expect(contents(many)).toEqual(contents(one));
          expect(many.usedBytes).toBe(one.usedBytes);
        }
        const before = contents(many);
        many.close();
        one.close();
        const again = Namespace.open("n", cfgMany);
        expect(contents(again)).toEqual(before);
        for (const e of again.entries.values()) expect(again.check(e)).toBe(true);
        again.close();
      }),
      { numRuns: 60 },
    );
  });

  test("a run larger than the data file size is split over new files and replays intact", () => {
    const cfg = config(8 * 1024);
    const ns = Namespace.open("n", cfg);
    const items = Array.from({ length: 40 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.alloc(1000, i) }));
    expect(ns.putMany(items).every((r) => r instanceof Uint8Array)).toBe(true);
    expect(ns.dataFiles).toBeGreaterThan(4);
    const want = contents(ns);
    expect(want.size).toBe(40);
    ns.close();
    const again = Namespace.open("n", cfg);
    expect(contents(again)).toEqual(want);
    again.close();
  });
});
