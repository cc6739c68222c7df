#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# Detached containers and their lifecycle: run -d under a monitor, logs, wait, stop, kill,
# start, restart, --restart policies, rm -f, container prune, a monitor killed with SIGKILL.
# Real containers from the busybox image made by umoci and skopeo; checked as a user would
# (cimg's own output, the container's files) and from the host (processes, cgroups, mounts).

# shellcheck source-path=SCRIPTDIR source=lib-lifecycle.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-lifecycle.sh"

section "fixtures"
load_run_fixtures

section "run -d"
start_ms=$(date +%s%3N)
run_d --name web "$RUN_IMG" sh -c 'echo hello; echo oops >&2; sleep 1000'
end_ms=$(date +%s%3N)
assert_eq "$RC" 0 "run -d exits 0"
assert_match "$CID" '^[0-9a-f]{64}$' "run -d prints the full 64-hex ID"
WEB_ID=$CID
assert_lt $((end_ms - start_ms)) 3000 "run -d returns at once (took $((end_ms - start_ms)) ms)"
expect_ok cimg ps
assert_match "$(awk '$NF == "web"' <<<"$OUT")" 'Up (Less than a second|[0-9]+ seconds?) ' "ps shows it Up"
assert_eq "$(awk 'NR > 1 && $NF == "web" {print $1}' <<<"$OUT")" "${CID:0:12}" "ps lists its short ID"
mon=$(monitor_pid "$CID")
cpid=$(field "$CID" Pid)
if is_our_monitor "$mon"; then pass "a monitor process of cimg is recorded"; else fail "no monitor recorded ($mon)"; fi
assert_ne "$(awk '{print $6}' "/proc/$mon/stat")" "$(awk '{print $6}' /proc/$$/stat)" "the monitor is in a session of its own (setsid)"
assert_eq "$(awk '{print $7}' "/proc/$mon/stat")" 0 "the monitor has no controlling terminal"
assert_ne "$(awk '{print $4}' "/proc/$mon/stat")" "$$" "the monitor is not the test shell's child"
assert_eq "$(awk '{print $4}' "/proc/$cpid/stat")" "$mon" "the container's process is the monitor's child"
# (busybox sh executes its last command in place)
assert_eq "$(tr '\0' ' ' <"/proc/$cpid/cmdline")" "sleep 1000 " "the recorded Pid runs the command"
assert_eq "$(find "/proc/$mon/fd" -mindepth 1 -printf '%l\n' | grep -c "$TEST_TMP/.run" || true)" 0 \
  "the monitor holds none of the caller's stdio"

section "logs"
wait_for 5 "the output reaches the log" grep -q hello "$CIMG_ROOT/containers/$CID/ctr.log"
expect_ok cimg logs web
assert_eq "$OUT" "hello" "logs: stdout to stdout"
assert_eq "$ERR" "oops" "logs: stderr to stderr"
assert_eq "$(head -1 "$CIMG_ROOT/containers/$CID/ctr.log" | jq -c '[.stream, .log]')" '["stdout","hello\n"]' \
  "ctr.log holds JSON lines {log, stream, time}"
expect_ok cimg logs -t "${CID:0:8}"
assert_match "$OUT" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z hello$' "logs -t prefixes the time (by ID prefix)"

run_d --name counter "$RUN_IMG" sh -c 'i=0; while [ $i -lt 5 ]; do i=$((i+1)); echo line$i; sleep 0.3; done'
"$CIMG" --root "$CIMG_ROOT" logs -f counter >"$TEST_TMP/follow.out" 2>&1 &
fjob=$!
_CIMG_TEST_PIDS+=("$fjob")
wait_for 5 "logs -f shows a line while the container runs" grep -q line1 "$TEST_TMP/follow.out"
if grep -q line5 "$TEST_TMP/follow.out"; then fail "logs -f had everything at once"; else pass "logs -f: not all lines yet"; fi
wait_job "$fjob"
assert_eq "$WAIT_RC" 0 "logs -f ends when the container exits"
assert_eq "$(tr '\n' ' ' <"$TEST_TMP/follow.out")" "line1 line2 line3 line4 line5 " "logs -f follows every line"
expect_ok cimg logs --tail 1 counter
assert_eq "$OUT" "line5" "logs --tail 1"
expect_ok cimg logs --tail 2 counter
assert_eq "$OUT" $'line4\nline5' "logs --tail 2"

