// redis-cli (Debian redis-tools) drives the zdb server process through every command, including
// the error cases: unknown command, wrong arity, oversize key/value/argument count, malformed RESP.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { randomBytes } from "node:crypto";
import { connect } from "node:net";
import { join } from "node:path";
import { redisCli, removeDir, startZdb, tempDir, type ZdbProcess } from "./zdb-process.ts";

let dir: string;
let z: ZdbProcess;
const cli = async (...args: string[]) => (await redisCli(z.port, args)).trimEnd();
const admin = (...args: string[]) => cli("-a", "sesame", "--no-auth-warning", ...args);

beforeAll(async () => {
  dir = tempDir("zdb-redis-cli");
  z = await startZdb(join(dir, "data"), ["--admin", "sesame"]);
});

afterAll(async () => {
  await z.stop();
  removeDir(dir);
});

describe("zdb server driven by redis-cli", () => {
  test("PING, TIME, INFO", async () => {
    expect(await cli("PING")).toBe("PONG");
    expect(await cli("PING", "hi")).toBe('"hi"');
    const [sec, usec] = (await cli("TIME")).split("\n").map((l) => Number(l.replace(/^\d+\) "|"$/g, "")));
    expect(Math.abs(sec - Date.now() / 1000)).toBeLessThan(60);
    expect(usec).toBeGreaterThanOrEqual(0);
    expect(await cli("--raw", "INFO")).toContain("fsync: everysec");
  });

  test("SET, GET, MGET, EXISTS, CHECK, LENGTH, KEYTIME, DEL, DBSIZE in the default namespace", async () => {
    expect(await cli("SET", "k1", "v1")).toBe('"k1"');
    expect(await cli("SET", "k1", "v1")).toBe("(nil)"); // unchanged
    expect(await cli("SET", "k2", "value two")).toBe('"k2"');
    expect(await cli("GET", "k1")).toBe('"v1"');
    expect(await cli("GET", "missing")).toBe("(nil)");
    expect(await cli("MGET", "k1", "missing", "k2")).toBe('1) "v1"\n2) (nil)\n3) "value two"');
    expect(await cli("EXISTS", "k2")).toBe("(integer) 1");
    expect(await cli("EXISTS", "nope")).toBe("(integer) 0");
    expect(await cli("CHECK", "k2")).toBe("(integer) 1");
    expect(await cli("CHECK", "nope")).toBe("(nil)");
    expect(await cli("DBSIZE")).toBe("(integer) 2");
    expect(await cli("LENGTH", "k2")).toBe("(integer) 9");
    expect(await cli("LENGTH", "nope")).toBe("(nil)");
    const keytime = Number((await cli("KEYTIME", "k2")).replace("(integer) ", ""));
    expect(Math.abs(keytime - Date.now() / 1000)).toBeLessThan(600);
    expect(await cli("KEYTIME", "nope")).toBe("(nil)");
    expect(await cli("DEL", "k2")).toBe("OK");
    expect(await cli("DEL", "k2")).toBe("(error) Key not found");
    expect(await cli("GET", "k2")).toBe("(nil)");
    expect(await cli("DBSIZE")).toBe("(integer) 1");
  });

  test("binary values come back byte-exact", async () => {
    const value = randomBytes(100_000);
    expect(await redisCli(z.port, ["-x", "SET", "bin"], value)).toBe('"bin"\n');
    const raw = Buffer.from(await new Response(Bun.spawn(["redis-cli", "-p", String(z.port), "--raw", "GET", "bin"], { stdout: "pipe" }).stdout).arrayBuffer());
    expect(raw.subarray(0, raw.length - 1).equals(value)).toBe(true); // --raw appends a newline
  });

  test("SCAN, SCANX and RSCAN walk every key with [key, size, timestamp] and end with No more data; FLUSH", async () => {
    await admin("NSNEW", "scanme");
    const keys = Array.from({ length: 40 }, (_, i) => `s${i}`);
    const script = ["SELECT scanme", ...keys.map((k, i) => `SET ${k} ${"x".repeat(i + 1)}`), "DEL s7"].join("\n") + "\n";
    await redisCli(z.port, [], Buffer.from(script));
    const walk = async (cmd: string) => {
      const seen: string[] = [];
      let cursor: string | null = null;
      for (;;) {
        const out: string = await redisCli(z.port, ["--raw"], Buffer.from(`SELECT scanme\n${cmd}${cursor ? ` ${cursor}` : ""}\n`));
        const lines = out.trimEnd().split("\n").slice(1);
        if (lines[0] === "No more data") return seen;
        cursor = lines[0];
        for (let i = 1; i < lines.length; i += 3) {
          seen.push(lines[i]);
          expect(Number(lines[i + 1])).toBe(Number(lines[i].slice(1)) + 1); // size
          expect(Math.abs(Number(lines[i + 2]) - Date.now() / 1000)).toBeLessThan(600); // timestamp
        }
      }
    };
    const expected = keys.filter((k) => k !== "s7");
    expect(await walk("SCAN")).toEqual(expected);
    expect(await walk("SCANX")).toEqual(expected);
    expect(await walk("RSCAN")).toEqual([...expected].reverse());

    // FLUSH empties the namespace (admin only), keeps it usable.
    expect(await redisCli(z.port, [], Buffer.from("SELECT scanme\nFLUSH\n"))).toContain("(error) Permission denied: admin required");
    const flushed = await redisCli(z.port, [], Buffer.from("AUTH sesame\nSELECT scanme\nFLUSH\nDBSIZE\nGET s1\nSET s1 again\nGET s1\n"));
    expect(flushed.trimEnd().split("\n")).toEqual(["OK", "OK", "OK", "(integer) 0", "(nil)", '"s1"', '"again"']);
    expect(await cli("--raw", "NSINFO", "scanme")).toContain("entries: 1\n");
  });

  test("namespaces: NSNEW, NSLIST, NSINFO, NSSET, SELECT with passwords, NSDEL", async () => {
    expect(await cli("NSNEW", "ns1")).toBe("(error) Permission denied: admin required (AUTH first)");
    expect(await admin("NSNEW", "ns1")).toBe("OK");
    expect(await admin("NSNEW", "ns1")).toBe("(error) This namespace is not available");
    expect(await admin("NSNEW", "bad/name")).toStartWith("(error) Invalid namespace name");
    expect(await cli("NSLIST")).toContain('"ns1"');
    expect(await cli("--raw", "NSINFO", "ns1")).toContain("name: ns1\nentries: 0\npublic: yes\npassword: no");
    expect(await cli("NSINFO", "nope")).toBe("(error) Namespace not found: nope");
    expect(await admin("NSSET", "ns1", "password", "pw1")).toBe("OK");
    expect(await admin("NSSET", "ns1", "maxsize", "1000")).toBe("OK");
    expect(await admin("NSSET", "ns1", "worm", "1")).toBe("OK");
    expect(await admin("NSSET", "ns1", "colour", "1")).toStartWith("(error) Unknown namespace property");
    expect(await admin("NSSET", "ns1", "maxsize", "-4")).toStartWith("(error) Invalid maxsize");
    const info = await cli("--raw", "NSINFO", "ns1");
    expect(info).toContain("password: yes");
    expect(info).toContain("data_limits_bytes: 1000");
    expect(info).toContain("worm: yes");

    // Public with a password: read-only without it.
    expect(await cli("-e", "SELECT", "ns1")).toBe("OK");
    const ro = await redisCli(z.port, [], Buffer.from("SELECT ns1\nSET a b\n"));
    expect(ro).toContain("(error) Namespace is read-only for this connection");
    expect(await cli("SELECT", "ns1", "wrong")).toBe("(error) Access denied");
    const rw = await redisCli(z.port, [], Buffer.from("SELECT ns1 pw1\nSET a b\nSET a c\nDEL a\nGET a\n"));
    expect(rw.trimEnd().split("\n")).toEqual(["OK", '"a"', "(error) Namespace is in worm mode: keys cannot be overwritten", "(error) Namespace is in worm mode: keys cannot be deleted", '"b"']);
    // Private: SELECT needs the password.
    expect(await admin("NSSET", "ns1", "public", "0")).toBe("OK");
    expect(await cli("SELECT", "ns1")).toBe("(error) Namespace protected: password required");

    // SELECT ns SECURE sha1(challenge:password)
    const c = Bun.spawn(["redis-cli", "-p", String(z.port), "--no-raw"], { stdin: "pipe", stdout: "pipe" });
    c.stdin.write("AUTH SECURE CHALLENGE\n");
    c.stdin.flush();
    const reader = c.stdout.getReader();
    const challenge = new TextDecoder().decode((await reader.read()).value).trim();
    expect(challenge).toMatch(/^[0-9a-f]{32}$/);
    c.stdin.write(`SELECT ns1 SECURE ${createHash("sha1").update(`${challenge}:pw1`).digest("hex")}\nGET a\n`);
    c.stdin.end();
    let rest = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest.trim().split("\n")).toEqual(["OK", '"b"']);

    expect(await admin("NSDEL", "default")).toBe("(error) Cannot delete the default namespace");
    expect(await admin("NSDEL", "ns1")).toBe("OK");
    expect(await cli("NSLIST")).not.toContain('"ns1"');
    expect(await cli("SELECT", "ns1")).toBe("(error) Namespace not found: ns1");
  });

  test("AUTH plain and SECURE", async () => {
    expect(await cli("AUTH", "nope")).toBe("(error) Access denied");
    const out = await redisCli(z.port, [], Buffer.from("AUTH sesame\nNSNEW authns\nNSDEL authns\n"));
    expect(out.trimEnd().split("\n")).toEqual(["OK", "OK", "OK"]);
    expect(await cli("AUTH", "SECURE", "0123")).toBe("(error) No challenge pending: send AUTH SECURE CHALLENGE first");
  });

  test("seq mode hands out 8-byte little-endian ids", async () => {
    await admin("NSNEW", "seq1");
    expect(await admin("NSSET", "seq1", "mode", "seq")).toBe("OK");
    const out = await redisCli(z.port, [], Buffer.from('SELECT seq1\nSET "" first\nSET "" second\nGET "\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00"\nSET abc x\n'));
    expect(out.trimEnd().split("\n")).toEqual([
      "OK",
      '"\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"',
      '"\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00"',
      '"second"',
      "(error) Invalid key: a sequential namespace takes an empty key or an 8-byte id",
    ]);
    expect(await redisCli(z.port, [], Buffer.from("SELECT seq1\nSET x y\n"))).toContain("(error)");
    expect(await admin("NSSET", "seq1", "mode", "user")).toBe("(error) Cannot change the mode of a namespace that holds data");
  });

  test("errors: unknown command, wrong arity, key > 255, value > 8 MiB, > 1024 arguments", async () => {
    expect(await cli("FLY", "away")).toBe("(error) Command not supported: FLY");
    expect(await cli("GET")).toBe("(error) Wrong number of arguments for GET");
    expect(await cli("SET", "a")).toBe("(error) Wrong number of arguments for SET");
    expect(await cli("SET", "a", "b", "c")).toBe("(error) Wrong number of arguments for SET");
    expect(await cli("SET", "k".repeat(256), "v")).toBe("(error) Key too large: 256 bytes, at most 255");
    expect(await cli("SET", "k".repeat(255), "v")).toBe(`"${"k".repeat(255)}"`);
    expect(await cli("GET", "k".repeat(300))).toBe("(error) Key too large: 300 bytes, at most 255");
    // An oversize value is read and discarded: the same connection goes on with the next command.
    const big = Buffer.alloc(8 * 1024 * 1024 + 1, 0x61);
    const afterBig = await redisCli(z.port, ["-x", "SET", "big"], big);
    expect(afterBig.trim()).toBe("(error) Limit exceeded: argument of 8388609 bytes exceeds the limit of 8388608 bytes");
    const max = Buffer.alloc(8 * 1024 * 1024, 0x62);
    expect((await redisCli(z.port, ["-x", "SET", "max"], max)).trim()).toBe('"max"');
    // 1024 arguments counting the command name, as in 0-db.
    const manyKeys = Array.from({ length: 1023 }, (_, i) => `m${i}`);
    const many = (await cli("MGET", ...manyKeys)).split("\n");
    expect(many.length).toBe(1023);
    expect(many[1022].trim()).toBe("1023) (nil)");
    expect(await cli("MGET", ...manyKeys, "one-more")).toBe("(error) Limit exceeded: 1025 arguments exceed the limit of 1024");
  });

  test("malformed RESP gets a protocol error, other clients keep working", { timeout: 30_000 }, async () => {
    const bystander = Bun.spawn(["redis-cli", "-p", String(z.port), "--no-raw"], { stdin: "pipe", stdout: "pipe" });
    for (const garbage of ["*2\r\n$3\r\nGET\r\n$x\r\n", "!!!\r\n", "*1\r\n$4\r\nPINGxx\r\n"]) {
      const replies: string[] = [];
      let closed = false;
      const s = await Bun.connect({
        hostname: "127.0.0.1",
        port: z.port,
        socket: { data: (_s, d) => void replies.push(d.toString()), close: () => void (closed = true) },
      });
      s.write(garbage);
      for (let i = 0; i < 200 && !closed; i++) await Bun.sleep(10);
      expect(replies.join("")).toStartWith("-Protocol error:");
      expect(closed).toBe(true);
    }
    // An oversize bulk on a raw socket: error reply, the stream stays usable.
    const replies: string[] = [];
    const s = connect({ host: "127.0.0.1", port: z.port });
    s.on("data", (d) => void replies.push(d.toString()));
    await new Promise((r) => s.once("connect", r));
    s.write(`*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$${9 * 1024 * 1024}\r\n`);
    s.write(Buffer.alloc(9 * 1024 * 1024 + 2));
    s.write("*1\r\n$4\r\nPING\r\n");
    for (let i = 0; i < 500 && !replies.join("").includes("PONG"); i++) await Bun.sleep(10);
    expect(replies.join("")).toBe(`-Limit exceeded: argument of ${9 * 1024 * 1024} bytes exceeds the limit of 8388608 bytes\r\n+PONG\r\n`);
    s.end();
    bystander.stdin.write("PING\n");
    bystander.stdin.end();
    expect((await new Response(bystander.stdout).text()).trim()).toBe("PONG");
  });
});
