# The VM lane's scenarios: podman 5 with systemd's cgroup manager on cgroup
# v2, as a Debian 13 user runs it. Each `sc_NAME` runs once per combination
# listed in SCENARIOS (see lane.sh): `all` = conmon and shimlet, each with
# crun and runc; `crun` = both shims with crun; `runc` = both with runc;
# `shimlet` = once. conmon runs first and records (ref_put) what shimlet's
# run must match. (In the containerd and Docker scenarios conmon's part is
# played by containerd's own shim, io.containerd.runc.v2.)
#
# The shim is chosen with `podman --conmon PATH` (pm), except where the
# scenario is about the configuration a user writes: the quadlet and the
# rootless scenarios put /usr/share/doc/shimlet/examples/50-shimlet.conf in
# containers.conf.d (conmon_path) for shimlet and nothing for conmon.

SCENARIOS=(
  "deb shimlet"
  "run_rm all"
  "wait_codes_stop all"
  "stdin_pipe all"
  "run_it all"
  "attach_detach all"
  "exec_codes_terminals all"
  "logs_k8s_file all"
  "logs_follow all"
  "log_rotation all"
  "journald all"
  "exit_command all"
  "oom_killed all"
  "monitor_cgroup all"
  "pod_two_containers all"
  "kube_play all"
  "healthcheck all"
  "stats all"
  "quadlet all"
  "rootless_setup shimlet"
  "rootless_run_logs all"
  "rootless_exec_stop all"
  "rootless_terminal all"
  "sdnotify crun"
  "checkpoint all"
  "containerd runc"
  "docker runc"
)

# --- the package -----------------------------------------------------------------

# shimlet's .deb (installed by lane.sh with dpkg -i): the binary, the man page
# and the example drop-in where a distro package puts them; the drop-in makes
# podman use shimlet.
sc_deb() {
  eq "install ok installed" "$(dpkg-query -W -f='${Status}' shimlet)" "dpkg status of shimlet"
  local files
  files=$(dpkg -L shimlet)
  has "$files" /usr/bin/shimlet "files of the package"
  has "$files" /usr/share/man/man1/shimlet.1.gz "files of the package"
  has "$files" /usr/share/doc/shimlet/examples/50-shimlet.conf "files of the package"
  [ -x /usr/bin/shimlet ] || fail "/usr/bin/shimlet is not executable"
  zcat /usr/share/man/man1/shimlet.1.gz | grep -q '^\.TH SHIMLET' || fail "the man page is not shimlet's"
  local v
  v=$(/usr/bin/shimlet --version 2>&1 || true)
  has "$v" "conmon version" "shimlet --version (podman's version probe)"
  mkdir -p /etc/containers/containers.conf.d
  cp /usr/share/doc/shimlet/examples/50-shimlet.conf /etc/containers/containers.conf.d/
  eq /usr/bin/shimlet "$(podman info --format '{{.Host.Conmon.Path}}')" "podman info's conmon path with the example drop-in"
  local o
  o=$(timeout "$CMD_TIMEOUT" podman run --rm --network none "$IMAGE" echo via-drop-in)
  eq via-drop-in "$o" "podman run with the drop-in and no --conmon"
  rm /etc/containers/containers.conf.d/50-shimlet.conf
  eq /usr/bin/conmon "$(podman info --format '{{.Host.Conmon.Path}}')" "podman info's conmon path without the drop-in"
}

# --- run, exit codes, stdin, terminals ------------------------------------------------

# `podman run --rm IMG echo hi` prints hi, exits 0, leaves no container, and
# podman's stderr is empty with shimlet when it is with conmon.
sc_run_rm() {
  local out rc=0
  out=$(pm run --rm --network none "$IMAGE" echo hi 2>"$W/err") || rc=$?
  eq 0 "$rc" "exit code of podman run --rm echo hi (stderr: $(cat "$W/err"))"
  eq hi "$out" "stdout of podman run --rm echo hi"
  if [ "$SHIM" = conmon ]; then
    ref_put run_rm_stderr "$(cat "$W/err")"
  else
    eq "$(ref_get run_rm_stderr)" "$(cat "$W/err")" "podman's stderr (as with conmon)"
  fi
  eq "" "$(pm_ok ps -aq)" "containers left by run --rm"
}

# podman wait gives 0, 3 and 137 (kill -s KILL); stop -t 1 of a sleep that
# ignores SIGTERM (pid 1) gives the same code as with conmon.
sc_wait_codes_stop() {
  local a b c d code
  a=$(cname true) b=$(cname three) c=$(cname killed) d=$(cname stopped)
  run_d "$a" -- true
  run_d "$b" -- sh -c 'exit 3'
  run_d "$c" -- sleep 1000
  run_d "$d" -- sleep 1000
  eq 0 "$(pm_wait "$a")" "podman wait of true"
  eq 3 "$(pm_wait "$b")" "podman wait of exit 3"
  wait_inspect "$c" '{{.State.Running}}' true
  pm_ok kill -s KILL "$c" >/dev/null
  eq 137 "$(pm_wait "$c")" "podman wait after kill -s KILL"
  eq 0 "$(inspect "$a" '{{.State.ExitCode}}')" "inspect ExitCode of true"
  eq 3 "$(inspect "$b" '{{.State.ExitCode}}')" "inspect ExitCode of exit 3"
  eq 137 "$(inspect "$c" '{{.State.ExitCode}}')" "inspect ExitCode after KILL"
  wait_inspect "$d" '{{.State.Running}}' true
  pm_ok stop -t 1 "$d" >/dev/null
  code=$(pm_wait "$d")
  case $code in 137 | 143) ;; *) fail "podman stop -t 1: exit code $code, want 137 or 143" ;; esac
  eq "$code" "$(inspect "$d" '{{.State.ExitCode}}')" "inspect ExitCode after stop"
  if [ "$SHIM" = conmon ]; then ref_put stop_code "$code"; else eq "$(ref_get stop_code)" "$code" "stop's exit code (as with conmon)"; fi
}

# `echo data | podman run -i --rm IMG cat` returns data; 20000 lines go
# through intact and their end of file ends cat.
sc_stdin_pipe() {
  local out
  out=$(printf 'data\n' | pm run -i --rm --network none "$IMAGE" cat)
  eq data "$out" "echo data | podman run -i cat"
  seq 0 19999 | sed 's/^/stdin line /' >"$W/big.in"
  pm run -i --rm --network none "$IMAGE" cat <"$W/big.in" >"$W/big.out"
  cmp "$W/big.in" "$W/big.out" || fail "$(wc -c <"$W/big.in") bytes through run -i cat came back as $(wc -c <"$W/big.out") bytes, different"
}

# podman run -it on a pty: a prompt, a command, and exit 7 makes podman exit 7.
sc_run_it() {
  pty_start 24 80 "podman --conmon $SHIM_PATH --runtime $RT run -it --rm --network none $IMAGE sh"
  pty_expect "# "
  pty_send 'echo hi-$((6*7))\r'
  pty_expect hi-42
  pty_send 'exit 7\r'
  pty_wait
  eq 7 "$PTY_RC" "exit code of podman run -it after exit 7; terminal: $(pty_text)"
}

