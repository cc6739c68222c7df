#!/usr/bin/env bash
# bench/ps.sh: running containers.
#   - `cimg ps` latency against the number of running detached containers (1, 10, 50, 100,
#     200; BENCH_PS_MAX caps it) and the memory they cost: the sum of the private memory
#     (Private_Clean + Private_Dirty of smaps_rollup) of the per-container monitors;
#   - at 100 containers (or BENCH_PS_MAX if lower) `docker ps` and `podman ps`, each with as
#     many running containers of its own, and the private memory of their per-container
#     processes (containerd-shim-runc-v2, conmon) beside cimg's monitors.
# Every container runs busybox `sleep`. Usage: bash bench/ps.sh
# Env: CIMG (default _build/cimg), BENCH_QUICK=1 (up to 20 containers), BENCH_PS_MAX, BENCH_RESULTS.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

MAX=${BENCH_PS_MAX:-200}
[ "$QUICK" = 1 ] && MAX=${BENCH_PS_MAX:-20}
HEAD=100
[ "$MAX" -lt "$HEAD" ] && HEAD=$MAX
IRUNS=21
[ "$QUICK" = 1 ] && IRUNS=7
bench_init ps
need umoci skopeo busybox
# Only this store's containers: rm -f through cimg, then their cgroups.
on_exit '"$CIMG" --root "$W/root" ps -aq --no-trunc | xargs -r "$CIMG" --root "$W/root" rm -f; for d in "$W"/root/containers/*/; do find /sys/fs/cgroup -maxdepth 4 -type d -path "*/cimg/$(basename "$d")" -exec rmdir {} + ; done'

rootfs="$W/rootfs"
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for a in $("$rootfs/bin/busybox" --list); do
  [ "$a" = busybox ] || ln -s busybox "$rootfs/bin/$a"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"
python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag bb "dir:$rootfs" >/dev/null
skopeo copy --quiet "oci:$W/oci:bb" "docker-archive:$W/bb.tar:bench/busybox:1" >/dev/null
"$CIMG" --root "$W/root" load -q -i "$W/bb.tar" >/dev/null

