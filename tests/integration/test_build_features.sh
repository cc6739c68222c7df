#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# shellcheck disable=SC2119 # helpers with an optional argument are called without it
# cimg build, the BuildKit-era features: ADD of http(s) URLs (from a python3 http.server on
# 127.0.0.1 that this test starts), ONBUILD triggers, COPY --link/--parents/--exclude, the
# platform ARGs and --platform, heredoc bodies (COPY expansion, RUN scripts). Every build is
# FROM the busybox fixture of lib-build.sh; results are checked by running them.

# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-build.sh"

# The downloads go to 127.0.0.1 directly, whatever proxy the caller's environment names.
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
export no_proxy='*'

section "fixtures"
load_build_fixture

# ---------------------------------------------------------------------------------------------
section "ADD <url>"
www="$TEST_TMP/www"
mkdir -p "$www/dir"
printf 'first body\n' >"$www/file.txt"
touch -d '2001-02-03 04:05:06 UTC' "$www/file.txt"
printf 'archive? no\n' >"$www/dir/data.bin"
tar -C "$www" -czf "$www/pkg.tar.gz" dir
http_port=$(_free_port)
python3 -m http.server --bind 127.0.0.1 --directory "$www" "$http_port" >"$TEST_TMP/http.log" 2>&1 &
http_pid=$!
_CIMG_TEST_PIDS+=("$http_pid")
for _ in $(seq 1 100); do
  [ "$(http_status 127.0.0.1 "$http_port" /file.txt)" == 200 ] && break
  sleep 0.1
done
assert_eq "$(http_status 127.0.0.1 "$http_port" /file.txt)" 200 "the test's http.server answers"
url="http://127.0.0.1:$http_port"

ctx=$(new_ctx url)
cat >"$ctx/Dockerfile" <<DF
FROM busybox
ADD $url/pkg.tar.gz /dl/
ADD $url/file.txt /dl/
ADD $url/file.txt /named.txt
RUN echo after-add >/after
ADD --chmod=644 --chown=nobody $url/file.txt /perm.txt
DF
must cimg build -t url:1 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "first build: no cache"
expect_ok cimg run --rm url:1 sh -c 'cat /dl/file.txt /named.txt; stat -c "%a %u:%g %Y" /dl/file.txt /named.txt /perm.txt; test -f /dl/pkg.tar.gz && echo not-unpacked; test -e /dl/dir && echo unpacked || true'
assert_eq "$OUT" "first body
first body
600 0:0 981173106
600 0:0 981173106
644 65534:65534 981173106
not-unpacked" "fetched as files: mode 600 (or --chmod, --chown), mtime from Last-Modified, name from the URL or the dest, archives not unpacked"

must cimg build -t url:1 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 5 "same bodies: every step is a cache hit (the URLs are fetched again)"
id1=$(image_id url:1)

# Same size, same Last-Modified, other bytes: must be a miss.
printf 'other body\n' >"$www/file.txt"
touch -d '2001-02-03 04:05:06 UTC' "$www/file.txt"
must cimg build -t url:2 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 1 "a changed body (same size and mtime) misses the steps that add it and those after, not the one before"
expect_ok cimg run --rm url:2 cat /dl/file.txt /named.txt /after
assert_eq "$OUT" "other body
other body
after-add" "the new body is in the image"
assert_ne "$(image_id url:2)" "$id1" "a new image"

