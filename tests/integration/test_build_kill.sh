#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional argument are called without it
# `cimg build` killed with SIGKILL during a long RUN step (issue 7): the step's processes die
# with the build (PDEATHSIG); the step's cgroup cimg/<id>, which only the build's note in the
# store (run-steps/) names, is reported by `cimg system check` as debris and removed by
# `--repair` in every hierarchy (v1 controllers and the unified one on this hybrid machine), and
# a check after that is clean. A dead step whose processes are still there is killed by
# `--repair`; a cimg cgroup that is not provably this store's is reported only when it has no
# process and is older than the grace period; a mount under the store that no container owns is
# unmounted before the debris under it is removed (docs/store.md, "Leftover cgroups and
# mounts").

# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-build.sh"

# Every cimg cgroup this test makes (or makes cimg make) is removed at exit, whatever happens;
# processes it starts are killed by PID.
mapfile -t CG_BEFORE < <(ls -d /sys/fs/cgroup/*/cimg/*/ 2>/dev/null)
MY_PIDS=()
VIEW_DIRS=()
cleanup_test_cgroups() {
  local d p
  for p in "${MY_PIDS[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  for p in "${MY_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for d in "${VIEW_DIRS[@]}"; do find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true; done
  while IFS= read -r d; do
    [[ " ${CG_BEFORE[*]} " == *" $d "* ]] && continue
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done < <(ls -d /sys/fs/cgroup/*/cimg/*/ 2>/dev/null)
}
_bk_rc=0
trap '_bk_rc=$?; cleanup_test_cgroups; (exit $_bk_rc); _cimg_test_exit' EXIT

MARK="buildkill$$x$RANDOM"

# cgroup_dirs ID: the directories of cgroup cimg/ID in every hierarchy.
cgroup_dirs() {
  ls -d /sys/fs/cgroup/*/cimg/"$1" 2>/dev/null || true
}

# pids_with_mark: PIDs whose command line holds $MARK.
pids_with_mark() {
  local p out=""
  for p in /proc/[0-9]*; do
    if grep -qaF "$MARK" "$p/cmdline" 2>/dev/null; then out+=" ${p#/proc/}"; fi
  done
  echo "${out# }"
}

section "fixtures"
load_build_fixture
mkdir -p "$TEST_TMP/ctx"
cat >"$TEST_TMP/ctx/Dockerfile" <<EOF
FROM busybox:latest
RUN echo $MARK >/marked; sleep 300; echo $MARK
EOF

section "SIGKILL of a build during a long RUN step"
"$CIMG" --root "$CIMG_ROOT" build --no-cache -q -t killme:1 "$TEST_TMP/ctx" \
  >"$TEST_TMP/build.out" 2>"$TEST_TMP/build.err" &
BPID=$!
_CIMG_TEST_PIDS+=("$BPID")
# The step is running once its shell is in a new cimg cgroup.
STEP=""
STEP_PIDS=""
for _ in $(seq 1 600); do
  STEP_PIDS=$(pids_with_mark)
  if [ -n "$STEP_PIDS" ]; then
    for p in $STEP_PIDS; do
      cg=$(sed -n 's|^[0-9]*:pids:/cimg/\([0-9a-f]\{64\}\)$|\1|p' "/proc/$p/cgroup" 2>/dev/null)
      [ -n "$cg" ] && STEP=$cg
    done
  fi
  [ -n "$STEP" ] && break
  kill -0 "$BPID" 2>/dev/null || break
  sleep 0.1
done
[ -n "$STEP" ] || {
  cat "$TEST_TMP/build.err" >&2
  die "the RUN step never ran in a cimg cgroup"
}
pass "the RUN step runs in cgroup cimg/${STEP:0:12} (pids $STEP_PIDS)"
kill -KILL "$BPID"
wait "$BPID" 2>/dev/null || true

# The step's processes die with the build (PDEATHSIG on its init; the PID namespace takes the
# rest). The kernel needs a moment to deliver it.
left=""
for _ in $(seq 1 50); do
  left=""
  for p in $STEP_PIDS; do kill -0 "$p" 2>/dev/null && left+=" $p"; done
  [ -z "$left" ] && [ -z "$(pids_with_mark)" ] && break
  sleep 0.1
done
assert_eq "$left$(pids_with_mark)" "" "no process of the killed build's RUN step remains"
dirs=$(cgroup_dirs "$STEP")
assert_ne "$dirs" "" "the killed build left its step's cgroup behind (what check must find)"
assert_contains "$dirs" "/sys/fs/cgroup/unified/cimg/$STEP" "it is in the unified hierarchy"
assert_contains "$dirs" "/sys/fs/cgroup/pids/cimg/$STEP" "and in the v1 pids hierarchy"

section "system check reports it, --repair removes it"
run cimg system check
assert_eq "$RC" 0 "check exits 0 (debris only)"
assert_contains "$OUT" "debris: cgroup cimg/$STEP: the RUN step of a build that was killed" \
  "check reports the step's cgroup as debris"
assert_not_contains "$OUT" "problem:" "nothing but debris"
assert_ne "$(cgroup_dirs "$STEP")" "" "check without --repair removes nothing"
run cimg system check --repair
assert_eq "$RC" 0 "check --repair exits 0"
assert_contains "$OUT" "removed debris: cgroup cimg/$STEP" "--repair says it removed the cgroup"
assert_eq "$(cgroup_dirs "$STEP")" "" "no cgroup named after the step remains in any hierarchy"
assert_eq "$(find /sys/fs/cgroup/*/cimg -maxdepth 1 -name "$STEP" 2>/dev/null)" "" \
  "find under /sys/fs/cgroup/*/cimg agrees"
assert_store_clean

section "a build that is not killed leaves no note and no cgroup"
cat >"$TEST_TMP/ctx/Dockerfile" <<'EOF'
FROM busybox:latest
RUN echo quick >/quick
EOF
must cimg build -q -t quick:1 "$TEST_TMP/ctx"
assert_eq "$(ls -A "$CIMG_ROOT/run-steps" 2>/dev/null)" "" "the step's note is gone"
assert_store_clean

section "a dead step whose process survived: --repair kills it first"
# As if a process of the step had escaped the death signal: a note of this store names the
# step, and a process is still in its cgroup (in the v1 hierarchies and the unified one).
FAKE=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
mkdir -p "$CIMG_ROOT/run-steps"
: >"$CIMG_ROOT/run-steps/$FAKE"
for h in pids memory freezer unified; do mkdir -p "/sys/fs/cgroup/$h/cimg/$FAKE"; done
sleep 300 &
SPID=$!
MY_PIDS+=("$SPID")
for h in pids memory freezer unified; do echo "$SPID" >"/sys/fs/cgroup/$h/cimg/$FAKE/cgroup.procs"; done
run cimg system check
assert_contains "$OUT" "debris: cgroup cimg/$FAKE: the RUN step of a build that was killed (processes still in it" \
  "check reports the dead step with its live process"
if kill -0 "$SPID" 2>/dev/null; then pass "check alone kills nothing"; else fail "check alone killed the process"; fi
run cimg system check --repair
assert_eq "$RC" 0 "check --repair exits 0"
assert_contains "$OUT" "removed debris: cgroup cimg/$FAKE: the RUN step of a build that was killed (its processes killed)" \
  "--repair kills the step's process and removes its cgroup"
wait "$SPID" 2>/dev/null || true
if kill -0 "$SPID" 2>/dev/null; then fail "the step's process is still alive"; else pass "the step's process is gone"; fi
assert_eq "$(cgroup_dirs "$FAKE")" "" "its cgroup is gone from every hierarchy"
assert_eq "$(ls -A "$CIMG_ROOT/run-steps" 2>/dev/null)" "" "and its note from the store"
assert_store_clean

section "cgroups that are not provably this store's"
# What another store would leave, aged with touch (cgroupfs takes the times a test sets; the
# sweep reads a directory's mtime as its creation). An aged empty cgroup under the real cimg/
# would be reported, and removed, by every other store's check on the machine meanwhile (and
# theirs by this one's), so these cgroups live in a private view: a directory $VIEW at the top of
# every hierarchy, bind-mounted over the hierarchy's mount point in a mount namespace of the
# check's own, where the check finds $VIEW/cimg as cimg/. Nothing outside that namespace looks
# into $VIEW.
VIEW="cimgtest-view-$$"
mapfile -t CG_MOUNTS < <(awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break;
  if ($(i + 1) == "cgroup" || $(i + 1) == "cgroup2") print $5 }' /proc/self/mountinfo | sort -u)
VIEW_DIRS=("${CG_MOUNTS[@]/%//$VIEW}")
for d in "${VIEW_DIRS[@]}"; do mkdir "$d"; done
# check_in_view ARGS…: `cimg system check ARGS…` seeing $VIEW/cimg as cimg/ in every hierarchy.
check_in_view() {
  # shellcheck disable=SC2016 # expanded by the inner bash
  run unshare --mount --propagation private -- bash -c '
    view=$1 cimg=$2 root=$3
    shift 3
    while [ "$1" != -- ]; do mount --bind "$1/$view" "$1" || exit 99; shift; done
    shift
    exec "$cimg" --root "$root" system check "$@"' _ "$VIEW" "$CIMG" "$CIMG_ROOT" \
    "${CG_MOUNTS[@]}" -- "$@"
}
# vcg_dirs ID: the directories of cgroup cimg/ID in the view, in every hierarchy.
vcg_dirs() {
  ls -d /sys/fs/cgroup/*/"$VIEW"/cimg/"$1" 2>/dev/null || true
}
V=/sys/fs/cgroup
# Another store's container: a process is in its cgroup.
LIVE=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
mkdir -p "$V/pids/$VIEW/cimg/$LIVE"
sleep 300 &
LPID=$!
MY_PIDS+=("$LPID")
echo "$LPID" >"$V/pids/$VIEW/cimg/$LIVE/cgroup.procs"
# Empty, with a child cgroup: a leftover once it is old enough.
OLD=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
mkdir -p "$V/pids/$VIEW/cimg/$OLD/sub" "$V/unified/$VIEW/cimg/$OLD"
# Empty, named after a container of this store: that container's business.
must cimg run --name ctr busybox:latest true
CTR=$(cimg inspect ctr | jq -r '.[0].Id')
mkdir -p "$V/pids/$VIEW/cimg/$CTR"
# Empty and just made: maybe another store's container before its first process.
YOUNG=$(head -c 32 /dev/urandom | sha256sum | cut -c1-64)
mkdir -p "$V/pids/$VIEW/cimg/$YOUNG" "$V/unified/$VIEW/cimg/$YOUNG"
check_in_view
assert_eq "$RC" 0 "check exits 0"
assert_not_contains "$ERR" "$OLD" \
  "an empty cgroup younger than the grace period (an hour) is not reported"
