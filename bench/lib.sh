# shellcheck shell=bash
# bench/lib.sh: what the bench/*.sh scripts share (sourced, not run).
#
#   bench_init NAME      work dir $W under /var/tmp (a loop-mounted ext4 of its own), $CIMG,
#                        $QUICK, $BENCH_RESULTS, the EXIT trap
#   on_exit CMD          run CMD at exit (last registered runs first)
#   start_registry [NAME] a docker-registry on a free loopback port: $REG (host:port)
#   make_pull_images     big:1 and five:1 there (pull.sh's and push.sh's images)
#   push_layout DIR:TAG NAME:TAG   skopeo copy of an OCI layout into $REG
#   docker_start         a private dockerd (own socket, data-root, exec-root; no iptables, no
#                        bridge); sets DOCKER (argv prefix) or returns 1 with $PEER_WHY
#   podman_ready         checks that podman runs here; PODMAN (argv prefix, private store)
#   peer NAME OK WHY     records a peer's version and whether it runs here (for docs/benchmarks.md)
#   timer                bench/timer.py: reads one comparison as JSON on stdin
#   jargs ARG...         a JSON array of its arguments (argv for timer's "cmd")
#
# Every process this library starts is killed by PID at exit, and every mount left under $W
# (podman's and docker's overlays) is unmounted before $W is removed.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SRC=$(cd "$BENCH_DIR/.." && pwd)
# The project's build tree is _build (tests/run-all.sh, demo.sh); build/ holds the sources of
# the Dockerfile builder.
CIMG=${CIMG:-${CIMG_BUILD_DIR:-$SRC/_build}/cimg}
QUICK=${BENCH_QUICK:-0}
DOCKER_BIN=/usr/bin/docker # docker.io's client, not whatever else is first on PATH

_exit_cmds=()
on_exit() { _exit_cmds+=("$1"); }

_bench_cleanup() {
  local i
  for ((i = ${#_exit_cmds[@]} - 1; i >= 0; i--)); do
    eval "${_exit_cmds[$i]}" >/dev/null 2>&1 || true
  done
  umount_under "$W"
  rm -rf --one-file-system "$W" 2>/dev/null || true
  rmdir "$W" 2>/dev/null || true
  rm -f "$W.img"
}

# Unmount everything mounted at or below $1, deepest first (lazily if busy).
umount_under() {
  [ -n "${1:-}" ] || return 0
  local m
  awk -v p="$1" '$5 == p || index($5, p "/") == 1 {print $5}' /proc/self/mountinfo | sort -r |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
}

# Kill one process we started, by PID: TERM, then KILL after $2 seconds (default 10).
kill_pid() {
  local pid=$1 t=${2:-10} i
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < t * 10; i++)); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}

bench_init() {
  local name=$1
  [ "$(id -u)" -eq 0 ] || { echo "bench/$name: needs root" >&2; exit 1; }
  [ -x "$CIMG" ] || { echo "bench/$name: no cimg at $CIMG (build it, or set CIMG)" >&2; exit 1; }
  W=$(mktemp -d "/var/tmp/cimg-bench-$name.XXXXXX")
  trap _bench_cleanup EXIT
  trap 'exit 130' INT TERM
  # A file system of the benchmark's own (ext4, as /, on a sparse loop file): `sync -f` and
  # cimg's syncfs then flush only what the contender wrote, not the dirty pages of the other
  # jobs compiling on this shared machine, which made a whole-system `sync` cost 0.1-10 s.
  # The loop device does direct I/O to its file, as a partition writes to its disk: buffered,
  # every byte went through a second page cache (the image file's, on /), and each flush of
  # the file system became an fsync of that file: costs no disk has (cimg's one-layer pull:
  # 1.36-1.41 s buffered, 1.13-1.28 s direct, medians of three pull.sh runs each; the peers'
  # did not move). BENCH_LOOP_DIO=0: buffered.
  LOOP_DIO=none
  if [ "${BENCH_LOOPFS:-1}" = 1 ]; then
    truncate -s "${BENCH_FS_GB:-60}G" "$W.img"
    on_exit "rm -f $W.img"
    mkfs.ext4 -q -E lazy_itable_init=1,lazy_journal_init=1 "$W.img"
    local dev
    if [ "${BENCH_LOOP_DIO:-1}" = 1 ]; then
      dev=$(losetup --find --show --direct-io=on "$W.img")
    else
      dev=$(losetup --find --show "$W.img")
    fi
    LOOP_DIO=$(cat "/sys/block/${dev#/dev/}/loop/dio" 2>/dev/null || echo "?")
    mount "$dev" "$W" || { losetup -d "$dev"; exit 1; }
    losetup -d "$dev" # set to detach itself when unmounted
  fi
  if [ -z "${BENCH_RESULTS:-}" ]; then
    export BENCH_RESULTS=$W/results.jsonl
  fi
  echo "# bench/$name.sh $(date -u +%Y-%m-%dT%H:%M:%SZ), $("$CIMG" version), quick=$QUICK, loop dio=$LOOP_DIO, load $(cut -d' ' -f1-3 /proc/loadavg)"
}

need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "bench: $t is missing (bench/all.sh installs the peers)" >&2; exit 1; }
  done
}

