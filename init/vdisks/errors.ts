// Typed errors of node-side vdisk attachment. `code` is also the RPC error code (see
// init/methods/vdisk.ts); `context` names the vdisk, the device and the step that failed.
export type VdiskErrorCode =
  | "bad-params" // a malformed URL, name or mountpoint
  | "not-found" // no vdisk attached under that name
  | "conflict" // the name is taken, the vdisk is in use, or it holds data that is not the asked filesystem
  | "unsupported" // this node has no kernel NBD client (e.g. the dev host)
  | "system"; // nbd-client, mkfs or mount refused

export class VdiskError extends Error {
  constructor(
    readonly code: VdiskErrorCode,
    message: string,
    readonly context: { vdisk?: string; device?: string; step?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "VdiskError";
  }
}
