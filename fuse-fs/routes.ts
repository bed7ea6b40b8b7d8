// An flist's route table as the `[xx-xx=]url` specs the store opens.
import type { Flist } from "./flist.ts";
import { FlistError } from "./errors.ts";

function byte(n: number): string {
  return n.toString(16).padStart(2, "0");
}

export function routeSpecs(flist: Flist): string[] {
  const routes = flist.routes();
  if (routes.length === 0) throw new FlistError("bad-flist", "flist has no routes: pass the store explicitly", { flist: flist.path });
  return routes.map((r) => `${byte(Number(r.start))}-${byte(Number(r.end))}=${r.url}`);
}
