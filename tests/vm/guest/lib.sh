# The VM lane's little test library (bash), sourced by lane.sh and by every
# scenario's shell. A scenario is a function that runs in a shell of its own
# with `set -eu`; it fails at its first failed assertion (`fail`), or at any
# command that fails unexpectedly, or when it outlives its bound.
#
# Context of a scenario, set by lane.sh: SHIM (conmon|shimlet), SHIM_PATH,
# RT (crun|runc), W (the lane's work directory), REF (values the conmon run
# recorded for the shimlet run to compare with), SEQ_FILE.

# Bound of every podman command and of every wait, in seconds: generous, the
# machine is emulated and shared.
CMD_TIMEOUT=${CMD_TIMEOUT:-180}
WAIT=${WAIT:-90}

IMAGE=localhost/shimlet-test:latest
TUSER=lanetester

# --- failing -------------------------------------------------------------------

# fail MESSAGE...: the scenario fails with MESSAGE.
fail() {
  { set +x; } 2>/dev/null
  echo "ASSERTION FAILED [$SHIM/$RT]: $*" >&2
  exit 1
}

# note TEXT...: a difference worth a line in the lane's output (after the
# run's PASS/FAIL line) that does not fail the run.
note() {
  echo "NOTE [$SHIM/$RT]: $*" | tee -a "$W/notes" >&2
}

# eq WANT GOT WHAT
eq() {
  [ "$1" = "$2" ] || fail "$3: want $(printf %q "$1"), got $(printf %q "$2")"
}

# has HAYSTACK NEEDLE WHAT
has() {
  case $1 in *"$2"*) ;; *) fail "$3: $(printf %q "$2") not in: $(printf %q "$1" | tail -c 2000)" ;; esac
}

# hasnt HAYSTACK NEEDLE WHAT
hasnt() {
  case $1 in *"$2"*) fail "$3: $(printf %q "$2") must not be in: $(printf %q "$1" | tail -c 2000)" ;; esac
}

# --- commands ------------------------------------------------------------------

seq_next() {
  local n
  n=$(cat "$SEQ_FILE" 2>/dev/null || echo 0)
  echo $((n + 1)) >"$SEQ_FILE"
  echo "$n"
}

# A container name unique in the lane.
cname() { echo "$1-$SHIM-$RT-$(seq_next)"; }

# pm ARGS...: podman with this context's shim and runtime, bounded.
pm() {
  timeout -k 10 "$CMD_TIMEOUT" podman --conmon "$SHIM_PATH" --runtime "$RT" "$@"
}

# pm_ok ARGS...: podman that must succeed; prints its stdout.
pm_ok() {
  local out rc=0
  out=$(pm "$@" 2>"$W/pm.err") || rc=$?
  if [ "$rc" != 0 ]; then
    fail "podman $* exited $rc; stderr: $(tail -c 3000 "$W/pm.err"); stdout: $(printf %s "$out" | tail -c 2000)"
  fi
  cat "$W/pm.err" >&2
  printf '%s\n' "$out"
}

# inspect NAME FORMAT
inspect() { pm_ok inspect --format "$2" "$1"; }

# run_d NAME [OPTIONS...] -- CMD...: `podman run -d --network none --name NAME
# OPTIONS IMAGE CMD...` that must succeed.
run_d() {
  local name=$1 opts=()
  shift
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    opts+=("$1")
    shift
  done
  shift
  pm_ok run -d --network none --name "$name" "${opts[@]}" "$IMAGE" "$@" >/dev/null
}

# pm_wait NAME: `podman wait`'s exit code of the container.
pm_wait() {
  local c
  c=$(pm_ok wait "$1")
  case $c in '' | *[!0-9-]*) fail "podman wait $1 printed no exit code: $c" ;; esac
  echo "$c"
}

# wait_for WHAT COMMAND...: until COMMAND succeeds (bounded by WAIT).
wait_for() {
  { set +x; } 2>/dev/null
  local what=$1 end=$(($(date +%s) + WAIT))
  shift
  while ! "$@" >/dev/null 2>&1; do
    if [ "$(date +%s)" -ge "$end" ]; then
      fail "gave up after ${WAIT}s waiting for $what (\`$*\`)"
    fi
    sleep 0.2
  done
}

# wait_inspect NAME FORMAT WANT
wait_inspect() {
  wait_for "$1: inspect $2 = $3" inspect_is "$@"
}
inspect_is() { [ "$(pm inspect --format "$2" "$1" 2>/dev/null)" = "$3" ]; }

