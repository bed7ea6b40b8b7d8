// Deadlines, cancellation and retries shared by every backend.
// An operation gets one deadline (timeoutMs) that covers all of its attempts; a caller's AbortSignal
// ends it early. The attempt is raced against the deadline, so a backend that ignores the signal
// (a socket that accepted and never answers) still cannot hold the caller past it.
import { StoreError, type OpOptions } from "./types.ts";

export interface OpPolicy {
  /** Deadline for the whole operation, retries included. */
  timeoutMs: number;
  /** Extra attempts after a transient failure ("unavailable"), while the deadline allows. */
  retries: number;
  /** First pause between attempts; doubles each time. */
  retryDelayMs: number;
}

export const defaultPolicy: OpPolicy = { timeoutMs: 10_000, retries: 2, retryDelayMs: 50 };

/**
 * "unavailable" that a retry cannot fix yet: the backend failed to connect moments ago and is
 * resting (see ZdbBackend), so callers move on to another backend at once instead of waiting.
 */
export class BackendResting extends StoreError {
  constructor(message: string, context: { backend?: string; id?: string }) {
    super("unavailable", message, context);
  }
}

export interface OpContext {
  backend: string;
  id?: string;
  op: string;
}

/** Reads a policy override from a URL query or config map; unknown keys are left to the caller. */
export function policyFrom(params: URLSearchParams | undefined, base: OpPolicy = defaultPolicy): OpPolicy {
  const num = (name: string, fallback: number): number => {
    const raw = params?.get(name);
    if (raw === null || raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isFinite(n) || n < 0) throw new StoreError("bad-url", `${name} must be a non-negative number, got "${raw}"`);
    return n;
  };
  return {
    timeoutMs: num("timeout", base.timeoutMs),
    retries: num("retries", base.retries),
    retryDelayMs: num("retry_delay", base.retryDelayMs),
  };
}

function abortError(ctx: OpContext, signal: AbortSignal, timedOut: boolean, timeoutMs: number): StoreError {
  if (timedOut) return new StoreError("timeout", `${ctx.op} timed out after ${timeoutMs} ms`, ctx);
  return new StoreError("aborted", `${ctx.op} aborted`, ctx, { cause: signal.reason });
}

/** Runs `attempt` under the policy's deadline, the caller's signal and the retry rule. */
export async function runOp<T>(
  ctx: OpContext,
  policy: OpPolicy,
  opts: OpOptions | undefined,
  attempt: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const timeoutMs = opts?.timeoutMs ?? policy.timeoutMs;
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort(new StoreError("timeout", `${ctx.op} timed out after ${timeoutMs} ms`, ctx));
  }, timeoutMs);
  const outer = opts?.signal;
  const onOuterAbort = () => controller.abort(outer?.reason);
  if (outer?.aborted) onOuterAbort();
  else outer?.addEventListener("abort", onOuterAbort, { once: true });

  const signal = controller.signal;
  let rejectAborted!: (e: unknown) => void;
  const aborted = new Promise<never>((_, reject) => (rejectAborted = reject));
  aborted.catch(() => {});
  const onAbort = () => rejectAborted(abortError(ctx, signal, timedOut, timeoutMs));
  if (signal.aborted) onAbort();
  else signal.addEventListener("abort", onAbort, { once: true });

  try {
    for (let n = 0; ; n++) {
      try {
        return await Promise.race([attempt(signal), aborted]);
      } catch (err) {
        if (signal.aborted) throw abortError(ctx, signal, timedOut, timeoutMs);
        const e = asStoreError(err, ctx);
        if (e.code !== "unavailable" || err instanceof BackendResting || n >= policy.retries) throw e;
        await Promise.race([Bun.sleep(policy.retryDelayMs * 2 ** n), aborted]);
      }
    }
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onOuterAbort);
    signal.removeEventListener("abort", onAbort);
  }
}

/** Maps any failure to a StoreError with context; system errors say what the OS said. */
export function asStoreError(err: unknown, ctx: OpContext): StoreError {
  if (err instanceof StoreError) {
    if (err.context.backend) return err;
    return new StoreError(err.code, err.message, { ...ctx, ...err.context }, { cause: err.cause });
  }
  const sys = err as NodeJS.ErrnoException;
  const where = `${ctx.op} on ${ctx.backend}${ctx.id ? ` (block ${ctx.id})` : ""}`;
  if (sys?.code === "ENOSPC" || sys?.code === "EDQUOT") return new StoreError("full", `${where}: no space left`, ctx, { cause: err });
  if (sys?.code === "EROFS") return new StoreError("read-only", `${where}: read-only filesystem`, ctx, { cause: err });
  const message = err instanceof Error ? err.message : String(err);
  return new StoreError("unavailable", `${where}: ${message}`, ctx, { cause: err });
}
