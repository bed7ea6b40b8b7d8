# initramfs/, kernel-config/, scripts/: the boot image, QEMU / iPXE / USB boot, the whole-OS test.
#   make image   out/vmlinuz, out/initramfs.cpio.zst, out/boot.ipxe, out/zos.img, with sizes
#   make run     boot a node in QEMU (serial console here, RPC forwarded to localhost)
#   make ipxe    out/boot.ipxe; `bun scripts/ipxe.ts serve` serves it with kernel and initramfs
#   make kernel  optional: a minimal kernel from Debian's linux-source (kernel-config/README.md)
# The kernel is Debian's prebuilt linux-image-<version>-amd64, fetched with apt-get download.
APT_PACKAGES += qemu-system-x86 qemu-utils ovmf ipxe-qemu cpio zstd xz-utils kmod busybox \
  crun util-linux iproute2 nftables nbd-client e2fsprogs dosfstools mtools gdisk fdisk systemd-boot-efi syslinux syslinux-common
TEST_PREREQS += image
BENCH_AREAS += boot

# init's bundle pulls in whatever init imports (fuse-fs, store, vdisk, native/index.ts).
IMAGE_SOURCES := $(wildcard initramfs/*.ts initramfs/*.c) $(shell find init native/index.ts fuse-fs store vdisk -name '*.ts' 2>/dev/null)

.PHONY: image ipxe kernel test-e2e
image: out/vmlinuz out/initramfs.cpio.zst out/boot.ipxe out/zos.img
	@$(BUN) scripts/image-sizes.ts

# Engineers share one checkout: two image builds at once would share build/initramfs, so they take turns.
IMAGE_LOCK := flock build/image.lock

out/initramfs.cpio.zst out/vmlinuz &: $(IMAGE_SOURCES) build/native/zos_native.node | $(STAMP)/apt $(STAMP)/npm
	@mkdir -p build
	$(IMAGE_LOCK) $(BUN) initramfs/build.ts

out/boot.ipxe: scripts/ipxe.ts scripts/boot-config.ts
	$(BUN) scripts/ipxe.ts write

out/zos.img: out/vmlinuz out/initramfs.cpio.zst scripts/disk-image.ts scripts/boot-config.ts
	$(IMAGE_LOCK) $(BUN) scripts/disk-image.ts

ipxe: out/boot.ipxe

run: out/vmlinuz out/initramfs.cpio.zst
	$(BUN) scripts/run.ts

kernel: | $(STAMP)/apt
	kernel-config/build.sh

test-e2e: build $(TEST_PREREQS)
	$(BUN) scripts/run-tests.ts test/e2e