# Now two hours old, all but YOUNG (a cgroup's times can be set; the mtime of a child never
# counts).
touch -d '2 hours ago' "$V/pids/$VIEW/cimg/$LIVE" "$V/pids/$VIEW/cimg/$OLD" \
  "$V/unified/$VIEW/cimg/$OLD" "$V/pids/$VIEW/cimg/$CTR"
age=$(($(date +%s) - $(stat -c %Y "$V/unified/$VIEW/cimg/$OLD")))
if [ "$age" -ge 7200 ] && [ "$age" -le 7260 ]; then pass "touch ages a cgroup directory"; else
  fail "touch did not age $V/unified/$VIEW/cimg/$OLD (mtime $age s ago)"
fi
check_in_view
assert_eq "$RC" 0 "check exits 0"
assert_eq "$OUT" "store is consistent" "another store's leftover does not make this store unclean"
assert_contains "$ERR" "note: cgroup cimg/$OLD: no container of this store, no process, made 120 min ago" \
  "an empty cgroup older than the grace period is noted"
assert_not_contains "$ERR" "$LIVE" "a cgroup with a live process is not reported"
assert_not_contains "$ERR" "$YOUNG" "a younger empty cgroup is not reported"
assert_not_contains "$ERR" "$CTR" "a cgroup named after one of the store's containers is not reported"
check_in_view --repair
assert_eq "$RC" 0 "check --repair exits 0"
assert_eq "$(vcg_dirs "$OLD")" "" "--repair removes the old empty cgroup (with its child)"
assert_ne "$(vcg_dirs "$LIVE")" "" "the live cgroup stays"
if kill -0 "$LPID" 2>/dev/null; then pass "its process was not killed"; else fail "a foreign process was killed"; fi
assert_ne "$(vcg_dirs "$YOUNG")" "" "the young cgroup stays"
assert_ne "$(vcg_dirs "$CTR")" "" "the container's cgroup stays"
kill -KILL "$LPID"
wait "$LPID" 2>/dev/null || true
for d in "${VIEW_DIRS[@]}"; do find "$d" -depth -type d -exec rmdir {} +; done
assert_eq "$(ls -d "${VIEW_DIRS[@]}" 2>/dev/null)" "" "the view is gone"
must cimg rm ctr

