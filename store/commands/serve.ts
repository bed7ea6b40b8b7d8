// `zstore serve`: runs the 0-db-compatible server until SIGINT/SIGTERM.
//   zstore serve --data DIR [--index DIR] [--listen 127.0.0.1:9900] [--socket PATH]
//                [--fsync always|everysec|never] [--datasize BYTES] [--admin PASSWORD]
// Also runnable on its own: bun store/commands/serve.ts ...
// Prints one line "zdb listening on HOST:PORT" (and/or "zdb listening on unix:PATH") once ready,
// so a parent process started with --listen 127.0.0.1:0 learns the port.
import { parseArgs } from "node:util";
import type { FsyncPolicy } from "../zdb/namespace.ts";
import { ZdbServer } from "../zdb/server.ts";
import { execWithServerAllocator } from "../allocator.ts";

const usage =
  "usage: zstore serve --data DIR [--index DIR] [--listen HOST:PORT] [--socket PATH] [--fsync always|everysec|never] [--datasize BYTES] [--admin PASSWORD]";

class UsageError extends Error {}

function parseListen(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new UsageError(`--listen wants HOST:PORT, got "${value}"`);
  return { host: m[1] ?? m[2], port };
}

export async function serveCommand(argv: string[]): Promise<number> {
  let server: ZdbServer;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        data: { type: "string" },
        index: { type: "string" },
        listen: { type: "string" },
        socket: { type: "string" },
        fsync: { type: "string", default: "everysec" },
        datasize: { type: "string" },
        admin: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
    if (values.help) {
      console.log(usage);
      return 0;
    }
    if (!values.data) throw new UsageError("--data DIR is required");
    const fsync = values.fsync as FsyncPolicy;
    if (!["always", "everysec", "never"].includes(fsync)) throw new UsageError(`--fsync must be always, everysec or never, got "${fsync}"`);
    let datasize: number | undefined;
    if (values.datasize !== undefined) {
      datasize = Number(values.datasize);
      if (!Number.isSafeInteger(datasize) || datasize < 4096 || datasize > 0xffffffff) throw new UsageError("--datasize must be a byte count between 4096 and 4294967295");
    }
    const listen = values.listen !== undefined || values.socket === undefined ? parseListen(values.listen ?? "127.0.0.1:9900") : undefined;
    execWithServerAllocator("zdb");
    server = await ZdbServer.start({
      dataDir: values.data,
      indexDir: values.index,
      host: listen?.host,
      port: listen?.port,
      socketPath: values.socket,
      fsync,
      datasize,
      adminPassword: values.admin ?? null,
    });
  } catch (err) {
    if (err instanceof UsageError || (err as { code?: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION") {
      console.error(`zstore serve: ${(err as Error).message}\n${usage}`);
      return 2;
    }
    console.error(`zstore serve: ${(err as Error).message}`);
    return 1;
  }
  if (server.port !== null) console.log(`zdb listening on ${server.opts.host}:${server.port}`);
  if (server.opts.socketPath !== undefined) console.log(`zdb listening on unix:${server.opts.socketPath}`);
  await new Promise<void>((resolve) => {
    process.once("SIGINT", resolve);
    process.once("SIGTERM", resolve);
  });
  await server.stop();
  return 0;
}

if (import.meta.main) process.exit(await serveCommand(process.argv.slice(2)));
