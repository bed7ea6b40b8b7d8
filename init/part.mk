# init/: PID 1 (boot, supervisor, identity, signed RPC) and cli/ (the zos command line).
# busybox: udhcpc and `ip` for DHCP at boot (the image ships /bin/busybox); util-linux: unshare for
# the PID-namespace test; redis-tools/redis-server: the unsigned ceiling in bench-init.
APT_PACKAGES += busybox util-linux redis-server redis-tools
BENCH_AREAS += init
