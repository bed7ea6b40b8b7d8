// `make run`: boots a Zero-OS node in QEMU with its serial console in this terminal, the RPC port
// forwarded to 127.0.0.1, and a small virtio state disk (build/run/state.img, so the node keeps its
// identity between runs), plus a local store (scripts/example-store.ts: zdb with a busybox flist).
// When the node answers, prints its id and the `zos` commands to try.
// Ctrl-C asks the node to power off through the RPC (services stopped, disks unmounted); a second
// Ctrl-C, or no exit within 60 s, ends QEMU.
//   bun scripts/run.ts [--port N]   (default 7722; a free port when that one is taken or N is 0)
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { DEFAULT_TCP_PORT } from "../init/rpc/protocol.ts";
import { ROOT } from "./boot-config.ts";
import { DEV_CONFIG_DIR, devAdminKey } from "./dev-key.ts";
import { startExampleStore, type ExampleStore } from "./example-store.ts";
import { makeStateDisk, startNode, waitRpcReady, withTimeout } from "./node-vm.ts";
import { freePort } from "./qemu.ts";

async function portIsFree(port: number): Promise<boolean> {
  try {
    const s = Bun.listen({ hostname: "127.0.0.1", port, socket: { data() {} } });
    s.stop(true);
    return true;
  } catch {
    return false;
  }
}

const { values } = parseArgs({ options: { port: { type: "string" } } });
const runDir = join(ROOT, "build", "run");
mkdirSync(runDir, { recursive: true });
const stateDisk = join(runDir, "state.img");
if (!existsSync(stateDisk)) await makeStateDisk(stateDisk);
// --port 0, or no --port with 7722 taken: any free port
const asked = values.port === undefined ? DEFAULT_TCP_PORT : Number(values.port);
const rpcPort = asked > 0 && (await portIsFree(asked)) ? asked : await freePort();

let store: ExampleStore | null = null;
try {
  store = await startExampleStore(runDir);
  console.log(`[make run] store: ${store.storeUrl} (zdb), example flist ${store.flistUrl}`);
} catch (e) {
  console.error(`[make run] no local store (${(e as Error).message.split("\n")[0]}); booting without one`);
}

const node = await startNode({
  admin: devAdminKey(), stateDisk, rpcPort, echo: true, ownSession: true,
  consoleLog: join(runDir, "console.log"),
  bootOptions: store ? { store: [store.storeUrl] } : {},
});

let stopping = false;
process.on("SIGINT", async () => {
  if (stopping) {
    await node.vm.stop();
    return;
  }
  stopping = true;
  console.log("\n[make run] asking the node to power off (ctrl-c again to kill QEMU)");
  try {
    const c = await node.connect();
    await withTimeout(c.call("node.poweroff"), 5000);
    c.close();
    await node.vm.waitExit(60_000);
  } catch (e) {
    console.log(`[make run] ${(e as Error).message.split("\n")[0]}; stopping QEMU`);
    await node.vm.stop();
  }
});

try {
  const info = await waitRpcReady<{ id: string }>(node, 300_000);
  const zos = `ZOS_CONFIG_DIR=${DEV_CONFIG_DIR} bun cli/main.ts --node 127.0.0.1:${rpcPort}`;
  console.log([
    "",
    "=".repeat(72),
    `  Zero-OS node ${info.id} is up (${(node.vm.elapsedMs() / 1000).toFixed(1)} s after QEMU started)`,
    `  RPC: 127.0.0.1:${rpcPort} -> node port ${DEFAULT_TCP_PORT}; console log ${join(runDir, "console.log")}`,
    "  Try, in another terminal (from the repository root):",
    `    ${zos} node info`,
    `    ${zos} service list`,
    ...(store ? [`    ${zos} container run --name hello --flist ${store.flistUrl} --store ${store.storeUrl} -- /bin/sh -c 'uname -a; ls /bin | wc -l; sleep 600'`,
      `    ${zos} container logs hello`] : []),
    `    ${zos} poweroff`,
    "  Ctrl-C here powers the node off.",
    "=".repeat(72),
    "",
  ].join("\n"));
} catch (e) {
  if (!stopping) {
    console.error(`[make run] ${(e as Error).message}`);
    await node.vm.stop();
    await store?.stop();
    process.exit(1);
  }
}
const code = await node.vm.exited;
await store?.stop();
console.log(`[make run] QEMU exited ${code}`);
process.exit(code);