section "wait"
run_d --name three "$RUN_IMG" sh -c 'sleep 0.5; exit 3'
expect_ok cimg wait three counter
assert_eq "$OUT" $'3\n0' "wait prints the exit codes"
expect_ok cimg ps -a
assert_match "$(awk '/ three$/' <<<"$OUT")" 'Exited \(3\) ' "ps -a: Exited (3)"
assert_eq "$(field "$(cimg ps -aq --no-trunc -f name=three)" ExitCode)" 3 "state.json: ExitCode"
assert_match "$(field "$(cimg ps -aq --no-trunc -f name=three)" FinishedAt)" '^20[0-9]{2}-' "state.json: FinishedAt"

section "ps filters"
expect_ok cimg ps -q -f status=exited
assert_eq "$(wc -l <<<"$OUT")" 2 "-f status=exited: two containers"
expect_ok cimg ps -q -f status=running
assert_eq "$OUT" "${WEB_ID:0:12}" "-f status=running: web"
expect_ok cimg ps -aq -f name=cou
assert_eq "$(wc -l <<<"$OUT")" 1 "-f name= matches a part of the name"
expect_ok cimg ps -aq -f ancestor="$RUN_IMG"
assert_eq "$(wc -l <<<"$OUT")" 3 "-f ancestor=IMAGE"
expect_ok cimg ps -aq -f ancestor=no-such-image
assert_eq "$OUT" "" "-f ancestor= of another image: none"
expect_fail 125 cimg ps -f bogus=1

section "stop"
run_d --name trapper "$RUN_IMG" sh -c 'trap "exit 7" TERM; echo ready; while true; do sleep 0.1; done'
wait_for 5 "trapper is ready" grep -q ready "$CIMG_ROOT/containers/$CID/ctr.log"
expect_ok cimg stop trapper
assert_eq "$OUT" "trapper" "stop prints the name"
assert_match "$(state_of trapper)" '^Exited \(7\)' "stop: SIGTERM, the trap's exit code 7"
expect_ok cimg wait trapper
assert_eq "$OUT" 7 "wait after stop: 7"

run_d --name stubborn "$RUN_IMG" sleep 1000
t0=$(date +%s%3N)
expect_ok cimg stop -t 1 stubborn
t1=$(date +%s%3N)
assert_match "$(state_of stubborn)" '^Exited \(137\)' "stop of a PID 1 that ignores SIGTERM: killed, 137"
if [ $((t1 - t0)) -ge 900 ] && [ $((t1 - t0)) -lt 5000 ]; then pass "stop -t 1 waited ~1 s ($((t1 - t0)) ms)"; else fail "stop -t 1 took $((t1 - t0)) ms"; fi
expect_fail 1 cimg stop no-such-container

section "kill"
run_d --name victim "$RUN_IMG" sh -c 'trap "exit 9" USR1; echo ready; while true; do sleep 0.1; done'
wait_for 5 "victim is ready" grep -q ready "$CIMG_ROOT/containers/$CID/ctr.log"
expect_ok cimg kill -s USR1 victim
wait_for 5 "kill -s USR1 reaches the container" is_exited victim
assert_match "$(state_of victim)" '^Exited \(9\)' "its USR1 trap's exit code 9"
expect_fail 1 cimg kill victim
assert_contains "$ERR" "is not running" "kill of an exited container"
run_d --name victim2 "$RUN_IMG" sleep 1000
expect_ok cimg kill -s KILL victim2
wait_for 5 "kill -s KILL" is_exited victim2
assert_match "$(state_of victim2)" '^Exited \(137\)' "kill -s KILL: 137"

