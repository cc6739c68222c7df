#!/usr/bin/env bash
# `cimg build` of a small Dockerfile (2 RUN, 1 COPY, 3 metadata steps) FROM a busybox image made
# by umoci: cold (--no-cache) and fully cached, timed in one run; beside `buildah bud --layers`
# when buildah is installed (see ../shared/PEERS.md). The issue's target base is a ~200 MB debian
# image; set BASE_ARCHIVE=FILE (a docker-archive tar holding bench/base:1) to use one.
# Prints the median wall time of each. Usage: bash bench/build.sh [--runs R]
# Needs: root, a built cimg ($CIMG or build/cimg), busybox-static, umoci, skopeo, python3.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CIMG=${CIMG:-$here/build/cimg}
RUNS=11
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--runs R]" >&2; exit 2 ;;
  esac
done
[ -x "$CIMG" ] || { echo "no cimg binary at $CIMG (build first, or set CIMG)" >&2; exit 1; }
for t in umoci skopeo python3 busybox; do
  command -v "$t" >/dev/null || { echo "missing $t" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/cimg-bench-build.XXXXXX)
cleanup() {
  if [ -d "$work/buildah" ]; then
    buildah --root "$work/buildah" --runroot "$work/buildah-run" rmi -a -f >/dev/null 2>&1 || true
    umount "$work/buildah/overlay" 2>/dev/null || true
  fi
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "# cimg build benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $RUNS runs)"

if [ -n "${BASE_ARCHIVE:-}" ]; then
  cp "$BASE_ARCHIVE" "$work/base.tar"
else
  rootfs="$work/rootfs"
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
  cp "$(command -v busybox)" "$rootfs/bin/busybox"
  for a in $("$rootfs/bin/busybox" --list); do
    [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
  printf 'root:x:0:\n' >"$rootfs/etc/group"
  oci="$work/oci"
  umoci init --layout "$oci" >/dev/null
  umoci new --image "$oci:bb" >/dev/null
  umoci unpack --image "$oci:bb" "$work/ubundle" >/dev/null
  cp -a "$rootfs/." "$work/ubundle/rootfs/"
  umoci repack --image "$oci:bb" "$work/ubundle" >/dev/null
  rm -rf "$work/ubundle"
  skopeo copy --quiet "oci:$oci:bb" "docker-archive:$work/base.tar:bench/base:1" >/dev/null
fi
"$CIMG" --root "$work/root" load -q -i "$work/base.tar" >/dev/null

ctx="$work/ctx"
mkdir -p "$ctx"
head -c 1000000 /dev/urandom >"$ctx/data.bin"
cat >"$ctx/Dockerfile" <<'DF'
FROM bench/base:1
ENV APP=/app
WORKDIR /app
RUN echo one > /app/one && mkdir -p /app/etc
COPY data.bin /app/
RUN cat /app/data.bin | md5sum > /app/sum
CMD ["cat", "/app/sum"]
DF

peers=(cimg)
if command -v buildah >/dev/null && [ -z "${BASE_ARCHIVE:-}" ]; then
  if buildah --root "$work/buildah" --runroot "$work/buildah-run" pull -q \
    "docker-archive:$work/base.tar" >/dev/null 2>&1; then
    peers+=(buildah)
  fi
fi

python3 - "$RUNS" "$CIMG" "$work" "${peers[@]}" <<'PY'
import statistics, subprocess, sys, time
runs, cimg, work, peers = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4:]
ctx = work + "/ctx"
def cmd(peer, cold):
    if peer == "cimg":
        c = [cimg, "--root", work + "/root", "build", "-q", "-t", "bench/out:1"]
        return c + (["--no-cache"] if cold else []) + [ctx]
    c = ["buildah", "--root", work + "/buildah", "--runroot", work + "/buildah-run", "bud",
         "--layers", "-q", "--isolation", "chroot", "-t", "bench/out:1"]
    return c + (["--no-cache"] if cold else []) + [ctx]
res = {}
for peer in peers:
    subprocess.run(cmd(peer, True), check=True, stdout=subprocess.DEVNULL)
for i in range(runs):
    for peer in peers:
        for cold in (True, False):
            t = time.monotonic()
            subprocess.run(cmd(peer, cold), check=True, stdout=subprocess.DEVNULL)
            res.setdefault((peer, cold), []).append(time.monotonic() - t)
for peer in peers:
    for cold in (True, False):
        m = statistics.median(res[(peer, cold)]) * 1000
        print(f"{peer:8s} {'cold' if cold else 'cached':7s} median {m:8.1f} ms")
if "buildah" in peers:
    for cold in (True, False):
        r = statistics.median(res[("cimg", cold)]) / statistics.median(res[("buildah", cold)])
        print(f"ratio cimg/buildah {'cold' if cold else 'cached'}: {r:.2f}")
PY
