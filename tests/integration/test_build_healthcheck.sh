#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# shellcheck disable=SC2119 # helpers with an optional argument are called without it
# cimg build, BuildKit's later details: HEALTHCHECK options (in a build, import --change and
# commit -c; the config as Docker writes it, read back by skopeo from a save and from a registry),
# "**" in COPY sources (one path component, as fsutil's filepath.Match; any depth with --parents,
# as BuildKit's include patterns), and COPY --from with a heredoc source. Every build is FROM the
# busybox fixture of lib-build.sh.

# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-build.sh"

section "fixtures"
load_build_fixture

# hc IMAGE: the image's Healthcheck as cimg inspect shows it (compact, keys sorted: the order of
# a JSON object's keys means nothing).
hc() {
  cimg inspect "$1" | jq -cS '.[0].Config.Healthcheck'
}

# ---------------------------------------------------------------------------------------------
section "HEALTHCHECK with every option"
ctx=$(new_ctx hc)
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
HEALTHCHECK --interval=1m30s --timeout=5s --start-period=2m --start-interval=500ms --retries=3 \
  CMD wget -q -O- http://127.0.0.1/ || exit 1
DF
must cimg build -t hc:1 "$ctx"
want=$(jq -cS . <<<'{"Test":["CMD-SHELL","wget -q -O- http://127.0.0.1/ || exit 1"],"Interval":90000000000,"Timeout":5000000000,"StartPeriod":120000000000,"StartInterval":500000000,"Retries":3}')
assert_eq "$(hc hc:1)" "$want" "the options in nanoseconds, as Docker's HealthConfig"
must cimg save -o "$TEST_TMP/hc.tar" hc:1
saved=$(skopeo inspect --config --raw "docker-archive:$TEST_TMP/hc.tar")
assert_eq "$(jq -cS '.config.Healthcheck' <<<"$saved")" "$want" \
  "skopeo reads the same Healthcheck from a save"
assert_contains "$(jq -r '.history[-1].created_by' <<<"$saved")" \
  'HEALTHCHECK --interval=1m30s --timeout=5s --start-period=2m0s --start-interval=500ms --retries=3 ["CMD-SHELL",' \
  "history: the options as set, normalised"
start_registry
must cimg tag hc:1 "$REGISTRY/hc:1"
must cimg push "$REGISTRY/hc:1"
# --raw: without it skopeo converts the config to OCI's, which has no Healthcheck
assert_eq "$(skopeo inspect --tls-verify=false --config --raw "docker://$REGISTRY/hc:1" | jq -cS '.config.Healthcheck')" \
  "$want" "skopeo reads it from the registry"

section "HEALTHCHECK: zero and empty options are left out; the cache sees the options"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
HEALTHCHECK --interval=0s --timeout= --retries=0 CMD ["/bin/true"]
DF
must cimg build -t hc:2 "$ctx"
assert_eq "$(hc hc:2)" '{"Test":["CMD","/bin/true"]}' "omitempty: no zero field"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
HEALTHCHECK --interval=30s CMD ["/bin/true"]
DF
must cimg build -t hc:30 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "a first --interval=30s: a miss"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
HEALTHCHECK --interval=31s CMD ["/bin/true"]
DF
must cimg build -t hc:31 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "another interval is a miss"
assert_eq "$(hc hc:31 | jq -c .Interval)" 31000000000 "and gives its own value"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
HEALTHCHECK --interval=30000ms CMD ["/bin/true"]
DF
must cimg build -t hc:30b "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 1 "the same 30s written as 30000ms: a hit"
assert_eq "$(image_id hc:30b)" "$(image_id hc:30)" "the same image"

section "HEALTHCHECK NONE over a base's HEALTHCHECK CMD"
cat >"$ctx/Dockerfile" <<'DF'
FROM hc:1
HEALTHCHECK NONE
DF
must cimg build -t hc:none "$ctx"
assert_eq "$(hc hc:none)" '{"Test":["NONE"]}' "NONE replaces the inherited check and its options"

section "HEALTHCHECK: a bad option fails the build before any step, nothing tagged"
bad_case() {
  local opt=$1 msg=$2
  printf 'FROM busybox\nRUN touch /ran\nHEALTHCHECK %s CMD true\n' "$opt" >"$ctx/Dockerfile"
  expect_fail "$CIMG_ERR_CODE" cimg build -t hc:bad "$ctx"
  assert_contains "$ERR" "Dockerfile:3: $msg" "$opt: file:line and BuildKit's message"
  assert_not_contains "$OUT" "RUN touch" "$opt: no step ran"
  assert_eq "$(image_id hc:bad)" "" "$opt: nothing tagged"
}
bad_case --interval=500us 'Interval "interval" cannot be less than 1ms'
bad_case --timeout=-1s 'Interval "timeout" cannot be less than 1ms'
bad_case --start-period=5 'time: missing unit in duration "5"'
bad_case --start-interval=1x 'time: unknown unit "x" in duration "1x"'
bad_case --interval=3000000h 'time: invalid duration "3000000h"'
bad_case --retries=-1 '--retries cannot be negative (-1)'
bad_case --retries=three 'strconv.ParseInt: parsing "three": invalid syntax'
bad_case --retries=2147483648 'strconv.ParseInt: parsing "2147483648": value out of range'