section "ADD --checksum"
sum=$(sha256sum "$www/file.txt" | cut -d' ' -f1)
ctx=$(new_ctx sum)
cat >"$ctx/Dockerfile" <<DF
FROM busybox
ADD --checksum=sha256:$sum $url/file.txt /checked
DF
must cimg build -t sum:1 "$ctx"
expect_ok cimg run --rm sum:1 cat /checked
assert_eq "$OUT" "other body" "a matching checksum passes"
bad="0000000000000000000000000000000000000000000000000000000000000000"
cat >"$ctx/Dockerfile" <<DF
FROM busybox
RUN true
ADD --checksum=sha256:$bad $url/file.txt /checked
DF
expect_fail "$CIMG_ERR_CODE" cimg build -t sum:bad "$ctx"
assert_contains "$ERR" "Dockerfile:3: ADD $url/file.txt: checksum mismatch" "a bad checksum names file:line"
assert_eq "$(image_id sum:bad)" "" "nothing tagged after a bad checksum"
cat >"$ctx/Dockerfile" <<DF
FROM busybox
ADD $url/missing.txt /x
DF
expect_fail "$CIMG_ERR_CODE" cimg build -t sum:bad "$ctx"
assert_contains "$ERR" "Dockerfile:2: ADD: $url/missing.txt: HTTP status 404" "a 404 names the URL and the line"
cat >"$ctx/Dockerfile" <<DF
FROM busybox
ADD $url /listing/
ADD $url/dir/data.bin?x=1#frag /q/
DF
must cimg build -t sum:2 "$ctx"
expect_ok cimg run --rm sum:2 sh -c 'ls /listing; ls /q; grep -c "file.txt" /listing/__unnamed__'
assert_eq "$OUT" "__unnamed__
data.bin
1" "a URL without a path is __unnamed__ (as BuildKit); query and fragment are not in the name"
printf 'local\n' >"$ctx/local.txt"
cat >"$ctx/Dockerfile" <<DF
FROM busybox
ADD --checksum=sha256:$sum local.txt /x
DF
expect_fail "$CIMG_ERR_CODE" cimg build -t sum:bad "$ctx"
assert_contains "$ERR" "Dockerfile:2: checksum can't be specified for non-HTTP sources" "--checksum of a local file"
cat >"$ctx/Dockerfile" <<DF
FROM busybox
COPY $url/file.txt /x
DF
expect_fail "$CIMG_ERR_CODE" cimg build -t sum:bad "$ctx"
assert_contains "$ERR" "Dockerfile:2: COPY: source can't be a URL" "COPY refuses a URL"
assert_eq "$(image_id sum:bad)" "" "nothing tagged"

# ---------------------------------------------------------------------------------------------
section "ONBUILD"
ctx=$(new_ctx onbase)
printf 'from the child context\n' >"$ctx/child.txt"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
ONBUILD RUN echo trigger-ran >/trigger
ONBUILD COPY child.txt /copied-by-trigger
RUN test ! -e /trigger && echo base-build
DF
must cimg build -t onbase:1 "$ctx"
assert_contains "$OUT" "base-build" "the base's own build does not run its triggers"
expect_ok cimg run --rm onbase:1 sh -c 'test -e /trigger && echo ran || echo not-ran'
assert_eq "$OUT" "not-ran" "the base image holds no trigger result"
assert_eq "$(cimg inspect onbase:1 | jq -c '.[0].Config.OnBuild')" \
  '["RUN echo trigger-ran >/trigger","COPY child.txt /copied-by-trigger"]' "OnBuild kept in the config"

cat >"$ctx/Dockerfile.child" <<'DF'
FROM onbase:1
RUN cat /trigger /copied-by-trigger
DF
must cimg build -t onchild:1 -f "$ctx/Dockerfile.child" "$ctx"
assert_contains "$OUT" "Executing 2 build triggers" "the child build runs 2 triggers"
assert_contains "$OUT" "trigger-ran" "the RUN trigger ran before the child's RUN"
assert_contains "$OUT" "from the child context" "the COPY trigger read the child's context"
assert_eq "$(cimg inspect onchild:1 | jq -c '.[0].Config.OnBuild')" "null" "triggers are not inherited"

cat >"$ctx/Dockerfile.grandchild" <<'DF'
FROM onchild:1
RUN test -e /trigger && echo inherited-file
DF
must cimg build -t ongrand:1 -f "$ctx/Dockerfile.grandchild" "$ctx"
assert_not_contains "$OUT" "Executing" "a grandchild runs no trigger"

