# store/: the 0-db-compatible server, backends, erasure-coded placement and repair.
APT_PACKAGES += redis-server redis-tools
BENCH_AREAS += store
