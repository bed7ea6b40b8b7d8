// The pure parts of the container manager: config.json, spec validation, the address allocator,
// cgroup file parsing (on a scratch tree: the host has no pure cgroup v2) and the CLI's run flags.
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir, totalmem } from "node:os";
import { join } from "node:path";
import { Cgroups } from "../../init/containers/cgroups.ts";
import { ContainerError } from "../../init/containers/errors.ts";
import { Ipam } from "../../init/containers/ipam.ts";
import { DEFAULT_CAPS, ociConfig, type OciContext } from "../../init/containers/oci.ts";
import { validateSpec, withDefaults, type ContainerSpec } from "../../init/containers/spec.ts";
import { parseRunArgs, parseSize } from "../../cli/commands/container.ts";

const ctx: OciContext = {
  etcFiles: { hostname: "/b/etc/hostname", hosts: "/b/etc/hosts", resolv: "/b/etc/resolv.conf" },
  netnsPath: "/b/netns", flistMountSources: [], cgroupsPath: "/zos/web/ctr", nofileHard: 1048576,
};
const spec = (p: Partial<ContainerSpec> = {}) => withDefaults({ name: "web", flist: "/f.fl", args: ["httpd"], ...p });

describe("config.json", () => {
  test("default: own namespaces, no CAP_SYS_ADMIN, seccomp, limits as cgroup v2 files", () => {
    const c = ociConfig(spec({ env: { A: "1" }, cwd: "/srv", user: { uid: 1000, gid: 100 }, limits: { memoryBytes: 64 << 20, cpus: 0.5, cpuWeight: 50, pids: 100 } }), ctx) as any;
    expect(c.linux.namespaces).toEqual([{ type: "pid" }, { type: "mount" }, { type: "uts" }, { type: "ipc" }, { type: "cgroup" }, { type: "network", path: "/b/netns" }]);
    expect(c.process.capabilities.effective).toEqual(DEFAULT_CAPS);
    expect(c.process.capabilities.bounding).not.toContain("CAP_SYS_ADMIN");
    expect(c.process.noNewPrivileges).toBe(true);
    expect(c.process.env).toContain("A=1");
    expect(c.process.cwd).toBe("/srv");
    expect(c.process.user).toEqual({ uid: 1000, gid: 100 });
    expect(c.process.rlimits).toEqual([{ type: "RLIMIT_NOFILE", hard: 65536, soft: 1024 }]);
    expect(c.linux.seccomp.syscalls[0].names).toContain("kexec_load");
    expect(c.linux.cgroupsPath).toBe("/zos/web/ctr");
    expect(c.linux.resources.unified).toEqual({ "memory.max": String(64 << 20), "memory.swap.max": "0", "cpu.max": "50000 100000", "cpu.weight": "50", "pids.max": "100" });
    expect(c.mounts.find((m: any) => m.destination === "/etc/hosts").source).toBe("/b/etc/hosts");
  });

  test("privileged: every capability, no seccomp; host network: no network namespace; no cgroups: no resources", () => {
    const c = ociConfig(spec({ privileged: true, network: "host" }), { ...ctx, netnsPath: null, cgroupsPath: null, nofileHard: 4096 }) as any;
    expect(c.process.capabilities.effective).toContain("CAP_SYS_ADMIN");
    expect(c.linux.seccomp).toBeUndefined();
    expect(c.linux.namespaces.some((n: any) => n.type === "network")).toBe(false);
    expect(c.linux.resources).toBeUndefined();
    expect(c.process.rlimits[0].hard).toBe(4096);
  });

  test("extra mounts: tmpfs with its size, flists bound read-only from their shared mount", () => {
    const c = ociConfig(spec({ mounts: [{ type: "tmpfs", target: "/t", sizeBytes: 8192 }, { type: "flist", flist: "/o.fl", target: "/o" }] }), { ...ctx, flistMountSources: [undefined, "/lowers/abc"] }) as any;
    expect(c.mounts.find((m: any) => m.destination === "/t").options).toContain("size=8192");
    const o = c.mounts.find((m: any) => m.destination === "/o");
    expect(o).toMatchObject({ type: "bind", source: "/lowers/abc" });
    expect(o.options).toContain("ro");
  });
});

