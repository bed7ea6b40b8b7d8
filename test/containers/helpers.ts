// Shared by the container tests and bench: a busybox root packed into an flist on a dir:// store, and
// a host-mode init running in a private mount + network namespace (cgroup2 mounted, as crun needs on
// this host) so the bridge, veths, nftables rules and mounts it makes never touch the host.
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pack } from "../../fuse-fs/index.ts";
import { generateKeyPair, keyId, type KeyPair } from "../../init/identity/ed25519.ts";
import { RpcClient } from "../../init/rpc/client.ts";
import { SPARE_VETH_PREFIX } from "../../init/containers/netlink.ts";
import { alive } from "../init/helpers.ts";
import { readyLine } from "../init/host-node.ts";

export { alive };

export const repoRoot = join(import.meta.dir, "..", "..");
export const bun = join(repoRoot, "node_modules", ".bin", "bun");

export function run(cmd: string[], stdin?: string): { code: number; out: string; err: string } {
  const r = Bun.spawnSync(cmd, { stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe" });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString() };
}

/**
 * A minimal root: Debian's busybox with every applet linked, the shared libraries it needs (none
 * for busybox-static), a web root and a data file.
 */
export function makeBusyboxRoot(root: string): void {
  const busybox = "/usr/bin/busybox";
  for (const d of ["bin", "etc", "tmp", "proc", "sys", "dev", "root", "www", "data"]) mkdirSync(join(root, d), { recursive: true });
  copyFileSync(busybox, join(root, "bin/busybox"));
  Bun.spawnSync(["chmod", "755", join(root, "bin/busybox")]);
  for (const applet of run([busybox, "--list"]).out.split("\n").filter(Boolean)) {
    if (applet !== "busybox") symlinkSync("busybox", join(root, "bin", applet));
  }
  const ldd = run(["ldd", busybox]).out;
  for (const m of ldd.matchAll(/(\/\S+\.so[.\d]*)/g)) {
    const lib = m[1];
    mkdirSync(join(root, dirname(lib)), { recursive: true });
    copyFileSync(lib, join(root, lib));
  }
  writeFileSync(join(root, "www/index.html"), "hello from the container\n");
  writeFileSync(join(root, "data/original"), "flist content\n");
  writeFileSync(join(root, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n");
}

export interface Fixture {
  dir: string;
  store: string;
  flist: string;
  cleanup(): void;
}

export async function busyboxFlist(): Promise<Fixture> {
  const dir = mkdtempSync(join(tmpdir(), "zos-ctr-"));
  const root = join(dir, "root"), store = join(dir, "store"), flist = join(dir, "busybox.fl");
  makeBusyboxRoot(root);
  mkdirSync(store);
  await pack({ source: root, output: flist, stores: [`dir://${store}`] });
  return { dir, store, flist, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface NsNode {
  pid: number;
  stateDir: string;
  socket: string;
  admin: KeyPair;
  operator: KeyPair;
  client(key?: KeyPair): Promise<RpcClient>;
  /** Runs a command in the node's mount and network namespaces. */
  inNode(cmd: string[], stdin?: string): { code: number; out: string; err: string };
  output(): string;
  stop(): Promise<void>;
  /** SIGKILL: init dies without tearing anything down. */
  kill(): Promise<void>;
}

/** Starts host-mode init in fresh mount and network namespaces. */
export async function startNsNode(dir: string, opts: { trustedFlistKey?: string } = {}): Promise<NsNode> {
  const stateDir = join(dir, "state"), configDir = join(dir, "services");
  mkdirSync(configDir, { recursive: true });
  mkdirSync(join(stateDir, "containers"), { recursive: true });
  if (opts.trustedFlistKey) writeFileSync(join(stateDir, "containers", "flist-trusted-key"), opts.trustedFlistKey);
  const admin = generateKeyPair(), operator = generateKeyPair();
  const socket = join(dir, "zos.sock");
  const init = [bun, join(repoRoot, "init/main.ts"), "--config-dir", configDir, "--state-dir", stateDir, "--socket", socket,
    "--admin-key", keyId(admin.publicKey), "--operator-key", keyId(operator.publicKey)];
  const script = `mount -t cgroup2 none /sys/fs/cgroup && ip link set lo up && exec "$@"`;
  const proc = Bun.spawn(["unshare", "--mount", "--net", "--propagation", "private", "sh", "-c", script, "sh", ...init], { stdout: "pipe", stderr: "pipe" });
  const { ready, output } = await readyLine<{ pid: number }>(proc);
  const pid = ready.pid;
  return {
    pid, stateDir, socket, admin, operator,
    client: (key = admin) => RpcClient.connect({ kind: "unix", path: socket }, key),
    inNode: (cmd, stdin) => run(["nsenter", "-t", String(pid), "-m", "-n", ...cmd], stdin),
    output,
    async stop() {
      proc.kill("SIGTERM");
      await proc.exited;
    },
    async kill() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

/** What a container can leave behind in the node, counted so before/after can be compared. */
export function traces(node: NsNode): Record<string, number> {
  const ours = [join(node.stateDir, "containers/bundles"), join(node.stateDir, "containers/lowers")];
  const mounts = node.inNode(["cat", "/proc/self/mountinfo"]).out.split("\n").filter((l) => ours.some((d) => l.includes(d))).length;
  // init keeps at most one spare network namespace, whose veth end is named SPARE_VETH_PREFIX... and
  // is down and on no bridge: not a container's. One that is up or has a master is a half-taken spare, a leak.
  const links: { ifname: string; flags: string[]; master?: string }[] = JSON.parse(node.inNode(["ip", "-j", "link", "show", "type", "veth"]).out || "[]");
  const spares = links.filter((l) => l.ifname.startsWith(SPARE_VETH_PREFIX) && !l.flags.includes("UP") && !l.master).length;
  const veths = links.length - Math.min(1, spares);
  const nft = node.inNode(["nft", "-j", "list", "table", "ip", "zos_containers"]);
  let forwards = 0;
  if (nft.code === 0) for (const o of JSON.parse(nft.out).nftables) if (o.map) forwards += (o.map.elem ?? []).length;
  const bundles = run(["ls", "-A", join(node.stateDir, "containers/bundles")]).out.split("\n").filter(Boolean).length;
  const specs = run(["ls", "-A", join(node.stateDir, "containers/specs")]).out.split("\n").filter(Boolean).length;
  const crunState = run(["ls", "-A", join(node.stateDir, "containers/crun")]).out.split("\n").filter(Boolean).length;
  const cgroups = node.inNode(["sh", "-c", "ls -d /sys/fs/cgroup/zos/*/ 2>/dev/null | wc -l"]).out.trim();
  return { mounts, veths, forwards, bundles, specs, crunState, cgroups: Number(cgroups) };
}

export function readText(path: string): string {
  return readFileSync(path, "utf8");
}
