#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# shellcheck disable=SC2119 # helpers with an optional argument are called without it
# cimg build: real Dockerfiles FROM the busybox image made by umoci and skopeo; the results are
# checked by running them, by inspect, and by skopeo reading a save of them.

# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-build.sh"

section "fixtures"
load_build_fixture
base_layers=$(cimg inspect busybox | jq '.[0].RootFS.Layers | length')

ctx="$TEST_TMP/ctx"
mkdir -p "$ctx/d/sub" "$ctx/arc/inner"
printf 'hello\n' >"$ctx/a.txt"
printf 'x\n' >"$ctx/d/x"
printf 'deep\n' >"$ctx/d/sub/deep"
printf 'one\n' >"$ctx/g1.conf"
printf 'two\n' >"$ctx/g2.conf"
printf 'secret\n' >"$ctx/ign.txt"
printf 'packed\n' >"$ctx/arc/inner/file.txt"
tar -C "$ctx/arc" -czf "$TEST_TMP/arc.tar.gz" inner
mv "$TEST_TMP/arc.tar.gz" "$ctx/arc.tar.gz"
rm -rf "$ctx/arc"
printf 'ign.txt\n' >"$ctx/.dockerignore"
cat >"$ctx/Dockerfile" <<'DF'
ARG BASE=busybox
FROM $BASE
ARG GREETING=hello
ENV APP_HOME=/app MSG="$GREETING world"
WORKDIR $APP_HOME
RUN echo "$MSG $GREETING" > run.txt && rm /bin/vi
COPY a.txt /files/
COPY d /files/d
COPY *.conf /conf/
COPY --chown=nobody:nogroup --chmod=600 a.txt /files/owned.txt
ADD arc.tar.gz /unpacked/
COPY . /ctx/
USER nobody
LABEL org.test=yes other="two words"
EXPOSE 8080/tcp 53/udp
STOPSIGNAL SIGTERM
MAINTAINER someone@example.com
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/run.txt"]
DF
nsteps=$(grep -c '^[A-Z]' "$ctx/Dockerfile")
nsteps=$((nsteps - 1)) # the ARG before FROM is no step

section "dry run"
expect_ok cimg build --dry-run "$ctx"
assert_contains "$OUT" "Dockerfile:6 RUN" "--dry-run prints the plan"
assert_eq "$(cimg images -q | wc -l)" 1 "--dry-run builds nothing"

section "build"
must cimg build -t app:1 --build-arg GREETING=hi "$ctx"
built1=$(date +%s)
assert_contains "$OUT" "STEP 1/$nsteps: FROM busybox" "step lines count the steps"
assert_contains "$OUT" "STEP 5/$nsteps: RUN echo" "RUN has its step line"
assert_match "$OUT" "Successfully built [0-9a-f]{12}" "Successfully built <id>"
assert_contains "$OUT" "Successfully tagged app:1" "Successfully tagged app:1"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "a first build uses no cache"
id1=$(image_id app:1)
assert_match "$id1" '^sha256:[0-9a-f]{64}$' "app:1 is in the store"
assert_eq "$(build_leftovers)" "" "no mount, no temp dir left by the build"
assert_store_clean

section "the result runs"
expect_ok cimg run --rm app:1
assert_eq "$OUT" "hi world hi" "RUN used ENV and ARG (--build-arg wins over the default)"
check='cat /files/a.txt /files/d/x /files/d/sub/deep; ls /conf | tr "\n" " "; echo;
stat -c "%U:%G %a" /files/owned.txt; cat /unpacked/inner/file.txt;
test -e /ctx/ign.txt && echo ign-present || echo ign-absent; test -e /ctx/a.txt && echo ctx-ok;
test -e /bin/vi && echo vi-present || echo vi-gone; id -u; pwd; echo "$MSG"'
expect_ok cimg run --rm app:1 "$check"
expected='hello
x
deep
g1.conf g2.conf 
nobody:nogroup 600
packed
ign-absent
ctx-ok
vi-gone
65534
/app
hi world'
assert_eq "$OUT" "$expected" "files, ownership, modes, unpacked ADD, .dockerignore, whiteout, user, workdir, env"

section "inspect"
cfg=$(cimg inspect app:1 | jq -c '.[0].Config')
assert_eq "$(jq -r '.Labels["org.test"] + "|" + .Labels.other' <<<"$cfg")" "yes|two words" "Labels"
assert_eq "$(jq -r '.ExposedPorts | keys | join(" ")' <<<"$cfg")" "53/udp 8080/tcp" "ExposedPorts"
assert_eq "$(jq -c '.Entrypoint' <<<"$cfg")" '["/bin/sh","-c"]' "Entrypoint"
assert_eq "$(jq -c '.Cmd' <<<"$cfg")" '["cat /app/run.txt"]' "Cmd"
assert_eq "$(jq -r '.User + " " + .WorkingDir + " " + .StopSignal' <<<"$cfg")" "nobody /app SIGTERM" \
  "User, WorkingDir, StopSignal"
