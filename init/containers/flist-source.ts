// Where a container's flist file comes from (a path on the node, or an http(s) URL downloaded once),
// and which mounts sit under a directory (for teardown and leak checks).
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ContainerError } from "./errors.ts";

/** Mount points at or under dir, innermost first, from /proc/self/mountinfo. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith("/") ? dir : dir + "/";
  return readFileSync("/proc/self/mountinfo", "utf8")
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => !!p && (p === dir || p.startsWith(prefix)))
    .map((p) => p.replace(/\\040/g, " "))
    .sort((a, b) => b.length - a.length);
}

export async function resolveFlist(source: string, downloadDir: string, container: string): Promise<string> {
  if (!/^https?:\/\//.test(source)) {
    if (!existsSync(source)) throw new ContainerError("not-found", `flist ${source} does not exist on the node`, { container, step: "flist" });
    return source;
  }
  mkdirSync(downloadDir, { recursive: true });
  const path = join(downloadDir, createHash("sha256").update(source).digest("hex").slice(0, 32) + ".fl");
  if (existsSync(path)) return path;
  let res: Response;
  try {
    res = await fetch(source);
  } catch (e) {
    throw new ContainerError("not-found", `cannot download flist ${source}: ${(e as Error).message}`, { container, step: "flist" }, { cause: e });
  }
  if (!res.ok) throw new ContainerError("not-found", `cannot download flist ${source}: HTTP ${res.status}`, { container, step: "flist" });
  writeFileSync(path + ".part", new Uint8Array(await res.arrayBuffer()));
  renameSync(path + ".part", path);
  return path;
}
