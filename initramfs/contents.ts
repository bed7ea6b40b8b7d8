// What goes into a Zero-OS initramfs, and into the "floor" initramfs the boot benchmark compares it
// with. Layout of the node's image:
//   /init                              preinit.c: mounts /proc, then execs Bun on init.js as PID 1
//   /usr/bin/bun                       the pinned Bun, plus its libraries at the paths ldd names
//   /usr/lib/zos/init.js               init/main.ts bundled (bun build --target=bun --splitting), with
//   /usr/lib/zos/<chunk>-<hash>.js     the chunks it imports on first use (containers, flists)
//   /usr/lib/zos/<worker>.ts           each worker thread entry bundled the same way, where the
//                                      bundle's `new URL("./<worker>.ts", import.meta.url)` points
//   /usr/lib/zos/zos_native.node       the Rust addon; preinit sets ZOS_NATIVE_PATH to it
//   /usr/bin/crun, mount, ip, nft, nbd-client, mkfs.ext4, ... tools init runs, with their libraries
//   /bin/busybox                       init's DHCP client (udhcpc, its hook script, `ip`) and
//   /sbin/modprobe -> /bin/busybox     the kernel's request_module() helper and init's loader of
//                                      the modules no boot step needs (init/boot/modules.ts)
//   /lib/modules/<release>/            modules (plain .ko) and depmod's modules.dep/.alias; init
//                                      loads the drivers whose modalias matches the hardware and
//                                      ext4 at boot, the rest once the RPC answers
//   /etc/ssl/certs/ca-certificates.crt CA certificates; /etc/{passwd,group,hosts,nsswitch.conf}
// No console login and no busybox applet links: busybox's shell runs only the hook init writes.
import { existsSync } from "node:fs";
import { MODPROBE } from "../init/boot/modules.ts";
import type { Kernel } from "./kernel.ts";
import { stageModules } from "./modules.ts";
import { ImageTree } from "./tree.ts";

/**
 * Modules the image ships, by group; their dependencies are added from modules.dep. Which load at
 * boot is decided on the machine (init/boot/modules.ts): disk, virtio and NIC drivers only when
 * their hardware is there, the others once the RPC answers or when the kernel first asks.
 */
export const NODE_MODULES: Record<string, string[]> = {
  // Block devices and filesystems for vdisks: the kernel NBD client, ext4 (crc32c is requested by
  // name at mount time, so it is listed), loop for image files, FUSE for flists, overlayfs to give
  // a read-only flist a writable upper layer, vfat/efivarfs to read the boot partition and EFI vars.
  storage: ["nbd", "ext4", "crc32c_generic", "crc32c-intel", "loop", "fuse", "overlay", "vfat", "nls_cp437", "nls_iso8859-1", "efivarfs"],
  // Disk controllers of real servers and VMs: NVMe, AHCI SATA, SCSI disks, virtio.
  disks: ["nvme", "ahci", "sd_mod", "virtio_blk", "virtio_scsi"],
  // Virtio transport and devices QEMU gives a VM (PCI bus, console, entropy).
  virtio: ["virtio_pci", "virtio_console", "virtio-rng"],
  // Network cards: virtio and the Intel e1000/e1000e QEMU emulates, and the common server NICs
  // (Intel igb/ixgbe/i40e/ice, Broadcom tg3/bnxt, Realtek, Mellanox ConnectX-4+, VMware).
  nics: ["virtio_net", "e1000", "e1000e", "igb", "ixgbe", "i40e", "ice", "tg3", "bnxt_en", "r8169", "mlx5_core", "vmxnet3"],
  // Container networking: bridges, veth pairs, tun/tap, nftables with NAT (dnat/masquerade),
  // conntrack, fib lookups (init's port forwards match `fib daddr type local`) and reject.
  network: ["bridge", "br_netfilter", "veth", "tun", "nf_tables", "nft_chain_nat", "nft_nat", "nft_masq", "nft_redir", "nft_ct", "nf_nat", "nf_conntrack",
    "nft_fib_inet", "nft_fib_ipv4", "nft_fib_ipv6", "nft_reject_inet"],
};

/** Host binaries init runs, and where they go. Their libraries follow automatically. */
export const NODE_BINARIES: { dest: string; host: string }[] = [
  // containers (init/containers): the OCI runtime, mounts for the overlay root, network
  // namespaces, the bridge and veth links, nftables NAT and port forwards
  { dest: "/usr/bin/crun", host: "/usr/bin/crun" },
  { dest: "/usr/bin/mount", host: "/usr/bin/mount" },
  { dest: "/usr/bin/umount", host: "/usr/bin/umount" },
  { dest: "/usr/bin/unshare", host: "/usr/bin/unshare" },
  { dest: "/usr/bin/nsenter", host: "/usr/bin/nsenter" },
  { dest: "/usr/sbin/ip", host: "/usr/sbin/ip" },
  { dest: "/usr/sbin/nft", host: "/usr/sbin/nft" },
  // vdisks: the kernel NBD client's control tool and the filesystem made on a new vdisk
  { dest: "/usr/sbin/nbd-client", host: "/usr/sbin/nbd-client" },
  { dest: "/usr/sbin/mkfs.ext4", host: "/usr/sbin/mkfs.ext4" },
  // DHCP (init/boot/network.ts): udhcpc and its hook script
  { dest: "/bin/busybox", host: "/usr/bin/busybox" },
];

