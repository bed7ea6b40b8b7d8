// The `zos` CLI as a user runs it: a separate process against a real host-mode init.
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from "bun:test";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { keyId } from "../../init/identity/ed25519.ts";
import { bun, repoRoot, tempDir, until } from "../init/helpers.ts";
import { startHostNode, type HostNode } from "../init/host-node.ts";

// these start real processes; on a loaded 2-core machine they need more than the 5 s default
setDefaultTimeout(120_000);

const cli = join(repoRoot, "cli", "main.ts");
let node: HostNode;
let home: { path: string; cleanup: () => void };

async function zos(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([bun, cli, ...args], { env: { ...process.env, ZOS_CONFIG_DIR: home.path, ZOS_NODE: "", ...env }, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

/** Installs one of the node's test keys as the CLI's key. */
function useKey(role: "admin" | "operator" | "reader"): void {
  const path = join(home.path, "key");
  rmSync(path, { force: true });
  writeFileSync(path, Buffer.from(node.keys[role].seed).toString("hex") + "\n", { mode: 0o400 });
}

beforeAll(async () => {
  home = tempDir("zos-cli-");
  node = await startHostNode({
    web: "exec: sh -c 'echo hello from web; exec sleep 1000'\n",
    job: "exec: sh -c 'echo done'\noneshot: true\n",
  });
});
afterAll(async () => {
  if (node.proc.exitCode === null) await node.stop();
  home.cleanup();
});

describe("zos", () => {
  test("keygen makes a 0400 key once and prints its public key", async () => {
    const dir = tempDir("zos-keygen-");
    try {
      const r = await zos(["keygen"], { ZOS_CONFIG_DIR: dir.path });
      expect(r.code).toBe(0);
      const pub = r.out.split("\n")[0];
      expect(pub).toMatch(/^[1-9A-HJ-NP-Za-km-z]{43,44}$/);
      expect(statSync(join(dir.path, "key")).mode & 0o777).toBe(0o400);
      expect((await zos(["pubkey"], { ZOS_CONFIG_DIR: dir.path })).out.trim()).toBe(pub);
      const again = await zos(["keygen"], { ZOS_CONFIG_DIR: dir.path });
      expect(again.code).toBe(1);
      expect(again.err).toContain("already exists");
    } finally {
      dir.cleanup();
    }
  });

  test("usage errors exit 2 and say what to do", async () => {
    useKey("reader");
    const noNode = await zos(["node", "info"]);
    expect(noNode.code).toBe(2);
    expect(noNode.err).toContain("--node");
    expect((await zos(["frobnicate"])).code).toBe(2);
    expect((await zos(["--node", "unix:" + node.socket, "service", "status"])).code).toBe(2);
    expect((await zos(["help"])).out).toContain("service logs NAME");
  });

  test("node info over TCP and the unix socket pins the node id", async () => {
    useKey("reader");
    const tcp = await zos(["--node", `127.0.0.1:${node.port}`, "node", "info"]);
    expect(tcp.code).toBe(0);
    expect(tcp.out).toContain(`id        ${node.nodeId}`);
    expect(tcp.out).toMatch(/NIC\s+MAC/);
    expect(tcp.err).toContain("pinned node");
    const known = readFileSync(join(home.path, "known_nodes"), "utf8");
    expect(known).toContain(`127.0.0.1:${node.port} ${node.nodeId}`);
    const json = await zos(["node", "info", "--json"], { ZOS_NODE: `unix:${node.socket}` });
    expect(json.code).toBe(0);
    const info = JSON.parse(json.out);
    expect(info).toMatchObject({ id: node.nodeId, mode: "host" });
    expect(info.memory.totalBytes).toBeGreaterThan(0);
    expect(info.cpu.count).toBeGreaterThan(0);
    // the default node from the config file
    writeFileSync(join(home.path, "config"), `node: unix:${node.socket}\n`);
    try {
      const fromConfig = await zos(["node", "info", "--json"]);
      expect(fromConfig.code).toBe(0);
      expect(JSON.parse(fromConfig.out).id).toBe(node.nodeId);
    } finally {
      rmSync(join(home.path, "config"));
    }
  });

  test("a node whose identity changed is refused with exit 5", async () => {
    useKey("reader");
    const addr = `127.0.0.1:${node.port}`;
    const path = join(home.path, "known_nodes");
    const saved = readFileSync(path, "utf8");
    writeFileSync(path, saved.replace(`${addr} ${node.nodeId}`, `${addr} ${keyId(node.keys.admin.publicKey)}`));
    try {
      const r = await zos(["--node", addr, "node", "info"]);
      expect(r.code).toBe(5);
      expect(r.err).toContain("known_nodes");
      expect(r.out).toBe("");
    } finally {
      writeFileSync(path, saved);
    }
  });

  test("service list, status and logs", async () => {
    useKey("reader");
    const env = { ZOS_NODE: `unix:${node.socket}` };
    await until(async () => (await zos(["service", "status", "job", "--json"], env)).out.includes('"success"'), "job to succeed");
    const list = await zos(["service", "list"], env);
    expect(list.code).toBe(0);
    expect(list.out).toMatch(/^NAME\s+STATE\s+TARGET/);
    expect(list.out).toMatch(/\nweb\s+running\s+up/);
    expect(list.out).toMatch(/\njob\s+success/);
    const json = JSON.parse((await zos(["service", "list", "--json"], env)).out);
    expect(json.map((s: { name: string }) => s.name)).toEqual(["job", "web"]);
    const logs = await zos(["service", "logs", "web"], env);
    expect(logs.out).toContain("hello from web");
    const missing = await zos(["service", "status", "nope"], env);
    expect(missing.code).toBe(1);
    expect(missing.err).toContain("not-found");
  });

  test("roles: a reader cannot stop services, an unknown key is told how to get trusted", async () => {
    useKey("reader");
    const env = { ZOS_NODE: `unix:${node.socket}` };
    const r = await zos(["service", "stop", "web"], env);
    expect(r.code).toBe(4);
    expect(r.err).toContain("forbidden");
    const stranger = tempDir("zos-stranger-");
    try {
      await zos(["keygen"], { ZOS_CONFIG_DIR: stranger.path });
      const s = await zos(["node", "info"], { ...env, ZOS_CONFIG_DIR: stranger.path });
      expect(s.code).toBe(4);
      expect(s.err).toContain("zos.admin=");
    } finally {
      stranger.cleanup();
    }
  });

  test("operator: stop, start, restart, kill", async () => {
    useKey("operator");
    const env = { ZOS_NODE: `unix:${node.socket}` };
    const stop = await zos(["service", "stop", "web"], env);
    expect(stop.code).toBe(0);
    expect(stop.out).toMatch(/web\s+stopped\s+down/);
    expect((await zos(["service", "start", "web"], env)).code).toBe(0);
    await until(async () => (await zos(["service", "status", "web", "--json"], env)).out.includes('"running"'), "web running");
    const before = JSON.parse((await zos(["service", "status", "web", "--json"], env)).out).pid;
    expect((await zos(["service", "restart", "web"], env)).code).toBe(0);
    const after = await until(async () => {
      const s = JSON.parse((await zos(["service", "status", "web", "--json"], env)).out);
      return s.state === "running" && s.pid !== before ? s : null;
    }, "web restarted");
    expect(after.pid).not.toBe(before);
    const kill = await zos(["service", "kill", "web", "usr1"], env);
    expect(kill.code).toBe(0);
    await until(async () => JSON.parse((await zos(["service", "status", "web", "--json"], env)).out).lastExit?.signal === "SIGUSR1", "web killed by USR1");
  });

  test("admin: monitor from a file, follow logs, forget", async () => {
    useKey("admin");
    const env = { ZOS_NODE: `127.0.0.1:${node.port}` };
    const file = join(home.path, "counter.yaml");
    writeFileSync(file, "exec: sh -c 'i=0; while true; do echo count $i; i=$((i+1)); sleep 0.05; done'\n");
    const mon = await zos(["service", "monitor", "counter", file], env);
    expect(mon.code).toBe(0);
    expect((await zos(["service", "monitor", "counter", file], env)).code).toBe(1);

    const follow = Bun.spawn([bun, cli, "service", "logs", "counter", "-f", "-n", "1"], { env: { ...process.env, ZOS_CONFIG_DIR: home.path, ...env }, stdout: "pipe", stderr: "pipe" });
    let seen = "";
    const reading = (async () => {
      for await (const chunk of follow.stdout as ReadableStream<Uint8Array>) seen += new TextDecoder().decode(chunk);
    })();
    await until(() => (seen.match(/count \d+/g) ?? []).length >= 4, "followed lines");
    follow.kill("SIGINT");
    expect(await follow.exited).toBe(0);
    await reading;
    const counts = (seen.match(/count (\d+)/g) ?? []).map((m) => Number(m.split(" ")[1]));
    expect(counts[1]).toBe(counts[0] + 1);

    expect((await zos(["service", "forget", "counter"], env)).code).toBe(1);
    expect((await zos(["service", "stop", "counter"], env)).code).toBe(0);
    const forget = await zos(["service", "forget", "counter"], env);
    expect(forget.code).toBe(0);
    expect((await zos(["service", "status", "counter"], env)).code).toBe(1);
  });

  test("bash completion is valid bash", async () => {
    const r = await zos(["completion", "bash"]);
    expect(r.code).toBe(0);
    const path = join(home.path, "zos.bash");
    writeFileSync(path, r.out);
    const check = Bun.spawnSync(["bash", "-c", `source ${path} && complete -p zos`]);
    expect(check.exitCode).toBe(0);
    expect(check.stdout.toString()).toContain("_zos");
  });

  test("a node that never answers is given up on after --timeout, exit 3", async () => {
    useKey("reader");
    const silent = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const r = await zos(["--node", `127.0.0.1:${silent.port}`, "--timeout", "0.5", "node", "info"]);
      expect(r.code).toBe(3);
      expect(r.err).toContain("no answer");
      expect(r.err).toContain("--timeout");
    } finally {
      silent.stop(true);
    }
  });

  test("an unreachable node exits 3", async () => {
    useKey("reader");
    const r = await zos(["--node", "unix:/nonexistent/zos.sock", "node", "info"]);
    expect(r.code).toBe(3);
    expect(r.err).toContain("cannot connect");
  });

  test("reboot over RPC stops services in order and ends a host-mode node", async () => {
    const other = await startHostNode({ s: "exec: sleep 1000\n" });
    const key = join(home.path, "other.key");
    writeFileSync(key, Buffer.from(other.keys.admin.seed).toString("hex") + "\n", { mode: 0o400 });
    try {
      const r = await zos(["--node", `unix:${other.socket}`, "--key", key, "reboot"]);
      expect(r.code).toBe(0);
      expect(r.out).toContain("reboot accepted");
      expect(await other.proc.exited).toBe(0);
      expect(other.output()).toContain("reboot requested (rpc)");
      expect(other.output()).toContain("host mode: reboot ends the supervisor");
    } finally {
      await other.stop();
    }
  });

  test("poweroff over RPC stops services and ends a host-mode node", async () => {
    useKey("reader");
    expect((await zos(["--node", `unix:${node.socket}`, "poweroff"])).code).toBe(4);
    useKey("admin");
    const r = await zos(["--node", `unix:${node.socket}`, "poweroff"]);
    expect(r.code).toBe(0);
    expect(await node.proc.exited).toBe(0);
    expect(node.output()).toContain("poweroff requested (rpc)");
  });
});