section "HEALTHCHECK options through import --change and commit -c"
make_busybox_rootfs "$TEST_TMP/rootfs"
tar -C "$TEST_TMP/rootfs" -cf "$TEST_TMP/rootfs.tar" .
expect_ok cimg import -c 'HEALTHCHECK --interval=10s --retries=2 CMD ["/bin/true"]' \
  "$TEST_TMP/rootfs.tar" imp:hc
assert_eq "$(hc imp:hc)" '{"Interval":10000000000,"Retries":2,"Test":["CMD","/bin/true"]}' \
  "import --change takes the options"
expect_fail "$CIMG_ERR_CODE" cimg import -c 'HEALTHCHECK --timeout=1us CMD true' \
  "$TEST_TMP/rootfs.tar" imp:hcbad
assert_contains "$ERR" 'Interval "timeout" cannot be less than 1ms' "import: a bad option is refused"
assert_eq "$(image_id imp:hcbad)" "" "import: nothing tagged"
must cimg run --name hcctr busybox true
expect_ok cimg commit -c 'HEALTHCHECK --start-period=1.5s --timeout=2s CMD test -e /' hcctr hc:committed
assert_eq "$(hc hc:committed)" \
  '{"StartPeriod":1500000000,"Test":["CMD-SHELL","test -e /"],"Timeout":2000000000}' \
  "commit -c takes the options"
expect_fail "$CIMG_ERR_CODE" cimg commit -c 'HEALTHCHECK --retries=-3 CMD true' hcctr hc:cbad
assert_contains "$ERR" '--retries cannot be negative (-3)' "commit -c: a bad option is refused"
assert_eq "$(image_id hc:cbad)" "" "commit: nothing tagged"
expect_ok cimg rm hcctr

# ---------------------------------------------------------------------------------------------
section '"**" in COPY sources: one path component, as BuildKit'
ctx=$(new_ctx glob)
mkdir -p "$ctx/a/x/b" "$ctx/a/y/z/b" "$ctx/a/b" "$ctx/d1/d2" "$ctx/real"
echo top >"$ctx/top.txt"
echo one >"$ctx/d1/one.txt"
echo two >"$ctx/d1/d2/two.txt"
echo ab >"$ctx/a/b/f"
echo axb >"$ctx/a/x/b/f"
echo ayzb >"$ctx/a/y/z/b/f"
echo inreal >"$ctx/real/r.txt"
ln -s real "$ctx/link"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
COPY **/*.txt /g1/
COPY a/**/b /g2/
COPY */*.txt /g3/
COPY --parents **/*.txt /p1/
COPY --parents ./a/./**/b /p2/
DF
must cimg build -t glob:1 "$ctx"
expect_ok cimg run --rm glob:1 sh -c 'cd /; find g1 g2 g3 p1 p2 -type f | sort'
assert_eq "$OUT" "g1/one.txt
g1/r.txt
g2/f
g3/one.txt
g3/r.txt
p1/d1/d2/two.txt
p1/d1/one.txt
p1/real/r.txt
p1/top.txt
p2/b/f
p2/x/b/f
p2/y/z/b/f" '"**/*.txt" and "*/*.txt" match one directory down, not a symlink to one, not the top; "a/**/b" is a/*/b; --parents "**" spans any depth (zero included)'

# After a wildcard BuildKit walks with filepath.Walk, which does not enter a symlink to a
# directory: "*/s.txt" finds as/s.txt but not sl/s.txt (sl -> m/sub). Both would land on
# /g4/s.txt, sl's last, so the content says which were matched.
ctx=$(new_ctx globlink)
mkdir -p "$ctx/m/sub" "$ctx/as"
echo via-link >"$ctx/m/sub/s.txt"
echo direct >"$ctx/as/s.txt"
ln -s m/sub "$ctx/sl"
printf 'FROM busybox\nCOPY */s.txt /g4/\nCOPY sl/s.txt /g5/\n' >"$ctx/Dockerfile"
must cimg build -t glob:2 "$ctx"
expect_ok cimg run --rm glob:2 cat /g4/s.txt /g5/s.txt
assert_eq "$OUT" "direct
via-link" "a wildcard does not look through a symlinked directory; a literal path before it does"

section "COPY --from=stage with a heredoc source"
ctx=$(new_ctx hd)
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox AS build
RUN echo built >/out.txt
FROM busybox
ARG WHO=world
COPY --from=build /out.txt <<EOF /dst/
hello $WHO
EOF
COPY --from=build <<'EOF' /only.txt
raw $WHO
EOF
DF
must cimg build -t hd:1 "$ctx"
expect_ok cimg run --rm hd:1 sh -c 'cat /dst/out.txt /dst/EOF /only.txt'
assert_eq "$OUT" "built
hello world
raw \$WHO" "the path from the stage, the heredoc from its text (expanded unless quoted)"
must cimg build -t hd:2 "$ctx"
assert_eq "$(image_id hd:2)" "$(image_id hd:1)" "a rebuild is fully cached"
must cimg build --build-arg WHO=you -t hd:3 "$ctx"
expect_ok cimg run --rm hd:3 cat /dst/EOF
assert_eq "$OUT" "hello you" "a changed ARG the body uses is a miss"

assert_eq "$(build_leftovers)" "" "no mounts or temp dirs left"
assert_store_clean
