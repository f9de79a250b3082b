# shimlet: build, test, demo, benchmark.
# Every target installs what it lacks (as root, via apt-get / rustup) and says so.

TARGET   := x86_64-unknown-linux-musl
AARCH64  := aarch64-unknown-linux-musl
BIN      := target/$(TARGET)/release/shimlet
PREFIX   ?= /usr/local
DESTDIR  ?=
CARGO    ?= cargo
export SHIMLET_BIN := $(abspath $(BIN))
# `--version` says the commit it was built from (conmon's `commit:` line).
export SHIMLET_COMMIT := $(shell c=$$(git rev-parse HEAD 2>/dev/null) && { git diff --quiet HEAD -- || c=$$c-dirty; echo $$c; })

.PHONY: all build aarch64 test unit unit-aarch64 integration lint run shell bench bench-scale bench-cri install clean deps-build deps-aarch64 deps-test size

all: build

# --- prerequisites ---------------------------------------------------------
deps-build:
	@rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || { \
	  echo "make: adding the Rust target $(TARGET) (rustup target add)"; \
	  rustup target add $(TARGET); }

# aarch64: rust-lld links it (no cross toolchain), qemu-user runs its tests.
deps-aarch64:
	@rustup target list --installed 2>/dev/null | grep -qx $(AARCH64) || { \
	  echo "make: adding the Rust target $(AARCH64) (rustup target add)"; \
	  rustup target add $(AARCH64); }
	@command -v qemu-aarch64 >/dev/null || { \
	  echo "make: installing qemu-user (apt-get), to run the aarch64 unit tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null; }

# Debian packages the tests and the demo run against.
TEST_PKGS := runc busybox-static conmon podman criu containerd
deps-test:
	@missing=""; for p in $(TEST_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# --- build -----------------------------------------------------------------
build: deps-build
	$(CARGO) build --release --locked --target $(TARGET) -p shimlet
	@ln -sf shimlet $(dir $(BIN))containerd-shim-shimlet-v1
	@echo "built $(BIN): $$(stat -c %s $(BIN)) bytes (and containerd-shim-shimlet-v1, a link to it)"

size: build
	@stat -c '%s bytes %n' $(BIN); file $(BIN)

aarch64: deps-aarch64
	$(CARGO) rustc --release --locked --target $(AARCH64) -p shimlet --bin shimlet -- -C link-arg=-Tsrc/noeh.ld
	@echo "built target/$(AARCH64)/release/shimlet: $$(stat -c %s target/$(AARCH64)/release/shimlet) bytes"

# --- tests -----------------------------------------------------------------
unit:
	$(CARGO) test --locked -p shimlet

integration: build deps-test
	$(CARGO) test --locked --no-fail-fast -p shimlet-tests

# The unit tests of the aarch64 build, under qemu-user.
unit-aarch64: deps-aarch64
	$(CARGO) test --locked --target $(AARCH64) -p shimlet

test: build deps-test
	$(CARGO) test --locked --no-fail-fast --workspace --exclude shimlet-bench
	$(MAKE) --no-print-directory unit-aarch64

# Formatting and lints, as CI checks them.
lint: deps-aarch64
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked --target $(AARCH64) -p shimlet --all-targets -- -D warnings

# --- demo ------------------------------------------------------------------
run: build deps-test
	@sh tests/demo.sh run

shell: build deps-test
	@sh tests/demo.sh shell

# --- benchmark -------------------------------------------------------------
bench: build
	$(CARGO) run --release --locked -p shimlet-bench -- $(BENCH_ARGS)

bench-scale: build
	$(CARGO) run --release --locked -p shimlet-bench -- --scale $(BENCH_ARGS)

# Figure 6: a pod's shim under containerd's CRI plugin, runc-v2 against shimlet.
bench-cri: build
	$(CARGO) run --release --locked -p shimlet-bench --bin shimlet-bench-cri -- $(BENCH_ARGS)

# --- install ---------------------------------------------------------------
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/shimlet
	ln -sf shimlet $(DESTDIR)$(PREFIX)/bin/containerd-shim-shimlet-v1
	@if [ -f docs/shimlet.1 ]; then install -D -m 0644 docs/shimlet.1 $(DESTDIR)$(PREFIX)/share/man/man1/shimlet.1; fi

clean:
	$(CARGO) clean
