// The newc writer, checked with GNU cpio (a reader nobody here wrote) and for byte-for-byte stability.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readlinkSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CpioError, writeCpio, type CpioEntry } from "../../initramfs/cpio.ts";

const dir = mkdtempSync(join(tmpdir(), "zos-cpio-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const entries: CpioEntry[] = [
  { kind: "file", path: "usr/bin/tool", mode: 0o755, data: Buffer.from("#!binary\x00\x01\x02") },
  { kind: "dir", path: "usr", mode: 0o755 },
  { kind: "dir", path: "usr/bin", mode: 0o755 },
  { kind: "symlink", path: "usr/bin/alias", target: "tool" },
  { kind: "dir", path: "dev", mode: 0o755 },
  { kind: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 },
  { kind: "file", path: "/empty", mode: 0o644, data: new Uint8Array(0) },
  { kind: "file", path: "odd", mode: 0o600, data: Buffer.from("abcde") }, // length not a multiple of 4
];

async function cpio(args: string[], input: string, cwd = dir): Promise<string> {
  const p = Bun.spawn(["cpio", ...args], { cwd, stdin: Bun.file(input), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`cpio ${args.join(" ")} exited ${code}: ${err}`);
  return out;
}

describe("writeCpio", () => {
  test("GNU cpio lists every entry with its type, mode and device numbers", async () => {
    const archive = join(dir, "a.cpio");
    writeCpio(archive, entries);
    const listing = (await cpio(["-itv", "--quiet"], archive)).trim().split("\n");
    // every mtime is 0, so each line ends "Jan  1  1970 <name>"
    const byName = new Map(listing.map((l) => [/ 1970 (.+)$/.exec(l)?.[1] ?? l, l]));
    expect([...byName.keys()].sort()).toEqual(["dev", "dev/console", "empty", "odd", "usr", "usr/bin", "usr/bin/alias -> tool", "usr/bin/tool"]);
    expect(byName.get("usr/bin/tool")).toStartWith("-rwxr-xr-x");
    expect(byName.get("dev/console")).toMatch(/^crw------- .* 5,\s+1 /);
    expect(byName.get("usr")).toStartWith("drwxr-xr-x");
  });

  test("GNU cpio extracts the same contents", async () => {
    const archive = join(dir, "b.cpio");
    writeCpio(archive, entries.filter((e) => e.kind !== "char"));
    const root = mkdtempSync(join(dir, "x-"));
    await cpio(["-idm", "--quiet"], archive, root);
    expect(readFileSync(join(root, "usr/bin/tool"))).toEqual(Buffer.from("#!binary\x00\x01\x02"));
    expect(readFileSync(join(root, "odd"), "utf8")).toBe("abcde");
    expect(readFileSync(join(root, "empty")).length).toBe(0);
    expect(readlinkSync(join(root, "usr/bin/alias"))).toBe("tool");
    expect(statSync(join(root, "odd")).mode & 0o777).toBe(0o600);
  });

  test("the bytes depend on the entries, not on the order they were given in", () => {
    const a = join(dir, "c1.cpio"), b = join(dir, "c2.cpio");
    writeCpio(a, entries);
    writeCpio(b, [...entries].reverse());
    expect(Buffer.compare(readFileSync(a), readFileSync(b))).toBe(0);
    // the archive ends with the trailer, padded to a 4-byte boundary
    const bytes = readFileSync(a);
    expect(bytes.length % 4).toBe(0);
    expect(bytes.includes(Buffer.from("TRAILER!!!\0"))).toBe(true);
  });

  test("a missing parent directory or a duplicate path is refused", () => {
    expect(() => writeCpio(join(dir, "d.cpio"), [{ kind: "file", path: "nodir/file", mode: 0o644, data: new Uint8Array(1) }]))
      .toThrow(CpioError);
    expect(() => writeCpio(join(dir, "e.cpio"), [{ kind: "dir", path: "x", mode: 0o755 }, { kind: "dir", path: "/x/", mode: 0o755 }]))
      .toThrow(/duplicate entry/);
    expect(() => writeCpio(join(dir, "f.cpio"), [{ kind: "dir", path: "../up", mode: 0o755 }])).toThrow(/not a valid archive path/);
  });
});
