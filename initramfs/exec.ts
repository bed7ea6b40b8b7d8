// Runs a build tool and returns its stdout; a non-zero exit throws with the command and its stderr.
export class CommandError extends Error {
  constructor(readonly argv: string[], readonly exitCode: number, readonly stderr: string) {
    super(`${argv.join(" ")} exited ${exitCode}${stderr ? `:\n${stderr.trim()}` : ""}`);
    this.name = "CommandError";
  }
}

export async function run(argv: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): Promise<string> {
  const proc = Bun.spawn(argv, { cwd: opts.cwd, env: opts.env ?? process.env, stdout: "pipe", stderr: "pipe" });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited,
  ]);
  if (code !== 0) throw new CommandError(argv, code, stderr);
  return stdout;
}
