#!/usr/bin/env bash
# bench/run.sh: `cimg run --rm IMAGE /bin/true` beside its peers, alternating (docs/runtime.md):
#   cimg             cimg run --rm bench/busybox:1 /bin/true (image lookup, record, overlay,
#                    cgroup, seccomp, …)
#   cimg-unconfined  the same with --security-opt seccomp=unconfined (runc's bundle from
#                    `runc spec` loads no seccomp profile)
#   runc             runc run on a prepared bundle of the same rootfs (no overlay, no image)
#   docker           docker run --rm --network none (private dockerd)
#   podman           podman run --rm --network none (private store)
#   floor            unshare -mpiun --fork /bin/true (namespaces and nothing else)
# then the curve of run latency against the image's layer count (1, 10, 50, 120), and cimg's
# peak RSS. Usage: bash bench/run.sh [--runs R] [--no-curves]
# Env: CIMG (default _build/cimg), BENCH_QUICK=1, BENCH_RESULTS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=31
CURVES=1
[ "$QUICK" = 1 ] && RUNS=5
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --no-curves) CURVES=0; shift ;;
    *) echo "usage: $0 [--runs R] [--no-curves]" >&2; exit 2 ;;
  esac
done
bench_init run
need umoci skopeo runc jq unshare busybox
# Containers of this script only: their cgroups carry the IDs of $W's store.
on_exit 'for d in "$W"/root/containers/*/; do find /sys/fs/cgroup -maxdepth 4 -type d -path "*/cimg/$(basename "$d")" -exec rmdir {} + ; done'

# ---------------------------------------------------------------- one busybox rootfs, two forms
rootfs="$W/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"

python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag bb "dir:$rootfs" >/dev/null
skopeo copy --quiet "oci:$W/oci:bb" "docker-archive:$W/bb.tar:bench/busybox:1" >/dev/null
"$CIMG" --root "$W/root" load -q -i "$W/bb.tar" >/dev/null

bundle="$W/bundle"
mkdir -p "$bundle"
cp -a "$rootfs" "$bundle/rootfs"
(cd "$bundle" && runc spec)
jq '.process.terminal = false | .process.args = ["/bin/true"] | .process.rlimits = []' \
  "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"

# Sanity: each runs and exits 0.
"$CIMG" --root "$W/root" run --rm bench/busybox:1 /bin/true
runc --root "$W/runc-state" run --bundle "$bundle" bench-check </dev/null
unshare -mpiun --fork /bin/true
peer runc 1

have_docker=0 have_podman=0
if docker_start && "${DOCKER[@]}" load -q -i "$W/bb.tar" >/dev/null 2>"$W/err" &&
  "${DOCKER[@]}" run --rm --network none bench/busybox:1 /bin/true 2>"$W/err"; then
  have_docker=1
  peer docker 1
else
  peer docker 0 "${PEER_WHY:-$(tail -c 300 "$W/err")}"
fi
if podman_ready && "${PODMAN[@]}" load -q -i "$W/bb.tar" >/dev/null 2>"$W/err" &&
  "${PODMAN[@]}" run --rm --network none bench/busybox:1 /bin/true 2>"$W/err"; then
  have_podman=1
  peer podman 1
else
  peer podman 0 "${PEER_WHY:-$(tail -c 300 "$W/err")}"
fi

# runc needs a fresh container ID each run: timer.py replaces {seq} with a counter.
contender_argv cimg "$CIMG" --root "$W/root" run --rm bench/busybox:1 /bin/true
contender_argv runc runc --root "$W/runc-state" run --bundle "$bundle" "b{seq}"
contender_argv floor unshare -mpiun --fork /bin/true
contender_argv cimg-unconfined "$CIMG" --root "$W/root" run --rm --security-opt seccomp=unconfined bench/busybox:1 /bin/true
[ "$have_docker" = 1 ] && contender_argv docker "${DOCKER[@]}" run --rm --network none bench/busybox:1 /bin/true
[ "$have_podman" = 1 ] && contender_argv podman "${PODMAN[@]}" run --rm --network none bench/busybox:1 /bin/true
compare run "run --rm busybox /bin/true" ms "$RUNS" 2

peak=0
for _ in 1 2 3 4 5; do
  kb=$(/usr/bin/time -f %M "$CIMG" --root "$W/root" run --rm bench/busybox:1 /bin/true 2>&1 >/dev/null | tail -n 1)
  [ "$kb" -gt "$peak" ] && peak=$kb
done
python3 -c 'import json, sys; print(json.dumps({"bench": "run-rss", "case": "peak RSS of cimg run --rm (largest of 5)", "unit": "MiB", "runs": 1, "warmup": 0, "order": ["cimg"], "times": {"cimg": [int(sys.argv[1]) / 1024]}, "errors": {}}))' "$peak" >>"$BENCH_RESULTS"
echo "cimg run peak RSS: $((peak / 1024)) MiB"

[ "$CURVES" = 1 ] || exit 0

# ---------------------------------------------------------------- run latency vs layer count
CRUNS=11
[ "$QUICK" = 1 ] && CRUNS=3
for n in 1 10 50 120; do
  layers=("dir:$rootfs")
  for i in $(seq 2 "$n"); do layers+=("tiny:$i"); done
  python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag "l$n" "${layers[@]}" >/dev/null
  rm -f "$W/l.tar"
  skopeo copy --quiet "oci:$W/oci:l$n" "docker-archive:$W/l.tar:bench/layers:$n" >/dev/null
  "$CIMG" --root "$W/root" load -q -i "$W/l.tar" >/dev/null
  contender_argv cimg "$CIMG" --root "$W/root" run --rm "bench/layers:$n" /bin/true
  if [ "$have_docker" = 1 ] && "${DOCKER[@]}" load -q -i "$W/l.tar" >/dev/null 2>&1; then
    contender_argv docker "${DOCKER[@]}" run --rm --network none "bench/layers:$n" /bin/true
  fi
  if [ "$have_podman" = 1 ] && "${PODMAN[@]}" load -q -i "$W/l.tar" >/dev/null 2>&1; then
    contender_argv podman "${PODMAN[@]}" run --rm --network none "bench/layers:$n" /bin/true
  fi
  compare run-curve "run --rm, image of $n layers" ms "$CRUNS" 1 run-layers "$n"
done
