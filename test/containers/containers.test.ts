// Containers end to end on the host: a busybox root packed into an flist, host-mode init in its own
// mount and network namespaces, crun as the runtime, driven through the signed RPC (and the zos CLI).
// Resource limits are not enforced here (the host's cgroups are a v1/v2 hybrid); they are checked
// for validity only, and enforced inside QEMU where init mounts a pure cgroup v2.
import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { createHash } from "node:crypto";
import { chmodSync, chownSync, readFileSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { totalmem } from "node:os";
import { join } from "node:path";
import { RpcCallError, type RpcClient } from "../../init/rpc/client.ts";
import type { ContainerInfo } from "../../init/containers/index.ts";
import type { LogLine } from "../../init/supervisor/log-ring.ts";
import { vethName } from "../../init/containers/network.ts";
import { pack } from "../../fuse-fs/index.ts";
import { alive, bun, busyboxFlist, makeBusyboxRoot, run, startNsNode, traces, type Fixture, type NsNode } from "./helpers.ts";

const udpServer = `const s = require("node:dgram").createSocket("udp4");
s.on("message", (m, r) => { process.stdout.write(m + " from " + r.address + "\\n"); process.exit(0); });
s.bind(5353, "0.0.0.0");`;
const udpClient = `const s = require("node:dgram").createSocket("udp4");
s.send("ping-udp", 5353, "127.0.0.1", () => s.close());`;

setDefaultTimeout(120_000);

let fx: Fixture;
let node: NsNode;
let c: RpcClient;
let baseline: Record<string, number>;

async function until<T>(cond: () => Promise<T> | T, what: string, boundMs = 30_000): Promise<NonNullable<T>> {
  const end = Date.now() + boundMs;
  for (;;) {
    const v = await cond();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await Bun.sleep(20);
  }
}

const create = (p: Record<string, unknown>) => c.call<ContainerInfo>("container.create", { flist: fx.flist, ...p });
const info = (name: string) => c.call<ContainerInfo>("container.info", { name });
const logText = async (name: string) => (await c.call<LogLine[]>("container.logs", { name })).map((l) => l.line).join("\n");
const exec = (name: string, args: string[]) => c.call<{ code: number; stdout: string; stderr: string }>("container.exec", { name, args });
const remove = (name: string) => c.call("container.delete", { name, timeoutMs: 500 });

async function rpcError(p: Promise<unknown>): Promise<RpcCallError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RpcCallError) return e;
    throw e;
  }
  throw new Error("call succeeded, expected an error");
}

beforeAll(async () => {
  fx = await busyboxFlist();
  node = await startNsNode(fx.dir);
  c = await node.client();
  baseline = traces(node);
});

// a failed test must not leave containers that make every later count differ
afterEach(async () => {
  for (const x of await c.call<ContainerInfo[]>("container.list")) await remove(x.name);
});

afterAll(async () => {
  c?.close();
  await node?.stop();
  fx?.cleanup();
});