timer() { python3 "$BENCH_DIR/timer.py"; }

jargs() { python3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' "$@"; }

# The version line of a peer; nothing (and no failure: set -e) when it is not installed.
peer_version() {
  case $1 in
    docker) "$DOCKER_BIN" --version ;;
    *) "$1" --version ;;
  esac 2>/dev/null | head -1
}

# peer NAME OK(0|1) WHY: one line per peer and script in the results (the doc lists them).
peer() {
  local name=$1 ok=$2 why=${3:-} ver=""
  ver=$(peer_version "$name") || ver=""
  python3 -c 'import json, sys; print(json.dumps({"peer": sys.argv[1], "version": sys.argv[2], "ok": sys.argv[3] == "1", "why": sys.argv[4], "script": sys.argv[5]}))' \
    "$name" "$ver" "$ok" "$why" "$(basename "$0")" >>"$BENCH_RESULTS"
  if [ "$ok" = 1 ]; then echo "# peer $name: ${ver:-?}"; else echo "# peer $name: cannot run here: $why"; fi
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_registry [NAME]: its storage is $W/NAME (default: registry), so that a second one (a
# push's destination) keeps its blobs apart.
REG=
start_registry() {
  local port name=${1:-registry}
  port=$(free_port)
  mkdir -p "$W/$name"
  printf 'version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$W/$name" "$port" >"$W/$name.yml"
  docker-registry serve "$W/$name.yml" >"$W/$name.log" 2>&1 &
  local pid=$!
  on_exit "kill_pid $pid 5"
  REG=127.0.0.1:$port
  for _ in $(seq 1 100); do
    curl -sf "http://$REG/v2/" >/dev/null && return 0
    sleep 0.1
  done
  echo "bench: docker-registry did not start" >&2
  exit 1
}

push_layout() {
  skopeo copy --quiet --dest-tls-verify=false "oci:$1" "docker://$REG/$2" >/dev/null
}

# make_pull_images: the two images bench/pull.sh and bench/push.sh time (bench/mkimage.py: host
# files from /usr, gzip -6), big (one ~100 MB-gzip layer) and five (five layers of ~20 MB), in
# the layout $W/oci and pushed to $REG as big:1 and five:1. Small with BENCH_QUICK=1.
make_pull_images() {
  local big=240 five=50
  [ "$QUICK" = 1 ] && big=40 five=8
  echo "# making the images (bench/mkimage.py) …"
  python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag big "usr:$big"
  python3 "$BENCH_DIR/mkimage.py" --layout "$W/oci" --tag five "usr:$five" "usr:$five" "usr:$five" "usr:$five" "usr:$five"
  push_layout "$W/oci:big" big:1
  push_layout "$W/oci:five" five:1
}

# The parent cgroups a peer creates on first use (docker/, libpod_parent/ under each controller):
# removed at exit when they did not exist before and hold nothing (rmdir refuses a busy one).
cg_forget() {
  local name=$1
  ls -d /sys/fs/cgroup/*/"$name" >/dev/null 2>&1 && return 0
  on_exit "find /sys/fs/cgroup/*/$name -depth -type d -exec rmdir {} \\; 2>/dev/null"
}

# A private dockerd: nothing of the host's docker (if any) is touched, and it is gone at exit.
DOCKER=()
docker_start() {
  PEER_WHY=
  if ! command -v dockerd >/dev/null || [ ! -x "$DOCKER_BIN" ]; then
    PEER_WHY="docker.io is not installed"
    return 1
  fi
  local d=$W/docker
  cg_forget docker
  mkdir -p "$d/data" "$d/exec"
  dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
    --host "unix://$d/docker.sock" --iptables=false --ip-masq=false --bridge=none \
    --insecure-registry 127.0.0.0/8 --log-level error >"$d/dockerd.log" 2>&1 &
  local pid=$!
  # dockerd stops its own containerd on TERM; its containers die with their shims.
  on_exit "docker_stop $pid"
  DOCKER=("$DOCKER_BIN" -H "unix://$d/docker.sock")
  for _ in $(seq 1 300); do
    "${DOCKER[@]}" version >/dev/null 2>&1 && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  PEER_WHY="dockerd did not start: $(tail -n 3 "$d/dockerd.log" | tr '\n' ' ')"
  return 1
}

docker_stop() {
  local pid=$1
  "${DOCKER[@]}" ps -aq 2>/dev/null | xargs -r "${DOCKER[@]}" rm -f >/dev/null 2>&1 || true
  kill_pid "$pid" 30
  umount_under "$W/docker"
}

# podman with a private store. /etc/containers/containers.conf as ../shared/PEERS.md gives it is
# written when absent (never overwritten): without it podman run fails on this VM.
PODMAN=()
export PEER_WHY=
podman_ready() {
  PEER_WHY=
  command -v podman >/dev/null || { PEER_WHY="podman is not installed"; return 1; }
  cg_forget libpod_parent
  if [ ! -e /etc/containers/containers.conf ]; then
    # ../shared/PEERS.md: the ulimits podman asks for by default are refused in this VM, and
    # crun refuses the hybrid cgroup layout.
    mkdir -p /etc/containers
    printf '[containers]\ndefault_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]\n[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n' \
      >/etc/containers/containers.conf
    echo "# wrote /etc/containers/containers.conf (it was absent; podman cannot run here without it, see PEERS.md)"
    python3 -c 'import json; print(json.dumps({"bench": "note", "case": "bench wrote /etc/containers/containers.conf (absent before): runtime runc, cgroupfs, ulimits 4096, as PEERS.md says", "errors": {}, "times": {}, "order": []}))' >>"$BENCH_RESULTS"
  fi
  PODMAN=(podman --root "$W/podman" --runroot "$W/podman-run" --tmpdir "$W/podman-tmp")
  mkdir -p "$W/podman-tmp"
  on_exit "podman_stop"
  return 0
}

# Containers stopped and removed (conmon exits with them); the images go with the private
# store's directory: `rmi -a` of 1000 images takes podman minutes.
podman_stop() {
  [ -d "$W/podman" ] || return 0
  "${PODMAN[@]}" rm -af -t 0 >/dev/null 2>&1 || true
  umount_under "$W/podman"
  umount_under "$W/podman-run"
  rm -rf --one-file-system "$W/podman" "$W/podman-run"
}

# contender NAME CMD [PREP [POST]]: one side of the next comparison; CMD is shell text (timed
# with bash's start-up, ~1 ms: use contender_argv for commands of a few ms).
_cont=()
contender() {
  _cont+=("$(python3 -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "cmd": sys.argv[2], "prep": sys.argv[3], "post": sys.argv[4]}))' "$1" "$2" "${3:-}" "${4:-}")")
}
contender_argv() {
  local name=$1
  shift
  _cont+=("$(python3 -c 'import json, sys; print(json.dumps({"name": sys.argv[1], "cmd": sys.argv[2:]}))' "$name" "$@")")
}

# compare BENCH CASE UNIT RUNS WARMUP [CURVE X]: time the contenders given since the last
# compare, alternating, and append the record to $BENCH_RESULTS.
compare() {
  printf '%s\n' "${_cont[@]}" | python3 -c '
import json, sys
a = sys.argv[1:]
spec = {"bench": a[0], "case": a[1], "unit": a[2], "runs": int(a[3]), "warmup": int(a[4]),
        "contenders": [json.loads(l) for l in sys.stdin if l.strip()]}
if len(a) > 6:
    spec["curve"], spec["x"] = a[5], float(a[6])
print(json.dumps(spec))' "$@" | timer || true
  _cont=()
}

# instr CURVE X TOOL CMD...: the instructions CMD executes (valgrind --tool=callgrind), in
# millions, recorded as a point of CURVE: unlike wall time, stable on a loaded machine.
instr() {
  local curve=$1 x=$2 tool=$3
  shift 3
  command -v valgrind >/dev/null || return 0
  local n
  n=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null | awk '/refs:/ {gsub(",", "", $NF); print $NF}')
  [ -n "$n" ] || return 0
  python3 -c 'import json, sys; a = sys.argv; print(json.dumps({"bench": "instructions", "case": "%s at %s" % (a[1], a[2]), "curve": a[1], "x": float(a[2]), "unit": "M instr", "runs": 1, "warmup": 0, "order": [a[3]], "times": {a[3]: [int(a[4]) / 1e6]}, "errors": {}}))' \
    "$curve" "$x" "$tool" "$n" >>"$BENCH_RESULTS"
  echo "$curve at $x: $((n / 1000000)) M instructions"
}

# Medians of a list of numbers on stdin.
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
