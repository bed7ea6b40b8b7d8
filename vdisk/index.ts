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

export { NbdServer, type NbdServerOptions, type ListenAddress } from "./nbd/server.ts";
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

/** Adds the named vdisks and snapshots (all of them when names is omitted) as exports. */
export async function serveVdisks(manager: VdiskManager, server: NbdServer, names?: string[], opts: { readOnly?: boolean } = {}): Promise<string[]> {
  const list = names ?? (await manager.list()).map((r) => r.name);
  for (const name of list) server.addExport(await manager.openVdisk(name, opts));
  return list;
}

/** Stops serving and makes every acknowledged write durable. */
export async function closeAll(manager: VdiskManager, server: NbdServer): Promise<void> {
  server.close();
  await manager.close();
  await manager.store.close();
  await manager.catalog.close();
}