# private_kib PID...: the sum of their private memory in KiB.
private_kib() {
  local p s=0 k
  for p in "$@"; do
    k=$(awk '/^Private_(Clean|Dirty|Hugetlb):/ {s += $2} END {print s + 0}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    s=$((s + k))
  done
  echo "$s"
}
mem_record() { # CURVE X TOOL KIB [TOOL KIB]...
  python3 -c 'import json, sys; a = sys.argv; tools = a[3::2]; print(json.dumps({"bench": "memory", "case": "private memory of the per-container processes (cimg: monitor, docker: containerd-shim, podman: conmon) with %s running containers" % a[2], "curve": a[1] or None, "x": int(a[2]), "unit": "MiB", "runs": 1, "warmup": 0, "order": tools, "times": {t: [int(k) / 1024] for t, k in zip(tools, a[4::2])}, "errors": {}}))' "$@" >>"$BENCH_RESULTS"
}

# ---------------------------------------------------------------- the peers' containers
have_docker=0 have_podman=0
if docker_start && "${DOCKER[@]}" load -q -i "$W/bb.tar" >/dev/null 2>"$W/err"; then
  have_docker=1
  peer docker 1
else
  peer docker 0 "${PEER_WHY:-$(tail -c 300 "$W/err")}"
fi
if podman_ready && "${PODMAN[@]}" load -q -i "$W/bb.tar" >/dev/null 2>"$W/err"; then
  have_podman=1
  peer podman 1
else
  peer podman 0 "${PEER_WHY:-$(tail -c 300 "$W/err")}"
fi
if [ "$have_docker" = 1 ]; then
  echo "# starting $HEAD docker containers …"
  for i in $(seq 1 "$HEAD"); do
    "${DOCKER[@]}" run -d --network none bench/busybox:1 sleep 100000 >/dev/null 2>"$W/err" || { have_docker=0; peer docker 0 "docker run -d failed at container $i: $(tail -c 300 "$W/err")"; break; }
  done
fi
if [ "$have_podman" = 1 ]; then
  echo "# starting $HEAD podman containers …"
  for i in $(seq 1 "$HEAD"); do
    "${PODMAN[@]}" run -d --network none bench/busybox:1 sleep 100000 >/dev/null 2>"$W/err" || { have_podman=0; peer podman 0 "podman run -d failed at container $i: $(tail -c 300 "$W/err")"; break; }
  done
fi

# ---------------------------------------------------------------- cimg: the curve
monitors() {
  local d
  for d in "$W"/root/containers/*/; do
    jq -r '.MonitorPid // 0' "$d/state.json" 2>/dev/null
  done | awk '$1 > 0'
}
running=0
for n in 1 10 50 100 200; do
  [ "$n" -le "$MAX" ] || break
  while [ "$running" -lt "$n" ]; do
    "$CIMG" --root "$W/root" run -d bench/busybox:1 sleep 100000 >/dev/null
    running=$((running + 1))
  done
  lines=$("$CIMG" --root "$W/root" ps -q | wc -l)
  [ "$lines" -eq "$n" ] || { echo "ps lists $lines running containers, expected $n" >&2; exit 1; }
  sleep 1 # let the monitors settle (malloc_trim after start)
  mapfile -t pids < <(monitors)
  kib=$(private_kib "${pids[@]}")
  mem_record monitors "$n" cimg "$kib"
  echo "cimg: $n containers, ${#pids[@]} monitors, private memory $((kib / 1024)) MiB in all ($((kib / ${#pids[@]})) KiB each)"
  contender_argv cimg "$CIMG" --root "$W/root" ps
  compare ps-curve "ps with $n running containers" ms "$IRUNS" 2 ps "$n"
  instr ps-instr "$n" cimg "$CIMG" --root "$W/root" ps
done
# A head-to-head when the curve did not stop at HEAD (BENCH_PS_MAX not on a curve point).
if [ "$running" -ne "$HEAD" ]; then
  "$CIMG" --root "$W/root" ps -q --no-trunc | tail -n +$((HEAD + 1)) | xargs -r "$CIMG" --root "$W/root" rm -f >/dev/null
  while [ "$("$CIMG" --root "$W/root" ps -q | wc -l)" -lt "$HEAD" ]; do
    "$CIMG" --root "$W/root" run -d bench/busybox:1 sleep 100000 >/dev/null
  done
fi

# ---------------------------------------------------------------- head to head at HEAD
mapfile -t pids < <(monitors)
mem=(cimg "$(private_kib "${pids[@]}")")
contender_argv cimg "$CIMG" --root "$W/root" ps
if [ "$have_docker" = 1 ]; then
  contender_argv docker "${DOCKER[@]}" ps
  mapfile -t shims < <("${DOCKER[@]}" ps -q | xargs -r "${DOCKER[@]}" inspect -f '{{.State.Pid}}' | while read -r p; do awk '/^PPid:/ {print $2}' "/proc/$p/status"; done)
  kib=$(private_kib "${shims[@]}")
  mem+=(docker "$kib")
  echo "docker: $HEAD containers, ${#shims[@]} shims, private memory $((kib / 1024)) MiB in all"
fi
if [ "$have_podman" = 1 ]; then
  contender_argv podman "${PODMAN[@]}" ps
  mapfile -t conmons < <("${PODMAN[@]}" ps -q | xargs -r "${PODMAN[@]}" inspect -f '{{.State.ConmonPid}}')
  kib=$(private_kib "${conmons[@]}")
  mem+=(podman "$kib")
  echo "podman: $HEAD containers, ${#conmons[@]} conmons, private memory $((kib / 1024)) MiB in all"
fi
mem_record "" "$HEAD" "${mem[@]}"
compare ps "ps with $HEAD running containers" ms "$IRUNS" 2
