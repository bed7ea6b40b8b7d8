// node.* methods: what the node is, and rebooting or powering it off.
import { method, type MethodDef, type MethodRegistry } from "../rpc/registry.ts";
import { s } from "../rpc/schema.ts";
import type { NodeRuntime } from "../node.ts";
import { machineFacts, systemUptime } from "./node-info.ts";

export function nodeMethods(node: NodeRuntime, registry: MethodRegistry): Record<string, MethodDef<any>> {
  const shutdownMethod = (kind: "reboot" | "poweroff") =>
    method({
      role: "admin", summary: `stop every service and ${kind}`, params: s.object({}),
      handler: async () => {
        // answer first; the shutdown starts once the reply is on its way
        setTimeout(() => node.requestShutdown(kind, "rpc"), 50);
        return { accepted: kind };
      },
    });
  return {
    "node.info": method({
      role: "reader", summary: "identity, version, uptime, kernel, cpu, memory, disks, NICs, subsystem health", params: s.object({}),
      handler: async () => ({
        id: node.nodeId,
        version: node.version,
        mode: node.mode,
        pid: process.pid,
        uptimeSeconds: { system: systemUptime(), init: Math.round((Date.now() - node.startedAt) / 1000) },
        ...(await machineFacts()),
        health: node.health.snapshot(),
        services: node.supervisor.size,
        orphansReaped: node.reaper.reaped,
        rpc: node.rpc?.stats ?? null,
      }),
    }),
    "node.reboot": shutdownMethod("reboot"),
    "node.poweroff": shutdownMethod("poweroff"),
    "rpc.methods": method({
      role: "reader", summary: "the methods this node serves and the role each needs", params: s.object({}),
      handler: async () => {
        await registry.loadAll(); // the list is complete only with the parts that load on first use
        return registry.list();
      },
    }),
  };
}
