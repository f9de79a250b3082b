#!/bin/sh
# Fake OCI runtime for checkpoint/restore, where CRIU cannot work: appends
# its arguments (one per line, then "--end--") to args.txt beside itself.
# `restore` is played by `runc create` and `runc start` of the bundle (a
# restored container runs at once, and with --detach the runtime returns
# once it does); anything else goes to the real runc.
dir=$(dirname "$0")
{ printf '%s\n' "$@"; echo --end--; } >>"$dir/args.txt"
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
global=""
while [ $# -gt 0 ]; do
	case "$1" in
	--*) global="$global $1"; shift ;;
	*) break ;;
	esac
done
[ "$1" = restore ] || exec runc $global "$@"
shift
bundle="" pidfile="" console="" id=""
while [ $# -gt 0 ]; do
	case "$1" in
	--bundle) bundle=$2; shift 2 ;;
	--pid-file) pidfile=$2; shift 2 ;;
	--console-socket) console=$2; shift 2 ;;
	--image-path|--work-path) shift 2 ;;
	--*) shift ;;
	*) id=$1; shift ;;
	esac
done
if [ -n "$console" ]; then
	runc $global create --bundle "$bundle" --pid-file "$pidfile" --console-socket "$console" "$id" || exit 1
else
	runc $global create --bundle "$bundle" --pid-file "$pidfile" "$id" || exit 1
fi
exec runc $global start "$id"
