// flist.mount / flist.unmount / flist.list on a real host-mode init (a child process, so this test
// reads the FUSE mounts it serves directly): parameter schemas, roles, signature checks against
// trustedKeys, conflicts, request counts, and every mount gone after the node shuts down.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { randomBytes } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { pack, signFlist } from "../../fuse-fs/index.ts";
import { RpcClient } from "../../init/rpc/client.ts";
import type { FlistMountInfo } from "../../init/methods/flist.ts";
import { bun, repoRoot, tempDir } from "../init/helpers.ts";
import { startHostNode, type HostNode } from "../init/host-node.ts";
import { isMounted } from "./helpers.ts";

const t = tempDir("zos-flist-rpc-");
const src = join(t.path, "src");
const store = `dir://${join(t.path, "store")}`;
const plain = join(t.path, "plain.fl"), signed = join(t.path, "signed.fl");
const big = randomBytes(3 << 20);
let signer = "";
let node: HostNode;
let admin: RpcClient, operator: RpcClient, reader: RpcClient;

beforeAll(async () => {
  mkdirSync(join(src, "etc"), { recursive: true });
  writeFileSync(join(src, "etc/motd"), "served by flist.mount\n");
  writeFileSync(join(src, "big"), big);
  symlinkSync("etc/motd", join(src, "motd"));
  await pack({ source: src, output: plain, stores: [store] });
  copyFileSync(plain, signed);
  signer = signFlist(signed, randomBytes(32));
  node = await startHostNode();
  const connect = (key: typeof node.keys.admin) => RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: node.port }, key);
  [admin, operator, reader] = await Promise.all([connect(node.keys.admin), connect(node.keys.operator), connect(node.keys.reader)]);
}, 60_000);

afterAll(async () => {
  for (const c of [admin, operator, reader]) c?.close();
  await node?.stop();
  t.cleanup();
});

test("mount, read, list with request counts, unmount", async () => {
  const m = await operator.call<FlistMountInfo>("flist.mount", { url: plain });
  expect(m.mountpoint.startsWith(node.dir)).toBe(true);
  expect(isMounted(m.mountpoint)).toBe(true);
  expect(readFileSync(join(m.mountpoint, "etc/motd"), "utf8")).toBe("served by flist.mount\n");
  expect(readlinkSync(join(m.mountpoint, "motd"))).toBe("etc/motd");
  expect(readFileSync(join(m.mountpoint, "big")).equals(big)).toBe(true);
  const list = await reader.call<FlistMountInfo[]>("flist.list");
  expect(list).toHaveLength(1);
  expect(list[0]).toMatchObject({ url: plain, path: plain, mountpoint: m.mountpoint, stores: [], verifiedKey: null });
  expect(list[0].requests.READ).toBeGreaterThan(0);
  expect(list[0].requests.OPEN).toBeGreaterThanOrEqual(2);
  await expect(operator.call("flist.mount", { url: plain })).rejects.toMatchObject({ code: "conflict" });
  expect(await operator.call("flist.unmount", { mountpoint: m.mountpoint })).toEqual({ unmounted: m.mountpoint });
  expect(isMounted(m.mountpoint)).toBe(false);
  expect(await reader.call("flist.list")).toEqual([]);
  await expect(operator.call("flist.unmount", { mountpoint: m.mountpoint })).rejects.toMatchObject({ code: "not-found" });
});

test("schemas, roles and refusals", async () => {
  await expect(reader.call("flist.mount", { url: plain })).rejects.toMatchObject({ code: "forbidden" });
  await expect(operator.call("flist.mount", {})).rejects.toMatchObject({ code: "bad-params", data: { path: "url" } });
  await expect(operator.call("flist.mount", { url: plain, mountpoint: "relative/dir" })).rejects.toMatchObject({ code: "bad-params", data: { path: "mountpoint" } });
  await expect(operator.call("flist.mount", { url: plain, trustedKeys: ["not-hex"] })).rejects.toMatchObject({ code: "bad-params", data: { path: "trustedKeys[0]" } });
  await expect(operator.call("flist.mount", { url: plain, stores: "dir:///x" })).rejects.toMatchObject({ code: "bad-params", data: { path: "stores" } });
  await expect(operator.call("flist.mount", { url: join(t.path, "missing.fl") })).rejects.toMatchObject({ code: "not-found" });
  const notFlist = join(t.path, "not-an.fl");
  writeFileSync(notFlist, "plain text");
  await expect(operator.call("flist.mount", { url: notFlist })).rejects.toMatchObject({ code: "bad-params" });
  await expect(operator.call("flist.unmount", { mountpoint: "/nowhere" })).rejects.toMatchObject({ code: "not-found" });
  expect(await reader.call("flist.list")).toEqual([]);
});