describe("a running container", () => {
  test("is isolated: own processes, hostname, mounts, no CAP_SYS_ADMIN", async () => {
    await create({ name: "iso", hostname: "box", args: ["sleep", "1000"] });
    const ps = await exec("iso", ["ps", "-o", "pid,comm"]);
    const procs = ps.stdout.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/)[1]);
    expect(procs.sort()).toEqual(["ps", "sleep"]);
    expect((await exec("iso", ["hostname"])).stdout.trim()).toBe("box");
    const mountPoints = (text: string) => text.split("\n").filter(Boolean).map((l) => l.split(" ")[1]);
    const inside = mountPoints((await exec("iso", ["cat", "/proc/mounts"])).stdout);
    expect(inside[0]).toBe("/");
    const ours = new Set(["/", "/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys", "/sys/fs/cgroup", "/tmp", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"]);
    // whatever else is mounted inside is one of the masked or read-only /proc and /sys paths, never a host mount
    expect(inside.filter((m) => !ours.has(m) && !m.startsWith("/proc/") && !m.startsWith("/sys/"))).toEqual([]);
    const hostOnly = mountPoints(readFileSync("/proc/self/mounts", "utf8")).filter((m) => !ours.has(m) && !m.startsWith("/proc") && !m.startsWith("/sys"));
    expect(hostOnly.length).toBeGreaterThan(0);
    for (const m of hostOnly) expect(inside).not.toContain(m);
    const capEff = /CapEff:\s*([0-9a-f]+)/.exec((await exec("iso", ["cat", "/proc/self/status"])).stdout)![1];
    const CAP_SYS_ADMIN = 21n;
    expect((BigInt("0x" + capEff) >> CAP_SYS_ADMIN) & 1n).toBe(0n);
    // the seccomp profile refuses what the missing capability would refuse anyway, and more
    expect((await exec("iso", ["mount", "-t", "tmpfs", "x", "/mnt"])).code).not.toBe(0);
    const i = await info("iso");
    expect(i.state).toBe("running");
    expect(i.pid).toBeGreaterThan(1);
    expect(i.ip).toMatch(/^10\.88\.\d+\.\d+$/);
    await remove("iso");
  });

  test("gets its env and cwd", async () => {
    await create({ name: "envcwd", args: ["sh", "-c", "echo FOO=$FOO; pwd; echo done"], env: { FOO: "bar baz" }, cwd: "/data" });
    await until(async () => (await info("envcwd")).state === "exited", "envcwd to exit");
    const out = await logText("envcwd");
    expect(out).toContain("FOO=bar baz");
    expect(out).toContain("\n/data\n");
    expect((await info("envcwd")).lastExit).toMatchObject({ code: 0, signal: null, oomKilled: false });
    await remove("envcwd");
  });

  test("a forwarded port is reachable from the node (bridge address and loopback)", async () => {
    await create({ name: "web", args: ["httpd", "-f", "-p", "80", "-h", "/www"], ports: [{ hostPort: 8080, containerPort: 80 }] });
    const get = (host: string) => node.inNode(["busybox", "wget", "-qO-", `http://${host}:8080/`]);
    const viaBridge = await until(() => (get("10.88.0.1").code === 0 ? get("10.88.0.1") : null), "httpd to answer");
    expect(viaBridge.out).toBe("hello from the container\n");
    expect(get("127.0.0.1").out).toBe("hello from the container\n");
    await remove("web");
    expect(get("10.88.0.1").code).not.toBe(0);
  });

  test("a UDP forward reaches the container's network namespace", async () => {
    // Debian's busybox has no UDP server, so the listener is a Bun process joined to the container's netns
    const ctr = await create({ name: "udp", args: ["sleep", "1000"], ports: [{ hostPort: 5353, containerPort: 5353, protocol: "udp" }] });
    const server = Bun.spawn(["nsenter", "-t", String(ctr.pid), "-n", bun, "-e", udpServer], { stdout: "pipe" });
    const received = new Response(server.stdout).text();
    try {
      await until(() => {
        node.inNode([bun, "-e", udpClient]);
        return server.exitCode !== null;
      }, "the datagram to arrive");
      expect(await received).toBe("ping-udp from 10.88.0.1\n");
    } finally {
      server.kill();
    }
    await remove("udp");
  });

  test("forwards are reachable from another machine on the node's network (TCP and UDP, through prerouting)", async () => {
    // "another machine": a network namespace of its own, joined to the node's by a veth as a LAN would be
    const outside = Bun.spawn(["unshare", "--net", "sleep", "1000"]);
    const atOutside = (cmd: string[]) => run(["nsenter", "-t", String(outside.pid), "-n", ...cmd]);
    try {
      await until(() => readlinkSync(`/proc/${outside.pid}/ns/net`) !== readlinkSync("/proc/self/ns/net"), "the outside namespace");
      const lan = node.inNode(["sh", "-c", `ip link add zlan0 type veth peer name zlan1 netns ${outside.pid} && ip addr add 192.0.2.1/24 dev zlan0 && ip link set zlan0 up`]);
      expect(lan.err).toBe("");
      expect(atOutside(["sh", "-c", "ip addr add 192.0.2.2/24 dev zlan1 && ip link set zlan1 up && ip link set lo up"]).code).toBe(0);
      await create({ name: "lanweb", args: ["httpd", "-f", "-p", "80", "-h", "/www"], ports: [{ hostPort: 8080, containerPort: 80 }] });
      const page = await until(() => {
        const r = atOutside(["busybox", "wget", "-qO-", "http://192.0.2.1:8080/"]);
        return r.code === 0 ? r.out : null;
      }, "httpd to answer the outside");
      expect(page).toBe("hello from the container\n");
      const ctr = await create({ name: "lanudp", args: ["sleep", "1000"], ports: [{ hostPort: 5354, containerPort: 5353, protocol: "udp" }] });
      const server = Bun.spawn(["nsenter", "-t", String(ctr.pid), "-n", bun, "-e", udpServer], { stdout: "pipe" });
      const received = new Response(server.stdout).text();
      try {
        await until(() => {
          atOutside([bun, "-e", udpClient.replace("5353, \"127.0.0.1\"", "5354, \"192.0.2.1\"")]);
          return server.exitCode !== null;
        }, "the datagram from outside to arrive");
        // not masqueraded: the container sees the outside machine's own address
        expect(await received).toBe("ping-udp from 192.0.2.2\n");
      } finally {
        server.kill();
      }
      await remove("lanweb");
      await remove("lanudp");
      expect(atOutside(["busybox", "wget", "-qO-", "http://192.0.2.1:8080/"]).code).not.toBe(0);
    } finally {
      node.inNode(["ip", "link", "del", "zlan0"]);
      outside.kill();
      await outside.exited;
    }
  });

  test("writes go to the overlay; the flist is unchanged", async () => {
    const flistHash = createHash("sha256").update(readFileSync(fx.flist)).digest("hex");
    await create({ name: "writer", args: ["sleep", "1000"] });
    expect((await exec("writer", ["sh", "-c", "echo changed > /data/original && echo new > /data/added && cat /data/original /data/added"])).stdout).toBe("changed\nnew\n");
    await create({ name: "reader", args: ["sleep", "1000"] });
    expect((await exec("reader", ["cat", "/data/original"])).stdout).toBe("flist content\n");
    expect((await exec("reader", ["ls", "/data"])).stdout.trim()).toBe("original");
    expect(createHash("sha256").update(readFileSync(fx.flist)).digest("hex")).toBe(flistHash);
    await remove("writer");
    await remove("reader");
  });

  test("the flist's /etc is kept under the bind-mounted hostname, hosts and resolv.conf: its files, owner, mode, or a symlink", async () => {
    // the upper layer gets /etc made by init (not copied up by crun): it must look like the flist's
    const owned = join(fx.dir, "etc-owned"), linked = join(fx.dir, "etc-linked");
    makeBusyboxRoot(owned);
    writeFileSync(join(owned, "etc/motd"), "owned etc\n");
    chownSync(join(owned, "etc"), 1234, 4321);
    chmodSync(join(owned, "etc"), 0o751);
    makeBusyboxRoot(linked);
    renameSync(join(linked, "etc"), join(linked, "config"));
    symlinkSync("config", join(linked, "etc"));
    writeFileSync(join(linked, "config/motd"), "linked etc\n");
    for (const root of [owned, linked]) await pack({ source: root, output: `${root}.fl`, stores: [`dir://${fx.store}`] });

    await create({ name: "etcown", flist: `${owned}.fl`, hostname: "own", args: ["sleep", "1000"] });
    expect((await exec("etcown", ["stat", "-c", "%a %u %g", "/etc"])).stdout.trim()).toBe("751 1234 4321");
    expect((await exec("etcown", ["cat", "/etc/motd", "/etc/hostname"])).stdout).toBe("owned etc\nown\n");
    await create({ name: "etclink", flist: `${linked}.fl`, hostname: "link", args: ["sleep", "1000"] });
    expect((await exec("etclink", ["readlink", "/etc"])).stdout.trim()).toBe("config");
    expect((await exec("etclink", ["cat", "/etc/motd", "/etc/hostname"])).stdout).toBe("linked etc\nlink\n");
    await remove("etcown");
    await remove("etclink");
  });

  test("logs keep output and follow streams new lines", async () => {
    await create({ name: "talker", args: ["sh", "-c", "i=0; while true; do echo line $i; echo err $i >&2; i=$((i+1)); sleep 0.2; done"] });
    await until(async () => (await logText("talker")).includes("line 2"), "a few lines");
    const lines = await c.call<LogLine[]>("container.logs", { name: "talker" });
    expect(lines.some((l) => l.stream === "stderr" && l.line.startsWith("err "))).toBe(true);
    const got: LogLine[] = [];
    const stop = new AbortController();
    const follow = c.call("container.logs", { name: "talker", lines: 1, follow: true }, { onItem: (l) => got.push(l as LogLine), signal: stop.signal }).catch((e) => e);
    const last = Number(/line (\d+)/.exec(lines.filter((l) => l.stream === "stdout").at(-1)!.line)![1]);
    await until(() => got.some((l) => l.line === `line ${last + 3}`), "a followed line");
    stop.abort();
    expect(((await follow) as RpcCallError).code).toBe("cancelled");
    await remove("talker");
  });
});

