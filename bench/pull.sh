#!/bin/bash
# bench/pull.sh: pull of a single-layer image (~100 MB gzip, ~250 MB and tens of thousands of
# files unpacked: /usr/share/locale, /usr/sbin, /usr/libexec, /usr/share/vim of this machine,
# packed by umoci) from a loopback docker-registry into an empty store, alternating runs of
#   cimg        cimg pull
#   skopeo      skopeo copy docker://… oci:… && umoci unpack
#   podman      podman pull into a private store (when podman runs here)
#   floor       curl -s BLOB | gzip -dc | tar -x   (the layer alone: the floor)
# and prints the median of each, the ratios, and cimg's peak RSS (/usr/bin/time -v).
#
# Usage: bench/pull.sh [RUNS]   (default 3; needs root, cimg built in $CIMG or ./_build/cimg)
set -euo pipefail

RUNS=${1:-3}
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CIMG=${CIMG:-$SRC/_build/cimg}
[ -x "$CIMG" ] || {
  echo "bench/pull.sh: build cimg first (or set CIMG)" >&2
  exit 1
}
for t in docker-registry skopeo umoci curl /usr/bin/time jq; do
  command -v "$t" >/dev/null || {
    echo "bench/pull.sh: $t is missing (tests/setup.sh)" >&2
    exit 1
  }
done

W=$(mktemp -d /tmp/cimg-bench-pull.XXXXXX)
REG_PID=
cleanup() {
  if [ -n "$REG_PID" ]; then kill "$REG_PID" 2>/dev/null || true; fi
  wait 2>/dev/null || true
  umount "$W"/podman/overlay 2>/dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$W/registry"
printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
  "$W/registry" "$port" >"$W/registry.yml"
docker-registry serve "$W/registry.yml" >"$W/registry.log" 2>&1 &
REG_PID=$!
REG=127.0.0.1:$port
for _ in $(seq 1 100); do
  curl -sf "http://$REG/v2/" >/dev/null && break
  sleep 0.1
done

echo "# building the image (umoci) …" >&2
umoci init --layout "$W/oci" >/dev/null
umoci new --image "$W/oci:big" >/dev/null
umoci unpack --image "$W/oci:big" "$W/bundle" >/dev/null
for d in usr/share/locale usr/sbin usr/libexec usr/share/vim; do
  mkdir -p "$W/bundle/rootfs/$(dirname "$d")"
  cp -a "/$d" "$W/bundle/rootfs/$d"
done
umoci repack --image "$W/oci:big" "$W/bundle" >/dev/null
rm -rf "$W/bundle"
skopeo copy --quiet --dest-tls-verify=false "oci:$W/oci:big" "docker://$REG/big:1"
manifest=$(curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REG/v2/big/manifests/1")
blob=$(jq -r '.layers[0].digest' <<<"$manifest")
blob_size=$(jq -r '.layers[0].size' <<<"$manifest")
files=$(curl -sf "http://$REG/v2/big/blobs/$blob" | gzip -dc | tar -t | wc -l)
unpacked=$(curl -sf "http://$REG/v2/big/blobs/$blob" | gzip -dc | wc -c)
echo "# image: 1 layer, $((blob_size / 1000000)) MB gzip, $((unpacked / 1000000)) MB tar, $files entries" >&2

podman_ok=0
if command -v podman >/dev/null; then
  mkdir -p "$W/podman" "$W/podman-run"
  if timeout 300 podman --root "$W/podman" --runroot "$W/podman-run" pull -q --tls-verify=false \
    "docker://$REG/big:1" >/dev/null 2>&1; then
    podman_ok=1
  fi
  umount "$W/podman/overlay" 2>/dev/null || true
  rm -rf "$W/podman" "$W/podman-run"
fi

# now: seconds since the epoch with nanoseconds.
now() { date +%s.%N; }
declare -A T
rss_max=0
run_one() {
  local what=$1 t0 t1
  rm -rf "$W/run"
  mkdir -p "$W/run"
  sync
  t0=$(now)
  case $what in
    cimg)
      /usr/bin/time -v -o "$W/time.txt" "$CIMG" --root "$W/run/root" pull -q "$REG/big:1" >/dev/null
      local rss
      rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$W/time.txt")
      if [ "$rss" -gt "$rss_max" ]; then rss_max=$rss; fi
      ;;
    skopeo)
      skopeo copy --quiet --src-tls-verify=false "docker://$REG/big:1" "oci:$W/run/layout:t"
      umoci unpack --image "$W/run/layout:t" "$W/run/bundle" >/dev/null
      ;;
    podman)
      podman --root "$W/run/podman" --runroot "$W/run/podman-run" pull -q --tls-verify=false \
        "docker://$REG/big:1" >/dev/null
      umount "$W/run/podman/overlay" 2>/dev/null || true
      ;;
    floor)
      mkdir -p "$W/run/x"
      curl -sf "http://$REG/v2/big/blobs/$blob" | gzip -dc | tar -x -C "$W/run/x"
      ;;
  esac
  # Every contender's result must reach the disk, as cimg's (which syncs) does.
  sync
  t1=$(now)
  T[$what]="${T[$what]:-} $(echo "$t1 - $t0" | bc)"
}

contenders=(cimg skopeo floor)
if [ "$podman_ok" -eq 1 ]; then contenders+=(podman); fi
for i in $(seq 1 "$RUNS"); do
  for c in "${contenders[@]}"; do
    run_one "$c"
    echo "# run $i $c: $(awk '{print $NF}' <<<"${T[$c]}") s" >&2
  done
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cm=$(median <<<"${T[cimg]}")
printf 'pull of %s MB gzip / %s MB unpacked, %s entries, %s runs each (median seconds)\n' \
  "$((blob_size / 1000000))" "$((unpacked / 1000000))" "$files" "$RUNS"
printf '  %-8s %8.2f s\n' cimg "$cm"
for c in "${contenders[@]}"; do
  [ "$c" == cimg ] && continue
  m=$(median <<<"${T[$c]}")
  printf '  %-8s %8.2f s   cimg/%s = %.2f\n' "$c" "$m" "$c" "$(echo "$cm / $m" | bc -l)"
done
if [ "$podman_ok" -eq 0 ]; then echo "  podman   (does not run here: skipped)"; fi
printf '  cimg peak RSS: %d KiB (%.1f MiB)\n' "$rss_max" "$(echo "$rss_max / 1024" | bc -l)"
