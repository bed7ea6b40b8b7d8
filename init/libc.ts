// The few libc calls init needs that Bun has no API for, through bun:ffi on glibc's libc.so.6.
// Every wrapper throws a LibcError carrying errno, so callers can tell EEXIST from EPERM.
import { dlopen, FFIType, read, type Pointer } from "bun:ffi";
import { arch } from "node:os";

const i32 = FFIType.i32, u32 = FFIType.u32, i64 = FFIType.i64, u64 = FFIType.u64, ptr = FFIType.ptr, cstring = FFIType.cstring, voidType = FFIType.void;

const lib = dlopen("libc.so.6", {
  getpid: { args: [], returns: i32 },
  prctl: { args: [i32, u64, u64, u64, u64], returns: i32 },
  waitpid: { args: [i32, ptr, i32], returns: i32 },
  mount: { args: [ptr, ptr, ptr, u64, ptr], returns: i32 },
  umount2: { args: [ptr, i32], returns: i32 },
  mknod: { args: [ptr, u32, u64], returns: i32 },
  reboot: { args: [i32], returns: i32 },
  sync: { args: [], returns: voidType },
  sethostname: { args: [ptr, u64], returns: i32 },
  prlimit: { args: [i32, i32, ptr, ptr], returns: i32 },
  syscall: { args: [i64, i64, ptr, i32], returns: i64 },
  init_module: { args: [ptr, u64, ptr], returns: i32 },
  clock_settime: { args: [i32, ptr], returns: i32 },
  socket: { args: [i32, i32, i32], returns: i32 },
  ioctl: { args: [i32, u64, ptr], returns: i32 },
  close: { args: [i32], returns: i32 },
  strerror: { args: [i32], returns: cstring },
  __errno_location: { args: [], returns: ptr },
});
const c = lib.symbols;

export class LibcError extends Error {
  constructor(readonly call: string, readonly errno: number, detail = "") {
    super(`${call}${detail ? ` ${detail}` : ""}: ${String(c.strerror(errno))} (errno ${errno})`);
    this.name = "LibcError";
  }
}

export const ECHILD = 10, EEXIST = 17, ENODEV = 19;

function errno(): number {
  return read.i32(c.__errno_location() as Pointer, 0);
}

function cstr(s: string): Buffer {
  return Buffer.from(s + "\0");
}

function check(call: string, rc: number | bigint, detail = ""): number {
  if (Number(rc) < 0) throw new LibcError(call, errno(), detail);
  return Number(rc);
}

export function getpid(): number {
  return c.getpid();
}

const PR_SET_CHILD_SUBREAPER = 36;
export function setChildSubreaper(): void {
  check("prctl(PR_SET_CHILD_SUBREAPER)", c.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0));
}

const WNOHANG = 1;
/** waitpid(pid, WNOHANG): returns the reaped pid and its raw wait status, or null when nothing was reaped. */
export function reapPid(pid: number): { pid: number; status: number } | null {
  const status = new Int32Array(1);
  const rc = c.waitpid(pid, status, WNOHANG);
  if (rc < 0) {
    const e = errno();
    if (e === ECHILD) return null;
    throw new LibcError("waitpid", e, String(pid));
  }
  return rc === 0 ? null : { pid: rc, status: status[0] };
}

export const MS_NOSUID = 2, MS_NODEV = 4, MS_NOEXEC = 8, MS_RELATIME = 1 << 21;
export function mount(source: string, target: string, fstype: string, flags: number, data = ""): void {
  check("mount", c.mount(cstr(source), cstr(target), cstr(fstype), flags, data ? cstr(data) : null), `${fstype} on ${target}`);
}

/** dev_t as glibc's makedev() builds it. */
export function mknod(path: string, mode: number, major: number, minor: number): void {
  const dev = (BigInt(major & 0xfff) << 8n) | BigInt(minor & 0xff) | (BigInt(minor & ~0xff) << 12n) | (BigInt(major & ~0xfff) << 32n);
  check("mknod", c.mknod(cstr(path), mode, dev), path);
}

export const MNT_DETACH = 2;
export function umount(target: string, flags = 0): void {
  check("umount2", c.umount2(cstr(target), flags), target);
}

export const RB_AUTOBOOT = 0x01234567, RB_POWER_OFF = 0x4321fedc;
export function reboot(cmd: number): void {
  check("reboot", c.reboot(cmd | 0));
}

export function sync(): void {
  c.sync();
}

export function sethostname(name: string): void {
  const b = Buffer.from(name);
  check("sethostname", c.sethostname(b, b.length), name);
}

export const RLIMIT_NOFILE = 7;
/** Sets soft and hard limit of a resource for this process (and so for everything it spawns). */
export function setRlimit(resource: number, soft: bigint, hard: bigint): void {
  const lim = new BigUint64Array([soft, hard]);
  check("prlimit", c.prlimit(0, resource, lim, null), `resource ${resource}`);
}

export function getRlimit(resource: number): { soft: bigint; hard: bigint } {
  const lim = new BigUint64Array(2);
  check("prlimit", c.prlimit(0, resource, null, lim), `resource ${resource}`);
  return { soft: lim[0], hard: lim[1] };
}

const SYS_finit_module = arch() === "arm64" ? 273 : 313;
/** finit_module(2): loads the module in an open file; params is the module's option string. */
export function finitModule(fd: number, params: string, flags: number, name: string): void {
  check("finit_module", c.syscall(SYS_finit_module, fd, cstr(params), flags), name);
}

/** init_module(2): loads a module from memory (one decompressed by the caller). */
export function initModule(image: Uint8Array, params: string, name: string): void {
  check("init_module", c.init_module(image, image.length, cstr(params)), name);
}

const CLOCK_REALTIME = 0;
export function setRealtimeClock(ms: number): void {
  const ts = new BigInt64Array([BigInt(Math.floor(ms / 1000)), BigInt(Math.floor((ms % 1000) * 1e6))]);
  check("clock_settime", c.clock_settime(CLOCK_REALTIME, ts));
}

const AF_INET = 2, SOCK_DGRAM = 2, SIOCGIFFLAGS = 0x8913, SIOCSIFFLAGS = 0x8914, IFF_UP = 1;
/** Sets IFF_UP on an interface through the SIOCSIFFLAGS ioctl (struct ifreq: name[16], short flags). */
export function linkUp(ifname: string): void {
  const fd = check("socket", c.socket(AF_INET, SOCK_DGRAM, 0));
  try {
    const ifr = Buffer.alloc(40);
    ifr.write(ifname.slice(0, 15), 0, "latin1");
    check("ioctl(SIOCGIFFLAGS)", c.ioctl(fd, SIOCGIFFLAGS, ifr), ifname);
    ifr.writeUInt16LE(ifr.readUInt16LE(16) | IFF_UP, 16);
    check("ioctl(SIOCSIFFLAGS)", c.ioctl(fd, SIOCSIFFLAGS, ifr), ifname);
  } finally {
    c.close(fd);
  }
}