section "a mount under the store that no container owns"
# As a writer killed while it had a view mounted in the caller's namespace: a bind mount of a
# host directory inside a build's temp dir. --repair unmounts it before the debris sweep, which
# therefore never deletes the host's files through it.
mkdir -p "$CIMG_ROOT/tmp-build-0123456789abcdef/1/merged" "$TEST_TMP/hostdir"
echo precious >"$TEST_TMP/hostdir/file"
mount --bind "$TEST_TMP/hostdir" "$CIMG_ROOT/tmp-build-0123456789abcdef/1/merged"
run cimg system check
assert_contains "$OUT" "debris: mount $CIMG_ROOT/tmp-build-0123456789abcdef/1/merged: no container of this store uses it" \
  "check reports the mount as debris"
run cimg system check --repair
assert_eq "$RC" 0 "check --repair exits 0"
assert_eq "$(findmnt -rn -o TARGET | grep -cF "$CIMG_ROOT/" || true)" 0 "nothing is mounted under the store any more"
assert_eq "$(cat "$TEST_TMP/hostdir/file" 2>/dev/null)" precious "the host directory that was mounted is intact"
assert_eq "$(find "$CIMG_ROOT" -maxdepth 1 -name 'tmp-build-*')" "" "the build's temp dir is gone"

kill -KILL "$LPID" 2>/dev/null || true
wait "$LPID" 2>/dev/null || true
cleanup_test_cgroups
assert_store_clean
