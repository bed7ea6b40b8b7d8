// The worker body of off-thread.ts: runs mount(2), umount2(2), network namespace creation and veth
// deletion on this thread, one request at a time, and answers each with its id and the errno it failed with
// (0 on success).
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { openSync } from "node:fs";
import { LibcError, mount, umount } from "../libc.ts";
import { configureInside, deleteLink, NetlinkError, setMasterUp } from "./netlink.ts";
import type { OffThreadReply, OffThreadRequest } from "./off-thread.ts";

declare const self: Worker;

const libc = dlopen("libc.so.6", {
  unshare: { args: [FFIType.i32], returns: FFIType.i32 },
  setns: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
  __errno_location: { args: [], returns: FFIType.ptr },
}).symbols;
const CLONE_NEWNET = 0x40000000, MS_BIND = 4096;
/** The process's own network namespace, which this thread returns to after making a container's. */
const homeNetns = openSync("/proc/self/ns/net", "r");

function check(call: string, rc: number): void {
  if (rc < 0) throw new LibcError(call, read.i32(libc.__errno_location() as Pointer, 0));
}

/**
 * A new network namespace, persisted by a bind mount on `path` (an existing file) and set up from
 * inside; unshare(CLONE_NEWNET) moves only this thread, which goes back home afterwards and puts
 * the veth's home end on the bridge.
 */
function makeNetns(path: string, inside: Parameters<typeof configureInside>[0], bridge: string): void {
  check("unshare(CLONE_NEWNET)", libc.unshare(CLONE_NEWNET));
  try {
    mount("/proc/thread-self/ns/net", path, "none", MS_BIND);
    configureInside(inside);
  } finally {
    check("setns", libc.setns(homeNetns, CLONE_NEWNET));
  }
  setMasterUp(inside.peer, bridge);
}

self.onmessage = (e: MessageEvent<OffThreadRequest>) => {
  const r = e.data;
  let reply: OffThreadReply = { id: r.id, errno: 0, message: "" };
  try {
    if (r.op === "mount") mount(r.source, r.target, r.fstype, r.flags, r.data);
    else if (r.op === "umount") umount(r.target, r.flags);
    else if (r.op === "netns") makeNetns(r.path, r.inside, r.bridge);
    else deleteLink(r.ifname);
  } catch (err) {
    const code = err instanceof LibcError || err instanceof NetlinkError ? err.errno : -1;
    reply = { id: r.id, errno: code, message: (err as Error).message };
  }
  self.postMessage(reply);
};