section "start and restart"
run_d --name keeper "$RUN_IMG" sh -c 'echo run >>/data.txt; cat /data.txt | wc -l; sleep 1000'
expect_ok cimg stop -t 1 keeper
expect_ok cimg start keeper
assert_eq "$OUT" "keeper" "start prints the name"
assert_match "$(state_of keeper)" '^Up ' "started again: Up"
wait_for 5 "the second run wrote its line count" grep -q '"2\\n"' "$(find "$CIMG_ROOT/containers" -name ctr.log -path "*$(cimg ps -q --no-trunc -f name=keeper)*")"
kid=$(cimg ps -aq --no-trunc -f name=keeper)
assert_eq "$(cat "$CIMG_ROOT/containers/$kid/upper/data.txt")" $'run\nrun' "its write layer kept what the first run wrote"
old_pid=$(field "$kid" Pid)
expect_ok cimg restart -t 1 keeper
new_pid=$(field "$kid" Pid)
assert_match "$(state_of keeper)" '^Up ' "restart: Up again"
assert_ne "$new_pid" "$old_pid" "restart: a new process"
if pid_alive "$old_pid"; then fail "the old process still lives"; else pass "the old process is gone"; fi
expect_ok cimg start keeper
assert_eq "$(field "$kid" Pid)" "$new_pid" "start of a running container changes nothing"
expect_ok cimg stop -t 1 keeper
run_d --name once "$RUN_IMG" sh -c 'echo x >>/f; wc -l </f'
expect_ok cimg wait once
expect_rc 0 timeout 20 "$CIMG" --root "$CIMG_ROOT" start -a once
assert_eq "$OUT" "2" "start -a: in the foreground, its output (second run, same write layer)"

section "restart policies"
run_d --name flaky --restart on-failure:2 "$RUN_IMG" sh -c 'echo try; exit 3'
fid=$CID
wait_for 10 "on-failure:2: the monitor ends" bash -c "! kill -0 $(monitor_pid "$fid") 2>/dev/null"
expect_ok cimg logs flaky
assert_eq "$OUT" $'try\ntry\ntry' "on-failure:2: three runs (two restarts)"
assert_eq "$(field "$fid" RestartCount)" 2 "RestartCount 2"
assert_match "$(state_of flaky)" '^Exited \(3\)' "then it stays exited"
run_d --name fine --restart on-failure "$RUN_IMG" sh -c 'echo once'
expect_ok cimg wait fine
assert_eq "$OUT" 0 "on-failure: exit 0 is not restarted"
run_d --name looper --restart always "$RUN_IMG" sh -c 'echo again; sleep 0.2'
lid=$CID
wait_for 10 "always: restarted (3 runs)" bash -c "[ \$(grep -c again $CIMG_ROOT/containers/$lid/ctr.log) -ge 3 ]"
expect_ok cimg stop -t 1 looper
n=$(grep -c again "$CIMG_ROOT/containers/$lid/ctr.log")
sleep 1
assert_eq "$(grep -c again "$CIMG_ROOT/containers/$lid/ctr.log")" "$n" "always: no restart after stop"
if pid_alive "$(monitor_pid "$lid")" && is_our_monitor "$(monitor_pid "$lid")"; then fail "the monitor lives after stop"; else pass "the monitor is gone after stop"; fi
expect_fail 125 cimg run -d --rm --restart always "$RUN_IMG" true
assert_contains "$ERR" "Conflicting options" "--rm with --restart"
expect_fail 125 cimg run -d --restart sometimes "$RUN_IMG" true

section "exec errors of a detached run"
expect_fail 127 cimg run -d --name nocmd "$RUN_IMG" no-such-command
assert_contains "$ERR" "executable file not found" "run -d: 127 with the message"

section "the monitor killed with SIGKILL"
run_d --name orphan "$RUN_IMG" sleep 1000
oid=$CID
omon=$(monitor_pid "$oid")
opid=$(field "$oid" Pid)
kill -KILL "$omon"
wait_for 5 "the container dies with its monitor" bash -c "! kill -0 $opid 2>/dev/null"
wait_for 5 "ps reports it exited" is_exited orphan
expect_ok cimg ps
assert_not_contains "$OUT" "orphan" "ps (running only) no longer lists it"
expect_ok cimg rm orphan
assert_eq "$(cgroup_dirs "$oid")" "" "rm: no cgroup left"
assert_eq "$(host_mounts_of "$oid")" "" "rm: no mount left"
if [ -d "$CIMG_ROOT/containers/$oid" ]; then fail "rm left the record"; else pass "rm removed the record"; fi

