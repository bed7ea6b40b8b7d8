// Containers across an init restart, flist signatures when the node requires them, and the zos CLI
// as a user runs it. Same setup as containers.test.ts: host-mode init in private mount+net namespaces.
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { signFlist } from "../../fuse-fs/index.ts";
import { RpcCallError } from "../../init/rpc/client.ts";
import type { ContainerInfo } from "../../init/containers/index.ts";
import { alive, bun, busyboxFlist, repoRoot, startNsNode, traces, type Fixture, type NsNode } from "./helpers.ts";

setDefaultTimeout(120_000);

let fx: Fixture;
beforeAll(async () => {
  fx = await busyboxFlist();
});
afterAll(() => fx?.cleanup());

async function until<T>(cond: () => Promise<T> | T, what: string, boundMs = 30_000): Promise<NonNullable<T>> {
  const end = Date.now() + boundMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(20);
  }
}

describe("init restart", () => {
  test("containers are recreated with their address and forwards; stopped ones stay stopped", async () => {
    const dir = mkdtempSync(join(fx.dir, "restart-"));
    let node: NsNode = await startNsNode(dir);
    try {
      let c = await node.client();
      const web = await c.call<ContainerInfo>("container.create", { name: "web", flist: fx.flist, restart: "always", args: ["httpd", "-f", "-p", "80", "-h", "/www"], ports: [{ hostPort: 8080, containerPort: 80 }] });
      await c.call("container.create", { name: "idle", flist: fx.flist, args: ["sleep", "1000"] });
      await c.call("container.stop", { name: "idle", timeoutMs: 200 });
      c.close();
      await node.stop();
      node = await startNsNode(dir);
      c = await node.client();
      const back = await until(async () => {
        const i = await c.call<ContainerInfo>("container.info", { name: "web" }).catch(() => null);
        return i?.state === "running" ? i : null;
      }, "web to be recreated");
      expect(back.ip).toBe(web.ip);
      const page = await until(() => {
        const r = node.inNode(["busybox", "wget", "-qO-", "http://127.0.0.1:8080/"]);
        return r.code === 0 ? r.out : null;
      }, "the forward after the restart");
      expect(page).toBe("hello from the container\n");
      expect((await c.call<ContainerInfo>("container.info", { name: "idle" })).state).toBe("stopped");
      for (const name of ["web", "idle"]) await c.call("container.delete", { name, timeoutMs: 200 });
      expect(traces(node)).toMatchObject({ mounts: 0, veths: 0, forwards: 0, bundles: 0, specs: 0 });
      c.close();
    } finally {
      await node.stop();
    }
  });
});

describe("init killed", () => {
  test("the next init kills the orphaned container and recreates it", async () => {
    const dir = mkdtempSync(join(fx.dir, "crash-"));
    let node: NsNode = await startNsNode(dir);
    try {
      let c = await node.client();
      const old = await c.call<ContainerInfo>("container.create", { name: "survivor", flist: fx.flist, restart: "always", args: ["sleep", "1000"] });
      c.close();
      await node.kill();
      // the old container may outlive its init (crun run is its parent), or die of its dead FUSE mount
      node = await startNsNode(dir);
      c = await node.client();
      const fresh = await until(async () => {
        const i = await c.call<ContainerInfo>("container.info", { name: "survivor" }).catch(() => null);
        return i?.state === "running" ? i : null;
      }, "survivor to be recreated");
      expect(fresh.pid).not.toBe(old.pid);
      await until(() => !alive(old.pid!), "the orphan to be gone");
      await c.call("container.delete", { name: "survivor", timeoutMs: 200 });
      expect(traces(node)).toMatchObject({ mounts: 0, veths: 0, bundles: 0, specs: 0 });
      c.close();
    } finally {
      await node.stop();
    }
  });
});

