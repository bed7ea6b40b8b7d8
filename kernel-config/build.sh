#!/bin/bash
# make kernel: builds a minimal Zero-OS kernel from Debian's linux-source with zos.config merged
# onto x86_64 defconfig. Optional: the image uses Debian's prebuilt kernel unless you copy the
# result over out/vmlinuz. See kernel-config/README.md for the time it takes.
#   kernel-config/build.sh [--config-only]   (--config-only: stop after checking the merged .config)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
fragment=$root/kernel-config/zos.config

# Debian's kernel source and what its build needs (the Makefile's apt stamp does not cover these:
# they are only for this optional target).
need=(linux-source bc bison flex libelf-dev libssl-dev)
missing=$(for p in "${need[@]}"; do dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' || echo "$p"; done)
if [ -n "$missing" ]; then
  echo "kernel: installing $missing"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi

tarball=$(ls /usr/src/linux-source-*.tar.xz | sort -V | tail -1)
src=$root/build/kernel-src/$(basename "$tarball" .tar.xz)
if [ ! -f "$src/Makefile" ]; then
  echo "kernel: unpacking $tarball"
  mkdir -p "$root/build/kernel-src"
  tar -C "$root/build/kernel-src" -xf "$tarball"
fi
cd "$src"
make -s x86_64_defconfig
scripts/kconfig/merge_config.sh -m -O . .config "$fragment" >/dev/null
make -s olddefconfig

# Every option the fragment asks for must have survived olddefconfig (a dependency it lacks drops it).
lost=0
while IFS= read -r line; do
  case "$line" in CONFIG_*=*) ;; *) continue ;; esac
  if ! grep -qx "$line" .config; then
    echo "kernel: $line did not survive olddefconfig (now: $(grep "^${line%%=*}=" .config || echo 'not set'))"
    lost=1
  fi
done < "$fragment"
[ "$lost" = 0 ] && echo "kernel: every option of zos.config is in $src/.config"
[ "${1:-}" = "--config-only" ] && exit "$lost"

start=$(date +%s)
make -j"$(nproc)" bzImage
mkdir -p "$root/out"
cp arch/x86/boot/bzImage "$root/out/vmlinuz-zos"
echo "kernel: out/vmlinuz-zos ($(stat -c %s "$root/out/vmlinuz-zos") bytes) built in $(( $(date +%s) - start )) s"
