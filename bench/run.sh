#!/usr/bin/env bash
# `cimg run --rm IMAGE /bin/true` beside its peers, in one run, alternating (see docs/runtime.md):
#   cimg   cimg run --rm busybox /bin/true          (image lookup, record, overlay, cgroup, …)
#   runc   runc run on a prepared bundle of the same busybox rootfs (no overlay, no image)
#   floor  unshare -mpiun --fork /bin/true           (namespaces and nothing else)
#   cimg-unconfined   the cimg run with --security-opt seccomp=unconfined (runc's bundle from
#                     `runc spec` has no seccomp profile)
# Prints the median wall time of each, the ratios, and cimg's peak RSS.
# Usage: bash bench/run.sh [--runs R]     Needs: root, a built cimg ($CIMG or build/cimg),
# busybox-static, umoci, skopeo, runc, jq, python3.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CIMG=${CIMG:-$here/build/cimg}
RUNS=51
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    *) echo "usage: $0 [--runs R]" >&2; exit 2 ;;
  esac
done
[ -x "$CIMG" ] || { echo "no cimg binary at $CIMG (build first, or set CIMG)" >&2; exit 1; }
for t in umoci skopeo runc jq python3 unshare busybox; do
  command -v "$t" >/dev/null || { echo "missing $t (tests/setup.sh installs it)" >&2; exit 1; }
done

work=$(mktemp -d /var/tmp/cimg-bench-run.XXXXXX)
cleanup() {
  # Containers of this script only: their cgroups carry the IDs of work's store.
  for d in "$work"/root/containers/*/; do
    id=$(basename "$d")
    find /sys/fs/cgroup -maxdepth 4 -type d -path "*/cimg/$id" -exec rmdir {} + 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

echo "# cimg run benchmark ($(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $("$CIMG" version), $(runc --version | head -1))"

# ---------------------------------------------------------------- one busybox rootfs, two forms
rootfs="$work/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev"
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
skopeo copy --quiet "oci:$oci:bb" "docker-archive:$work/bb.tar:bench/busybox:1" >/dev/null
"$CIMG" --root "$work/root" load -q -i "$work/bb.tar" >/dev/null

bundle="$work/bundle"
mkdir -p "$bundle"
cp -a "$rootfs" "$bundle/rootfs"
(cd "$bundle" && runc spec)
jq '.process.terminal = false | .process.args = ["/bin/true"] | .process.rlimits = []' \
  "$bundle/config.json" >"$bundle/config.json.new"
mv "$bundle/config.json.new" "$bundle/config.json"

# Sanity: each of the three runs and exits 0.
"$CIMG" --root "$work/root" run --rm bench/busybox:1 /bin/true
runc --root "$work/runc-state" run --bundle "$bundle" bench-check </dev/null
unshare -mpiun --fork /bin/true

# ---------------------------------------------------------------- timing, alternating
# python3 times each command (fork+exec+wait, the same overhead for all three). cimg's peak RSS
# is measured apart, under /usr/bin/time: python's posix_spawn runs the child on python's own
# address space until exec, so the rusage it gets back carries python's RSS, not cimg's.
python3 - "$RUNS" "$CIMG" "$work" "$bundle" <<'EOF'
import os, resource, statistics, subprocess, sys, time
runs, cimg, work, bundle = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
cmds = {
    "cimg": [cimg, "--root", work + "/root", "run", "--rm", "bench/busybox:1", "/bin/true"],
    "cimg-unconfined": [cimg, "--root", work + "/root", "run", "--rm", "--security-opt",
                        "seccomp=unconfined", "bench/busybox:1", "/bin/true"],
    "runc": None,
    "floor": ["unshare", "-mpiun", "--fork", "/bin/true"],
}
times = {k: [] for k in cmds}
peak = 0
devnull = open(os.devnull, "r+b")
for i in range(runs + 2):  # the first two rounds warm the caches and are dropped
    for k in ("cimg", "runc", "floor", "cimg-unconfined"):
        argv = cmds[k] or ["runc", "--root", work + "/runc-state", "run", "--bundle", bundle, "b%d" % i]
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0] if argv[0].startswith("/") else "/usr/bin/env",
                             argv if argv[0].startswith("/") else ["env"] + argv, os.environ,
                             file_actions=[(os.POSIX_SPAWN_DUP2, devnull.fileno(), 0),
                                           (os.POSIX_SPAWN_DUP2, devnull.fileno(), 1)])
        _, status, ru = os.wait4(pid, 0)
        t1 = time.perf_counter_ns()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit("%s exited %d" % (k, os.waitstatus_to_exitcode(status)))
        if i >= 2:
            times[k].append((t1 - t0) / 1e6)
med = {k: statistics.median(v) for k, v in times.items()}
for k in ("cimg", "runc", "floor", "cimg-unconfined"):
    v = sorted(times[k])
    print("%-15s median %7.2f ms   (min %6.2f, p90 %6.2f, %d runs)" % (k, med[k], v[0], v[int(len(v) * 0.9)], len(v)))
print("cimg / runc  = %.2f   (goal <= 1.00)" % (med["cimg"] / med["runc"]))
print("cimg / floor = %.2f" % (med["cimg"] / med["floor"]))
print("runc / floor = %.2f" % (med["runc"] / med["floor"]))
print("cimg-unconfined / runc = %.2f   (runc's bundle loads no seccomp profile)" % (med["cimg-unconfined"] / med["runc"]))
EOF
peak=0
for _ in 1 2 3 4 5; do
  kb=$(/usr/bin/time -f %M "$CIMG" --root "$work/root" run --rm bench/busybox:1 /bin/true 2>&1 >/dev/null | tail -n 1)
  [ "$kb" -gt "$peak" ] && peak=$kb
done
awk -v kb="$peak" 'BEGIN {printf "cimg peak RSS: %.1f MiB, the largest of 5 runs under /usr/bin/time (goal <= 8 MiB)\n", kb / 1024}'