assert_contains "$(jq -r '.Env | join(" ")' <<<"$cfg")" "MSG=hi world" "Env"
assert_eq "$(cimg inspect app:1 | jq -r '.[0].Author')" "someone@example.com" "MAINTAINER is the author"
nlayers=$(cimg inspect app:1 | jq '.[0].RootFS.Layers | length')
assert_eq "$nlayers" "$((base_layers + 8))" "one layer per RUN/COPY/ADD, and one for WORKDIR's new directory"
hist=$(cimg history --no-trunc app:1)
assert_contains "$hist" '/bin/sh -c #(nop)  ENV APP_HOME=/app MSG=hi world' "history: ENV as the legacy builder"
assert_contains "$hist" '/bin/sh -c #(nop) WORKDIR /app' "history: WORKDIR"
assert_contains "$hist" '/bin/sh -c echo "$MSG $GREETING" > run.txt' "history: RUN"

section "skopeo reads a save of it"
must cimg save -o "$TEST_TMP/app.tar" app:1
assert_eq "$(config_digest "docker-archive:$TEST_TMP/app.tar")" "$id1" "the saved config is the image's"
sk=$(skopeo inspect --config --raw "docker-archive:$TEST_TMP/app.tar")
assert_eq "$(jq -c '.rootfs.diff_ids' <<<"$sk")" "$(cimg inspect app:1 | jq -c '.[0].RootFS.Layers')" \
  "skopeo sees the same layers"
assert_eq "$(jq '[.history[] | select(.empty_layer != true)] | length' <<<"$sk")" "$nlayers" \
  "history: one non-empty entry per layer"
_quietly skopeo-oci skopeo copy --quiet "docker-archive:$TEST_TMP/app.tar" "oci:$TEST_TMP/app-oci:app"
_quietly umoci-unpack umoci unpack --image "$TEST_TMP/app-oci:app" "$TEST_TMP/app-bundle"
assert_eq "$(cat "$TEST_TMP/app-bundle/rootfs/files/d/sub/deep")" "deep" "umoci unpacks the COPY layer"
if [ -e "$TEST_TMP/app-bundle/rootfs/bin/vi" ]; then
  fail "umoci sees /bin/vi deleted (whiteout)"
else
  pass "umoci sees /bin/vi deleted (whiteout)"
fi

section "cache"
must cimg build -t app:1 --build-arg GREETING=hi "$ctx"
# FROM and the ARG steps have no cache line of their own.
assert_eq "$(count_lines "$OUT" "CACHED")" "$((nsteps - 2))" "a second build is all cached"
assert_eq "$(image_id app:1)" "$id1" "and gives the same image ID"
expect_ok cimg build -q --build-arg GREETING=hi "$ctx"
assert_eq "$OUT" "$id1" "-q prints only the image ID"
# Same size, same mtime, other bytes: the cache must miss from that COPY on.
cp -p "$ctx/a.txt" "$TEST_TMP/a.ref"
printf 'HELLO\n' >"$ctx/a.txt"
touch -r "$TEST_TMP/a.ref" "$ctx/a.txt"
assert_eq "$(stat -c '%s %Y' "$ctx/a.txt")" "$(stat -c '%s %Y' "$TEST_TMP/a.ref")" "a.txt keeps size and mtime"
must cimg build -t app:2 --build-arg GREETING=hi "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 3 "cached up to the RUN (ENV, WORKDIR, RUN), not after"
assert_contains "$(grep -A1 'COPY a.txt /files/' <<<"$OUT")" "--->" "COPY a.txt ran"
assert_not_contains "$(grep -A1 'COPY a.txt /files/' <<<"$OUT")" "CACHED" "COPY a.txt was not cached"
assert_ne "$(image_id app:2)" "$id1" "the changed file gives another image"
expect_ok cimg run --rm app:2 'cat /files/a.txt'
assert_eq "$OUT" "HELLO" "the new bytes are in the image"
# Layers keep whole-second mtimes (as Docker's): a rerun within the second app:1 was built in
# makes the very same WORKDIR and RUN layers, which app:1 keeps alive, and the gc section
# below would then rightly hit them. Start in a later second, so that these layers are app:3's.
while [ "$(date +%s)" -le "$built1" ]; do sleep 0.1; done
must cimg build --no-cache -t app:3 --build-arg GREETING=hi "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "--no-cache uses no cache"
must cimg build --build-arg GREETING=other -t app:4 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "another build arg value misses from its ARG on"
expect_ok cimg run --rm app:4
assert_eq "$OUT" "other world other" "the build arg reached the RUN"

