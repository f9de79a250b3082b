#!/bin/sh
# Fake OCI runtime whose every command fails: prints an error on stderr that
# needs JSON escaping (quotes, a backslash, a tab) and exits 1.
printf 'fake runtime: "create" failed on purpose \\ tab:\there\n' >&2
exit 1
