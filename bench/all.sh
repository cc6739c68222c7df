#!/usr/bin/env bash
# bench/all.sh: every benchmark, then docs/benchmarks.md and docs/bench/*.png.
#   bench/pull.sh   pull vs docker, podman, skopeo+umoci, the floor; pull curves
#   bench/push.sh   push to an empty registry vs skopeo copy, podman push
#   bench/run.sh    run --rm vs runc, docker, podman, the floor; run vs layer count
#   bench/build.sh  build cold and cached vs docker's legacy builder, buildah --layers
#   bench/store.sh  images vs docker, podman; images/tag/load-many curves; load vs the floor
#   bench/ps.sh     ps vs docker, podman; ps and monitor-memory curves
#   bench/lifecycle.sh  (when present) its output is kept in the doc as it printed it
# Peers missing here are installed from Debian's archive first. A script that fails does not
# stop the others: its failure is in the doc.
# Usage: bash bench/all.sh [--only "pull run …"] [--keep] [--render]
#   --keep    add to the results already in $BENCH_OUT (a run in parts) instead of starting over
#   --render  only write the doc and charts again from the results in $BENCH_OUT
# Env: CIMG (default $CIMG_BUILD_DIR/cimg or _build/cimg, built there if missing),
#      BENCH_QUICK=1 (a quick development pass),
#      BENCH_BIG=1 (adds the 1 GB layer and 10 000 images), BENCH_PS_MAX, BENCH_OUT (keep the
#      raw results and logs there), BENCH_DOC (default docs/benchmarks.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$here/.." && pwd)
ONLY="pull push run build store ps lifecycle"
KEEP=0
RENDER_ONLY=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) ONLY=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    --render) RENDER_ONLY=1; shift ;;
    *) echo "usage: $0 [--only \"pull push run build store ps lifecycle\"] [--keep] [--render]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" -eq 0 ] || { echo "bench/all.sh: needs root (containers, mounts, dockerd)" >&2; exit 1; }

# ---------------------------------------------------------------- peers and tools
want=()
for pair in skopeo:skopeo umoci:umoci runc:runc buildah:buildah podman:podman dockerd:docker.io \
  gnuplot:gnuplot-nox hyperfine:hyperfine docker-registry:docker-registry busybox:busybox-static \
  jq:jq curl:curl; do
  command -v "${pair%%:*}" >/dev/null || want+=("${pair##*:}")
