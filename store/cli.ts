#!/usr/bin/env bun
// zstore: the Zero Storage command line (also reachable as `zos store`).
//   zstore serve ...            the 0-db-compatible server
//   zstore put|get|repair|status|bench ...
import { putCommand } from "./commands/put.ts";
import { getCommand } from "./commands/get.ts";
import { repairCommand } from "./commands/repair.ts";
import { statusCommand } from "./commands/status.ts";
import { benchCommand } from "./commands/bench.ts";
import { DEFAULT_CONFIG } from "./commands/common.ts";

const commands: Record<string, { run: (argv: string[]) => Promise<number>; summary: string }> = {
  serve: { run: async (argv) => (await import("./commands/serve.ts")).serveCommand(argv), summary: "run the 0-db-compatible server" },
  put: { run: putCommand, summary: "store a file as rfs blocks, print their ids and keys" },
  get: { run: getCommand, summary: "fetch rfs blocks by id and key, write their content" },
  repair: { run: repairCommand, summary: "rebuild missing or corrupt shards (once, or --background)" },
  status: { run: statusCommand, summary: "backend health and blocks below full redundancy" },
  bench: { run: benchCommand, summary: "measure put/get throughput of the configured store" },
};

function help(): string {
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `usage: zstore <command> [options]\n\n${lines.join("\n")}\n\nThe erasure-coded store is described by a YAML config (-c, default ${DEFAULT_CONFIG}, or $ZSTORE_CONFIG);\nput/get/bench also take rfs-style -s [xx-xx=]URL routes instead.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(help());
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (!command) {
    process.stderr.write(`zstore: unknown command "${name}"\n${help()}`);
    return 2;
  }
  return command.run(rest);
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
