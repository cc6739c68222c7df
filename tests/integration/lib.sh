# shellcheck shell=bash
# Harness for the integration tests: sourced by every tests/integration/test_*.sh.
#
# CTest runs each test as `bash FILE` with CIMG=<built binary> and CIMG_SRC=<source dir>.
# A test gets a private temp dir ($TEST_TMP, also its cwd) with an empty store root
# ($CIMG_ROOT) inside, and `cimg ARGS…` runs the binary on that root. On exit, whatever
# happened, the harness kills the processes it started (by PID), unmounts everything mounted
# under $TEST_TMP (deepest first), removes $TEST_TMP and prints "N passed, M failed".
# Set CIMG_TEST_KEEP=1 to keep $TEST_TMP for a post-mortem.
#
# Fixtures are made by peers (busybox-static, umoci, skopeo, docker-registry), never by cimg,
# and cached under $TEST_TMP/cache only.

set -euo pipefail
set -E

if [ "$(id -u)" -ne 0 ]; then
  echo "$0: the integration tests need root (namespaces, mounts, chown)" >&2
  exit 1
fi

CIMG_SRC=${CIMG_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
if [ -z "${CIMG:-}" ]; then
  for _c in "$CIMG_SRC/_build/cimg" "$CIMG_SRC/build/cimg"; do
    if [ -x "$_c" ]; then
      CIMG=$_c
      break
    fi
  done
  unset _c
fi
if [ -z "${CIMG:-}" ] || [ ! -x "$CIMG" ]; then
  echo "$0: CIMG must name the built cimg binary (got '${CIMG:-}')" >&2
  exit 1
fi
CIMG=$(realpath "$CIMG")
export CIMG CIMG_SRC

# Exit codes the tests expect: CIMG_ERR_CODE for a command that fails (unknown image, bad
# reference, bad archive, …), CIMG_USAGE_CODE for a command cimg cannot even start (unknown
# flag or command). As Docker: 1 when a command fails, 125 when its flags are wrong.
CIMG_ERR_CODE=1
CIMG_USAGE_CODE=125

TESTS_PASSED=0
TESTS_FAILED=0
_CIMG_TEST_PIDS=()
_CIMG_TEST_LAST_ERR=""
_CIMG_TEST_DIED=0

TEST_TMP=$(realpath "$(mktemp -d /tmp/cimg-test.XXXXXXXX)")
export TEST_TMP
export CIMG_ROOT="$TEST_TMP/root"
export TMPDIR="$TEST_TMP/tmp"
mkdir -p "$TMPDIR" "$TEST_TMP/cache"
cd "$TEST_TMP"

# ---------------------------------------------------------------------------------------------
# Running cimg

cimg() {
  "$CIMG" --root "$CIMG_ROOT" "$@"
}

# cimg_in ROOT ARGS…: cimg on another store root.
cimg_in() {
  local root=$1
  shift
  "$CIMG" --root "$root" "$@"
}

# run CMD…: run CMD, never fail; sets OUT, ERR (stdout, stderr without the trailing newlines)
# and RC.
run() {
  local o="$TEST_TMP/.run.out" e="$TEST_TMP/.run.err"
  if "$@" >"$o" 2>"$e"; then RC=0; else RC=$?; fi
  OUT=$(cat "$o")
  ERR=$(cat "$e")
  rm -f "$o" "$e"
}

_describe() {
  local s
  printf -v s '%q ' "$@"
  printf '%s' "${s% }"
}

_show_output() {
  if [ -n "${OUT:-}" ]; then printf '  stdout: %s\n' "$(head -n 20 <<<"$OUT")"; fi
  if [ -n "${ERR:-}" ]; then printf '  stderr: %s\n' "$(head -n 40 <<<"$ERR")"; fi
}

# ---------------------------------------------------------------------------------------------
# Results

log() {
  printf '# %s\n' "$*"
}

section() {
  printf '\n## %s\n' "$*"
}

pass() {
  TESTS_PASSED=$((TESTS_PASSED + 1))
  printf 'ok - %s\n' "$*"
}

# fail MSG: count a failure and go on (use die to stop the test).
fail() {
  TESTS_FAILED=$((TESTS_FAILED + 1))
  printf 'FAIL - %s\n' "$*"
}

die() {
  fail "$*"
  _CIMG_TEST_DIED=1
  exit 1
}

# assert_eq ACTUAL EXPECTED MSG
assert_eq() {
  if [ "$1" == "$2" ]; then
    pass "$3"
  else
    fail "$3"
    printf '  expected: %s\n  got:      %s\n' "$2" "$1"
  fi
}

assert_ne() {
  if [ "$1" != "$2" ]; then pass "$3"; else fail "$3 (both are '$1')"; fi
}

# assert_contains HAYSTACK NEEDLE MSG
assert_contains() {
  if [[ "$1" == *"$2"* ]]; then
    pass "$3"
  else
    fail "$3"
    printf '  expected to contain: %s\n  in: %s\n' "$2" "$(head -n 30 <<<"$1")"
  fi
}

assert_not_contains() {
  if [[ "$1" != *"$2"* ]]; then
    pass "$3"
  else
    fail "$3"
    printf '  expected not to contain: %s\n  in: %s\n' "$2" "$(head -n 30 <<<"$1")"
  fi
}

# assert_match STRING ERE MSG
assert_match() {
  if [[ "$1" =~ $2 ]]; then
    pass "$3"
  else
    fail "$3"
    printf '  expected to match: %s\n  got: %s\n' "$2" "$(head -n 30 <<<"$1")"
  fi
}

# assert_lt A B MSG (integers)
assert_lt() {
  if [ "$1" -lt "$2" ]; then pass "$3"; else fail "$3 (expected $1 < $2)"; fi
}

# expect_ok CMD…: CMD exits 0 (OUT/ERR/RC as for run). Returns 0 either way.
expect_ok() {
  run "$@"
  if [ "$RC" -eq 0 ]; then
    pass "$(_describe "$@")"
  else
    fail "$(_describe "$@") exited $RC"
    _show_output
  fi
}

# must CMD…: like expect_ok, but a failure stops the test (for steps everything after needs).
must() {
  run "$@"
  if [ "$RC" -eq 0 ]; then
    pass "$(_describe "$@")"
  else
    _show_output
    die "$(_describe "$@") exited $RC"
  fi
}

# expect_fail CODE CMD…: CMD exits with CODE (OUT/ERR/RC as for run). For CIMG_ERR_CODE and
# CIMG_USAGE_CODE it also checks that stderr carries a "cimg: " message. Returns 0 either way.
expect_fail() {
  local code=$1
  shift
  run "$@"
  if [ "$RC" -eq "$code" ]; then
    pass "$(_describe "$@") exits $code"
  else
    fail "$(_describe "$@") exited $RC, expected $code"
    _show_output
  fi
  if [ "$code" -eq "$CIMG_ERR_CODE" ] || [ "$code" -eq "$CIMG_USAGE_CODE" ]; then
    if grep -q '^cimg: ' <<<"$ERR"; then
      pass "$(_describe "$@") prints 'cimg: <message>' on stderr"
    else
      fail "$(_describe "$@") prints no 'cimg: <message>' on stderr"
      _show_output
    fi
  fi
}

# assert_store_clean [ROOT]: `cimg system check` exits 0 and reports nothing.
assert_store_clean() {
  local root=${1:-$CIMG_ROOT}
  run cimg_in "$root" system check
  if [ "$RC" -eq 0 ] && { [ -z "$OUT" ] || [ "$OUT" == "store is consistent" ]; }; then
    pass "system check is clean ($root)"
  else
    fail "system check is not clean ($root): exit $RC"
    _show_output
  fi
  local debris
  debris=$(store_debris "$root")
  if [ -z "$debris" ]; then
    pass "no debris in $root"
  else
    fail "debris in $root: $debris"
  fi
}

# ---------------------------------------------------------------------------------------------
# Store introspection

# count_layer_dirs [ROOT]: complete layer directories (layers/<64 hex>) under ROOT.
count_layer_dirs() {
  local root=${1:-$CIMG_ROOT}
  if [ ! -d "$root/layers" ]; then
    echo 0
    return
  fi
  find "$root/layers" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9a-f]{64}' | wc -l
}

