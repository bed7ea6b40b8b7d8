// The Namespace storage engine in process: data file split, index rebuilt from data when lost,
// seq ids never handed out twice (also across compaction and restart), settings persisted, a failed
// flush, a zeroed tail cut at recovery, durable data dropped from the page cache (checked with
// util-linux's fincore), disk blocks reserved ahead (st_blocks; a loop-mounted ext4 for a nearly
// full disk).
import { afterEach, describe, expect, spyOn, test } from "bun:test";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, statfsSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { Namespace, type StorageConfig } from "../../store/zdb/namespace.ts";
import { KEEP_CACHED } from "../../store/zdb/drop-behind.ts";
import { STEP } from "../../store/zdb/preallocation.ts";
import { ZdbError } from "../../store/zdb/errors.ts";
import { removeDir, tempDir } from "./zdb-process.ts";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach(removeDir));

function config(datasize = 64 * 1024): StorageConfig {
  const d = tempDir("zdb-ns");
  dirs.push(d);
  return { dataRoot: join(d, "data"), indexRoot: join(d, "index"), datasize, fsync: "never" };
}

/** Bytes of a file in the page cache. */
function cachedBytes(path: string): number {
  const out = Bun.spawnSync(["fincore", "--bytes", "--noheadings", "--output", "RES", path]);
  if (out.exitCode !== 0) throw new Error(`fincore ${path}: ${out.stderr.toString()}`);
  return Number(out.stdout.toString().trim());
}

function cachedDataBytes(cfg: StorageConfig, name: string): number[] {
  const dir = join(cfg.dataRoot, name);
  return readdirSync(dir).filter((f) => f.startsWith("d")).sort().map((f) => cachedBytes(join(dir, f)));
}

function read(ns: Namespace, key: string): Buffer | null {
  const e = ns.lookup(key);
  if (e === undefined) return null;
  const b = Buffer.alloc(e.size);
  if (!ns.readPayload(e, b, 0)) throw new Error(`${key} is damaged`);
  return b;
}

// The page cache of a tmpfs is the file itself, and it has no block allocation to speak of, so
// the tests of both live on the repository's disk (ext4 here and in CI).
const build = join(import.meta.dir, "..", "..", "build");
const MiB = 2 ** 20;
function diskConfig(fsync: StorageConfig["fsync"], datasize: number, keepCached = KEEP_CACHED): StorageConfig {
  mkdirSync(build, { recursive: true });
  const d = mkdtempSync(join(build, "zdb-disk-"));
  dirs.push(d);
  return { dataRoot: join(d, "data"), indexRoot: join(d, "index"), datasize, fsync, keepCached };
}

