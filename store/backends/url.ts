// Backend URLs, as rfs writes them, plus optional query settings for deadlines:
//   dir:///abs/path                                  blobs under <path>/<hex[0:2]>/<hex>
//   zdb://[user:pass@]host[:port]/namespace          0-db over TCP, port 9900 by default
//   zdb:///path/to/socket[?namespace=ns&password=pw]  0-db over a unix socket (rfs form, plus ns)
//   http(s)://host[:port]/path                       read-only hub, GET <url>/<hex[0:2]>/<hex>
//   zstore:///etc/zstore.yaml                        the erasure-coded store a zstore config describes
// Every form but zstore takes ?timeout=<ms>&retries=<n>&retry_delay=<ms> (zstore's are in its config).
import { StoreError } from "../types.ts";
import { policyFrom, type OpPolicy } from "../ops.ts";

export type BackendSpec =
  | { kind: "dir"; url: string; root: string; policy: OpPolicy }
  | {
      kind: "zdb";
      url: string;
      /** TCP endpoint, or a unix socket path. */
      address: { host: string; port: number } | { socket: string };
      namespace: string;
      user?: string;
      password?: string;
      policy: OpPolicy;
    }
  | { kind: "http"; url: string; base: string; policy: OpPolicy }
  | { kind: "zstore"; url: string; configPath: string };

const settingKeys = new Set(["timeout", "retries", "retry_delay"]);

function checkParams(params: URLSearchParams, allowed: Set<string>, url: string): void {
  for (const name of params.keys()) {
    if (!allowed.has(name)) throw new StoreError("bad-url", `unknown setting "${name}" in ${url}`);
  }
}

/** The URL with any password removed, safe to log and to show in errors. */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = "";
    if (u.searchParams.has("password")) u.searchParams.set("password", "***");
    return u.toString();
  } catch {
    return raw.replace(/\/\/([^:/@]*):[^@/]*@/, "//$1@");
  }
}

export function parseBackendUrl(raw: string): BackendSpec {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new StoreError("bad-url", `not a URL: "${redactUrl(raw)}"`);
  }
  const url = redactUrl(raw);
  const params = u.searchParams;
  const fail = (why: string) => new StoreError("bad-url", `${why}: ${url}`);
  switch (u.protocol) {
    case "dir:": {
      if (u.host) throw fail("dir URLs name an absolute path (dir:///path), not a host");
      checkParams(params, settingKeys, url);
      const root = decodeURIComponent(u.pathname).replace(/\/+$/, "");
      if (!root) throw fail("dir URL has no path");
      return { kind: "dir", url, root, policy: policyFrom(params) };
    }
    case "zdb:": {
      const user = u.username ? decodeURIComponent(u.username) : undefined;
      const passwordInUserinfo = u.password ? decodeURIComponent(u.password) : undefined;
      if (!u.hostname) {
        checkParams(params, new Set([...settingKeys, "namespace", "password"]), url);
        const socket = decodeURIComponent(u.pathname);
        if (!socket || socket === "/") throw fail("zdb unix-socket URL has no socket path");
        return {
          kind: "zdb",
          url,
          address: { socket },
          namespace: params.get("namespace") ?? "default",
          user,
          password: passwordInUserinfo ?? params.get("password") ?? undefined,
          policy: policyFrom(params),
        };
      }
      checkParams(params, settingKeys, url);
      const segments = u.pathname.split("/").filter(Boolean).map(decodeURIComponent);
      if (segments.length > 1) throw fail("zdb URL path must be a single namespace");
      const port = u.port ? Number(u.port) : 9900;
      return {
        kind: "zdb",
        url,
        address: { host: u.hostname.replace(/^\[|\]$/g, ""), port },
        namespace: segments[0] ?? "default",
        user,
        password: passwordInUserinfo,
        policy: policyFrom(params),
      };
    }
    case "http:":
    case "https:": {
      const policy = policyFrom(params);
      for (const k of settingKeys) params.delete(k);
      if (params.size) throw fail("hub URLs cannot carry a query besides timeout/retries/retry_delay");
      return { kind: "http", url, base: `${u.origin}${u.pathname.replace(/\/+$/, "")}`, policy };
    }
    case "zstore:": {
      if (u.host) throw fail("zstore URLs name a config file by absolute path (zstore:///etc/zstore.yaml)");
      if (params.size) throw fail("zstore URLs take no query; settings live in the config file");
      const configPath = decodeURIComponent(u.pathname);
      if (!configPath || configPath === "/") throw fail("zstore URL has no config path");
      return { kind: "zstore", url, configPath };
    }
    default:
      throw new StoreError("bad-url", `unknown store scheme "${u.protocol.replace(/:$/, "")}" in ${url} (expected dir, zdb, http, https or zstore)`);
  }
}