describe("restart policy", () => {
  test("on-failure restarts a crashed container with backoff; never leaves it exited", async () => {
    await create({ name: "crasher", restart: "on-failure", args: ["sh", "-c", "echo started; exit 3"] });
    await create({ name: "once", restart: "never", args: ["sh", "-c", "exit 3"] });
    const i = await until(async () => {
      const x = await info("crasher");
      return x.restarts >= 1 && x ? x : null;
    }, "a restart");
    expect(i.lastExit?.code).toBe(3);
    await until(async () => ((await logText("crasher")).match(/started/g) ?? []).length >= 2, "the second run's output");
    const once = await info("once");
    expect(once).toMatchObject({ state: "exited", restarts: 0, lastExit: { code: 3 } });
    const stopped = await c.call<ContainerInfo>("container.stop", { name: "crasher", timeoutMs: 1000 });
    expect(stopped.state).toBe("stopped");
    expect(stopped.nextStartInMs).toBeNull();
    await remove("crasher");
    await remove("once");
  });

  test("a container killed from outside (SIGKILL) counts as a failure and on-failure brings it back", async () => {
    const first = await create({ name: "victim", restart: "on-failure", args: ["sleep", "1000"] });
    expect(node.inNode(["kill", "-KILL", String(first.pid)]).code).toBe(0);
    const back = await until(async () => {
      const x = await info("victim");
      return x.state === "running" && x.restarts === 1 && x.pid !== first.pid ? x : null;
    }, "the restart after the kill");
    expect(back.lastExit).toMatchObject({ code: null, signal: "SIGKILL", oomKilled: false });
    await remove("victim");
  });

  test("stop sends SIGTERM, then SIGKILL after the timeout; start runs it again", async () => {
    await create({ name: "stubborn", restart: "always", args: ["sh", "-c", "trap '' TERM; echo up; while true; do sleep 1; done"] });
    await until(async () => (await logText("stubborn")).includes("up"), "it to start");
    const stopped = await c.call<ContainerInfo>("container.stop", { name: "stubborn", timeoutMs: 300 });
    expect(stopped).toMatchObject({ state: "stopped", lastExit: { signal: "SIGKILL" } });
    const started = await c.call<ContainerInfo>("container.start", { name: "stubborn" });
    expect(started.state).toBe("running");
    await remove("stubborn");
  });
});

