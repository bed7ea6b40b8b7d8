# vdisk/: the NBD server and thin, deduplicated, snapshot-able virtual disks over the store.
# libnbd-bin (nbdinfo, nbdcopy), qemu-utils (qemu-img), fio (nbd engine) and nbdkit (the
# benchmark peer) are the real clients the tests and the benchmark drive.
APT_PACKAGES += libnbd-bin qemu-utils fio nbdkit
BENCH_AREAS += vdisk
