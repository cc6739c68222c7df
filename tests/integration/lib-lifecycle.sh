# shellcheck shell=bash
# Helpers for the tests of detached containers and the lifecycle commands (logs, wait, stop,
# kill, start, restart, rm -f, container prune): sourced by test_lifecycle.sh, after which
# lib-run.sh's fixtures and helpers are there too.
#
# Clean-up: on exit, whatever happened, the monitor of every container of the test's store
# (state.json MonitorPid, checked to be a cimg process of this test's binary) is SIGKILLed
# first, so that none can restart a container, then lib-run.sh's clean-up (cgroups, with the
# processes in them) and lib.sh's (processes, mounts, temp dir) run.

# shellcheck source-path=SCRIPTDIR source=lib-run.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-run.sh"

# monitor_pid ID: the MonitorPid recorded for container ID (empty when none).
monitor_pid() {
  local f="$CIMG_ROOT/containers/$1/state.json"
  [ -f "$f" ] || return 0
  jq -r '.MonitorPid // empty' "$f" 2>/dev/null || true
}

# is_our_monitor PID: PID is alive and runs this test's cimg binary.
is_our_monitor() {
  local pid=$1
  [ -n "$pid" ] && [ "$pid" -gt 0 ] && [ -e "/proc/$pid/exe" ] &&
    [ "$(readlink "/proc/$pid/exe" 2>/dev/null)" == "$CIMG" ]
}

_life_kill_monitors() {
  local id pid
  for id in $(container_ids); do
    pid=$(monitor_pid "$id")
    if is_our_monitor "$pid"; then
      kill -KILL "$pid" 2>/dev/null
    fi
  done
}

_life_exit() {
  local rc=$?
  set +e
  _life_kill_monitors
  (exit "$rc")
  _run_exit
}
trap _life_exit EXIT

# run_d ARGS…: `cimg run -d ARGS…`; sets CID to the ID it printed (empty on failure), OUT, ERR,
# RC as run does, and remembers the ID for the clean-up.
# shellcheck disable=SC2034 # CID is read by the tests
run_d() {
  run cimg run -d "$@"
  CID=$OUT
  remember_ids
}

# wait_for SECONDS DESC CMD…: poll CMD (every 0.1 s) until it succeeds; fails the test with DESC
# when it never does within SECONDS.
wait_for() {
  local secs=$1 desc=$2
  shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    if "$@" >/dev/null 2>&1; then
      pass "$desc"
      return 0
    fi
    sleep 0.1
  done
  fail "$desc (not within ${secs}s)"
  return 1
}

# state_of REF: the STATUS column of `cimg ps -a` for container REF (name).
state_of() {
  cimg ps -a --format json | jq -r --arg n "$1" 'select(.Names == $n) | .Status'
}

# is_exited NAME: `cimg ps -a` says NAME exited.
is_exited() {
  [[ "$(state_of "$1")" == Exited* ]]
}

# field ID KEY: a field of container ID's state.json.
field() {
  jq -r ".$2" "$CIMG_ROOT/containers/$1/state.json"
}

# pid_alive PID: PID runs (a zombie, which has exited and waits for its parent or init to reap
# it, does not count).
pid_alive() {
  [ -n "$1" ] && [ "$1" -gt 0 ] && kill -0 "$1" 2>/dev/null || return 1
  local state
  state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
