# shimlet: build, test, demo, benchmark.
# Every target installs what it lacks (as root, via apt-get / rustup) and says so.

TARGET   := x86_64-unknown-linux-musl
BIN      := target/$(TARGET)/release/shimlet
PREFIX   ?= /usr/local
DESTDIR  ?=
CARGO    ?= cargo
export SHIMLET_BIN := $(abspath $(BIN))

.PHONY: all build test unit integration run shell bench bench-scale install clean deps-build deps-test size

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
	$(CARGO) test --locked --no-fail-fast -p shimlet-tests

test: build deps-test
	$(CARGO) test --locked --no-fail-fast --workspace --exclude shimlet-bench

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

# --- install ---------------------------------------------------------------
install: build
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/shimlet
	@if [ -f docs/shimlet.1 ]; then install -D -m 0644 docs/shimlet.1 $(DESTDIR)$(PREFIX)/share/man/man1/shimlet.1; fi

clean:
	$(CARGO) clean
