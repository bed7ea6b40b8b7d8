// Typed errors of the vdisk model.
export type VdiskErrorCode =
  | "not-found"
  | "exists"
  | "bad-name"
  | "bad-size"
  | "bad-config"
  | "busy" // the operation conflicts with a vdisk being served
  | "corrupt" // a record or map in the catalog or store does not parse
  | "missing-block" // the map names a block the store does not have
  | "catalog" // the catalog could not be read or written
  | "unflushed"; // closing could not make every write durable

export class VdiskError extends Error {
  constructor(
    readonly code: VdiskErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "VdiskError";
  }
}
