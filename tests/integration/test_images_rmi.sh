#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# `cimg rmi A B C …` and `cimg build -t a -t b …`: one index update per command, with docker
# rmi's semantics per name: each name reported in order (Untagged: …, Deleted: …), a name that
# does not exist or cannot be removed (several tags by ID without -f, an image a container uses)
# fails alone while the others are removed, exit 1 if any failed; an image goes with its last
# tag, and its layers with it. A kill leaves the old index or the new one: never some of the
# names removed. Fixtures: busybox-static rootfs tars (imported), skopeo's docker-archive of the
# umoci busybox image, bench/mkmany.py's archive of many small images.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# index_updates FILE: how many times strace saw the store's index replaced (its rename).
index_updates() {
  grep -c 'rename.*, "index")' "$1" || true
}

# traced OUT CMD…: CMD under strace, its renames in OUT (LeakSanitizer cannot run under ptrace:
# an ASAN build's leak check is off there, and only there).
traced() {
  local out=$1
  shift
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -e trace=rename,renameat,renameat2 -o "$out" "$@"
}

# tags_listed PATTERN: the "repo:tag" rows of `cimg images` whose repository matches PATTERN.
tags_listed() {
  cimg images | awk -v p="$1" 'NR > 1 && $1 ~ p {print $1 ":" $2}' | sort
}

section "fixtures"
make_busybox_rootfs "$TEST_TMP/rootfs"
echo one >"$TEST_TMP/rootfs/etc/which"
tar -C "$TEST_TMP/rootfs" -cf "$TEST_TMP/one.tar" .
echo two >"$TEST_TMP/rootfs/etc/which"
tar -C "$TEST_TMP/rootfs" -cf "$TEST_TMP/two.tar" .
echo three >"$TEST_TMP/rootfs/etc/which"
tar -C "$TEST_TMP/rootfs" -cf "$TEST_TMP/three.tar" .
must cimg import "$TEST_TMP/one.tar" one:1
one=$(tail -n 1 <<<"$OUT")
must cimg import "$TEST_TMP/two.tar" two:1
two=$(tail -n 1 <<<"$OUT")
must cimg tag one:1 one:2
must cimg tag one:1 one:3
layers0=$(count_layer_dirs)
assert_eq "$layers0" 2 "two images, two layers"

section "rmi of several names: in order, one failure alone, exit 1"
RC=0
traced "$TEST_TMP/rmi.strace" "$CIMG" --root "$CIMG_ROOT" rmi one:1 nosuch:1 one:2 two:1 \
  >"$TEST_TMP/out" 2>"$TEST_TMP/err" || RC=$?
assert_eq "$RC" "$CIMG_ERR_CODE" "rmi with one unknown name exits $CIMG_ERR_CODE"
assert_eq "$(cat "$TEST_TMP/out")" "Untagged: one:1
Untagged: one:2
Untagged: two:1
Deleted: $two" "each name reported in order: one:1 and one:2 untagged (one:3 is left), two deleted"
assert_eq "$(cat "$TEST_TMP/err")" "cimg: No such image: nosuch:1" "the unknown name is the one error"
assert_eq "$(index_updates "$TEST_TMP/rmi.strace")" 1 "four names, one index update"
assert_eq "$(tags_listed '^(one|two)$')" "one:3" "one:3 is the only tag left"
assert_eq "$(count_layer_dirs)" 1 "two's layer went with it"

section "a name removed by an earlier one of the same command"
must cimg tag one:3 one:4
expect_fail "$CIMG_ERR_CODE" cimg rmi one:3 one:3 one:4
assert_eq "$OUT" "Untagged: one:3
Untagged: one:4
Deleted: $one" "one:3 untagged, then one:4 (its last tag) deletes the image"
assert_contains "$ERR" "No such image: one:3" "the second one:3 no longer exists"
assert_eq "$(count_layer_dirs)" 0 "no layer is left"
expect_ok cimg images -a -q
assert_eq "$OUT" "" "no image is left"
assert_store_clean

section "an ID with several tags needs -f; the other names are still removed"
must cimg import "$TEST_TMP/one.tar" one:1
one=$(tail -n 1 <<<"$OUT")
must cimg tag one:1 one:2
must cimg import "$TEST_TMP/two.tar" two:1
two=$(tail -n 1 <<<"$OUT")
expect_fail "$CIMG_ERR_CODE" cimg rmi "${one:7:12}" two:1
assert_contains "$ERR" "conflict: unable to delete ${one:7:12} (must be forced) - image is referenced in multiple repositories" \
  "Docker's conflict message for an ID with several tags"
assert_eq "$OUT" "Untagged: two:1
Deleted: $two" "two:1 is removed all the same"
assert_eq "$(tags_listed '^one$')" "one:1
one:2" "the image named by ID keeps its tags"
expect_ok cimg rmi -f "${one:7:12}"
assert_eq "$(sort <<<"$OUT")" "Deleted: $one
Untagged: one:1
Untagged: one:2" "rmi -f of the ID untags both and deletes the image"
assert_eq "$(count_layer_dirs)" 0 "its layer went with it"
assert_store_clean

section "an image a container uses: refused without -f, untagged only with -f"
must cimg import "$TEST_TMP/one.tar" one:1
one=$(tail -n 1 <<<"$OUT")
must cimg import "$TEST_TMP/two.tar" two:1
two=$(tail -n 1 <<<"$OUT")
must cimg import "$TEST_TMP/three.tar" three:1
three=$(tail -n 1 <<<"$OUT")
must cimg run --name user one:1 true
expect_fail "$CIMG_ERR_CODE" cimg rmi two:1 one:1 three:1
assert_contains "$ERR" "conflict: unable to remove image ${one:7:12} - a container is using it" \
  "the image in use is refused, by name"
