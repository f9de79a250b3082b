# The VM lane's test program: run by tests/vm/run inside the Debian 13 VM, as
# root, from the 9p share (its working directory holds this file as `entry`,
# lib.sh, scenarios.sh, known-failures and shimlet's .deb).
#
# It installs shimlet's .deb with dpkg, builds the busybox image and imports
# it (no registry: the VM has no network), then runs every scenario of
# scenarios.sh for each of its combinations of shim (conmon first, to prove
# the scenario and the harness right, then shimlet) and runtime (crun, the
# default, then runc). One line per run: PASS or FAIL (with the tail of its
# log), then a closing count. Arguments: words that scenario names must
# contain (all scenarios without any).
#
# After every run the lane removes all containers and pods (root's and the
# rootless user's) and requires that no shim process is left.
# Last, the bench on cgroup v2 when its binary is in the share (run_bench).

set -u
cd "$(dirname "$0")" || exit 1
share=$PWD
# tests/vm/run passes its arguments in the share's `args`.
if [ $# -eq 0 ] && [ -s args ]; then eval "set -- $(cat args)"; fi
# ... and the host's SHIMLET_VM_KNOWN and SCENARIO_TIMEOUT in `env`.
# shellcheck disable=SC1091
[ -f env ] && . ./env
# (No words reach here as one empty word: `printf %q` of nothing is ''.)
filters=()
for a in "$@"; do [ -n "$a" ] && filters+=("$a"); done

export W=/var/lib/shimlet-lane
export REF=$W/ref
export SEQ_FILE=$W/seq
export SHARE=$share
rm -rf "$W"
mkdir -p "$W/logs" "$REF"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
# shellcheck source=lib.sh
. ./lib.sh
# shellcheck source=scenarios.sh
. ./scenarios.sh

SCENARIO_TIMEOUT=${SCENARIO_TIMEOUT:-900}
# As a user's shell, not a systemd service: podman puts the shim in a scope
# of its own (libpod-conmon-ID.scope) only when $INVOCATION_ID is unset.
unset INVOCATION_ID JOURNAL_STREAM
lane_t0=$(date +%s)

echo "== the stack"
echo "kernel $(uname -r); $(systemctl --version | head -1); cgroup $(stat -fc %T /sys/fs/cgroup)"
echo "$(podman --version); $(crun --version | head -1); $(runc --version | head -1); $(conmon --version | head -1)"
podman info --format 'podman: cgroup manager {{.Host.CgroupManager}}, cgroups {{.Host.CgroupsVersion}}, runtime {{.Host.OCIRuntime.Name}}, log driver {{.Host.LogDriver}}, events {{.Host.EventLogger}}' 2>&1

echo "== setup"
setup_ok=1
deb=$(ls "$share"/shimlet_*.deb 2>/dev/null | head -1)
if [ -z "$deb" ]; then
  echo "SETUP FAILED: no shimlet_*.deb in the share (make deb)"
  setup_ok=
elif ! dpkg -i "$deb" >"$W/logs/dpkg.log" 2>&1; then
  echo "SETUP FAILED: dpkg -i $(basename "$deb"):"
  sed 's/^/    /' "$W/logs/dpkg.log"
  setup_ok=
else
  echo "installed $(basename "$deb"): $(dpkg-query -W -f='${Package} ${Version}' shimlet)"
fi
if [ -n "$setup_ok" ] && ! build_image >"$W/logs/image.log" 2>&1; then
  echo "SETUP FAILED: the busybox image:"
  sed 's/^/    /' "$W/logs/image.log" | tail -30
  setup_ok=
fi
[ -n "$setup_ok" ] && echo "imported $IMAGE (busybox-static rootfs)"
echo "setup took $(($(date +%s) - lane_t0)) s"

known=()
while read -r k; do
  case $k in '' | '#'*) continue ;; esac
  known+=("$k")
done <known-failures

passed=0
failed=0
known_failed=0
failures=()
knowns=()

# is_known "SCENARIO SHIM/RUNTIME"
is_known() {
  local k w1 w2 rest
  for k in "${known[@]}"; do
    read -r w1 w2 rest <<<"$k"
    [ "$w1 $w2" = "$1" ] && return 0
  done
  return 1
}