# podman attach (on a pty) to a run -dit container shows its output; ctrl-p
# ctrl-q detaches: attach exits 0, the container keeps running and printing.
sc_attach_detach() {
  local n n0
  n=$(cname attach)
  run_d "$n" -it -- sh -c 'while true; do echo tick; sleep 0.3; done'
  wait_inspect "$n" '{{.State.Running}}' true
  pty_start 24 80 "podman --conmon $SHIM_PATH --runtime $RT attach $n"
  pty_expect tick
  pty_expect tick
  # podman sees the detach keys only when each comes in a read of its own.
  pty_send '\x10'
  sleep 0.5
  pty_send '\x11'
  pty_wait
  eq 0 "$PTY_RC" "exit code of podman attach after ctrl-p ctrl-q; terminal: $(pty_text)"
  sleep 1
  eq true "$(inspect "$n" '{{.State.Running}}')" "the container after the detach"
  n0=$(pm_ok logs "$n" | grep -c tick)
  wait_for "new output after the detach" logs_grew "$n" "$n0"
  pm_ok stop -t 1 "$n" >/dev/null
}
logs_grew() { [ "$(pm logs "$1" 2>/dev/null | grep -c tick)" -gt $(($2 + 2)) ]; }

# podman exec: the command's exit code, both streams, exec -it with a shell,
# exec -t with the terminal's size.
sc_exec_codes_terminals() {
  local n rc out
  n=$(cname exec)
  run_d "$n" -- sleep 1000
  wait_inspect "$n" '{{.State.Running}}' true
  rc=0
  pm exec "$n" sh -c 'exit 42' || rc=$?
  eq 42 "$rc" "exit code of podman exec sh -c 'exit 42'"
  out=$(pm exec "$n" sh -c 'echo out; echo err >&2' 2>"$W/err")
  eq out "$out" "stdout of podman exec"
  has "$(cat "$W/err")" err "stderr of podman exec"
  pty_start 24 80 "podman --conmon $SHIM_PATH --runtime $RT exec -it $n sh"
  pty_expect "# "
  pty_send 'echo hi-$((6*7))\r'
  pty_expect hi-42
  pty_send 'exit 5\r'
  pty_wait
  eq 5 "$PTY_RC" "exit code of podman exec -it after exit 5; terminal: $(pty_text)"
  pty_start 33 77 "podman --conmon $SHIM_PATH --runtime $RT exec -t $n stty size"
  pty_expect "33 77"
  pty_wait
  eq 0 "$PTY_RC" "exit code of podman exec -t stty size"
  eq true "$(inspect "$n" '{{.State.Running}}')" "the container after the execs"
  pm_ok stop -t 1 "$n" >/dev/null
}

# --- logs ------------------------------------------------------------------------------

# run -d (k8s-file) then podman logs: stdout lines on stdout, stderr lines on
# stderr, in order.
sc_logs_k8s_file() {
  local n out
  n=$(cname logs)
  run_d "$n" --log-driver k8s-file -- sh -c 'echo out-1; echo err-1 >&2; echo out-2; echo err-2 >&2'
  eq 0 "$(pm_wait "$n")" "exit code"
  out=$(pm_ok logs "$n" 2>"$W/err")
  eq "$(printf 'out-1\nout-2')" "$out" "stdout of podman logs"
  eq "$(printf 'err-1\nerr-2')" "$(cat "$W/err")" "stderr of podman logs"
}

# podman logs -f (k8s-file and journald) follows: the first line, still
# running while the container waits, the later lines, and it ends (exit 0)
# when the container exits.
sc_logs_follow() {
  local drv
  for drv in k8s-file journald; do follow_with "$drv"; done
}
follow_with() {
  local drv=$1 n shared lp rc
  n=$(cname "follow-$drv")
  shared=$W/shared-$n
  mkdir -p "$shared"
  run_d "$n" --log-driver "$drv" -v "$shared:/shared" -- \
    sh -c 'echo first; while [ ! -e /shared/go ]; do sleep 0.1; done; echo second; sleep 0.5; echo third'
  pm logs -f "$n" >"$W/follow.out" 2>"$W/follow.err" &
  lp=$!
  wait_for "[$drv] first in podman logs -f" grep -qx first "$W/follow.out"
  sleep 1
  alive "$lp" || fail "[$drv] podman logs -f ended while the container still runs: $(cat "$W/follow.out" "$W/follow.err")"
  touch "$shared/go"
  wait_for "[$drv] third in podman logs -f" grep -qx third "$W/follow.out"
  wait_for "[$drv] podman logs -f to end after the container" dead "$lp"
  rc=0
  wait "$lp" || rc=$?
  eq 0 "$rc" "[$drv] exit code of podman logs -f (stderr: $(cat "$W/follow.err"))"
  eq "$(printf 'first\nsecond\nthird')" "$(cat "$W/follow.out")" "[$drv] output of podman logs -f"
  eq 0 "$(pm_wait "$n")" "[$drv] exit code of the container"
}

# The numbers of the `line-N` lines in a stream of lines, checked: prints
# "FIRST LAST" when they are contiguous, "gap ..." otherwise.
contiguous() {
  awk '/^line-[0-9]+$/ { n = substr($0, 6) + 0; if (c && n != last + 1) { print "gap after line-" last ": line-" n; bad = 1; exit }
       if (!c) first = n; last = n; c++ } END { if (!bad) { if (c) print first, last; else print "none" } }'
}

# The stdout payload lines of k8s-file logs (P pieces joined to their line).
k8s_payload() {
  awk '$2 == "stdout" { p = $0; sub(/^[^ ]+ [^ ]+ [^ ]+ /, "", p); acc = acc p; if ($3 == "F") { print acc; acc = "" } }'
}

