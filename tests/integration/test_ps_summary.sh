#!/bin/bash
# `cimg ps` reads each container from its summaries (the user.cimg.ps xattrs of config.json and
# state.json, store/container.c) instead of parsing the JSON: it must answer exactly as the
# JSON path does, still find a container whose monitor was SIGKILLed exited (the summary says
# running; the process check decides), and a damaged, missing or outdated summary must change
# nothing a user sees.

# shellcheck source-path=SCRIPTDIR source=lib-lifecycle.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-lifecycle.sh"

# xattr_get FILE: the summary on FILE (empty when none). xattr_set FILE VALUE, xattr_rm FILE.
xattr_get() {
  python3 -c 'import os, sys
try: sys.stdout.write(os.getxattr(sys.argv[1], "user.cimg.ps", follow_symlinks=False).decode())
except OSError: pass' "$1"
}
xattr_set() {
  python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.cimg.ps", sys.argv[2].encode(), follow_symlinks=False)' "$1" "$2"
}
xattr_rm() {
  python3 -c 'import os, sys
try: os.removexattr(sys.argv[1], "user.cimg.ps", follow_symlinks=False)
except OSError: pass' "$1"
}

# ps_view: what `cimg ps -a` shows of each container, without what depends on the clock
# ("Up 3 seconds" → "Up", "Exited (7) 2 minutes ago" → "Exited (7)"), one JSON line each,
# sorted.
ps_view() {
  cimg ps -a --no-trunc --format json |
    jq -c '{ID, Image, Command, Names, State, CreatedAt,
            Status: (.Status | if startswith("Up ") then "Up" else sub(" [^()]* ago$"; "") end)}' |
    sort
}

# ps_status NAME: the clock-free STATUS of container NAME.
ps_status() {
  ps_view | jq -r --arg n "$1" 'select(.Names == $n) | .Status'
}

rec() { echo "$CIMG_ROOT/containers/$1/$2"; }

section "fixtures"
load_run_fixtures
if ! python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.cimg.probe", b"1"); os.removexattr(sys.argv[1], "user.cimg.probe")' "$CIMG_ROOT/containers" 2>/dev/null; then
  log "SKIP: the store's file system has no user xattrs (ps always reads the JSON there)"
  exit 0
fi

section "containers in every state"
run_d --name up "$RUN_IMG" sleep 1000
UP=$CID
# A command with a backslash, quotes and a newline in it.
ODD_SCRIPT='echo "a\\b \"q\""
exec sleep 1000'
run_d --name odd "$RUN_IMG" sh -c "$ODD_SCRIPT"
ODD=$CID
run_d --name seven "$RUN_IMG" sh -c 'exit 7'
SEVEN=$CID
expect_ok cimg wait seven
run_d --name victim "$RUN_IMG" sleep 1000
VICTIM=$CID
for id in "$UP" "$ODD" "$SEVEN" "$VICTIM"; do
  assert_match "$(xattr_get "$(rec "$id" config.json)" | head -1)" '^cimg-ps 1 config$' "config.json of ${id:0:12} has its summary"
  assert_match "$(xattr_get "$(rec "$id" state.json)" | head -1)" '^cimg-ps 1 state$' "state.json of ${id:0:12} has its summary"
done
assert_contains "$(xattr_get "$(rec "$SEVEN" state.json)")" "s ExitCode i 7" "the summary follows the state (exit 7)"

section "the same answers as the JSON"
with=$(ps_view)
assert_eq "$(wc -l <<<"$with")" 4 "ps -a lists the four"
assert_eq "$(ps_status up)" "Up" "up: Up"
assert_eq "$(ps_status seven)" "Exited (7)" "seven: Exited (7)"
assert_eq "$(jq -r 'select(.Names == "odd") | .Command' <<<"$with")" "\"sh -c $ODD_SCRIPT\"" \
  "odd: the command as it was run"