const ETC_FILES: Record<string, string> = {
  "/etc/passwd": "root:x:0:0:root:/root:/nonexistent\n",
  "/etc/group": "root:x:0:\n",
  "/etc/hosts": "127.0.0.1 localhost\n::1 localhost\n",
  "/etc/nsswitch.conf": "passwd: files\ngroup: files\nhosts: files dns\n",
};

/** What every image has: the directories the kernel and init expect, /dev/console, Bun, /init. */
async function addBase(tree: ImageTree, bunPath: string, preinit: string): Promise<void> {
  for (const d of ["dev", "proc", "sys", "run", "mnt", "var", "root", "etc"]) tree.add("base", { kind: "dir", path: d, mode: 0o755 });
  tree.add("base", { kind: "dir", path: "tmp", mode: 0o1777 });
  // The kernel opens /dev/console for PID 1's stdio before anything can mount devtmpfs.
  tree.add("base", { kind: "char", path: "dev/console", mode: 0o600, major: 5, minor: 1 });
  tree.add("base", { kind: "char", path: "dev/null", mode: 0o666, major: 1, minor: 3 });
  await tree.addBinary("bun", "/usr/bin/bun", bunPath);
  tree.addHostFile("init", "/init", preinit, 0o755);
}

export interface NodeInputs {
  bunPath: string;
  /** preinit.c compiled (see build.ts). */
  preinit: string;
  kernel: Kernel;
  /** Directory holding init/main.ts bundled by `bun build`: init.js and its chunks (see build.ts). */
  initBundle: string;
  /** Worker thread entries, bundled: file name -> bundled file (see build.ts). */
  workers: Map<string, string>;
  nativeAddon: string;
  caBundle: string;
  /** Scratch directory for the staged modules. */
  stageDir: string;
}

export async function assembleNode(inputs: NodeInputs): Promise<ImageTree> {
  const tree = new ImageTree();
  await addBase(tree, inputs.bunPath, inputs.preinit);
  tree.addHostDir("init", "/usr/lib/zos", inputs.initBundle);
  for (const [name, file] of inputs.workers) tree.addHostFile("init", `/usr/lib/zos/${name}`, file, 0o644);
  await tree.addBinary("native", "/usr/lib/zos/zos_native.node", inputs.nativeAddon);

  const staged = await stageModules(inputs.kernel.modulesDir, inputs.kernel.release, Object.values(NODE_MODULES).flat(), inputs.stageDir);
  tree.addHostDir("modules", `/lib/modules/${inputs.kernel.release}`, staged.dir);

  for (const b of NODE_BINARIES) await tree.addBinary("tools", b.dest, b.host);
  tree.add("tools", { kind: "symlink", path: MODPROBE, target: "/bin/busybox" });
  if (existsSync("/etc/mke2fs.conf")) tree.addHostFile("tools", "/etc/mke2fs.conf", "/etc/mke2fs.conf", 0o644);

  tree.addHostFile("certificates", "/etc/ssl/certs/ca-certificates.crt", inputs.caBundle, 0o644);
  for (const [path, text] of Object.entries(ETC_FILES)) tree.add("base", { kind: "file", path, mode: 0o644, data: Buffer.from(text) });
  // init's supervisor reads service configs from here; the image ships none
  tree.add("base", { kind: "dir", path: "/etc/zos/services", mode: 0o755 });
  return tree;
}

/**
 * The boot benchmark's floor: the same Bun, and a one-line init that prints and powers off
 * (reboot(2) with LINUX_REBOOT_CMD_POWER_OFF through bun:ffi). No modules, no tools.
 */
export const FLOOR_INIT =
  `console.log("floor: bun pid 1 up"); require("bun:ffi").dlopen("libc.so.6", { reboot: { args: ["i32"], returns: "i32" } }).symbols.reboot(0x4321fedc);\n`;

export async function assembleFloor(bunPath: string, preinit: string): Promise<ImageTree> {
  const tree = new ImageTree();
  await addBase(tree, bunPath, preinit);
  tree.add("init", { kind: "file", path: "/usr/lib/zos/init.js", mode: 0o644, data: Buffer.from(FLOOR_INIT) });
  return tree;
}