# --log-opt max-size=10k: podman logs shows a contiguous tail up to the last
# of 2000 lines; the current log stays within bounds. shimlet keeps the
# previous file as LOG.1: .1 and the current file together hold a contiguous
# run up to the last line, all 300 lines of a short output. (conmon drops
# the old content: only recorded.)
sc_log_rotation() {
  local big small r n lp cur_r both_r
  big=$(cname rot2000) small=$(cname rot300)
  run_d "$big" --log-driver k8s-file --log-opt max-size=10k -- sh -c 'i=1; while [ $i -le 2000 ]; do echo line-$i; i=$((i+1)); done'
  run_d "$small" --log-driver k8s-file --log-opt max-size=10k -- sh -c 'i=1; while [ $i -le 300 ]; do echo line-$i; i=$((i+1)); done'
  eq 0 "$(pm_wait "$big")" "exit code of the 2000-line container"
  eq 0 "$(pm_wait "$small")" "exit code of the 300-line container"
  r=$(pm_ok logs "$big" | contiguous)
  case $r in *" 2000") ;; *) fail "podman logs of 2000 lines: want a contiguous tail ending at line-2000, got: $r" ;; esac
  for n in "$big:2000" "$small:300"; do
    lp=$(inspect "${n%:*}" '{{.HostConfig.LogConfig.Path}}')
    [ -f "$lp" ] || fail "no log file $lp"
    cur_r=$(k8s_payload <"$lp" | sed '1{/^line-/!d}' | contiguous)
    echo "[$SHIM] ${n#*:} lines: current log $(wc -c <"$lp") bytes, lines $cur_r; $lp.1: $(wc -c <"$lp.1" 2>/dev/null || echo absent)"
    case $cur_r in *" ${n#*:}") ;; *) fail "the current log must end with a contiguous run up to line-${n#*:}: $cur_r" ;; esac
    [ "$(wc -c <"$lp")" -le 20480 ] || fail "the current log outgrew max-size=10k: $(wc -c <"$lp") bytes"
    [ "$SHIM" = shimlet ] || continue
    [ -f "$lp.1" ] || fail "no rotated file $lp.1"
    [ "$(wc -c <"$lp.1")" -le 20480 ] || fail "the rotated log outgrew max-size=10k: $(wc -c <"$lp.1") bytes"
    both_r=$(cat "$lp.1" "$lp" | k8s_payload | sed '1{/^line-/!d}' | contiguous)
    case $both_r in *" ${n#*:}") ;; *) fail ".1 then the current log must be contiguous up to line-${n#*:}: $both_r" ;; esac
    if [ "${n#*:}" = 300 ]; then eq "1 300" "$both_r" ".1 + current of a 300-line output"; fi
  done
}

