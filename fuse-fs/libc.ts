// The libc calls fuse-fs needs that Bun has no API for (mount(2), umount2, ioctl, mknod), via bun:ffi.
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";

const lib = dlopen("libc.so.6", {
  mount: { args: [FFIType.ptr, FFIType.ptr, FFIType.ptr, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  umount2: { args: [FFIType.ptr, FFIType.i32], returns: FFIType.i32 },
  ioctl: { args: [FFIType.i32, FFIType.u64, FFIType.ptr], returns: FFIType.i32 },
  mknod: { args: [FFIType.ptr, FFIType.u32, FFIType.u64], returns: FFIType.i32 },
  strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  __errno_location: { args: [], returns: FFIType.ptr },
});
const c = lib.symbols;

export class LibcError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    detail: string,
  ) {
    super(`${call} ${detail}: ${String(c.strerror(errno))} (errno ${errno})`);
    this.name = "LibcError";
  }
}

function errno(): number {
  return read.i32(c.__errno_location() as Pointer, 0);
}

function cstr(s: string): Buffer {
  return Buffer.from(s + "\0");
}

function check(call: string, rc: number, detail: string): void {
  if (rc < 0) throw new LibcError(call, errno(), detail);
}

export const MS_RDONLY = 1;
export const MNT_DETACH = 2;

export function mount(source: string, target: string, fstype: string, flags: number, data: string): void {
  const s = cstr(source), t = cstr(target), f = cstr(fstype), d = cstr(data);
  check("mount", c.mount(ptr(s), ptr(t), ptr(f), flags, ptr(d)), `${fstype} on ${target}`);
}

export function umount2(target: string, flags: number): void {
  const t = cstr(target);
  check("umount2", c.umount2(ptr(t), flags), target);
}

/** FUSE_DEV_IOC_CLONE = _IOR(229, 0, uint32_t): attaches fd to the FUSE connection of `sessionFd`. */
const FUSE_DEV_IOC_CLONE = 0x8004e500;
export function fuseClone(fd: number, sessionFd: number): void {
  const arg = new Uint32Array([sessionFd]);
  check("ioctl", c.ioctl(fd, FUSE_DEV_IOC_CLONE, ptr(arg)), "FUSE_DEV_IOC_CLONE");
}

export function mknod(path: string, mode: number, dev: number): void {
  const p = cstr(path);
  check("mknod", c.mknod(ptr(p), mode, dev), path);
}
