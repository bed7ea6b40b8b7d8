// Loads every kernel module the image ships under /lib/modules/<release>, dependencies first, with
// finit_module(2) — no kmod needed. modules.dep lines are "path: dep1 dep2 ..." where each module's
// dependencies are listed so that the last one must be loaded first (as modprobe reads them).
import { closeSync, existsSync, openSync, readFileSync } from "node:fs";
import { release } from "node:os";
import { basename, join } from "node:path";
import { EEXIST, ENODEV, finitModule, LibcError, MODULE_INIT_COMPRESSED_FILE } from "../libc.ts";
import { logger } from "../log.ts";

const log = logger("modules");

export function parseModulesDep(text: string): Map<string, string[]> {
  const deps = new Map<string, string[]>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    deps.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim().split(/\s+/).filter(Boolean));
  }
  return deps;
}

/** The order to load `modules` in: each one after all its dependencies, each once. */
export function loadOrder(deps: Map<string, string[]>): string[] {
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = (m: string) => {
    if (seen.has(m)) return;
    seen.add(m);
    for (const d of [...(deps.get(m) ?? [])].reverse()) visit(d);
    order.push(m);
  };
  for (const m of deps.keys()) visit(m);
  return order;
}

export function moduleName(path: string): string {
  return basename(path).replace(/\.ko(\.(xz|zst|gz))?$/, "").replace(/-/g, "_");
}

/** Loads them all; returns how many loaded, were already there, and failed (each failure logged). */
export function loadShippedModules(dir = join("/lib/modules", release())): { loaded: number; present: number; failed: string[] } {
  const result = { loaded: 0, present: 0, failed: [] as string[] };
  const depFile = join(dir, "modules.dep");
  if (!existsSync(depFile)) {
    log.info(`no ${depFile}: no modules to load`);
    return result;
  }
  const loadedNow = new Set(existsSync("/proc/modules") ? readFileSync("/proc/modules", "utf8").split("\n").map((l) => l.split(" ")[0]) : []);
  for (const rel of loadOrder(parseModulesDep(readFileSync(depFile, "utf8")))) {
    const name = moduleName(rel);
    if (loadedNow.has(name)) {
      result.present++;
      continue;
    }
    const path = rel.startsWith("/") ? rel : join(dir, rel);
    let fd = -1;
    try {
      fd = openSync(path, "r");
      finitModule(fd, "", /\.ko\.(xz|zst|gz)$/.test(path) ? MODULE_INIT_COMPRESSED_FILE : 0, name);
      result.loaded++;
    } catch (e) {
      if (e instanceof LibcError && e.errno === EEXIST) result.present++;
      else if (e instanceof LibcError && e.errno === ENODEV) log.debug(`${name}: no such device here`); // e.g. efivarfs on BIOS
      else {
        result.failed.push(name);
        log.warn(`cannot load ${name}`, (e as Error).message);
      }
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }
  log.info(`modules: ${result.loaded} loaded, ${result.present} already present, ${result.failed.length} failed`);
  return result;
}