assert_eq "$OUT" "Untagged: two:1
Deleted: $two
Untagged: three:1
Deleted: $three" "the names before and after it are removed"
assert_eq "$(tags_listed '^(one|two|three)$')" "one:1" "one:1 stays"
expect_ok cimg rmi -f one:1
assert_eq "$OUT" "Untagged: one:1" "rmi -f of an image in use untags it and deletes nothing"
expect_ok cimg images -a -q --no-trunc
assert_eq "${OUT#sha256:}" "${one#sha256:}" "the image stays for its container"
must cimg rm user
must cimg image prune -f
assert_eq "$(count_layer_dirs)" 0 "prune takes the untagged image once its container is gone"
assert_store_clean

section "build -t a -t b -t c: the tags in one index update"
make_fixture_docker_archive "$TEST_TMP/busybox.tar" busybox:latest
must cimg load -i "$TEST_TMP/busybox.tar"
mkdir -p "$TEST_TMP/ctx"
printf 'FROM busybox:latest\nLABEL batch=1\n' >"$TEST_TMP/ctx/Dockerfile"
traced "$TEST_TMP/b1.strace" "$CIMG" --root "$CIMG_ROOT" build --no-cache -q -t b:1 \
  "$TEST_TMP/ctx" >/dev/null 2>&1 ||
  fail "build -t b:1 failed"
traced "$TEST_TMP/b3.strace" "$CIMG" --root "$CIMG_ROOT" build --no-cache -t b:1 -t b:2 \
  -t other/b:3 "$TEST_TMP/ctx" \
  >"$TEST_TMP/out" 2>&1 || fail "build -t b:1 -t b:2 -t other/b:3 failed"
u1=$(index_updates "$TEST_TMP/b1.strace")
u3=$(index_updates "$TEST_TMP/b3.strace")
log "index updates: build -t (1 tag) $u1, build with 3 tags $u3"
assert_lt 0 "$u1" "strace sees the build's index updates"
assert_eq "$u3" "$u1" "three tags cost the index updates of one"
for t in b:1 b:2 other/b:3; do
  assert_contains "$(cat "$TEST_TMP/out")" "Successfully tagged $t" "build reports $t"
done
bid=$(cimg inspect b:1 | jq -r '.[0].Id')
assert_eq "$(cimg inspect other/b:3 | jq -r '.[0].Id')" "$bid" "other/b:3 is the built image"
assert_eq "$(tags_listed '^(b|other/b)$')" "b:1
b:2
other/b:3" "the three tags are listed"
expect_fail "$CIMG_ERR_CODE" cimg build -t ok:1 -t 'Bad:Tag' "$TEST_TMP/ctx"
assert_eq "$(tags_listed '^ok$')" "" "a bad tag among them: no tag is made"
must cimg rmi b:1 b:2 other/b:3 busybox:latest
assert_contains "$OUT" "Deleted: $bid" "rmi of the built image's three tags deletes it"
must cimg image prune -a -f
assert_eq "$(count_layer_dirs)" 0 "no layer is left"
assert_store_clean

section "a killed rmi of many names leaves the old index or the new one"
N=40
KILLS=${CIMG_RMI_KILLS:-16}
python3 "$CIMG_SRC/bench/mkmany.py" "$TEST_TMP/many.tar" "$N"
mapfile -t names < <(seq -f 'bench/img%g:v1' 1 "$N")
must cimg load -q -i "$TEST_TMP/many.tar"
t0=$(date +%s%N)
must cimg rmi "${names[@]}"
dur_us=$((($(date +%s%N) - t0) / 1000))
log "rmi of $N names takes $((dur_us / 1000)) ms without a kill"
partial=0 killed=0
for i in $(seq 0 $((KILLS - 1))); do
  must cimg load -q -i "$TEST_TMP/many.tar"
  delay_us=$((dur_us * 11 * i / (10 * KILLS) + RANDOM % (dur_us / KILLS + 1)))
  "$CIMG" --root "$CIMG_ROOT" rmi "${names[@]}" >/dev/null 2>&1 &
  pid=$!
  sleep "$(awk -v u="$delay_us" 'BEGIN { printf "%.6f", u / 1e6 }')"
  kill -KILL "$pid" 2>/dev/null || true
  st=0
  wait "$pid" 2>/dev/null || st=$?
  if [ "$st" -eq 137 ]; then killed=$((killed + 1)); fi
  left=$(tags_listed '^bench/img' | wc -l)
  if [ "$left" -ne 0 ] && [ "$left" -ne "$N" ]; then
    partial=$((partial + 1))
    fail "kill $i (after ${delay_us} us): $left of the $N tags are left"
  fi
  run cimg system check
  [ "$RC" -eq 0 ] || fail "kill $i: system check finds more than debris (exit $RC): $OUT"
  # Odd kills: repaired first; even kills: rmi again on top of the debris.
  if [ $((i % 2)) -eq 1 ]; then
    run cimg system check --repair
    [ "$RC" -eq 0 ] || fail "kill $i: check --repair failed (exit $RC)"
  fi
  if [ "$left" -gt 0 ]; then
    mapfile -t rest < <(tags_listed '^bench/img')
    run cimg rmi "${rest[@]}"
    [ "$RC" -eq 0 ] || fail "kill $i: rmi after the kill failed (exit $RC): $ERR"
  fi
  [ -z "$(cimg images -a -q)" ] || fail "kill $i: images are left after rmi"
done
log "$killed of $KILLS kills hit the command while it ran"
assert_lt 0 "$killed" "some kills hit rmi while it was working"
assert_eq "$partial" 0 "after each of $KILLS kills, all $N tags or none"
run cimg system check --repair
assert_store_clean
