#!/bin/bash
# `cimg ps` on a store whose file system refuses user xattrs: store/container.c then writes no
# user.cimg.ps summary (fsetxattr fails with EOPNOTSUPP) and ps reads every container from its
# JSON records. The store's containers/ is a ramfs here, which has no xattr handler at all (this
# 6.x kernel's ext4 lost nouser_xattr, an ext4 without ext_attr still takes xattrs, and tmpfs
# has user xattrs since 6.6). A user must see exactly what the same containers show on a store
# that keeps the summaries (test_ps_summary.sh): after run, stop and rm.

# shellcheck source-path=SCRIPTDIR source=lib-lifecycle.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-lifecycle.sh"

# ps_view [ROOT]: what `cimg ps -a` shows of each container of ROOT's store, without what
# depends on the clock or on the store (ID, creation time; "Up 3 seconds" → "Up", "Exited (7)
# 2 minutes ago" → "Exited (7)"), one JSON line each, sorted by name.
ps_view() {
  cimg_in "${1:-$CIMG_ROOT}" ps -a --no-trunc --format json |
    jq -c '{Names, Image, Command, State,
            Status: (.Status | if startswith("Up ") then "Up" else sub(" [^()]* ago$"; "") end)}' |
    sort
}

# has_summary FILE: FILE carries a user.cimg.ps xattr.
has_summary() {
  python3 -c 'import os, sys; os.getxattr(sys.argv[1], "user.cimg.ps", follow_symlinks=False)' \
    "$1" 2>/dev/null
}

# refuses_user_xattrs DIR: setting a user xattr on a file in DIR fails with EOPNOTSUPP.
refuses_user_xattrs() {
  python3 -c 'import errno, os, sys
p = os.path.join(sys.argv[1], ".probe")
open(p, "w").close()
try:
    os.setxattr(p, "user.cimg.probe", b"1")
    sys.exit(1)
except OSError as e:
    sys.exit(0 if e.errno == errno.EOPNOTSUPP else 1)
finally:
    os.unlink(p)' "$1"
}

# The same three containers in the store ROOT: one running, one exited 7, one with a command
# that needs quoting (a backslash, quotes, a newline).
ODD_SCRIPT='echo "a\\b \"q\""
exec sleep 1000'
make_containers() {
  local root=$1
  CIMG_ROOT=$root run_d --name up "$RUN_IMG" sleep 1000
  CIMG_ROOT=$root run_d --name odd "$RUN_IMG" sh -c "$ODD_SCRIPT"
  CIMG_ROOT=$root run_d --name seven "$RUN_IMG" sh -c 'exit 7'
  expect_ok cimg_in "$root" wait seven
}

section "fixtures"
load_run_fixtures
# The reference: a second store on the test's own file system, where the summaries are kept.
# Its monitors are killed on exit as lib-lifecycle.sh kills the main store's.
REF_ROOT="$TEST_TMP/ref-root"
_noxattr_exit() {
  local rc=$?
  set +e
  CIMG_ROOT=$REF_ROOT _life_kill_monitors
  (exit "$rc")
  _life_exit
}
trap _noxattr_exit EXIT
expect_ok cimg_in "$REF_ROOT" load -i "$TEST_TMP/busybox-run.tar"
mkdir -p "$CIMG_ROOT/containers"
[ -z "$(ls -A "$CIMG_ROOT/containers")" ] || die "containers/ is not empty before the mount"
must mount -t ramfs -o mode=0700 cimg-test-noxattr "$CIMG_ROOT/containers"
if ! refuses_user_xattrs "$CIMG_ROOT/containers"; then
  log "SKIP: ramfs takes user xattrs on this kernel: nothing here refuses them"
  exit 0
fi
pass "containers/ refuses user xattrs (EOPNOTSUPP)"

section "run"
make_containers "$REF_ROOT"
make_containers "$CIMG_ROOT"
with_summary=0
for id in $(container_ids); do
  for f in config.json state.json; do
    has_summary "$CIMG_ROOT/containers/$id/$f" && with_summary=$((with_summary + 1))
  done
done
assert_eq "$with_summary" 0 "no record has a summary: ps can only read the JSON"
ref_state=$(CIMG_ROOT=$REF_ROOT container_ids | head -1)
if has_summary "$REF_ROOT/containers/$ref_state/state.json"; then
  pass "the reference store keeps summaries (so it reads them, not the JSON)"
else
  fail "the reference store has no summary: the comparison would be JSON against JSON"
fi
view=$(ps_view)
assert_eq "$(wc -l <<<"$view")" 3 "ps -a lists the three"
assert_eq "$view" "$(ps_view "$REF_ROOT")" "ps -a: the same as on a store with summaries"
assert_eq "$(jq -r 'select(.Names == "up") | "\(.Image) \(.Command) \(.Status)"' <<<"$view")" \
  'busybox:run "sleep 1000" Up' "up: image, command, Up"
assert_eq "$(jq -r 'select(.Names == "seven") | "\(.State) \(.Status)"' <<<"$view")" \
  "exited Exited (7)" "seven: Exited (7)"
assert_eq "$(jq -r 'select(.Names == "odd") | .Command' <<<"$view")" "\"sh -c $ODD_SCRIPT\"" \
  "odd: the command as it was run"
expect_ok cimg ps
assert_match "$(awk '$NF == "up"' <<<"$OUT")" '^[0-9a-f]{12} +busybox:run +"sleep 1000" .* Up ' \
  "the table: ID, image, command, Up"
assert_not_contains "$OUT" "seven" "ps (running only) leaves out seven"
expect_ok cimg ps -aq -f name=seven
seven=$OUT
expect_ok cimg ps -aq -f status=exited
assert_eq "$OUT" "$seven" "ps -f status=exited: seven only"

section "stop"
expect_ok cimg stop -t 1 up
expect_ok cimg_in "$REF_ROOT" stop -t 1 up
view=$(ps_view)
code=$(jq -r 'select(.Names == "up") | .Status' <<<"$view")
assert_match "$code" '^Exited \([1-9][0-9]*\)$' "up: Exited with the stop's code ($code)"
expect_ok cimg ps -aq --no-trunc -f name=up
up_id=$OUT
assert_eq "$code" "Exited ($(jq -r .ExitCode "$CIMG_ROOT/containers/$up_id/state.json"))" \
  "the code state.json records"
assert_eq "$view" "$(ps_view "$REF_ROOT")" "ps -a: the same as on a store with summaries"
expect_ok cimg ps -q
assert_eq "$(wc -l <<<"$OUT")" 1 "ps: only odd still running"

section "rm"
expect_ok cimg rm up
assert_eq "$(ps_view | jq -r .Names | tr '\n' ' ')" "odd seven " "ps -a: up is gone"
expect_ok cimg rm -f odd seven
assert_eq "$(ps_view)" "" "ps -a: nothing left"
assert_eq "$(container_ids)" "" "no record left"
expect_ok cimg_in "$REF_ROOT" rm -f up odd seven
remember_ids
must umount "$CIMG_ROOT/containers"
assert_store_clean
assert_store_clean "$REF_ROOT"
