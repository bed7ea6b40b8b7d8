// Typed errors of fuse-fs: every failure names what it was doing and on which path or flist.

export type FlistErrorCode =
  | "bad-flist" // the file is not an flist, or its rows break the format (see FORMAT.md)
  | "not-found" // a path, tag or inode the caller named is not in the flist
  | "bad-signature" // the signature tag is missing, malformed or does not verify
  | "io" // reading the source tree or writing the target failed
  | "store" // the block store failed (wraps a StoreError)
  | "mount" // mount(2), /dev/fuse or the mount point refused
  | "usage"; // the command line or API call was given something it cannot use

export class FlistError extends Error {
  constructor(
    readonly code: FlistErrorCode,
    message: string,
    readonly context: { flist?: string; path?: string; ino?: number } = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "FlistError";
  }
}
