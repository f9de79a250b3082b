#!/bin/sh
# Fake OCI runtime wrapper: records its own oom_score_adj (runtime-oom.txt
# beside itself), then execs the real runc with its arguments.
dir=$(dirname "$0")
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
cat /proc/$$/oom_score_adj >"$dir/runtime-oom.tmp" && mv "$dir/runtime-oom.tmp" "$dir/runtime-oom.txt"
exec runc "$@"
