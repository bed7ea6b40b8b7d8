// Boots a Zero-OS node in QEMU with its RPC port forwarded to 127.0.0.1 and waits until it answers a
// signed node.info — "ready" as an operator sees it. Shared by make run, the e2e tests and bench-boot.
import { existsSync } from "node:fs";
import { generateKeyPair, keyId, type KeyPair } from "../init/identity/ed25519.ts";
import { RpcClient } from "../init/rpc/client.ts";
import { DEFAULT_TCP_PORT } from "../init/rpc/protocol.ts";
import { IMAGE, kernelCmdline, requireImage, type BootOptions } from "./boot-config.ts";
import { run } from "../initramfs/exec.ts";
import { freePort, QemuVm, type PortForward, type QemuOptions } from "./qemu.ts";

/** How the firmware gets to the kernel. */
export type BootPath =
  | { kind: "direct" } // QEMU -kernel/-initrd/-append
  | { kind: "disk"; image: string; firmware: "uefi" | "bios" } // OVMF or SeaBIOS boots out/zos.img (its own command line)
  | { kind: "ipxe"; tftpRoot: string; bootfile: string }; // iPXE ROM fetches the script over TFTP

export interface NodeVmOptions {
  boot?: BootPath;
  admin?: KeyPair;
  bootOptions?: Omit<BootOptions, "admin">;
  stateDisk?: string;
  consoleLog: string;
  echo?: boolean;
  kernel?: string;
  initramfs?: string;
  memoryMiB?: number;
  nic?: QemuOptions["nic"];
  /** Host port for the node's RPC; default: a free one. */
  rpcPort?: number;
  /** More host -> node TCP forwards besides the RPC's (e.g. a container's forwarded port). */
  forwards?: PortForward[];
  ownSession?: boolean;
}

export interface NodeVm {
  vm: QemuVm;
  admin: KeyPair;
  rpcPort: number;
  connect(key?: KeyPair): Promise<RpcClient>;
}

/** A raw ext4 image labelled zos-state, where init keeps the node identity across boots. */
export async function makeStateDisk(path: string, sizeMiB = 64): Promise<void> {
  if (existsSync(path)) return;
  await run(["truncate", "-s", `${sizeMiB}M`, path]);
  await run(["mkfs.ext4", "-q", "-F", "-L", "zos-state", path]);
}

export async function startNode(o: NodeVmOptions): Promise<NodeVm> {
  const boot = o.boot ?? { kind: "direct" };
  const admin = o.admin ?? generateKeyPair();
  const rpcPort = o.rpcPort ?? await freePort();
  const common: QemuOptions = {
    consoleLog: o.consoleLog, echo: o.echo, stateDisk: o.stateDisk, memoryMiB: o.memoryMiB, nic: o.nic, ownSession: o.ownSession,
    forwards: [{ hostPort: rpcPort, guestPort: DEFAULT_TCP_PORT }, ...(o.forwards ?? [])],
  };
  let qemu: QemuOptions;
  if (boot.kind === "direct") {
    const kernel = o.kernel ?? IMAGE.kernel, initrd = o.initramfs ?? IMAGE.initramfs;
    requireImage(kernel, initrd);
    qemu = { ...common, kernel, initrd, cmdline: kernelCmdline({ ...o.bootOptions, admin: [keyId(admin.publicKey)] }) };
  } else if (boot.kind === "disk") {
    requireImage(boot.image);
    qemu = { ...common, uefi: boot.firmware === "uefi", bootDisk: boot.image };
  } else {
    qemu = { ...common, netboot: { tftpRoot: boot.tftpRoot, bootfile: boot.bootfile } };
  }
  const vm = new QemuVm(qemu);
  return {
    vm, admin, rpcPort,
    connect: (key = admin) => RpcClient.connect({ kind: "tcp", host: "127.0.0.1", port: rpcPort }, key),
  };
}

/**
 * Polls node.info until it answers, with a fresh connection every 500 ms while earlier ones are
 * still waiting: QEMU's user-net accepts at once and then sends SYNs to the guest with a growing
 * backoff (1, 2, 4 s) until the guest has its DHCP address and listens, so one connection that
 * waits would see the node seconds after it could answer. Fails with the console attached.
 */
export async function waitRpcReady<T = Record<string, unknown>>(node: NodeVm, timeoutMs: number, accept: (info: T) => boolean = () => true): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  let last = "no attempt";
  let exited = false;
  let ready: T | null = null;
  const answered = Promise.withResolvers<void>();
  const clients = new Set<RpcClient>();
  node.vm.exited.then(() => { exited = true; });
  const attempt = async () => {
    let client: RpcClient | null = null;
    try {
      client = await node.connect();
      clients.add(client);
      const info = await withTimeout(client.call<T>("node.info"), 15_000);
      if (accept(info)) {
        ready ??= info;
        answered.resolve();
      } else last = "node.info answered but not ready yet";
    } catch (e) {
      last = (e as Error).message;
    } finally {
      if (client) {
        clients.delete(client);
        client.close();
      }
    }
  };
  try {
    while (ready === null && performance.now() < deadline && !exited) {
      void attempt();
      await Promise.race([Bun.sleep(500), answered.promise]);
    }
  } finally {
    for (const c of clients) c.close();
  }
  if (ready !== null) {
    node.vm.mark("RPC node.info answered");
    return ready;
  }
  throw node.vm.failure(exited ? `QEMU exited before RPC was ready (last: ${last})` : `RPC not ready after ${timeoutMs / 1000} s (last: ${last})`);
}

export async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms); })]);
  } finally {
    clearTimeout(timer);
  }
}
