// service.* methods: the supervisor over RPC.
import { constants } from "node:os";
import { RpcError } from "../rpc/errors.ts";
import { method, type MethodDef } from "../rpc/registry.ts";
import { s } from "../rpc/schema.ts";
import { ServiceConfigError, serviceNamePattern, serviceSpecFrom } from "../supervisor/service-config.ts";
import type { Supervisor } from "../supervisor/supervisor.ts";
import { streamLogs } from "./log-stream.ts";

const name = s.string({ min: 1, max: 128, pattern: serviceNamePattern });
const byName = s.object({ name });

export function serviceMethods(sup: Supervisor): Record<string, MethodDef<any>> {
  return {
    "service.list": method({ role: "reader", summary: "every service with its state", params: s.object({}), handler: async () => sup.list() }),
    "service.status": method({ role: "reader", summary: "one service's state, pid, restarts and last exit", params: byName, handler: async (p) => sup.status(p.name) }),
    "service.start": method({
      role: "operator", summary: "set the target up and start it", params: byName,
      handler: async (p) => {
        sup.start(p.name);
        return sup.status(p.name);
      },
    }),
    "service.stop": method({
      role: "operator", summary: "set the target down; stop signal, then SIGKILL after shutdown_timeout", params: byName,
      handler: async (p) => {
        await sup.stop(p.name);
        return sup.status(p.name);
      },
    }),
    "service.restart": method({
      role: "operator", summary: "stop, then start", params: byName,
      handler: async (p) => {
        await sup.restart(p.name);
        return sup.status(p.name);
      },
    }),
    "service.kill": method({
      role: "operator", summary: "send a signal to the service's process group",
      params: s.object({ name, signal: s.string({ pattern: /^(SIG)?[A-Z0-9]+$/ }) }),
      handler: async (p) => {
        const sig = (p.signal.startsWith("SIG") ? p.signal : `SIG${p.signal}`) as NodeJS.Signals;
        if (!(sig in constants.signals)) throw new RpcError("bad-params", `signal: unknown signal '${p.signal}'`, { path: "signal" });
        sup.kill(p.name, sig);
        return sup.status(p.name);
      },
    }),
    "service.monitor": method({
      role: "admin", summary: "add a service at run time from a zinit service definition",
      params: s.object({ name, config: s.unknown() }),
      handler: async (p) => {
        try {
          sup.monitor(serviceSpecFrom(p.name, p.config, `service.monitor(${p.name})`));
        } catch (e) {
          if (e instanceof ServiceConfigError) throw new RpcError("bad-params", e.message, { path: e.key ? `config.${e.key}` : "config" });
          throw e;
        }
        return sup.status(p.name);
      },
    }),
    "service.forget": method({
      role: "admin", summary: "remove a stopped service", params: byName,
      handler: async (p) => {
        sup.forget(p.name);
        return { forgotten: p.name };
      },
    }),
    "service.logs": method({
      role: "reader", summary: "the newest log lines; with follow, streams new lines until cancelled",
      params: s.object({ name, lines: s.optional(s.int({ min: 0, max: 100_000 })), follow: s.optional(s.boolean()) }),
      handler: async (p, ctx) => {
        const ring = sup.logs(p.name);
        return streamLogs(ring, p, ctx, () => sup.has(p.name) && sup.logs(p.name) === ring);
      },
    }),
  };
}