wanted() {
  local f
  [ ${#filters[@]} -eq 0 ] && return 0
  for f in "${filters[@]}"; do
    case $1 in *"$f"*) return 0 ;; esac
  done
  return 1
}

# after_run SCENARIO: removes what a run may have left (each podman command
# costs seconds in the emulated VM: only what the scenario can have made);
# prints the shim processes still alive 30 s later and fails then
# (containerd's tasks and Docker's containers are removed too).
after_run() {
  local sc=$1 end pids u
  rm -f /etc/containers/containers.conf.d/50-shimlet.conf
  for u in /etc/containers/systemd/lane-*.container; do
    [ -e "$u" ] || continue
    systemctl stop "$(basename "$u" .container).service" 2>/dev/null
    rm -f "$u"
    systemctl daemon-reload 2>/dev/null
  done
  case $sc in pod_* | kube_*) timeout 120 podman pod rm -af -t 0 >/dev/null 2>&1 ;; esac
  timeout 120 podman rm -af -t 0 >/dev/null 2>&1
  case $sc in containerd)
    for t in $(timeout 60 ctr -n lane task ls -q 2>/dev/null); do
      timeout 60 ctr -n lane task kill -s KILL "$t" >/dev/null 2>&1
      timeout 60 ctr -n lane task delete -f "$t" >/dev/null 2>&1
    done
    for t in $(timeout 60 ctr -n lane container ls -q 2>/dev/null); do timeout 60 ctr -n lane container rm "$t" >/dev/null 2>&1; done ;;
  esac
  case $sc in docker)
    if systemctl is-active -q docker; then
      pids=$(timeout 60 docker ps -aq 2>/dev/null)
      [ -z "$pids" ] || timeout 120 docker rm -f $pids >/dev/null 2>&1
    fi ;;
  esac
  case $sc in rootless_*)
    if id "$TUSER" >/dev/null 2>&1; then
      rm -f "/home/$TUSER/.config/containers/containers.conf.d/50-shimlet.conf"
      (cd /tmp && upodman rm -af -t 0 >/dev/null 2>&1)
    fi ;;
  esac
  end=$(($(date +%s) + 30))
  # containerd's shims (runc-v2's and shimlet's) show as containerd-shim.
  while pids=$(pgrep -x 'conmon|shimlet|containerd-shim'); do
    if [ "$(date +%s)" -ge "$end" ]; then
      ps -o pid,ppid,user,comm,args -p "$(echo $pids | tr ' ' ,)" 2>/dev/null
      kill -KILL $pids 2>/dev/null
      return 1
    fi
    sleep 0.2
  done
  return 0
}

# run_one SCENARIO SHIM RUNTIME
run_one() {
  local sc=$1 shim=$2 rt=$3 label log rc t0 took verdict
  label="$sc [$shim/$rt]"
  log=$W/logs/$sc-$shim-$rt.log
  t0=$(date +%s)
  if [ -z "$setup_ok" ]; then
    echo "setup failed" >"$log"
    rc=1
  else
    (
      export SHIM=$shim RT=$rt
      case $shim in conmon) export SHIM_PATH=/usr/bin/conmon ;; shimlet) export SHIM_PATH=/usr/bin/shimlet ;; esac
      cd "$W" && exec timeout -k 10 "$SCENARIO_TIMEOUT" bash -c '
        set -eu
        . "$SHARE/lib.sh"
        . "$SHARE/scenarios.sh"
        PS4="+ "
        # The trace goes to the log even where a command'"'"'s stderr is captured.
        exec {xfd}>&2
        BASH_XTRACEFD=$xfd
        set -x
        "sc_$0"' "$sc"
    ) >"$log" 2>&1 </dev/null
    rc=$?
    [ "$rc" = 124 ] && echo "SCENARIO TIMED OUT after ${SCENARIO_TIMEOUT}s" >>"$log"
    if ! after_run "$sc" >>"$log.left" 2>&1; then
      echo "LEFT RUNNING: shim processes alive 30s after the run's containers were removed:" >>"$log"
      cat "$log.left" >>"$log"
      rc=1
    fi
    rm -f "$log.left"
  fi
  took=$(($(date +%s) - t0))
  if [ "$rc" = 0 ]; then
    if is_known "$sc $shim/$rt"; then
      verdict="FAIL (UNEXPECTED PASS: remove it from tests/vm/guest/known-failures)"
      failed=$((failed + 1))
      failures+=("$label")
    else
      verdict=PASS
      passed=$((passed + 1))
    fi
  elif is_known "$sc $shim/$rt" && [ "${SHIMLET_VM_KNOWN:-}" != fail ]; then
    verdict="KNOWN FAIL (tests/vm/guest/known-failures)"
    known_failed=$((known_failed + 1))
    knowns+=("$label")
  else
    verdict=FAIL
    failed=$((failed + 1))
    failures+=("$label")
  fi
  echo "$verdict $label (${took}s)"
  if [ -s "$W/notes" ]; then sed 's/^/    /' "$W/notes"; fi
  rm -f "$W/notes"
  if [ "$rc" != 0 ]; then
    grep -h 'ASSERTION FAILED\|SCENARIO TIMED OUT\|LEFT RUNNING' "$log" | head -5 | sed 's/^/    /'
    echo "    --- last lines of its log ---"
    grep -v '^+' "$log" | tail -25 | sed 's/^/    | /'
  fi
}

