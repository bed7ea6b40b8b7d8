// The NBD server core with the in-memory export, against real clients (nbdinfo, qemu-img,
// nbdcopy, fio) and against malformed input from a raw client.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { lstatSync, rmSync } from "node:fs";
import { NbdServer } from "../../vdisk/nbd/server.ts";
import { MemoryExport } from "../../vdisk/memory-export.ts";
import { RawClient, makeSparseImage, mustRun, run, tempDir, randomBytes } from "./helpers.ts";

const GiB = 1024 * 1024 * 1024;
let server: NbdServer;
let port: number;
let dir: string;
let sock: string;
const logs: string[] = [];

beforeAll(() => {
  dir = tempDir("nbd-test-");
  sock = join(dir, "nbd.sock");
  server = new NbdServer({ log: (m) => logs.push(m) });
  server.addExport(new MemoryExport("disk", GiB, "a test disk"));
  server.addExport(new MemoryExport("ro", 1024 * 1024, "read only", true));
  server.addExport(new MemoryExport("small", 64 * 1024 * 1024, "small disk"));
  const addr = server.listen({ host: "127.0.0.1", port: 0 });
  port = "port" in addr ? addr.port : 0;
  server.listen({ unix: sock });
});

afterAll(() => {
  server.close();
  rmSync(dir, { recursive: true, force: true });
});

const uri = (name: string) => `nbd://127.0.0.1:${port}/${name}`;

