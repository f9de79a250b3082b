#!/bin/sh
# Demo of shimlet with a real runc container (run as root): `make run`, or
#   sh tests/demo.sh run
# Builds a busybox rootfs and a bundle in a temp dir, runs a container under
# shimlet with --log and --status-file, starts it, waits for its exit and
# shows the container's log and the status line. Cleans up after itself.
set -eu

cd "$(dirname "$0")/.."
BIN=${SHIMLET_BIN:-target/x86_64-unknown-linux-musl/release/shimlet}

die() { echo "demo: $*" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: apt-get install $2"; }

# Checks, a temp dir named after the mode, a runc root, and a cleanup that
# stops and deletes the container and removes everything.
prepare() {
	[ -x "$BIN" ] || die "$BIN does not exist: build it first: make build"
	PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
	need runc runc
	[ -x /bin/busybox ] || die "/bin/busybox is missing: apt-get install busybox-static"
	case "$BIN" in /*) ;; *) BIN=$(pwd)/$BIN ;; esac
	tmp=$(mktemp -d "/tmp/shimlet-$1.XXXXXX")
	id=shimlet-$1-$$
	root=$tmp/runc
	trap cleanup EXIT
	trap 'exit 130' INT TERM
	mkdir -p "$tmp/bundle/rootfs/bin" "$root"
	cp /bin/busybox "$tmp/bundle/rootfs/bin/busybox"
	for d in proc sys dev tmp etc root; do mkdir -p "$tmp/bundle/rootfs/$d"; done
}

cleanup() {
	runc --root "$root" kill "$id" KILL >/dev/null 2>&1 || true
	i=0
	while [ ! -e "$tmp/status" ] && [ $i -lt 50 ]; do i=$((i + 1)); sleep 0.1; done
	runc --root "$root" delete -f "$id" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}

# Busybox applets as symlinks in the rootfs.
applets() {
	for a in "$@"; do
		[ "$a" = busybox ] || ln -s busybox "$tmp/bundle/rootfs/bin/$a"
	done
}

run_demo() {
	prepare demo
	applets sh echo printf sleep

	# The bundle: runc's default spec, without a terminal, running a script
	# that writes to both streams, ends stdout without a newline and exits 3.
	script='echo hello from the container on stdout; echo and this on stderr >\&2;'
	script="$script echo second stdout line; echo second stderr line >\&2;"
	script="$script printf %s last-stdout-line-without-newline; exit 3"
	(cd "$tmp/bundle" && runc spec)
	sed -i \
		-e 's/"terminal": true/"terminal": false/' \
		-e "s|^\([[:space:]]*\)\"sh\"\$|\1\"sh\", \"-c\", \"$script\"|" \
		"$tmp/bundle/config.json"
	grep -q 'last-stdout-line-without-newline' "$tmp/bundle/config.json" ||
		die "could not edit the bundle's config.json"

	echo "== shimlet --id $id (bundle $tmp/bundle)"
	"$BIN" --id "$id" --bundle "$tmp/bundle" --runtime-arg="--root=$root" \
		--log "$tmp/container.log" --status-file "$tmp/status" \
		--shim-pidfile "$tmp/shim.pid" ||
		die "shimlet failed to create the container (exit $?)"
	echo "created: container pid $(cat "$tmp/bundle/pidfile"), shim pid $(cat "$tmp/shim.pid")"

	echo "== runc start $id"
	runc --root "$root" start "$id"

	i=0
	while [ ! -e "$tmp/status" ]; do
		i=$((i + 1))
		[ $i -le 200 ] || die "no status file after 20 s"
		sleep 0.1
	done

	echo
	echo "== container log ($tmp/container.log, k8s-file format)"
	cat "$tmp/container.log"
	echo
	echo "== status file ($tmp/status)"
	cat "$tmp/status"
	exit 0
}

# `make shell`: an interactive busybox shell on a pty under shimlet,
# reached through `shimlet attach`. Detach with ctrl-p ctrl-q (the
# container is then stopped and removed by this script), or type `exit`.
shell_demo() {
	[ -t 0 ] || die "make shell needs a terminal on stdin"
	prepare shell
	applets $(/bin/busybox --list)
	(cd "$tmp/bundle" && runc spec) # terminal: true, args: ["sh"]

	"$BIN" --id "$id" --bundle "$tmp/bundle" --runtime-arg="--root=$root" \
		--terminal --attach "$tmp/attach" --ctl "$tmp/ctl" \
		--log "$tmp/container.log" --status-file "$tmp/status" ||
		die "shimlet failed to create the container"
	runc --root "$root" start "$id"
	echo "shimlet: attached to $id; ctrl-p ctrl-q detaches, exit ends the shell"
	"$BIN" attach --ctl "$tmp/ctl" "$tmp/attach" || true
	echo
	# The shim closes clients first, then writes the exit records.
	i=0
	while [ ! -e "$tmp/status" ] && [ $i -lt 10 ] && runc --root "$root" state "$id" 2>/dev/null | grep -q stopped; do
		i=$((i + 1)); sleep 0.1
	done
	if [ -e "$tmp/status" ]; then
		echo "== status: $(cat "$tmp/status")"
	else
		echo "== detached; the container was still running (stopping it now)"
	fi
	echo "== the session's log has $(wc -l <"$tmp/container.log") records"
}

case "${1:-}" in
run) run_demo ;;
shell) shell_demo ;;
*)
	echo "usage: sh tests/demo.sh run|shell" >&2
	exit 2
	;;
esac
