# shellcheck shell=bash
# Helpers for the tests of `cimg build`: sourced after lib.sh.
#
# Fixture: the busybox image of lib.sh (made by umoci, written by skopeo), loaded as
# "busybox:latest". Clean-up: lib.sh's (processes, mounts, temp dir); a build keeps its mounts in
# its own mount namespace and removes its cgroups itself, which the tests check.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

# load_build_fixture: busybox:latest in the test store.
load_build_fixture() {
  make_fixture_docker_archive "$TEST_TMP/busybox.tar" busybox:latest
  must cimg load -i "$TEST_TMP/busybox.tar"
}

# image_id NAME: the full image ID of NAME ("sha256:…"), or nothing.
image_id() {
  cimg inspect "$1" 2>/dev/null | jq -r '.[0].Id // empty' 2>/dev/null || true
}

# count_lines TEXT PATTERN: how many lines of TEXT contain PATTERN (fixed string).
count_lines() {
  grep -cF -- "$2" <<<"$1" || true
}

# new_ctx NAME: an empty context directory; prints its path.
new_ctx() {
  local d="$TEST_TMP/ctx-$1"
  rm -rf "$d"
  mkdir -p "$d"
  echo "$d"
}

# build_leftovers: mounts, cgroups and temp dirs a build may have left behind (none expected).
build_leftovers() {
  findmnt -rn -o TARGET 2>/dev/null | grep -F "$CIMG_ROOT/" || true
  find "$CIMG_ROOT" -maxdepth 1 -name 'tmp-build-*' 2>/dev/null || true
}
