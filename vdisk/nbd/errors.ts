// Typed errors of the NBD layer. An export throws NbdError to choose the errno the client sees;
// anything else it throws is reported as EIO (or ENOSPC when the store is full).
import { EIO, ENOSPC } from "./protocol.ts";

export class NbdError extends Error {
  constructor(
    readonly errno: number,
    message: string,
    readonly context: { export?: string; offset?: number; length?: number } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "NbdError";
  }
}

/** A broken handshake or request stream: the connection is dropped (a "hard disconnect"). */
export class NbdProtocolError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "NbdProtocolError";
  }
}

export function errnoOf(err: unknown): number {
  if (err instanceof NbdError) return err.errno;
  if ((err as { name?: string; code?: string })?.name === "StoreError" && (err as { code?: string }).code === "full") return ENOSPC;
  return EIO;
}