cat >"$ctx/Dockerfile.badbase" <<'DF'
FROM busybox
ONBUILD RUN exit 7
DF
must cimg build -t onbad:1 -f "$ctx/Dockerfile.badbase" "$ctx"
cat >"$ctx/Dockerfile.badchild" <<'DF'
FROM onbad:1
RUN true
DF
expect_fail 7 cimg build -t onbadchild:1 -f "$ctx/Dockerfile.badchild" "$ctx"
assert_contains "$ERR" "Dockerfile.badchild:1: ONBUILD trigger:1: RUN /bin/sh -c exit 7: exit code 7" \
  "a failing trigger names the FROM line and the trigger"
assert_eq "$(image_id onbadchild:1)" "" "nothing tagged"

# ---------------------------------------------------------------------------------------------
section "COPY --link, --parents, --exclude"
ctx=$(new_ctx copy)
mkdir -p "$ctx/x/sub" "$ctx/y" "$ctx/src/keep" "$ctx/src/skip"
printf 'xa\n' >"$ctx/x/a.txt"
printf 'xs\n' >"$ctx/x/sub/s.txt"
printf 'ya\n' >"$ctx/y/a.txt"
printf 'k\n' >"$ctx/src/keep/k.txt"
printf 's\n' >"$ctx/src/skip/s.txt"
printf 'log\n' >"$ctx/src/debug.log"
printf 'top\n' >"$ctx/src/top.txt"
printf 'h1\n' >"$ctx/home.txt"
printf 'h2\n' >"$ctx/homer.md"
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
COPY --link x/a.txt /linked/
COPY --parents x/a.txt y/a.txt x/sub /parents/
COPY --parents ./x/./sub/s.txt /pivot/
COPY --exclude=*.log --exclude=skip src /excluded/
ADD --exclude=*.txt hom* /hom/
DF
must cimg build -t copy:1 "$ctx"
expect_ok cimg run --rm copy:1 sh -c 'cd /; find linked parents pivot excluded hom -type f | sort'
assert_eq "$OUT" "excluded/keep/k.txt
excluded/top.txt
hom/homer.md
linked/a.txt
parents/x/a.txt
parents/x/sub/s.txt
parents/y/a.txt
pivot/sub/s.txt" "--link copies as COPY; --parents keeps paths (and the /./ pivot); --exclude drops matches"
# --link is accepted and gives the same layer as without it.
cat >"$ctx/Dockerfile.nolink" <<'DF'
FROM busybox
COPY x/a.txt /linked/
DF
cat >"$ctx/Dockerfile.link" <<'DF'
FROM busybox
COPY --link x/a.txt /linked/
DF
must cimg build -t link:1 -f "$ctx/Dockerfile.link" "$ctx"
must cimg build -t link:0 -f "$ctx/Dockerfile.nolink" "$ctx"
assert_eq "$(cimg inspect link:1 | jq -c '.[0].RootFS.Layers[-1]')" \
  "$(cimg inspect link:0 | jq -c '.[0].RootFS.Layers[-1]')" "COPY --link makes the same layer"
# An excluded file changing does not invalidate; a kept one does.
must cimg build -t copy:2 "$ctx"
n1=$(count_lines "$OUT" "CACHED")
printf 'more log\n' >"$ctx/src/debug.log"
must cimg build -t copy:2 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" "$n1" "a change to an excluded file is still a hit"
printf 'top2\n' >"$ctx/src/top.txt"
must cimg build -t copy:2 "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 3 "a change to a copied file misses that step and those after"

