#!/bin/bash
# Build the libFuzzer harnesses (clang, ASAN+UBSAN) in their own tree and run each for SECONDS
# (default 60), two at a time, starting from its committed corpus (tests/fuzz/corpus/<name>,
# read only: new inputs go to a scratch directory). Fails if any harness crashes, leaks, times
# out on one input or runs out of memory; the input that did it is copied to
# $out/crash-<name>-* and the log names it. A crash becomes a regression test by moving that
# file into tests/fuzz/corpus/<name>/ as crash-<what> (the replay tests run it in every build).
#
#   bash tests/fuzz/run.sh [SECONDS] [HARNESS...]
#
# The tree is _build-fuzz in the source tree (CIMG_FUZZ_BUILD_DIR overrides it); per-harness logs
# and the figures (executions, corpus size) land in its fuzz-out/ directory.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
secs=${1:-60}
shift || true
case "$secs" in
  '' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [HARNESS...]" >&2
    exit 2
    ;;
esac
all=(dockerfile expand reference manifest www_authenticate archive layer)
harnesses=("$@")
[ "${#harnesses[@]}" -gt 0 ] || harnesses=("${all[@]}")
dir=${CIMG_FUZZ_BUILD_DIR:-$src/_build-fuzz}
jobs=${CIMG_FUZZ_JOBS:-2}

if ! command -v clang >/dev/null; then
  echo "tests/fuzz/run.sh: clang is missing (tests/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 1
fi

# Warnings are not errors here: clang warns about other things than gcc, which the normal
# builds already hold to -Werror.
CC=clang cmake -S "$src" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCIMG_FUZZ=ON \
  -DCIMG_WERROR=OFF >/dev/null
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
cmake --build "$dir" -j2 --target "${targets[@]}"

out=$dir/fuzz-out
rm -rf "$out"
mkdir -p "$out"

run_one() {
  local h=$1 work
  work=$(mktemp -d "$out/corpus-$h.XXXXXX")
  local dict=()
  [ -f "$src/tests/fuzz/$h.dict" ] && dict=(-dict="$src/tests/fuzz/$h.dict")
  # -timeout: one input taking this long is a finding too (a hang in a parser);
  # -rss_limit_mb: well under the VM's memory, with two harnesses running at once.
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    "$dir/tests/fuzz/fuzz_$h" -max_total_time="$secs" -timeout=25 -rss_limit_mb=2048 \
    -max_len=65536 -print_final_stats=1 -artifact_prefix="$out/crash-$h-" "${dict[@]}" \
    "$work" "$src/tests/fuzz/corpus/$h" >"$out/$h.log" 2>&1
}

declare -A pids
failed=()
report() {
  local h=$1 rc=$2 execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$h.log" | tail -1)
  if [ "$rc" -eq 0 ]; then
    printf 'fuzz %-18s ok      %s executions in %ss\n' "$h" "${execs:-?}" "$secs"
  else
    printf 'fuzz %-18s FAILED  (exit %s) after %s executions; log: %s\n' "$h" "$rc" \
      "${execs:-?}" "$out/$h.log"
    # The harness's own complaint (a broken round trip) is the line just before the ERROR.
    awk '/^==[0-9]+== ?ERROR/ { if (prev != "") print prev } { prev = $0 }' "$out/$h.log" |
      head -3 || true
    grep -E '^(==[0-9]+== ?ERROR|SUMMARY|.*runtime error|artifact_prefix|Test unit written)' \
      "$out/$h.log" | head -8 || true
    failed+=("$h")
  fi
}

# Two at a time on the two cores: start one, and when two run, wait for either to end.
for h in "${harnesses[@]}"; do
  if [ ! -x "$dir/tests/fuzz/fuzz_$h" ]; then
    echo "tests/fuzz/run.sh: unknown harness $h (one of: ${all[*]})" >&2
    exit 2
  fi
  run_one "$h" &
  pids[$!]=$h
  while [ "${#pids[@]}" -ge "$jobs" ]; do
    rc=0
    wait -n -p done_pid "${!pids[@]}" || rc=$?
    report "${pids[$done_pid]}" "$rc"
    unset "pids[$done_pid]"
  done
done
while [ "${#pids[@]}" -gt 0 ]; do
  rc=0
  wait -n -p done_pid "${!pids[@]}" || rc=$?
  report "${pids[$done_pid]}" "$rc"
  unset "pids[$done_pid]"
done

if [ "${#failed[@]}" -ne 0 ]; then
  echo "tests/fuzz/run.sh: FAILED: ${failed[*]} (inputs: $out/crash-*)"
  exit 1
fi
echo "tests/fuzz/run.sh: all ${#harnesses[@]} harnesses ran ${secs}s without a finding"
