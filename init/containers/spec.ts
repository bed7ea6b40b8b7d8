// What a container is, as the caller asks for it and as it is persisted under the state dir.
// validateSpec checks everything that can be checked before anything is created, so a bad spec
// fails with a clear error and leaves nothing behind.
import { availableParallelism, totalmem } from "node:os";
import { ContainerError } from "./errors.ts";

export type RestartPolicy = "never" | "on-failure" | "always";
export type Protocol = "tcp" | "udp";

export interface PortForward {
  hostPort: number;
  containerPort: number;
  protocol: Protocol;
}

export type ExtraMount =
  | { type: "flist"; flist: string; target: string }
  | { type: "tmpfs"; target: string; sizeBytes?: number }
  /**
   * A vdisk (init/vdisks): one attached with vdisk.attach and a mountpoint, or, given `url`
   * (nbd://host:port/export), attached for the container, made ext4 on first use, and detached
   * with its last container. Only on a node: the dev host has no kernel NBD client.
   */
  | { type: "vdisk"; vdisk: string; url?: string; target: string };

export interface Limits {
  /** Hard memory limit (memory.max); swap is disabled for the container. */
  memoryBytes?: number;
  /** CPU quota in cores (cpu.max), e.g. 0.5. */
  cpus?: number;
  /** Relative CPU weight (cpu.weight), 1..10000, default 100. */
  cpuWeight?: number;
  /** Most tasks at once (pids.max). */
  pids?: number;
}

export interface ContainerSpec {
  name: string;
  /** Path of a .fl file on the node, or an http(s) URL it is downloaded from. */
  flist: string;
  /** Store routes replacing the flist's own (`[xx-xx=]url`). */
  stores?: string[];
  args: string[];
  env: Record<string, string>;
  cwd: string;
  /** uid[:gid] inside the container. */
  user: { uid: number; gid: number };
  hostname: string;
  network: "private" | "host";
  ports: PortForward[];
  mounts: ExtraMount[];
  limits: Limits;
  restart: RestartPolicy;
  /** Size of the tmpfs holding the overlay's upper and work dirs. */
  rwSizeBytes: number;
  /**
   * A persistent container: the overlay's upper and work dirs on this vdisk (in overlay/<name>/)
   * instead of a tmpfs, so what it writes to its root survives delete + recreate. Attached like a
   * vdisk mount (by url if not attached yet).
   */
  rwVdisk?: { vdisk: string; url?: string };
  /** All capabilities, no seccomp filter; admin only. */
  privileged: boolean;
}

export const containerNamePattern = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const envKeyPattern = /^[A-Za-z_][A-Za-z0-9_]*$/;
const MIN_MEMORY = 4 * 1024 * 1024;
const MAX_PIDS = 4_194_304;
export const DEFAULT_RW_BYTES = 256 * 1024 * 1024;

function bad(message: string, container: string): never {
  throw new ContainerError("bad-params", message, { container, step: "validate" });
}

function checkTarget(target: string, what: string, name: string): void {
  if (!target.startsWith("/") || target.split("/").includes("..")) bad(`${what}: '${target}' must be an absolute path without '..'`, name);
}

export function validateSpec(spec: ContainerSpec): void {
  const n = spec.name;
  if (!containerNamePattern.test(n)) bad(`name '${n}' is invalid: 1-32 of a-z 0-9 _ -, starting with a letter or digit`, n);
  if (!spec.flist) bad("flist is required", n);
  if (spec.args.length === 0 || !spec.args[0]) bad("a command is required", n);
  for (const k of Object.keys(spec.env)) if (!envKeyPattern.test(k)) bad(`env: '${k}' is not a valid variable name`, n);
  for (const [k, v] of Object.entries(spec.env)) if (v.includes("\0")) bad(`env: ${k} contains a NUL byte`, n);
  checkTarget(spec.cwd, "cwd", n);
  if (!/^[a-zA-Z0-9]([a-zA-Z0-9.-]{0,62})$/.test(spec.hostname)) bad(`hostname '${spec.hostname}' is invalid`, n);
  if (spec.network === "host" && spec.ports.length) bad("ports: port forwards need a private network (host networking already shares the node's ports)", n);
  const seen = new Set<string>();
  for (const p of spec.ports) {
    for (const port of [p.hostPort, p.containerPort]) if (!Number.isInteger(port) || port < 1 || port > 65535) bad(`ports: ${port} is not a port number (1-65535)`, n);
    const key = `${p.protocol}/${p.hostPort}`;
    if (seen.has(key)) bad(`ports: ${key} is forwarded twice`, n);
    seen.add(key);
  }
  const targets = new Set<string>();
  for (const m of spec.mounts) {
    checkTarget(m.target, "mounts", n);
    if (m.target === "/") bad("mounts: cannot mount over /", n);
    if (targets.has(m.target)) bad(`mounts: ${m.target} is mounted twice`, n);
    targets.add(m.target);
    if (m.type === "tmpfs" && m.sizeBytes !== undefined && m.sizeBytes < 4096) bad(`mounts: tmpfs size ${m.sizeBytes} is below one page`, n);
  }
  const l = spec.limits;
  const total = totalmem();
  if (l.memoryBytes !== undefined && (l.memoryBytes < MIN_MEMORY || l.memoryBytes > total)) {
    bad(`limits: memory ${l.memoryBytes} bytes is impossible (between ${MIN_MEMORY} and the node's ${total})`, n);
  }
  const cores = availableParallelism();
  if (l.cpus !== undefined && !(l.cpus >= 0.01 && l.cpus <= cores)) bad(`limits: cpus ${l.cpus} is impossible (between 0.01 and the node's ${cores})`, n);
  if (l.cpuWeight !== undefined && !(Number.isInteger(l.cpuWeight) && l.cpuWeight >= 1 && l.cpuWeight <= 10000)) bad(`limits: cpu weight ${l.cpuWeight} is outside 1-10000`, n);
  if (l.pids !== undefined && !(Number.isInteger(l.pids) && l.pids >= 1 && l.pids <= MAX_PIDS)) bad(`limits: pids ${l.pids} is outside 1-${MAX_PIDS}`, n);
  if (spec.rwSizeBytes < MIN_MEMORY) bad(`rwSize ${spec.rwSizeBytes} is below ${MIN_MEMORY} bytes`, n);
}

/** Fills in what the caller left out. */
export function withDefaults(p: Partial<ContainerSpec> & { name: string; flist: string; args: string[] }): ContainerSpec {
  return {
    stores: undefined,
    env: {},
    cwd: "/",
    user: { uid: 0, gid: 0 },
    hostname: p.name.replace(/_/g, "-"),
    network: "private",
    ports: [],
    mounts: [],
    limits: {},
    restart: "never",
    rwSizeBytes: DEFAULT_RW_BYTES,
    privileged: false,
    ...Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)),
  } as unknown as ContainerSpec;
}
