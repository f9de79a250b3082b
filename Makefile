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

.PHONY: all build aarch64 test test-host test-vm unit unit-aarch64 integration lint run shell bench bench-scale bench-cri bench-containerd bench-vm bench-bin install deb clean deps-build deps-aarch64 deps-test size

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
	$(CARGO) rustc --release --locked --target $(AARCH64) -p shimlet --bin shimlet -- -C link-arg=-Tsrc/layout.ld
	@echo "built target/$(AARCH64)/release/shimlet: $$(stat -c %s target/$(AARCH64)/release/shimlet) bytes"

# --- tests -----------------------------------------------------------------
unit:
	$(CARGO) test --locked -p shimlet

integration: build deps-test
	$(CARGO) test --locked --no-fail-fast -p shimlet-tests

# The unit tests of the aarch64 build, under qemu-user.
unit-aarch64: deps-aarch64
	$(CARGO) test --locked --target $(AARCH64) -p shimlet

# Every test: the host suites (and the aarch64 unit tests under qemu-user),
# then the VM lane (Debian 13 under qemu: systemd, cgroup v2, podman 5,
# crun; tests/vm/). Without qemu the lane says so in capitals and is
# skipped, unless SHIMLET_VM=required (.ci/run sets it).
# VM_ARGS: words a VM scenario's name must contain (e.g. VM_ARGS=rootless).
# Without VM_ARGS the lane ends with the bench on cgroup v2 (make bench-vm).
test: test-host deb bench-bin
	@tests/vm/lane $(VM_ARGS)

# The host suites only: unit (x86_64 and aarch64), runc, attach/pty,
# faults, log drivers, podman 4, containerd, CRI.
test-host: build deps-test
	$(CARGO) test --locked --no-fail-fast --workspace --exclude shimlet-bench
	$(MAKE) --no-print-directory unit-aarch64

# Formatting and lints, as CI checks them.
lint: deps-aarch64
	$(CARGO) fmt --all --check
	$(CARGO) clippy --locked --workspace --all-targets -- -D warnings
	$(CARGO) clippy --locked --target $(AARCH64) -p shimlet --all-targets -- -D warnings

# The VM lane only; fails when it cannot run.
test-vm: deb bench-bin
	@tests/vm/lane --required $(VM_ARGS)

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

# Figure 7 alone (also part of `make bench`): a container's shim under
# containerd (ctr run), runc-v2 against shimlet.
bench-containerd: build
	$(CARGO) run --release --locked -p shimlet-bench -- --only containerd $(BENCH_ARGS)

# Figures 1 and 7 on cgroup v2 and systemd: the VM lane's bench step alone
# (Debian 13 under qemu, tests/vm/), the .deb's /usr/bin/shimlet against
# conmon and no shim; results in target/bench/vm/. BENCH_ARGS replace the
# lane's (--only memory,containerd --n 10 --runs 1 --ctrd-n 5 --ctrd-runs 1).
bench-vm: deb bench-bin
	@SHIMLET_VM_BENCH='$(BENCH_ARGS)' tests/vm/lane --required bench

# The bench's binary, for the VM lane (target/release/shimlet-bench).
bench-bin:
	$(CARGO) build --release --locked -p shimlet-bench

# Figure 6: a pod's shim under containerd's CRI plugin, runc-v2 against shimlet.
bench-cri: build
	$(CARGO) run --release --locked -p shimlet-bench --bin shimlet-bench-cri -- $(BENCH_ARGS)

# --- Debian package ----------------------------------------------------------
# target/deb/shimlet_VERSION_amd64.deb, built with dpkg-deb alone: the static
# binary, the man page, the containers.conf drop-in as an example, and the
# containerd shim name as a symlink once the build makes that binary.
VERSION  := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
DEB      := target/deb/shimlet_$(VERSION)_amd64.deb
SHIM_V2  := target/$(TARGET)/release/containerd-shim-shimlet-v1
DEB_ROOT := target/deb/root

deb: build
	@rm -rf $(DEB_ROOT) && mkdir -p $(DEB_ROOT)/DEBIAN
	install -D -m 0755 $(BIN) $(DEB_ROOT)/usr/bin/shimlet
	@if [ -e $(SHIM_V2) ]; then ln -s shimlet $(DEB_ROOT)/usr/bin/containerd-shim-shimlet-v1; \
	  echo "deb: with /usr/bin/containerd-shim-shimlet-v1"; fi
	install -d $(DEB_ROOT)/usr/share/man/man1
	gzip -9n < docs/shimlet.1 > $(DEB_ROOT)/usr/share/man/man1/shimlet.1.gz
	install -D -m 0644 docs/50-shimlet.conf $(DEB_ROOT)/usr/share/doc/shimlet/examples/50-shimlet.conf
	printf 'shimlet\nLicense: Apache-2.0 (/usr/share/common-licenses/Apache-2.0)\n' > $(DEB_ROOT)/usr/share/doc/shimlet/copyright
	@{ echo "Package: shimlet"; \
	   echo "Version: $(VERSION)"; \
	   echo "Architecture: amd64"; \
	   echo "Maintainer: shimlet developers <shimlet@localhost>"; \
	   echo "Installed-Size: $$(du -sk --exclude=DEBIAN $(DEB_ROOT) | cut -f1)"; \
	   echo "Section: admin"; \
	   echo "Priority: optional"; \
	   echo "Enhances: podman, cri-o, containerd"; \
	   echo "Description: the smallest container runtime shim (a conmon replacement)"; \
	   echo " One static, allocation-free binary that sits between a container manager"; \
	   echo " (podman, CRI-O) and an OCI runtime (runc, crun). It speaks conmon's"; \
	   echo " protocol: podman --conmon /usr/bin/shimlet, or conmon_path in"; \
	   echo " containers.conf (see /usr/share/doc/shimlet/examples/50-shimlet.conf)."; \
	   echo " As containerd-shim-shimlet-v1 it is containerd's runtime v2 shim"; \
	   echo " io.containerd.shimlet.v1 (ctr, nerdctl, Docker, the CRI plugin)."; \
	 } > $(DEB_ROOT)/DEBIAN/control
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB) >/dev/null
	@rm -rf $(DEB_ROOT)
	@echo "built $(DEB):"; dpkg-deb --contents $(DEB) | awk '{ print "  " $$1, $$6, $$7, $$8 }'

# --- install ---------------------------------------------------------------
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/shimlet
	ln -sf shimlet $(DESTDIR)$(PREFIX)/bin/containerd-shim-shimlet-v1
	@if [ -f docs/shimlet.1 ]; then install -D -m 0644 docs/shimlet.1 $(DESTDIR)$(PREFIX)/share/man/man1/shimlet.1; fi

clean:
	$(CARGO) clean
