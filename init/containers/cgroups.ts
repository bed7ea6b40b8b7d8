// cgroup v2 for containers: /sys/fs/cgroup/zos/<name> is ours, crun creates and removes the leaf
// <name>/ctr with the limits. Reading memory.events of our level (which counts its whole subtree)
// still works after crun removed the leaf, so an OOM kill is seen even though the leaf is gone.
import { existsSync, mkdirSync, readFileSync, rmdirSync, statfsSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const CGROUP2_MAGIC = 0x63677270;
const CONTROLLERS = ["cpu", "memory", "pids"];

export interface ResourceUse {
  memoryBytes: number | null;
  cpuUsec: number | null;
  pids: number | null;
}

export class Cgroups {
  constructor(readonly root = "/sys/fs/cgroup", readonly base = "zos") {}

  /** True when root is a cgroup2 mount offering the controllers limits need. */
  available(): boolean {
    try {
      if (statfsSync(this.root).type !== CGROUP2_MAGIC) return false;
      const have = readFileSync(join(this.root, "cgroup.controllers"), "utf8").split(/\s+/);
      return CONTROLLERS.every((c) => have.includes(c));
    } catch {
      return false;
    }
  }

  private dir(name: string): string {
    return join(this.root, this.base, name);
  }

  /** The path crun gets (relative to the cgroup2 root). */
  leafPath(name: string): string {
    return `/${this.base}/${name}/ctr`;
  }

  private enable(dir: string): void {
    writeFileSync(join(dir, "cgroup.subtree_control"), CONTROLLERS.map((c) => `+${c}`).join(" "));
  }

  prepare(name: string): void {
    this.enable(this.root);
    mkdirSync(join(this.root, this.base), { recursive: true });
    this.enable(join(this.root, this.base));
    mkdirSync(this.dir(name), { recursive: true });
    this.enable(this.dir(name));
  }

  /** OOM kills in the container's subtree so far. */
  oomKills(name: string): number {
    try {
      const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(this.dir(name), "memory.events"), "utf8"));
      return m ? Number(m[1]) : 0;
    } catch {
      return 0;
    }
  }

  use(name: string): ResourceUse {
    const read = (f: string) => {
      try {
        return readFileSync(join(this.dir(name), f), "utf8");
      } catch {
        return null;
      }
    };
    const mem = read("memory.current"), cpu = read("cpu.stat"), pids = read("pids.current");
    return {
      memoryBytes: mem === null ? null : Number(mem),
      cpuUsec: cpu === null ? null : Number(/^usage_usec (\d+)$/m.exec(cpu)?.[1] ?? NaN),
      pids: pids === null ? null : Number(pids),
    };
  }

  /** Removes our level (and a leaf crun left behind). */
  remove(name: string): void {
    for (const d of [join(this.dir(name), "ctr"), this.dir(name)]) {
      if (existsSync(d)) rmdirSync(d);
    }
  }
}