# ---------------------------------------------------------------------------------------------
section "platform ARGs"
arch=$(host_arch)
ctx=$(new_ctx plat)
cat >"$ctx/Dockerfile" <<'DF'
ARG BASE=busybox
FROM --platform=$BUILDPLATFORM $BASE AS build
ARG TARGETPLATFORM
ARG TARGETOS
ARG TARGETARCH
ARG TARGETVARIANT
ARG BUILDPLATFORM
ARG BUILDARCH
RUN echo "t=$TARGETPLATFORM os=$TARGETOS a=$TARGETARCH v=$TARGETVARIANT b=$BUILDPLATFORM ba=$BUILDARCH" >/plat
RUN echo "undeclared=[$BUILDOS]" >>/plat
FROM --platform=$BUILDPLATFORM $BASE
COPY --from=build /plat /plat
DF
must cimg build -t plat:1 "$ctx"
expect_ok cimg run --rm plat:1 cat /plat
assert_eq "$OUT" "t=linux/$arch os=linux a=$arch v= b=linux/$arch ba=$arch
undeclared=[]" "platform ARGs: the host's by default, only after ARG in a stage"
must cimg build -t plat:2 --platform linux/arm/v7 "$ctx"
expect_ok cimg run --rm plat:2 cat /plat
assert_eq "$OUT" "t=linux/arm/v7 os=linux a=arm v=v7 b=linux/$arch ba=$arch
undeclared=[]" "--platform sets TARGET*, FROM --platform=\$BUILDPLATFORM keeps the build's"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "another target platform: no cached RUN reused"
expect_ok cimg build --dry-run --platform linux/arm64 "$ctx"
assert_contains "$OUT" "FROM --platform=\$BUILDPLATFORM busybox AS build" "the plan shows FROM"
cat >"$ctx/Dockerfile.mismatch" <<'DF'
FROM busybox
RUN true
DF
expect_fail "$CIMG_ERR_CODE" cimg build -t plat:bad --platform linux/s390x -f "$ctx/Dockerfile.mismatch" "$ctx"
assert_contains "$ERR" "Dockerfile.mismatch:1: FROM busybox: the image's platform (linux/$arch) does not match the specified platform (linux/s390x)" \
  "a base of another platform is refused"
expect_fail "$CIMG_USAGE_CODE" cimg build --platform 'linux/' "$ctx"
printf 'FROM scratch\nCOPY Dockerfile /\n' >"$ctx/Dockerfile.scratch"
must cimg build -t plat:scratch --platform linux/arm64 -f "$ctx/Dockerfile.scratch" "$ctx"
assert_eq "$(cimg inspect plat:scratch | jq -r '.[0].Os + "/" + .[0].Architecture')" "linux/arm64" \
  "FROM scratch takes the target platform"

# ---------------------------------------------------------------------------------------------
section "heredocs"
ctx=$(new_ctx here)
cat >"$ctx/Dockerfile" <<'DF'
FROM busybox
ARG NAME=world
ENV GREETING=hello
COPY <<EOF /expanded
$GREETING "${NAME}" 'x' \$GREETING
EOF
COPY <<"EOF" /quoted
$GREETING "${NAME}"
EOF
COPY <<'EOF' /single
$GREETING
EOF
RUN <<EOF
echo "script $GREETING" >/run1
EOF
RUN cat <<EOT >/run2
in shell heredoc: $GREETING
EOT
RUN <<EOF
#!/bin/sh
echo "shebang $0" >/run3
EOF
RUN cat /proc/self/fd/5 5<<FIVE >/run4
fd five
FIVE
COPY ctxfile <<EOF /mixed/
from a heredoc
EOF
DF
printf 'from the context\n' >"$ctx/ctxfile"
must cimg build -t here:1 --build-arg NAME=you "$ctx"
expect_ok cimg run --rm here:1 cat /expanded /quoted /single /run1 /run2 /run3 /run4 /mixed/ctxfile /mixed/EOF
assert_eq "$OUT" 'hello "you" '"'x'"' $GREETING
$GREETING "${NAME}"
$GREETING
script hello
in shell heredoc: hello
shebang /dev/pipes/EOF
fd five
from the context
from a heredoc' "COPY heredocs expand unless the delimiter is quoted (also beside context sources); RUN heredocs go to the shell"
expect_ok cimg run --rm here:1 sh -c 'test -e /dev/pipes && echo pipes-left; ls -d /dev/pipes 2>/dev/null; echo done'
assert_eq "$OUT" "done" "the script's mount point is not in the image"
must cimg build -t here:2 --build-arg NAME=other "$ctx"
expect_ok cimg run --rm here:2 cat /expanded
assert_eq "$OUT" 'hello "other" '"'x'"' $GREETING' "a changed ARG changes the expanded body (no stale cache)"

assert_eq "$(build_leftovers)" "" "no mount, no temp dir left by the builds"
assert_store_clean