alive() { [ -d "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }
dead() { ! alive "$1"; }
comm() { cat "/proc/$1/comm" 2>/dev/null; }

# ref_put KEY VALUE (conmon's run) / ref_get KEY (shimlet's run).
ref_put() { printf '%s' "$2" >"$REF/$RT-$1"; }
ref_get() {
  [ -f "$REF/$RT-$1" ] || fail "no value of conmon's run recorded for $1 (did it fail?)"
  cat "$REF/$RT-$1"
}

# --- a pseudo-terminal ---------------------------------------------------------
# One session at a time: `script` runs the command on a new pty (its
# controlling terminal, the size set first with stty), its input from a FIFO
# the scenario keeps open, its output (the terminal's) into a file.

PTY_DIR=
PTY_PID=
PTY_FD=
PTY_POS=0

# pty_start ROWS COLS COMMAND-LINE
pty_start() {
  PTY_DIR=$W/pty-$(seq_next)
  mkdir -p "$PTY_DIR"
  mkfifo "$PTY_DIR/in"
  : >"$PTY_DIR/out"
  SHELL=/bin/bash script -qfec "stty rows $1 cols $2; exec $3" /dev/null <"$PTY_DIR/in" >"$PTY_DIR/out" 2>&1 &
  PTY_PID=$!
  exec {PTY_FD}>"$PTY_DIR/in"
  PTY_POS=0
}

pty_text() { cat -v "$PTY_DIR/out" | tail -c 3000; }

# pty_expect TEXT: waits for TEXT in the terminal's output after what earlier
# expects consumed.
pty_expect() {
  { set +x; } 2>/dev/null
  local end=$(($(date +%s) + WAIT)) off
  while :; do
    off=$(tail -c +$((PTY_POS + 1)) "$PTY_DIR/out" | grep -boaF -- "$1" | head -1 | cut -d: -f1)
    if [ -n "$off" ]; then
      PTY_POS=$((PTY_POS + off + ${#1}))
      return 0
    fi
    if ! alive "$PTY_PID"; then
      sleep 0.5
      tail -c +$((PTY_POS + 1)) "$PTY_DIR/out" | grep -qaF -- "$1" && { pty_expect "$1"; return; }
      fail "the terminal's program ended before printing $(printf %q "$1"); terminal: $(pty_text)"
    fi
    if [ "$(date +%s)" -ge "$end" ]; then
      fail "gave up after ${WAIT}s waiting for $(printf %q "$1") on the terminal; terminal: $(pty_text)"
    fi
    sleep 0.2
  done
}

# pty_send STRING (printf format: \r, \x10 ...)
pty_send() {
  # shellcheck disable=SC2059
  printf "$1" >&"$PTY_FD"
}

# pty_wait: waits (bounded) for the program to end; its exit status in PTY_RC
# (not printed: a command substitution's subshell could not wait for it).
PTY_RC=
pty_wait() {
  { set +x; } 2>/dev/null
  local end=$(($(date +%s) + WAIT)) rc=0
  while alive "$PTY_PID"; do
    if [ "$(date +%s)" -ge "$end" ]; then
      pkill -KILL -P "$PTY_PID" 2>/dev/null
      kill -KILL "$PTY_PID" 2>/dev/null
      wait "$PTY_PID" 2>/dev/null
      exec {PTY_FD}>&-
      fail "the terminal's program did not end within ${WAIT}s; terminal: $(pty_text)"
    fi
    sleep 0.2
  done
  wait "$PTY_PID" || rc=$?
  exec {PTY_FD}>&-
  PTY_RC=$rc
}

# --- images and users ----------------------------------------------------------

# The busybox applets the scenarios' containers use.
APPLETS="sh echo cat sleep printf head yes kill ls seq dd tr true false wc stty env tail awk id grep touch rm mkdir ps hostname test readlink"

# The test image: a busybox-static root filesystem, tarred and imported by
# root (and by the rootless user in rootless_setup). Leaves $W/rootfs.tar.
build_image() {
  local r=$W/rootfs a
  rm -rf "$r"
  mkdir -p "$r/bin" "$r/proc" "$r/sys" "$r/dev" "$r/tmp" "$r/etc"
  cp /bin/busybox "$r/bin/busybox"
  for a in $APPLETS; do ln -s busybox "$r/bin/$a"; done
  chmod 1777 "$r/tmp"
  tar -C "$r" -cf "$W/rootfs.tar" .
  chmod 0644 "$W/rootfs.tar"
  podman import -q "$W/rootfs.tar" "$IMAGE" >/dev/null
  rm -rf "$r"
  podman image exists "$IMAGE"
}

tuid() { id -u "$TUSER"; }

# upodman ARGS...: podman as the rootless user, in its systemd user session's
# environment (XDG_RUNTIME_DIR, the user bus), bounded.
upodman() {
  local uid
  uid=$(tuid)
  timeout -k 10 "$CMD_TIMEOUT" runuser -u "$TUSER" -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME="/home/$TUSER" USER="$TUSER" \
    LOGNAME="$TUSER" XDG_RUNTIME_DIR="/run/user/$uid" DBUS_SESSION_BUS_ADDRESS="unix:path=/run/user/$uid/bus" \
    podman "$@"
}

# The same command line as a string, for a pty session.
upodman_cmdline() {
  local uid
  uid=$(tuid)
  echo "runuser -u $TUSER -- env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/$TUSER USER=$TUSER LOGNAME=$TUSER TERM=xterm XDG_RUNTIME_DIR=/run/user/$uid DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$uid/bus podman"
}