describe("spec validation", () => {
  const rejects = (p: Partial<ContainerSpec>, what: RegExp) => {
    let err: unknown;
    try {
      validateSpec(spec(p));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ContainerError);
    expect((err as ContainerError).code).toBe("bad-params");
    expect((err as Error).message).toMatch(what);
  };
  test("accepts a full valid spec", () => {
    expect(() => validateSpec(spec({ env: { PATH_X: "1" }, ports: [{ hostPort: 80, containerPort: 80, protocol: "tcp" }, { hostPort: 80, containerPort: 80, protocol: "udp" }], limits: { memoryBytes: 4 << 20, cpus: 0.01, pids: 1 } }))).not.toThrow();
  });
  test("rejects what cannot work", () => {
    rejects({ name: "-x" }, /name/);
    rejects({ name: "a".repeat(33) }, /name/);
    rejects({ name: "../etc" }, /name/);
    rejects({ args: [""] }, /command/);
    rejects({ env: { "A-B": "1" } }, /env/);
    rejects({ cwd: "relative" }, /cwd/);
    rejects({ cwd: "/a/../b" }, /cwd/);
    rejects({ hostname: "-bad" }, /hostname/);
    rejects({ ports: [{ hostPort: 0, containerPort: 80, protocol: "tcp" }] }, /port/);
    rejects({ ports: [{ hostPort: 80, containerPort: 1, protocol: "tcp" }, { hostPort: 80, containerPort: 2, protocol: "tcp" }] }, /twice/);
    rejects({ mounts: [{ type: "tmpfs", target: "/" }] }, /over \//);
    rejects({ mounts: [{ type: "tmpfs", target: "/a" }, { type: "tmpfs", target: "/a" }] }, /twice/);
    rejects({ limits: { memoryBytes: totalmem() + 1 } }, /memory/);
    rejects({ limits: { cpus: 0 } }, /cpus/);
    rejects({ limits: { cpuWeight: 0 } }, /weight/);
    rejects({ rwSizeBytes: 1 }, /rwSize/);
  });
});

describe("address allocator", () => {
  test("gateway first, lowest free address, claims and releases", () => {
    const ipam = new Ipam("10.88.0.0/16");
    expect(ipam.gateway).toBe("10.88.0.1");
    expect(ipam.allocate()).toBe("10.88.0.2");
    ipam.claim("10.88.0.3");
    expect(ipam.allocate()).toBe("10.88.0.4");
    ipam.release("10.88.0.2");
    expect(ipam.allocate()).toBe("10.88.0.2");
    expect(() => ipam.claim("10.88.0.4")).toThrow(/in use/);
    expect(() => ipam.claim("10.88.0.1")).toThrow(/not a container address/);
    expect(() => ipam.claim("10.89.0.5")).toThrow(/not a container address/);
  });
  test("a full subnet is a conflict", () => {
    const ipam = new Ipam("192.168.7.0/30"); // .1 gateway, .2 the only container address
    expect(ipam.allocate()).toBe("192.168.7.2");
    expect(() => ipam.allocate()).toThrow(/no free address/);
  });
});

describe("cgroup files", () => {
  test("prepare enables controllers down to the container, OOM kills and use are read back, remove cleans up", () => {
    const root = mkdtempSync(join(tmpdir(), "zos-cg-"));
    try {
      const cg = new Cgroups(root);
      expect(cg.available()).toBe(false); // not a cgroup2 mount
      cg.prepare("web");
      for (const d of [root, join(root, "zos"), join(root, "zos/web")]) expect(readFileSync(join(d, "cgroup.subtree_control"), "utf8")).toBe("+cpu +memory +pids");
      expect(cg.leafPath("web")).toBe("/zos/web/ctr");
      expect(cg.oomKills("web")).toBe(0);
      writeFileSync(join(root, "zos/web/memory.events"), "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n");
      writeFileSync(join(root, "zos/web/memory.current"), "1048576\n");
      writeFileSync(join(root, "zos/web/cpu.stat"), "usage_usec 2500\nuser_usec 2000\n");
      writeFileSync(join(root, "zos/web/pids.current"), "3\n");
      expect(cg.oomKills("web")).toBe(2);
      expect(cg.use("web")).toEqual({ memoryBytes: 1048576, cpuUsec: 2500, pids: 3 });
      // a real cgroup directory holds only kernel files and is removed with rmdir; a scratch one must be emptied first
      for (const f of ["cgroup.subtree_control", "memory.events", "memory.current", "cpu.stat", "pids.current"]) rmSync(join(root, "zos/web", f));
      mkdirSync(join(root, "zos/web/ctr"));
      cg.remove("web");
      expect(existsSync(join(root, "zos/web"))).toBe(false);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe("zos container run flags", () => {
  const usage = (m: string) => new Error(m);
  test("sizes", () => {
    expect(parseSize("256M")).toBe(256 << 20);
    expect(parseSize("1.5GiB")).toBe(1.5 * 1024 ** 3);
    expect(parseSize("4096")).toBe(4096);
    expect(parseSize("lots")).toBeNull();
  });
  test("a full command line", () => {
    const p = parseRunArgs(["--flist", "x.fl", "--name", "n", "--env", "A=b=c", "--port", "8080:80", "--port", "53:53/udp", "--memory", "64M", "--cpus", "0.5", "--pids", "10",
      "--mount", "type=tmpfs,target=/t,size=1M", "--restart", "always", "--user", "1000", "--network", "host", "--", "sh", "-c", "echo --x"], usage);
    expect(p).toMatchObject({
      name: "n", flist: "x.fl", env: { A: "b=c" }, args: ["sh", "-c", "echo --x"], restart: "always", network: "host", user: { uid: 1000, gid: 1000 },
      ports: [{ hostPort: 8080, containerPort: 80, protocol: "tcp" }, { hostPort: 53, containerPort: 53, protocol: "udp" }],
      limits: { memoryBytes: 64 << 20, cpus: 0.5, pids: 10 }, mounts: [{ type: "tmpfs", target: "/t", sizeBytes: 1 << 20 }],
    });
  });
  test("errors", () => {
    expect(() => parseRunArgs(["--", "true"], usage)).toThrow(/--flist/);
    expect(() => parseRunArgs(["--flist", "x"], usage)).toThrow(/command/);
    expect(() => parseRunArgs(["--flist", "x", "--port", "80", "--", "true"], usage)).toThrow(/HOST:CONTAINER/);
    expect(() => parseRunArgs(["--flist", "x", "--bogus", "--", "true"], usage)).toThrow(/unknown option/);
    expect(parseRunArgs(["--flist", "x", "--", "true"], usage).name).toMatch(/^c-[0-9a-f]{6}$/);
  });
});
