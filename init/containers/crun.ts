// Driving Debian's crun. `run` keeps crun in the foreground as the container's parent, so its exit
// status is the container's and the container's stdout/stderr are the pipes we hand it; state, kill,
// delete and exec address the container by id under our own --root.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ContainerError } from "./errors.ts";
import { mustRun, runCommand, type CommandResult } from "./command.ts";

export class Crun {
  constructor(
    /** crun's state directory (--root). */
    readonly root: string,
    /** "cgroupfs" on a cgroup v2 node; "disabled" where init cannot manage cgroup v2 (the dev host). */
    readonly cgroupManager: "cgroupfs" | "disabled",
    readonly binary = "crun",
  ) {}

  private argv(...args: string[]): string[] {
    return [this.binary, "--root", this.root, `--cgroup-manager=${this.cgroupManager}`, ...args];
  }

  /** Creates and starts the container; the process lives until the container's init exits. */
  run(id: string, bundle: string): ReturnType<typeof Bun.spawn> {
    return Bun.spawn(this.argv("run", "--bundle", bundle, id), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  }

  /**
   * SIGKILLs `crun run` monitors of this id that an earlier init left (found by their exact command
   * line) and waits until they are gone: left alive, one would clean up crun's state of the id when
   * its container dies, under a container recreated with the same id.
   */
  async killStaleRuns(id: string, bundle: string): Promise<void> {
    const want = this.argv("run", "--bundle", bundle, id).join("\0");
    const stale: number[] = [];
    for (const e of readdirSync("/proc")) {
      if (!/^\d+$/.test(e)) continue;
      try {
        const argv = readFileSync(`/proc/${e}/cmdline`, "utf8").replace(/\0$/, "");
        if (argv.endsWith(want) && argv.split("\0").length === want.split("\0").length && Number(e) !== process.pid) stale.push(Number(e));
      } catch {
        // exited meanwhile
      }
    }
    for (const pid of stale) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    while (stale.some((pid) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, "latin1").includes(") Z "))) await Bun.sleep(5);
  }

  /**
   * The container's pid once its process runs the user's command, read from crun's own state files
   * (what `crun state` reads, without a process per poll): <root>/<id>/status holds the pid, and
   * exec.fifo exists from create until start.
   */
  runningPid(id: string): number | null {
    const dir = join(this.root, id);
    try {
      if (existsSync(join(dir, "exec.fifo"))) return null;
      const pid = (JSON.parse(readFileSync(join(dir, "status"), "utf8")) as { pid?: number }).pid;
      return typeof pid === "number" && pid > 0 ? pid : null;
    } catch {
      return null; // not written yet, or mid-write
    }
  }

  async kill(id: string, signal: string): Promise<void> {
    const r = await runCommand(this.argv("kill", id, signal));
    // a container that exited meanwhile is not an error for a stop
    if (r.code !== 0 && !/not running|does not exist|No such process|No such file or directory|container .* not found/i.test(r.stderr)) {
      throw new ContainerError("system", `crun kill ${id} ${signal}: ${r.stderr.trim()}`, { container: id, step: "kill" });
    }
  }

  async delete(id: string): Promise<void> {
    const r = await runCommand(this.argv("delete", "--force", id));
    if (r.code !== 0 && !/does not exist|not found/i.test(r.stderr)) await mustRun(this.argv("delete", "--force", id), "crun delete", { container: id });
  }

  async exec(id: string, args: string[], signal?: AbortSignal): Promise<CommandResult> {
    return runCommand(this.argv("exec", id, ...args), { signal });
  }
}
