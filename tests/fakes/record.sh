#!/bin/sh
# Fake OCI runtime wrapper: appends its arguments (one per line, then a line
# "--end--") to args.txt beside itself, then runs the real runc with them.
dir=$(dirname "$0")
{ printf '%s\n' "$@"; echo --end--; } >>"$dir/args.txt"
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
exec runc "$@"
