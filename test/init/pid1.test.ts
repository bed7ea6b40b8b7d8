// init as PID 1 inside a PID namespace on the host (unshare --pid --fork with its own mount, UTS and
// network namespaces, so mounts, hostname and lo stay private). /dev/kmsg, module loading, DHCP and NTP
// are skipped: they would act on the host. reboot(2) is really called: in a PID namespace it ends the
// namespace, killing its init with SIGHUP (restart) or SIGINT (power off), which unshare reports.
import { afterEach, expect, test, setDefaultTimeout } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generateKeyPair, keyId } from "../../init/identity/ed25519.ts";
import { RpcClient } from "../../init/rpc/client.ts";
import { bun, repoRoot, until } from "./helpers.ts";

// these start real processes; on a loaded 2-core machine they need more than the 5 s default
setDefaultTimeout(120_000);

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

async function bootInNamespace(makeServices: (dir: string) => Record<string, string>, env: Record<string, string> = {}) {
  // not under /tmp: PID 1 mounts a fresh tmpfs there
  const dir = mkdtempSync("/var/tmp/zos-pid1-");
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, "services"));
  for (const [n, y] of Object.entries(makeServices(dir))) writeFileSync(join(dir, "services", `${n}.yaml`), y);
  const admin = generateKeyPair();
  const socket = join(dir, "zos.sock");
  const proc = Bun.spawn(
    ["unshare", "--pid", "--fork", "--mount-proc", "--mount", "--uts", "--net",
      bun, join(repoRoot, "init", "main.ts"), "--config-dir", join(dir, "services"), "--state-dir", join(dir, "state"), "--socket", socket, "--admin-key", keyId(admin.publicKey)],
    { env: { ...process.env, ZOS_BOOT_SKIP: "kmsg,modules,network,time", ...env }, stdout: "pipe", stderr: "pipe" },
  );
  let log = "";
  const drain = (s: ReadableStream<Uint8Array>) => (async () => {
    for await (const c of s) log += new TextDecoder().decode(c);
  })();
  drain(proc.stdout as ReadableStream<Uint8Array>);
  drain(proc.stderr as ReadableStream<Uint8Array>);
  cleanups.push(() => proc.kill("SIGKILL"));
  await until(() => log.includes("boot finished") || proc.exitCode !== null, "boot to finish");
  expect(proc.exitCode).toBeNull();
  const client = await RpcClient.connect({ kind: "unix", path: socket }, admin);
  cleanups.push(() => client.close());
  const initHostPid = Number(readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, "utf8").trim().split(" ")[0]);
  return { dir, proc, client, log: () => log, initHostPid };
}

test("PID 1 boots, reaps orphans, keeps exit codes, and reboots on SIGTERM after stopping services in order", async () => {
  const n = await bootInNamespace((dir) => ({
    orphans: "exec: sh -c 'for i in 1 2 3 4 5 6; do sleep 0.2 & done; exit 0'\noneshot: true\n",
    fails: "exec: sh -c 'exit 3'\noneshot: true\n",
    mounts: `exec: sh -c 'mkdir -p ${dir}/mnt && mount -t tmpfs zt ${dir}/mnt && mkdir ${dir}/mnt/inner && mount -t tmpfs zt ${dir}/mnt/inner'\noneshot: true\n`,
    base: `exec: sh -c 'trap "echo base >> ${dir}/trace; exit 0" TERM; touch ${dir}/base.ready; sleep 1000 & wait'\n`,
    top: `exec: sh -c 'trap "echo top >> ${dir}/trace; exit 0" TERM; touch ${dir}/top.ready; sleep 1000 & wait'\nafter: [base]\n`,
  }));
  const info = await n.client.call<Record<string, any>>("node.info");
  expect(info).toMatchObject({ mode: "pid1", pid: 1 });
  expect(info.hostname).toBe(info.id);
  expect(info.health["network-lo"]).toBeUndefined(); // network skipped in this test
  await until(async () => (await n.client.call<{ orphansReaped: number }>("node.info")).orphansReaped >= 6, "orphans reaped");
  expect((await n.client.call<{ state: string }>("service.status", { name: "orphans" })).state).toBe("success");
  const fails = await n.client.call<{ lastExit: { code: number } }>("service.status", { name: "fails" });
  expect(fails.lastExit.code).toBe(3);
  await until(() => existsSync(join(n.dir, "top.ready")) && existsSync(join(n.dir, "base.ready")), "traps installed");
  await until(async () => (await n.client.call<{ state: string }>("service.status", { name: "mounts" })).state === "success", "mounts made");

  process.kill(n.initHostPid, "SIGTERM");
  const code = await n.proc.exited;
  expect(n.log()).toContain("reboot requested (SIGTERM)");
  expect(n.log()).toContain("rebooting");
  // reboot(RB_AUTOBOOT) in a PID namespace kills its init with SIGHUP; unshare exits 128 + 1
  expect(code).toBe(129);
  expect(readFileSync(join(n.dir, "trace"), "utf8")).toBe("top\nbase\n");
  // filesystems mounted in the namespace are unmounted, nested ones first
  const inner = n.log().indexOf(`unmounted ${n.dir}/mnt/inner (tmpfs)`);
  const outer = n.log().indexOf(`unmounted ${n.dir}/mnt (tmpfs)`);
  expect(inner).toBeGreaterThan(0);
  expect(outer).toBeGreaterThan(inner);
});

test("PID 1 survives a part that fails to load, and powers off over RPC", async () => {
  // the container stack needs the native addon; without it only container support is lost
  const n = await bootInNamespace(() => ({ idle: "exec: sleep 1000\n" }), { ZOS_NATIVE_PATH: "/nonexistent/zos_native.node" });
  // container support loads on the first container call, which gets a typed error naming the cause
  const call = await n.client.call("container.list").then(() => null, (e) => e as { code: string; message: string });
  expect(call).toMatchObject({ code: "unavailable" });
  expect(call!.message).toContain("native addon");
  const info = await n.client.call<{ health: Record<string, { ok: boolean; detail: string }> }>("node.info");
  expect(info.health.containers).toMatchObject({ ok: false });
  expect(info.health.containers.detail).toContain("native addon");
  expect(await n.client.call("node.poweroff")).toEqual({ accepted: "poweroff" });
  expect(await n.proc.exited).toBe(130); // SIGINT: RB_POWER_OFF in a PID namespace
  expect(n.log()).toContain("powering off");
});