# journald as log driver: podman logs reads both streams back; journalctl
# finds the lines by the container's id and name; the entries (fields,
# priority per stream, message bytes; the order within each stream) are
# those conmon writes.
sc_journald() {
  local n id out entries fields ident
  n=$(cname journald)
  run_d "$n" --log-driver journald -- sh -c 'echo out-1; echo err-1 >&2; echo out-2'
  eq 0 "$(pm_wait "$n")" "exit code"
  id=$(inspect "$n" '{{.Id}}')
  out=$(pm_ok logs "$n" 2>"$W/err")
  eq "$(printf 'out-1\nout-2')" "$out" "stdout of podman logs (journald)"
  eq err-1 "$(cat "$W/err")" "stderr of podman logs (journald)"
  journalctl --sync 2>/dev/null || true
  journalctl --no-pager -o json CONTAINER_ID_FULL="$id" >"$W/journal.json"
  # The entries as PRIORITY=MESSAGE (JSON strings), grouped by priority in
  # journal order (the two streams interleave as they please).
  entries=$(jq -s -r 'map({p: .PRIORITY, m: (.MESSAGE | if type == "array" then implode else . end)})
    | group_by(.p) | map(map(.p + "=" + (.m | tojson))) | flatten | join(" ")' "$W/journal.json")
  # Fields the caller wrote (not journald's own, _*), but for CODE_FILE,
  # CODE_FUNC and CODE_LINE: conmon's C source location of its
  # sd_journal_sendv call, nothing about the container.
  fields=$(jq -r 'keys[]' "$W/journal.json" | grep -v '^_\|^CODE_\(FILE\|FUNC\|LINE\)$' | sort -u | tr '\n' ' ')
  echo "[$SHIM] journal entries: $entries; fields: $fields"
  jq -c 'with_entries(select(.key | startswith("_") | not))' "$W/journal.json"
  out=$(jq -r '.MESSAGE | if type == "array" then implode else . end' "$W/journal.json" | grep . | sort | tr '\n' ' ')
  eq "err-1 out-1 out-2 " "$out" "the container's lines in journalctl CONTAINER_ID_FULL=ID"
  out=$(journalctl --no-pager -o cat CONTAINER_NAME="$n" | grep . | sort | tr '\n' ' ')
  eq "err-1 out-1 out-2 " "$out" "the container's lines in journalctl CONTAINER_NAME=NAME"
  # conmon names the entries after the container (`journalctl -t NAME`).
  ident=$(jq -r '.SYSLOG_IDENTIFIER // "(none)"' "$W/journal.json" | sort -u | sed "s/^$n\$/NAME/" | tr '\n' ' ')
  if [ "$SHIM" = conmon ]; then
    ref_put journal_entries "$entries"
    ref_put journal_fields "$fields"
    ref_put journal_ident "$ident"
  else
    eq "$(ref_get journal_ident)" "$ident" "SYSLOG_IDENTIFIER of the entries (journalctl -t; as conmon's)"
    # conmon 2.1.12 ends MESSAGE with the line's newline, shimlet does not
    # (podman trims it; `journalctl -o cat` shows conmon's as blank lines):
    # compared without it, and the difference noted.
    eq "$(ref_get journal_entries | sed 's/\\n"/"/g')" "$(echo "$entries" | sed 's/\\n"/"/g')" \
      "the journal entries (priority=message, as conmon's but for a trailing newline)"
    [ "$(ref_get journal_entries)" = "$entries" ] ||
      note "journald MESSAGE bytes differ from conmon's: conmon $(ref_get journal_entries); shimlet $entries"
    eq "$(ref_get journal_fields)" "$fields" "the fields of a journal entry (as conmon's)"
  fi
}

# --- the container's end ---------------------------------------------------------

# After a run -d container exits the shim runs podman's exit command
# (podman container cleanup): the rootfs and /dev/shm get unmounted, the
# shim exits, the state is exited.
sc_exit_command() {
  local n id merged sp
  n=$(cname exitcmd)
  mkdir -p "$W/shared-$n"
  run_d "$n" -v "$W/shared-$n:/shared" -- sh -c 'while [ ! -e /shared/go ]; do sleep 0.1; done; exit 4'
  id=$(inspect "$n" '{{.Id}}')
  merged=$(inspect "$n" '{{.GraphDriver.Data.MergedDir}}')
  sp=$(inspect "$n" '{{.State.ConmonPid}}')
  grep -qF "$merged" /proc/self/mountinfo || fail "the running container's rootfs $merged is not mounted"
  touch "$W/shared-$n/go"
  eq 4 "$(pm_wait "$n")" "exit code"
  wait_for "the shim (pid $sp) to exit" dead "$sp"
  wait_for "podman container cleanup to unmount the container's rootfs and shm" not_mounted "$id" "$merged"
  eq exited "$(inspect "$n" '{{.State.Status}}')" "state after the exit"
}
not_mounted() { ! grep -qF -e "$1" -e "$2" /proc/self/mountinfo; }

# A memory hog under --memory 24m --memory-swap 24m is killed by the kernel
# (exit 137; machine.slice's memory.events counts one more oom_kill, whoever
# watches) and podman inspect says OOMKilled (cgroup v2 memory.events).
# conmon 2.1.12 with runc sometimes misses it on a loaded machine (its
# cgroup is gone before it looks): for conmon that is only noted.
# OOM kills counted in machine.slice (0 before its first container).
slice_ooms() {
  local c
  c=$(awk '$1 == "oom_kill" { print $2 }' /sys/fs/cgroup/machine.slice/memory.events 2>/dev/null || true)
  echo "${c:-0}"
}
sc_oom_killed() {
  local n code oom before after
  before=$(slice_ooms)
  n=$(cname oom)
  run_d "$n" --memory 24m --memory-swap 24m -- sh -c 'x=a; while :; do x=$x$x; done'
  code=$(pm_wait "$n")
  oom=$(inspect "$n" '{{.State.OOMKilled}}')
  after=$(slice_ooms)
  echo "[$SHIM] memory hog: podman wait $code, OOMKilled $oom, machine.slice oom_kill $before -> $after"
  eq 137 "$code" "exit code of the OOM-killed container"
  [ "$after" -gt "$before" ] || fail "the kernel counted no OOM kill in machine.slice ($before -> $after): the OOM could not be triggered"
  if [ "$SHIM" = conmon ] && [ "$oom" != true ]; then
    note "conmon missed the OOM kill (OOMKilled $oom, exit $code, the kernel counted it)"
    return 0
  fi
  eq true "$oom" "podman inspect .State.OOMKilled after the kernel's OOM kill (exit $code)"
}

# --- the shim process: pid, parent, cgroup --------------------------------------

# ConmonPid is the shim (comm conmon or shimlet), the container's parent, and
# it sits in the same kind of systemd unit under conmon and shimlet:
# podman's libpod-conmon-ID.scope; the container in libpod-ID.scope.
sc_monitor_cgroup() {
  local n id sp cp scg ccg unit
  n=$(cname cgroup)
  run_d "$n" -- sleep 1000
  wait_inspect "$n" '{{.State.Running}}' true
  id=$(inspect "$n" '{{.Id}}')
  sp=$(inspect "$n" '{{.State.ConmonPid}}')
  cp=$(inspect "$n" '{{.State.Pid}}')
  eq "$SHIM" "$(comm "$sp")" "comm of ConmonPid $sp"
  eq "$sp" "$(awk '/^PPid:/ { print $2 }' "/proc/$cp/status")" "the container's parent"
  scg=$(sed "s/$id/ID/g" "/proc/$sp/cgroup")
  ccg=$(sed "s/$id/ID/g" "/proc/$cp/cgroup")
  unit=$(systemctl status "$sp" --no-pager 2>/dev/null | head -1)
  echo "[$SHIM] shim cgroup $scg; container cgroup $ccg; unit: $unit"
  case $scg in 0::/*.scope | 0::/*.scope/*) ;; *) fail "the shim is not in a systemd scope: $scg" ;; esac
  if [ "$SHIM" = conmon ]; then
    ref_put shim_cgroup "$scg"
    ref_put ctr_cgroup "$ccg"
  else
    eq "$(ref_get shim_cgroup)" "$scg" "the shim's cgroup (ID for the container id; as conmon's)"
    eq "$(ref_get ctr_cgroup)" "$ccg" "the container's cgroup (as under conmon)"
  fi
  pm_ok stop -t 1 "$n" >/dev/null
  wait_for "the shim to exit after stop" dead "$sp"
}

# --- pods ----------------------------------------------------------------------------

# podman pod create, two containers in it: the pod runs with its infra
# container and both, all three under the shim and in one network and UTS
# namespace; pod stop ends them; pod rm removes them.
sc_pod_two_containers() {
  local p a b ns_a ns_b ns_i infra sp st
  p=$(cname pod) a=$(cname pod-a) b=$(cname pod-b)
  pm_ok pod create --name "$p" --network none >/dev/null
  pm_ok run -d --pod "$p" --name "$a" "$IMAGE" sleep 1000 >/dev/null
  pm_ok run -d --pod "$p" --name "$b" "$IMAGE" sh -c 'hostname; sleep 1000' >/dev/null
  wait_inspect "$a" '{{.State.Running}}' true
  wait_inspect "$b" '{{.State.Running}}' true
  eq Running "$(pm_ok pod inspect --format '{{.State}}' "$p")" "pod state"
  eq 3 "$(pm_ok pod inspect --format '{{.NumContainers}}' "$p")" "containers in the pod (infra + 2)"
  infra=$(pm_ok pod inspect --format '{{.InfraContainerID}}' "$p")
  for c in "$infra" "$a" "$b"; do
    sp=$(inspect "$c" '{{.State.ConmonPid}}')
    eq "$SHIM" "$(comm "$sp")" "the shim of ${c:0:12} in the pod"
  done
  ns_i=$(readlink "/proc/$(inspect "$infra" '{{.State.Pid}}')/ns/net")
  ns_a=$(readlink "/proc/$(inspect "$a" '{{.State.Pid}}')/ns/net")
  ns_b=$(readlink "/proc/$(inspect "$b" '{{.State.Pid}}')/ns/net")
  eq "$ns_i" "$ns_a" "network namespace of $a and the infra container"
  eq "$ns_i" "$ns_b" "network namespace of $b and the infra container"
  eq "$p" "$(pm_ok logs "$b")" "the hostname the second container prints (the pod's)"
  pm_ok pod stop -t 1 "$p" >/dev/null
  for c in "$a" "$b"; do
    st=$(inspect "$c" '{{.State.Status}}')
    eq exited "$st" "state of $c after pod stop"
  done
  pm_ok pod rm "$p" >/dev/null
  st=0
  pm pod exists "$p" || st=$?
  eq 1 "$st" "podman pod exists after pod rm"
}

# podman kube play of a Pod with two containers: one keeps running and logs,
# the other exits 3; podman kube down removes the pod.
sc_kube_play() {
  local p y one two st
  p=$(cname kube)
  y=$W/$p.yaml
  cat >"$y" <<EOF
apiVersion: v1
kind: Pod
metadata:
  name: $p
spec:
  restartPolicy: Never
  containers:
  - name: one
    image: $IMAGE
    command: ["sh", "-c", "echo kube-one; sleep 1000"]
  - name: two
    image: $IMAGE
    command: ["sh", "-c", "echo kube-two; exit 3"]
EOF
  pm_ok kube play --network none "$y" >/dev/null
  one=$p-one two=$p-two
  eq 3 "$(pm_wait "$two")" "exit code of the container that exits 3"
  wait_inspect "$one" '{{.State.Running}}' true
  wait_for "kube-one in the logs of $one" logs_have "$one" kube-one
  eq kube-two "$(pm_ok logs "$two")" "logs of $two"
  eq "$SHIM" "$(comm "$(inspect "$one" '{{.State.ConmonPid}}')")" "the shim of $one"
  pm_ok kube down "$y" >/dev/null
  st=0
  pm pod exists "$p" || st=$?
  eq 1 "$st" "podman pod exists after kube down"
}
logs_have() { pm logs "$1" 2>&1 | grep -qx "$2"; }

# A healthcheck: unhealthy while its file is missing, healthy once an exec
# created it, by `podman healthcheck run` (an exec through the shim) and by
# the systemd timer podman sets up for it.
sc_healthcheck() {
  local n id rc
  n=$(cname health)
  run_d "$n" --health-cmd 'test -e /tmp/ok' --health-interval 2s --health-retries 1 -- sleep 1000
  wait_inspect "$n" '{{.State.Running}}' true
  id=$(inspect "$n" '{{.Id}}')
  systemctl list-units --all --plain --no-legend | grep -q "^$id.*\.timer" ||
    fail "no systemd timer for the healthcheck: $(systemctl list-units --all --plain --no-legend | grep "$id")"
  rc=0
  pm healthcheck run "$n" || rc=$?
  eq 1 "$rc" "podman healthcheck run while the file is missing"
  wait_inspect "$n" '{{.State.Health.Status}}' unhealthy
  pm_ok exec "$n" touch /tmp/ok >/dev/null
  pm_ok healthcheck run "$n" >/dev/null
  wait_inspect "$n" '{{.State.Health.Status}}' healthy
  pm_ok exec "$n" rm /tmp/ok >/dev/null
  # No `healthcheck run` now: only the timer can see it.
  wait_inspect "$n" '{{.State.Health.Status}}' unhealthy
  pm_ok stop -t 1 "$n" >/dev/null
}

# podman stats reads the container's cgroup: its name, one pid, some memory.
sc_stats() {
  local n line
  n=$(cname stats)
  run_d "$n" -- sleep 1000
  wait_inspect "$n" '{{.State.Running}}' true
  line=$(pm_ok stats --no-stream --format '{{.Name}}|{{.PIDs}}|{{.MemUsage}}' "$n")
  echo "[$SHIM] podman stats: $line"
  eq "$n|1" "$(echo "$line" | cut -d'|' -f1,2)" "name and pids in podman stats"
  case $(echo "$line" | cut -d'|' -f3) in 0B* | '' | --*) fail "podman stats shows no memory use: $line" ;; esac
  pm_ok stop -t 1 "$n" >/dev/null
}

# --- systemd: a quadlet unit ---------------------------------------------------------

# A .container unit in /etc/containers/systemd (shimlet through conmon_path
# in containers.conf.d): systemctl start runs it with the shim as the unit's
# main process, the unit's journal has the container's output, systemctl
# stop ends it cleanly and removes the container.
sc_quadlet() {
  local u=lane-q-$RT c sp mp res
  c=systemd-$u
  mkdir -p /etc/containers/containers.conf.d
  if [ "$SHIM" = shimlet ]; then cp /usr/share/doc/shimlet/examples/50-shimlet.conf /etc/containers/containers.conf.d/; fi
  cat >"/etc/containers/systemd/$u.container" <<EOF
[Unit]
Description=VM lane quadlet ($SHIM, $RT)

[Container]
Image=$IMAGE
ContainerName=$c
Exec=sh -c 'echo quadlet-hello; trap "echo quadlet-bye; exit 0" TERM; while :; do sleep 0.5; done'
Network=none
GlobalArgs=--runtime=$RT

[Service]
TimeoutStartSec=300
TimeoutStopSec=60
EOF
  systemctl daemon-reload
  systemctl cat "$u.service" >/dev/null || fail "quadlet made no $u.service: $(/usr/libexec/podman/quadlet -dryrun 2>&1 | tail -20)"
  timeout "$CMD_TIMEOUT" systemctl start "$u.service" ||
    fail "systemctl start $u.service failed: $(systemctl status "$u.service" --no-pager | tail -20)"
  eq active "$(systemctl is-active "$u.service")" "state of $u.service"
  wait_inspect "$c" '{{.State.Running}}' true
  sp=$(podman inspect --format '{{.State.ConmonPid}}' "$c")
  eq "$SHIM" "$(comm "$sp")" "the shim of the quadlet container (conmon_path)"
  mp=$(systemctl show -P MainPID "$u.service")
  eq "$sp" "$mp" "MainPID of $u.service (the shim, sdnotify=conmon)"
  grep -q "/system.slice/$u.service" "/proc/$sp/cgroup" || fail "the shim is not in $u.service's cgroup: $(cat "/proc/$sp/cgroup")"
  wait_for "quadlet-hello in podman logs" logs_have_root "$c" quadlet-hello
  wait_for "quadlet-hello in the unit's journal" unit_journal_has "$u.service" quadlet-hello
  timeout "$CMD_TIMEOUT" systemctl stop "$u.service" || fail "systemctl stop $u.service failed"
  eq inactive "$(systemctl is-active "$u.service" || true)" "state of $u.service after stop"
  res=$(systemctl show -P Result "$u.service")
  wait_for "the shim (pid $sp) to exit" dead "$sp"
  wait_for "the container to be removed (quadlet runs it with --rm)" no_container "$c"
  echo "[$SHIM] $u.service Result=$res ExecMainStatus=$(systemctl show -P ExecMainStatus "$u.service")"
  eq success "$res" "Result of $u.service after systemctl stop"
  rm -f "/etc/containers/systemd/$u.container" /etc/containers/containers.conf.d/50-shimlet.conf
  systemctl daemon-reload
}
logs_have_root() { podman logs "$1" 2>&1 | grep -qx "$2"; }
unit_journal_has() { journalctl --no-pager -o cat -u "$1" | grep -qx "$2"; }
no_container() { ! podman container exists "$1"; }

# --- rootless podman -----------------------------------------------------------------

# A normal user with subuid/subgid ranges and a lingering systemd user
# session; rootless podman on systemd's cgroup manager, cgroup v2, with the
# test image imported into the user's storage.
sc_rootless_setup() {
  local uid end info
  if ! id "$TUSER" >/dev/null 2>&1; then
    useradd -m -s /bin/bash "$TUSER"
  fi
  uid=$(tuid)
  grep -q "^$TUSER:" /etc/subuid || echo "$TUSER:200000:65536" >>/etc/subuid
  grep -q "^$TUSER:" /etc/subgid || echo "$TUSER:200000:65536" >>/etc/subgid
  loginctl enable-linger "$TUSER"
  wait_for "the user manager user@$uid.service" systemctl is-active "user@$uid.service"
  wait_for "the user's bus /run/user/$uid/bus" test -S "/run/user/$uid/bus"
  eq yes "$(loginctl show-user "$TUSER" -P Linger)" "linger of $TUSER"
  cd /tmp || fail "cd /tmp"
  info=$(upodman info --format '{{.Host.Security.Rootless}} {{.Host.CgroupManager}} {{.Host.CgroupsVersion}}')
  eq "true systemd v2" "$info" "rootless podman info"
  upodman import -q "$W/rootfs.tar" "$IMAGE" >/dev/null
  upodman image exists "$IMAGE" || fail "the image is not in the user's storage"
}

# upm ARGS...: rootless podman with this context's runtime; the shim comes
# from the user's containers.conf.d (urootless_shim).
upm() { upodman --runtime "$RT" "$@"; }

urootless_shim() {
  local d=/home/$TUSER/.config/containers/containers.conf.d
  id "$TUSER" >/dev/null 2>&1 || fail "no rootless user: rootless_setup failed"
  cd /tmp || fail "cd /tmp"
  runuser -u "$TUSER" -- mkdir -p "$d"
  if [ "$SHIM" = shimlet ]; then
    runuser -u "$TUSER" -- cp /usr/share/doc/shimlet/examples/50-shimlet.conf "$d/"
  else
    rm -f "$d/50-shimlet.conf"
  fi
  eq "$SHIM_PATH" "$(upm info --format '{{.Host.Conmon.Path}}')" "the user's podman info conmon path"
}

# Rootless run and logs: run --rm prints, run -d then logs gives both
# streams, the shim runs as the user.
sc_rootless_run_logs() {
  local n out sp
  urootless_shim
  out=$(upm run --rm --network none "$IMAGE" sh -c 'echo hi; id -u')
  eq "$(printf 'hi\n0')" "$out" "rootless podman run --rm (uid 0 in the user namespace)"
  n=$(cname rl-logs)
  upm run -d --network none --name "$n" "$IMAGE" \
    sh -c 'echo out-1; echo err-1 >&2; echo out-2; while [ ! -e /tmp/go ]; do sleep 0.1; done' >/dev/null
  sp=$(upm inspect --format '{{.State.ConmonPid}}' "$n")
  eq "$SHIM" "$(comm "$sp")" "the shim of the rootless container"
  eq "$(tuid)" "$(stat -c %u "/proc/$sp")" "the uid the shim runs as"
  upm exec "$n" touch /tmp/go
  eq 0 "$(upm wait "$n")" "exit code"
  out=$(upm logs "$n" 2>"$W/err")
  eq "$(printf 'out-1\nout-2')" "$out" "stdout of rootless podman logs"
  eq err-1 "$(cat "$W/err")" "stderr of rootless podman logs"
}

# Rootless exec and stop: exec's exit code and output, stop of a sleep, the
# shim in the user's libpod-conmon scope (the same as under conmon).
sc_rootless_exec_stop() {
  local n rc out sp scg id code
  urootless_shim
  n=$(cname rl-exec)
  upm run -d --network none --name "$n" "$IMAGE" sleep 1000 >/dev/null
  wait_for "$n running" urunning "$n"
  rc=0
  upm exec "$n" sh -c 'exit 42' || rc=$?
  eq 42 "$rc" "exit code of rootless podman exec"
  out=$(upm exec "$n" echo alive)
  eq alive "$out" "output of rootless podman exec"
  id=$(upm inspect --format '{{.Id}}' "$n")
  sp=$(upm inspect --format '{{.State.ConmonPid}}' "$n")
  scg=$(sed "s/$id/ID/g; s/$(tuid)/UID/g" "/proc/$sp/cgroup")
  echo "[$SHIM] rootless shim cgroup $scg"
  case $scg in 0::/user.slice/*user@UID.service/*.scope) ;; *) fail "the rootless shim is not in a scope of the user's manager: $scg" ;; esac
  if [ "$SHIM" = conmon ]; then ref_put rl_cgroup "$scg"; else eq "$(ref_get rl_cgroup)" "$scg" "the rootless shim's cgroup (as conmon's)"; fi
  upm stop -t 1 "$n" >/dev/null
  code=$(upm wait "$n")
  case $code in 137 | 143) ;; *) fail "rootless podman stop -t 1: exit code $code, want 137 or 143" ;; esac
  wait_for "the shim to exit after stop" dead "$sp"
}
urunning() { [ "$(upm inspect --format '{{.State.Running}}' "$1" 2>/dev/null)" = true ]; }

# Rootless -it: run -it with a shell and exit 7; exec -it into a running one.
sc_rootless_terminal() {
  local n pmc
  urootless_shim
  pmc="$(upodman_cmdline) --runtime $RT"
  pty_start 24 80 "$pmc run -it --rm --network none $IMAGE sh"
  pty_expect "# "
  pty_send 'echo hi-$((6*7))\r'
  pty_expect hi-42
  pty_send 'exit 7\r'
  pty_wait
  eq 7 "$PTY_RC" "exit code of rootless podman run -it after exit 7; terminal: $(pty_text)"
  n=$(cname rl-it)
  upm run -d --network none --name "$n" "$IMAGE" sleep 1000 >/dev/null
  wait_for "$n running" urunning "$n"
  pty_start 24 80 "$pmc exec -it $n sh"
  pty_expect "# "
  pty_send 'echo hi-$((6*7))\r'
  pty_expect hi-42
  pty_send 'exit 5\r'
  pty_wait
  eq 5 "$PTY_RC" "exit code of rootless podman exec -it after exit 5; terminal: $(pty_text)"
  upm stop -t 1 "$n" >/dev/null
}

# --- systemd: --sdnotify=container ----------------------------------------------------

# A quadlet unit with Notify=true (Type=notify, podman run
# --sdnotify=container): the container itself says READY=1 (sd-notify, a
# static sender built by tests/vm/lane, mounted into the busybox
# container), through the shim's relay. The unit stays activating while
# the container runs without having said it, becomes active after it, with
# the shim as MainPID and the container's STATUS= as its status text, as
# under conmon; systemctl stop ends it cleanly. (crun only: the runtime is
# told nothing of the socket, podman mounts it.)
sc_sdnotify() {
  local u=lane-n-$RT c shared sp mp st res
  c=systemd-$u
  shared=$W/shared-$u-$SHIM
  rm -rf "$shared"
  mkdir -p "$shared" /etc/containers/containers.conf.d
  install -m 0755 "$SHARE/sd-notify" "$W/sd-notify"
  if [ "$SHIM" = shimlet ]; then cp /usr/share/doc/shimlet/examples/50-shimlet.conf /etc/containers/containers.conf.d/; fi
  cat >"/etc/containers/systemd/$u.container" <<EOT
[Unit]
Description=VM lane sdnotify ($SHIM, $RT)

[Container]
Image=$IMAGE
ContainerName=$c
Exec=sh -c 'echo waiting; while [ ! -e /shared/go ]; do sleep 0.2; done; sd-notify STATUS=lane-ready READY=1; echo notified; trap "exit 0" TERM; while :; do sleep 0.5; done'
Network=none
Notify=true
Volume=$shared:/shared
Volume=$W/sd-notify:/bin/sd-notify:ro
GlobalArgs=--runtime=$RT

[Service]
TimeoutStartSec=300
TimeoutStopSec=60
EOT
  systemctl daemon-reload
  systemctl cat "$u.service" | grep -q '^Type=notify' || fail "quadlet made no Type=notify $u.service: $(systemctl cat "$u.service" 2>&1 | tail -30)"
  systemctl start --no-block "$u.service"
  wait_for "waiting in the unit's journal" unit_journal_has "$u.service" waiting
  sleep 2
  eq activating "$(systemctl is-active "$u.service" || true)" "state of $u.service while the container has not said READY=1"
  touch "$shared/go"
  wait_for "$u.service active after READY=1" unit_active "$u.service"
  wait_for "notified in the unit's journal" unit_journal_has "$u.service" notified
  sp=$(podman inspect --format '{{.State.ConmonPid}}' "$c")
  eq "$SHIM" "$(comm "$sp")" "the shim of the container (conmon_path)"
  mp=$(systemctl show -P MainPID "$u.service")
  eq "$sp" "$mp" "MainPID of $u.service (the shim)"
  st=$(systemctl show -P StatusText "$u.service")
  eq lane-ready "$st" "StatusText of $u.service (the container's STATUS=)"
  echo "[$SHIM] $u.service: MainPID $mp ($(comm "$mp")), StatusText $st, NotifyAccess $(systemctl show -P NotifyAccess "$u.service")"
  timeout "$CMD_TIMEOUT" systemctl stop "$u.service" || fail "systemctl stop $u.service failed"
  res=$(systemctl show -P Result "$u.service")
  wait_for "the shim (pid $sp) to exit" dead "$sp"
  wait_for "the container to be removed" no_container "$c"
  eq success "$res" "Result of $u.service after systemctl stop"
  rm -f "/etc/containers/systemd/$u.container" /etc/containers/containers.conf.d/50-shimlet.conf
  systemctl daemon-reload
}
unit_active() { [ "$(systemctl is-active "$1")" = active ]; }

# --- checkpoint and restore (criu) ------------------------------------------------------

# A counter checkpointed and restored in place, then (crun only, to keep the
# lane short: the runtime's part is the same) exported and imported: the
# restored container runs under the shim, its counter goes on where it
# stopped (no second start), and its log goes on in the same file.
sc_checkpoint() {
  local n sp last now arch
  n=$(cname ckpt)
  run_d "$n" -- sh -c 'i=0; while :; do i=$((i+1)); echo "count-$i"; echo $i >/tmp/count; sleep 0.3; done'
  wait_for "count-3 in the logs" logs_have "$n" count-3
  pm_ok container checkpoint "$n" >/dev/null
  eq exited "$(inspect "$n" '{{.State.Status}}')" "state after checkpoint"
  last=$(pm_ok logs "$n" | count_last)
  pm_ok container restore "$n" >/dev/null
  wait_inspect "$n" '{{.State.Running}}' true
  sp=$(inspect "$n" '{{.State.ConmonPid}}')
  eq "$SHIM" "$(comm "$sp")" "the shim of the restored container"
  wait_for "count-$((last + 3)) in the logs after restore" logs_have "$n" "count-$((last + 3))"
  now=$(pm_ok exec "$n" cat /tmp/count)
  [ "$now" -gt "$last" ] || fail "the restored counter is at $now, the checkpoint was at $last"
  eq 1 "$(pm_ok logs "$n" | grep -c '^count-1$')" "count-1 lines in the log (the restored process starts nothing again)"
  eq "1 ok" "$(pm_ok logs "$n" | count_contiguous)" "the log across the restore"
  if [ "$RT" != crun ]; then
    pm_ok stop -t 1 "$n" >/dev/null
    wait_for "the shim to exit after stop" dead "$sp"
    return 0
  fi
  # --export, rm, --import.
  arch=$W/$n.tar.gz
  pm_ok container checkpoint --export "$arch" "$n" >/dev/null
  last=$(pm_ok logs "$n" | count_last)
  pm_ok rm "$n" >/dev/null
  pm_ok container restore --import "$arch" >/dev/null
  wait_inspect "$n" '{{.State.Running}}' true
  sp=$(inspect "$n" '{{.State.ConmonPid}}')
  eq "$SHIM" "$(comm "$sp")" "the shim of the imported container"
  wait_for "the imported counter past $((last + 3))" counter_past "$n" $((last + 3))
  wait_for "new count lines in the imported container's log" logs_have "$n" "count-$((last + 3))"
  pm_ok stop -t 1 "$n" >/dev/null
  wait_for "the shim to exit after stop" dead "$sp"
  rm -f "$arch"
}
count_last() { grep '^count-[0-9]*$' | tail -1 | cut -d- -f2; }
# "FIRST ok" when the count-N lines go up by one, "gap ..." otherwise.
count_contiguous() {
  awk '/^count-[0-9]+$/ { n = substr($0, 7) + 0; if (c && n != last + 1) { print "gap after count-" last ": count-" n; bad = 1; exit }
       if (!c) first = n; last = n; c++ } END { if (!bad) print first, "ok" }'
}
counter_past() { [ "$(pm exec "$1" cat /tmp/count 2>/dev/null || echo 0)" -gt "$2" ]; }

# --- containerd 1.7 ---------------------------------------------------------------------
# The reference is containerd's own shim: SHIM=conmon stands for
# io.containerd.runc.v2 here, shimlet for io.containerd.shimlet.v1
# (/usr/bin/containerd-shim-shimlet-v1 from the .deb); both run runc (ctr
# takes --runc-binary for io.containerd.runc.v2 alone).

CTR_NS=lane
DOCKER_TAR=$W/image-docker.tar

ctrd_runtime() { if [ "$SHIM" = conmon ]; then echo io.containerd.runc.v2; else echo io.containerd.shimlet.v1; fi; }
shim_exe() { if [ "$SHIM" = conmon ]; then echo /usr/bin/containerd-shim-runc-v2; else echo /usr/bin/shimlet; fi; }

# The test image as a docker-archive (podman save), for ctr and docker.
docker_tar() {
  [ -s "$DOCKER_TAR" ] || timeout "$CMD_TIMEOUT" podman save -q --format docker-archive -o "$DOCKER_TAR" "$IMAGE"
}

# ctr ARGS...: bounded, in the lane's namespace.
ctr_() { timeout -k 10 "$CMD_TIMEOUT" ctr -n "$CTR_NS" "$@"; }

ctrd_up() {
  systemctl is-active -q containerd || timeout "$CMD_TIMEOUT" systemctl start containerd
  wait_for "containerd to answer" ctr_ version
  if ! ctr_ images ls -q | grep -qx "$IMAGE"; then
    docker_tar
    ctr_ images import "$DOCKER_TAR" >/dev/null
  fi
  ctr_ images ls -q | grep -qx "$IMAGE" || fail "ctr images import: no $IMAGE in containerd: $(ctr_ images ls -q)"
}

ctr_status() { ctr_ task ls 2>/dev/null | awk -v id="$1" '$1 == id { print $3 }'; }
ctr_status_is() { [ "$(ctr_status "$1")" = "$2" ]; }

# ctr run (exit code, both streams), ctr run -d, task exec (exit code,
# output), task metrics (cgroup v2: pids, memory), task kill (137), task
# delete; the shim is the container's parent.
sc_containerd() {
  local rt a b out rc pid sp m del
  ctrd_up
  rt=$(ctrd_runtime)
  a=$(cname ctr-a) b=$(cname ctr-b)
  rc=0
  out=$(ctr_ run --rm --runtime "$rt" "$IMAGE" "$a" sh -c 'echo out-line; echo err-line >&2; exit 3' 2>"$W/err") || rc=$?
  eq 3 "$rc" "exit code of ctr run (stderr: $(cat "$W/err"))"
  eq out-line "$out" "stdout of ctr run"
  has "$(cat "$W/err")" err-line "stderr of ctr run"
  ctr_ run -d --runtime "$rt" "$IMAGE" "$b" sleep 1000 >"$W/out" 2>&1 || fail "ctr run -d: $(cat "$W/out")"
  wait_for "task $b RUNNING" ctr_status_is "$b" RUNNING
  pid=$(ctr_ task ls | awk -v id="$b" '$1 == id { print $2 }')
  sp=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status")
  eq "$(shim_exe)" "$(readlink "/proc/$sp/exe")" "the task's parent (the shim)"
  rc=0
  out=$(ctr_ task exec --exec-id e1 "$b" sh -c 'echo exec-out; exit 4' 2>&1) || rc=$?
  eq 4 "$rc" "exit code of ctr task exec"
  eq exec-out "$out" "output of ctr task exec"
  m=$(ctr_ task metrics --format json "$b")
  echo "[$SHIM] ctr task metrics: $(echo "$m" | jq -c '{pids, memory: {usage: .memory.usage, anon: .memory.anon}, cpu: {usage_usec: .cpu.usage_usec}}')"
  eq 1 "$(echo "$m" | jq -r '.pids.current')" "pids.current in ctr task metrics"
  [ "$(echo "$m" | jq -r '.memory.usage // 0')" -gt 0 ] || fail "no memory.usage in ctr task metrics: $m"
  [ "$(echo "$m" | jq -r '.cpu.usage_usec // 0')" -gt 0 ] || fail "no cpu.usage_usec in ctr task metrics: $m"
  ctr_ task kill -s KILL "$b"
  wait_for "task $b STOPPED" ctr_status_is "$b" STOPPED
  del=$(ctr_ task delete "$b" 2>&1)
  has "$del" "exit code 137" "ctr task delete after kill -s KILL"
  ctr_ container rm "$b"
  wait_for "the shim (pid $sp) to exit" dead "$sp"
}

# --- Docker 26 ----------------------------------------------------------------------------
# docker run --runtime io.containerd.runc.v2 (the reference, SHIM=conmon)
# or io.containerd.shimlet.v1: Docker takes a containerd shim's name as a
# runtime as it is, with no daemon.json. Docker runs runc (RT).

dk() { timeout -k 10 "$CMD_TIMEOUT" docker "$@"; }

docker_up() {
  systemctl is-active -q docker || timeout "$CMD_TIMEOUT" systemctl start docker
  wait_for "dockerd to answer" dk info
  if ! dk image inspect "$IMAGE" >/dev/null 2>&1; then
    docker_tar
    dk load -q -i "$DOCKER_TAR" >/dev/null
  fi
  dk image inspect "$IMAGE" >/dev/null || fail "docker load: no $IMAGE"
}

dk_is() { [ "$(dk inspect -f "$2" "$1" 2>/dev/null)" = "$3" ]; }
dk_logs_have() { dk logs "$1" 2>&1 | grep -qx "$2"; }

# run (exit code, both streams), run -d, logs, exec, stats, attach, stop
# (the container's TERM trap, exit 0; attach sees its last line and ends),
# and --restart on-failure:2 (two restarts, three runs, then exited 1).
sc_docker() {
  local rt n r out rc pid sp ap line
  docker_up
  rt=$(ctrd_runtime)
  rc=0
  out=$(dk run --rm --network none --runtime "$rt" "$IMAGE" sh -c 'echo out-line; echo err-line >&2; exit 3' 2>"$W/err") || rc=$?
  eq 3 "$rc" "exit code of docker run (stderr: $(cat "$W/err"))"
  eq out-line "$out" "stdout of docker run"
  eq err-line "$(cat "$W/err")" "stderr of docker run"
  n=$(cname dk) r=$(cname dk-restart)
  dk run -d --name "$n" --network none --runtime "$rt" "$IMAGE" \
    sh -c 'echo started; echo err-started >&2; trap "echo got-term; exit 0" TERM; while :; do sleep 0.3; done' >/dev/null
  wait_for "$n running" dk_is "$n" '{{.State.Running}}' true
  pid=$(dk inspect -f '{{.State.Pid}}' "$n")
  sp=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status")
  eq "$(shim_exe)" "$(readlink "/proc/$sp/exe")" "the container's parent (the shim)"
  wait_for "started in docker logs" dk_logs_have "$n" started
  out=$(dk logs "$n" 2>"$W/err")
  eq started "$out" "stdout of docker logs"
  eq err-started "$(cat "$W/err")" "stderr of docker logs"
  rc=0
  out=$(dk exec "$n" sh -c 'echo exec-out; exit 5') || rc=$?
  eq 5 "$rc" "exit code of docker exec"
  eq exec-out "$out" "output of docker exec"
  line=$(dk stats --no-stream --format '{{.MemUsage}}|{{.PIDs}}' "$n")
  echo "[$SHIM] docker stats: $line"
  case $line in 0B* | '' | --*) fail "docker stats shows no memory use: $line" ;; esac
  dk attach --no-stdin --sig-proxy=false "$n" >"$W/attach.out" 2>&1 &
  ap=$!
  sleep 2
  alive "$ap" || fail "docker attach ended at once: $(cat "$W/attach.out")"
  dk stop -t 30 "$n" >/dev/null
  eq 0 "$(dk inspect -f '{{.State.ExitCode}}' "$n")" "exit code after docker stop (the TERM trap)"
  wait_for "docker attach to end after the stop" dead "$ap"
  rc=0
  wait "$ap" || rc=$?
  has "$(cat "$W/attach.out")" got-term "the output of docker attach"
  wait_for "the shim (pid $sp) to exit" dead "$sp"
  dk rm "$n" >/dev/null
  dk run -d --name "$r" --network none --runtime "$rt" --restart on-failure:2 "$IMAGE" sh -c 'echo attempt; sleep 1; exit 1' >/dev/null
  wait_for "$r: two restarts, then exited" dk_is "$r" '{{.RestartCount}} {{.State.Status}}' "2 exited"
  eq 1 "$(dk inspect -f '{{.State.ExitCode}}' "$r")" "exit code after the restarts"
  eq 3 "$(dk logs "$r" 2>&1 | grep -c '^attempt$')" "runs in the logs of the on-failure:2 container"
  dk rm "$r" >/dev/null
}
