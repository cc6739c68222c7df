#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# --security-opt seccomp=PROFILE.json: the container is confined by the profile in the file
# (Docker's JSON format), keeps it through `start`, and a bad profile is refused before anything
# is created.

# shellcheck source-path=SCRIPTDIR source=lib-run.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-run.sh"

load_run_fixtures

section "a profile that denies mkdir"
cat >"$TEST_TMP/deny-mkdir.json" <<'JSON'
{
  "defaultAction": "SCMP_ACT_ALLOW",
  "syscalls": [
    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
  ]
}
JSON
run cimg run --rm "$RUN_IMG" sh -c 'mkdir /tmp/d && echo made'
assert_eq "$RC:$OUT" "0:made" "without a profile, mkdir works (Docker's default allows it)"
run cimg run --rm --security-opt "seccomp=$TEST_TMP/deny-mkdir.json" "$RUN_IMG" \
  sh -c 'mkdir /tmp/d 2>&1; echo "rc=$?"'
assert_contains "$OUT" "Permission denied" "with the profile, mkdir fails with its errnoRet (EACCES)"
assert_contains "$OUT" "rc=1" "mkdir exits 1 under the profile"
run cimg run --rm --security-opt "seccomp=$TEST_TMP/deny-mkdir.json" "$RUN_IMG" \
  sh -c 'unshare -U true && echo unshared'
assert_eq "$OUT" "unshared" "the profile replaces the default one (which forbids unshare -U)"
run cimg run --rm --security-opt "seccomp=$TEST_TMP/deny-mkdir.json" "$RUN_IMG" \
  grep Seccomp: /proc/self/status
assert_contains "$OUT" "2" "Seccomp mode is 2 (filter) under the profile"

section "the profile stays with the container"
run cimg run --name sc1 --security-opt "seccomp=$TEST_TMP/deny-mkdir.json" "$RUN_IMG" \
  sh -c 'mkdir /tmp/e 2>/dev/null && echo made || echo denied'
assert_eq "$OUT" "denied" "first run: denied"
rm "$TEST_TMP/deny-mkdir.json"
run cimg start -a sc1
assert_eq "$OUT" "denied" "start of the container after the file is gone: still denied"
expect_ok cimg rm sc1

section "bad profiles are refused, naming the problem, before anything is created"
before=$(find "$CIMG_ROOT/containers" -mindepth 1 -maxdepth 1 | wc -l)
printf '{"defaultAction": "SCMP_ACT_FOO"}' >"$TEST_TMP/bad-action.json"
expect_fail 125 cimg run --rm --security-opt "seccomp=$TEST_TMP/bad-action.json" "$RUN_IMG" true
assert_contains "$ERR" 'defaultAction' "the message names the field"
printf '{"defaultAction": ' >"$TEST_TMP/truncated.json"
expect_fail 125 cimg run --rm --security-opt "seccomp=$TEST_TMP/truncated.json" "$RUN_IMG" true
assert_contains "$ERR" "seccomp" "an invalid JSON profile is refused"
expect_fail 125 cimg run --rm --security-opt "seccomp=$TEST_TMP/missing.json" "$RUN_IMG" true
assert_contains "$ERR" "missing.json" "a missing profile file is named"
after=$(find "$CIMG_ROOT/containers" -mindepth 1 -maxdepth 1 | wc -l)
assert_eq "$after" "$before" "no container record was left by the refused runs"
assert_store_clean
