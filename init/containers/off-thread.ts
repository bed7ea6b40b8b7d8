// Kernel calls a container's create and delete need off init's main thread, on one worker thread
// started on first use (a Bun worker costs about 9 MB) that never keeps the process alive:
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
  | { id: number; op: "dellink"; ifname: string };

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

let worker: Worker | null = null;
let nextId = 1;
const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

function thread(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL("./mount-thread.ts", import.meta.url).href);
  w.unref();
  w.onmessage = (e: MessageEvent<OffThreadReply>) => {
    const pending = waiting.get(e.data.id);
    if (!pending) return;
    waiting.delete(e.data.id);
    if (e.data.errno === 0) pending.resolve();
    else pending.reject(new OffThreadError(e.data.errno, e.data.message));
  };
  w.onerror = (e) => {
    // the thread is gone: fail what it had, start a new one on the next call
    worker = null;
    for (const p of waiting.values()) p.reject(new OffThreadError(-1, `mount thread failed: ${e.message}`));
    waiting.clear();
  };
  worker = w;
  return w;
}

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

function call(req: WithoutId<OffThreadRequest>): Promise<void> {
  const id = nextId++;
  return new Promise<void>((resolve, reject) => {
    waiting.set(id, { resolve, reject });
    thread().postMessage({ ...req, id });
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

/** `ip link del IF`, done when there is no interface by that name. */
export function deleteLinkOffThread(ifname: string): Promise<void> {
  return call({ op: "dellink", ifname });
}
