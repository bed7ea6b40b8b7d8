// vdisk.* methods: NBD exports attached to the node with the kernel NBD client.
//
//   vdisk.attach  {name, url, format?: "ext4", mountpoint?, readOnly?}
//                 -> {name, url, device, sizeBytes, mountpoint, readOnly, formatted, users, attachedBy, attachedAt}
//       name       1-63 of a-z 0-9 _ -, starting with a letter or digit
//       url        nbd://host[:port]/export (port 10809 by default) or nbd+unix:///export?socket=/path
//       format     made on the device when its first 64 KiB are blank (never over existing data:
//                  a device holding something else is refused with "conflict"), and mounted as
//       mountpoint absolute path on the node; without it the device is only connected
//       readOnly   nbd-client -readonly and mount -o ro
//   vdisk.detach  {name} -> {detached: name}   unmount, then nbd-client -d (refused while a container uses it)
//   vdisk.list    {} -> the attach results above, one per vdisk
// Errors: bad-params, not-found, conflict, unsupported (no kernel NBD client), system (a tool failed).
import { RpcError } from "../rpc/errors.ts";
import { method, type MethodDef } from "../rpc/registry.ts";
import { s } from "../rpc/schema.ts";
import { VdiskError } from "../vdisks/errors.ts";
import { vdiskNamePattern, type VdiskManager } from "../vdisks/manager.ts";

const name = s.string({ min: 1, max: 63, pattern: vdiskNamePattern });

async function rpc<T>(f: () => Promise<T>): Promise<T> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof VdiskError) throw new RpcError(e.code, e.message, e.context);
    throw e;
  }
}

export function vdiskMethods(vdisks: VdiskManager): Record<string, MethodDef<any>> {
  return {
    "vdisk.attach": method({
      role: "admin", summary: "connect an NBD export to a free /dev/nbdN, make ext4 if it is blank and asked for, mount it",
      params: s.object({
        name,
        url: s.string({ min: 1, max: 2048, pattern: /^nbd(\+unix)?:\/\// }),
        format: s.optional(s.oneOf(["ext4"])),
        mountpoint: s.optional(s.string({ min: 2, max: 1024, pattern: /^\// })),
        readOnly: s.optional(s.boolean()),
      }),
      handler: (p) => rpc(() => vdisks.attach(p)),
    }),
    "vdisk.detach": method({ role: "admin", summary: "unmount and disconnect a vdisk", params: s.object({ name }), handler: (p) => rpc(() => vdisks.detach(p.name)) }),
    "vdisk.list": method({ role: "reader", summary: "attached vdisks with device, mountpoint and users", params: s.object({}), handler: async () => vdisks.list() }),
  };
}
