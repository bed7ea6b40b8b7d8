// Failure behaviour of a mounted flist under the real kernel: a store that stalls, dies mid-read or
// returns altered bytes gives EIO (after the fetch deadline at most), never a hung mount or wrong
// bytes, and reads succeed again once the store is back; a stalled block of one file does not hold up
// others; a killed daemon leaves nothing that stops the next mount; signatures gate the mount; the
// chunk cache stays within its bound.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Flist } from "../../fuse-fs/flist.ts";
import { pack } from "../../fuse-fs/pack.ts";
import { hex } from "../../store/index.ts";
import { bun, cli, isMounted, run, startMount, type MountProc } from "./helpers.ts";

const MiB = 1 << 20;
let dir: string, src: string, store: string;
const content = new Map<string, Buffer>();
const mounts: MountProc[] = [];

interface Hub {
  port: number;
  proc: ReturnType<typeof Bun.spawn>;
}

async function startHub(port = 0): Promise<Hub> {
  const proc = Bun.spawn([bun, join(import.meta.dir, "hub.ts"), store, String(port)], { stdout: "pipe", stderr: "inherit" });
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("hub exited before printing its port");
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  return { port: Number(text.trim()), proc };
}

async function control(hub: Hub, what: string, body: string): Promise<void> {
  const res = await fetch(`http://127.0.0.1:${hub.port}/_${what}`, { method: "PUT", body });
  expect(res.status).toBe(200);
}

/** Reads a file through the mount in a child process (so this process never blocks on the mount). */
async function readInChild(path: string): Promise<{ code: number; bytes: number; err: string }> {
  const p = Bun.spawn(["cat", path], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).arrayBuffer(), new Response(p.stderr).text()]);
  return { code: await p.exited, bytes: out.byteLength, err };
}

function blockIds(flist: string, name: string): string[] {
  const f = Flist.open(flist);
  try {
    const node = f.lookup(1, name)!;
    return f.blocks(node.ino).map((b) => hex(b.id));
  } finally {
    f.close();
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "zflist-faults-"));
  src = join(dir, "src");
  store = join(dir, "store");
  mkdirSync(src);
  for (const [name, size] of [["held", 3 * MiB], ["other", MiB + 5], ["killed", 4 * MiB], ["stalled", 2 * MiB], ["corrupt", 2 * MiB], ["big", 6 * MiB]] as const) {
    const data = randomBytes(size);
    content.set(name, data);
    writeFileSync(join(src, name), data);
  }
  await pack({ source: src, output: join(dir, "x.fl"), stores: [`dir://${store}`] });
}, 60_000);

afterAll(async () => {
  for (const m of mounts) if (m.proc.exitCode === null) await m.stop();
  rmSync(dir, { recursive: true, force: true });
}, 30_000);

