# fuse-fs/: rfs flists (pack/inspect/unpack/tag/sign as `zflist`) and the FUSE filesystem that mounts them.
# sqlite3 checks the flist schema from outside; squashfuse and squashfs-tools are the bench peers.
APT_PACKAGES += sqlite3 squashfuse squashfs-tools attr python3
BENCH_AREAS += fs