test("trustedKeys: unsigned and foreign-signed flists are refused; one matching key of several mounts", async () => {
  const other = "ab".repeat(32);
  await expect(operator.call("flist.mount", { url: plain, trustedKeys: [signer] })).rejects.toMatchObject({ code: "bad-params" });
  await expect(operator.call("flist.mount", { url: signed, trustedKeys: [other] })).rejects.toMatchObject({ code: "bad-params" });
  const mnt = join(t.path, "explicit");
  const m = await operator.call<FlistMountInfo>("flist.mount", { url: signed, trustedKeys: [other, signer], mountpoint: mnt, stores: [store] });
  expect(m).toMatchObject({ mountpoint: mnt, verifiedKey: signer, stores: [store] });
  expect(readFileSync(join(mnt, "etc/motd"), "utf8")).toBe("served by flist.mount\n");
  await expect(operator.call("flist.mount", { url: plain, mountpoint: mnt })).rejects.toMatchObject({ code: "conflict" });
  await operator.call("flist.unmount", { mountpoint: mnt });
  expect(isMounted(mnt)).toBe(false);
});

test("two concurrent mounts on one mount point: one mounts, the other is a conflict (no stacked mount)", async () => {
  const mnt = join(t.path, "contended");
  const [a, b] = await Promise.allSettled([operator.call<FlistMountInfo>("flist.mount", { url: plain, mountpoint: mnt }), operator.call<FlistMountInfo>("flist.mount", { url: signed, mountpoint: mnt })]);
  const won = [a, b].filter((r) => r.status === "fulfilled");
  const lost = [a, b].filter((r): r is PromiseRejectedResult => r.status === "rejected");
  expect(won).toHaveLength(1);
  expect(lost.map((r) => (r.reason as { code: string }).code)).toEqual(["conflict"]);
  expect(await reader.call<FlistMountInfo[]>("flist.list")).toHaveLength(1);
  await operator.call("flist.unmount", { mountpoint: mnt });
  expect(isMounted(mnt)).toBe(false);
});

test("zos flist mount|ls|unmount, and zflist's own subcommands through zos flist", async () => {
  const home = join(t.path, "zos-home");
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, "key"), Buffer.from(node.keys.operator.seed).toString("hex") + "\n", { mode: 0o400 });
  const zos = async (...args: string[]) => {
    const p = Bun.spawn([bun, join(repoRoot, "cli/main.ts"), "--node", `127.0.0.1:${node.port}`, ...args], { env: { ...process.env, ZOS_CONFIG_DIR: home, ZOS_NODE: "" }, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err };
  };
  const mnt = join(t.path, "via-cli");
  const mounted = await zos("flist", "mount", signed, "--mountpoint", mnt, "--trusted-key", signer.toUpperCase());
  expect(mounted).toMatchObject({ code: 0, out: `${mnt}\n` });
  expect(readFileSync(join(mnt, "etc/motd"), "utf8")).toBe("served by flist.mount\n");
  const ls = await zos("flist", "ls");
  expect(ls.code).toBe(0);
  expect(ls.out).toContain(mnt);
  expect(ls.out).toContain(signer.slice(0, 16));
  const json = JSON.parse((await zos("--json", "flist", "ls")).out) as FlistMountInfo[];
  expect(json.map((m) => m.mountpoint)).toEqual([mnt]);
  expect(await zos("flist", "unmount", mnt)).toMatchObject({ code: 0, out: `unmounted ${mnt}\n` });
  expect(isMounted(mnt)).toBe(false);
  expect((await zos("flist", "unmount", mnt)).code).toBe(1);
  expect((await zos("flist", "mount")).code).toBe(2);
  const inspect = await zos("flist", "inspect", plain, "--json");
  expect(inspect.code).toBe(0);
  expect(JSON.parse(inspect.out)).toMatchObject({ files: 2 });
}, 60_000);

test("mounts are unmounted when the node shuts down", async () => {
  const mnt = join(t.path, "left-mounted");
  await admin.call("flist.mount", { url: plain, mountpoint: mnt });
  const auto = await admin.call<FlistMountInfo>("flist.mount", { url: signed });
  expect(isMounted(mnt) && isMounted(auto.mountpoint)).toBe(true);
  for (const c of [admin, operator, reader]) c.close();
  node.proc.kill("SIGTERM");
  expect(await node.proc.exited).toBe(0);
  expect(isMounted(mnt)).toBe(false);
  expect(isMounted(auto.mountpoint)).toBe(false);
}, 30_000);