section "rm -f of a running detached container"
wid=$(cimg ps -q --no-trunc -f name=web)
wmon=$(monitor_pid "$wid")
wpid=$(field "$wid" Pid)
expect_fail 1 cimg rm web
assert_contains "$ERR" "cannot remove a running container" "rm without -f refuses"
expect_ok cimg rm -f web
if pid_alive "$wpid"; then fail "rm -f: the container's process lives"; else pass "rm -f: its process is gone"; fi
if is_our_monitor "$wmon"; then fail "rm -f: the monitor lives"; else pass "rm -f: its monitor is gone"; fi
assert_eq "$(cgroup_dirs "$wid")" "" "rm -f: no cgroup left"
if [ -d "$CIMG_ROOT/containers/$wid" ]; then fail "rm -f left the record"; else pass "rm -f removed the record"; fi

section "run -d --rm"
run_d --rm --name gone "$RUN_IMG" true
rid=$CID
wait_for 5 "run -d --rm: the record goes when it exits" bash -c "[ ! -d $CIMG_ROOT/containers/$rid ]"

section "exec"
run_d --name box --hostname boxhost -e FROM_RUN=yes "$RUN_IMG" sh -c 'echo made >/made.txt; exec sleep 1000'
bid=$CID
wait_for 5 "box wrote its file" test -f "$CIMG_ROOT/containers/$bid/upper/made.txt"
expect_ok cimg exec box hostname
assert_eq "$OUT" "boxhost" "exec: the container's hostname (UTS namespace)"
expect_ok cimg exec box ps -o pid,comm
assert_eq "$(awk 'NR == 2 {print $1 ":" $2}' <<<"$OUT")" "1:sleep" "exec: its ps shows PID 1 = the container's command"
assert_eq "$(tail -n +2 <<<"$OUT" | wc -l)" 2 "exec: only the container's processes and its own"
expect_ok cimg exec box cat /made.txt
assert_eq "$OUT" "made" "exec: the container's files (mount namespace)"
expect_ok cimg exec box sh -c 'echo $FROM_RUN'
assert_eq "$OUT" "yes" "exec: the container's environment"
expect_ok cimg exec -e EXTRA=1 -w /etc box sh -c 'echo $EXTRA; pwd'
assert_eq "$OUT" $'1\n/etc' "exec -e, -w"
expect_ok cimg exec -u 1000:1000 box id -u
assert_eq "$OUT" "1000" "exec -u"
expect_ok cimg exec box sh -c 'grep CapEff /proc/self/status'
assert_eq "$(awk '{print $2}' <<<"$OUT")" "00000000a80425fb" "exec: the container's capabilities"
expect_ok cimg exec box sh -c 'grep NoNewPrivs /proc/self/status'
assert_eq "$(awk '{print $2}' <<<"$OUT")" "0" "exec: no_new_privs as the container (off)"
expect_ok cimg exec box cat /proc/self/cgroup
assert_contains "$OUT" "/cimg/$bid" "exec: in the container's cgroup"
# Every hierarchy, as the container's own process: its cgroup file and the exec'd one's, seen
# from the same (the container's) cgroup namespace.
exec_cgroups() {
  expect_ok cimg exec box sh -c 'cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup'
  assert_eq "$(sed -n '/^---$/q;p' <<<"$OUT")" "$(sed '1,/^---$/d' <<<"$OUT")" "$1"
}
exec_cgroups "exec: in every cgroup of the container's process (kept directories)"
state=$CIMG_ROOT/containers/$bid/state.json
assert_eq "$(jq -r '.CgroupPaths | map(select(endswith("/cimg/'"$bid"'"))) | length > 0' "$state")" \
  true "the record keeps the container's cgroup directories"
