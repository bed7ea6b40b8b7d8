// Container networking: one bridge with a private subnet, a veth per container whose inside end
// lives in a network namespace persisted as a file in the bundle, nftables NAT to the node's uplink
// and port forwards as elements of two maps (host port -> container address . port), so adding or
// removing a container's forwards never rewrites rules. Everything a container adds, detach removes.
import { createServer } from "node:net";
import { createSocket } from "node:dgram";
import { createHash } from "node:crypto";
import { closeSync, existsSync, openSync, rmSync, writeFileSync } from "node:fs";
import { umount, MNT_DETACH } from "../libc.ts";
import { ContainerError } from "./errors.ts";
import { mountsUnder } from "./flist-source.ts";
import { mustRun, runCommand } from "./command.ts";
import { deleteLinkOffThread, makeNetnsOffThread, makeSpareNetnsOffThread } from "./off-thread.ts";
import { logger } from "../log.ts";
import type { Ipam } from "./ipam.ts";
import type { PortForward } from "./spec.ts";

export const BRIDGE = "zos-br0";
export const NFT_TABLE = "zos_containers";

function nftRuleset(subnet: string): string {
  // `fib daddr type local`: only traffic addressed to the node itself is forwarded, in prerouting
  // (from outside) and output (from the node, loopback included).
  const dnat = `fib daddr type local dnat ip to tcp dport map @fwd_tcp\n    fib daddr type local dnat ip to udp dport map @fwd_udp`;
  return `table ip ${NFT_TABLE} {
  map fwd_tcp { type inet_service : ipv4_addr . inet_service; }
  map fwd_udp { type inet_service : ipv4_addr . inet_service; }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ${dnat}
  }
  chain output {
    type nat hook output priority -100; policy accept;
    ${dnat}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr ${subnet} oifname != "${BRIDGE}" masquerade
    oifname "${BRIDGE}" ip saddr 127.0.0.0/8 masquerade
  }
}
`;
}

const log = logger("containers");

export function vethName(container: string): string {
  return "vz" + createHash("sha1").update(container).digest("hex").slice(0, 10);
}

export interface Attachment {
  veth: string;
  netnsPath: string;
}

/** Tries of `ip link add ... type bridge` while the bridge module is still coming up, a second apart. */
const BRIDGE_TRIES = 5;

/**
 * `ip link add BRIDGE type bridge`. The service modules (bridge among them) load in the background
 * after boot, and the kernel's own load on `ip link add` can come back while that load is still
 * initialising the module: the type is unknown for that moment (seen once in the whole-OS test).
 */
async function addBridge(step: string): Promise<void> {
  for (let tried = 1; ; tried++) {
    try {
      await mustRun(["ip", "link", "add", BRIDGE, "type", "bridge"], step);
      return;
    } catch (e) {
      if (tried >= BRIDGE_TRIES || !(e instanceof ContainerError) || !e.message.includes("Unknown device type")) throw e;
      log.info(`bridge: the bridge link type is not there yet (try ${tried} of ${BRIDGE_TRIES}); trying again in 1 s`);
      await Bun.sleep(1000);
    }
  }
}

export class Network {
  private ready: Promise<void> | null = null;
  private bridgeUp = false;

  constructor(readonly ipam: Ipam) {}

  /** Creates the bridge, enables forwarding and installs the nftables table, once. */
  ensureBridge(): Promise<void> {
    this.ready ??= this.setupBridge().catch((e) => {
      this.ready = null;
      throw e;
    });
    return this.ready;
  }

  private async setupBridge(): Promise<void> {
    const step = "bridge";
    if ((await runCommand(["ip", "link", "show", BRIDGE])).code !== 0) {
      await addBridge(step);
      await mustRun(["ip", "addr", "add", `${this.ipam.gateway}/${this.ipam.prefix}`, "dev", BRIDGE], step);
    }
    await mustRun(["ip", "link", "set", BRIDGE, "up"], step);
    writeFileSync("/proc/sys/net/ipv4/ip_forward", "1");
    // lets loopback-originated connections to a forwarded port be routed to the bridge
    writeFileSync(`/proc/sys/net/ipv4/conf/${BRIDGE}/route_localnet`, "1");
    if ((await runCommand(["nft", "list", "table", "ip", NFT_TABLE])).code !== 0) await mustRun(["nft", "-f", "-"], "nftables", { stdin: nftRuleset(this.ipam.subnet) });
    this.bridgeUp = true;
  }

