#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# shellcheck disable=SC2119 # helpers with an optional argument are called without it
# cimg build, RUN's flags: --network, --security=insecure (and --allow), --mount of type cache,
# bind, tmpfs and secret (with cimg build --secret). What is mounted must never reach a layer,
# nor a secret the cache's records; the cache must miss when a bound source or a secret changes,
# and hit when only a cache mount's content did. All builds are FROM the busybox fixture.

# shellcheck source-path=SCRIPTDIR source=lib-build.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-build.sh"

section "fixtures"
load_build_fixture

# image_paths NAME: every path in every layer of NAME (from a cimg save), sorted.
image_paths() {
  local d="$TEST_TMP/save-$RANDOM" f
  mkdir -p "$d/x"
  cimg save -o "$d/img.tar" "$1" || return 1
  tar -C "$d/x" -xf "$d/img.tar"
  find "$d/x" -type f | while read -r f; do
    tar -tf "$f" 2>/dev/null || true
  done | sed 's|^\./||' | LC_ALL=C sort -u
  rm -rf "$d"
}

# image_bytes_contain NAME TEXT: "yes" when TEXT occurs in any byte of the saved image.
image_bytes_contain() {
  local d="$TEST_TMP/save-$RANDOM" f found=no
  mkdir -p "$d/x"
  cimg save -o "$d/img.tar" "$1" || return 1
  tar -C "$d/x" -xf "$d/img.tar"
  while read -r f; do
    if grep -qaF -- "$2" "$f" || { tar -xOf "$f" 2>/dev/null | grep -qaF -- "$2"; }; then
      found=yes
    fi
  done < <(find "$d/x" -type f)
  rm -rf "$d"
  echo "$found"
}

ctx="$TEST_TMP/ctx"
mkdir -p "$ctx/data/sub"
printf 'bound\n' >"$ctx/data/f"
printf 'deep\n' >"$ctx/data/sub/g"
printf 's3cr3t-value-4711\n' >"$TEST_TMP/token"

