#!/bin/sh
# Fake OCI runtime that lies about the container pid.
#   FAKE_REAL=1        run the real runc with the arguments first (a real,
#                      created container results)
#   FAKE_PIDFILE=TEXT  then write TEXT (printf %s, may be empty) to the
#                      --pid-file path; FAKE_PIDFILE=__delete__ removes it
#   neither            exit 0 without writing any pidfile
dir=$(dirname "$0")
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
pidfile=""
prev=""
for a in "$@"; do
	[ "$prev" = "--pid-file" ] && pidfile=$a
	prev=$a
done
if [ "${FAKE_REAL:-0}" = 1 ]; then
	runc "$@" || exit $?
fi
if [ "${FAKE_PIDFILE+set}" = set ]; then
	if [ "$FAKE_PIDFILE" = __delete__ ]; then
		rm -f "$pidfile"
	else
		printf '%s' "$FAKE_PIDFILE" >"$pidfile"
	fi
fi
exit 0
