// Errors a zdb command can end with. The message is sent to the client as the RESP error line,
// so it follows 0-db's wording where 0-db has one.

export type ZdbErrorCode =
  | "arguments" // wrong arity or malformed argument
  | "unknown-command"
  | "limit" // key, value or argument count over the 0-db limits
  | "not-found"
  | "denied" // authentication or permission
  | "read-only"
  | "full" // namespace maxsize or the disk itself
  | "exists"
  | "corrupt"
  | "io"
  | "no-more-data";

export class ZdbError extends Error {
  constructor(
    readonly code: ZdbErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ZdbError";
  }
}
