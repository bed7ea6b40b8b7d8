# init/: PID 1 (boot, supervisor, identity, signed RPC) and cli/ (the zos command line).
# busybox: udhcpc and `ip` for DHCP at boot (the image ships /bin/busybox); util-linux: unshare for
# the PID-namespace test; iproute2: test network namespaces; chrony: a real NTP server for the SNTP
# test (started by the test with -x, never touching the clock); redis: the unsigned ceiling in bench-init.
APT_PACKAGES += busybox util-linux iproute2 chrony redis-server redis-tools
BENCH_AREAS += init
# containers: crun runs them, nftables does NAT and port forwards (bridge and veths need iproute2).
APT_PACKAGES += crun nftables
BENCH_AREAS += containers
