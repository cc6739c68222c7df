#!/bin/bash
# The main job of cimg on an embedded default, on a fresh Debian 12 machine as root: install the
# packages, build cimg, start a docker-registry on 127.0.0.1, put a small busybox image there
# with peers (umoci makes it, skopeo pushes it), then with cimg: pull it, list and inspect it,
# run containers from it (with limits), push it back under another name, save it and load it into
# a second store, and check both stores. Every command is printed before it runs. Nothing
# outside a temp dir is touched but the packages and the build tree (_build, or
# $CIMG_BUILD_DIR); the registry is stopped at the end. CIMG_DEMO_KEEP=1 keeps the temp dir.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=${CIMG_BUILD_DIR:-$src/_build}

show() {
  printf '\n$'
  printf ' %q' "$@"
  printf '\n'
  "$@"
}

show bash "$src/tests/setup.sh"
show cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo
show cmake --build "$build" -j"$(nproc)" --target cimg
cimg=$build/cimg

work=$(mktemp -d /tmp/cimg-demo.XXXXXX)
registry_pid=
cleanup() {
  if [ -n "$registry_pid" ]; then
    kill "$registry_pid" 2>/dev/null || true
    wait "$registry_pid" 2>/dev/null || true
  fi
  if [ "${CIMG_DEMO_KEEP:-0}" == 1 ]; then
    echo "kept $work"
  else
    rm -rf --one-file-system "$work"
  fi
}
trap cleanup EXIT
root1=$work/root1
root2=$work/root2

echo
echo "# A registry on loopback (docker-registry, the Debian package)."
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$work/registry"
cat >"$work/registry/config.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry/storage}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$port}
EOF
docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
registry_pid=$!
for _ in $(seq 1 100); do
  if python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=1)' \
    "http://127.0.0.1:$port/v2/" 2>/dev/null; then
    break
  fi
  sleep 0.1
done
registry=127.0.0.1:$port
echo "docker-registry (pid $registry_pid) on $registry"

echo
echo "# A small image, made by peers: a busybox-static rootfs, packed by umoci, pushed by skopeo."
rootfs=$work/bundle/rootfs
show umoci init --layout "$work/oci"
show umoci new --image "$work/oci:busybox"
show umoci unpack --image "$work/oci:busybox" "$work/bundle"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do
  [ "$a" == busybox ] || ln -s busybox "$rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$rootfs/etc/group"
echo "(busybox and $(ls "$rootfs/bin" | wc -l) applet links in $rootfs)"
show umoci repack --image "$work/oci:busybox" "$work/bundle"
show umoci config --image "$work/oci:busybox" --config.cmd=/bin/sh
show skopeo copy --quiet --dest-tls-verify=false "oci:$work/oci:busybox" "docker://$registry/demo/busybox:1"

echo
echo "# cimg: pull it into a store of its own, list it, inspect it."
show "$cimg" --root "$root1" pull "$registry/demo/busybox:1"
show "$cimg" --root "$root1" images
show "$cimg" --root "$root1" inspect "$registry/demo/busybox:1"
show "$cimg" --root "$root1" history "$registry/demo/busybox:1"

echo
echo "# Run containers: namespaced, cgroup-limited, on an overlay of the image's layers."
show "$cimg" --root "$root1" run --rm "$registry/demo/busybox:1" echo "hello from a cimg container"
show "$cimg" --root "$root1" run --rm --hostname demo -m 64m --pids-limit 50 \
  "$registry/demo/busybox:1" sh -c 'echo "pid $$ on $(hostname)"; grep CapEff /proc/self/status; ip -o link'
show "$cimg" --root "$root1" run --name demo1 "$registry/demo/busybox:1" sh -c 'echo written > /tmp/f; exit 3' ||
  echo "(exit status $?, as the command's)"
show "$cimg" --root "$root1" ps -a
show "$cimg" --root "$root1" rm demo1

echo
echo "# Build an image from a Dockerfile FROM the pulled one, then run it; a second build is cached."
mkdir -p "$work/ctx"
printf 'hello from a file the build copied\n' >"$work/ctx/greeting.txt"
cat >"$work/ctx/Dockerfile" <<EOF
FROM $registry/demo/busybox:1
ARG WHO=demo
ENV GREETER=\$WHO
WORKDIR /app
COPY greeting.txt .
RUN echo "built by \$GREETER" > built.txt
CMD ["sh", "-c", "cat /app/greeting.txt /app/built.txt"]
EOF
show cat "$work/ctx/Dockerfile"
show "$cimg" --root "$root1" build -t demo/app:1 "$work/ctx"
show "$cimg" --root "$root1" run --rm demo/app:1
show "$cimg" --root "$root1" build -t demo/app:1 "$work/ctx"

echo
echo "# Push it back under another name; skopeo reads what cimg wrote."
show "$cimg" --root "$root1" tag "$registry/demo/busybox:1" "$registry/demo/copy:1"
show "$cimg" --root "$root1" push "$registry/demo/copy:1"
show skopeo inspect --tls-verify=false "docker://$registry/demo/copy:1"

echo
echo "# Save it (docker-archive + OCI layout in one tar) and load that into a second store."
show "$cimg" --root "$root1" save -o "$work/busybox.tar" "$registry/demo/busybox:1"
show "$cimg" --root "$root2" load -i "$work/busybox.tar"
show "$cimg" --root "$root2" images --no-trunc

echo
echo "# Both stores are consistent."
show "$cimg" --root "$root1" system check
show "$cimg" --root "$root2" system check
show "$cimg" --root "$root1" system df

echo
echo "# The image loaded into the second store runs there too."
show "$cimg" --root "$root2" run --rm "$registry/demo/busybox:1" sh -c 'echo "hello again from $(hostname), as $(id -un)"'

echo
echo "demo: done"
