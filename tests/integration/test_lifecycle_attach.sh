#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# The attached side of the lifecycle: exec -t/-it, attach (output, stdin, --sig-proxy, detach
# keys), start -a/-i, logs --since/--until, the log of a foreground run, top and stats.
# Terminals come from python3's pty module and script(1); figures are checked against the
# container's cgroup files and /proc.

# shellcheck source-path=SCRIPTDIR source=lib-lifecycle.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-lifecycle.sh"

# pty_resize_run ROWS COLS ROWS2 COLS2 CMD…: run CMD on a new pty of ROWS×COLS; once it printed
# "READY", resize the pty to ROWS2×COLS2 (the kernel sends SIGWINCH to its foreground group)
# and type a newline. Prints the pty's output (CRs removed); returns CMD's exit status.
pty_resize_run() {
  python3 - "$@" <<'EOF'
import fcntl, os, select, struct, sys, termios, pty, time
r1, c1, r2, c2 = map(int, sys.argv[1:5])
argv = sys.argv[5:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", r1, c1, 0, 0))
    os.execvp(argv[0], argv)
out, resized, end = b"", False, time.time() + 30
while time.time() < end:
    ready, _, _ = select.select([fd], [], [], 0.2)
    if not ready:
        continue
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
    if not resized and b"READY" in out:
        resized = True
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", r2, c2, 0, 0))
        time.sleep(0.3)
        os.write(fd, b"\n")
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(st))
EOF
}

# to_bytes SIZE: "712KiB", "64MiB", "1.5GiB", "0B" as bytes (integer).
to_bytes() {
  python3 -c '
import re, sys
m = re.fullmatch(r"([0-9.]+)([KMGT]?i?B)", sys.argv[1])
mul = {"B": 1, "KiB": 1024, "MiB": 1024**2, "GiB": 1024**3, "TiB": 1024**4}[m.group(2)]
print(int(float(m.group(1)) * mul))' "$1"
}