describe("nbdinfo", () => {
  test("--json reports size, block sizes, flags and base:allocation", async () => {
    const info = JSON.parse(await mustRun(["nbdinfo", "--json", uri("disk")]));
    expect(info.protocol).toBe("newstyle-fixed");
    expect(info.structured).toBe(true);
    const e = info.exports[0];
    expect(e["export-name"]).toBe("disk");
    expect(e.description).toBe("a test disk");
    expect(e["export-size"]).toBe(GiB);
    expect(e.contexts).toEqual(["base:allocation"]);
    expect([e.block_size_minimum, e.block_size_preferred, e.block_size_maximum]).toEqual([1, 4096, 32 * 1024 * 1024]);
    expect(e).toMatchObject({ is_read_only: false, can_flush: true, can_fua: true, can_trim: true, can_zero: true, can_fast_zero: true, can_cache: true, can_df: true, can_multi_conn: true });
  });

  test("read-only export advertises no write features", async () => {
    const e = JSON.parse(await mustRun(["nbdinfo", "--json", uri("ro")])).exports[0];
    expect(e).toMatchObject({ is_read_only: true, can_trim: false, can_zero: false });
  });

  test("a stale socket file left by a dead server does not stop a new one from listening", async () => {
    const path = join(dir, "stale.sock");
    // A process killed with SIGKILL leaves its socket file behind.
    const first = Bun.spawn([process.execPath, "-e", `Bun.listen({ unix: ${JSON.stringify(path)}, socket: { data() {} } }); console.log("up")`], { stdout: "pipe" });
    const reader = first.stdout.getReader();
    await reader.read();
    first.kill(9);
    await first.exited;
    expect(lstatSync(path).isSocket()).toBe(true);
    const second = new NbdServer({ log: () => {} });
    second.addExport(new MemoryExport("m", 1024 * 1024));
    second.listen({ unix: path });
    try {
      expect((await mustRun(["nbdinfo", "--size", `nbd+unix:///m?socket=${path}`])).trim()).toBe("1048576");
    } finally {
      second.close();
    }
  });

  test("--list lists every export over a unix socket", async () => {
    const info = JSON.parse(await mustRun(["nbdinfo", "--json", "--list", `nbd+unix:///?socket=${sock}`]));
    expect(info.exports.map((e: { "export-name": string }) => e["export-name"]).sort()).toEqual(["disk", "ro", "small"]);
  });

  test("an unknown export is refused with a message, and the server keeps serving", async () => {
    const r = await run(["nbdinfo", uri("nope")]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain("No such file or directory"); // libnbd's wording for NBD_REP_ERR_UNKNOWN
    expect((await run(["nbdinfo", "--size", uri("disk")])).stdout.trim()).toBe(String(GiB));
  });
});

describe("qemu-img and nbdcopy", () => {
  const extents: [number, number][] = [
    [0, 4096],
    [5 * 1024 * 1024 + 512, 300 * 1024],
    [333 * 1024 * 1024, 1024 * 1024],
    [GiB - 128 * 1024, 128 * 1024],
  ];

  test("convert a sparse 1 GiB image in, compare it back, map shows the holes", async () => {
    const img = join(dir, "src.raw");
    makeSparseImage(img, GiB, extents);
    await mustRun(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", img, uri("disk")]);
    const cmp = await run(["qemu-img", "compare", "-f", "raw", "-F", "raw", img, uri("disk")]);
    expect(cmp.stdout).toContain("Images are identical");
    expect(cmp.code).toBe(0);
    const map = JSON.parse(await mustRun(["qemu-img", "map", "--output=json", "-f", "raw", uri("disk")])) as { start: number; length: number; data: boolean }[];
    const data = map.filter((m) => m.data);
    const holes = map.filter((m) => !m.data);
    const dataBytes = data.reduce((n, m) => n + m.length, 0);
    // Data is reported per 64 KiB page: every written range is covered, nothing else beyond page rounding.
    for (const [off, len] of extents) expect(data.some((m) => m.start <= off && off + len <= m.start + m.length)).toBe(true);
    expect(dataBytes).toBeLessThan(2 * 1024 * 1024);
    expect(holes.reduce((n, m) => n + m.length, 0)).toBe(GiB - dataBytes);
  });

  test("nbdcopy both ways", async () => {
    const img = join(dir, "copy.raw");
    const back = join(dir, "back.raw");
    makeSparseImage(img, 64 * 1024 * 1024, [[12345, 70000], [40 * 1024 * 1024, 2 * 1024 * 1024]], 7);
    await mustRun(["nbdcopy", img, uri("small")]);
    await mustRun(["nbdcopy", uri("small"), back]);
    expect(await Bun.file(back).bytes()).toEqual(await Bun.file(img).bytes());
  });
});

test("fio random writes with crc32c verify, queue depth 32, four connections", async () => {
  const out = await mustRun([
    "fio", "--name=verify", "--ioengine=nbd", `--uri=${uri("small")}`, "--rw=randwrite", "--bs=4k", "--iodepth=32",
    "--numjobs=4", "--size=16M", "--offset_increment=16M", "--verify=crc32c", "--verify_state_save=0", "--do_verify=1", "--verify_fatal=1",
    "--output-format=json",
  ], { timeoutMs: 300_000 });
  const jobs = JSON.parse(out.slice(out.indexOf("{"))).jobs as { error: number; write: { total_ios: number }; read: { total_ios: number } }[];
  expect(jobs).toHaveLength(4);
  for (const j of jobs) {
    expect(j.error).toBe(0);
    expect(j.write.total_ios).toBe(4096);
    expect(j.read.total_ios).toBe(4096); // every block read back and checked
  }
}, 300_000);

describe("bad input", () => {
  test("garbage instead of client flags closes the connection", async () => {
    const c = await RawClient.connect(port);
    await c.read(18);
    c.send(new Uint8Array([0xff, 0xff, 0xff, 0xff]));
    expect(await c.waitClosed()).toBe(true);
  });

  test("an option without IHAVEOPT closes the connection", async () => {
    const c = await RawClient.connect(port);
    await c.read(18);
    c.send(new Uint8Array([0, 0, 0, 1]));
    c.send(new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n"));
    expect(await c.waitClosed()).toBe(true);
  });

  test("unknown options and STARTTLS get ERR_UNSUP; malformed GO gets ERR_INVALID; the session continues", async () => {
    const c = await RawClient.connect(port);
    await c.read(18);
    c.send(new Uint8Array([0, 0, 0, 1]));
    c.option(42, new Uint8Array([1, 2, 3]));
    expect((await c.optionReply()).type).toBe(0x80000001);
    c.option(5, new Uint8Array(0));
    expect((await c.optionReply()).type).toBe(0x80000001);
    c.option(7, new Uint8Array([0, 0, 0, 99, 1])); // name length longer than the data
    expect((await c.optionReply()).type).toBe(0x80000003);
    c.option(10, new Uint8Array(8)); // SET_META_CONTEXT before structured replies
    expect((await c.optionReply()).type).toBe(0x80000003);
    c.option(3, new Uint8Array(0));
    const names: string[] = [];
    for (;;) {
      const r = await c.optionReply();
      if (r.type === 1) break;
      names.push(new TextDecoder().decode(r.data.subarray(4, 4 + new DataView(r.data.buffer).getUint32(0))));
    }
    expect(names.sort()).toEqual(["disk", "ro", "small"]);
    c.option(2, new Uint8Array(0)); // ABORT
    expect((await c.optionReply()).type).toBe(1);
    expect(await c.waitClosed()).toBe(true);
  });

  test("out-of-range, zero-length, unaligned, unknown-command and read-only requests get the right errno", async () => {
    const c = await RawClient.connect(port);
    const { size } = await c.handshake("small", { blockSize: true });
    c.request(0, Number(size) - 512, 1024, { cookie: 1 });
    expect(await c.simpleReply()).toMatchObject({ error: 22, cookie: 1 });
    c.request(1, Number(size), 512, { cookie: 2, payload: new Uint8Array(512) });
    expect(await c.simpleReply()).toMatchObject({ error: 28, cookie: 2 });
    c.request(0, 0, 0, { cookie: 3 });
    expect(await c.simpleReply()).toMatchObject({ error: 22, cookie: 3 });
    c.request(99, 0, 512, { cookie: 4 });
    expect(await c.simpleReply()).toMatchObject({ error: 22, cookie: 4 });
    c.request(3, 4096, 0, { cookie: 5 }); // FLUSH with an offset
    expect(await c.simpleReply()).toMatchObject({ error: 22, cookie: 5 });
    c.request(7, 0, 512, { cookie: 6 }); // BLOCK_STATUS without a meta context
    expect(await c.simpleReply()).toMatchObject({ error: 22, cookie: 6 });
    c.request(0, 0, 33 * 1024 * 1024, { cookie: 7 }); // longer than the maximum block size
    expect(await c.simpleReply()).toMatchObject({ error: 22, cookie: 7 });
    // And the connection still works.
    const payload = randomBytes(8192, 3);
    c.request(1, 65536, 8192, { cookie: 8, payload });
    expect(await c.simpleReply()).toMatchObject({ error: 0, cookie: 8 });
    c.request(0, 65536, 8192, { cookie: 9 });
    expect((await c.simpleReply(8192))?.data).toEqual(payload);
    c.request(2, 0, 0);
    expect(await c.waitClosed()).toBe(true);

    const ro = await RawClient.connect(port);
    await ro.handshake("ro");
    ro.request(1, 0, 512, { cookie: 10, payload: new Uint8Array(512) });
    expect(await ro.simpleReply()).toMatchObject({ error: 1, cookie: 10 });
    ro.request(4, 0, 512, { cookie: 11 });
    expect(await ro.simpleReply()).toMatchObject({ error: 1, cookie: 11 });
    ro.destroy();
  });

  test("unaligned requests are refused only from clients that agreed to block sizes", async () => {
    // The memory export's minimum is 1, so use a fresh export with a 512-byte minimum.
    const exp = new MemoryExport("aligned", 1024 * 1024);
    Object.assign(exp, { blockSizes: { minimum: 512, preferred: 4096, maximum: 1024 * 1024 } });
    server.addExport(exp);
    try {
      const agreed = await RawClient.connect(port);
      await agreed.handshake("aligned", { blockSize: true });
      agreed.request(0, 100, 512, { cookie: 1 });
      expect(await agreed.simpleReply()).toMatchObject({ error: 22 });
      agreed.destroy();
      const legacy = await RawClient.connect(port);
      await legacy.handshake("aligned");
      legacy.request(0, 100, 512, { cookie: 2 });
      expect(await legacy.simpleReply(512)).toMatchObject({ error: 0 });
      legacy.destroy();
    } finally {
      server.removeExport("aligned");
    }
  });

  test("a write longer than the maximum drops that connection only", async () => {
    const c = await RawClient.connect(port);
    await c.handshake("small");
    c.request(1, 0, 64 * 1024 * 1024, { cookie: 1 });
    expect(await c.waitClosed()).toBe(true);
    expect((await run(["nbdinfo", "--size", uri("small")])).stdout.trim()).toBe(String(64 * 1024 * 1024));
  });

  test("a client vanishing mid-write leaves the other clients and the data intact", async () => {
    const good = randomBytes(4096, 11);
    const c1 = await RawClient.connect(port);
    await c1.handshake("small");
    c1.request(1, 1 << 20, 4096, { cookie: 1, payload: good });
    expect(await c1.simpleReply()).toMatchObject({ error: 0 });

    const c2 = await RawClient.connect(port);
    await c2.handshake("small");
    const torn = new Uint8Array(28 + 1000);
    const v = new DataView(torn.buffer);
    v.setUint32(0, 0x25609513);
    v.setUint16(6, 1);
    v.setBigUint64(16, BigInt(1 << 20));
    v.setUint32(24, 4096);
    c2.send(torn); // header and 1000 of 4096 payload bytes, then gone
    c2.destroy();

    c1.request(0, 1 << 20, 4096, { cookie: 2 });
    expect((await c1.simpleReply(4096))?.data).toEqual(good);
    c1.destroy();
  });

  test("structured replies: pipelined reads answered by cookie, errors as error chunks", async () => {
    const c = await RawClient.connect(port);
    await c.handshake("disk", { structured: true });
    for (let i = 0; i < 64; i++) c.request(0, i * 4096, 4096, { cookie: 1000 + i });
    c.request(0, GiB, 4096, { cookie: 5 });
    const seen = new Set<number>();
    let errorCookie = 0;
    for (let i = 0; i < 65; i++) {
      const h = (await c.read(20))!;
      const v = new DataView(h.buffer);
      expect(v.getUint32(0)).toBe(0x668e33ef);
      expect(v.getUint16(4) & 1).toBe(1);
      const cookie = Number(v.getBigUint64(8));
      const body = (await c.read(v.getUint32(16)))!;
      if (v.getUint16(6) === 0x8001) {
        errorCookie = cookie;
        expect(new DataView(body.buffer).getUint32(0)).toBe(22);
      } else {
        expect(v.getUint16(6)).toBe(1);
        expect(body.length).toBe(8 + 4096);
        seen.add(cookie);
      }
    }
    expect(errorCookie).toBe(5);
    expect(seen.size).toBe(64);
    c.destroy();
  });

  test("a client that never picks an export is dropped after the handshake deadline", async () => {
    const strict = new NbdServer({ handshakeTimeoutMs: 200, log: () => {} });
    const a = strict.listen({ host: "127.0.0.1", port: 0 });
    try {
      const c = await RawClient.connect("port" in a ? a.port : 0);
      expect(await c.read(18)).not.toBeNull();
      expect(await c.waitClosed()).toBe(true);
    } finally {
      strict.close();
    }
  });

  test("pipelined requests far beyond the in-flight bound are all answered once the client reads", async () => {
    const tight = new NbdServer({ maxInflightBytes: 256 * 1024, log: () => {} });
    tight.addExport(new MemoryExport("t", 16 * 1024 * 1024));
    const a = tight.listen({ host: "127.0.0.1", port: 0 });
    try {
      const c = await RawClient.connect("port" in a ? a.port : 0);
      await c.handshake("t");
      // 8 MiB of writes then 8 MiB of reads, sent without reading a single reply.
      for (let i = 0; i < 128; i++) c.request(1, i * 65536, 65536, { cookie: i, payload: randomBytes(65536, i + 1) });
      for (let i = 0; i < 128; i++) c.request(0, i * 65536, 65536, { cookie: 1000 + i });
      const writes = new Set<number>();
      for (let i = 0; i < 128; i++) {
        const r = await c.simpleReply();
        expect(r?.error).toBe(0);
        writes.add(r!.cookie);
      }
      expect(writes.size).toBe(128);
      for (let i = 0; i < 128; i++) {
        const r = await c.simpleReply(65536);
        expect(r?.cookie).toBe(1000 + i); // a memory export answers synchronously, so in order
        expect(r?.data).toEqual(randomBytes(65536, i + 1));
      }
      c.destroy();
    } finally {
      tight.close();
    }
  });

  test("NBD_OPT_EXPORT_NAME (the oldest way in) with and without the 124 zero bytes, then simple replies", async () => {
    for (const flags of [1, 3]) {
      const c = await RawClient.connect(port);
      await c.read(18);
      c.send(new Uint8Array([0, 0, 0, flags]));
      c.option(1, new TextEncoder().encode("small"));
      const reply = (await c.read(flags === 3 ? 10 : 134))!;
      const v = new DataView(reply.buffer);
      expect(v.getBigUint64(0)).toBe(BigInt(64 * 1024 * 1024));
      expect(v.getUint16(8) & 1).toBe(1); // HAS_FLAGS
      expect(v.getUint16(8) & (1 << 7)).toBe(0); // no DF without structured replies
      if (flags === 1) expect(reply.subarray(10).every((b) => b === 0)).toBe(true);
      c.request(0, 0, 512, { cookie: 77 });
      expect(await c.simpleReply(512)).toMatchObject({ error: 0, cookie: 77 });
      c.request(2, 0, 0);
      expect(await c.waitClosed()).toBe(true);
    }
    const gone = await RawClient.connect(port);
    await gone.read(18);
    gone.send(new Uint8Array([0, 0, 0, 1]));
    gone.option(1, new TextEncoder().encode("missing"));
    expect(await gone.waitClosed()).toBe(true); // EXPORT_NAME cannot carry an error
  });
});
