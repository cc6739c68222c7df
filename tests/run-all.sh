#!/bin/bash
# Every check CI runs, in order: clang-format, a Release build of cimg, a normal build with all
# tests (unit and integration), an ASAN/UBSAN build with all tests, the fuzz harnesses. Runs
# every step even when one fails, and exits non-zero if any did. Needs root (the integration
# tests do) and the packages of tests/setup.sh.
#
#   bash tests/run-all.sh [--no-format] [--no-asan] [--no-fuzz]
#
# The CMake build trees are _build and _build-asan in the source tree (CIMG_BUILD_DIR and
# CIMG_ASAN_BUILD_DIR override them); not build/, which holds the Dockerfile builder's sources.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$src"
build_dir=${CIMG_BUILD_DIR:-_build}
asan_dir=${CIMG_ASAN_BUILD_DIR:-_build-asan}
jobs=$(nproc)
do_format=1
do_asan=1
do_fuzz=1
for arg in "$@"; do
  case "$arg" in
    --no-format) do_format=0 ;;
    --no-asan) do_asan=0 ;;
    --no-fuzz) do_fuzz=0 ;;
    *)
      echo "usage: $0 [--no-format] [--no-asan] [--no-fuzz]" >&2
      exit 2
      ;;
  esac
done

failed=()
step() {
  local name=$1
  shift
  printf '\n==== %s\n' "$name"
  local t0=$SECONDS
  if "$@"; then
    printf '==== %s: ok (%ss)\n' "$name" $((SECONDS - t0))
  else
    printf '==== %s: FAILED (%ss)\n' "$name" $((SECONDS - t0))
    failed+=("$name")
  fi
}

format_check() {
  local -a files
  mapfile -d '' files < <(find util store registry runtime build cli tests -type f \
    \( -name '*.c' -o -name '*.h' \) -not -path '*/CMakeFiles/*' -print0 2>/dev/null | sort -z)
  local f bad=0
  echo "clang-format: ${#files[@]} files"
  # One file at a time: with several, clang-format stops at the first one that is off.
  for f in "${files[@]}"; do
    clang-format --dry-run --Werror "$f" || bad=1
  done
  return "$bad"
}

build_and_test() {
  local dir=$1
  shift
  cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" &&
    cmake --build "$dir" -j"$jobs" &&
    ctest --test-dir "$dir" --output-on-failure -j"$jobs"
}

asan_build_and_test() {
  # Leaks fail a test; UBSAN findings stop the program (-fno-sanitize-recover=all).
  ASAN_OPTIONS=detect_leaks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build_and_test "$asan_dir" -DCIMG_SANITIZE=ON
}

release_build() {
  # bench/all.sh builds with -O3 (Release), where gcc warns about things -O2 does not see.
  cmake -S . -B "${CIMG_RELEASE_BUILD_DIR:-_build-release}" -DCMAKE_BUILD_TYPE=Release &&
    cmake --build "${CIMG_RELEASE_BUILD_DIR:-_build-release}" -j"$jobs" --target cimg
}

if [ "$do_format" -eq 1 ]; then step "clang-format" format_check; fi
step "Release build (the one bench/all.sh uses)" release_build
step "build and test ($build_dir)" build_and_test "$build_dir"
if [ "$do_asan" -eq 1 ]; then step "ASAN/UBSAN build and test ($asan_dir)" asan_build_and_test; fi
# Each libFuzzer harness for CIMG_FUZZ_SECONDS (default 60), in its own clang tree.
if [ "$do_fuzz" -eq 1 ]; then
  step "fuzz (tests/fuzz/run.sh)" bash tests/fuzz/run.sh "${CIMG_FUZZ_SECONDS:-60}"
fi

echo
if [ "${#failed[@]}" -ne 0 ]; then
  printf 'run-all: FAILED: %s\n' "${failed[*]}"
  exit 1
fi
echo "run-all: all passed"
