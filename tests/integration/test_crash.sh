#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# Crash safety (issue 7 §3): `cimg pull`, `load`, `build`, `rm` (a container), `rmi` and, once
# it exists, `commit` are killed with SIGKILL at points spread from 0 to the command's normal
# duration (measured first). After every kill:
#   - `cimg system check` exits 0 and reports nothing but debris (no "problem:" line);
#   - the same command then succeeds: on odd kills after `check --repair` (which leaves a clean
#     store), on even kills straight on top of the debris (the next writer copes with it,
#     resumes a partial download), then `--repair` and a clean check;
#   - every ~10 kills and at the end, the image that was complete before (keep:1) still runs,
#     its busybox has the original bytes, and `cimg save` of it is read by skopeo.
# CIMG_CRASH_ONLY="build rm" runs only the commands it names (pull and load bring rmi along).
# CIMG_CRASH_KILLS (default 50) kill points per command; CIMG_CRASH_SEED fixes the jitter
# (the seed is printed, so a failure can be replayed); tests/soak/crash.sh runs with 500.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

KILLS=${CIMG_CRASH_KILLS:-50}
SEED=${CIMG_CRASH_SEED:-$$}
RANDOM=$SEED
log "kill points per command: $KILLS, seed $SEED (CIMG_CRASH_SEED=$SEED replays the jitter)"
export CIMG_REGISTRY_BACKOFF_MS=20

# A killed build leaves its RUN step's cgroups (empty) under /sys/fs/cgroup/*/cimg/: nothing
# in the store records them (docs/security.md). They are host state this test made, so the test
# removes the ones that were not there before it, whatever happens.
mapfile -t CG_BEFORE < <(ls -d /sys/fs/cgroup/*/cimg/*/ 2>/dev/null)
CG_LEFT=0
cleanup_new_cgroups() {
  local d
  while IFS= read -r d; do
    [[ " ${CG_BEFORE[*]} " == *" $d "* ]] && continue
    CG_LEFT=$((CG_LEFT + 1))
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(ls -d /sys/fs/cgroup/*/cimg/*/ 2>/dev/null)
}
_crash_rc=0
trap '_crash_rc=$?; cleanup_new_cgroups; (exit $_crash_rc); _cimg_test_exit' EXIT

now_ms() {
  echo $(($(date +%s%N) / 1000000))
}

section "fixtures (umoci, skopeo)"
start_registry
# px: two layers of its own (nothing shared with keep:1), big and incompressible enough that a
# pull, load or rmi lasts long enough to be cut in many places: a busybox rootfs with 300 kB
# of random bytes, then 200 small files and 200 kB more.
PX="$TEST_TMP/px-oci"
b="$TEST_TMP/px-bundle"
_quietly px-init umoci init --layout "$PX"
_quietly px-new umoci new --image "$PX:px"
_quietly px-unpack umoci unpack --image "$PX:px" "$b"
make_busybox_rootfs "$b/rootfs"
mkdir -p "$b/rootfs/data"
head -c 300000 /dev/urandom >"$b/rootfs/data/big1"
_quietly px-repack1 umoci repack --refresh-bundle --image "$PX:px" "$b"
mkdir -p "$b/rootfs/tree"
for n in $(seq 1 200); do echo "file $n" >"$b/rootfs/tree/f$n"; done
head -c 200000 /dev/urandom >"$b/rootfs/data/big2"
_quietly px-repack2 umoci repack --refresh-bundle --image "$PX:px" "$b"
_quietly px-config umoci config --image "$PX:px" --config.cmd=/bin/sh
rm -rf "$b"
push_fixture "oci:$PX:px" px:1
_quietly px-archive skopeo copy --quiet "oci:$PX:px" "docker-archive:$TEST_TMP/px.tar:px:1"
make_fixture_docker_archive "$TEST_TMP/keep.tar" keep:1
must cimg load -q -i "$TEST_TMP/keep.tar"
keep_id=$(cimg inspect keep:1 | jq -r '.[0].Id')
bb_sum=$(sha256_of "$TEST_TMP/cache/busybox-rootfs/bin/busybox")

mkdir -p "$TEST_TMP/ctx"
head -c 300000 /dev/urandom >"$TEST_TMP/ctx/payload"
cat >"$TEST_TMP/ctx/Dockerfile" <<'EOF'
FROM keep:1
RUN cp -a /bin /made && echo crashmark >/made/mark && head -c 300000 /dev/urandom >/made/blob
COPY payload /payload
ENV BUILT=yes
EOF

