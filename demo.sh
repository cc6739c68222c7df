#!/bin/bash
# A tour of cimg on a fresh Debian 12 machine, as root: install the packages, build cimg, make a
# busybox image from a rootfs, import it, look at it, save it and load it into a second store.
# Every command is printed before it runs. Nothing outside a temp dir is touched, except the
# packages and the build tree (_build, or $CIMG_BUILD_DIR). CIMG_DEMO_KEEP=1 keeps the temp dir.
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
show cmake --build "$build" -j"$(nproc)"
cimg=$build/cimg

work=$(mktemp -d /tmp/cimg-demo.XXXXXX)
cleanup() {
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
echo "# A busybox rootfs: the static busybox and one symlink per applet."
rootfs=$work/rootfs
show mkdir -p "$rootfs/bin" "$rootfs/etc"
show cp /bin/busybox "$rootfs/bin/busybox"
# shellcheck disable=SC2016 # the loop is shown, not run, here
printf '\n$ for a in $(%q --list); do ln -s busybox %q/bin/$a; done\n' "$rootfs/bin/busybox" "$rootfs"
for a in $("$rootfs/bin/busybox" --list); do
  [ "$a" == busybox ] || ln -s busybox "$rootfs/bin/$a"
done
printf '\n$ printf ... > %q/etc/passwd; printf ... > %q/etc/group\n' "$rootfs" "$rootfs"
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
show tar -C "$rootfs" -cf "$work/busybox.tar" .

echo
echo "# Import it into a store of its own ($root1) and look at it."
show "$cimg" --root "$root1" import "$work/busybox.tar" busybox:demo
show "$cimg" --root "$root1" images
show "$cimg" --root "$root1" inspect busybox:demo
show "$cimg" --root "$root1" history busybox:demo

echo
echo "# Save it as a docker-archive (+ OCI layout) and load that into a second store."
show "$cimg" --root "$root1" save -o "$work/busybox-demo.tar" busybox:demo
show tar -tf "$work/busybox-demo.tar"
show "$cimg" --root "$root2" load -i "$work/busybox-demo.tar"
show "$cimg" --root "$root2" images --no-trunc

echo
echo "# Both stores are consistent."
show "$cimg" --root "$root1" system check
show "$cimg" --root "$root2" system check
show "$cimg" --root "$root2" system df

echo
echo "demo: done"
