// The worker body of off-thread.ts: runs mount(2) and umount2(2) on this thread, one request at a
// time, and answers each with its id and the errno it failed with (0 on success).
import { LibcError, mount, umount } from "../libc.ts";
import type { MountReply, MountRequest } from "./off-thread.ts";

declare const self: Worker;

self.onmessage = (e: MessageEvent<MountRequest>) => {
  const r = e.data;
  let reply: MountReply = { id: r.id, errno: 0, message: "" };
  try {
    if (r.op === "mount") mount(r.source, r.target, r.fstype, r.flags, r.data);
    else umount(r.target, r.flags);
  } catch (err) {
    reply = { id: r.id, errno: err instanceof LibcError ? err.errno : -1, message: (err as Error).message };
  }
  self.postMessage(reply);
};
