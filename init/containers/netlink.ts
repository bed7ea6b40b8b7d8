// rtnetlink requests for container networking, sent from init instead of an `ip` process each.
//
// Request (native byte order, little-endian here), every part 4-byte aligned:
//   nlmsghdr  (16): u32 len, u16 type, u16 flags (NLM_F_REQUEST 1 | NLM_F_ACK 4 [| NLM_F_EXCL 0x200 |
//                   NLM_F_CREATE 0x400]), u32 seq, u32 port id (0: the kernel)
//   then the type's fixed header:
//     RTM_NEWLINK 16 / RTM_DELLINK 17: ifinfomsg (16): u8 family, u8 pad, u16 type, i32 index (0: by
//       IFLA_IFNAME), u32 flags, u32 change (mask of the flags to set)
//     RTM_NEWADDR 20: ifaddrmsg (8): u8 family, u8 prefixlen, u8 flags, u8 scope, u32 index
//     RTM_NEWROUTE 24: rtmsg (12): u8 family, dst_len, src_len, tos, table, protocol, scope, type; u32 flags
//   then rtattrs: u16 len (4 + payload), u16 type, payload padded to 4; nested ones hold rtattrs.
//   A veth's peer (VETH_INFO_PEER) is an ifinfomsg followed by the peer's own rtattrs.
// Reply: nlmsghdr with type NLMSG_ERROR (2), then i32 error (0 = done, else -errno). The kernel
// handles a request inside send(2), so the reply is queued by the time send returns.
// The socket lives in the network namespace of the thread that opens it.
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { constants } from "node:os";
import { ipToInt } from "./ipam.ts";

const { i32, i64, u32, u64, ptr } = FFIType;
const libc = dlopen("libc.so.6", {
  socket: { args: [i32, i32, i32], returns: i32 },
  send: { args: [i32, ptr, u64, i32], returns: i64 },
  recv: { args: [i32, ptr, u64, i32], returns: i64 },
  close: { args: [i32], returns: i32 },
  if_nametoindex: { args: [ptr], returns: u32 },
  __errno_location: { args: [], returns: ptr },
}).symbols;

const AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000, NETLINK_ROUTE = 0, MSG_DONTWAIT = 0x40;
const RTM_NEWLINK = 16, RTM_DELLINK = 17, RTM_NEWADDR = 20, RTM_NEWROUTE = 24;
const NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLM_F_EXCL = 0x200, NLM_F_CREATE = 0x400, NLMSG_ERROR = 2;
const IFLA_IFNAME = 3, IFLA_MASTER = 10, IFLA_LINKINFO = 18, IFLA_NET_NS_PID = 19, IFLA_INFO_KIND = 1, IFLA_INFO_DATA = 2, VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1, IFA_LOCAL = 2, RTA_GATEWAY = 5, RTA_OIF = 4;
const AF_INET = 2, IFF_UP = 1, RT_TABLE_MAIN = 254, RTPROT_BOOT = 3, RTN_UNICAST = 1;
const ENODEV = 19;

/** A request the kernel refused, with its errno. */
export class NetlinkError extends Error {
  constructor(readonly errno: number, what: string) {
    super(`${what}: ${Object.entries(constants.errno).find(([, v]) => v === errno)?.[0] ?? `errno ${errno}`}`);
    this.name = "NetlinkError";
  }
}

function errno(): number {
  return read.i32(libc.__errno_location() as Pointer, 0);
}

function attr(type: number, payload: Buffer | Buffer[]): Buffer {
  const data = Array.isArray(payload) ? Buffer.concat(payload) : payload;
  const b = Buffer.alloc((4 + data.length + 3) & ~3);
  b.writeUInt16LE(4 + data.length, 0);
  b.writeUInt16LE(type, 2);
  data.copy(b, 4);
  return b;
}

const str = (s: string) => Buffer.from(s + "\0");
function u32le(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}
/** An IPv4 address in network byte order. */
function inet(ip: string): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(ipToInt(ip));
  return b;
}

function ifinfomsg(index = 0, flags = 0): Buffer {
  const b = Buffer.alloc(16);
  b.writeInt32LE(index, 4);
  b.writeUInt32LE(flags, 8);
  b.writeUInt32LE(flags, 12); // change: exactly the flags given
  return b;
}

let seq = 1;

/** An rtnetlink socket in the calling thread's network namespace; it stays there whichever thread uses it later. */
export function openRtnetlink(what: string): number {
  const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) throw new NetlinkError(errno(), `${what}: netlink socket`);
  return fd;
}

/**
 * Sends one request and reads its ack; throws NetlinkError if refused. On `socket` (see openRtnetlink)
 * when given, else on a fresh one in the calling thread's network namespace.
 */
