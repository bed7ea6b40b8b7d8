// Host mode: the same node on a developer's machine or in tests. No mounts, no reboot: we become a
// child subreaper so orphans of our services come back to us, and shutdown ends with exit(0).
import { join } from "node:path";
import { ArgsError, type InitArgs } from "./args.ts";
import { Health } from "./health.ts";
import { setChildSubreaper } from "./libc.ts";
import { logger, setDebug } from "./log.ts";
import { NodeRuntime } from "./node.ts";
import { buildTrust } from "./trust-setup.ts";

const log = logger("host");

export async function runHostMode(args: InitArgs): Promise<NodeRuntime> {
  if (!args.configDir || !args.stateDir) throw new ArgsError("host mode needs --config-dir DIR (service files) and --state-dir DIR (node key)");
  setDebug(args.debug);
  setChildSubreaper();
  const health = new Health();
  const node = new NodeRuntime({
    mode: "host",
    configDir: args.configDir,
    stateDir: args.stateDir,
    socketPath: args.socket ?? join(args.stateDir, "zos.sock"),
    listen: args.listen,
    trust: buildTrust(args, null, null, health),
    health,
    finishShutdown: async (kind) => {
      log.info(`host mode: ${kind} ends the supervisor, not the machine`);
      process.exit(0);
    },
  });
  node.loadIdentity();
  node.startSupervisor();
  node.startRpc();
  for (const sig of ["SIGINT", "SIGTERM"] as const) process.on(sig, () => void node.requestShutdown("poweroff", sig));
  await node.containersLoaded;
  await node.flistsLoaded;
  // one machine-readable line for scripts and tests that start us (every method is registered by now)
  process.stdout.write(JSON.stringify({ event: "ready", nodeId: node.nodeId, pid: process.pid, socket: node.config.socketPath, tcp: node.tcpPorts }) + "\n");
  return node;
}
