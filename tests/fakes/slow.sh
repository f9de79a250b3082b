#!/bin/sh
# Fake OCI runtime that is slow to create: it creates slow-started beside
# itself, sleeps FAKE_SLEEP seconds (default 1), then runs the real runc.
# With FAKE_START=1 it also starts the container (runc --root
# $FAKE_RUNC_ROOT start ID) and returns only once the container's script
# has created /dev/shm/ready (its traps are set by then).
dir=$(dirname "$0")
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
: >"$dir/slow-started"
sleep "${FAKE_SLEEP:-1}"
[ "${FAKE_START:-0}" = 1 ] || exec runc "$@"
runc "$@" || exit $?
pidfile=""
prev=""
for a in "$@"; do
	[ "$prev" = "--pid-file" ] && pidfile=$a
	prev=$a
done
id=$a
runc --root "$FAKE_RUNC_ROOT" start "$id" || exit 1
pid=$(cat "$pidfile")
i=0
while [ ! -e "/proc/$pid/root/dev/shm/ready" ]; do
	i=$((i + 1))
	[ $i -gt 1500 ] && exit 98
	sleep 0.02
done
exit 0
