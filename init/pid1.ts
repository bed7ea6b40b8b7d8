// PID 1: boot the machine, then run the node. Each step is guarded: a failing step is logged, shown
// in node.info's health, and the boot goes on. Nothing here may throw out or exit.
import { hostname } from "node:os";
import type { InitArgs } from "./args.ts";
import { readZosCmdline } from "./boot/cmdline.ts";
import { finishPid1Shutdown } from "./boot/final.ts";
import { mountEarly } from "./boot/mounts.ts";
import { loadBootModules, loadServiceModules } from "./boot/modules.ts";
import { makeStaticNodes } from "./boot/static-nodes.ts";
import { startNetworking } from "./boot/network.ts";
import { prepareStateDir } from "./boot/state.ts";
import { startTimeSync } from "./boot/time.ts";
import { Health } from "./health.ts";
import { getRlimit, RLIMIT_NOFILE, reboot, sethostname, setRlimit } from "./libc.ts";
import { enableKmsg, logger, setDebug } from "./log.ts";
import { NodeRuntime } from "./node.ts";
import { DEFAULT_SOCKET_PATH, DEFAULT_TCP_PORT } from "./rpc/protocol.ts";
import { buildTrust } from "./trust-setup.ts";

const log = logger("boot");
export const defaultConfigDir = "/etc/zos/services";
export const defaultKeysFile = "/etc/zos/keys";

function step(health: Health, name: string, fn: () => void): void {
  try {
    fn();
    health.ok(name);
  } catch (e) {
    log.error(`${name} failed`, e);
    health.fail(name, e);
  }
}

/** Steps a test can skip in a PID namespace on a shared host (ZOS_BOOT_SKIP=kmsg,modules,network,time):
 * each would act on the host kernel (its log and printk settings, modules, NICs, clock). */
const skip = new Set((process.env.ZOS_BOOT_SKIP ?? "").split(",").filter(Boolean));

export async function runPid1(args: InitArgs): Promise<NodeRuntime | null> {
  const health = new Health();
  mountEarly(health);
  if (!skip.has("kmsg")) enableKmsg();
  const cmdline = readZosCmdline();
  setDebug(cmdline.debug || args.debug);
  log.info(`zos init starting as PID 1 (bun ${Bun.version})`);
  // ctrl-alt-del becomes SIGINT to us instead of an immediate hard reset (EINVAL inside a PID namespace)
  try {
    reboot(0);
  } catch (e) {
    log.warn("cannot disable ctrl-alt-del reset", (e as Error).message);
  }
  step(health, "rlimit", () => {
    const want = 1n << 20n;
    try {
      setRlimit(RLIMIT_NOFILE, want, want);
    } catch {
      // raising the hard limit needs CAP_SYS_RESOURCE: take what the hard limit allows
      const { hard } = getRlimit(RLIMIT_NOFILE);
      setRlimit(RLIMIT_NOFILE, hard, hard);
    }
    log.info(`RLIMIT_NOFILE ${getRlimit(RLIMIT_NOFILE).soft}`);
  });
  // resolves once the disk controllers are in too: the state disk (and so the node id DHCP sends as
  // hostname) is looked for after it
  const bootModules = skip.has("modules") ? null : await loadBootModules(health);
  // modules left to load on first use need their /dev node to be there to be asked for (/dev/fuse)
  if (bootModules) step(health, "static-nodes", () => void makeStaticNodes(bootModules.modules.dir));

  const state = prepareStateDir(cmdline.state, health);
  const node = new NodeRuntime({
    mode: "pid1",
    configDir: args.configDir ?? defaultConfigDir,
    stateDir: args.stateDir ?? state.dir,
    socketPath: args.socket ?? DEFAULT_SOCKET_PATH,
    listen: args.listen.length ? args.listen : [{ host: "0.0.0.0", port: DEFAULT_TCP_PORT }],
    trust: buildTrust(args, cmdline, defaultKeysFile, health),
    finishShutdown: finishPid1Shutdown,
    health,
  });
  try {
    node.loadIdentity();
  } catch (e) {
    // without an identity there is no RPC; keep supervising what we can
    log.error("node identity", e);
    health.fail("identity", e);
  }
  if (node.nodeId) {
    step(health, "hostname", () => sethostname(node.nodeId));
    for (const line of ["=".repeat(72), `  Zero-OS node ${node.nodeId}`, `  RPC: tcp port ${DEFAULT_TCP_PORT}, unix ${DEFAULT_SOCKET_PATH}`, "=".repeat(72)]) log.info(line);
  }
  step(health, "supervisor", () => node.startSupervisor());
  if (!skip.has("network")) step(health, "network", () => startNetworking(node.supervisor, health));
  if (!skip.has("time")) step(health, "time-sync", () => startTimeSync(cmdline.ntp, health));
  if (node.nodeId) step(health, "rpc", () => node.startRpc());
  // what no boot step needs loads once the RPC answers (until then the kernel loads on first use)
  if (bootModules) void loadServiceModules(bootModules, health);

  process.on("SIGINT", () => void node.requestShutdown("reboot", "SIGINT (ctrl-alt-del)"));
  process.on("SIGTERM", () => void node.requestShutdown("reboot", "SIGTERM"));
  process.on("SIGUSR1", () => void node.requestShutdown("poweroff", "SIGUSR1"));
  process.on("SIGUSR2", () => void node.requestShutdown("poweroff", "SIGUSR2"));
  process.on("SIGHUP", () => log.info("SIGHUP ignored"));
  log.info(`boot finished; hostname ${hostname()}`);
  return node;
}
