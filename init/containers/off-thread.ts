// Kernel calls a container's create and delete need off init's main thread, on worker threads
// started on first use that never keep the process alive, one for mounts and one for the network
// (each a Bun worker of a few MB), so a slow veth deletion or a namespace waiting for the kernel's
// rtnl lock never holds up an overlay mount of another container, nor the reverse:
//  - mount(2)/umount2(2) of mounts whose path lookup reaches a FUSE mount this process serves (the
//    overlay over an flist): the kernel sends FUSE requests (GETATTR, STATFS, GETXATTR) while inside
//    the call, and this process answers them on its main thread;
//  - a container's network namespace, made and configured from inside by a thread that
//    unshare(CLONE_NEWNET)s itself, which the main thread must never do;
//  - deleting a container's veth, which returns only after the kernel waited for RCU grace periods
//    (10-40 ms): on the main thread it would stall every FUSE request and RPC meanwhile.
// Each replaces a process (mount(8), umount(8), `unshare ip -batch`, `ip link del`) that costs 2-8 ms to start.
import type { InsideNetwork } from "./netlink.ts";

export type OffThreadRequest =
  | { id: number; op: "mount"; source: string; target: string; fstype: string; flags: number; data: string }
  | { id: number; op: "umount"; target: string; flags: number }
  | { id: number; op: "netns"; path: string; inside: InsideNetwork; bridge: string }
  | { id: number; op: "dellink"; ifname: string }
  | { id: number; op: "spare-netns" };

export interface OffThreadReply {
  id: number;
  /** 0 on success, else the errno of the failed call (-1 when it failed before the call). */
  errno: number;
  message: string;
}

/** A call refused by the kernel, with its errno. */
export class OffThreadError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
    this.name = "OffThreadError";
  }
}

/** Which thread a request runs on. */
type Lane = "mounts" | "network";

interface Thread {
  worker: Worker;
  waiting: Map<number, { resolve: () => void; reject: (e: Error) => void }>;
}

const threads = new Map<Lane, Thread>();
let nextId = 1;

function thread(lane: Lane): Thread {
  const running = threads.get(lane);
  if (running) return running;
  const t: Thread = { worker: new Worker(new URL("./mount-thread.ts", import.meta.url).href), waiting: new Map() };
  t.worker.unref();
  t.worker.onmessage = (e: MessageEvent<OffThreadReply>) => {
    const pending = t.waiting.get(e.data.id);
    if (!pending) return;
    t.waiting.delete(e.data.id);
    if (e.data.errno === 0) pending.resolve();
    else pending.reject(new OffThreadError(e.data.errno, e.data.message));
  };
  t.worker.onerror = (e) => {
    // the thread is gone: fail what it had, start a new one on the next call
    if (threads.get(lane) === t) threads.delete(lane);
    for (const p of t.waiting.values()) p.reject(new OffThreadError(-1, `${lane} thread failed: ${e.message}`));
    t.waiting.clear();
  };
  threads.set(lane, t);
  return t;
}

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

function call(req: WithoutId<OffThreadRequest>): Promise<void> {
  const id = nextId++;
  const t = thread(req.op === "mount" || req.op === "umount" ? "mounts" : "network");
  return new Promise<void>((resolve, reject) => {
    t.waiting.set(id, { resolve, reject });
    t.worker.postMessage({ ...req, id });
  });
}

export function mountOffThread(source: string, target: string, fstype: string, flags: number, data: string): Promise<void> {
  return call({ op: "mount", source, target, fstype, flags, data });
}

export function umountOffThread(target: string, flags = 0): Promise<void> {
  return call({ op: "umount", target, flags });
}

/**
 * A new network namespace persisted at path (an existing file), with the container's side of its
 * veth set up and the other side (left in this process's namespace) enslaved to bridge and up.
 */
export function makeNetnsOffThread(path: string, inside: InsideNetwork, bridge: string): Promise<void> {
  return call({ op: "netns", path, inside, bridge });
}

/**
 * Has the network thread keep a spare namespace (if it has none), which the next makeNetnsOffThread
 * takes instead of making one; a failed claim falls back to making one.
 */
export function makeSpareNetnsOffThread(): Promise<void> {
  return call({ op: "spare-netns" });
}

/** `ip link del IF`, done when there is no interface by that name. */
export function deleteLinkOffThread(ifname: string): Promise<void> {
  return call({ op: "dellink", ifname });
}
