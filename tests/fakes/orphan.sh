#!/bin/sh
# Fake OCI runtime that fails (exit 1) after starting a helper that outlives
# it: a shell (pid in orphan-sh.pid beside this script) waiting on its own
# `sleep 1000` child (orphan-sleep.pid). When the runtime exits, the helper
# shell is re-parented to the shim; when the shim kills it, the sleep is
# re-parented to the shim in turn. Nothing of it may survive the failure.
dir=$(dirname "$0")
sh -c 'echo $$ >"$0/orphan-sh.tmp" && mv "$0/orphan-sh.tmp" "$0/orphan-sh.pid"
sleep 1000 </dev/null >/dev/null 2>&1 &
echo $! >"$0/orphan-sleep.tmp" && mv "$0/orphan-sleep.tmp" "$0/orphan-sleep.pid"
wait' "$dir" </dev/null >/dev/null 2>&1 &
i=0
while [ ! -e "$dir/orphan-sleep.pid" ]; do
	i=$((i + 1))
	[ $i -gt 1000 ] && break
	sleep 0.01
done
echo "fake runtime: create failed, a helper is left behind" >&2
exit 1