# store_debris [ROOT]: what an interrupted write leaves (ingest/*, tmp-* and *.tmp-* entries),
# at most 10 lines.
store_debris() {
  local root=${1:-$CIMG_ROOT}
  [ -d "$root" ] || return 0
  {
    if [ -d "$root/ingest" ]; then find "$root/ingest" -mindepth 1 -maxdepth 1; fi
    find "$root" -maxdepth 3 \( -name 'tmp-*' -o -name '*.tmp-*' -o -name '*.tmp' \)
  } 2>/dev/null | head -n 10
}

# rootfs_listing DIR: type, mode, path and link target of everything below DIR, sorted.
rootfs_listing() {
  (cd "$1" && find . -mindepth 1 -printf '%y %m %p -> %l\n' | LC_ALL=C sort)
}

# sha256_of FILE: the hex digest.
sha256_of() {
  sha256sum "$1" | cut -d' ' -f1
}

# host_arch: the image architecture name of this machine (amd64, arm64, …).
host_arch() {
  case "$(uname -m)" in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    i?86) echo 386 ;;
    armv7l | armv6l) echo arm ;;
    *) uname -m ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# Peers

# _quietly NAME CMD…: run a peer tool, keep its output in $TEST_TMP/logs/NAME.log and show it
# only when it fails (which stops the test).
_quietly() {
  local name=$1
  shift
  mkdir -p "$TEST_TMP/logs"
  if ! "$@" >"$TEST_TMP/logs/$name.log" 2>&1; then
    cat "$TEST_TMP/logs/$name.log"
    die "$(_describe "$@") failed"
  fi
}

