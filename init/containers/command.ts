// Running the system tools the manager drives (crun, ip, nft, umount). Always asynchronous: init
// serves the FUSE mounts under the containers on its own event loop, so it must never block on a
// child that may be reading one of them.
import { ContainerError } from "./errors.ts";

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function runCommand(argv: string[], opts: { stdin?: string; signal?: AbortSignal } = {}): Promise<CommandResult> {
  const proc = Bun.spawn(argv, { stdin: opts.stdin === undefined ? "ignore" : new TextEncoder().encode(opts.stdin), stdout: "pipe", stderr: "pipe", signal: opts.signal });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** Runs a tool and throws a "system" ContainerError carrying its stderr unless it exits 0. */
export async function mustRun(argv: string[], step: string, ctx: { container?: string; stdin?: string } = {}): Promise<string> {
  let r: CommandResult;
  try {
    r = await runCommand(argv, { stdin: ctx.stdin });
  } catch (e) {
    throw new ContainerError("system", `${step}: cannot run ${argv[0]}: ${(e as Error).message}`, { container: ctx.container, step }, { cause: e });
  }
  if (r.code !== 0) throw new ContainerError("system", `${step}: ${argv.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`, { container: ctx.container, step });
  return r.stdout;
}
