#!/bin/sh
# Fake OCI runtime that dies by SIGKILL in the middle of `create`: it starts
# the real runc with its arguments in the background, waits FAKE_DELAY
# seconds (default 0), then SIGKILLs itself. runc carries on as an orphan
# (its pid in killself-runc.pid beside this script).
dir=$(dirname "$0")
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
runc "$@" &
echo $! >"$dir/killself-runc.tmp" && mv "$dir/killself-runc.tmp" "$dir/killself-runc.pid"
sleep "${FAKE_DELAY:-0}"
kill -9 $$
