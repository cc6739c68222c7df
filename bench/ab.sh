#!/usr/bin/env bash
# bench/ab.sh: two cimg binaries side by side on the pulls where fixed costs show — a check of
# a change to the pull path before it lands (docs/benchmarks.md, "Pull"), alternating run by
# run on the benchmark's own file system:
#   small   one layer of ~3 300 small files (2 MB gzip)
#   big     one ~100 MB-gzip layer (~14 700 files)
#   layers  25 layers, 50 MB of files in all
# Usage: bash bench/ab.sh OTHER_CIMG [--runs R]   ($CIMG is A, OTHER_CIMG is B)
# Env: CIMG (default _build/cimg), BENCH_QUICK=1 (small and layers only), BENCH_RESULTS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 OTHER_CIMG [--runs R]" >&2; exit 2; }
B=$(realpath "$1")
shift
RUNS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 OTHER_CIMG [--runs R]" >&2; exit 2 ;;
  esac
done
[ -x "$B" ] || { echo "bench/ab: no cimg at $B" >&2; exit 1; }
bench_init ab
need docker-registry skopeo curl
start_registry

python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag small usr:10
# shellcheck disable=SC2046
python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag layers $(for _ in $(seq 1 25); do printf 'usr:2 '; done)
images="small layers"
if [ "$QUICK" != 1 ]; then
  python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag big usr:240
  images="small big layers"
fi
for t in $images; do push_layout "$W/oci:$t" "$t:1"; done

run=$W/run
empty="rm -rf --one-file-system $run; mkdir -p $run; sync -f $W"
for t in $images; do
  contender A "$CIMG --root $run/root pull -q $REG/$t:1 >/dev/null && sync -f $W" "$empty"
  contender B "$B --root $run/root pull -q $REG/$t:1 >/dev/null && sync -f $W" "$empty"
  compare ab "pull $t: A=$CIMG B=$B" s "$RUNS" 1
done
