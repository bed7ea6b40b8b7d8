# Zero-OS build.  The two commands a newcomer needs:
#   make run    build what is missing and boot a node in QEMU
#   make test   install what is missing, build, run every test
# Each part adds its own packages, build outputs and tests in <part>/part.mk.
SHELL := /bin/bash
.DEFAULT_GOAL := help
export PATH := $(HOME)/.cargo/bin:$(CURDIR)/node_modules/.bin:$(PATH)
BUN := $(CURDIR)/node_modules/.bin/bun
STAMP := build/stamp

# Debian packages needed by the build itself; parts append theirs. Debian's npm conflicts with a
# nodejs that bundles its own npm (NodeSource's), so it is only asked for when npm is missing.
APT_PACKAGES := ca-certificates build-essential pkg-config git nodejs $(if $(shell command -v npm),,npm)
# Targets `make build` produces; parts append theirs (e.g. the native addon).
BUILD_TARGETS :=
# Extra prerequisites of `make test` (e.g. the boot image for the whole-OS test).
TEST_PREREQS :=
# Benchmark areas; each has bench/<area>.ts and a `make bench-<area>` target.
BENCH_AREAS :=

include $(sort $(wildcard */part.mk))

.PHONY: help deps build lint test bench run clean
help:
	@echo "make run     build and boot a Zero-OS node in QEMU"
	@echo "make test    install what is missing, build, run every test"
	@echo "make bench   run every benchmark (bench-<area>: $(BENCH_AREAS))"
	@echo "make deps | build | lint | clean"

# Installs only what is missing, so a machine that has everything is not touched.
$(STAMP)/apt: Makefile $(wildcard */part.mk)
	@missing=$$(for p in $(sort $(APT_PACKAGES)); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "apt: installing" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(STAMP) && touch $@

$(STAMP)/npm: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@mkdir -p $(STAMP) && touch $@

deps: $(STAMP)/apt $(STAMP)/npm

build: deps $(BUILD_TARGETS)

lint: deps
	$(BUN) x tsc --noEmit -p tsconfig.json

test: build lint $(TEST_PREREQS)
	$(BUN) scripts/run-tests.ts

bench: $(addprefix bench-,$(BENCH_AREAS))

bench-%: build
	$(BUN) bench/$*.ts

clean:
	rm -rf build out native/target
