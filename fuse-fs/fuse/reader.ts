// A worker thread that blocks in read(2) on one /dev/fuse fd and hands each request to the main thread.
// Blocking reads need a thread of their own; giving each reader its own fd (FUSE_DEV_IOC_CLONE) lets
// several of them wait at once, and the reply must go back on the fd the request came from.
import { readSync } from "node:fs";

declare const self: Worker;

/** Requests are small on a read-only mount (no WRITE data); the kernel wants >= max_write + 4 KiB. */
const BUFFER_SIZE = 132 * 1024;

self.onmessage = (e: MessageEvent<{ fd: number }>) => {
  const fd = e.data.fd;
  const buf = Buffer.allocUnsafe(BUFFER_SIZE);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      // EINTR: a signal; ENOENT: the request was interrupted before we read it. Both: read again.
      if (code === "EINTR" || code === "ENOENT" || code === "EAGAIN") continue;
      // ENODEV: unmounted (or the connection aborted). Anything else also ends this reader.
      self.postMessage({ closed: code ?? String(err) });
      return;
    }
    const req = new Uint8Array(n);
    req.set(buf.subarray(0, n));
    self.postMessage(req, [req.buffer]);
  }
};