section "multi-stage"
ms="$TEST_TMP/ms"
mkdir -p "$ms"
cat >"$ms/Dockerfile" <<'DF'
FROM busybox AS build
RUN mkdir /out && echo built > /out/result
FROM busybox AS unused
RUN exit 7
FROM busybox
COPY --from=build /out/result /result
CMD ["cat", "/result"]
DF
must cimg build -t ms:final --build-arg UNUSED=1 "$ms"
assert_contains "$OUT" "[Warning] One or more build-args [UNUSED] were not consumed" \
  "an unused --build-arg is reported"
assert_not_contains "$OUT" "exit 7" "a stage the target does not need is skipped"
expect_ok cimg run --rm ms:final
assert_eq "$OUT" "built" "COPY --from=build"
must cimg build --target build -t ms:build "$ms"
expect_ok cimg run --rm ms:build cat /out/result
assert_eq "$OUT" "built" "--target build"
run cimg run --rm ms:build cat /result
assert_ne "$RC" 0 "the build stage has no /result"
expect_fail "$CIMG_ERR_CODE" cimg build --target nosuch "$ms"
assert_contains "$ERR" 'target stage "nosuch" could not be found' "an unknown target is refused"

section "WORKDIR"
wdc="$TEST_TMP/wd"
mkdir -p "$wdc"
printf 'FROM busybox\nWORKDIR /w1\nWORKDIR sub/dir\nWORKDIR /tmp\n' >"$wdc/Dockerfile"
must cimg build -t wd:1 "$wdc"
assert_eq "$(cimg inspect wd:1 | jq -r '.[0].Config.WorkingDir')" "/tmp" "WORKDIR /tmp"
assert_eq "$(cimg inspect wd:1 | jq '.[0].RootFS.Layers | length')" "$((base_layers + 2))" \
  "WORKDIR adds a layer only for a directory the image lacks"
must cimg save -o "$TEST_TMP/wd.tar" wd:1
_quietly umoci-wd-oci skopeo copy --quiet "docker-archive:$TEST_TMP/wd.tar" "oci:$TEST_TMP/wd-oci:wd"
_quietly umoci-wd umoci unpack --image "$TEST_TMP/wd-oci:wd" "$TEST_TMP/wd-bundle"
assert_eq "$(stat -c '%a' "$TEST_TMP/wd-bundle/rootfs/w1/sub/dir")" "755" \
  "relative WORKDIR continues the previous one and is created"
assert_eq "$(stat -c '%a' "$TEST_TMP/wd-bundle/rootfs/tmp")" "1777" "an existing directory keeps its mode"

section "RUN heredoc"
hd="$TEST_TMP/hd"
mkdir -p "$hd"
cat >"$hd/Dockerfile" <<'DF'
FROM busybox
RUN <<EOF
echo first > /hd
echo second >> /hd
EOF
DF
must cimg build -t hd:1 "$hd"
expect_ok cimg run --rm hd:1 cat /hd
assert_eq "$OUT" "first
second" "RUN <<EOF runs the body as a script"
cat >"$hd/Dockerfile" <<'DF'
FROM busybox
COPY <<EOF /etc/greeting
hello from a heredoc
EOF
DF
must cimg build -t hd:2 "$hd"
expect_ok cimg run --rm hd:2 sh -c 'cat /etc/greeting; stat -c %a /etc/greeting /etc'
assert_eq "$OUT" "hello from a heredoc
644
755" "COPY <<EOF writes the body as a file; /etc keeps its mode"

section "FROM an image that is not in the store: pulled"
start_registry
# An image of its own (another config), not one the store already has from load.
make_fixture_oci "$TEST_TMP/oci-pl" pl
_quietly umoci-config-pl umoci config --image "$TEST_TMP/oci-pl:pl" --config.label=pulled=yes
push_fixture "oci:$TEST_TMP/oci-pl:pl" bb:1
pl="$TEST_TMP/pl"
mkdir -p "$pl"
printf 'FROM %s/bb:1\nRUN echo pulled > /p\n' "$REGISTRY" >"$pl/Dockerfile"
must cimg build -t pl:1 "$pl"
assert_contains "$OUT" "Pulling $REGISTRY/bb:1" "the missing base is pulled"
expect_ok cimg run --rm pl:1 cat /p
assert_eq "$OUT" "pulled" "and built upon"
must cimg build -t pl:1 "$pl"
assert_not_contains "$OUT" "Pulling" "a base in the store is not pulled again"
must cimg build --pull -t pl:1 "$pl"
assert_contains "$OUT" "Pulling $REGISTRY/bb:1" "--pull pulls it anyway"
assert_contains "$OUT" "CACHED" "and the cache still hits (same image)"

