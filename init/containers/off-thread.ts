// mount(2) and umount2(2) of mounts whose path lookup reaches a FUSE mount this process serves (the
// overlay over an flist). The kernel sends FUSE requests (GETATTR, STATFS, GETXATTR) while inside
// the call, and this process answers them on its main thread, so the call must block another
// thread. One worker thread does it, started on first use (a Bun worker costs about 9 MB) and never
// keeping the process alive; it replaces a mount(8)/umount(8) process per call (2-4 ms each).
export type MountRequest =
  | { id: number; op: "mount"; source: string; target: string; fstype: string; flags: number; data: string }
  | { id: number; op: "umount"; target: string; flags: number };

export interface MountReply {
  id: number;
  /** 0 on success, else the errno of the failed call (-1 when it failed before the call). */
  errno: number;
  message: string;
}

/** A mount or umount refused by the kernel, with its errno. */
export class OffThreadMountError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
    this.name = "OffThreadMountError";
  }
}

let worker: Worker | null = null;
let nextId = 1;
const waiting = new Map<number, { resolve: () => void; reject: (e: Error) => void }>();

function thread(): Worker {
  if (worker) return worker;
  const w = new Worker(new URL("./mount-thread.ts", import.meta.url).href);
  w.unref();
  w.onmessage = (e: MessageEvent<MountReply>) => {
    const pending = waiting.get(e.data.id);
    if (!pending) return;
    waiting.delete(e.data.id);
    if (e.data.errno === 0) pending.resolve();
    else pending.reject(new OffThreadMountError(e.data.errno, e.data.message));
  };
  w.onerror = (e) => {
    // the thread is gone: fail what it had, start a new one on the next call
    worker = null;
    for (const p of waiting.values()) p.reject(new OffThreadMountError(-1, `mount thread failed: ${e.message}`));
    waiting.clear();
  };
  worker = w;
  return w;
}

type WithoutId<T> = T extends unknown ? Omit<T, "id"> : never;

function call(req: WithoutId<MountRequest>): Promise<void> {
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