# keep_intact WHEN: the image complete before the kills still runs, with its original bytes,
# and its save is a valid docker-archive for skopeo.
keep_intact() {
  local when=$1
  run cimg run --rm keep:1 sha256sum /bin/busybox
  if [ "$RC" -eq 0 ] && [ "${OUT%% *}" == "$bb_sum" ]; then
    pass "$when: keep:1 runs and its busybox is intact"
  else
    fail "$when: keep:1 does not run or is damaged (exit $RC)"
    _show_output
  fi
  rm -f "$TEST_TMP/keep-save.tar"
  run cimg save -o "$TEST_TMP/keep-save.tar" keep:1
  if [ "$RC" -eq 0 ] && run skopeo inspect "docker-archive:$TEST_TMP/keep-save.tar" && [ "$RC" -eq 0 ] &&
    [ "$(jq -r .Digest <<<"$OUT" 2>/dev/null)" != "" ]; then
    pass "$when: cimg save keep:1 is read by skopeo"
  else
    fail "$when: cimg save keep:1 failed or skopeo cannot read it"
    _show_output
  fi
  rm -f "$TEST_TMP/keep-save.tar"
  assert_eq "$(cimg inspect keep:1 | jq -r '.[0].Id')" "$keep_id" "$when: keep:1 is the same image"
}

# A build's RUN container must die with the killed build (PDEATHSIG): none may be left.
leftover_build_procs() {
  local p out=""
  for p in /proc/[0-9]*; do
    if grep -qa crashmark "$p/cmdline" 2>/dev/null; then out+=" ${p#/proc/}"; fi
  done
  echo "$out"
}

BAD=0
# bad CMD MSG: one failure of the property MSG after a kill of CMD (details shown).
bad() {
  BAD=$((BAD + 1))
  fail "$1: $2"
  _show_output
}

# check_debris_only CMD I: `system check` after kill I exits 0 and lists only debris.
check_debris_only() {
  run cimg system check
  if [ "$RC" -ne 0 ] || grep -q '^problem:' <<<"$OUT"; then
    bad "$1" "kill $2: system check reports more than debris (exit $RC)"
    return 1
  fi
  DEBRIS_SEEN=$((DEBRIS_SEEN + $(grep -c '^debris:' <<<"$OUT" || true)))
  return 0
}

# repair_clean CMD I: `check --repair` succeeds and a check after it is clean.
repair_clean() {
  run cimg system check --repair
  if [ "$RC" -ne 0 ] || grep -q 'problem:' <<<"$OUT"; then
    bad "$1" "kill $2: system check --repair failed or found problems (exit $RC)"
  fi
  run cimg system check
  if [ "$RC" -ne 0 ] || [ "$OUT" != "store is consistent" ]; then
    bad "$1" "kill $2: the store is not consistent after --repair"
  fi
  local d
  d=$(store_debris)
  if [ -n "$d" ]; then
    OUT=$d ERR=""
    bad "$1" "kill $2: debris left after --repair"
  fi
}

declare -A N_KILLS N_KILLED N_FINISHED DUR BAD0

# kill_point NAME I REDO CMD…: CMD killed after a delay spread over 0..110% of DUR[NAME] (with
# jitter inside each step), then the checks and REDO (the same command, which must succeed, or
# find its work already done when the kill came after the end).
kill_point() {
  local name=$1 i=$2 redo=$3 dur=${DUR[$1]} delay_us st pid leftovers
  shift 3
  delay_us=$((dur * 1100 * i / KILLS + RANDOM % (dur * 1100 / KILLS + 1)))
  "$CIMG" --root "$CIMG_ROOT" "$@" >/dev/null 2>"$TEST_TMP/victim.err" &
  pid=$!
  sleep "$(printf '%d.%06d' $((delay_us / 1000000)) $((delay_us % 1000000)))"
  kill -KILL "$pid" 2>/dev/null || true
  st=0
  wait "$pid" 2>/dev/null || st=$?
  N_KILLS[$name]=$((${N_KILLS[$name]:-0} + 1))
  if [ "$st" -eq 137 ]; then
    N_KILLED[$name]=$((${N_KILLED[$name]:-0} + 1))
  elif [ "$st" -eq 0 ]; then
    N_FINISHED[$name]=$((${N_FINISHED[$name]:-0} + 1))
  else
    OUT="" ERR=$(cat "$TEST_TMP/victim.err")
    bad "$name" "kill $i: the command failed by itself (exit $st)"
  fi
  if [ "$name" == build ]; then
    sleep 0.05
    leftovers=$(leftover_build_procs)
    if [ -n "$leftovers" ]; then
      OUT="pids:$leftovers" ERR=""
      bad "$name" "kill $i: the RUN step's processes outlived the killed build"
      # shellcheck disable=SC2086 # a list of PIDs
      kill -KILL $leftovers 2>/dev/null || true
    fi
  fi
  # Odd kills: --repair first, the command on a clean store. Even kills: the command on top of
  # the debris (it resumes a partial download, replaces unfinished layers), then --repair.
  if check_debris_only "$name" "$i"; then
    if [ $((i % 2)) -eq 1 ]; then repair_clean "$name" "$i"; fi
    if ! "$redo"; then bad "$name" "kill $i: the same command did not succeed afterwards"; fi
    if [ $((i % 2)) -eq 0 ]; then repair_clean "$name" "$i"; fi
  else
    run cimg system check --repair
  fi
}