describe("signed flists", () => {
  test("with a trusted key set, unsigned and foreign-signed flists are refused, ours run", async () => {
    const seed = randomBytes(32), other = randomBytes(32);
    const signed = join(fx.dir, "signed.fl"), foreign = join(fx.dir, "foreign.fl");
    copyFileSync(fx.flist, signed);
    copyFileSync(fx.flist, foreign);
    const pub = signFlist(signed, seed);
    signFlist(foreign, other);
    const dir = mkdtempSync(join(fx.dir, "trust-"));
    const node = await startNsNode(dir, { trustedFlistKey: pub });
    const c = await node.client();
    try {
      const before = traces(node);
      for (const [flist, why] of [[fx.flist, /not signed/], [foreign, /not by the trusted key/]] as const) {
        const e = await c.call("container.create", { name: "t", flist, args: ["true"] }).then(() => null, (x) => x as RpcCallError);
        expect(e?.code).toBe("bad-flist");
        expect(e?.message).toMatch(why);
        expect(traces(node)).toEqual(before);
      }
      const ok = await c.call<ContainerInfo>("container.create", { name: "t", flist: signed, args: ["sleep", "1000"] });
      expect(ok.state).toBe("running");
      await c.call("container.delete", { name: "t", timeoutMs: 200 });
    } finally {
      c.close();
      await node.stop();
    }
  });
});

describe("zos container", () => {
  let node: NsNode;
  let home: string;
  const cli = join(repoRoot, "cli", "main.ts");
  async function zos(...args: string[]): Promise<{ code: number; out: string; err: string }> {
    const p = Bun.spawn([bun, cli, "--node", `unix:${node.socket}`, "--key", join(home, "key"), ...args], { env: { ...process.env, ZOS_CONFIG_DIR: home }, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err };
  }
  beforeAll(async () => {
    const dir = mkdtempSync(join(fx.dir, "cli-"));
    node = await startNsNode(dir);
    home = join(dir, "home");
    mkdirSync(home);
    writeFileSync(join(home, "key"), Buffer.from(node.admin.seed).toString("hex") + "\n", { mode: 0o400 });
  });
  afterAll(async () => {
    await node?.stop();
  });

  test("run, ls, info, logs, exec, stop, rm", async () => {
    const run = await zos("container", "run", "--flist", fx.flist, "--name", "cli1", "--env", "GREETING=hi there", "--port", "8081:80", "--memory", "64M", "--cpus", "0.5", "--restart", "on-failure",
      "--mount", "type=tmpfs,target=/scratch,size=8M", "--", "sh", "-c", "echo $GREETING; exec httpd -f -p 80 -h /www");
    expect(run.err).toContain("zos: rootfs");
    expect(run.code).toBe(0);
    expect(run.out).toContain("cli1");
    expect(run.out).toContain("8081->80/tcp");
    const ls = await zos("container", "ls");
    expect(ls.out).toMatch(/cli1\s+running/);
    const info = JSON.parse((await zos("--json", "container", "info", "cli1")).out) as ContainerInfo;
    expect(info.ports).toEqual([{ hostPort: 8081, containerPort: 80, protocol: "tcp" }]);
    const logs = await until(async () => {
      const r = await zos("container", "logs", "cli1");
      return r.out.includes("hi there") ? r : null;
    }, "the greeting in the logs");
    expect(logs.code).toBe(0);
    const ex = await zos("container", "exec", "cli1", "--", "sh", "-c", "df /scratch | tail -1; exit 4");
    expect(ex.code).toBe(4);
    expect(ex.out).toMatch(/tmpfs\s+8192\b/);
    // options after -- are the command's, not zos's
    expect((await zos("container", "exec", "cli1", "--", "sh", "-c", "echo \"$@\"", "sh", "-h", "--json")).out).toBe("-h --json\n");
    const stop = await zos("container", "stop", "cli1", "-t", "0.2");
    expect(stop.out).toMatch(/cli1\s+stopped/);
    expect((await zos("container", "rm", "cli1")).out).toBe("removed cli1\n");
    const gone = await zos("container", "info", "cli1");
    expect(gone.code).toBe(1);
    expect(gone.err).toContain("not-found");
  });

  test("bad command lines are usage errors", async () => {
    expect((await zos("container", "run", "--name", "x", "--", "true")).code).toBe(2);
    expect((await zos("container", "run", "--flist", fx.flist, "--port", "80")).code).toBe(2);
    expect((await zos("container", "run", "--flist", fx.flist, "--memory", "lots", "--", "true")).code).toBe(2);
    const bad = await zos("container", "run", "--flist", fx.flist, "--name", "UPPER", "--", "true");
    expect(bad.code).toBe(1);
    expect(bad.err).toContain("bad-params");
  });
});