describe("delete and scale", () => {
  test("20 containers at once, each with its own address, then nothing left", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `many-${i}`);
    const infos = await Promise.all(names.map((name) => create({ name, args: ["sleep", "1000"] })));
    expect(infos.every((i) => i.state === "running")).toBe(true);
    expect(new Set(infos.map((i) => i.ip)).size).toBe(20);
    expect((await c.call<ContainerInfo[]>("container.list")).length).toBe(20);
    const during = traces(node);
    expect(during.veths).toBe(baseline.veths + 20);
    // containers reach each other over the bridge
    expect((await exec("many-0", ["ping", "-c", "1", "-W", "5", infos[19].ip!])).code).toBe(0);
    await Promise.all(names.map(remove));
    expect(traces(node)).toEqual(baseline);
  });

  test("delete ends a container whose crun state was removed under it", async () => {
    const ctr = await create({ name: "lost", args: ["sleep", "1000"] });
    rmSync(join(node.stateDir, "containers/crun/lost"), { recursive: true, force: true });
    await remove("lost");
    expect(alive(ctr.pid!)).toBe(false);
    expect(traces(node)).toEqual(baseline);
  });

  test("delete removes mounts, veth, forwards, cgroup, state and dirs", async () => {
    await create({ name: "full", args: ["sleep", "1000"], ports: [{ hostPort: 9000, containerPort: 90 }, { hostPort: 9001, containerPort: 91, protocol: "udp" }], mounts: [{ type: "tmpfs", target: "/scratch" }, { type: "flist", flist: fx.flist, target: "/other" }] });
    expect((await exec("full", ["cat", "/other/data/original"])).stdout).toBe("flist content\n");
    expect((await exec("full", ["sh", "-c", "echo x > /other/new"])).code).not.toBe(0);
    const during = traces(node);
    expect(during.mounts).toBeGreaterThan(baseline.mounts);
    expect(during.forwards).toBe(baseline.forwards + 2);
    await remove("full");
    expect(traces(node)).toEqual(baseline);
    expect((await rpcError(info("full"))).code).toBe("not-found");
  });
});

