// container.* RPC methods: validated parameters in, the manager's typed errors mapped onto RPC codes.
import { RpcError } from "../rpc/errors.ts";
import { method, type MethodContext, type MethodDef } from "../rpc/registry.ts";
import { s } from "../rpc/schema.ts";
import { streamLogs } from "../methods/log-stream.ts";
import { ContainerError } from "./errors.ts";
import type { ContainerManager } from "./manager.ts";
import { containerNamePattern, withDefaults, type ExtraMount } from "./spec.ts";

const name = s.string({ min: 1, max: 32, pattern: containerNamePattern });
const byName = s.object({ name });
const timeoutMs = s.optional(s.int({ min: 0, max: 600_000 }));
const port = s.int({ min: 1, max: 65535 });
const path = s.string({ min: 1, max: 1024, pattern: /^\// });

const mountSchema = {
  parse(v: unknown, at: string): ExtraMount {
    const type = (v as { type?: unknown } | null)?.type;
    if (type === "flist") return s.object({ type: s.oneOf(["flist"]), flist: s.string({ min: 1 }), target: path }).parse(v, at);
    if (type === "tmpfs") return s.object({ type: s.oneOf(["tmpfs"]), target: path, sizeBytes: s.optional(s.int({ min: 4096 })) }).parse(v, at);
    if (type === "vdisk") return s.object({ type: s.oneOf(["vdisk"]), vdisk: s.string({ min: 1, max: 128 }), url: s.optional(s.string({ min: 1, max: 2048 })), target: path }).parse(v, at);
    return s.oneOf(["flist", "tmpfs", "vdisk"]).parse(type, `${at}.type`) as never;
  },
};

const createParams = s.object({
  name,
  flist: s.string({ min: 1, max: 2048 }),
  stores: s.optional(s.array(s.string({ min: 1, max: 2048 }), { max: 32 })),
  args: s.array(s.string({ max: 65536 }), { max: 4096 }),
  env: s.optional(s.record(s.string({ max: 65536 }), { max: 1024 })),
  cwd: s.optional(path),
  user: s.optional(s.object({ uid: s.int({ min: 0, max: 2 ** 32 - 2 }), gid: s.int({ min: 0, max: 2 ** 32 - 2 }) })),
  hostname: s.optional(s.string({ min: 1, max: 63 })),
  network: s.optional(s.oneOf(["private", "host"])),
  ports: s.optional(s.array(s.object({ hostPort: port, containerPort: port, protocol: s.optional(s.oneOf(["tcp", "udp"])) }), { max: 256 })),
  mounts: s.optional(s.array(mountSchema, { max: 64 })),
  limits: s.optional(s.object({
    memoryBytes: s.optional(s.int({ min: 0 })),
    cpus: s.optional({ parse: (v: unknown, at: string) => (typeof v === "number" ? v : s.int().parse(v, at)) }),
    cpuWeight: s.optional(s.int()),
    pids: s.optional(s.int()),
  })),
  restart: s.optional(s.oneOf(["never", "on-failure", "always"])),
  rwSizeBytes: s.optional(s.int({ min: 0 })),
  rwVdisk: s.optional(s.object({ vdisk: s.string({ min: 1, max: 128 }), url: s.optional(s.string({ min: 1, max: 2048 })) })),
  privileged: s.optional(s.boolean()),
});

/** Runs a manager call, turning its typed errors into RPC errors that carry the container and step. */
async function rpc<T>(f: () => Promise<T> | T): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof ContainerError) throw new RpcError(e.code, e.message, e.context);
    throw e;
  }
}

function requireAdmin(ctx: MethodContext, what: string): void {
  if (ctx.role !== "admin") throw new RpcError("forbidden", `${what} needs an admin key`);
}

export function containerMethods(mgr: ContainerManager): Record<string, MethodDef<any>> {
  return {
    "container.create": method({
      role: "operator", summary: "create and start a container from an flist; streams progress steps", params: createParams,
      handler: async (p, ctx) => {
        if (p.privileged) requireAdmin(ctx, "a privileged container");
        const spec = withDefaults({ ...p, ports: p.ports?.map((x) => ({ ...x, protocol: x.protocol ?? "tcp" })) });
        return rpc(() => mgr.create(spec, (step, detail) => ctx.emit({ step, detail })));
      },
    }),
    "container.start": method({ role: "operator", summary: "set the target up and start it", params: byName, handler: (p) => rpc(() => mgr.startContainer(p.name)) }),
    "container.stop": method({
      role: "operator", summary: "set the target down: SIGTERM, then SIGKILL after timeoutMs", params: s.object({ name, timeoutMs }),
      handler: (p) => rpc(() => mgr.stop(p.name, p.timeoutMs)),
    }),
    "container.restart": method({
      role: "operator", summary: "stop, then start", params: s.object({ name, timeoutMs }),
      handler: (p) => rpc(() => mgr.restart(p.name, p.timeoutMs)),
    }),
    "container.delete": method({
      role: "operator", summary: "stop and remove the container with its mounts, network, cgroup and files", params: s.object({ name, timeoutMs }),
      handler: (p) => rpc(() => mgr.delete(p.name, p.timeoutMs)),
    }),
    "container.list": method({ role: "reader", summary: "every container with its state", params: s.object({}), handler: async () => mgr.list() }),
    "container.info": method({ role: "reader", summary: "state, pid, ip, ports, restarts, last exit, resource use", params: byName, handler: (p) => rpc(() => mgr.info(p.name)) }),
    "container.logs": method({
      role: "reader", summary: "the newest output lines; with follow, streams new lines until cancelled or the container is deleted",
      params: s.object({ name, lines: s.optional(s.int({ min: 0, max: 100_000 })), follow: s.optional(s.boolean()) }),
      handler: async (p, ctx) => {
        const ring = await rpc(() => mgr.logs(p.name));
        return streamLogs(ring, p, ctx, () => mgr.has(p.name) && mgr.logs(p.name) === ring);
      },
    }),
    "container.exec": method({
      role: "admin", summary: "run a command inside a running container (debugging)",
      params: s.object({ name, args: s.array(s.string({ max: 65536 }), { max: 4096 }) }),
      handler: async (p, ctx) => {
        if (!p.args.length) throw new RpcError("bad-params", "args: a command is required", { path: "args" });
        return rpc(() => mgr.exec(p.name, p.args, ctx.signal));
      },
    }),
  };
}