for id in "$UP" "$ODD" "$SEVEN" "$VICTIM"; do
  xattr_rm "$(rec "$id" config.json)"
  xattr_rm "$(rec "$id" state.json)"
done
without=$(ps_view)
assert_eq "$without" "$with" "ps -a without any summary (from the JSON): the same"
assert_match "$(xattr_get "$(rec "$UP" state.json)" | head -1)" '^cimg-ps 1 state$' "that ps set the summaries again"
assert_eq "$(ps_view)" "$with" "and from them: the same"
expect_ok cimg ps -q
assert_eq "$(sort <<<"$OUT")" "$(printf '%s\n' "${UP:0:12}" "${ODD:0:12}" "${VICTIM:0:12}" | sort)" "ps: the three running"
expect_ok cimg ps -aq -f status=exited
assert_eq "$OUT" "${SEVEN:0:12}" "ps -f status=exited: seven"
expect_ok cimg ps -aq -f ancestor="$RUN_IMG" -f name=odd
assert_eq "$OUT" "${ODD:0:12}" "ps -f ancestor= -f name=: odd"

section "a monitor killed with SIGKILL"
vmon=$(monitor_pid "$VICTIM")
vpid=$(field "$VICTIM" Pid)
kill -KILL "$vmon"
wait_for 5 "the container dies with its monitor" bash -c "! kill -0 $vpid 2>/dev/null"
assert_contains "$(xattr_get "$(rec "$VICTIM" state.json)")" "s Status s running" \
  "its summary still says running (nobody recorded the exit)"
assert_eq "$(ps_status victim)" "Exited (255)" "ps -a: Exited (255), as the JSON path says"
expect_ok cimg ps -q
assert_not_contains "$OUT" "${VICTIM:0:12}" "ps (running only) does not list it"
assert_contains "$(xattr_get "$(rec "$VICTIM" state.json)")" "s Status s running" "the summary was used as it is"
expect_ok cimg inspect victim
assert_eq "$(jq -r '.[0].State | "\(.Status) \(.ExitCode)"' <<<"$OUT")" "exited 255" "inspect agrees"

section "damaged summaries"
with=$(ps_view)
good_state=$(xattr_get "$(rec "$UP" state.json)")
good_config=$(xattr_get "$(rec "$UP" config.json)")
for bad in "garbage" "" "${good_state/running/exited }" "${good_state:0:40}" "$good_config"; do
  xattr_set "$(rec "$UP" state.json)" "$bad"
  assert_eq "$(ps_status up)" "Up" "state.json summary damaged (${#bad} bytes): ps says Up"
  assert_eq "$(xattr_get "$(rec "$UP" state.json)")" "$good_state" "and set it right again"
done
xattr_set "$(rec "$UP" config.json)" "${good_config/\/up/\/uq}"
assert_eq "$(ps_view)" "$with" "config.json summary with another name and no matching checksum: ps unchanged"
xattr_set "$(rec "$UP" config.json)" "${good_state}"
assert_eq "$(ps_view | jq -r 'select(.Names == "up") | .Status')" "Up" "config.json with state.json's summary: ps unchanged"
expect_ok cimg ps -a -f name=up
assert_match "$(awk 'NR == 2' <<<"$OUT")" '^[0-9a-f]{12} +busybox:run +"sleep 1000" ' "the table as well"

section "a state.json written without a summary (a hand edit, an older cimg)"
sf=$(rec "$SEVEN" state.json)
jq -c '.ExitCode = 42' "$sf" >"$sf.new"
mv "$sf.new" "$sf"
assert_eq "$(ps_status seven)" "Exited (42)" "ps -a: the state.json on disk (42), not an old summary"
assert_contains "$(xattr_get "$sf")" "s ExitCode i 42" "and the summary is set from it"

section "rm"
expect_ok cimg rm -f up odd seven victim
assert_eq "$(ps_view)" "" "ps -a: nothing left"
assert_eq "$(container_ids)" "" "no record left"
assert_store_clean
