// zinit-compatible service files: one YAML document per service, named <service>.yaml.
//   exec: "cmd args"            required, shell-split (no shell runs)
//   test: "cmd args"            optional health check; the service is `running` once it exits 0
//   oneshot: bool               run once; dependents wait for exit 0 (`success`)
//   after: [svc, ...]           start only once these are running (or succeeded, for oneshots)
//   signal: { stop: SIGTERM }   signal sent to the process group on stop
//   log: ring | stdout | null   where stdout/stderr go (default ring)
//   env: { KEY: value }         added to init's environment
//   dir: /path                  working directory
//   shutdown_timeout: seconds   wait after the stop signal before SIGKILL (default 10)
import { readFileSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { constants } from "node:os";
import { shellSplit, ShellSplitError } from "./shell-split.ts";

export type LogMode = "ring" | "stdout" | "null";

export interface ServiceSpec {
  name: string;
  exec: string[];
  test: string[] | null;
  oneshot: boolean;
  after: string[];
  stopSignal: NodeJS.Signals;
  log: LogMode;
  env: Record<string, string>;
  dir: string | null;
  shutdownTimeoutMs: number;
}

export class ServiceConfigError extends Error {
  constructor(readonly file: string, readonly key: string | null, message: string) {
    super(`${file}${key ? `: key '${key}'` : ""}: ${message}`);
    this.name = "ServiceConfigError";
  }
}

const knownKeys = new Set(["exec", "test", "oneshot", "after", "signal", "log", "env", "dir", "shutdown_timeout"]);
export const serviceNamePattern = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$/;

function words(file: string, key: string, v: unknown): string[] {
  if (typeof v !== "string") throw new ServiceConfigError(file, key, `must be a string, got ${typeof v}`);
  try {
    const w = shellSplit(v);
    if (w.length === 0) throw new ServiceConfigError(file, key, "is empty");
    return w;
  } catch (e) {
    if (e instanceof ShellSplitError) throw new ServiceConfigError(file, key, e.message);
    throw e;
  }
}

export function parseSignal(file: string, key: string, v: unknown): NodeJS.Signals {
  if (typeof v !== "string") throw new ServiceConfigError(file, key, "must be a signal name like SIGTERM");
  const name = (v.toUpperCase().startsWith("SIG") ? v.toUpperCase() : `SIG${v.toUpperCase()}`) as NodeJS.Signals;
  if (!(name in constants.signals)) throw new ServiceConfigError(file, key, `unknown signal '${v}'`);
  return name;
}

/** Validates one parsed YAML document as the service `name`; `file` names the source in errors. */
export function serviceSpecFrom(name: string, doc: unknown, file: string): ServiceSpec {
  if (!serviceNamePattern.test(name)) throw new ServiceConfigError(file, null, `invalid service name '${name}'`);
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) throw new ServiceConfigError(file, null, "must be a YAML mapping");
  const d = doc as Record<string, unknown>;
  for (const k of Object.keys(d)) if (!knownKeys.has(k)) throw new ServiceConfigError(file, k, "unknown key");
  if (d.exec === undefined) throw new ServiceConfigError(file, "exec", "is required");

  const exec = words(file, "exec", d.exec);
  const test = d.test === undefined || d.test === null || d.test === "" ? null : words(file, "test", d.test);

  if (d.oneshot !== undefined && typeof d.oneshot !== "boolean") throw new ServiceConfigError(file, "oneshot", "must be true or false");

  let after: string[] = [];
  if (d.after !== undefined && d.after !== null) {
    const list = typeof d.after === "string" ? [d.after] : d.after;
    if (!Array.isArray(list) || !list.every((x) => typeof x === "string" && serviceNamePattern.test(x)))
      throw new ServiceConfigError(file, "after", "must be a list of service names");
    after = [...new Set(list as string[])];
    if (after.includes(name)) throw new ServiceConfigError(file, "after", "a service cannot wait for itself");
  }

  let stopSignal: NodeJS.Signals = "SIGTERM";
  if (d.signal !== undefined && d.signal !== null) {
    if (typeof d.signal !== "object" || Array.isArray(d.signal)) throw new ServiceConfigError(file, "signal", "must be a mapping like {stop: SIGTERM}");
    const s = d.signal as Record<string, unknown>;
    for (const k of Object.keys(s)) if (k !== "stop") throw new ServiceConfigError(file, `signal.${k}`, "unknown key");
    if (s.stop !== undefined) stopSignal = parseSignal(file, "signal.stop", s.stop);
  }

  let log: LogMode = "ring";
  if (d.log !== undefined) {
    const v = d.log === null ? "null" : d.log;
    if (v !== "ring" && v !== "stdout" && v !== "null") throw new ServiceConfigError(file, "log", "must be ring, stdout or null");
    log = v;
  }

  const env: Record<string, string> = {};
  if (d.env !== undefined && d.env !== null) {
    if (typeof d.env !== "object" || Array.isArray(d.env)) throw new ServiceConfigError(file, "env", "must be a mapping of NAME: value");
    for (const [k, v] of Object.entries(d.env as Record<string, unknown>)) {
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new ServiceConfigError(file, `env.${k}`, "invalid variable name");
      if (v === null || typeof v === "object") throw new ServiceConfigError(file, `env.${k}`, "must be a scalar");
      env[k] = String(v);
    }
  }

  let dir: string | null = null;
  if (d.dir !== undefined && d.dir !== null) {
    if (typeof d.dir !== "string" || d.dir === "") throw new ServiceConfigError(file, "dir", "must be a path");
    dir = d.dir;
  }

  let shutdownTimeoutMs = 10_000;
  if (d.shutdown_timeout !== undefined) {
    if (typeof d.shutdown_timeout !== "number" || !(d.shutdown_timeout >= 0) || d.shutdown_timeout > 3600)
      throw new ServiceConfigError(file, "shutdown_timeout", "must be a number of seconds between 0 and 3600");
    shutdownTimeoutMs = Math.round(d.shutdown_timeout * 1000);
  }

  return { name, exec, test, oneshot: d.oneshot === true, after, stopSignal, log, env, dir, shutdownTimeoutMs };
}

export function parseServiceYaml(name: string, text: string, file: string): ServiceSpec {
  let doc: unknown;
  try {
    doc = Bun.YAML.parse(text); // Bun's built-in parser: the yaml package would add ~10 MiB to PID 1
  } catch (e) {
    throw new ServiceConfigError(file, null, `invalid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  return serviceSpecFrom(name, doc, file);
}

/** Reads every *.yaml / *.yml in `dir`. Bad files are returned as errors; good ones still load. */
export function loadServiceDir(dir: string): { specs: ServiceSpec[]; errors: ServiceConfigError[] } {
  const specs: ServiceSpec[] = [];
  const errors: ServiceConfigError[] = [];
  let entries: string[];
  try {
    entries = readdirSync(dir).sort();
  } catch (e) {
    errors.push(new ServiceConfigError(dir, null, `cannot read config dir: ${(e as Error).message}`));
    return { specs, errors };
  }
  for (const f of entries) {
    const m = /^(.+)\.ya?ml$/.exec(f);
    if (!m) continue;
    const path = join(dir, f);
    try {
      specs.push(parseServiceYaml(basename(m[1]), readFileSync(path, "utf8"), path));
    } catch (e) {
      errors.push(e instanceof ServiceConfigError ? e : new ServiceConfigError(path, null, (e as Error).message));
    }
  }
  return { specs, errors };
}