# ---------------------------------------------------------------------------------------------
section "RUN --network"
cat >"$ctx/Dockerfile.net" <<'DF'
FROM busybox
RUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' >/net-none
RUN --network=host readlink /proc/self/ns/net >/net-host
RUN --network=default readlink /proc/self/ns/net >/net-default
DF
must cimg build -t net:1 -f "$ctx/Dockerfile.net" "$ctx"
expect_ok cimg run --rm net:1 cat /net-none /net-host /net-default
host_ns=$(readlink /proc/self/ns/net)
assert_eq "$OUT" "lo
$host_ns
$host_ns" "--network=none: a namespace with only lo; host and default (the build's): the host's namespace"
must cimg build -t net:2 --network none -f "$ctx/Dockerfile.net" "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 2 "the network mode is in the key: only the default-network RUN misses"
expect_ok cimg run --rm net:2 cat /net-default
assert_ne "$OUT" "$host_ns" "--network=default follows cimg build --network none"
printf 'FROM busybox\nRUN --network=bridge true\n' >"$ctx/Dockerfile.badnet"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 -f "$ctx/Dockerfile.badnet" "$ctx"
assert_contains "$ERR" "Dockerfile.badnet:2: RUN --network=bridge: unsupported network mode" "a bad network mode names file:line"

# ---------------------------------------------------------------------------------------------
section "RUN --security=insecure"
cat >"$ctx/Dockerfile.sec" <<'DF'
FROM busybox
RUN grep CapEff /proc/self/status >/caps-default
RUN --security=insecure grep CapEff /proc/self/status >/caps-insecure
DF
expect_fail "$CIMG_ERR_CODE" cimg build -t sec:1 -f "$ctx/Dockerfile.sec" "$ctx"
assert_contains "$ERR" "Dockerfile.sec:3: RUN --security=insecure is not allowed" "refused without --allow security.insecure"
assert_eq "$(image_id sec:1)" "" "nothing tagged"
must cimg build -t sec:1 --allow security.insecure -f "$ctx/Dockerfile.sec" "$ctx"
expect_ok cimg run --rm sec:1 cat /caps-default /caps-insecure
def=$(sed -n 1p <<<"$OUT")
ins=$(sed -n 2p <<<"$OUT")
assert_ne "$ins" "$def" "the insecure RUN has more capabilities than the default one"
expect_fail "$CIMG_USAGE_CODE" cimg build --allow bogus.entitlement "$ctx"

# ---------------------------------------------------------------------------------------------
section "RUN --mount=type=cache"
cat >"$ctx/Dockerfile.cache" <<'DF'
FROM busybox
RUN --mount=type=cache,target=/var/cache/thing echo run >>/var/cache/thing/log && wc -l </var/cache/thing/log >/count
RUN --mount=type=cache,id=shared,target=/a echo via-a >/a/f
RUN --mount=type=cache,id=shared,target=/b,sharing=locked cat /b/f >/via-b
RUN --mount=type=cache,target=/tmp/ro,ro test ! -w /tmp/ro/. || touch /tmp/ro/x 2>/dev/null || echo ro-ok >/ro
DF
must cimg build -t cache:1 -f "$ctx/Dockerfile.cache" "$ctx"
expect_ok cimg run --rm cache:1 cat /count /via-b /ro
assert_eq "$OUT" "1
via-a
ro-ok" "a cache mount is shared by id across targets; ro is read-only"
expect_ok cimg run --rm cache:1 sh -c 'ls -A /var/cache/thing /a /b 2>&1; echo end'
assert_eq "$OUT" "ls: /var/cache/thing: No such file or directory
ls: /a: No such file or directory
ls: /b: No such file or directory
end" "no mount point or cache content in the image"
# Change what the cache holds: the step must still hit (the cache is not part of the key).
cdir=$(find "$CIMG_ROOT/build-cache-mounts" -mindepth 1 -maxdepth 1 -type d | head -n 1)
assert_ne "$cdir" "" "cache mounts persist under the store root"
for d in "$CIMG_ROOT"/build-cache-mounts/*/; do
  printf 'from outside\n' >>"$d/log"
done
must cimg build -t cache:2 -f "$ctx/Dockerfile.cache" "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 4 "a changed cache mount does not invalidate"
must cimg build --no-cache -t cache:3 -f "$ctx/Dockerfile.cache" "$ctx"
expect_ok cimg run --rm cache:3 cat /count
assert_eq "$OUT" "3" "the cache mount kept its content across builds"

# ---------------------------------------------------------------------------------------------
section "RUN --mount=type=bind, tmpfs"
printf 'data/ignored.txt\n' >"$ctx/.dockerignore"
printf 'not sent\n' >"$ctx/data/ignored.txt"
cat >"$ctx/Dockerfile.bind" <<'DF'
FROM busybox AS build
RUN mkdir /out && echo from-stage >/out/s
FROM busybox
RUN --mount=type=bind,source=data,target=/data cat /data/f /data/sub/g >/bound && ls /data >/bound-ls
RUN --mount=type=bind,source=data,target=/data touch /data/new 2>/dev/null || echo ro-ok >/bind-ro
RUN --mount=type=bind,source=data,target=/data,rw touch /data/new && ls /data >/bind-rw
RUN --mount=type=bind,from=build,source=/out,target=/mnt/out cat /mnt/out/s >/from-stage
RUN --mount=type=bind,source=data/f,target=/etc/single cat /etc/single >/single
RUN --mount=type=bind,from=busybox,source=/etc,target=/img-etc head -n 1 /img-etc/passwd | cut -d: -f1 >/from-image
RUN --mount=type=tmpfs,target=/scratch,size=1m echo x >/scratch/f && grep " /scratch " /proc/mounts | cut -d' ' -f3 >/tmpfs
DF
must cimg build -t bind:1 -f "$ctx/Dockerfile.bind" "$ctx"
expect_ok cimg run --rm bind:1 cat /bound /bound-ls /bind-ro /bind-rw /from-stage /single /tmpfs /from-image
assert_eq "$OUT" "bound
deep
f
sub
ro-ok
f
new
sub
from-stage
bound
tmpfs
root" "bind from the context (.dockerignore applied, read-only unless rw), from a stage, an image, a file; tmpfs"
assert_eq "$(ls "$ctx/data")" "f
ignored.txt
sub" "rw writes never reach the context"
paths=$(image_paths bind:1)
assert_not_contains "$paths" "data/" "no bound path in any layer"
assert_not_contains "$paths" "scratch" "no tmpfs path in any layer"
assert_not_contains "$paths" "mnt/" "no from-stage mount point in any layer"
assert_not_contains "$paths" "etc/single" "no file mount point in any layer"
assert_not_contains "$paths" "img-etc" "no from-image mount point in any layer"
must cimg build -t bind:2 -f "$ctx/Dockerfile.bind" "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 8 "unchanged sources: all hits"
printf 'changed\n' >"$ctx/data/sub/g"
must cimg build -t bind:3 -f "$ctx/Dockerfile.bind" "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 1 "a changed bound file misses the RUN that binds it and those after"
expect_ok cimg run --rm bind:3 cat /bound
assert_eq "$OUT" "bound
changed" "the RUN saw the new content"
printf 'ignored changes\n' >"$ctx/data/ignored.txt"
must cimg build -t bind:3 -f "$ctx/Dockerfile.bind" "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 8 "a change to an ignored file is still a hit"

# ---------------------------------------------------------------------------------------------
section "RUN --mount=type=secret"
# The Dockerfile never names the secret's value: the RUNs keep its digest, compared below.
cat >"$ctx/Dockerfile.secret" <<'DF'
FROM busybox
RUN --mount=type=secret,id=tok sha256sum /run/secrets/tok | cut -c1-64 >/secret-sum && stat -c "%a %u" /run/secrets/tok >/secret-ok
RUN --mount=type=secret,id=tok,target=/etc/tok,mode=0440,uid=65534 stat -c "%a %u" /etc/tok >/secret-target
RUN --mount=type=secret,id=tok,env=TOK printf %s "$TOK" | sha256sum | cut -c1-64 >/secret-env
RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent && echo absent-ok >/secret-absent
DF
must cimg build -t secret:1 --secret "id=tok,src=$TEST_TMP/token" -f "$ctx/Dockerfile.secret" "$ctx"
expect_ok cimg run --rm secret:1 cat /secret-sum /secret-ok /secret-target /secret-env /secret-absent
sum=$(sha256_of "$TEST_TMP/token")
assert_eq "$OUT" "$sum
400 0
440 65534
$sum
absent-ok" "a secret is readable in RUN (file, target, mode, uid, env); an absent one is not mounted"
assert_eq "$(image_bytes_contain secret:1 s3cr3t-value-4711)" "no" "the secret is in no byte of the saved image"
assert_not_contains "$(image_paths secret:1)" "run/secrets" "no secret mount point in any layer"
assert_not_contains "$(image_paths secret:1)" "etc/tok" "no secret target in any layer"
if grep -rqaF s3cr3t-value-4711 "$CIMG_ROOT"; then
  fail "the secret is somewhere in the store"
else
  pass "the secret is nowhere in the store (cache records included)"
fi
must cimg build -t secret:2 --secret "id=tok,src=$TEST_TMP/token" -f "$ctx/Dockerfile.secret" "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 4 "same secret: hits"
printf 'FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok >/dev/null && echo ok >/o\n' >"$ctx/Dockerfile.s2"
must cimg build -t secret:4 --secret "id=tok,src=$TEST_TMP/token" -f "$ctx/Dockerfile.s2" "$ctx"
printf 'third-value\n' >"$TEST_TMP/token"
must cimg build -t secret:5 --secret "id=tok,src=$TEST_TMP/token" -f "$ctx/Dockerfile.s2" "$ctx"
assert_eq "$(count_lines "$OUT" "CACHED")" 0 "a changed secret is a miss (keyed by a salted digest, never its text)"

section "bad input"
printf 'FROM busybox\nRUN --mount=type=secret,id=nope,required=true true\n' >"$ctx/Dockerfile.req"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 -f "$ctx/Dockerfile.req" "$ctx"
assert_contains "$ERR" "Dockerfile.req:2: RUN --mount=type=secret,id=nope,required=true: secret nope not found" \
  "a missing required secret names file:line"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 --secret "id=tok,src=$TEST_TMP/no-such-file" -f "$ctx/Dockerfile.s2" "$ctx"
assert_contains "$ERR" "--secret id=tok" "a --secret whose file is missing is an error"
printf 'FROM busybox\nRUN true\nRUN --mount=type=foo,target=/x true\n' >"$ctx/Dockerfile.type"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 -f "$ctx/Dockerfile.type" "$ctx"
assert_contains "$ERR" "Dockerfile.type:3: RUN --mount=type=foo,target=/x: unsupported mount type \"foo\"" \
  "an unknown mount type names file:line"
printf 'FROM busybox\nRUN --mount=type=cache true\n' >"$ctx/Dockerfile.notarget"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 -f "$ctx/Dockerfile.notarget" "$ctx"
assert_contains "$ERR" "Dockerfile.notarget:2: RUN --mount=type=cache: mount type=cache requires a target" \
  "a mount without target names file:line"
printf 'FROM busybox\nRUN --mount=type=bind,source=nosuch,target=/x true\n' >"$ctx/Dockerfile.nosrc"
expect_fail "$CIMG_ERR_CODE" cimg build -t bad:1 -f "$ctx/Dockerfile.nosrc" "$ctx"
assert_contains "$ERR" "Dockerfile.nosrc:2: RUN --mount source nosuch" "a missing bind source names file:line"
assert_eq "$(image_id bad:1)" "" "nothing tagged after bad input"

assert_eq "$(build_leftovers)" "" "no mount, no temp dir left by the builds"
assert_store_clean
