#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# --cpus as the kernel enforces it: a CPU burner in a busybox container uses about half a core
# under --cpus 0.5 and (nearly) a whole one without it. Its CPU time is read from the
# container's cgroup (cpuacct.usage on v1 and hybrid, cpu.stat usage_usec on v2) or, where
# neither is found, from /proc/PID/stat of the container's process, over a window of ~3 s of
# wall time measured on the host.

# shellcheck source-path=SCRIPTDIR source=lib-run.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-run.sh"

WINDOW=3 # seconds of wall time measured

# A burner that stops by itself even if every clean-up failed: busybox timeout, inside.
BURN='exec timeout -s KILL 60 sh -c "while :; do :; done"'

# cpu_ns ID PID: the CPU time (ns) used so far by container ID, whose process is PID.
cpu_ns() {
  local id=$1 pid=$2 d v
  for d in $(cgroup_dirs "$id"); do
    if [ -r "$d/cpuacct.usage" ]; then
      cat "$d/cpuacct.usage"
      return 0
    fi
  done
  for d in $(cgroup_dirs "$id"); do
    if [ -r "$d/cpu.stat" ] && v=$(awk '$1 == "usage_usec" {print $2}' "$d/cpu.stat") &&
      [ -n "$v" ]; then
      echo $((v * 1000))
      return 0
    fi
  done
  # utime + stime (fields 14 and 15, after the parenthesised comm) in clock ticks, of the
  # container's process (timeout) and its children (the spinning shell).
  local p ticks=0
  for p in "$pid" $(cat "/proc/$pid/task/$pid/children" 2>/dev/null); do
    v=$(sed 's/^.*) //' "/proc/$p/stat" | awk '{print $12 + $13}') || return 1
    ticks=$((ticks + v))
  done
  echo $((ticks * 1000000000 / $(getconf CLK_TCK)))
}

# measure NAME ARGS…: run the burner as container NAME with ARGS, measure its share of one core
# over WINDOW seconds (percent, in SHARE), then remove it. Returns 1 when it could not measure.
measure() {
  local name=$1 job id cpid u0 u1 t0 t1
  shift
  SHARE=
  "$CIMG" --root "$CIMG_ROOT" run --name "$name" "$@" "$RUN_IMG" sh -c "$BURN" >/dev/null 2>&1 &
  job=$!
  _CIMG_TEST_PIDS+=("$job")
  if ! id=$(wait_running "$name"); then
    _kill_pid "$job"
    return 1
  fi
  remember_ids # (wait_running ran in a subshell): for the clean-up and the checks at the end
  cpid=$(jq -r .Pid "$CIMG_ROOT/containers/$id/state.json")
  sleep 0.3 # past the start: the shell is spinning
  if u0=$(cpu_ns "$id" "$cpid") && t0=$(date +%s%N) && sleep "$WINDOW" &&
    u1=$(cpu_ns "$id" "$cpid") && t1=$(date +%s%N); then
    SHARE=$(((u1 - u0) * 100 / (t1 - t0)))
    log "$name ($*): $(((u1 - u0) / 1000000)) ms of CPU in $(((t1 - t0) / 1000000)) ms: $SHARE%"
  fi
  run cimg rm -f "$name"
  if [ "$RC" -ne 0 ]; then
    fail "cimg rm -f $name exited $RC"
    _show_output
  fi
  wait_job "$job"
  _kill_pid "$job"
  if kill -0 "$cpid" 2>/dev/null && [ "$(awk '{print $3}' "/proc/$cpid/stat" 2>/dev/null)" != Z ]; then
    fail "the burner (pid $cpid) outlived its container"
    kill -KILL "$cpid" 2>/dev/null || true
  else
    pass "the burner of $name is gone"
  fi
  [ -n "$SHARE" ]
}

section "fixtures"
load_run_fixtures

# check NAME LOW HIGH ARGS…: the burner run with ARGS uses between LOW and HIGH percent of a
# core. Other work on the host (these VMs run other tests and builds) can only take CPU time
# from it, never give it more: a share below LOW is measured again, up to three times, and the
# best attempt counts. The upper bounds hold on every attempt.
check() {
  local name=$1 low=$2 high=$3 attempt best=-1
  shift 3
  for attempt in 1 2 3; do
    if ! measure "$name$attempt" "$@"; then
      fail "$name: could not measure the burner's CPU time"
      return
    fi
    if [ "$SHARE" -gt "$high" ]; then
      fail "$name: the burner used $SHARE% of a core, more than $high%"
      return
    fi
    [ "$SHARE" -gt "$best" ] && best=$SHARE
    [ "$SHARE" -ge "$low" ] && break
  done
  if [ "$best" -ge "$low" ] && [ "$best" -le "$high" ]; then
    pass "$name: the burner used $best% of a core ($low–$high%)"
  else
    fail "$name: the burner used $best% of a core, expected $low–$high%"
  fi
}

section "--cpus 0.5"
check cpus-half 35 65 --cpus 0.5

section "no limit"
check no-limit 81 105 # a single thread: 100%, give or take the timing
for id in $(printf '%s\n' "${_RUN_SEEN_IDS[@]}" | sort -u); do
  assert_eq "$(cgroup_dirs "$id" | wc -l)" 0 "no cgroup left for ${id:0:12}"
done
assert_eq "$(container_ids | wc -l)" 0 "no container left"
