// The boot networking pieces against real servers nobody here wrote, in network namespaces made for
// the test (addresses from TEST-NET-2, never leaving the namespaces): busybox udhcpc with our hook
// script against busybox udhcpd, then our SNTP client against chrony's chronyd serving time (-x: it
// never touches the host clock).
import { afterAll, beforeAll, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { findBusybox, udhcpcScript } from "../../init/boot/network.ts";
import { bun, repoRoot, tempDir, until } from "./helpers.ts";

setDefaultTimeout(120_000);
const busybox = findBusybox();
const tag = `${process.pid % 10000}${Math.floor(Math.random() * 1000)}`; // veth names must stay under 16 characters
const srv = `zt-srv-${tag}`, cli = `zt-cli-${tag}`;
const dir = tempDir("zos-dhcp-");
const spawned: ReturnType<typeof Bun.spawn>[] = [];

function sh(cmd: string): string {
  const r = Bun.spawnSync(["sh", "-c", cmd], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

beforeAll(() => {
  if (!busybox) throw new Error("busybox is needed (APT_PACKAGES in init/part.mk)");
  sh(`ip netns add ${srv} && ip netns add ${cli}`);
  sh(`ip link add zs${tag} netns ${srv} type veth peer name zc${tag} netns ${cli}`);
  sh(`ip -n ${srv} addr add 198.51.100.1/24 dev zs${tag} && ip -n ${srv} link set zs${tag} up && ip -n ${srv} link set lo up && ip -n ${cli} link set lo up`);
  writeFileSync(join(dir.path, "udhcpd.conf"), [
    "start 198.51.100.100", "end 198.51.100.110", `interface zs${tag}`, `lease_file ${dir.path}/leases`, `pidfile ${dir.path}/udhcpd.pid`,
    "option subnet 255.255.255.0", "option router 198.51.100.1", "option dns 198.51.100.53", "option ntpsrv 198.51.100.1", "option lease 600",
  ].join("\n") + "\n");
  writeFileSync(join(dir.path, "leases"), "");
  spawned.push(Bun.spawn(["ip", "netns", "exec", srv, busybox!, "udhcpd", "-f", join(dir.path, "udhcpd.conf")], { stdout: "ignore", stderr: "ignore" }));
});

afterAll(async () => {
  for (const p of spawned) {
    p.kill("SIGKILL");
    await p.exited;
  }
  Bun.spawnSync(["ip", "netns", "del", srv]);
  Bun.spawnSync(["ip", "netns", "del", cli]);
  dir.cleanup();
});

test("udhcpc with our hook script gets a lease from udhcpd and configures address, route, DNS", async () => {
  const script = join(dir.path, "udhcpc.script");
  const leases = join(dir.path, "net");
  const resolv = join(dir.path, "resolv.conf");
  mkdirSync(leases); // as init does before starting udhcpc
  writeFileSync(script, udhcpcScript(busybox!, { leaseDir: leases, resolvConf: resolv }));
  chmodSync(script, 0o755);
  // the same flags init uses, plus -q/-n so it exits once bound (or fails) instead of renewing forever
  const r = Bun.spawnSync(["ip", "netns", "exec", cli, busybox!, "udhcpc", "-f", "-q", "-n", "-i", `zc${tag}`, "-s", script, "-t", "10", "-T", "1", "-O", "ntpsrv", "-x", "hostname:testnode"], { stderr: "pipe", stdout: "pipe" });
  expect(r.exitCode).toBe(0);
  const lease = JSON.parse(readFileSync(join(leases, `zc${tag}.json`), "utf8"));
  expect(lease).toMatchObject({ interface: `zc${tag}`, mask: "24", router: "198.51.100.1", dns: "198.51.100.53", ntp: "198.51.100.1" });
  expect(lease.ip).toMatch(/^198\.51\.100\.1(0\d|10)$/);
  expect(sh(`ip -n ${cli} -4 addr show dev zc${tag}`)).toContain(`inet ${lease.ip}/24`);
  expect(sh(`ip -n ${cli} -4 route show default`)).toContain("via 198.51.100.1");
  expect(readFileSync(resolv, "utf8")).toBe("nameserver 198.51.100.53\n");
});

test("SNTP query against chronyd", async () => {
  const conf = join(dir.path, "chrony.conf");
  writeFileSync(conf, [`pidfile ${dir.path}/chronyd.pid`, `driftfile ${dir.path}/drift`, "cmdport 0", "port 123", "bindaddress 198.51.100.1", "allow all", "local stratum 8"].join("\n") + "\n");
  spawned.push(Bun.spawn(["ip", "netns", "exec", srv, "chronyd", "-x", "-d", "-f", conf], { stdout: "ignore", stderr: "ignore" }));
  const probe = join(dir.path, "probe.ts");
  writeFileSync(probe, `import { sntpQuery } from ${JSON.stringify(join(repoRoot, "init", "boot", "time.ts"))};\nconst t = await sntpQuery("198.51.100.1", 123, 2000);\nconsole.log(JSON.stringify({ server: t, local: Date.now() }));\n`);
  const answer = await until(() => {
    const r = Bun.spawnSync(["ip", "netns", "exec", cli, bun, probe], { stdout: "pipe", stderr: "pipe" });
    return r.exitCode === 0 ? JSON.parse(r.stdout.toString()) : null;
  }, "an NTP answer");
  // both clocks are this machine's clock: the answer must agree with it closely
  expect(Math.abs(answer.server - answer.local)).toBeLessThan(1000);
});