# measure NAME CMD…: DUR[NAME], the time CMD takes without a kill (it must succeed).
measure() {
  local name=$1 t0
  shift
  t0=$(now_ms)
  run "$CIMG" --root "$CIMG_ROOT" "$@"
  t0=$(($(now_ms) - t0))
  # The shorter of two runs: the first one of a process also pays for cold caches.
  if [ -z "${DUR[$name]:-}" ] || [ "$t0" -lt "${DUR[$name]}" ]; then DUR[$name]=$t0; fi
  [ "$RC" -eq 0 ] || {
    _show_output
    die "$name does not succeed without a kill"
  }
  [ -n "${BAD0[$name]:-}" ] || BAD0[$name]=$BAD
  log "$name takes ${t0} ms without a kill"
}

# crash_loop NAME SETUP REDO RESET CMD…: measure CMD (after SETUP), then KILLS times: SETUP,
# kill_point of CMD, then (when FOLLOW_REDO is set) a kill point of `rmi FOLLOW_IMAGE` on
# the image the command just made, RESET. Pairing rmi with what makes an image saves a
# load or pull per rmi kill point.
crash_loop() {
  local name=$1 setup=$2 redo=$3 reset=$4 t0 i
  shift 4
  if [ -n "${CIMG_CRASH_ONLY:-}" ] && [[ " $CIMG_CRASH_ONLY " != *" $name "* ]]; then
    log "SKIP: $name (not in CIMG_CRASH_ONLY)"
    return 0
  fi
  section "kill $name ($KILLS kill points${FOLLOW_REDO:+, each followed by one of rmi})"
  t0=$(now_ms)
  for _ in 1 2; do
    "$setup"
    measure "$name" "$@"
    if [ -n "${FOLLOW_REDO:-}" ]; then measure rmi rmi "$FOLLOW_IMAGE"; fi
    "$reset"
  done
  DEBRIS_SEEN=0
  for i in $(seq 0 $((KILLS - 1))); do
    CUR_KILL=$i
    "$setup"
    kill_point "$name" "$i" "$redo" "$@"
    if [ -n "${FOLLOW_REDO:-}" ]; then
      kill_point rmi "$i" "$FOLLOW_REDO" rmi "$FOLLOW_IMAGE"
    fi
    "$reset"
    if [ $((i % 10)) -eq 9 ] && [ "$((BAD - BAD0[$name]))" -eq 0 ]; then
      keep_intact "$name, after $((i + 1)) kills"
    fi
    if [ $((BAD - BAD0[$name])) -gt 5 ]; then
      fail "$name: more than 5 failures, the rest of its kill points are skipped"
      break
    fi
  done
  log "$name: ${N_KILLED[$name]:-0} killed, ${N_FINISHED[$name]:-0} finished before the signal, $DEBRIS_SEEN debris entries seen, $(($(now_ms) - t0)) ms"
  if [ "$BAD" -eq "${BAD0[$name]}" ]; then
    pass "$name: after each of $KILLS kills, only debris, --repair cleans it, the command succeeds"
  fi
  assert_lt 0 "${N_KILLED[$name]:-0}" "$name: some kills hit the command while it was working"
  keep_intact "$name, at the end"
  cleanup_new_cgroups
}
KILL_REPORT=""

noop() { :; }
image_absent() {
  if cimg image inspect "$1" >/dev/null 2>&1; then
    run cimg rmi "$1"
    [ "$RC" -eq 0 ] || bad reset "rmi $1 failed"
  fi
}

# content_ok IMAGE SCRIPT EXPECTED: the image is there; on every 10th kill (a container run
# costs time) SCRIPT run in it prints EXPECTED.
content_ok() {
  cimg image inspect "$1" >/dev/null 2>&1 || return 1
  [ $((CUR_KILL % 10)) -eq 9 ] || return 0
  [ "$(cimg run --rm "$1" sh -c "$2")" == "$3" ]
}

# redo_ok CMD…: the command succeeds (OUT/ERR kept for bad ()).
redo_ok() {
  run cimg "$@"
  [ "$RC" -eq 0 ]
}

