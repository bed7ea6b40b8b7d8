// Opening stores from rfs-style URLs and route lists.
import type { BlockBackend } from "./types.ts";
import { parseBackendUrl } from "./backends/url.ts";
import { openDirBackend } from "./backends/dir.ts";
import { HttpBackend } from "./backends/http.ts";
import { openZdbBackend } from "./backends/zdb.ts";
import { RoutedStore, parseRoute } from "./routes.ts";

/** Opens one backend from its URL (dir://, zdb://, http(s)://, or zstore:// for an erasure-coded set). */
export async function openBackend(url: string): Promise<BlockBackend> {
  const spec = parseBackendUrl(url);
  switch (spec.kind) {
    case "dir":
      return openDirBackend(spec.url, spec.root, spec.policy);
    case "http":
      return new HttpBackend(spec.url, spec.base, spec.policy);
    case "zdb":
      return openZdbBackend(spec);
    case "zstore": {
      // Loaded on use: the config module itself opens its members through this function.
      const { loadConfig, openConfiguredStore } = await import("./config.ts");
      return openConfiguredStore(loadConfig(spec.configPath));
    }
  }
}

/**
 * Opens what `rfs pack -s` takes: one or more `[xx-xx=]url` routes. A single full-range route is
 * returned as the bare backend; anything else becomes a RoutedStore.
 */
export async function openStore(routes: string[]): Promise<BlockBackend> {
  const specs = routes.map(parseRoute);
  const opened: BlockBackend[] = [];
  try {
    for (const s of specs) opened.push(await openBackend(s.url));
  } catch (err) {
    await Promise.allSettled(opened.map((b) => b.close()));
    throw err;
  }
  if (specs.length === 1 && specs[0].start === 0 && specs[0].end === 0xff) return opened[0];
  return new RoutedStore(specs.map((s, i) => ({ start: s.start, end: s.end, backend: opened[i] })));
}