echo "== scenarios"
for entry in "${SCENARIOS[@]}"; do
  set -- $entry
  sc=$1
  combos=$2
  wanted "$sc" || continue
  case $combos in
    all) set -- conmon/crun shimlet/crun conmon/runc shimlet/runc ;;
    crun) set -- conmon/crun shimlet/crun ;;
    runc) set -- conmon/runc shimlet/runc ;;
    shimlet) set -- shimlet/crun ;;
    *) echo "scenarios.sh: bad combination $combos of $sc"; exit 2 ;;
  esac
  for c in "$@"; do
    run_one "$sc" "${c%/*}" "${c#*/}"
  done
done

# The bench (benches/: figure 1, memory per container, and 7, containerd)
# on cgroup v2, last, when tests/vm/lane put its binary in the share: with
# every scenario (no words) or with the word `bench` alone (make bench-vm).
# It asserts no number (the VM is emulated: memory figures hold, times do
# not): the run fails only when the bench does not run through, a figure
# fails or is skipped, a row is dropped, or it leaves something behind.
# Its results go to the share's out/ (tests/vm/run --out: target/bench/vm/).
run_bench() {
  local args log=$W/logs/bench.log md=$share/out/results.md t0 rc=0 left before p
  args=${SHIMLET_VM_BENCH:---only memory,containerd --n 10 --runs 1 --ctrd-n 5 --ctrd-runs 1}
  echo "== bench: SHIMLET_BIN=/usr/bin/shimlet shimlet-bench $args"
  t0=$(date +%s)
  rm -f "$share"/out/results.* "$share"/out/*.svg
  # What runs already (the system's containerd and dockerd, which the
  # containerd and docker scenarios start) is not the bench's to leave.
  before=" $(pgrep -x 'containerd|containerd-shim|conmon|shimlet|runc' 2>/dev/null | tr '\n' ' ')"
  if [ -z "$setup_ok" ]; then
    echo "setup failed" >"$log"
    rc=1
  else
    # Its tables (stdout) go to the console, its progress (stderr) too,
    # indented, and to its log; the pipeline ends when the log is whole.
    # shellcheck disable=SC2086
    {
      (cd "$W" && SHIMLET_BIN=/usr/bin/shimlet exec timeout -k 10 "${BENCH_TIMEOUT:-1500}" \
        "$share/shimlet-bench" $args --csv "$share/out/results.csv") 2>&1 >&3 3>&- </dev/null |
        tee "$log" | sed -u 's/^/    /' >&2
      rc=${PIPESTATUS[0]}
    } 3>&1
    [ "$rc" = 124 ] && echo "BENCH TIMED OUT after ${BENCH_TIMEOUT:-1500}s" >>"$log"
    if [ ! -s "$md" ]; then
      echo "no $md written" >>"$log"
      rc=1
    elif grep -q ': FAILED\|: skipped\|SKIP:\|row dropped' "$md"; then
      grep ': FAILED\|: skipped\|SKIP:\|row dropped' "$md" >>"$log"
      rc=1
    fi
    left=
    for p in $(pgrep -x 'containerd|containerd-shim|conmon|shimlet|runc' 2>/dev/null); do
      case $before in *" $p "*) ;; *) left="$left $(ps -o pid=,args= -p "$p")" ;; esac
    done
    if [ -n "$left" ] || ls -d /sys/fs/cgroup/shimlet-bench-* >/dev/null 2>&1; then
      echo "LEFT RUNNING after the bench: $left $(ls -d /sys/fs/cgroup/shimlet-bench-* 2>/dev/null)" >>"$log"
      rc=1
    fi
  fi
  if [ "$rc" = 0 ]; then
    echo "PASS bench [shimlet-bench, cgroup v2] ($(($(date +%s) - t0))s)"
    passed=$((passed + 1))
  else
    echo "FAIL bench [shimlet-bench, cgroup v2] ($(($(date +%s) - t0))s, exit $rc)"
    grep 'FAILED\|skipped\|SKIP:\|row dropped\|TIMED OUT\|LEFT RUNNING\|no .* written' "$log" | head -5 | sed 's/^/    /'
    echo "    --- last lines of its log ---"
    tail -25 "$log" | sed 's/^/    | /'
    failed=$((failed + 1))
    failures+=("bench")
  fi
}
if [ -x "$share/shimlet-bench" ] && { [ ${#filters[@]} -eq 0 ] || [ "${filters[*]}" = bench ]; }; then
  run_bench
fi

total=$(($(date +%s) - lane_t0))
echo "== summary"
[ ${#failures[@]} -gt 0 ] && printf 'failed: %s\n' "${failures[@]}"
[ ${#knowns[@]} -gt 0 ] && printf 'known failure (tests/vm/guest/known-failures): %s\n' "${knowns[@]}"
echo "vm lane took ${total}s in the VM"
[ "$known_failed" -gt 0 ] && echo "vm: $known_failed known failures, not counted below (SHIMLET_VM_KNOWN=fail counts them)"
echo "vm: $passed passed, $failed failed"
[ -n "$setup_ok" ] && [ "$failed" = 0 ] && [ $((passed + known_failed)) -gt 0 ]
