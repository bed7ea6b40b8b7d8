// Error codes every RPC error reply carries; clients switch on `code`, people read `message`.
export type RpcErrorCode =
  | "frame-too-large" // framing errors: the connection is closed after the reply
  | "bad-frame" // a zero length
  | "malformed-cbor"
  | "malformed-envelope"
  | "bad-request" // body fields missing or of the wrong type
  | "unknown-key"
  | "bad-signature"
  | "stale-timestamp"
  | "replay"
  | "duplicate-id"
  | "unknown-method"
  | "forbidden"
  | "bad-params"
  | "not-found"
  | "conflict"
  | "unavailable"
  | "cancelled"
  | "internal";

export class RpcError extends Error {
  constructor(readonly code: RpcErrorCode | string, message: string, readonly data?: unknown) {
    super(message);
    this.name = "RpcError";
  }
}
