// The worker body of off-thread.ts: runs mount(2), umount2(2), network namespace creation and veth
// deletion on this thread, one request at a time, and answers each with its id and the errno it failed with
// (0 on success). It also keeps the spare network namespace (see makeSpare).
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { LibcError, MNT_DETACH, mount, umount } from "../libc.ts";
import { logger } from "../log.ts";
import { addressInside, configureInside, deleteLink, ifindex, makeVethInside, NetlinkError, openRtnetlink, setMasterUp, SPARE_VETH_PREFIX, type InsideNetwork } from "./netlink.ts";
import type { OffThreadReply, OffThreadRequest } from "./off-thread.ts";

declare const self: Worker;

const libc = dlopen("libc.so.6", {
  unshare: { args: [FFIType.i32], returns: FFIType.i32 },
  setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;
const CLONE_NEWNET = 0x40000000, MS_BIND = 4096;
const log = logger("containers");
/** The process's own network namespace, which this thread returns to after making a container's. */
const homeNetns = openSync("/proc/self/ns/net", "r");

function check(call: string, rc: number): void {
  if (rc < 0) throw new LibcError(call, read.i32(libc.__errno_location() as Pointer, 0));
}

/** Runs fn in a new network namespace; unshare(CLONE_NEWNET) moves only this thread, which goes back home afterwards. */
function inNewNetns<T>(fn: () => T): T {
  check("unshare(CLONE_NEWNET)", libc.unshare(CLONE_NEWNET));
  try {
    return fn();
  } finally {
    check("setns", libc.setns(homeNetns, CLONE_NEWNET));
  }
}

/**
 * A new network namespace, persisted by a bind mount on `path` (an existing file) and set up from
 * inside; back home, the veth's home end goes on the bridge.
 */
function makeNetns(path: string, inside: InsideNetwork, bridge: string): void {
  inNewNetns(() => {
    mount("/proc/thread-self/ns/net", path, "none", MS_BIND);
    configureInside(inside);
  });
  setMasterUp(inside.peer, bridge);
}

/**
 * A network namespace made ahead of need, held only by this thread's descriptors (nothing is mounted
 * and it dies with the process): a veth pair with eth0 and lo up inside, its other end down and
 * unattached in ours under a name of its own, and an rtnetlink socket that stays inside. Taking it
 * costs a bind mount and three netlink requests instead of a namespace and a veth pair made while
 * a container waits (~3 ms of kernel time, and the rtnl lock).
 */
interface Spare {
  ns: number;
  netlink: number;
  eth0: number;
  /** The veth end in our namespace: its name until taken, and its index (which a rename keeps). */
  peer: string;
  peerIndex: number;
}

let spare: Spare | null = null;

function makeSpare(): void {
  if (spare) return;
  const peer = SPARE_VETH_PREFIX + randomBytes(4).toString("hex");
  let ns = -1, netlink = -1;
  try {
    const eth0 = inNewNetns(() => {
      ns = openSync("/proc/thread-self/ns/net", "r");
      netlink = openRtnetlink("spare network namespace");
      return makeVethInside(peer, process.pid);
    });
    // the peer is looked up at home, where it was moved; a failure here must close the fds too
    spare = { ns, netlink, eth0, peer, peerIndex: ifindex(peer) };
  } catch (err) {
    // dropping the namespace takes its veth pair with it
    if (netlink >= 0) closeSync(netlink);
    if (ns >= 0) closeSync(ns);
    throw err;
  }
}

/**
 * The spare becomes the container's namespace, persisted at `path`, addressed, its veth renamed
 * `inside.peer` and put on the bridge. False when that failed: the spare is then undone (its veth
 * deleted by index, whatever its name by then; the namespace unbound and let go) and none is left.
 */
function claimSpare(s: Spare, path: string, inside: InsideNetwork, bridge: string): boolean {
  spare = null;
  let bound = false;
  try {
    mount(`/proc/self/fd/${s.ns}`, path, "none", MS_BIND);
    bound = true;
    addressInside(inside, s.eth0, s.netlink);
    setMasterUp(s.peer, bridge, inside.peer);
    return true;
  } catch (err) {
    log.warn(`cannot take the spare network namespace for ${inside.peer}, making a new one`, err);
    // Unbound first and on its own: a bind left on `path` would keep the namespace (and its veth)
    // alive under the new namespace mounted over it, and detach unmounts only the top one.
    if (bound) {
      try {
        umount(path, MNT_DETACH);
      } catch (e) {
        log.warn(`cannot unbind the spare network namespace from ${path}`, e);
      }
    }
    try {
      deleteLink(s.peerIndex);
    } catch (e) {
      // once unbound and its fds closed below, the namespace ends and the kernel deletes the pair with it
      log.warn(`cannot delete the spare's veth ${s.peer}`, e);
    }
    return false;
  } finally {
    closeSync(s.netlink);
    closeSync(s.ns);
  }
}

self.onmessage = (e: MessageEvent<OffThreadRequest>) => {
  const r = e.data;
  let reply: OffThreadReply = { id: r.id, errno: 0, message: "" };
  try {
    if (r.op === "mount") mount(r.source, r.target, r.fstype, r.flags, r.data);
    else if (r.op === "umount") umount(r.target, r.flags);
    else if (r.op === "netns") {
      if (!spare || !claimSpare(spare, r.path, r.inside, r.bridge)) makeNetns(r.path, r.inside, r.bridge);
    } else if (r.op === "spare-netns") makeSpare();
    else deleteLink(r.ifname);
  } catch (err) {
    const code = err instanceof LibcError || err instanceof NetlinkError ? err.errno : -1;
    reply = { id: r.id, errno: code, message: (err as Error).message };
  }
  self.postMessage(reply);
};