# blocks_sigterm PID: PID has SIGTERM blocked (cimg attach takes it from a signalfd once it is
# attached).
blocks_sigterm() {
  local m
  m=$(awk '/^SigBlk:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$m" ] && (((0x$m & 0x4000) != 0))
}

# memory_cgroup_dir ID: the container's cgroup directory that has its memory figures.
memory_cgroup_dir() {
  local d
  for d in $(cgroup_dirs "$1"); do
    if [ -f "$d/memory.usage_in_bytes" ] || [ -f "$d/memory.current" ]; then
      echo "$d"
      return 0
    fi
  done
}

section "fixtures"
load_run_fixtures

section "exec -t"
run_d --name box "$RUN_IMG" sleep 1000
BOX=$CID
assert_eq "$RC" 0 "run -d box"
run pty_run 33 101 timeout -s KILL 20 "$CIMG" --root "$CIMG_ROOT" exec -t box sh -c 'tty; stty size; exit 5'
assert_eq "$RC" 5 "exec -t: the command's exit code"
assert_match "$(sed -n 1p <<<"$OUT")" '^/dev/pts/[0-9]+$' "exec -t: tty inside names a pty of the container"
assert_eq "$(sed -n 2p <<<"$OUT")" "33 101" "exec -t: the caller's window size"
if [ -e "/proc/$(field "$BOX" Pid)/root$(sed -n 1p <<<"$OUT")" ] || [ "$(sed -n 1p <<<"$OUT")" == /dev/pts/0 ]; then
  pass "exec -t: the pty is in the container's devpts"
else
  fail "exec -t: $(sed -n 1p <<<"$OUT") is not in the container's /dev/pts"
fi
run pty_resize_run 20 70 40 132 timeout -s KILL 20 "$CIMG" --root "$CIMG_ROOT" exec -it box \
  sh -c 'stty size; echo READY; read x; stty size'
assert_eq "$RC" 0 "exec -it with a resize"
assert_eq "$(grep -E '^[0-9]+ [0-9]+$' <<<"$OUT" | tr '\n' ' ')" "20 70 40 132 " \
  "exec -it: SIGWINCH carries the new window size into the container"
run pty_run 24 80 bash -c "stty -g >$TEST_TMP/stty.before; printf 'abc\n' | true; timeout -s KILL 20 $CIMG --root $CIMG_ROOT exec -it box sh -c 'exit 0'; stty -g >$TEST_TMP/stty.after"
assert_eq "$(cat "$TEST_TMP/stty.after")" "$(cat "$TEST_TMP/stty.before")" "exec -it: the caller's terminal mode is restored"
expect_ok cimg exec -t box tty
assert_match "$OUT" '^/dev/pts/[0-9]+' "exec -t without a terminal on the caller's side still gets a pty"
expect_ok cimg exec box sh -c 'tty || true'
assert_eq "$OUT" "not a tty" "exec without -t: no pty"

section "attach: output"
run_d --name ticker "$RUN_IMG" sh -c 'i=0; while true; do i=$((i+1)); echo tick$i; sleep 0.2; done'
wait_for 10 "ticker writes its log" grep -q tick3 "$CIMG_ROOT/containers/$CID/ctr.log"
"$CIMG" --root "$CIMG_ROOT" attach --sig-proxy=false ticker >"$TEST_TMP/attach.out" 2>&1 &
ajob=$!
_CIMG_TEST_PIDS+=("$ajob")
wait_for 10 "attach prints output written after it attached" grep -q tick "$TEST_TMP/attach.out"
first=$(grep -m1 -o 'tick[0-9]*' "$TEST_TMP/attach.out")
if [ "${first#tick}" -gt 3 ]; then pass "attach does not replay what was written before ($first)"; else fail "attach started at $first"; fi
kill -TERM "$ajob"
wait_job "$ajob"
assert_ne "$WAIT_RC" 0 "attach --sig-proxy=false: SIGTERM ends the client itself"
expect_ok cimg ps -q -f name=ticker
assert_ne "$OUT" "" "the container still runs after its client went away"

run timeout -s KILL 3 "$CIMG" --root "$CIMG_ROOT" start -a ticker
assert_match "$OUT" 'tick[0-9]+' "start -a of a running container attaches to it"

section "attach: stdin"
run_d -i --name cat "$RUN_IMG" cat
mkfifo "$TEST_TMP/in"
"$CIMG" --root "$CIMG_ROOT" attach --sig-proxy=false cat <"$TEST_TMP/in" >"$TEST_TMP/cat.out" 2>&1 &
cjob=$!
_CIMG_TEST_PIDS+=("$cjob")
exec 7>"$TEST_TMP/in"
sleep 0.3
echo ping-through-attach >&7
wait_for 10 "attach sends stdin to cat started with -i, and shows its output" grep -q ping-through-attach "$TEST_TMP/cat.out"
exec 7>&-
sleep 0.3
expect_ok cimg ps -q -f name=cat
assert_ne "$OUT" "" "a client's EOF leaves the container's stdin open (no StdinOnce, as Docker's run -d -i)"
kill -TERM "$cjob"
wait_job "$cjob"
expect_ok cimg logs cat
assert_eq "$OUT" "ping-through-attach" "what came in through attach is in the log"

section "attach: --sig-proxy and the exit code"
run_d --name trapper "$RUN_IMG" sh -c 'trap "echo got-term; exit 9" TERM; while true; do sleep 0.1; done'
"$CIMG" --root "$CIMG_ROOT" attach trapper >"$TEST_TMP/trap.out" 2>&1 &
tjob=$!
_CIMG_TEST_PIDS+=("$tjob")
wait_for 20 "attach is ready to forward SIGTERM" blocks_sigterm "$tjob"
kill -TERM "$tjob"
wait_job "$tjob"
assert_eq "$WAIT_RC" 9 "attach returns the container's exit code"
assert_contains "$(cat "$TEST_TMP/trap.out")" got-term "SIGTERM to attach reaches the container (sig-proxy)"
expect_fail 1 cimg attach trapper

section "attach: detach keys of a tty container"
run_d -it --name shell "$RUN_IMG" sh
run bash -c "(sleep 1; printf 'echo hi-\$((6*7))\n'; sleep 1; printf '\020\021'; sleep 2) | timeout -s KILL 20 script -qec '$CIMG --root $CIMG_ROOT attach shell' /dev/null"
assert_eq "$RC" 0 "ctrl-p ctrl-q detaches with exit status 0"
assert_contains "$OUT" "hi-42" "attach -t: typed input ran in the container's shell"
expect_ok cimg ps -q -f name=shell
assert_ne "$OUT" "" "the tty container still runs after the detach"

section "start -a and -i"
run_d --name twice "$RUN_IMG" sh -c 'echo x >>/runs; wc -l </runs; echo to-stderr >&2; exit 4'
expect_ok cimg wait twice
run timeout -s KILL 20 "$CIMG" --root "$CIMG_ROOT" start -a twice
assert_eq "$RC" 4 "start -a returns the container's exit code"
assert_eq "$(tr -d ' ' <<<"$OUT")" "2" "start -a prints its output (second run, same write layer)"
assert_eq "$ERR" "to-stderr" "start -a: stderr to stderr"
expect_ok cimg logs twice
assert_eq "$(tr -d ' ' <<<"$OUT" | tr '\n' ' ')" "1 2 " "start -a: the run is in the log too"
run_d -i --name asker "$RUN_IMG" sh -c 'read x; echo got-$x; exit 3'
expect_ok cimg kill asker
expect_ok cimg wait asker
run bash -c "echo hello | timeout -s KILL 20 $CIMG --root $CIMG_ROOT start -i asker"
assert_eq "$RC" 3 "start -i: the exit code"
assert_eq "$OUT" "got-hello" "start -i: stdin reaches the container"

section "logs --since and --until"
run_d --name stamps "$RUN_IMG" sh -c 'echo early; sleep 1.5; echo late'
expect_ok cimg wait stamps
expect_ok cimg logs -t stamps
t1=$(sed -n 1p <<<"$OUT" | cut -d' ' -f1)
t2=$(sed -n 2p <<<"$OUT" | cut -d' ' -f1)
assert_match "$t1" '^20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z$' "logs -t still prints RFC 3339 times"
mid=$(python3 -c '
import sys, datetime
def p(s):
    d, f = s.rstrip("Z").split(".")
    return datetime.datetime.strptime(d, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc).timestamp() + float("0." + f)
print("%.6f" % ((p(sys.argv[1]) + p(sys.argv[2])) / 2))' "$t1" "$t2")
mid_rfc=$(date -u -d "@$mid" +%Y-%m-%dT%H:%M:%S.%NZ)
expect_ok cimg logs --since "$mid_rfc" stamps
assert_eq "$OUT" "late" "logs --since RFC3339 between the two lines: only the later"
expect_ok cimg logs --until "$mid_rfc" stamps
assert_eq "$OUT" "early" "logs --until RFC3339 between the two lines: only the earlier"
expect_ok cimg logs --since "$mid" stamps
assert_eq "$OUT" "late" "logs --since with a Unix timestamp"
expect_ok cimg logs --since 1h stamps
assert_eq "$OUT" $'early\nlate' "logs --since 1h: both"
expect_ok cimg logs --until 1h stamps
assert_eq "$OUT" "" "logs --until 1h (an hour ago): none"
expect_ok cimg logs -t --since "$mid_rfc" stamps
assert_eq "$OUT" "$t2 late" "logs -t --since"
expect_fail 125 cimg logs --since yesterday stamps

section "foreground run writes the log"
run cimg run --name fg "$RUN_IMG" sh -c 'echo out-line; echo err-line >&2; exit 2'
assert_eq "$RC" 2 "foreground run: exit code"
assert_eq "$OUT" "out-line" "foreground run: its stdout"
assert_eq "$ERR" "err-line" "foreground run: its stderr"
expect_ok cimg logs fg
assert_eq "$OUT" "out-line" "logs after a foreground run: stdout"
assert_eq "$ERR" "err-line" "logs after a foreground run: stderr"
run pty_run 24 80 "$CIMG" --root "$CIMG_ROOT" run -t --name fgtty "$RUN_IMG" sh -c 'echo on-a-tty'
assert_contains "$OUT" "on-a-tty" "foreground run -t: output on the terminal"
expect_ok cimg logs fgtty
assert_contains "$OUT" "on-a-tty" "logs after a foreground run -t"

section "top"
pid=$(field "$BOX" Pid)
expect_ok cimg top box
assert_match "$(sed -n 1p <<<"$OUT")" '^UID +PID +PPID +C +STIME +TTY +TIME +CMD$' "top: Docker's columns (ps -ef)"
assert_eq "$(awk -v p="$pid" '$2 == p {print $NF}' <<<"$OUT")" "1000" "top lists the container's sleep by its host PID"
assert_eq "$(tail -n +2 <<<"$OUT" | wc -l)" 1 "top: only the container's processes"
expect_ok cimg top box -o pid,comm
assert_match "$(sed -n 1p <<<"$OUT")" '^ *PID +COMMAND' "top with ps options: their columns"
assert_match "$(sed -n 2p <<<"$OUT")" "^ *$pid +sleep" "top -o pid,comm: the sleep"
expect_fail 1 cimg top twice

section "stats"
run_d -m 64m --name limited "$RUN_IMG" sh -c 'sleep 1000 & sleep 1000'
expect_ok cimg stats --no-stream box limited
assert_match "$(sed -n 1p <<<"$OUT")" '^CONTAINER ID +NAME +CPU % +MEM USAGE / LIMIT +MEM % +NET I/O +BLOCK I/O +PIDS$' "stats: Docker's columns"
boxrow=$(awk '$2 == "box"' <<<"$OUT")
limrow=$(awk '$2 == "limited"' <<<"$OUT")
assert_eq "$(awk '{print $1}' <<<"$boxrow")" "${BOX:0:12}" "stats: the short ID"
assert_eq "$(awk '{print $NF}' <<<"$boxrow")" 1 "stats: PIDS of a lone sleep"
assert_eq "$(awk '{print $NF}' <<<"$limrow")" 2 "stats: PIDS counts every process of the container"
assert_eq "$(awk '{print $6}' <<<"$limrow")" "64MiB" "stats: -m 64m shows a limit of 64MiB"
usage=$(to_bytes "$(awk '{print $4}' <<<"$boxrow")")
d=$(memory_cgroup_dir "$BOX")
if [ -f "$d/memory.usage_in_bytes" ]; then
  cg=$(($(cat "$d/memory.usage_in_bytes") - $(awk '$1 == "total_inactive_file" {print $2}' "$d/memory.stat")))
else
  cg=$(($(cat "$d/memory.current") - $(awk '$1 == "inactive_file" {print $2}' "$d/memory.stat")))
fi
diff=$((usage > cg ? usage - cg : cg - usage))
assert_lt "$diff" $((cg / 4 + 65536)) "stats: MEM USAGE $usage matches the cgroup's $cg (usage minus inactive file)"
expect_ok cimg stats --no-stream --format json --no-trunc limited
assert_eq "$(jq -r .ID <<<"$OUT")" "$(cimg ps -q --no-trunc -f name=limited)" "stats --format json --no-trunc: the full ID"
assert_eq "$(jq -r .PIDs <<<"$OUT")" 2 "stats --format json: PIDs"
assert_match "$(jq -r .MemUsage <<<"$OUT")" ' / 64MiB$' "stats --format json: MemUsage"
"$CIMG" --root "$CIMG_ROOT" stats --format json box >"$TEST_TMP/stream.out" 2>&1 &
sjob=$!
_CIMG_TEST_PIDS+=("$sjob")
sleep 3.5
kill -INT "$sjob"
wait_job "$sjob"
n=$(grep -c '"Name":"box"' "$TEST_TMP/stream.out" || true)
if [ "$n" -ge 2 ] && [ "$n" -le 4 ]; then pass "stats streams about once a second ($n in 3.5 s)"; else fail "stats streamed $n samples in 3.5 s"; fi

section "monitor memory"
mon=$(monitor_pid "$BOX")
if grep -q libasan <(ldd "$CIMG"); then
  pass "monitor memory: not measured under AddressSanitizer (its shadow memory)"
else
  # Private_Clean is the binary's own text while no other cimg maps it: what a monitor costs
  # beside others is its dirty pages.
  dirty=$(awk '/^Private_Dirty:/ {print $2}' "/proc/$mon/smaps_rollup")
  assert_lt "$dirty" 1024 "a monitor's private dirty memory is under 1 MiB ($dirty KiB)"
fi

section "clean-up"
for n in box ticker cat trapper shell twice asker stamps fg fgtty limited; do
  run cimg rm -f "$n"
  assert_eq "$RC" 0 "rm -f $n"
done
expect_ok cimg ps -aq
assert_eq "$OUT" "" "no container left"
for id in "${_RUN_SEEN_IDS[@]}"; do
  if [ -n "$(cgroup_dirs "$id")" ]; then fail "cgroup of $id left"; fi
done
pass "no cgroup left"

