#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# shellcheck disable=SC2119 # helpers with an optional argument are called without it
# cimg build, the parts of issue 6 the other build tests leave out: ARG scope (global ARGs, a
# stage's own, Docker's predefined proxy ARGs), RUN's exec form, SHELL for RUN and CMD, the
# legacy ENV form, VOLUME, COPY --from an image, ADD of plain, bzip2 and xz tars, COPY's
# destination rules, a RUN that changes nothing, several -t, .dockerignore never hiding the
# Dockerfile, the cache keyed on modes and owners but not mtimes, and parse errors of a
# Dockerfile (file:line, exit 1, nothing tagged). Every build is FROM the busybox fixture.

# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-build.sh"

section "fixtures"
load_build_fixture
base_layers=$(cimg inspect busybox | jq '.[0].RootFS.Layers | length')

# ---------------------------------------------------------------------------------------------
section "instructions"
ctx=$(new_ctx inst)
printf 'aaa\n' >"$ctx/a.txt"
printf 'bbb\n' >"$ctx/b.txt"
for kind in plain bz xz; do
  mkdir -p "$TEST_TMP/arc-$kind/$kind"
  echo "from $kind" >"$TEST_TMP/arc-$kind/$kind/file"
done
tar -C "$TEST_TMP/arc-plain" -cf "$ctx/plain.tar" plain
tar -C "$TEST_TMP/arc-bz" -cjf "$ctx/bz.tar.bz2" bz
tar -C "$TEST_TMP/arc-xz" -cJf "$ctx/xz.tar.xz" xz
cat >"$ctx/Dockerfile" <<'DF'
ARG TOP=top-value
FROM busybox AS first
ARG INFIRST=one
RUN echo "first:${INFIRST}:${TOP:-unset}" >/first.txt
FROM busybox
ARG TOP
RUN echo "final:${INFIRST:-unset}:${TOP}" >/final.txt
RUN true
COPY --from=first /first.txt /from-stage.txt
COPY --from=busybox /bin/busybox /bb
RUN ["/bin/sh", "-c", "echo exec-form:$0 >/exec.txt", "zero"]
ENV LEGACY the rest of  the line
VOLUME /vol1 /vol2
VOLUME ["/vol3"]
ADD plain.tar bz.tar.bz2 xz.tar.xz /arch/
COPY a.txt /named
COPY a.txt b.txt /multi
RUN env | grep -i '_proxy=' | sort >/proxy.txt || true
SHELL ["/bin/busybox", "env", "MARK=shell-used", "/bin/sh", "-c"]
RUN echo "$MARK" >/shell.txt
CMD echo shell-cmd
DF
proxies=(--build-arg HTTP_PROXY=http://127.0.0.1:9/ --build-arg no_proxy=example.invalid)
must cimg build -t inst:1 -t inst:2 "${proxies[@]}" "$ctx"
assert_contains "$OUT" "Successfully tagged inst:1" "-t inst:1"
assert_contains "$OUT" "Successfully tagged inst:2" "-t inst:2"
assert_eq "$(image_id inst:2)" "$(image_id inst:1)" "both tags name the image"
assert_not_contains "$OUT" "were not consumed" "the predefined proxy ARGs are no unused build-args"
id=$(image_id inst:1)
expect_ok cimg run --rm inst:1 sh -c 'test -e /first.txt || echo no-first; cat /final.txt /from-stage.txt /exec.txt /shell.txt;
  test -x /bb && echo bb-ok; cat /arch/plain/file /arch/bz/file /arch/xz/file /named;
  ls /multi | tr "\n" " "; echo; cat /proxy.txt'
assert_eq "$OUT" "no-first
final:unset:top-value
first:one:unset
exec-form:zero
shell-used
bb-ok
from plain
from bz
from xz
aaa
a.txt b.txt 
HTTP_PROXY=http://127.0.0.1:9/
no_proxy=example.invalid" "ARG scope (a global ARG only where declared, a stage's ARG only in it), a stage's files only in it but for COPY --from, COPY --from an image, RUN exec form, SHELL, ADD of tar/bz2/xz, COPY to a file name and to a new directory, the proxy ARGs in RUN's environment"
cfg=$(cimg inspect inst:1 | jq -c '.[0].Config')
assert_contains "$(jq -c '.Env' <<<"$cfg")" '"LEGACY=the rest of  the line"' "ENV's legacy form: the rest of the line"
assert_eq "$(jq -c '.Volumes' <<<"$cfg")" '{"/vol1":{},"/vol2":{},"/vol3":{}}' "VOLUME, shell and JSON forms"
assert_eq "$(jq -c '.Shell' <<<"$cfg")" '["/bin/busybox","env","MARK=shell-used","/bin/sh","-c"]' "Shell"
assert_eq "$(jq -c '.Cmd' <<<"$cfg")" '["/bin/busybox","env","MARK=shell-used","/bin/sh","-c","echo shell-cmd"]' \
  "a shell-form CMD goes through SHELL"
expect_ok cimg run --rm inst:1
assert_eq "$OUT" "shell-cmd" "and runs"
assert_not_contains "$(cimg inspect inst:1)" "127.0.0.1:9" "no proxy value in the config or history"
must cimg save -o "$TEST_TMP/inst.tar" inst:1
sk=$(skopeo inspect --config --raw "docker-archive:$TEST_TMP/inst.tar")
# 9 layer steps in the final stage: RUN final, COPY x2, RUN exec, ADD, COPY x2, RUN proxy, RUN shell
assert_eq "$(jq '.rootfs.diff_ids | length' <<<"$sk")" "$((base_layers + 9))" \
  "one layer per RUN/COPY/ADD that changed something"
assert_eq "$(jq -c '[.history[] | select(.created_by | endswith("/bin/sh -c true"))] | map(.empty_layer)' <<<"$sk")" \
  '[true]' "RUN true changed nothing: an empty_layer history entry, no layer"
assert_not_contains "$sk" "127.0.0.1:9" "no proxy value in the saved config"

section "the proxy ARGs are not in the step keys"
must cimg build -t inst:3 --build-arg HTTP_PROXY=http://127.0.0.1:10/ --build-arg no_proxy=other "$ctx"
assert_eq "$(image_id inst:3)" "$id" "another proxy: every step cached, the same image"
must cimg build -t inst:4 --build-arg TOP=other "${proxies[@]}" "$ctx"
assert_ne "$(image_id inst:4)" "$id" "a declared ARG is in the keys"

# ---------------------------------------------------------------------------------------------
section "RUN's output is streamed as it comes"
ctx=$(new_ctx stream)
# The lines printed are not in the command text, which the step line shows.
printf 'FROM busybox\nRUN echo first-$((40 + 2)); sleep 8; echo last-$((50 + 5))\n' >"$ctx/Dockerfile"
cimg build -t stream:1 "$ctx" >"$TEST_TMP/stream.out" 2>&1 &
spid=$!
_CIMG_TEST_PIDS+=("$spid")
for _ in $(seq 1 75); do
  grep -q first-42 "$TEST_TMP/stream.out" && break
  sleep 0.1
done
assert_contains "$(cat "$TEST_TMP/stream.out")" "first-42" "the first line is out while the RUN sleeps"
assert_not_contains "$(cat "$TEST_TMP/stream.out")" "last-55" "(the RUN was still running)"
if wait "$spid"; then pass "the build ends well"; else fail "the build ends well"; fi
assert_contains "$(cat "$TEST_TMP/stream.out")" "last-55" "then the last line"

# ---------------------------------------------------------------------------------------------
section ".dockerignore never hides the Dockerfile or itself"
ctx=$(new_ctx ign)
printf '*\n' >"$ctx/.dockerignore"
printf 'x\n' >"$ctx/other"
printf 'FROM busybox\nCOPY Dockerfile .dockerignore /kept/\n' >"$ctx/Dockerfile"
must cimg build -t ign:1 "$ctx"
expect_ok cimg run --rm ign:1 sh -c 'ls -A /kept | tr "\n" " "'
assert_eq "$OUT" ".dockerignore Dockerfile " "both are copied although '*' ignores everything"
printf 'FROM busybox\nCOPY other /o\n' >"$ctx/Dockerfile"
expect_fail "$CIMG_ERR_CODE" cimg build -t ign:2 "$ctx"
assert_contains "$ERR" "Dockerfile:2: COPY other: no such file or directory" "an ignored file is not there"

# ---------------------------------------------------------------------------------------------
section "the cache: what reaches the layer is in the key (bytes, modes), mtimes are not"
ctx=$(new_ctx cache)
printf 'content\n' >"$ctx/f"
chmod 644 "$ctx/f"
printf 'FROM busybox\nCOPY f /f\n' >"$ctx/Dockerfile"
must cimg build -t ck:1 "$ctx"
id=$(image_id ck:1)
touch -d '2001-01-01 00:00:00' "$ctx/f"
must cimg build -t ck:2 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 1 "a new mtime: a hit"
assert_eq "$(image_id ck:2)" "$id" "the same image"
chmod 600 "$ctx/f"
must cimg build -t ck:3 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "a new mode: a miss"
expect_ok cimg run --rm ck:3 stat -c %a /f
assert_eq "$OUT" "600" "the new mode is in the image"
chmod 644 "$ctx/f"
must cimg build -t ck:4 "$ctx"
assert_eq "$(image_id ck:4)" "$id" "back to the first mode: the first image again"
# COPY writes 0:0 (or --chown's owner) whatever the source's owner, as Docker: the source's
# owner is no input of the layer, so a new one is a hit; --chown is in the instruction.
chown 1:1 "$ctx/f"
must cimg build -t ck:5 "$ctx"
assert_eq "$(image_id ck:5)" "$id" "a new owner of the source: a hit, the same image"
expect_ok cimg run --rm ck:5 stat -c %u:%g /f
assert_eq "$OUT" "0:0" "whose file is 0:0"
printf 'FROM busybox\nCOPY --chown=1:1 f /f\n' >"$ctx/Dockerfile"
must cimg build -t ck:6 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "--chown: a miss"
expect_ok cimg run --rm ck:6 stat -c %u:%g /f
assert_eq "$OUT" "1:1" "--chown's owner"
chown 0:0 "$ctx/f"

# ---------------------------------------------------------------------------------------------
section "bad Dockerfiles: file:line, exit 1, nothing tagged"
ctx=$(new_ctx bad)
bad_df() {
  local text=$1 want=$2
  printf '%b' "$text" >"$ctx/Dockerfile"
  expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 "$ctx"
  assert_contains "$ERR" "$want" "$(head -c 40 <<<"$text" | tr '\n' '|'): $want"
  assert_eq "$(image_id bad:1)" "" "nothing tagged"
}
bad_df 'FROM busybox\nENV A="unterminated\n' \
  'Dockerfile:2: failed to process "\"unterminated": unexpected end of statement while looking for matching double-quote'
bad_df 'FROM busybox\nSHELL ["/bin/sh", "-c"\n' 'Dockerfile:2: SHELL requires the arguments to be in JSON form'
bad_df 'FROM busybox\nRUN ["echo", 1]\n' \
  'Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only'
bad_df 'FROM busybox\nRUN true\nRUN <<EOF\necho hi\n' 'Dockerfile:3: unterminated heredoc "EOF"'
bad_df 'FROM busybox\nENV A\n' 'Dockerfile:2: ENV must have two arguments'
bad_df 'FROM busybox\nARG\n' 'Dockerfile:2: ARG requires at least one argument'
bad_df 'FROM busybox\nLABEL\n' 'Dockerfile:2: LABEL requires at least one argument'
bad_df 'FROM busybox\nCOPY --from=5 /x /y\n' 'Dockerfile:2: COPY --from=5: invalid stage index 5'
bad_df 'FROM busybox AS a\nCOPY --from=1 /x /y\nFROM a\n' \
  'Dockerfile:2: COPY --from=1: a stage can copy only from a stage before it'

assert_eq "$(build_leftovers)" "" "no mounts or temp dirs left"
assert_store_clean
