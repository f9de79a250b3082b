#!/bin/sh
# Fake OCI runtime whose `create` never finishes: it records its own pid and
# that of a `sleep 1000` child (hang-runtime.pid, hang-sleep.pid beside
# itself), then waits for the child. Only a kill ends it; the sleep is then
# an orphan the shim must not leave behind.
dir=$(dirname "$0")
echo $$ >"$dir/hang-runtime.tmp" && mv "$dir/hang-runtime.tmp" "$dir/hang-runtime.pid"
sleep 1000 </dev/null >/dev/null 2>&1 &
echo $! >"$dir/hang-sleep.tmp" && mv "$dir/hang-sleep.tmp" "$dir/hang-sleep.pid"
wait