_kill_pid() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null ||
    shuf -i 20000-60999 -n 1
}

# http_status HOST PORT PATH: the status code of a plain HTTP/1.0 GET (empty if no answer).
http_status() {
  local host=$1 port=$2 path=$3
  (
    exec 3<>"/dev/tcp/$host/$port" || exit 1
    printf 'GET %s HTTP/1.0\r\nHost: %s:%s\r\n\r\n' "$path" "$host" "$port" >&3
    IFS= read -r -t 5 line <&3 || exit 1
    read -r _ code _ <<<"$line"
    echo "$code"
  ) 2>/dev/null || true
}

# start_registry [HTPASSWD_FILE]: a docker-registry on 127.0.0.1 with a free port, its config
# and storage in $TEST_TMP/registry. Exports REGISTRY=127.0.0.1:PORT, REGISTRY_PID and
# REGISTRY_STORAGE (the directory with docker/registry/v2/…), as shell variables. With HTPASSWD_FILE it asks for
# basic auth (realm basic-realm).
start_registry() {
  local htpasswd=${1:-} dir="$TEST_TMP/registry" attempt port pid status
  command -v docker-registry >/dev/null || die "docker-registry is not installed (tests/setup.sh)"
  mkdir -p "$dir/storage"
  for attempt in 1 2 3 4 5; do
    port=$(_free_port)
    {
      printf 'version: 0.1\n'
      printf 'log:\n  level: warn\n  accesslog:\n    disabled: true\n'
      printf 'storage:\n  filesystem:\n    rootdirectory: %s\n' "$dir/storage"
      printf '  delete:\n    enabled: true\n'
      printf '  maintenance:\n    uploadpurging:\n      enabled: false\n'
      printf 'http:\n  addr: 127.0.0.1:%s\n' "$port"
      if [ -n "$htpasswd" ]; then
        printf 'auth:\n  htpasswd:\n    realm: basic-realm\n    path: %s\n' "$htpasswd"
      fi
    } >"$dir/config.yml"
    docker-registry serve "$dir/config.yml" >>"$dir/registry.log" 2>&1 &
    pid=$!
    _CIMG_TEST_PIDS+=("$pid")
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      status=$(http_status 127.0.0.1 "$port" /v2/)
      if [ "$status" == 200 ] || { [ -n "$htpasswd" ] && [ "$status" == 401 ]; }; then
        # Not exported: docker-registry reads every REGISTRY_* variable in its environment as
        # configuration, so a second registry started later would take these for settings.
        REGISTRY="127.0.0.1:$port" REGISTRY_PID=$pid REGISTRY_STORAGE="$dir/storage"
        log "docker-registry (pid $pid) on $REGISTRY"
        return 0
      fi
      sleep 0.1
    done
    _kill_pid "$pid"
    log "docker-registry did not answer on port $port (attempt $attempt)"
  done
  cat "$dir/registry.log"
  die "could not start docker-registry"
}

# make_busybox_rootfs DIR: busybox (from busybox-static) and one symlink per applet in DIR/bin,
# plus etc/passwd and etc/group.
make_busybox_rootfs() {
  local dir=$1 cache="$TEST_TMP/cache/busybox-rootfs" bb applet
  if [ ! -d "$cache" ]; then
    bb=/bin/busybox
    [ -x "$bb" ] || bb=$(command -v busybox) || die "busybox is not installed (busybox-static)"
    rm -rf "$cache.tmp"
    mkdir -p "$cache.tmp/bin" "$cache.tmp/etc" "$cache.tmp/root" "$cache.tmp/tmp"
    chmod 1777 "$cache.tmp/tmp"
    chmod 0700 "$cache.tmp/root"
    cp "$bb" "$cache.tmp/bin/busybox"
    while IFS= read -r applet; do
      if [ -n "$applet" ] && [ "$applet" != busybox ]; then
        ln -s busybox "$cache.tmp/bin/$applet"
      fi
    done < <("$cache.tmp/bin/busybox" --list)
    [ -L "$cache.tmp/bin/sh" ] || die "busybox --list has no sh applet"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
      >"$cache.tmp/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$cache.tmp/etc/group"
    mv "$cache.tmp" "$cache"
  fi
  mkdir -p "$dir"
  cp -a "$cache/." "$dir/"
}

# The one umoci-made busybox image every fixture derives from, tagged "busybox" in this layout.
FIXTURE_OCI="$TEST_TMP/cache/oci-busybox"