one=$(jq -r '.CgroupPaths[0]' "$state")
set_paths() { jq "$@" "$state" >"$state.new" && mv "$state.new" "$state"; }
# A record without them (a container started by an older cimg): the cgroup mounts are looked up.
set_paths 'del(.CgroupPaths)'
exec_cgroups "exec without kept directories: every cgroup of the container's process"
# Kept directories that are not plainly the container's cgroups are not trusted (the lookup
# is): a directory elsewhere, one of its cgroups reached through a symlink or through "..".
# Each alone would leave the exec'd process out of the container's other cgroups.
mkdir -p "$TEST_TMP/fake/cimg/$bid"
ln -sfn "${one%/cimg/*}" "$TEST_TMP/cglink"
for bad in "$TEST_TMP/fake/cimg/$bid" "$TEST_TMP/cglink/cimg/$bid" \
  "${one%/cimg/*}/../$(basename "${one%/cimg/*}")/cimg/$bid"; do
  set_paths --arg p "$bad" '.CgroupPaths = [$p]'
  exec_cgroups "exec with a kept directory $bad: every cgroup of the container's process"
done
set_paths '.CgroupPaths = [1, null]'
exec_cgroups "exec with kept directories that are not strings: every cgroup of the container's process"
# A kernel before 5.3 has no pidfd_open (ENOSYS): exec joins through the namespace files of
# /proc/PID/ns instead, one setns each. Made so by a seccomp filter around cimg.
deny="$CIMG_SRC/tests/integration/deny_syscalls.py"
run python3 "$deny" pidfd_open=ENOSYS -- python3 -c 'import os; os.pidfd_open(os.getpid())'
assert_contains "$RC $ERR" "1 Traceback" "the filter makes pidfd_open fail"
assert_contains "$ERR" "Function not implemented" "the filter makes pidfd_open fail with ENOSYS"
old_exec() { python3 "$deny" pidfd_open=ENOSYS -- "$CIMG" --root "$CIMG_ROOT" exec "$@"; }
expect_ok old_exec box hostname
assert_eq "$OUT" "boxhost" "exec without pidfds: the container's hostname"
expect_ok old_exec box ps -o pid,comm
assert_eq "$(awk 'NR == 2 {print $1 ":" $2}' <<<"$OUT"):$(tail -n +2 <<<"$OUT" | wc -l)" "1:sleep:2" \
  "exec without pidfds: in the container's PID namespace, PID 1 its command"
expect_ok old_exec box sh -c 'cat /made.txt; ls /sys/class/net; grep CapEff /proc/self/status'
assert_eq "$OUT" $'made\nlo\nCapEff:\t00000000a80425fb' \
  "exec without pidfds: its files, its network, its capabilities"
expect_ok old_exec box sh -c 'cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup'
assert_eq "$(sed -n '/^---$/q;p' <<<"$OUT")" "$(sed '1,/^---$/d' <<<"$OUT")" \
  "exec without pidfds: in every cgroup of the container's process"
expect_rc 7 old_exec box sh -c 'exit 7'
# Linux 5.3 to 5.7: pidfds, but setns refuses them (EINVAL); exec turns to the namespace files.
pidfd_exec() { python3 "$deny" setns@pidfd=EINVAL -- "$CIMG" --root "$CIMG_ROOT" exec "$@"; }
expect_ok pidfd_exec box sh -c 'hostname; ps -o pid,comm | awk "NR == 2 {print \$1 \":\" \$2}"; cat /made.txt'
assert_eq "$OUT" $'boxhost\n1:sleep\nmade' \
  "exec where setns takes no pidfd: the container's hostname, PID namespace and files"
expect_ok pidfd_exec box sh -c 'cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup'
assert_eq "$(sed -n '/^---$/q;p' <<<"$OUT")" "$(sed '1,/^---$/d' <<<"$OUT")" \
  "exec where setns takes no pidfd: in every cgroup of the container's process"
# Dispositions the caller ignores do not reach the exec'd process (nohup's SIGHUP, SIGPIPE).
OUT=$(trap '' HUP PIPE && "$CIMG" --root "$CIMG_ROOT" exec box grep SigIgn /proc/self/status)
assert_eq "$(($(printf '0x%s' "$(awk '{print $2}' <<<"$OUT")") & 0x1001))" 0 \
  "exec: SIGHUP and SIGPIPE ignored by the caller are default in the process ($OUT)"
expect_ok cimg exec box ls /sys/class/net
assert_eq "$OUT" "lo" "exec: the container's network namespace"
expect_rc 1 cimg exec box unshare -U true
assert_contains "$ERR" "Operation not permitted" "exec: seccomp forbids a user namespace"
run_d --name loose --security-opt seccomp=unconfined "$RUN_IMG" sleep 1000
expect_ok cimg exec loose unshare -U true
run_d --name nnp --security-opt no-new-privileges "$RUN_IMG" sleep 1000
expect_ok cimg exec nnp sh -c 'grep NoNewPrivs /proc/self/status'
assert_eq "$(awk '{print $2}' <<<"$OUT")" "1" "exec: no-new-privileges as the container"
expect_rc 5 cimg exec box sh -c 'exit 5'
expect_fail 127 cimg exec box no-such-command
assert_contains "$ERR" "executable file not found" "exec: 127"
expect_fail 126 cimg exec box /etc/passwd
expect_ok cimg exec -d box sh -c 'echo bg >/bg.txt'
wait_for 5 "exec -d: the command ran" test -f "$CIMG_ROOT/containers/$bid/upper/bg.txt"
expect_ok bash -c "echo piped | \"$CIMG\" --root \"$CIMG_ROOT\" exec -i box cat"
assert_eq "$OUT" "piped" "exec -i: stdin"
expect_fail 1 cimg exec three true
assert_contains "$ERR" "is not running" "exec in an exited container"
expect_ok cimg rm -f box loose nnp

section "inspect"
run_d --name peek "$RUN_IMG" sleep 1000
pid_peek=$(field "$CID" Pid)
expect_ok cimg inspect peek
assert_eq "$(jq -r '.[0].Id' <<<"$OUT")" "$CID" "inspect NAME: the container's Id"
assert_eq "$(jq -r '.[0].State | "\(.Status) \(.Running) \(.Pid) \(.ExitCode)"' <<<"$OUT")" "running true $pid_peek 0" \
  "inspect: State of a running container"
assert_eq "$(jq -r '.[0].GraphDriver.Data.UpperDir' <<<"$OUT")" "$CIMG_ROOT/containers/$CID/upper" "inspect: GraphDriver UpperDir"
assert_eq "$(jq -r '.[0].Name + " " + .[0].Config.Image' <<<"$OUT")" "/peek $RUN_IMG" "inspect: Name, Config.Image"
lower=$(jq -r '.[0].GraphDriver.Data.LowerDir' <<<"$OUT")
if [ -x "$lower/bin/busybox" ]; then pass "inspect: LowerDir is the image's layer"; else fail "LowerDir $lower"; fi
expect_ok cimg stop -t 1 peek
expect_ok cimg inspect "${CID:0:10}"
assert_eq "$(jq -r '.[0].State | "\(.Status) \(.Running) \(.Pid) \(.ExitCode)"' <<<"$OUT")" "exited false 0 137" \
  "inspect ID-prefix: State after stop"
assert_match "$(jq -r '.[0].State.FinishedAt' <<<"$OUT")" '^20[0-9]{2}-' "inspect: FinishedAt"
expect_ok cimg inspect "$RUN_IMG"
assert_match "$(jq -r '.[0].Id' <<<"$OUT")" '^sha256:[0-9a-f]{64}$' "inspect of an image still works"
expect_fail 1 cimg inspect --type container "$RUN_IMG"
expect_ok cimg rm peek

section "container prune"
run_d --name survivor "$RUN_IMG" sleep 1000
expect_ok cimg container prune -f
assert_contains "$OUT" "Deleted Containers:" "prune lists what it deleted"
assert_contains "$OUT" "$fid" "prune removed an exited container"
expect_ok cimg ps -aq
assert_eq "$OUT" "${CID:0:12}" "only the running one is left"
expect_ok cimg rm -f survivor

section "nothing left"
assert_eq "$(container_ids)" "" "no container record left"
for id in "${_RUN_SEEN_IDS[@]}"; do
  [ -n "$(cgroup_dirs "$id")" ] && fail "cgroup left for $id"
done
pass "no cgroup of the test's containers left"
assert_eq "$(host_mounts_of "$CIMG_ROOT")" "" "no mount of the store on the host"