describe("zdb namespace", () => {
  test("data files split at datasize; a lost index file is rebuilt from its data file", () => {
    const cfg = config();
    const ns = Namespace.open("n", cfg);
    const values = new Map<string, Buffer>();
    for (let i = 0; i < 50; i++) {
      const v = randomBytes(10_000);
      ns.put(Buffer.from(`k${i}`), v);
      values.set(`k${i}`, v);
    }
    ns.remove(Buffer.from("k3"));
    values.delete("k3");
    expect(ns.dataFiles).toBeGreaterThan(5);
    for (const f of readdirSync(join(cfg.dataRoot, "n"))) {
      expect(Bun.file(join(cfg.dataRoot, "n", f)).size).toBeLessThanOrEqual(64 * 1024);
    }
    ns.close();
    rmSync(join(cfg.indexRoot, "n", "i00001"));
    rmSync(join(cfg.indexRoot, "n", "i00002"));
    const again = Namespace.open("n", cfg);
    expect(again.entries.size).toBe(values.size);
    for (const [k, v] of values) expect(read(again, k)!.equals(v)).toBe(true);
    expect(read(again, "k3")).toBeNull();
    again.close();
  });

  test("seq ids are never handed out twice, across compaction and restart", async () => {
    const cfg = config();
    const ns = Namespace.open("s", cfg);
    ns.setSettings({ ...ns.settings, mode: "seq" });
    const ids = [0, 1, 2].map(() => Buffer.from(ns.put(Buffer.alloc(0), randomBytes(100))!).readBigUInt64LE(0));
    expect(ids).toEqual([0n, 1n, 2n]);
    ns.remove(Buffer.from(new BigUint64Array([2n]).buffer));
    await ns.compact();
    ns.close();
    const again = Namespace.open("s", cfg);
    expect(Buffer.from(again.put(Buffer.alloc(0), randomBytes(10))!).readBigUInt64LE(0)).toBe(3n);
    expect(() => again.put(Buffer.from(new BigUint64Array([9n]).buffer), randomBytes(10))).toThrow(ZdbError);
    again.close();
  });

  test("settings survive a reopen", () => {
    const cfg = config();
    const ns = Namespace.open("p", cfg);
    ns.setSettings({ password: "pw", public: false, maxsize: 1234, mode: "user", worm: true });
    ns.close();
    const again = Namespace.open("p", cfg);
    expect(again.settings).toEqual({ password: "pw", public: false, maxsize: 1234, mode: "user", worm: true });
    again.close();
  });

  test("a flushed namespace stays empty after a reopen and keeps its settings", () => {
    const cfg = config();
    const ns = Namespace.open("f", cfg);
    ns.setSettings({ ...ns.settings, maxsize: 999_999 });
    for (let i = 0; i < 30; i++) ns.put(Buffer.from(`k${i}`), randomBytes(5000));
    ns.flush();
    expect(ns.entries.size).toBe(0);
    ns.put(Buffer.from("after"), Buffer.from("flush"));
    ns.close();
    const again = Namespace.open("f", cfg);
    expect([...again.entries.keys()]).toEqual(["after"]);
    expect(read(again, "after")!.toString()).toBe("flush");
    expect(again.settings.maxsize).toBe(999_999);
    again.close();
  });

  test("a flush that cannot create the new files leaves the namespace closed, not writing through closed descriptors", () => {
    const cfg = config();
    const ns = Namespace.open("ff", cfg);
    ns.put(Buffer.from("k"), Buffer.from("v"));
    const open = spyOn(fs, "openSync").mockImplementation(() => {
      throw Object.assign(new Error("EIO: i/o error, open"), { code: "EIO" });
    });
    try {
      expect(() => ns.flush()).toThrow();
    } finally {
      open.mockRestore();
    }
    expect(ns.closed).toBe(true);
    // Without the mark, close() ftruncated and closed the old descriptor numbers; this one now
    // belongs to another file, and must keep its bytes and stay open.
    const other = join(cfg.dataRoot, "other");
    fs.writeFileSync(other, "intact");
    const fd = fs.openSync(other, "r+");
    ns.close();
    expect(fs.readFileSync(other, "latin1")).toBe("intact");
    expect(fs.fstatSync(fd).size).toBe(6);
    fs.closeSync(fd);
  });

  test("a zeroed tail in the newest data file (a crash after its size grew, before its blocks were written) is cut, not read as entries", () => {
    const cfg = config(1024 * 1024);
    const ns = Namespace.open("z", cfg);
    for (let i = 0; i < 10; i++) ns.put(Buffer.from(`k${i}`), randomBytes(1000));
    ns.close();
    const data = join(cfg.dataRoot, "z", readdirSync(join(cfg.dataRoot, "z")).find((f) => f.startsWith("d"))!);
    const size = fs.statSync(data).size;
    fs.truncateSync(data, size + 8192);
    const again = Namespace.open("z", cfg);
    expect(again.entries.size).toBe(10);
    expect(fs.statSync(data).size).toBe(size);
    again.put(Buffer.from("after"), Buffer.from("crash"));
    again.close();
    const third = Namespace.open("z", cfg);
    expect(third.entries.size).toBe(11);
    expect(read(third, "after")!.toString()).toBe("crash");
    third.close();
  });

  describe("durable data beyond the newest keepCached bytes leaves the page cache", () => {
    /** 64 values of 64 KiB: 4 MiB and a bit. */
    const fill = (ns: Namespace, prefix = "k") => {
      for (let i = 0; i < 64; i++) ns.put(Buffer.from(`${prefix}${i}`), randomBytes(64 * 1024));
    };

    test("fsync never: nothing is dropped, whatever the window (what the other cases are measured against)", () => {
      const cfg = diskConfig("never", 64 * MiB, 0);
      const ns = Namespace.open("n", cfg);
      fill(ns);
      expect(cachedDataBytes(cfg, "n")[0]).toBeGreaterThan(4 * MiB);
      ns.close();
    });

    test("fsync always: each sync drops what is durable and older than the window, and the data still reads back", () => {
      const cfg = diskConfig("always", 64 * MiB, 1 * MiB);
      const ns = Namespace.open("a", cfg);
      fill(ns);
      ns.syncIfDirty();
      const cached = cachedDataBytes(cfg, "a")[0];
      expect(cached).toBeGreaterThanOrEqual(1 * MiB - 4096); // the newest 1 MiB stays
      expect(cached).toBeLessThanOrEqual(1 * MiB + 4096);
      fill(ns, "more");
      expect(cachedDataBytes(cfg, "a")[0]).toBeGreaterThan(4 * MiB); // not synced yet: all cached
      ns.syncIfDirty();
      expect(cachedDataBytes(cfg, "a")[0]).toBeLessThanOrEqual(1 * MiB + 4096);
      expect(read(ns, "k7")!.length).toBe(64 * 1024);
      ns.close();
    });

    test("fsync everysec: background syncs drop the active file's old pages, and sealed files once the window has passed them", async () => {
      const keep = 1536 * 1024;
      const cfg = diskConfig("everysec", 1 * MiB, keep);
      const ns = Namespace.open("e", cfg);
      const dir = join(cfg.dataRoot, "e");
      const sizes = () => readdirSync(dir).filter((f) => f.startsWith("d")).sort().map((f) => Bun.file(join(dir, f)).size);
      /** Which files must be cached: those with less than `keep` bytes of newer data after them. */
      const expected = () => {
        const s = sizes();
        let newer = 0;
        return s.map((_, i) => s.length - 1 - i).map((i) => { const inWindow = newer < keep; newer += s[i]; return inWindow; }).reverse();
      };
      for (const prefix of ["k", "more"]) {
        fill(ns, prefix); // ~4 MiB in 1 MiB files: several sealed, one active
        const want = expected();
        const deadline = Date.now() + 3_000;
        let cached = cachedDataBytes(cfg, "e");
        while (cached.some((b, i) => !want[i] && b > 0) && Date.now() < deadline) {
          ns.syncInBackground();
          await Bun.sleep(20);
          cached = cachedDataBytes(cfg, "e");
        }
        expect(want.length).toBeGreaterThan(3);
        expect(want.filter((w) => !w).length).toBeGreaterThan(1);
        expect(cached.map((b) => b > 0)).toEqual(want);
      }
      ns.close();
    });
  });

  describe("the active data file's disk blocks are reserved ahead of its appends", () => {
    /** Bytes allocated on disk to each data file of a namespace, and their sizes. */
    function dataFiles(cfg: StorageConfig, name: string): { size: number; allocated: number }[] {
      const dir = join(cfg.dataRoot, name);
      return readdirSync(dir).filter((f) => f.startsWith("d")).sort().map((f) => statSync(join(dir, f))).map((st) => ({ size: st.size, allocated: st.blocks * 512 }));
    }
    const value = (i: number) => Buffer.alloc(64 * 1024, i);

    test("STEP ahead, never past the size limit; a file closed early gives back the rest, a reopened one reserves again", () => {
      const cfg = diskConfig("never", STEP + 8 * MiB);
      const ns = Namespace.open("r", cfg);
      for (let i = 0; i < 16; i++) ns.put(Buffer.from(`k${i}`), value(i));
      let [active] = dataFiles(cfg, "r");
      expect(active.size).toBeGreaterThan(1 * MiB);
      expect(active.size).toBeLessThan(1.1 * MiB); // the reservation is not in the file's size
      expect(active.allocated).toBeGreaterThanOrEqual(STEP);
      expect(active.allocated).toBeLessThan(STEP + 1.2 * MiB);

      let i = 16;
      while (dataFiles(cfg, "r").length < 2) ns.put(Buffer.from(`k${i}`), value(i++));
      const [sealed, next] = dataFiles(cfg, "r");
      expect(sealed.size).toBeGreaterThan(STEP + 7 * MiB);
      expect(sealed.allocated).toBeLessThanOrEqual(STEP + 8 * MiB + 4096); // reserved up to the limit, not STEP past it
      expect(next.allocated).toBeGreaterThanOrEqual(STEP);
      ns.close();
      [, active] = dataFiles(cfg, "r");
      expect(active.allocated).toBeLessThan(active.size + 64 * 1024);

      const again = Namespace.open("r", cfg);
      expect(again.entries.size).toBe(i);
      for (const k of [0, 15, i - 1]) expect(read(again, `k${k}`)!.equals(value(k))).toBe(true);
      again.put(Buffer.from("after"), value(1));
      expect(dataFiles(cfg, "r")[1].allocated).toBeGreaterThanOrEqual(STEP);
      again.close();
    });

    test("on a nearly full disk the reservation is given back: the namespace fills the disk, and every stored value reads back", () => {
      // A disk with less than STEP free: fallocate fails, after ext4 reserved what it could.
      const img = join(build, `full-disk-${process.pid}.img`);
      const mnt = mkdtempSync(join(build, "full-disk-"));
      dirs.push(mnt);
      const sh = (cmd: string[]) => {
        const p = Bun.spawnSync(cmd, { stderr: "pipe" });
        if (p.exitCode !== 0) throw new Error(`${cmd.join(" ")}: ${p.stderr.toString()}`);
      };
      const free = () => {
        const st = statfsSync(mnt);
        return st.bavail * st.bsize;
      };
      const open: Namespace[] = [];
      let mounted = false;
      try {
        sh(["truncate", "-s", String(STEP + 12 * MiB), img]);
        // 4 KiB blocks, as the comment on the index below assumes; no blocks reserved for root,
        // who could otherwise write past what statfs shows as available.
        sh(["mkfs.ext4", "-q", "-F", "-m", "0", "-b", "4096", img]);
        sh(["mount", "-o", "loop", img, mnt]);
        mounted = true;
        writeFileSync(join(mnt, "filler"), Buffer.alloc(free() - (STEP - 1 * MiB)));
        const cfg: StorageConfig = { dataRoot: join(mnt, "data"), indexRoot: join(mnt, "index"), datasize: 256 * MiB, fsync: "always" };
        const ns = Namespace.open("full", cfg);
        open.push(ns);
        const room = free();
        expect(room).toBeLessThan(STEP);
        // Small values, so that the index grows by a block every ~0.5 MiB of data.
        const small = (i: number) => Buffer.alloc(4096, i);
        let stored = 0;
        let err: unknown;
        for (let i = 0; err === undefined; i++) {
          try {
            ns.put(Buffer.from(`k${i}`), small(i));
            stored++;
          } catch (e) {
            err = e;
          }
        }
        expect(err).toBeInstanceOf(ZdbError);
        expect((err as ZdbError).message).toContain("No space left on device");
        // Holding the partial reservation, the index append failed from its second block on.
        expect(stored * 4096).toBeGreaterThan(room - 512 * 1024);
        ns.close();
        const again = Namespace.open("full", cfg);
        open.push(again);
        expect(again.entries.size).toBe(stored);
        for (let k = 0; k < stored; k++) expect(read(again, `k${k}`)!.equals(small(k))).toBe(true);
      } finally {
        for (const ns of open) {
          try {
            ns.close();
          } catch {
            // a failed step's own error is the one to report
          }
        }
        if (mounted) Bun.spawnSync(["umount", "-l", mnt]);
        rmSync(img, { force: true });
      }
    });
  });
});
