#!/usr/bin/env bash
# bench/pull.sh: `cimg pull` from a loopback docker-registry into an empty store, beside
#   docker    docker pull (a private dockerd; the image removed between runs)
#   podman    podman pull into a private --root/--runroot, emptied between runs
#   skopeo    skopeo copy docker://… oci:… && umoci unpack (what a daemonless user does)
#   floor     curl BLOB | gzip -dc | tar -x, layer after layer (download+inflate+unpack only)
# Every side ends with `sync -f` (syncfs of the benchmark's own loop-mounted ext4, see lib.sh):
# cimg syncs what it commits, so the others must reach the disk too.
# Images (bench/mkimage.py: host files from /usr, gzip -6): one ~100 MB-gzip layer, and five
# layers of ~20 MB gzip. Then the scaling curves, cimg beside the floor: pull time against the
# layer size (1 MB … 300 MB of file data; 1 GB with BENCH_BIG=1) and against the layer count
# (1 … 50 layers, 40–50 MB of file data in all).
# Usage: bash bench/pull.sh [--runs R] [--no-curves] [--peers "docker podman"]
#   --peers: which of docker and podman to run (default both; "" for neither: a quicker pass of
#   cimg, skopeo+umoci and the floor while working on the pull path)
# Env: CIMG (default _build/cimg), BENCH_QUICK=1 (small, 2 runs), BENCH_BIG=1, BENCH_RESULTS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=3
CURVES=1
PEERS="docker podman"
[ "$QUICK" = 1 ] && RUNS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --no-curves) CURVES=0; shift ;;
    --peers) PEERS=$2; shift 2 ;;
    *) echo "usage: $0 [--runs R] [--no-curves] [--peers \"docker podman\"]" >&2; exit 2 ;;
  esac
done
bench_init pull
need docker-registry skopeo umoci curl jq gzip tar
start_registry

make_pull_images

# The blobs of REPO:TAG as the registry serves them, for the floor.
blobs_of() {
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
    "http://$REG/v2/$1/manifests/$2" | jq -r '.layers[].digest'
}
floor_cmd() {
  local out=$1 repo=$2 tag=$3 b cmd
  cmd="mkdir -p $out"
  for b in $(blobs_of "$repo" "$tag"); do
    cmd+=" && curl -sf http://$REG/v2/$repo/blobs/$b | gzip -dc | tar -x -C $out"
  done
  echo "$cmd && sync -f $W"
}

# ---------------------------------------------------------------- which peers run here
have_docker=0 have_podman=0
if [[ " $PEERS " != *" docker "* ]]; then
  peer docker 0 "left out (--peers)"
elif docker_start && "${DOCKER[@]}" pull -q "$REG/five:1" >/dev/null 2>"$W/err"; then
  have_docker=1
  "${DOCKER[@]}" rmi -f "$REG/five:1" >/dev/null
  peer docker 1
else
  peer docker 0 "${PEER_WHY:-docker pull failed: $(tail -c 300 "$W/err")}"
fi
if [[ " $PEERS " != *" podman "* ]]; then
  peer podman 0 "left out (--peers)"
elif podman_ready && "${PODMAN[@]}" pull -q --tls-verify=false "docker://$REG/five:1" >/dev/null 2>"$W/err"; then
  have_podman=1
  podman_stop
  peer podman 1
else
  peer podman 0 "${PEER_WHY:-podman pull failed: $(tail -c 300 "$W/err")}"
fi
peer skopeo 1
peer umoci 1

