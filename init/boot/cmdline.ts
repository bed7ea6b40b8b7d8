// `zos.*` options on the kernel command line:
//   zos.admin=<key>[,<key>...]   trusted admin keys (base58 or hex ed25519); also zos.operator=, zos.reader=
//   zos.store=<url>[,<url>...]   block store URLs for the store part (repeatable)
//   zos.state=<device>           state disk to mount on /var/lib/zos (otherwise one labelled zos-state)
//   zos.ntp=<host>[,<host>...]   NTP servers (otherwise the DHCP-provided ones, then pool.ntp.org)
//   zos.debug                    debug logging
import { readFileSync } from "node:fs";

export interface ZosCmdline {
  admin: string[];
  operator: string[];
  reader: string[];
  store: string[];
  state: string | null;
  ntp: string[];
  debug: boolean;
  /** Every zos.* option as given, for parts that add their own. */
  raw: Record<string, string[]>;
}

/** Splits like the kernel does: whitespace separates, double quotes group. */
export function splitCmdline(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/(?:[^\s"]+|"[^"]*")+/g)) out.push(m[0].replace(/"/g, ""));
  return out;
}

export function parseZosCmdline(text: string): ZosCmdline {
  const raw: Record<string, string[]> = {};
  for (const tok of splitCmdline(text)) {
    if (!tok.startsWith("zos.")) continue;
    const eq = tok.indexOf("=");
    const key = eq < 0 ? tok.slice(4) : tok.slice(4, eq);
    const values = eq < 0 ? [""] : tok.slice(eq + 1).split(",").filter(Boolean);
    (raw[key] ??= []).push(...values);
  }
  return {
    admin: raw.admin ?? [], operator: raw.operator ?? [], reader: raw.reader ?? [], store: raw.store ?? [],
    state: raw.state?.[0] ?? null, ntp: raw.ntp ?? [], debug: "debug" in raw, raw,
  };
}

export function readZosCmdline(path = "/proc/cmdline"): ZosCmdline {
  let text = "";
  try {
    text = readFileSync(path, "utf8");
  } catch {
    // no /proc: no options
  }
  return parseZosCmdline(text);
}