section "a RUN's cgroup is gone after the build"
cgc="$TEST_TMP/cgc"
mkdir -p "$cgc"
printf 'FROM busybox\nRUN cat /proc/self/cgroup > /cg\n' >"$cgc/Dockerfile"
must cimg build -t cg:1 "$cgc"
expect_ok cimg run --rm cg:1 cat /cg
cgid=$(grep -oE 'cimg/[0-9a-f]{64}' <<<"$OUT" | head -n 1 | cut -d/ -f2)
assert_match "$cgid" '^[0-9a-f]{64}$' "the RUN ran in a cgroup cimg/<id>"
assert_eq "$(find /sys/fs/cgroup -maxdepth 4 -type d -path "*/cimg/$cgid" 2>/dev/null)" "" \
  "which no longer exists"

section "errors"
bad="$TEST_TMP/bad"
mkdir -p "$bad"
printf 'FROM busybox\nRUN echo before > /before\nRUN echo failing; exit 3\nRUN echo never\n' >"$bad/Dockerfile"
expect_fail 3 cimg build -t bad:1 "$bad"
assert_contains "$ERR" "Dockerfile:3: RUN" "a failing RUN names its line"
assert_contains "$ERR" "exit code 3" "and its exit code"
assert_contains "$OUT" "failing" "RUN's output is streamed"
assert_contains "$ERR" " > failing" "the error shows the RUN's last output"
assert_eq "$(image_id bad:1)" "" "nothing is tagged"
assert_eq "$(build_leftovers)" "" "no mount, no temp dir left by the failed build"
assert_store_clean
printf 'FROM busybox\nFOO bar\n' >"$bad/Dockerfile"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 "$bad"
assert_contains "$ERR" "Dockerfile:2: unknown instruction: FOO" "unknown instruction: file:line"
printf 'FROM busybox\nCOPY nope.txt /x\n' >"$bad/Dockerfile"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 "$bad"
assert_contains "$ERR" "Dockerfile:2: COPY nope.txt: no such file or directory" "COPY of a missing source: file:line"
printf 'FROM busybox\nCOPY ../etc/passwd /x\n' >"$bad/Dockerfile"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 "$bad"
assert_contains "$ERR" "Dockerfile:2: COPY" "COPY from outside the context is refused"
ln -s /etc/passwd "$bad/link"
printf 'FROM busybox\nCOPY link /x\n' >"$bad/Dockerfile"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 "$bad"
assert_contains "$ERR" "Dockerfile:2: COPY link" "a symlink leading out of the context is not followed out"
# (a registry that refuses connections: the pull fails without leaving the machine)
printf 'FROM 127.0.0.1:1/nosuch:1\n' >"$bad/Dockerfile"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 "$bad"
assert_contains "$ERR" "Dockerfile:1: FROM 127.0.0.1:1/nosuch:1" "FROM of a missing image: file:line"
assert_eq "$(image_id bad:1)" "" "no failed build tagged anything"
# A name that cannot be a tag is refused before the first step runs, not after the build.
printf 'FROM busybox\nRUN echo step-ran\n' >"$bad/Dockerfile"
expect_fail "$CIMG_ERR_CODE" cimg build -t "bad@sha256:$(printf '%064d' 0)" "$bad"
assert_contains "$ERR" "--tag: refusing to create a tag with a digest reference" \
  "build -t of a digest reference says a tag cannot be one"
assert_not_contains "$OUT$ERR" "step-ran" "and refuses it before any step runs"
expect_fail "$CIMG_ERR_CODE" cimg build -t Bad:1 "$bad"
assert_contains "$ERR" '--tag: invalid reference "Bad:1": repository name must be lowercase' \
  "build -t of an upper-case name names the flag, the name and the rule"

section "gc keeps what the cache needs, and the cache survives gc"
must cimg rmi app:2 app:3 app:4
must cimg system prune -f
must cimg build -t app:1 --build-arg GREETING=hi "$ctx"
# Only ENV (no layer) hits: the --no-cache build of app:3 re-recorded WORKDIR and RUN with its
# own layers, which gc removed with app:3, so those records are misses, never trusted.
assert_eq "$(count_lines "$OUT" "CACHED")" 1 "after gc: a record whose layers are gone is a miss"
expect_ok cimg run --rm app:1 'cat /files/a.txt'
assert_eq "$OUT" "HELLO" "a rebuild after gc has the right content"
assert_store_clean
