#!/usr/bin/env bash
# bench/push.sh: `cimg push` of an image in its store to an empty loopback docker-registry,
# beside
#   skopeo    skopeo copy oci:LAYOUT docker://… (the same compressed blobs, read from files:
#             what pushing without recompressing costs a peer)
#   podman    podman push from its private store, where the image was pulled (as a podman user
#             pushes what it pulled)
# Before every run the destination registry's storage is emptied, so that every blob goes up
# (no "Layer already exists", no cross-repository mount).
# Images (bench/mkimage.py, as bench/pull.sh): one ~100 MB-gzip layer, and five layers of
# ~20 MB gzip.
# Usage: bash bench/push.sh [--runs R] [--peers "podman"]
# Env: CIMG (default _build/cimg), BENCH_QUICK=1 (small, 2 runs), BENCH_RESULTS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=5
PEERS="podman"
[ "$QUICK" = 1 ] && RUNS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    *) echo "usage: $0 [--runs R] [--peers \"podman\"]" >&2; exit 2 ;;
  esac
done
bench_init push
need docker-registry skopeo curl jq
start_registry
SRC=$REG
start_registry dst
DST=$REG
REG=$SRC

make_pull_images
"$CIMG" --root "$W/store" pull -q "$SRC/big:1" >/dev/null
"$CIMG" --root "$W/store" pull -q "$SRC/five:1" >/dev/null

have_podman=0
if [[ " $PEERS " != *" podman "* ]]; then
  peer podman 0 "left out (--peers)"
elif podman_ready && "${PODMAN[@]}" pull -q --tls-verify=false "docker://$SRC/big:1" >/dev/null 2>"$W/err" &&
  "${PODMAN[@]}" pull -q --tls-verify=false "docker://$SRC/five:1" >/dev/null 2>>"$W/err"; then
  have_podman=1
  peer podman 1
else
  peer podman 0 "${PEER_WHY:-podman pull failed: $(tail -c 300 "$W/err")}"
fi
peer skopeo 1

# contenders TAG: the sides for one image, each pushing it to $DST/TAG:1 emptied first.
contenders() {
  local tag=$1 empty
  empty="rm -rf --one-file-system $W/dst/docker; sync -f $W"
  contender cimg "$CIMG --root $W/store push -q $SRC/$tag:1 $DST/$tag:1 >/dev/null" "$empty"
  contender skopeo "skopeo copy --quiet --dest-tls-verify=false oci:$W/oci:$tag docker://$DST/$tag:1" "$empty"
  if [ "$have_podman" = 1 ]; then
    contender podman "${PODMAN[*]} push -q --tls-verify=false $SRC/$tag:1 docker://$DST/$tag:1" "$empty"
  fi
}

# MB of compressed layers of REPO:1 in the source registry.
size_of() {
  curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$SRC/v2/$1/manifests/1" |
    jq -r '[.layers[].size] | add / 1e6 | . * 10 | round / 10'
}

# Every side must really upload: after an emptied destination, cimg's own lines say so.
rm -rf --one-file-system "$W/dst/docker"
if "$CIMG" --root "$W/store" push "$SRC/five:1" "$DST/five:1" | grep -q "Layer already exists\|Mounted from"; then
  echo "bench/push.sh: the emptied destination still had blobs" >&2
  exit 1
fi

contenders big
compare push "1 layer, $(size_of big) MB gzip" s "$RUNS" 1
contenders five
compare push "5 layers, $(size_of five) MB gzip" s "$RUNS" 1
podman_stop