describe("faults", () => {
  test("http hub: a held block stalls only its file; a stalled or killed hub gives EIO; reads recover", async () => {
    let hub = await startHub();
    const mnt = join(dir, "mnt-http");
    mkdirSync(mnt);
    const m = await startMount([join(dir, "x.fl"), mnt, "--cache", join(dir, "cache-http"), "-s", `http://127.0.0.1:${hub.port}`, "--timeout", "1500"]);
    mounts.push(m);
    // A second mount on the same hub whose deadline cannot pass while the held read is being checked.
    const patient = join(dir, "mnt-patient");
    mkdirSync(patient);
    const p = await startMount([join(dir, "x.fl"), patient, "--cache", join(dir, "cache-patient"), "-s", `http://127.0.0.1:${hub.port}`, "--timeout", "60000"]);
    mounts.push(p);
    try {
      // One file's blocks are held at the hub: its reader waits while another file is read in full.
      await control(hub, "hold", blockIds(join(dir, "x.fl"), "held").join("\n"));
      const slow = readInChild(join(patient, "held"));
      let slowDone = false;
      slow.then(() => (slowDone = true));
      const other = await readInChild(join(patient, "other"));
      expect(other).toMatchObject({ code: 0, bytes: MiB + 5 });
      expect(slowDone).toBe(false);
      await control(hub, "hold", "");
      expect(await slow).toMatchObject({ code: 0, bytes: 3 * MiB });
      expect(readFileSync(join(patient, "held")).equals(content.get("held")!)).toBe(true);
      expect(await p.stop()).toBe(0);

      // A hub that accepts and never answers: EIO after the deadline, then recovery.
      await control(hub, "mode", "hang");
      const stalled = await readInChild(join(mnt, "stalled"));
      expect(stalled.code).not.toBe(0);
      expect(stalled.err).toContain("Input/output error");
      expect(readdirSync(mnt).sort()).toEqual(["big", "corrupt", "held", "killed", "other", "stalled"]);
      await control(hub, "mode", "ok");
      expect(readFileSync(join(mnt, "stalled")).equals(content.get("stalled")!)).toBe(true);

      // The hub dies in the middle of a read: EIO, the mount stays up, and a restarted hub serves again.
      await control(hub, "hold", blockIds(join(dir, "x.fl"), "killed").slice(2).join("\n"));
      const killed = readInChild(join(mnt, "killed"));
      await Bun.sleep(100);
      hub.proc.kill("SIGKILL");
      await hub.proc.exited;
      const r = await killed;
      expect(r.code).not.toBe(0);
      expect(r.err).toContain("Input/output error");
      expect(readFileSync(join(mnt, "stalled")).equals(content.get("stalled")!)).toBe(true); // cached
      hub = await startHub(hub.port);
      expect(readFileSync(join(mnt, "killed")).equals(content.get("killed")!)).toBe(true);
    } finally {
      expect(await m.stop()).toBe(0);
      hub.proc.kill();
    }
    expect(isMounted(mnt)).toBe(false);
  }, 60_000);

  test("a read waiting on a stalled store is interrupted by a signal (FUSE_INTERRUPT), long before the deadline", async () => {
    const hub = await startHub();
    const mnt = join(dir, "mnt-intr");
    mkdirSync(mnt);
    const m = await startMount([join(dir, "x.fl"), mnt, "--cache", join(dir, "cache-intr"), "-s", `http://127.0.0.1:${hub.port}`, "--timeout", "60000"]);
    mounts.push(m);
    try {
      await control(hub, "mode", "hang");
      const r = Bun.spawn(["python3", join(import.meta.dir, "interrupted-read.py"), join(mnt, "other")], { stdout: "pipe", stderr: "pipe" });
      expect(await new Response(r.stdout).text()).toBe("interrupted\n");
      expect(await r.exited).toBe(0);
      m.proc.kill("SIGUSR1");
      while (!m.log().includes('"INTERRUPT":1')) await Bun.sleep(20);
      await control(hub, "mode", "ok");
      expect(readFileSync(join(mnt, "other")).equals(content.get("other")!)).toBe(true);
    } finally {
      await m.stop();
      hub.proc.kill();
    }
  }, 30_000);

  test("a corrupted stored block gives EIO, never wrong bytes; the repaired block reads again", async () => {
    const fl = join(dir, "x.fl");
    const id = blockIds(fl, "corrupt")[1];
    const path = join(store, id.slice(0, 2), id);
    const good = readFileSync(path);
    const bad = Buffer.from(good);
    bad[100] ^= 0x01;
    writeFileSync(path, bad);
    const mnt = join(dir, "mnt-corrupt");
    mkdirSync(mnt);
    const m = await startMount([fl, mnt, "--cache", join(dir, "cache-corrupt")]);
    mounts.push(m);
    try {
      const r = await readInChild(join(mnt, "corrupt"));
      expect(r.code).not.toBe(0);
      expect(r.err).toContain("Input/output error");
      // The first block is intact and still readable on its own.
      const head = run(["dd", `if=${join(mnt, "corrupt")}`, "bs=512K", "count=1", "status=none"]);
      expect(head.code).toBe(0);
      writeFileSync(path, good);
      expect(readFileSync(join(mnt, "corrupt")).equals(content.get("corrupt")!)).toBe(true);
      expect(m.log()).toContain("READ on node 3: block bytes do not hash to their id");
    } finally {
      await m.stop();
    }
  }, 30_000);

  test("the chunk cache stays within --cache-size", async () => {
    const mnt = join(dir, "mnt-lru");
    mkdirSync(mnt);
    const cache = join(dir, "cache-lru");
    const m = await startMount([join(dir, "x.fl"), mnt, "--cache", cache, "--cache-size", "2M"]);
    mounts.push(m);
    try {
      expect(readFileSync(join(mnt, "big")).equals(content.get("big")!)).toBe(true);
    } finally {
      await m.stop();
    }
    const sizes = readdirSync(cache, { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => statSync(join(e.parentPath, e.name)).size);
    expect(sizes.length).toBeGreaterThan(0);
    expect(sizes.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(2 * MiB);
  }, 30_000);

  test("a killed daemon leaves a dead mount that the next mount clears", async () => {
    const mnt = join(dir, "mnt-kill");
    mkdirSync(mnt);
    const args = [join(dir, "x.fl"), mnt, "--cache", join(dir, "cache-kill")];
    const first = await startMount(args);
    first.proc.kill("SIGKILL");
    await first.proc.exited;
    expect(isMounted(mnt)).toBe(true);
    expect(() => statSync(mnt)).toThrow(/ENOTCONN|not connected/);
    const second = await startMount(args);
    mounts.push(second);
    expect(readFileSync(join(mnt, "other")).equals(content.get("other")!)).toBe(true);
    expect(await second.stop()).toBe(0);
    expect(isMounted(mnt)).toBe(false);
  }, 30_000);

  test("sign, and mount --trusted-key refuses unsigned, foreign and altered flists", async () => {
    const fl = join(dir, "signed.fl");
    writeFileSync(fl, readFileSync(join(dir, "x.fl")));
    const key = join(dir, "key"), otherKey = join(dir, "key2");
    writeFileSync(key, randomBytes(32).toString("hex"));
    writeFileSync(otherKey, randomBytes(32));
    const mnt = join(dir, "mnt-signed");
    mkdirSync(mnt);
    const mountArgs = (pub: string) => [bun, cli, "mount", fl, mnt, "--cache", join(dir, "cache-signed"), "--trusted-key", pub];

    const unsigned = run(mountArgs("00".repeat(32)));
    expect(unsigned.code).toBe(1);
    expect(unsigned.err).toContain("bad-signature: flist is not signed");

    const signed = run([bun, cli, "sign", fl, "--key", key]);
    expect(signed.code).toBe(0);
    const pub = /public key ([0-9a-f]{64})/.exec(signed.out)![1];
    expect(run([bun, cli, "verify", fl, "--trusted-key", pub]).out).toBe("signature ok\n");
    const m = await startMount(mountArgs(pub).slice(3));
    mounts.push(m);
    expect(readFileSync(join(mnt, "other")).equals(content.get("other")!)).toBe(true);
    await m.stop();

    const foreignPub = /public key ([0-9a-f]{64})/.exec(run([bun, cli, "sign", join(dir, "x.fl"), "--key", otherKey]).out)![1];
    const foreign = run(mountArgs(foreignPub));
    expect(foreign.code).toBe(1);
    expect(foreign.err).toContain("not by the trusted key");

    const f = Flist.open(fl, { write: true });
    f.db.query("UPDATE inode SET mode = mode | 2048 WHERE name = 'other'").run(); // setgid sneaked in
    f.close();
    const altered = run(mountArgs(pub));
    expect(altered.code).toBe(1);
    expect(altered.err).toContain("altered after signing");
    expect(isMounted(mnt)).toBe(false);
  }, 30_000);
});
