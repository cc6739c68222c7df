#!/usr/bin/env bash
# Store benchmarks, timed beside their floors in one run (see docs/benchmarks.md):
#   1. `cimg images` with N tagged images (default 1000): median wall time (goal <= 10 ms).
#   2. `cimg load` of a single-layer image archive with a ~200 MB gzip layer, made by peers
#      (umoci + skopeo), against the floor `gzip -dc layer | tar -x` of the same layer,
#      alternating runs; prints the median of each and the ratio (goal <= 1.2).
# Usage: bash bench/store.sh [--images N] [--runs R] [--src "DIR..."]
# Needs: a built cimg (build/cimg or $CIMG), umoci, skopeo, root.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CIMG=${CIMG:-$here/build/cimg}
N_IMAGES=1000
RUNS=5
SRC="/usr/bin /usr/lib/python3.11 /usr/share/doc"
while [ $# -gt 0 ]; do
  case "$1" in
    --images) N_IMAGES=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --src) SRC=$2; shift 2 ;;
    *) echo "usage: $0 [--images N] [--runs R] [--src \"DIR...\"]" >&2; exit 2 ;;
  esac
done
[ -x "$CIMG" ] || { echo "no cimg binary at $CIMG (build first, or set CIMG)" >&2; exit 1; }
for t in umoci skopeo gzip tar; do
  command -v "$t" >/dev/null || { echo "missing $t (apt-get install $t)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/cimg-bench-store.XXXXXX)
trap 'rm -rf "$work"' EXIT

now_ns() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END {m=int((NR+1)/2); print a[m]}'; }
ms() { awk -v ns="$1" 'BEGIN {printf "%.2f", ns/1e6}'; }

echo "# cimg store benchmarks ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $("$CIMG" version))"

# ---------------------------------------------------------------- 1. images with N images
root="$work/root-images"
mkdir -p "$work/tiny/etc"
echo hi > "$work/tiny/etc/hi"
tar -C "$work/tiny" -cf "$work/tiny.tar" .
echo "creating $N_IMAGES tagged images (cimg import, one shared layer)..."
for i in $(seq 1 "$N_IMAGES"); do
  "$CIMG" --root "$root" import -m "bench $i" "$work/tiny.tar" "bench/img$i:v1" >/dev/null
done
"$CIMG" --root "$root" images >/dev/null # warm the page cache
lines=$("$CIMG" --root "$root" images | wc -l)
[ "$lines" -eq $((N_IMAGES + 1)) ] || { echo "images listed $lines lines, expected $((N_IMAGES + 1))" >&2; exit 1; }
if command -v hyperfine >/dev/null; then
  # hyperfine -N runs the command without a shell, so the figure is cimg's own.
  hyperfine -N --warmup 5 --runs 101 --export-json "$work/images.json" \
    "$CIMG --root $root images" >/dev/null 2>&1
  read -r med mn mx < <(python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["results"][0]; print(int(r["median"]*1e9), int(r["min"]*1e9), int(r["max"]*1e9))' "$work/images.json")
else
  times=()
  for r in $(seq 1 21); do
    t0=$(now_ns); "$CIMG" --root "$root" images >/dev/null; t1=$(now_ns)
    times+=($((t1 - t0)))
  done
  med=$(printf '%s\n' "${times[@]}" | median)
  mn=$(printf '%s\n' "${times[@]}" | sort -n | head -1)
  mx=$(printf '%s\n' "${times[@]}" | sort -n | tail -1)
fi
echo "images with $N_IMAGES images: median $(ms "$med") ms (min $(ms "$mn"), max $(ms "$mx")), goal <= 10 ms"

# ---------------------------------------------------------------- 2. load vs gzip -dc | tar -x
echo "building a single-layer image with umoci from: $SRC"
oci="$work/oci"
umoci init --layout "$oci" >/dev/null
umoci new --image "$oci:big" >/dev/null
umoci unpack --image "$oci:big" "$work/bundle" >/dev/null
for d in $SRC; do
  mkdir -p "$work/bundle/rootfs$d"
  cp -a "$d/." "$work/bundle/rootfs$d/"
done
umoci repack --image "$oci:big" "$work/bundle" >/dev/null
rm -rf "$work/bundle"
skopeo copy --quiet "oci:$oci:big" "docker-archive:$work/big.tar:bench/big:1" >/dev/null 2>&1 ||
  skopeo copy "oci:$oci:big" "docker-archive:$work/big.tar:bench/big:1" >/dev/null
# The layer blob exactly as the archive carries it (what both sides unpack).
mkdir -p "$work/arch"
tar -C "$work/arch" -xf "$work/big.tar"
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Layers"][0])' "$work/arch/manifest.json")
layer="$work/arch/$layer"
if ! gzip -t "$layer" 2>/dev/null; then
  # skopeo wrote the layer uncompressed: load the OCI layout (gzip layers) instead.
  tar -C "$oci" -cf "$work/big.tar" .
  blob=$(python3 - "$oci" <<'EOF'
import json, sys
d = sys.argv[1]
idx = json.load(open(d + "/index.json"))
m = json.load(open(d + "/blobs/sha256/" + idx["manifests"][0]["digest"][7:]))
print(d + "/blobs/sha256/" + m["layers"][0]["digest"][7:])
EOF
)
  layer=$blob
fi
csize=$(stat -c %s "$layer")
usize=$(gzip -dc "$layer" | wc -c)
echo "layer: $((csize / 1000000)) MB gzip, $((usize / 1000000)) MB tar; archive $(($(stat -c %s "$work/big.tar") / 1000000)) MB"
sync
cimg_t=() floor_t=() ratios=()
for r in $(seq 0 "$RUNS"); do
  rm -rf "$work/root-load" "$work/floor"; mkdir -p "$work/floor"; sync
  t0=$(now_ns); "$CIMG" --root "$work/root-load" load -q -i "$work/big.tar"; t1=$(now_ns)
  sync
  t2=$(now_ns); gzip -dc "$layer" | tar -x -C "$work/floor"; t3=$(now_ns)
  [ "$r" -eq 0 ] && continue # warm-up
  cimg_t+=($((t1 - t0))); floor_t+=($((t3 - t2)))
  ratios+=("$(awk -v a=$((t1 - t0)) -v b=$((t3 - t2)) 'BEGIN {printf "%.3f", a/b}')")
  echo "run $r: cimg load $(ms $((t1 - t0))) ms, gzip -dc | tar -x $(ms $((t3 - t2))) ms, ratio ${ratios[-1]}"
done
cm=$(printf '%s\n' "${cimg_t[@]}" | median)
fm=$(printf '%s\n' "${floor_t[@]}" | median)
rm_=$(printf '%s\n' "${ratios[@]}" | median)
echo "load: median cimg $(ms "$cm") ms, floor $(ms "$fm") ms; median ratio $rm_ (goal <= 1.2)"
