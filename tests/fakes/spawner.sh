#!/bin/sh
# Fake OCI runtime that leaves children behind: it starts FAKE_CHILDREN
# (default 24) background sleeps with their stdio on /dev/null (0 s, 1 s
# and 2 s in turn; a third of them end while `create` runs), writes their
# pids to spawned.pids beside itself, then execs the real runc. When runc
# exits they are re-parented to the shim, which must reap them.
dir=$(dirname "$0")
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
n=${FAKE_CHILDREN:-24}
i=0
: >"$dir/spawned.tmp"
while [ $i -lt "$n" ]; do
	sleep $((i % 3)) </dev/null >/dev/null 2>&1 &
	echo $! >>"$dir/spawned.tmp"
	i=$((i + 1))
done
mv "$dir/spawned.tmp" "$dir/spawned.pids"
exec runc "$@"
