// Typed errors of the container manager. `code` maps onto an RPC error code (see methods.ts);
// `context` names the container and the step that failed so a caller can tell what went wrong where.
export type ContainerErrorCode =
  | "bad-params" // the spec is invalid (name, limits, ports, mounts)
  | "not-found" // no such container, or its flist does not exist
  | "conflict" // the name, an address or a port is taken, or the container is in the wrong state
  | "forbidden" // privileged or exec without an admin key
  | "bad-flist" // the flist could not be opened or its signature does not verify
  | "unsupported" // asked for something this node cannot do (e.g. a vdisk mount without NBD)
  | "system"; // a tool (crun, ip, nft, mount) or the kernel refused

export class ContainerError extends Error {
  constructor(
    readonly code: ContainerErrorCode,
    message: string,
    readonly context: { container?: string; step?: string } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "ContainerError";
  }
}
