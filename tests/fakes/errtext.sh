#!/bin/sh
# Fake OCI runtime whose `create` fails (exit 1) with an error text that
# needs JSON escaping, chosen by FAKE_TEXT:
#   mixed  quotes, backslashes, \001, ESC, tab, CR, invalid UTF-8 (\377\376)
#   ctl    3000 bytes of \001 (each becomes a 6-byte \u0001 escape)
#   euro   1000 euro signs (3 bytes each): the 2048-byte cut splits one
case "${FAKE_TEXT:-mixed}" in
mixed)
	printf 'runtime says "no" \\ back\\\\slash ctl\001 esc\033[31m red tab\there cr\rmid bad\377\376utf8 end\n' >&2
	;;
ctl)
	head -c 3000 /dev/zero | tr '\000' '\001' >&2
	;;
euro)
	i=0
	while [ $i -lt 1000 ]; do
		printf '\342\202\254'
		i=$((i + 1))
	done >&2
	;;
esac
exit 1