describe("bad input: a clear error and nothing half-created", () => {
  const cases: [string, Record<string, unknown>, string, RegExp][] = [
    ["unknown flist", { name: "nofl", flist: "/nonexistent/x.fl", args: ["true"] }, "not-found", /does not exist/],
    ["a file that is not an flist", { name: "notfl", flist: "/etc/hostname", args: ["true"] }, "bad-flist", /flist/],
    ["an invalid name", { name: "Bad/Name", args: ["true"] }, "bad-params", /name/],
    ["a name starting with a dash", { name: "-x", args: ["true"] }, "bad-params", /name/],
    ["a name too long", { name: "x".repeat(33), args: ["true"] }, "bad-params", /name/],
    ["an empty command", { name: "nocmd", args: [] }, "bad-params", /command/],
    ["impossible memory", { name: "mem", args: ["true"], limits: { memoryBytes: 1 } }, "bad-params", /memory/],
    ["impossible cpus", { name: "cpu", args: ["true"], limits: { cpus: 10_000 } }, "bad-params", /cpus/],
    ["zero pids", { name: "pids", args: ["true"], limits: { pids: 0 } }, "bad-params", /pids/],
    ["more memory than the node has", { name: "bigmem", args: ["true"], limits: { memoryBytes: totalmem() * 2 } }, "bad-params", /memory/],
    ["a zero cpu weight", { name: "weight", args: ["true"], limits: { cpuWeight: 0 } }, "bad-params", /weight/],
    ["a relative mount target", { name: "mnt", args: ["true"], mounts: [{ type: "tmpfs", target: "rel" }] }, "bad-params", /target/],
    ["a vdisk mount on the host", { name: "vd", args: ["true"], mounts: [{ type: "vdisk", vdisk: "d1", target: "/d" }] }, "unsupported", /NBD/],
    ["forwards with host networking", { name: "hostnet", args: ["true"], network: "host", ports: [{ hostPort: 1234, containerPort: 1 }] }, "bad-params", /private network/],
  ];
  for (const [what, params, code, message] of cases) {
    test(what, async () => {
      const e = await rpcError(create(params));
      expect(e.code).toBe(code);
      expect(e.message).toMatch(message);
      expect(traces(node)).toEqual(baseline);
    });
  }

  test("a duplicate name or a forwarded port is a conflict", async () => {
    await create({ name: "holder", args: ["sleep", "1000"], ports: [{ hostPort: 7000, containerPort: 80 }] });
    const during = traces(node);
    expect((await rpcError(create({ name: "holder", args: ["true"] }))).code).toBe("conflict");
    const e = await rpcError(create({ name: "thief", args: ["true"], ports: [{ hostPort: 7000, containerPort: 80 }] }));
    expect(e.code).toBe("conflict");
    expect(e.message).toContain("holder");
    expect(traces(node)).toEqual(during);
    await remove("holder");
  });

  test("a port something on the node listens on is refused", async () => {
    // a host-network container is a process of the node's network: its listener takes the port
    await create({ name: "listener", network: "host", args: ["nc", "-l", "-p", "7100"] });
    await until(() => node.inNode(["sh", "-c", "ss -ltn | grep -q ':7100 ' && echo y"]).out.includes("y"), "the listener");
    const before = traces(node);
    const e = await rpcError(create({ name: "clash", args: ["true"], ports: [{ hostPort: 7100, containerPort: 80 }] }));
    expect(e.code).toBe("conflict");
    expect(e.message).toMatch(/already in use/);
    expect(traces(node)).toEqual(before);
    await remove("listener");
  });

  test("a step failing midway (the veth name taken on the node) is undone", async () => {
    // the rootfs is mounted and the namespace made by then; the failure must take both back
    expect(node.inNode(["ip", "link", "add", vethName("clash2"), "type", "bridge"]).code).toBe(0);
    try {
      // its forwards were never added: the teardown removes them one by one, tolerating each missing
      const e = await rpcError(create({ name: "clash2", args: ["sleep", "1000"], ports: [{ hostPort: 18081, containerPort: 80 }, { hostPort: 18082, containerPort: 80, protocol: "udp" }] }));
      expect(e.code).toBe("system");
      expect(e.message).toMatch(/network: veth eth0\/vz\w+: EEXIST/);
      expect(e.data).toMatchObject({ container: "clash2", step: "network" });
      expect(traces(node)).toEqual(baseline);
      expect((await rpcError(info("clash2"))).code).toBe("not-found");
    } finally {
      node.inNode(["ip", "link", "del", vethName("clash2")]);
    }
    // the address it had is free again
    const ok = await create({ name: "clash2", args: ["sleep", "1000"] });
    expect(ok.state).toBe("running");
    await remove("clash2");
  });

  test("privileged containers and exec need an admin key", async () => {
    const op = await node.client(node.operator);
    try {
      expect((await rpcError(op.call("container.create", { name: "priv", flist: fx.flist, args: ["true"], privileged: true }))).code).toBe("forbidden");
      await create({ name: "plain", args: ["sleep", "1000"] });
      expect((await rpcError(op.call("container.exec", { name: "plain", args: ["true"] }))).code).toBe("forbidden");
    } finally {
      op.close();
    }
    await remove("plain");
    expect(traces(node)).toEqual(baseline);
  });
});
