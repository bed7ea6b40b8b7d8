// NBD URIs as in the NBD project's doc/uri.md (the form nbdinfo and qemu-img accept):
//   nbd://host[:port][/export]           TCP, port 10809 by default
//   nbd+unix:///[export]?socket=/path    a Unix socket on the node
// An empty export name means the server's default export. TLS (nbds://) is not supported.
import { VdiskError } from "./errors.ts";

export const NBD_DEFAULT_PORT = 10809;

export type NbdTarget =
  | { kind: "tcp"; host: string; port: number; exportName: string }
  | { kind: "unix"; socket: string; exportName: string };

export function parseNbdUrl(url: string, vdisk?: string): NbdTarget {
  const bad = (why: string): never => {
    throw new VdiskError("bad-params", `url '${url}': ${why} (want nbd://host[:port]/export or nbd+unix:///export?socket=/path)`, { vdisk, step: "url" });
  };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return bad("not a URL");
  }
  const exportName = decodeURIComponent(u.pathname.replace(/^\//, ""));
  if (exportName.includes("\0")) bad("NUL in the export name");
  if (u.username || u.password || u.hash) bad("user, password and fragment are not allowed");
  if (u.protocol === "nbd:") {
    const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
    if (!host) bad("no host");
    if (u.search) bad("no query is allowed for nbd://");
    return { kind: "tcp", host, port: u.port ? Number(u.port) : NBD_DEFAULT_PORT, exportName };
  }
  if (u.protocol === "nbd+unix:") {
    if (u.hostname) bad("nbd+unix:// takes no host");
    const socket = u.searchParams.get("socket");
    if (!socket || !socket.startsWith("/")) bad("needs ?socket=/absolute/path");
    if ([...u.searchParams.keys()].some((k) => k !== "socket")) bad("only the socket parameter is allowed");
    return { kind: "unix", socket: socket!, exportName };
  }
  if (u.protocol === "nbds:" || u.protocol === "nbds+unix:") bad("TLS is not supported");
  return bad(`unknown scheme ${u.protocol}`);
}

/** nbd-client's arguments up to (not including) the device: `[-u] -N export host|socket [port]`. */
export function nbdClientTarget(t: NbdTarget): string[] {
  return t.kind === "tcp" ? ["-N", t.exportName, t.host, String(t.port)] : ["-u", "-N", t.exportName, t.socket];
}
