// Namespace.putMany (how the zdb server writes a run of pipelined SETs: one data write, one index
// write) must answer and store exactly what the same SETs one at a time would: a model-based
// property test against put() on a twin namespace, before and after a reopen; a run that crosses
// the data file size still splits files correctly; a run the disk cannot take is answered per
// entry, as put() would (a 1 MiB tmpfs).
import { afterEach, describe, expect, test } from "bun:test";
import fc from "fast-check";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { Namespace, type NamespaceSettings, type StorageConfig } from "../../store/zdb/namespace.ts";
import { ZdbError } from "../../store/zdb/errors.ts";
import { removeDir, tempDir } from "./zdb-process.ts";

const dirs: string[] = [];
const mounts: string[] = [];
afterEach(() => {
  for (const m of mounts.splice(0)) Bun.spawnSync(["umount", "-l", m]);
  dirs.splice(0).forEach(removeDir);
});

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

  test("a run the disk cannot take: cut back, then each entry answered as put() alone would", () => {
    const cfg = config(64 * 1024 * 1024);
    const mnt = join(cfg.dataRoot, "..", "mnt");
    mkdirSync(mnt);
    const mounted = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mnt]);
    expect(mounted.exitCode).toBe(0);
    mounts.push(mnt);
    const onTmpfs = { ...cfg, dataRoot: mnt };
    const ns = Namespace.open("n", onTmpfs);
    const small = Buffer.alloc(100_000, 1);
    for (let i = 0; i < 6; i++) expect(ns.put(Buffer.from(`fill${i}`), small)).not.toBeNull();
    // About 400 KiB are left: one big value fits, the same value again would be "unchanged" if the
    // first had been stored, and the third cannot fit at all. The run as a whole does not fit.
    const big = Buffer.alloc(300_000, 2);
    const results = ns.putMany([
      { key: Buffer.from("big"), value: big },
      { key: Buffer.from("big"), value: big },
      { key: Buffer.from("more"), value: Buffer.alloc(300_000, 3) },
    ]);
    expect(Buffer.from(results[0] as Uint8Array).toString()).toBe("big");
    expect(results[1]).toBeNull(); // stored by the first, so unchanged: true this time
    expect(results[2]).toMatchObject({ code: "full" });
    const twin = ns.putMany([
      { key: Buffer.from("x1"), value: Buffer.alloc(300_000, 4) },
      { key: Buffer.from("x1"), value: Buffer.alloc(300_000, 4) },
    ]);
    // Neither fits: the second must not claim an unchanged value that was never stored.
    expect(twin.map((r) => (r instanceof ZdbError ? r.code : r))).toEqual(["full", "full"]);
    const want = contents(ns);
    expect([...want.keys()].sort()).toEqual(["big", "fill0", "fill1", "fill2", "fill3", "fill4", "fill5"]);
    ns.close();
    const again = Namespace.open("n", onTmpfs);
    expect(contents(again)).toEqual(want);
    again.close();
  });
});
