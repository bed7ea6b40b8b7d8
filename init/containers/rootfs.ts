// A container's root filesystem: its flist's shared read-only FUSE mount as the lower layer, a tmpfs
// for the overlay's upper and work dirs (rw/) or, for a persistent container, a directory on a vdisk
// (<vdisk>/overlay/<name>/), and overlayfs joining them (rootfs/). The overlay is
// mounted and unmounted on another thread (off-thread.ts): the FUSE mount below it is served by this
// process's event loop, so the main thread must not block inside mount(2) while the kernel looks it up.
import { chmodSync, chownSync, closeSync, mkdirSync, openSync, utimesSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { mount, umount, MNT_DETACH } from "../libc.ts";
import { S_IFDIR, S_IFMT } from "../../fuse-fs/flist.ts";
import { ContainerError } from "./errors.ts";
import type { FlistLease, FlistMounts } from "./flist-mounts.ts";
import { mountsUnder } from "./flist-source.ts";
import { mountOffThread, umountOffThread } from "./off-thread.ts";
import { ETC_MOUNTS, TOP_MOUNT_POINTS } from "./oci.ts";
import type { ContainerSpec } from "./spec.ts";
import { VdiskError } from "../vdisks/errors.ts";

/**
 * Gives a fresh upper layer the directories crun mounts on or in (/proc, /dev, /sys, /tmp, /etc)
 * and empty files where it bind-mounts the container's hostname, hosts and resolv.conf. Left to
 * crun, each is opened or made inside the overlay: /etc is copied up from the flist and the others
 * opened there, about 15 FUSE requests per container (xattrs, ioctl, opendir) answered by this
 * process. Each directory takes the flist's owner, mode and times, as a copy-up would; one the
 * flist has as something else (a symlinked /etc) is left to crun, which follows it. The flist's
 * records are read in this process: asking the mount would cost a kernel round trip per name.
 */
function seedMountPoints(lower: FlistLease, upper: string): void {
  for (const d of TOP_MOUNT_POINTS) {
    const n = lower.entry(d);
    if (n && (n.mode & S_IFMT) !== S_IFDIR) continue;
    const dir = join(upper, d);
    mkdirSync(dir, { mode: 0o755 });
    if (n) {
      chownSync(dir, n.uid, n.gid);
      chmodSync(dir, n.mode & 0o7777);
      utimesSync(dir, n.mtime, n.mtime);
    }
    if (d === "etc") for (const f of ETC_MOUNTS) closeSync(openSync(join(dir, f), "w", 0o644));
  }
}

/** What a container's vdisk mounts need from the node's vdisks (init/vdisks/manager.ts). */
export interface VdiskProvider {
  /** Attaches it if need be; resolves with the host path to bind into the container. */
  acquire(vdisk: string, url: string | undefined, container: string): Promise<string>;
  release(vdisk: string, container: string): Promise<void>;
}

/** The mounted filesystems of one container; `unmount` undoes whatever part was mounted. */
export class Rootfs {
  private leases: FlistLease[] = [];
  private vdiskReleases: (() => Promise<void>)[] = [];
  /** Host paths of extra flist and vdisk mounts, indexed like spec.mounts. */
  readonly extraSources: (string | undefined)[] = [];

  constructor(readonly bundle: string) {}

  get rootfs(): string {
    return join(this.bundle, "rootfs");
  }

  async mount(spec: ContainerSpec, flists: FlistMounts, vdisks: VdiskProvider | null = null): Promise<void> {
    for (const v of [...spec.mounts.filter((m) => m.type === "vdisk"), ...(spec.rwVdisk ? [spec.rwVdisk] : [])]) {
      if (!vdisks) throw new ContainerError("unsupported", `mounts: vdisk ${v.vdisk} needs an NBD-attached block device, which only a node has`, { container: spec.name, step: "mounts" });
    }
    // the flist mount waits for its FUSE handshake, while the upper layer is made
    const lowerMounted = flists.acquire(spec.flist, spec.stores, spec.name).then((l) => {
      this.leases.push(l);
      return l;
    });
    const rwMade = this.upperAndWork(spec, vdisks);
    const [lowerR, rwR] = await Promise.allSettled([lowerMounted, rwMade]);
    if (lowerR.status === "rejected") throw lowerR.reason;
    if (rwR.status === "rejected") throw rwR.reason;
    const lower = lowerR.value, rw = rwR.value;
    for (const [i, m] of spec.mounts.entries()) {
      if (m.type !== "flist") continue;
      const lease = await flists.acquire(m.flist, spec.stores, spec.name);
      this.leases.push(lease);
      this.extraSources[i] = lease.mountpoint;
    }
    for (const [i, m] of spec.mounts.entries()) {
      if (m.type === "vdisk") this.extraSources[i] = await this.useVdisk(vdisks!, m.vdisk, m.url, spec.name, "mounts");
    }
    if (!spec.rwVdisk) seedMountPoints(lower, join(rw, "upper"));
    mkdirSync(this.rootfs, { recursive: true });
    try {
      await mountOffThread("zos-overlay", this.rootfs, "overlay", 0, `lowerdir=${lower.mountpoint},upperdir=${rw}/upper,workdir=${rw}/work`);
    } catch (e) {
      throw new ContainerError("system", `overlay: ${(e as Error).message}`, { container: spec.name, step: "overlay" }, { cause: e });
    }
  }

  /** The directory holding the overlay's upper and work dirs: a fresh tmpfs, or the container's directory on its vdisk. */
  private async upperAndWork(spec: ContainerSpec, vdisks: VdiskProvider | null): Promise<string> {
    if (spec.rwVdisk) {
      // async: the vdisk's NBD server may be slow, and init's event loop serves the flist mounts
      const rw = join(await this.useVdisk(vdisks!, spec.rwVdisk.vdisk, spec.rwVdisk.url, spec.name, "overlay"), "overlay", spec.name);
      await mkdir(join(rw, "upper"), { recursive: true });
      await mkdir(join(rw, "work"), { recursive: true });
      return rw;
    }
    const rw = join(this.bundle, "rw");
    mkdirSync(rw, { recursive: true });
    try {
      mount("zos-rw", rw, "tmpfs", 0, `size=${spec.rwSizeBytes},mode=0755`);
    } catch (e) {
      throw new ContainerError("system", `overlay: tmpfs on ${rw}: ${(e as Error).message}`, { container: spec.name, step: "overlay" }, { cause: e });
    }
    mkdirSync(join(rw, "upper"));
    mkdirSync(join(rw, "work"));
    return rw;
  }

  /** The host path of a vdisk the container uses (attached now if need be), released in unmount. */
  private async useVdisk(vdisks: VdiskProvider, vdisk: string, url: string | undefined, container: string, step: string): Promise<string> {
    let path: string;
    try {
      path = await vdisks.acquire(vdisk, url, container);
    } catch (e) {
      if (e instanceof VdiskError) throw new ContainerError(e.code, `${step}: ${e.message}`, { container, step }, { cause: e });
      throw e;
    }
    this.vdiskReleases.push(() => vdisks.release(vdisk, container));
    return path;
  }

  /** Unmounts everything under the bundle (detaching what is busy) and releases the flist mounts. */
  async unmount(): Promise<void> {
    for (const p of mountsUnder(this.bundle)) {
      if (p === this.rootfs) {
        // busy: detach it; if even that fails, the check below reports what is still mounted
        await umountOffThread(p).catch(() => umountOffThread(p, MNT_DETACH)).catch(() => {});
      } else {
        umount(p, MNT_DETACH);
      }
    }
    const leases = this.leases;
    this.leases = [];
    await Promise.all(leases.map((l) => l.release()));
    // after the overlay: a vdisk this container attached is detached with its last user
    const releases = this.vdiskReleases;
    this.vdiskReleases = [];
    const failed = (await Promise.allSettled(releases.map((r) => r()))).find((r) => r.status === "rejected");
    const left = mountsUnder(this.bundle);
    if (left.length) throw new ContainerError("system", `still mounted after teardown: ${left.join(", ")}`, { step: "unmount" });
    if (failed) throw (failed as PromiseRejectedResult).reason;
  }
}