function request(type: number, flags: number, parts: Buffer[], what: string, socket?: number): void {
  const body = Buffer.concat(parts);
  const msg = Buffer.alloc(16 + body.length);
  msg.writeUInt32LE(msg.length, 0);
  msg.writeUInt16LE(type, 4);
  msg.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK | flags, 6);
  msg.writeUInt32LE(seq++, 8);
  body.copy(msg, 16);
  const fd = socket ?? openRtnetlink(what);
  try {
    if (Number(libc.send(fd, msg, msg.length, 0)) < 0) throw new NetlinkError(errno(), what);
    const reply = Buffer.alloc(1024);
    const n = Number(libc.recv(fd, reply, reply.length, MSG_DONTWAIT));
    if (n < 0) throw new NetlinkError(errno(), what);
    if (n < 20 || reply.readUInt16LE(4) !== NLMSG_ERROR) throw new Error(`${what}: unexpected netlink reply type ${reply.readUInt16LE(4)}`);
    const err = -reply.readInt32LE(16);
    if (err) throw new NetlinkError(err, what);
  } finally {
    if (socket === undefined) libc.close(fd);
  }
}

/** Names of spare veths (mount-thread.ts): "zsp" + 8 hex, never a container's ("vz" + 10 hex). */
export const SPARE_VETH_PREFIX = "zsp";

export function ifindex(name: string): number {
  const i = libc.if_nametoindex(str(name));
  if (!i) throw new NetlinkError(errno(), `no interface ${name}`);
  return i;
}

/** `ip link set IF [name NEWNAME] master BRIDGE up` (a link is renamed while still down, before it goes up). */
export function setMasterUp(ifname: string, bridge: string, newName?: string): void {
  const link = newName ? [ifinfomsg(ifindex(ifname), IFF_UP), attr(IFLA_IFNAME, str(newName))] : [ifinfomsg(0, IFF_UP), attr(IFLA_IFNAME, str(ifname))];
  request(RTM_NEWLINK, 0, [...link, attr(IFLA_MASTER, u32le(ifindex(bridge)))], `${ifname}${newName ? ` as ${newName}` : ""} master ${bridge} up`);
}

/** `ip link del IF` (by name or index); false when there is no such interface. */
export function deleteLink(link: string | number): boolean {
  try {
    const which = typeof link === "number" ? [ifinfomsg(link)] : [ifinfomsg(), attr(IFLA_IFNAME, str(link))];
    request(RTM_DELLINK, 0, which, `deleting ${link}`);
    return true;
  } catch (e) {
    if (e instanceof NetlinkError && e.errno === ENODEV) return false;
    throw e;
  }
}

export interface InsideNetwork {
  /** Name of the veth end left in the namespace of process peerPid (the bridge side). */
  peer: string;
  peerPid: number;
  ip: string;
  prefix: number;
  gateway: string;
}

/**
 * Run in a (new, empty) network namespace: a veth pair with `eth0` here and `peer` moved to
 * peerPid's namespace (down there), lo and eth0 up. Returns eth0's index.
 */
export function makeVethInside(peer: string, peerPid: number): number {
  const peerInfo = Buffer.concat([ifinfomsg(), attr(IFLA_IFNAME, str(peer)), attr(IFLA_NET_NS_PID, u32le(peerPid))]);
  const linkinfo = attr(IFLA_LINKINFO, [attr(IFLA_INFO_KIND, str("veth")), attr(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peerInfo))]);
  request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, [ifinfomsg(), attr(IFLA_IFNAME, str("eth0")), linkinfo], `veth eth0/${peer}`);
  const eth0 = ifindex("eth0");
  request(RTM_NEWLINK, 0, [ifinfomsg(0, IFF_UP), attr(IFLA_IFNAME, str("lo"))], "lo up");
  request(RTM_NEWLINK, 0, [ifinfomsg(eth0, IFF_UP)], "eth0 up");
  return eth0;
}

/** eth0's address and the default route via the gateway, on `socket` (one in the container's namespace) or from inside it. */
export function addressInside(n: Pick<InsideNetwork, "ip" | "prefix" | "gateway">, eth0: number, socket?: number): void {
  const ifaddr = Buffer.alloc(8);
  ifaddr.writeUInt8(AF_INET, 0);
  ifaddr.writeUInt8(n.prefix, 1);
  ifaddr.writeUInt32LE(eth0, 4);
  request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, [ifaddr, attr(IFA_LOCAL, inet(n.ip)), attr(IFA_ADDRESS, inet(n.ip))], `address ${n.ip}/${n.prefix} on eth0`, socket);
  const rtmsg = Buffer.from([AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT, 0, RTN_UNICAST, 0, 0, 0, 0]);
  request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, [rtmsg, attr(RTA_GATEWAY, inet(n.gateway)), attr(RTA_OIF, u32le(eth0))], `default route via ${n.gateway}`, socket);
}

/**
 * Run in the container's (new, empty) network namespace: a veth pair with `eth0` here and the peer
 * moved to peerPid's namespace, eth0's address, lo and eth0 up, the default route via the gateway.
 */
export function configureInside(n: InsideNetwork): void {
  addressInside(n, makeVethInside(n.peer, n.peerPid));
}
