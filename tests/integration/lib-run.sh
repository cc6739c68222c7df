# shellcheck shell=bash
# Helpers for the tests of `cimg run`, `ps` and `rm`: sourced after lib.sh.
#
# Fixtures: the busybox image of lib.sh (made by umoci, written by skopeo), and "busybox:app",
# derived from it with umoci: a user app (1000:1000) that is also a member of group staff (50),
# a non-executable file /bin/notexec, and a config with Env, WorkingDir and Entrypoint unset.
#
# Clean-up: on exit, whatever happened, every cgroup named after a container of the test's
# store is emptied (SIGKILL of the processes in it, which only this test started) and removed,
# before lib.sh's own clean-up (processes, mounts, temp dir).

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

RUN_IMG=busybox:run
APP_IMG=busybox:app

# container_ids: the full IDs of the test store's containers (directories under containers/).
container_ids() {
  [ -d "$CIMG_ROOT/containers" ] || return 0
  find "$CIMG_ROOT/containers" -mindepth 1 -maxdepth 1 -type d -regextype posix-extended \
    -regex '.*/[0-9a-f]{64}' -printf '%f\n'
}

# cgroup_dirs ID: the cgroup directories of container ID in every hierarchy.
cgroup_dirs() {
  local id=$1
  find /sys/fs/cgroup -mindepth 2 -maxdepth 4 -type d -path "*/cimg/$id" 2>/dev/null || true
}

# count_container_cgroups: cgroup directories named like a container ID (64 hex) under any
# hierarchy's cimg/ (those of every cimg on the machine, not only this test's).
count_container_cgroups() {
  find /sys/fs/cgroup -mindepth 2 -maxdepth 4 -type d -regextype posix-extended \
    -regex '.*/cimg/[0-9a-f]{64}' 2>/dev/null | wc -l
}

_RUN_SEEN_IDS=()

_run_cleanup_cgroups() {
  local id d pid
  mapfile -t -O "${#_RUN_SEEN_IDS[@]}" _RUN_SEEN_IDS < <(container_ids)
  for id in "${_RUN_SEEN_IDS[@]}"; do
    for d in $(cgroup_dirs "$id"); do
      if [ -f "$d/cgroup.procs" ]; then
        while read -r pid; do
          [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
        done <"$d/cgroup.procs"
      fi
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        rmdir "$d" 2>/dev/null && break
        sleep 0.1
      done
    done
  done
}

# Chain our clean-up before lib.sh's, keeping the exit status it reports.
_run_exit() {
  local rc=$?
  set +e # (exit "$rc") below must not end the trap under errexit
  _run_cleanup_cgroups
  (exit "$rc")
  _cimg_test_exit
}
trap _run_exit EXIT

# remember_ids: note the IDs now in the store (for the cgroup clean-up, even after rm).
remember_ids() {
  mapfile -t -O "${#_RUN_SEEN_IDS[@]}" _RUN_SEEN_IDS < <(container_ids)
}

# load_run_fixtures: load busybox:run and busybox:app into the test store.
load_run_fixtures() {
  make_fixture_docker_archive "$TEST_TMP/busybox-run.tar" "$RUN_IMG"
  must cimg load -i "$TEST_TMP/busybox-run.tar"

  local oci="$TEST_TMP/oci-app" work="$TEST_TMP/oci-app-work"
  make_fixture_oci "$oci" app
  _quietly umoci-unpack-app umoci unpack --image "$oci:app" "$work"
  printf 'app:x:1000:1000:app:/home/app:/bin/sh\n' >>"$work/rootfs/etc/passwd"
  printf 'app:x:1000:\nstaff:x:50:app\n' >>"$work/rootfs/etc/group"
  mkdir -p "$work/rootfs/home/app"
  chown 1000:1000 "$work/rootfs/home/app"
  printf '#!/bin/sh\necho never\n' >"$work/rootfs/bin/notexec"
  chmod 0644 "$work/rootfs/bin/notexec"
  _quietly umoci-repack-app umoci repack --image "$oci:app" "$work"
  _quietly umoci-config-app umoci config --image "$oci:app" --config.env=FROM_IMAGE=yes \
    --config.workingdir=/home
  _quietly skopeo-app skopeo copy --quiet "oci:$oci:app" \
    "docker-archive:$TEST_TMP/busybox-app.tar:$APP_IMG"
  must cimg load -i "$TEST_TMP/busybox-app.tar"
}

# expect_rc CODE CMD…: CMD exits with CODE (the container's own code: no cimg message expected).
expect_rc() {
  local code=$1
  shift
  run "$@"
  if [ "$RC" -eq "$code" ]; then
    pass "$(_describe "$@") exits $code"
  else
    fail "$(_describe "$@") exited $RC, expected $code"
    _show_output
  fi
}

# wait_running NAME: wait (up to 10 s) until `cimg ps` lists NAME as running; prints its full
# ID. Fails the test when it never does.
wait_running() {
  local name=$1 id
  for _ in $(seq 1 100); do
    id=$(cimg ps --no-trunc | awk -v n="$name" 'NR > 1 && $NF == n {print $1}')
    if [ -n "$id" ]; then
      remember_ids
      echo "$id"
      return 0
    fi
    sleep 0.1
  done
  fail "container $name never ran"
  return 1
}

# wait_job PID: wait for the background job PID of the test to end; sets WAIT_RC to its exit
# status.
# shellcheck disable=SC2034 # WAIT_RC is read by the tests
wait_job() {
  local pid=$1
  WAIT_RC=0
  wait "$pid" 2>/dev/null || WAIT_RC=$? # (no "Killed" notice from bash)
}

# pty_run ROWS COLS CMD…: run CMD on a new pty of the given size (python3's pty module); the
# pty's output (CRs removed) goes to stdout, its exit status is returned.
pty_run() {
  local rows=$1 cols=$2
  shift 2
  python3 - "$rows" "$cols" "$@" <<'EOF'
import fcntl, os, struct, sys, termios, pty
rows, cols, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    os.execvp(argv[0], argv)
out = b""
while True:
    try:
        d = os.read(fd, 4096)
    except OSError:
        break
    if not d:
        break
    out += d
_, st = os.waitpid(pid, 0)
sys.stdout.write(out.decode(errors="replace").replace("\r", ""))
sys.exit(os.waitstatus_to_exitcode(st))
EOF
}

# host_mounts_of ROOT: lines of the host's mount table that mention ROOT.
host_mounts_of() {
  findmnt -rn -o TARGET,SOURCE,OPTIONS | grep -F "$1" || true
}
