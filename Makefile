# shimlet: build, test, demo, benchmark.
# Every target installs what it lacks (as root, via apt-get / rustup) and says so.

TARGET   := x86_64-unknown-linux-musl
BIN      := target/$(TARGET)/release/shimlet
PREFIX   ?= /usr/local
DESTDIR  ?=
CARGO    ?= cargo
export SHIMLET_BIN := $(abspath $(BIN))

.PHONY: all build test test-host test-vm unit integration run shell bench bench-scale install deb clean deps-build deps-test size

all: build

# --- prerequisites ---------------------------------------------------------
deps-build:
	@rustup target list --installed 2>/dev/null | grep -qx $(TARGET) || { \
	  echo "make: adding the Rust target $(TARGET) (rustup target add)"; \
	  rustup target add $(TARGET); }

# Debian packages the tests and the demo run against.
TEST_PKGS := runc busybox-static conmon podman
deps-test:
	@missing=""; for p in $(TEST_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing$$missing (apt-get)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi

# --- build -----------------------------------------------------------------
build: deps-build
	$(CARGO) build --release --locked --target $(TARGET) -p shimlet
	@echo "built $(BIN): $$(stat -c %s $(BIN)) bytes"

size: build
	@stat -c '%s bytes %n' $(BIN); file $(BIN)

# --- tests -----------------------------------------------------------------
unit:
	$(CARGO) test --locked -p shimlet

integration: build deps-test
	$(CARGO) test --locked -p shimlet-tests

# Every test: the host suites, then the VM lane (Debian 13 under qemu:
# systemd, cgroup v2, podman 5, crun; tests/vm/). Without qemu the lane says
# so in capitals and is skipped, unless SHIMLET_VM=required (.ci/run sets it).
# VM_ARGS: words a VM scenario's name must contain (e.g. VM_ARGS=rootless).
test: test-host deb
	@tests/vm/lane $(VM_ARGS)

# The host suites only (unit, runc, attach/pty, faults, log drivers, podman 4).
test-host: build deps-test
	$(CARGO) test --locked --workspace --exclude shimlet-bench

# The VM lane only; fails when it cannot run.
test-vm: deb
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
	   echo "Enhances: podman, cri-o"; \
	   echo "Description: the smallest container runtime shim (a conmon replacement)"; \
	   echo " One static, allocation-free binary that sits between a container manager"; \
	   echo " (podman, CRI-O) and an OCI runtime (runc, crun). It speaks conmon's"; \
	   echo " protocol: podman --conmon /usr/bin/shimlet, or conmon_path in"; \
	   echo " containers.conf (see /usr/share/doc/shimlet/examples/50-shimlet.conf)."; \
	 } > $(DEB_ROOT)/DEBIAN/control
	dpkg-deb --root-owner-group -Zxz --build $(DEB_ROOT) $(DEB) >/dev/null
	@rm -rf $(DEB_ROOT)
	@echo "built $(DEB):"; dpkg-deb --contents $(DEB) | awk '{ print "  " $$1, $$6, $$7, $$8 }'

# --- install ---------------------------------------------------------------
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/shimlet
	@if [ -f docs/shimlet.1 ]; then install -D -m 0644 docs/shimlet.1 $(DESTDIR)$(PREFIX)/share/man/man1/shimlet.1; fi

clean:
	$(CARGO) clean