# --- rmi of an image, as the follow-up of pull and load: `rmi IMG` killed on the image the
# command made, then rmi again if the image is still there; the image must end up gone.
rmi_redo_of() {
  if cimg image inspect "$1" >/dev/null 2>&1; then
    redo_ok rmi "$1" || return 1
  fi
  ! cimg image inspect "$1" >/dev/null 2>&1
}
rmi_redo_pulled() { rmi_redo_of "$REGISTRY/px:1"; }
rmi_redo_loaded() { rmi_redo_of px:1; }

# --- pull
pull_setup() { image_absent "$REGISTRY/px:1"; }
pull_redo() {
  redo_ok pull -q "$REGISTRY/px:1" && content_ok "$REGISTRY/px:1" 'ls /tree | wc -l' 200
}
FOLLOW_REDO=rmi_redo_pulled FOLLOW_IMAGE="$REGISTRY/px:1"
crash_loop pull pull_setup pull_redo pull_setup pull -q "$REGISTRY/px:1"

# --- load
load_setup() { image_absent px:1; }
load_redo() {
  redo_ok load -q -i "$TEST_TMP/px.tar" && content_ok px:1 'ls /tree | wc -l' 200
}
FOLLOW_REDO=rmi_redo_loaded FOLLOW_IMAGE=px:1
crash_loop load load_setup load_redo load_setup load -q -i "$TEST_TMP/px.tar"
FOLLOW_REDO=""
if [ -n "${BAD0[rmi]:-}" ] && [ "$BAD" -eq "${BAD0[rmi]}" ]; then
  pass "rmi: after each of ${N_KILLS[rmi]} kills, only debris, --repair cleans it, rmi succeeds"
fi
if [ -n "${BAD0[rmi]:-}" ]; then
  assert_lt 0 "${N_KILLED[rmi]:-0}" "rmi: some kills hit the command while it was working"
fi

# --- build
build_reset() {
  image_absent crashb:1
  # A build's intermediate images and cache: what is no longer tagged goes.
  run cimg image prune -f
}
# shellcheck disable=SC2016 # $BUILT is expanded in the container
build_redo() {
  redo_ok build --no-cache -q -t crashb:1 "$TEST_TMP/ctx" &&
    content_ok crashb:1 'cat /made/mark; echo $BUILT' "$(printf 'crashmark\nyes')"
}
crash_loop build build_reset build_redo build_reset build --no-cache -q -t crashb:1 "$TEST_TMP/ctx"
assert_eq "$(leftover_build_procs)" "" "no RUN step of a killed build is still running"

# --- rm of a container (with a write layer of ~400 entries, so that removing it takes a while)
rm_setup() {
  if ! cimg inspect crashc >/dev/null 2>&1; then
    run cimg run --name crashc keep:1 cp -a /bin /d
    [ "$RC" -eq 0 ] || bad rm "could not create the container (exit $RC)"
  fi
}
rm_redo() {
  # Killed before it removed config.json: the container is still there and rm removes it;
  # after: it is gone (the rest was debris), and rm says so.
  if cimg ps -a | grep -qw crashc; then
    redo_ok rm crashc || return 1
  else
    run cimg rm crashc
    [ "$RC" -eq 1 ] && [[ "$ERR" == *"No such container"* ]] || return 1
  fi
  [ -z "$(cimg ps -a -q)" ]
}
crash_loop rm rm_setup rm_redo noop rm crashc

# --- commit, once the command exists
if "$CIMG" commit --help >/dev/null 2>&1; then
  commit_setup() {
    image_absent crashcommit:1
    if ! cimg inspect crashcm >/dev/null 2>&1; then
      run cimg run --name crashcm keep:1 sh -c \
        'cp -a /bin /d && head -c 300000 /dev/urandom >/d/blob && rm /bin/vi'
      [ "$RC" -eq 0 ] || bad commit "could not create the container (exit $RC)"
    fi
  }
  commit_redo() {
    redo_ok commit crashcm crashcommit:1 &&
      content_ok crashcommit:1 'test -f /d/blob && echo blob; test -e /bin/vi || echo novi' \
        "$(printf 'blob\nnovi')"
  }
  crash_loop commit commit_setup commit_redo commit_setup commit crashcm crashcommit:1
  run cimg rm crashcm
else
  # SKIP: `cimg commit` does not exist in this build; this block runs once it does.
  log "SKIP: cimg commit does not exist in this build, its kill points are not run"
fi

section "the end"
keep_intact "after every kill"
for n in pull load rmi build rm commit; do
  [ -n "${N_KILLS[$n]:-}" ] || continue
  KILL_REPORT+="$n ${N_KILLS[$n]} (${N_KILLED[$n]:-0} mid-way, normal run ${DUR[$n]} ms); "
done
log "kill points: ${KILL_REPORT%; }"
cleanup_new_cgroups
log "cgroups left behind by killed commands (removed by this test): $CG_LEFT"
assert_store_clean
