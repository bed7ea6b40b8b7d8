// The programmatic API of vdisk/, for init and other parts:
//   const manager = await openVdiskManager({ store: ["dir:///var/lib/zos/blocks"], catalog: "dir:///var/lib/zos/vdisks" });
//   await manager.create("root", 10 * 2 ** 30);
//   const server = new NbdServer();
//   await serveVdisks(manager, server);                 // every vdisk (snapshots read-only)
//   server.listen({ unix: "/run/zvdisk.sock" });        // nbd+unix:///root?socket=/run/zvdisk.sock
//   ... await closeAll(manager, server);                // flushes every vdisk
import { openStore } from "../store/index.ts";
import { openCatalog } from "./model/catalog.ts";
import { VdiskManager, type VdiskManagerOptions } from "./model/manager.ts";
import type { NbdServer } from "./nbd/server.ts";

export { NbdServer, type NbdServerOptions, type ListenAddress, type ExportSource } from "./nbd/server.ts";
export type { BlockExport, BlockSizes, Extent, ZeroOptions } from "./nbd/export.ts";
export { NbdError } from "./nbd/errors.ts";
export { MemoryExport } from "./memory-export.ts";
export { VdiskManager, DEFAULT_BLOCK_SIZE, type VdiskInfo, type GcReport, type VdiskManagerOptions } from "./model/manager.ts";
export { Vdisk, type VdiskOptions } from "./model/vdisk.ts";
export { openCatalog, DirCatalog, type Catalog } from "./model/catalog.ts";
export { VdiskError, type VdiskErrorCode } from "./model/errors.ts";
export type { VdiskRecord } from "./model/record.ts";

export interface OpenOptions extends Omit<VdiskManagerOptions, "store" | "catalog"> {
  /** Store routes as `rfs pack -s` takes them (`[xx-xx=]url`). */
  store: string[];
  /** Catalog URL (`dir:///path`). */
  catalog: string;
}

export async function openVdiskManager(o: OpenOptions): Promise<VdiskManager> {
  const { store, catalog, ...rest } = o;
  return new VdiskManager({ ...rest, store: await openStore(store), catalog: await openCatalog(catalog) });
}

/**
 * Serves the named vdisks and snapshots, or, when names is omitted, everything in the catalog:
 * each is opened when a client first asks for it, so vdisks created later are served too.
 */
export async function serveVdisks(manager: VdiskManager, server: NbdServer, names?: string[], opts: { readOnly?: boolean } = {}): Promise<string[]> {
  if (names) {
    for (const name of names) server.addExport(await manager.openVdisk(name, opts));
    return names;
  }
  server.setSource({
    open: async (name) => ((await manager.get(name).catch(() => null)) ? manager.openVdisk(name, opts) : undefined),
    list: async () => (await manager.list()).map((r) => ({ name: r.name, description: r.kind === "snapshot" ? `vdisk snapshot ${r.name}` : `vdisk ${r.name}` })),
  });
  return (await manager.list()).map((r) => r.name);
}

/** Stops serving and makes every acknowledged write durable. */
export async function closeAll(manager: VdiskManager, server: NbdServer): Promise<void> {
  server.close();
  await manager.close();
  await manager.store.close();
  await manager.catalog.close();
}
