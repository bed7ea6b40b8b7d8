# native/: the Rust N-API addon (erasure coding, hashing). Built offline from Debian's
# librust-*-dev crates with the rustup toolchain in ~/.cargo/bin (Debian's rustc is too old for
# the AVX-512/GFNI intrinsics). libisal-dev and b3sum are the benchmark peers.
APT_PACKAGES += librust-blake3-dev librust-blake2b-simd-dev librust-snap-dev librust-rayon-dev \
  libisal-dev b3sum
BUILD_TARGETS += build/native/zos_native.node
BENCH_AREAS += native

NATIVE_SOURCES := native/Cargo.toml native/Cargo.lock native/build.rs native/.cargo/config.toml \
  $(shell find native/src -name '*.rs')

build/native/zos_native.node: $(NATIVE_SOURCES) | $(STAMP)/apt
	@command -v cargo >/dev/null || { echo "native: cargo not found; install rustup's stable toolchain (>= 1.89) into ~/.cargo/bin"; exit 1; }
	cd native && cargo build --release
	@mkdir -p $(@D)
	cp native/target/release/libzos_native.so $@.tmp && mv $@.tmp $@
