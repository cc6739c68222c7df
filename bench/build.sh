#!/usr/bin/env bash
# bench/build.sh: `cimg build` of a Dockerfile with 2 RUN, 1 COPY and 3 metadata steps FROM a
# ~200 MB debian-like base (host /usr files + a busybox /bin, made by bench/mkimage.py) that is
# already in each tool's store, cold (--no-cache) and fully cached, beside
#   docker    DOCKER_BUILDKIT=0 docker build (the legacy builder; private dockerd)
#   buildah   buildah bud --layers (private store)
# alternating, after a warm-up. Usage: bash bench/build.sh [--runs R]
# Env: CIMG (default _build/cimg), BENCH_QUICK=1 (a ~40 MB base, 2 runs), BENCH_RESULTS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

RUNS=7
[ "$QUICK" = 1 ] && RUNS=2
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--runs R]" >&2; exit 2 ;;
  esac
done
bench_init build
need umoci skopeo busybox
on_exit 'for d in "$W"/root/containers/*/; do find /sys/fs/cgroup -maxdepth 4 -type d -path "*/cimg/$(basename "$d")" -exec rmdir {} + ; done'

BASE_MB=200
[ "$QUICK" = 1 ] && BASE_MB=40
rootfs="$W/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag base "usr:$((BASE_MB - 2))" "dir:$rootfs"
skopeo copy --quiet "oci:$W/oci:base" "docker-archive:$W/base.tar:bench/base:1" >/dev/null
"$CIMG" --root "$W/root" load -q -i "$W/base.tar" >/dev/null

ctx="$W/ctx"
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

have_docker=0 have_buildah=0
if docker_start && "${DOCKER[@]}" load -q -i "$W/base.tar" >/dev/null 2>"$W/err" &&
  DOCKER_BUILDKIT=0 "${DOCKER[@]}" build -q -t bench/out:1 "$ctx" >/dev/null 2>"$W/err"; then
  have_docker=1
  peer docker 1
else
  peer docker 0 "${PEER_WHY:-$(tail -c 300 "$W/err")}"
fi
BUILDAH=(buildah --root "$W/buildah" --runroot "$W/buildah-run")
on_exit '"${BUILDAH[@]}" rm -a; "${BUILDAH[@]}" rmi -af; umount_under "$W/buildah"; umount_under "$W/buildah-run"'
if ! command -v buildah >/dev/null; then
  peer buildah 0 "buildah is not installed"
elif "${BUILDAH[@]}" pull -q "docker-archive:$W/base.tar" >/dev/null 2>"$W/err" &&
  "${BUILDAH[@]}" tag "$("${BUILDAH[@]}" images -q | head -1)" bench/base:1 2>>"$W/err" &&
  "${BUILDAH[@]}" bud --layers -q -t bench/out:1 "$ctx" >/dev/null 2>>"$W/err"; then
  have_buildah=1
  peer buildah 1
else
  peer buildah 0 "$(tail -c 300 "$W/err")"
fi

for mode in cold cached; do
  nc=
  [ "$mode" = cold ] && nc=--no-cache
  contender_argv cimg "$CIMG" --root "$W/root" build -q $nc -t bench/out:1 "$ctx"
  [ "$have_docker" = 1 ] && contender_argv docker env DOCKER_BUILDKIT=0 "${DOCKER[@]}" build -q $nc -t bench/out:1 "$ctx"
  [ "$have_buildah" = 1 ] && contender_argv buildah "${BUILDAH[@]}" bud --layers -q $nc -t bench/out:1 "$ctx"
  compare build "$mode: 2 RUN, 1 COPY, 3 metadata steps FROM a ${BASE_MB} MB base" ms "$RUNS" 1
done