# contenders IMAGE: the five sides for one image (REPO:TAG).
contenders() {
  local ref=$1 repo=${1%%:*} tag=${1##*:} run=$W/run empty
  empty="rm -rf --one-file-system $run; mkdir -p $run; sync -f $W"
  contender cimg "$CIMG --root $run/root pull -q $REG/$ref >/dev/null && sync -f $W" "$empty"
  if [ "$have_docker" = 1 ]; then
    contender docker "${DOCKER[*]} pull -q $REG/$ref >/dev/null && sync -f $W" \
      "${DOCKER[*]} rmi -f $REG/$ref >/dev/null 2>&1; $empty"
  fi
  if [ "$have_podman" = 1 ]; then
    contender podman "${PODMAN[*]} pull -q --tls-verify=false docker://$REG/$ref >/dev/null && sync -f $W" \
      "${PODMAN[*]} rmi -af >/dev/null 2>&1; umount $W/podman/overlay 2>/dev/null; rm -rf --one-file-system $W/podman $W/podman-run; $empty"
  fi
  contender skopeo+umoci "skopeo copy --quiet --src-tls-verify=false docker://$REG/$ref oci:$run/layout:t && umoci unpack --image $run/layout:t $run/bundle >/dev/null && sync -f $W" "$empty"
  contender floor "$(floor_cmd "$run/floor" "$repo" "$tag")" "$empty"
}

size_of() { blobs_of "$1" "$2" | while read -r b; do curl -sfI "http://$REG/v2/$1/blobs/$b" | tr -d '\r' | awk 'tolower($1) == "content-length:" {print $2}'; done | awk '{s += $1} END {printf "%.1f", s / 1e6}'; }

contenders big:1
compare pull "1 layer, $(size_of big 1) MB gzip" s "$RUNS" 1
contenders five:1
compare pull "5 layers, $(size_of five 1) MB gzip" s "$RUNS" 1

# cimg's peak RSS on the big pull (apart: /usr/bin/time around it).
rm -rf "$W/run"
/usr/bin/time -f %M -o "$W/rss" "$CIMG" --root "$W/run/root" pull -q "$REG/big:1" >/dev/null
python3 -c 'import json, sys; print(json.dumps({"bench": "pull-rss", "case": "peak RSS of cimg pull (1 layer image)", "unit": "MiB", "runs": 1, "warmup": 0, "order": ["cimg"], "times": {"cimg": [int(open(sys.argv[1]).read().split()[-1]) / 1024]}, "errors": {}}))' "$W/rss" >>"$BENCH_RESULTS"
echo "cimg pull peak RSS: $(awk '{printf "%.1f MiB", $NF / 1024}' "$W/rss")"
rm -rf "$W/run"
podman_stop
[ "$have_docker" = 1 ] && "${DOCKER[@]}" rmi -f "$REG/big:1" "$REG/five:1" >/dev/null 2>&1 || true

[ "$CURVES" = 1 ] || exit 0

# ---------------------------------------------------------------- curves: cimg beside the floor
curve_point() { # CURVE X REPO
  local run=$W/run empty
  empty="rm -rf --one-file-system $W/run; mkdir -p $W/run; sync -f $W"
  contender cimg "$CIMG --root $run/root pull -q $REG/$3:1 >/dev/null && sync -f $W" "$empty"
  contender floor "$(floor_cmd "$run/floor" "$3" 1)" "$empty"
  compare pull-curve "$1 = $2 ($(size_of "$3" 1) MB gzip)" s "$CRUNS" 0 "$1" "$2"
}
CRUNS=3
[ "$QUICK" = 1 ] && CRUNS=1
if [ "$QUICK" = 1 ]; then sizes="1 10 50"; else sizes="1 10 30 100 300"; fi
if [ "${BENCH_BIG:-0}" = 1 ] && [ "$QUICK" != 1 ]; then
  sizes+=" 1000"
else
  python3 -c 'import json; print(json.dumps({"bench": "skipped", "case": "pull of a 1 GB layer (set BENCH_BIG=1)", "errors": {}, "times": {}, "order": []}))' >>"$BENCH_RESULTS"
  echo "# the 1 GB point is skipped (BENCH_BIG=1 adds it)"
fi
for mb in $sizes; do
  rm -rf "$W/oci-c"
  python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci-c" --tag s "usr:$mb" >/dev/null
  push_layout "$W/oci-c:s" "size$mb:1"
  curve_point "pull-size" "$mb" "size$mb"
done
if [ "$QUICK" = 1 ]; then counts="1 5 10" total=10; else counts="1 5 10 25 50" total=40; fi
for n in $counts; do
  rm -rf "$W/oci-c"
  per=$(((total + n - 1) / n))
  # One word per layer: the list is meant to split.
  # shellcheck disable=SC2046
  python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci-c" --tag s $(for _ in $(seq 1 "$n"); do printf 'usr:%s ' "$per"; done) >/dev/null
  push_layout "$W/oci-c:s" "count$n:1"
  curve_point "pull-count" "$n" "count$n"
done
