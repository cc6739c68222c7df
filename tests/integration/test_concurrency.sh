#!/bin/bash
# Several cimg processes on one store at once: `rmi` racing `load`, `tag` and `images`. Each
# command either succeeds or fails with a clear message, and the store is consistent after.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

section "fixture (umoci + skopeo)"
make_fixture_docker_archive "$TEST_TMP/busybox-da.tar" busybox:fix

section "rmi racing load"
rounds=15
# loader: load the archive again and again; remover: remove the image again and again.
(
  for _ in $(seq "$rounds"); do
    "$CIMG" --root "$CIMG_ROOT" load -q -i "$TEST_TMP/busybox-da.tar" >/dev/null 2>>"$TEST_TMP/load.err" ||
      echo "load failed" >>"$TEST_TMP/load.fail"
  done
) &
loader=$!
(
  for _ in $(seq "$rounds"); do
    "$CIMG" --root "$CIMG_ROOT" rmi busybox:fix >/dev/null 2>>"$TEST_TMP/rmi.err" || true
    "$CIMG" --root "$CIMG_ROOT" tag busybox:fix other:t >/dev/null 2>>"$TEST_TMP/tag.err" || true
    "$CIMG" --root "$CIMG_ROOT" images >/dev/null 2>>"$TEST_TMP/images.err" ||
      echo "images failed" >>"$TEST_TMP/images.fail"
  done
) &
remover=$!
wait "$loader"
wait "$remover"

assert_eq "$(cat "$TEST_TMP/load.fail" 2>/dev/null)" "" "every load succeeded while rmi ran beside it"
assert_eq "$(cat "$TEST_TMP/images.fail" 2>/dev/null)" "" "every images succeeded"
# rmi and tag may find nothing to remove or tag: that, and only that, is allowed.
unexpected=$(cat "$TEST_TMP/rmi.err" "$TEST_TMP/tag.err" 2>/dev/null | grep -v 'No such image' || true)
assert_eq "$unexpected" "" "rmi and tag fail only with 'No such image'"
assert_store_clean

section "the store still works"
expect_ok cimg load -i "$TEST_TMP/busybox-da.tar"
expect_ok cimg images busybox
assert_contains "$OUT" "fix" "busybox:fix is listed after the race"
expect_ok cimg save -o "$TEST_TMP/out.tar" busybox:fix
expect_ok skopeo inspect "docker-archive:$TEST_TMP/out.tar"
assert_store_clean
