// The shared body of service.logs and container.logs: the tail of a log ring, then (with follow)
// every new line until the caller cancels or the ring stops being the current one for that name.
import type { MethodContext } from "../rpc/registry.ts";
import type { LogLine, LogRing } from "../supervisor/log-ring.ts";

export async function streamLogs(
  ring: LogRing,
  p: { lines?: number; follow?: boolean },
  ctx: MethodContext,
  /** False once the service or container was forgotten or recreated (its ring replaced). */
  stillCurrent: () => boolean,
): Promise<LogLine[]> {
  const tail = ring.tail(p.lines);
  if (!p.follow) return tail;
  for (const l of tail) ctx.emit(l);
  await new Promise<void>((resolve) => {
    const unsubscribe = ring.subscribe((l: LogLine) => ctx.emit(l));
    const finish = () => {
      unsubscribe();
      clearInterval(gone);
      resolve();
    };
    ctx.signal.addEventListener("abort", finish, { once: true });
    const gone = setInterval(() => {
      if (!stillCurrent()) finish();
    }, 500);
  });
  return [];
}