  /**
   * A network namespace for the container, persisted at netnsPath, joined to the bridge by a veth:
   * the spare one if the network thread has it (keepSpare), else a new one. Once the bridge is up,
   * it is asked of the network thread before this returns to the event loop, so it is made while
   * the caller goes on with other steps.
   */
  async attach(container: string, ip: string, netnsPath: string): Promise<Attachment> {
    if (!this.bridgeUp) await this.ensureBridge();
    const veth = vethName(container);
    closeSync(openSync(netnsPath, "w"));
    try {
      await makeNetnsOffThread(netnsPath, { peer: veth, peerPid: process.pid, ip, prefix: this.ipam.prefix, gateway: this.ipam.gateway }, BRIDGE);
    } catch (e) {
      throw new ContainerError("system", `network: ${(e as Error).message}`, { container, step: "network" }, { cause: e });
    }
    return { veth, netnsPath };
  }

  /**
   * Has the network thread make a namespace and veth pair ahead of need, if it has none, for the next
   * attach to take (mount-thread.ts). Asked once a create is done, so that create never competes
   * with it for the CPU; creates running at once can still overlap it (one's spare is made while
   * another starts), which costs that start some CPU and rtnl lock time but is never wrong.
   */
  keepSpare(): void {
    makeSpareNetnsOffThread().catch((e) => log.warn("cannot make a spare network namespace", e));
  }

  /** Removes the veth and the namespace file; parts already gone are skipped. */
  async detach(container: string, netnsPath: string): Promise<void> {
    try {
      await deleteLinkOffThread(vethName(container));
    } catch (e) {
      throw new ContainerError("system", `network: ${(e as Error).message}`, { container, step: "network" }, { cause: e });
    }
    if (existsSync(netnsPath)) {
      if (mountsUnder(netnsPath).length) umount(netnsPath, MNT_DETACH);
      rmSync(netnsPath, { force: true });
    }
  }

  async addForwards(container: string, ip: string, ports: PortForward[]): Promise<void> {
    if (!ports.length) return;
    await this.ensureBridge();
    const lines = ports.map((p) => `add element ip ${NFT_TABLE} fwd_${p.protocol} { ${p.hostPort} : ${ip} . ${p.containerPort} }`);
    await mustRun(["nft", "-f", "-"], "port forward", { container, stdin: lines.join("\n") + "\n" });
  }

  /**
   * One nft process for all of the container's forwards; a batch is all or nothing, so when it
   * fails (some were never added, or are gone already) they are removed one by one.
   */
  async removeForwards(container: string, ports: PortForward[]): Promise<void> {
    if (!ports.length) return;
    const line = (p: PortForward) => `delete element ip ${NFT_TABLE} fwd_${p.protocol} { ${p.hostPort} }\n`;
    if ((await runCommand(["nft", "-f", "-"], { stdin: ports.map(line).join("") })).code === 0) return;
    for (const p of ports) {
      const r = await runCommand(["nft", "-f", "-"], { stdin: line(p) });
      if (r.code !== 0 && !/No such file|does not exist/i.test(r.stderr)) {
        throw new ContainerError("system", `removing forward ${p.protocol}/${p.hostPort}: ${r.stderr.trim()}`, { container, step: "port forward" });
      }
    }
  }
}

/** Throws "conflict" when something on the node already listens on the port. */
export async function probePort(port: number, protocol: "tcp" | "udp", container: string): Promise<void> {
  const inUse = (e: Error) => new ContainerError("conflict", `${protocol} port ${port} is already in use on the node (${e.message})`, { container, step: "port forward" });
  if (protocol === "tcp") {
    await new Promise<void>((resolve, reject) => {
      const srv = createServer();
      srv.once("error", (e) => reject(inUse(e)));
      srv.listen({ port, host: "0.0.0.0", exclusive: true }, () => srv.close(() => resolve()));
    });
  } else {
    await new Promise<void>((resolve, reject) => {
      const sock = createSocket("udp4");
      sock.once("error", (e) => {
        sock.close();
        reject(inUse(e));
      });
      sock.bind(port, "0.0.0.0", () => sock.close(() => resolve()));
    });
  }
}
