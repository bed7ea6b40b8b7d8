// Driving Debian's crun. `run` keeps crun in the foreground as the container's parent, so its exit
// status is the container's and the container's stdout/stderr are the pipes we hand it; state, kill,
// delete and exec address the container by id under our own --root.
import { existsSync, readdirSync, readFileSync, rmSync, watch } from "node:fs";
import { join } from "node:path";
import { ContainerError } from "./errors.ts";
import { mustRun, runCommand, type CommandResult } from "./command.ts";

/** Written by crun in the bundle: the container's pid, as one decimal number. */
const PID_FILE = "pid";

/** The pid in a pid file; null while it is absent or not yet written (crun truncates, then writes). */
function readPid(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, "latin1"));
    return Number.isInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}

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

  private runArgv(id: string, bundle: string): string[] {
    return this.argv("run", "--bundle", bundle, "--pid-file", join(bundle, PID_FILE), id);
  }

  /**
   * Creates and starts the container; the process lives until the container's init exits. `running`
   * resolves with the container's pid once it runs the user's command, or null when crun exits
   * first. crun writes the pid file right after the state file that `crun state` reads, once the
   * container was released to exec; an inotify watch on the bundle sees it at once, where polling
   * the state would wait a timer step.
   */
  run(id: string, bundle: string): { proc: ReturnType<typeof Bun.spawn>; running: Promise<number | null> } {
    const pidFile = join(bundle, PID_FILE);
    rmSync(pidFile, { force: true });
    // watched before the spawn, so the write cannot be missed
    const watcher = watch(bundle);
    const proc = Bun.spawn(this.runArgv(id, bundle), { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
    const running = new Promise<number | null>((resolve) => {
      const done = (pid: number | null) => {
        watcher.close();
        resolve(pid);
      };
      // a watch that fails leaves the pid unknown; the container is still supervised through crun's exit
      watcher.on("error", () => done(null));
      watcher.on("change", (_event, file) => {
        if (file !== PID_FILE) return;
        const pid = readPid(pidFile);
        if (pid !== null) done(pid);
      });
      void proc.exited.then(() => done(null));
    });
    return { proc, running };
  }

  /**
   * SIGKILLs `crun run` monitors of this id that an earlier init left (found by their exact command
   * line) and waits until they are gone: left alive, one would clean up crun's state of the id when
   * its container dies, under a container recreated with the same id.
   */
  async killStaleRuns(id: string, bundle: string): Promise<void> {
    const want = this.runArgv(id, bundle).join("\0");
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
