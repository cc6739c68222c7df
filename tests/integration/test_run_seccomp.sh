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

section "exec gets the container's filter, whatever the store's cache holds"
# The default profile's program is compiled once into $CIMG_ROOT/seccomp/<key>.bpf (a 152-byte
# header, then struct sock_filter instructions) and only loaded by run and exec afterwards.
remember_ids
expect_ok cimg run -d --name xsc "$RUN_IMG" sleep 1000
remember_ids
expect_ok cimg exec xsc grep Seccomp: /proc/self/status
assert_eq "$OUT" $'Seccomp:\t2' "exec: a seccomp filter"
expect_rc 1 cimg exec xsc unshare -U true
assert_contains "$ERR" "Operation not permitted" "exec: a call the default profile denies fails with EPERM"
bpf=$(find "$CIMG_ROOT/seccomp" -name '*.bpf')
assert_eq "$(wc -l <<<"$bpf")" 1 "one cached program for the default profile"
assert_eq "$(stat -c '%a %u' "$bpf")" "600 0" "the cached program is root's, 0600"
cp "$bpf" "$TEST_TMP/good.bpf"
# The first instruction becomes "return ALLOW": loaded, it would allow everything.
printf '\x06\x00\x00\x00\x00\x00\xff\x7f' | dd of="$bpf" bs=1 seek=152 conv=notrunc status=none
expect_rc 1 cimg exec xsc unshare -U true
assert_contains "$ERR" "Operation not permitted" "a tampered cached program is not loaded (unshare -U still EPERM)"
if cmp -s "$bpf" "$TEST_TMP/good.bpf"; then pass "the tampered program was compiled again and replaced"; else fail "the cache still holds the tampered program"; fi
truncate -s -8 "$bpf"
expect_ok cimg exec xsc grep Seccomp: /proc/self/status
assert_eq "$OUT" $'Seccomp:\t2' "a truncated cached program: exec is still filtered"
expect_rc 1 cimg exec xsc unshare -U true
if cmp -s "$bpf" "$TEST_TMP/good.bpf"; then pass "the truncated program was replaced"; else fail "the cache still holds the truncated program"; fi
expect_ok cimg rm -f xsc
cat >"$TEST_TMP/deny-mkdir2.json" <<'JSON'
{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
JSON
expect_ok cimg run -d --name xsc2 --security-opt "seccomp=$TEST_TMP/deny-mkdir2.json" "$RUN_IMG" sleep 1000
remember_ids
rm "$TEST_TMP/deny-mkdir2.json"
run cimg exec xsc2 sh -c 'mkdir /tmp/x 2>&1; echo "rc=$?"'
assert_contains "$OUT" "Permission denied" "exec: the container's own profile (mkdir denied with EACCES)"
expect_ok cimg exec xsc2 unshare -U true
expect_ok cimg rm -f xsc2

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