done
[ -x /usr/bin/docker ] || want+=(docker.io)
if [ ${#want[@]} -gt 0 ] && [ "$RENDER_ONLY" = 0 ]; then
  echo "# installing: ${want[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y "${want[@]}" >/dev/null
fi

if [ -z "${CIMG:-}" ]; then
  bdir=${CIMG_BUILD_DIR:-$SRC/_build}
  export CIMG=$bdir/cimg
  if [ ! -x "$CIMG" ] && [ "$RENDER_ONLY" = 0 ]; then
    echo "# building cimg in $bdir"
    cmake -S "$SRC" -B "$bdir" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$bdir" -j"$(nproc)" --target cimg >/dev/null
  fi
fi
export CIMG

OUT=${BENCH_OUT:-}
if [ -z "$OUT" ]; then
  OUT=$(mktemp -d /var/tmp/cimg-bench-all.XXXXXX)
  trap 'rm -rf "$OUT"' EXIT
fi
mkdir -p "$OUT"
export BENCH_RESULTS=$OUT/results.jsonl
DOC=${BENCH_DOC:-$SRC/docs/benchmarks.md}
render() {
  python3 "$here/report.py" "$BENCH_RESULTS" "$OUT/machine.json" "$here/notes.md" "$DOC" \
    "$(dirname "$DOC")/bench" "$OUT"
  echo "# wrote $DOC and $(dirname "$DOC")/bench/*.png"
}
if [ "$RENDER_ONLY" = 1 ]; then
  render
  exit 0
fi
[ "$KEEP" = 1 ] || : >"$BENCH_RESULTS"
mode="full"
[ "${BENCH_QUICK:-0}" = 1 ] && mode="quick mode (BENCH_QUICK=1: few runs, small sizes)"
[ "${BENCH_BIG:-0}" = 1 ] && mode+=", BENCH_BIG=1"

# ---------------------------------------------------------------- the machine
cgroups=$(awk '$9 == "cgroup" {n = split($NF, o, ","); for (i = 1; i <= n; i++) if (o[i] ~ /^(cpu|cpuacct|cpuset|memory|devices|freezer|blkio|pids|net_cls|net_prio|perf_event|hugetlb|rdma|misc)$/) c[o[i]] = 1}
  $9 == "cgroup2" {v2 = v2 " " $5}
  END {for (k in c) l = l " " k; printf "v1 controllers:%s; cgroup2 at:%s", (l ? l : " none"), (v2 ? v2 : " none")}' /proc/self/mountinfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
[ "$KEEP" = 1 ] && [ -f "$OUT/machine.json" ] || python3 - "$OUT/machine.json" "$mode" "$cgroups" "$load_before" "$CIMG" "$SRC" <<'EOF'
import json, os, platform, subprocess, sys, time
out, mode, cg, load, cimg, src = sys.argv[1:]
def sh(c):
    try:
        return subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return ""
cpu = sh("lscpu | awk -F: '/Model name/ {gsub(/^ +/, \"\", $2); print $2; exit}'")
hv = sh("lscpu | awk -F: '/Hypervisor vendor/ {gsub(/^ +/, \"\", $2); print $2}'")
mem = int(sh("awk '/MemTotal/ {print $2}' /proc/meminfo") or 0)
osr = sh(". /etc/os-release && echo $PRETTY_NAME")
commit = sh("git -C %s log -1 --format='%%h %%s'" % src)
dirty = sh("git -C %s status --porcelain -uno | wc -l" % src)
m = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "mode": mode,
     "cpu": cpu + (" (%s guest)" % hv if hv else ""), "cores": str(os.cpu_count()),
     "ram": "%.1f GiB" % (mem / 1048576), "kernel": platform.release(), "os": osr,
     "fs": sh("df -T /var/tmp | awk 'NR == 2 {print $2 \" on \" $1}'") + " (all stores under /var/tmp)",
     "cgroups": cg + " (the hybrid layout)" if "cgroup2" in cg else cg,
     "cimg": "%s, %s (commit %s%s)" % (sh(cimg + " version"), cimg, commit,
                                      ", with uncommitted changes" if dirty not in ("", "0") else ""),
     "load_before": load + " (1, 5, 15 min; %d cores shared with other work)" % os.cpu_count()}
json.dump(m, open(out, "w"))
EOF

# ---------------------------------------------------------------- the benchmarks
failed=()
for s in $ONLY; do
  script=$here/$s.sh
  if [ ! -f "$script" ]; then
    [ "$s" = lifecycle ] && { echo "# bench/lifecycle.sh does not exist yet: skipped"; continue; }
    echo "no bench/$s.sh" >&2
    exit 2
  fi
  echo "# ---- bench/$s.sh"
  args=()
  # lifecycle.sh (another helper's) has no quick mode of its own: a smaller N instead.
  [ "$s" = lifecycle ] && [ "${BENCH_QUICK:-0}" = 1 ] && args=(-n 20 --runs 5)
  if ! bash "$script" "${args[@]}" 2>&1 | tee "$OUT/$s.out"; then
    failed+=("$s")
  fi
  # pipefail makes the tee pipeline report the script's status.
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$OUT/machine.json" "$load_after" "${failed[*]:-}" <<'EOF'
import json, sys
p, load, failed = sys.argv[1:]
m = json.load(open(p))
m["load_after"] = load + (" — bench scripts that failed: " + failed if failed else "")
m.setdefault("parts", []).append(load)
json.dump(m, open(p, "w"))
EOF

render
[ ${#failed[@]} -eq 0 ] || { echo "# failed: ${failed[*]}" >&2; exit 1; }
