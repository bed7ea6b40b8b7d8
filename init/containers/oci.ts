// The OCI runtime config.json (runtime-spec 1.0) for one container. The rootfs is the overlay the
// manager mounted in the bundle; crun sets up namespaces, mounts, capabilities, seccomp and cgroups.
import type { ContainerSpec } from "./spec.ts";

/** Docker's default capability set: enough for ordinary daemons, without CAP_SYS_ADMIN and friends. */
export const DEFAULT_CAPS = [
  "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID",
  "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
];

const ALL_CAPS = [
  ...DEFAULT_CAPS, "CAP_DAC_READ_SEARCH", "CAP_LINUX_IMMUTABLE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_IPC_LOCK", "CAP_IPC_OWNER",
  "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_LEASE", "CAP_AUDIT_CONTROL", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN", "CAP_SYSLOG",
  "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
];

/**
 * The default seccomp profile: everything allowed except syscalls that reach past the container
 * (kernel modules, kexec, reboot, clocks, swap, keyrings, bpf, perf, new mount API, namespace
 * re-entry). Narrower than Docker's allow-list, but it does not break unusual workloads.
 */
const DENIED_SYSCALLS = [
  "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module", "finit_module", "fsconfig", "fsmount",
  "fsopen", "fspick", "get_kernel_syms", "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
  "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree",
  "perf_event_open", "pivot_root", "process_vm_readv", "process_vm_writev", "quotactl", "reboot", "request_key", "setns",
  "settimeofday", "swapoff", "swapon", "syslog", "umount2", "unshare", "uselib", "userfaultfd", "vhangup", "adjtimex",
];

/** The files of /etc that every container gets bind-mounted from its bundle (read-only). */
export const ETC_MOUNTS = ["hostname", "hosts", "resolv.conf"] as const;
/** The directories of the root that every container's mounts are on or in. */
export const TOP_MOUNT_POINTS = ["proc", "dev", "sys", "tmp", "etc"] as const;

export interface OciContext {
  /** Bind-mounted over /etc/hostname, /etc/hosts and /etc/resolv.conf. */
  etcFiles: { hostname: string; hosts: string; resolv: string };
  /** Persistent network namespace file for a private network; null for host networking. */
  netnsPath: string | null;
  /** Host paths bound for extra flist (read-only) and vdisk (read-write) mounts, in spec.mounts order (undefined for others). */
  flistMountSources: (string | undefined)[];
  /** cgroup path relative to the cgroup2 root, or null when cgroups are not managed. */
  cgroupsPath: string | null;
  /** Current RLIMIT_NOFILE hard limit of init (a container cannot be given more without CAP_SYS_RESOURCE). */
  nofileHard: number;
}

function unifiedLimits(spec: ContainerSpec): Record<string, string> {
  const l = spec.limits;
  const u: Record<string, string> = {};
  if (l.memoryBytes !== undefined) {
    u["memory.max"] = String(l.memoryBytes);
    u["memory.swap.max"] = "0";
  }
  if (l.cpus !== undefined) u["cpu.max"] = `${Math.round(l.cpus * 100_000)} 100000`;
  if (l.cpuWeight !== undefined) u["cpu.weight"] = String(l.cpuWeight);
  if (l.pids !== undefined) u["pids.max"] = String(l.pids);
  return u;
}

export function ociConfig(spec: ContainerSpec, ctx: OciContext): Record<string, unknown> {
  const caps = spec.privileged ? ALL_CAPS : DEFAULT_CAPS;
  const env = { PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", HOSTNAME: spec.hostname, HOME: "/root", ...spec.env };
  const nofile = Math.min(65536, ctx.nofileHard);
  const namespaces: { type: string; path?: string }[] = [{ type: "pid" }, { type: "mount" }, { type: "uts" }, { type: "ipc" }, { type: "cgroup" }];
  if (ctx.netnsPath) namespaces.push({ type: "network", path: ctx.netnsPath });
  const bind = (source: string, destination: string, ro: boolean) => ({ destination, type: "bind", source, options: ["rbind", ro ? "ro" : "rw", "nosuid", "nodev"] });
  const mounts: Record<string, unknown>[] = [
    { destination: "/proc", type: "proc", source: "proc" },
    { destination: "/dev", type: "tmpfs", source: "tmpfs", options: ["nosuid", "strictatime", "mode=755", "size=65536k"] },
    { destination: "/dev/pts", type: "devpts", source: "devpts", options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
    { destination: "/dev/shm", type: "tmpfs", source: "shm", options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", spec.privileged ? "rw" : "ro"] },
    { destination: "/sys/fs/cgroup", type: "cgroup", source: "cgroup", options: ["nosuid", "noexec", "nodev", "relatime", spec.privileged ? "rw" : "ro"] },
    { destination: "/tmp", type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777"] },
    bind(ctx.etcFiles.hostname, "/etc/hostname", true),
    bind(ctx.etcFiles.hosts, "/etc/hosts", true),
    bind(ctx.etcFiles.resolv, "/etc/resolv.conf", true),
  ];
  spec.mounts.forEach((m, i) => {
    if (m.type === "tmpfs") mounts.push({ destination: m.target, type: "tmpfs", source: "tmpfs", options: ["nosuid", "nodev", "mode=1777", ...(m.sizeBytes ? [`size=${m.sizeBytes}`] : [])] });
    else if (m.type === "flist") mounts.push(bind(ctx.flistMountSources[i]!, m.target, true));
    else mounts.push(bind(ctx.flistMountSources[i]!, m.target, false));
  });
  const linux: Record<string, unknown> = {
    namespaces,
    maskedPaths: spec.privileged ? [] : ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware"],
    readonlyPaths: spec.privileged ? [] : ["/proc/asound", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
  };
  if (!spec.privileged) {
    linux.seccomp = {
      defaultAction: "SCMP_ACT_ALLOW",
      architectures: ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
      syscalls: [{ names: DENIED_SYSCALLS, action: "SCMP_ACT_ERRNO", errnoRet: 1 }],
    };
  }
  if (ctx.cgroupsPath) {
    linux.cgroupsPath = ctx.cgroupsPath;
    linux.resources = { unified: unifiedLimits(spec) };
  }
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: false,
      user: { uid: spec.user.uid, gid: spec.user.gid },
      args: spec.args,
      env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      cwd: spec.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps, ...(spec.user.uid === 0 ? {} : { ambient: [] }) },
      rlimits: [{ type: "RLIMIT_NOFILE", hard: nofile, soft: Math.min(1024, nofile) }],
      noNewPrivileges: !spec.privileged,
    },
    root: { path: "rootfs", readonly: false },
    hostname: spec.hostname,
    mounts,
    linux,
  };
}