_make_fixture_cache() {
  [ -f "$FIXTURE_OCI/index.json" ] && return 0
  local tmp="$FIXTURE_OCI.tmp" work="$TEST_TMP/cache/oci-work"
  rm -rf "$tmp" "$work"
  mkdir -p "$work"
  _quietly umoci-init umoci init --layout "$tmp"
  _quietly umoci-new umoci new --image "$tmp:busybox"
  _quietly umoci-unpack umoci unpack --image "$tmp:busybox" "$work/bundle"
  make_busybox_rootfs "$work/bundle/rootfs"
  _quietly umoci-repack umoci repack --image "$tmp:busybox" "$work/bundle"
  _quietly umoci-config umoci config --image "$tmp:busybox" --config.cmd=/bin/sh
  _quietly umoci-gc umoci gc --layout "$tmp"
  rm -rf "$work"
  mv "$tmp" "$FIXTURE_OCI"
}

# make_fixture_oci DIR TAG: an OCI image layout in DIR (which must not exist yet, or already
# hold TAG) whose image TAG is the 1-layer busybox image made by umoci, CMD ["/bin/sh"].
make_fixture_oci() {
  local dir=$1 tag=$2
  _make_fixture_cache
  if [ -f "$dir/index.json" ]; then
    jq -e --arg t "$tag" \
      '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t)' \
      "$dir/index.json" >/dev/null || die "make_fixture_oci: $dir exists without tag $tag"
    return 0
  fi
  [ ! -e "$dir" ] || die "make_fixture_oci: $dir exists and is not an OCI layout"
  cp -a "$FIXTURE_OCI" "$dir"
  if [ "$tag" != busybox ]; then
    _quietly umoci-tag umoci tag --image "$dir:busybox" "$tag"
    _quietly umoci-rm umoci rm --image "$dir:busybox"
  fi
}

# make_fixture_docker_archive FILE NAME:TAG: the same image as `docker save NAME:TAG` writes it
# (skopeo's docker-archive transport).
make_fixture_docker_archive() {
  local file=$1 ref=$2
  _make_fixture_cache
  rm -f "$file"
  _quietly skopeo-copy skopeo copy --quiet "oci:$FIXTURE_OCI:busybox" "docker-archive:$file:$ref"
}

# config_digest TRANSPORT:REF: "sha256:" + the sha256 of the image's config bytes, as skopeo
# reads them.
config_digest() {
  local hex
  hex=$(skopeo inspect --config --raw "$1" | sha256sum | cut -d' ' -f1)
  echo "sha256:$hex"
}

# ---------------------------------------------------------------------------------------------
# Clean-up

_unmount_under() {
  local dir=$1 m
  local -a mounts
  for _ in 1 2 3 4 5; do
    # findmnt -r escapes blanks as \x20; $TEST_TMP has none. Deepest first.
    mapfile -t mounts < <(findmnt -rn -o TARGET 2>/dev/null |
      awk -v p="$dir" '$0 == p || index($0, p "/") == 1 { n = gsub("/", "/"); print n " " $0 }' |
      sort -rn | cut -d' ' -f2-)
    [ "${#mounts[@]}" -eq 0 ] && return 0
    for m in "${mounts[@]}"; do
      umount -l "$m" 2>/dev/null || umount -l "$(printf '%b' "$m")" 2>/dev/null ||
        echo "# warning: could not unmount $m" >&2
    done
  done
}

_cimg_test_exit() {
  local rc=$? pid
  set +e
  trap - ERR
  if [ "$rc" -ne 0 ] && [ "$_CIMG_TEST_DIED" -eq 0 ]; then
    TESTS_FAILED=$((TESTS_FAILED + 1))
    printf 'FAIL - test stopped (exit %s)%s\n' "$rc" \
      "${_CIMG_TEST_LAST_ERR:+ at $_CIMG_TEST_LAST_ERR}"
  fi
  for pid in "${_CIMG_TEST_PIDS[@]}"; do
    _kill_pid "$pid"
  done
  cd /
  _unmount_under "$TEST_TMP"
  if [ "${CIMG_TEST_KEEP:-0}" == 1 ]; then
    echo "# kept $TEST_TMP"
  else
    rm -rf --one-file-system "$TEST_TMP"
  fi
  printf '%s passed, %s failed\n' "$TESTS_PASSED" "$TESTS_FAILED"
  if [ "$TESTS_FAILED" -eq 0 ]; then exit 0; else exit 1; fi
}

trap '[ -n "$_CIMG_TEST_LAST_ERR" ] || _CIMG_TEST_LAST_ERR="${BASH_SOURCE[0]##*/}:$LINENO: $BASH_COMMAND"' ERR
trap _cimg_test_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP
