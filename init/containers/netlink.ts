// The two rtnetlink requests a container's veth needs in init's own network namespace, sent from
// this process instead of an `ip` process each: enslave to the bridge and bring up, and delete.
//
// Request (native byte order, little-endian here), every part 4-byte aligned:
//   nlmsghdr  (16): u32 len, u16 type (RTM_NEWLINK 16, RTM_DELLINK 17), u16 flags (NLM_F_REQUEST 1 |
//                   NLM_F_ACK 4), u32 seq, u32 port id (0: the kernel)
//   ifinfomsg (16): u8 family (AF_UNSPEC), u8 pad, u16 type, i32 index (0: find by IFLA_IFNAME),
//                   u32 flags, u32 change (mask of the flags to set)
//   rtattr...     : u16 len (4 + payload), u16 type, payload padded to 4 (IFLA_IFNAME 3: NUL-ended
//                   string; IFLA_MASTER 10: u32 ifindex)
// Reply: nlmsghdr with type NLMSG_ERROR (2), then i32 error (0 = done, else -errno) and the request's
// header. The kernel handles the request inside send(2), so the reply is queued when send returns.
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { constants } from "node:os";
import { ContainerError } from "./errors.ts";

const { i32, i64, u64, ptr } = FFIType;
const libc = dlopen("libc.so.6", {
  socket: { args: [i32, i32, i32], returns: i32 },
  send: { args: [i32, ptr, u64, i32], returns: i64 },
  recv: { args: [i32, ptr, u64, i32], returns: i64 },
  close: { args: [i32], returns: i32 },
  __errno_location: { args: [], returns: ptr },
  if_nametoindex: { args: [ptr], returns: FFIType.u32 },
}).symbols;

const AF_NETLINK = 16, SOCK_RAW = 3, SOCK_CLOEXEC = 0o2000000, NETLINK_ROUTE = 0, MSG_DONTWAIT = 0x40;
const RTM_NEWLINK = 16, RTM_DELLINK = 17, NLM_F_REQUEST = 1, NLM_F_ACK = 4, NLMSG_ERROR = 2;
const IFLA_IFNAME = 3, IFLA_MASTER = 10, IFF_UP = 1;
const ENODEV = 19;

function errnoName(n: number): string {
  return Object.entries(constants.errno).find(([, v]) => v === n)?.[0] ?? `errno ${n}`;
}

function attr(type: number, payload: Buffer): Buffer {
  const b = Buffer.alloc((4 + payload.length + 3) & ~3);
  b.writeUInt16LE(4 + payload.length, 0);
  b.writeUInt16LE(type, 2);
  payload.copy(b, 4);
  return b;
}

let seq = 1;

/** Sends one link request and returns the kernel's answer: 0 or a positive errno. */
function linkRequest(type: number, ifname: string, flags: number, attrs: Buffer[]): number {
  const body = Buffer.concat([attr(IFLA_IFNAME, Buffer.from(ifname + "\0")), ...attrs]);
  const msg = Buffer.alloc(32 + body.length);
  msg.writeUInt32LE(msg.length, 0);
  msg.writeUInt16LE(type, 4);
  msg.writeUInt16LE(NLM_F_REQUEST | NLM_F_ACK, 6);
  msg.writeUInt32LE(seq++, 8);
  msg.writeUInt32LE(flags, 24); // ifi_flags
  msg.writeUInt32LE(flags, 28); // ifi_change: exactly the flags we set
  body.copy(msg, 32);
  const fd = libc.socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return read.i32(libc.__errno_location() as Pointer, 0);
  try {
    if (Number(libc.send(fd, msg, msg.length, 0)) < 0) return read.i32(libc.__errno_location() as Pointer, 0);
    const reply = Buffer.alloc(256);
    const n = Number(libc.recv(fd, reply, reply.length, MSG_DONTWAIT));
    if (n < 0) return read.i32(libc.__errno_location() as Pointer, 0);
    if (n < 20 || reply.readUInt16LE(4) !== NLMSG_ERROR) throw new Error(`unexpected netlink reply type ${reply.readUInt16LE(4)}`);
    return -reply.readInt32LE(16);
  } finally {
    libc.close(fd);
  }
}

/** Enslaves the interface to the bridge and brings it up (`ip link set IF master BRIDGE up`). */
export function setMasterUp(ifname: string, bridge: string, container: string): void {
  // by ioctl in this process's network namespace (/sys/class/net may show another one's)
  const index = libc.if_nametoindex(Buffer.from(bridge + "\0"));
  if (!index) throw new ContainerError("system", `network: no bridge ${bridge}`, { container, step: "network" });
  const master = Buffer.alloc(4);
  master.writeUInt32LE(index);
  const err = linkRequest(RTM_NEWLINK, ifname, IFF_UP, [attr(IFLA_MASTER, master)]);
  if (err) throw new ContainerError("system", `network: ${ifname} master ${bridge} up: ${errnoName(err)}`, { container, step: "network" });
}

/** Deletes the interface (`ip link del IF`); false when there is none by that name. */
export function deleteLink(ifname: string, container: string): boolean {
  const err = linkRequest(RTM_DELLINK, ifname, 0, []);
  if (err === ENODEV) return false;
  if (err) throw new ContainerError("system", `network: deleting ${ifname}: ${errnoName(err)}`, { container, step: "network" });
  return true;
}
