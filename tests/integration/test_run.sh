#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# cimg run in the foreground, ps and rm: real containers from a busybox image made by umoci and
# skopeo, checked from inside (what a user would look at) and from the host (nothing left).

# shellcheck source-path=SCRIPTDIR source=lib-run.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-run.sh"

section "fixtures"
load_run_fixtures

section "the command and its exit code"
expect_ok cimg run --rm "$RUN_IMG" echo hi
assert_eq "$OUT" "hi" "run --rm IMG echo hi prints hi"
expect_rc 3 cimg run --rm "$RUN_IMG" sh -c 'exit 3'
expect_fail 127 cimg run --rm "$RUN_IMG" no-such-command
assert_contains "$ERR" 'executable file not found in $PATH' "127 says the command was not found"
expect_fail 127 cimg run --rm "$RUN_IMG" /no/such/file
expect_fail 126 cimg run --rm "$APP_IMG" /bin/notexec
assert_contains "$ERR" "ermission denied" "126 says why"
expect_rc 137 cimg run --rm "$RUN_IMG" sh -c 'sh -c "kill -9 \$\$"; exit $?'
expect_rc 130 cimg run --rm "$RUN_IMG" sh -c 'sh -c "kill -INT \$\$"; exit $?'
expect_fail 125 cimg run --rm --no-such-flag "$RUN_IMG" true
expect_fail 125 cimg run --rm -m 1k "$RUN_IMG" true
assert_contains "$ERR" "Minimum memory limit allowed is 6MB" "-m below 6m is refused"
expect_fail 125 cimg run --rm --memory-swappiness 101 "$RUN_IMG" true
expect_fail 125 cimg run --rm --blkio-weight 5 "$RUN_IMG" true
assert_contains "$ERR" "Range of blkio weight is from 10 to 1000" "--blkio-weight range"
expect_fail 125 cimg run --rm -m 10m --memory-reservation 20m "$RUN_IMG" true
expect_fail 125 cimg run --rm --cpus 99 "$RUN_IMG" true
assert_contains "$ERR" "Range of CPUs is from 0.01 to $(nproc).00" "--cpus above the host's count"
expect_fail 125 cimg run --rm no-such-image true
assert_contains "$ERR" "Unable to find image 'no-such-image' locally" "unknown image"
expect_fail 125 cimg run --rm -u nosuchuser "$RUN_IMG" true
assert_contains "$ERR" "unable to find user nosuchuser" "unknown user"
# Options end at the image: what follows belongs to the command.
expect_ok cimg run --rm "$RUN_IMG" echo -e --rm -t
assert_eq "$OUT" "--rm -t" "flags after the image are the command's"

section "PID namespace"
assert_eq "$(cimg run --rm "$RUN_IMG" cat /proc/1/cmdline | tr '\0' ' ')" "cat /proc/1/cmdline " \
  "PID 1 is the command"
expect_ok cimg run --rm "$RUN_IMG" ps -o pid,comm
assert_eq "$(tail -n +2 <<<"$OUT" | awk '{print $1 ":" $2}' | tr '\n' ' ')" "1:ps " \
  "ps sees only the container's processes"
# A signal that kills the container's process (from the host) is 128+N.
"$CIMG" --root "$CIMG_ROOT" run --name killme "$RUN_IMG" sleep 100 >/dev/null 2>&1 &
job=$!
_CIMG_TEST_PIDS+=("$job")
if id=$(wait_running killme); then
  cpid=$(jq -r .Pid "$CIMG_ROOT/containers/$id/state.json")
  assert_match "$cpid" '^[0-9]+$' "state.json records the container's PID"
  assert_eq "$(tr '\0' ' ' <"/proc/$cpid/cmdline")" "sleep 100 " "that PID is the command"
  assert_eq "$(awk -F: '$2 == "pids" {print $3}' "/proc/$cpid/cgroup")" "/cimg/$id" \
    "the container's process is in the cgroup cimg/<id>"
  kill -KILL "$cpid"
  wait_job "$job"
  assert_eq "$WAIT_RC" 137 "a container killed by SIGKILL exits 137"
fi
expect_ok cimg rm killme

section "UTS and network namespaces"
expect_ok cimg run --name hn "$RUN_IMG" hostname
hn_id=$(container_ids)
assert_eq "$OUT" "${hn_id:0:12}" "the default hostname is the short ID"
expect_ok cimg run --rm "$RUN_IMG" cat /etc/hostname
assert_match "$OUT" '^[0-9a-f]{12}$' "/etc/hostname holds it too"
expect_ok cimg rm hn
expect_ok cimg run --rm --hostname foo.example "$RUN_IMG" sh -c 'hostname; cat /etc/hostname'
assert_eq "$OUT" $'foo.example\nfoo.example' "--hostname"
expect_ok cimg run --rm --network none "$RUN_IMG" ls /sys/class/net
assert_eq "$OUT" "lo" "--network none: only lo"
expect_ok cimg run --rm "$RUN_IMG" cat /sys/class/net/lo/operstate /sys/class/net/lo/flags
assert_eq "$(sed -n 2p <<<"$OUT")" "0x9" "default network: lo is up (IFF_UP|IFF_LOOPBACK)"
expect_ok cimg run --rm "$RUN_IMG" ls /sys/class/net
assert_eq "$OUT" "lo" "default network: a namespace of its own with only lo"
expect_ok cimg run --rm --network host "$RUN_IMG" ls /sys/class/net
assert_eq "$(tr '\n' ' ' <<<"$OUT")" "$(find /sys/class/net -mindepth 1 -maxdepth 1 -printf '%f\n' | LC_ALL=C sort | tr '\n' ' ')" \
  "--network host: the host's interfaces"
expect_ok cimg run --rm "$RUN_IMG" cat /etc/hosts
assert_contains "$OUT" "localhost" "/etc/hosts is provided"
expect_ok cimg run --rm "$RUN_IMG" cat /etc/resolv.conf
assert_contains "$OUT" "nameserver" "/etc/resolv.conf is provided"
assert_not_contains "$OUT" "nameserver 127." "no resolver on the host's loopback"

section "the write layer"
expect_ok cimg run --name writer "$RUN_IMG" sh -c 'echo secret > /newfile; rm /bin/vi'
w_id=$(container_ids)
assert_eq "$(find "$CIMG_ROOT/layers" -name newfile | wc -l)" 0 "the image's layer dir has no newfile"
assert_eq "$(cat "$CIMG_ROOT/containers/$w_id/upper/newfile" 2>/dev/null)" secret \
  "the file is in the container's upper dir"
assert_eq "$(find "$CIMG_ROOT/layers" -path '*/bin/vi' | wc -l)" 1 "a deleted file stays in the layer"
expect_rc 1 cimg run --rm "$RUN_IMG" sh -c 'test -e /newfile'
expect_ok cimg run --rm "$RUN_IMG" test -e /bin/vi
expect_rc 1 cimg run --rm --read-only "$RUN_IMG" touch /x
assert_contains "$ERR" "Read-only file system" "--read-only"

section "ps and rm"
expect_rc 3 cimg run --name three "$RUN_IMG" sh -c 'exit 3'
expect_ok cimg ps -a
assert_match "$(grep ' three$' <<<"$OUT")" 'Exited \(3\) .* ago +three$' "ps -a shows Exited (3)"
assert_match "$(head -1 <<<"$OUT")" '^CONTAINER ID +IMAGE +COMMAND +CREATED +STATUS +PORTS +NAMES$' \
  "ps columns"
expect_ok cimg ps
assert_eq "$(wc -l <<<"$OUT")" 1 "ps without -a lists no exited container"
expect_ok cimg ps -aq
assert_eq "$(wc -l <<<"$OUT")" 2 "ps -aq: one short ID per container"
assert_match "$(head -1 <<<"$OUT")" '^[0-9a-f]{12}$' "ps -q prints short IDs"
expect_ok cimg ps -aq --no-trunc
assert_match "$(head -1 <<<"$OUT")" '^[0-9a-f]{64}$' "ps -q --no-trunc prints full IDs"
expect_fail 125 cimg run --name three "$RUN_IMG" true
assert_contains "$ERR" 'is already in use' "names are unique"
expect_fail "$CIMG_ERR_CODE" cimg rmi "$RUN_IMG"
assert_contains "$ERR" "container is using it" "rmi refuses an image a container uses"
expect_ok cimg rm "${w_id:0:8}"
assert_eq "$OUT" "${w_id:0:8}" "rm by ID prefix"
expect_ok cimg rm three
assert_eq "$(container_ids | wc -l)" 0 "containers/ is empty after rm"
expect_fail "$CIMG_ERR_CODE" cimg rm three
assert_contains "$ERR" "No such container: three" "rm of a removed container"

"$CIMG" --root "$CIMG_ROOT" run --name busy "$RUN_IMG" sleep 100 >/dev/null 2>&1 &
job=$!
_CIMG_TEST_PIDS+=("$job")
if busy_id=$(wait_running busy); then
  assert_eq "$(host_mounts_of "$CIMG_ROOT")" "" \
    "a running container's mounts are not in the host's mount table"
  assert_ne "$(cgroup_dirs "$busy_id")" "" "a running container has its cgroup"
  expect_fail "$CIMG_ERR_CODE" cimg rm busy
  assert_contains "$ERR" "cannot remove a running container" "rm of a running container needs -f"
  expect_ok cimg rm -f busy
  wait_job "$job"
  assert_eq "$WAIT_RC" 137 "rm -f kills the container (137)"
  assert_eq "$(cgroup_dirs "$busy_id")" "" "no cgroup left after rm -f"
fi
assert_eq "$(container_ids | wc -l)" 0 "nothing left of the container after rm -f"
expect_ok cimg run --name a1 "$RUN_IMG" true
expect_ok cimg run --name a2 "$RUN_IMG" true
expect_fail "$CIMG_ERR_CODE" cimg rm ""
expect_ok cimg rm a1 a2
assert_eq "$(container_ids | wc -l)" 0 "rm of two containers"

section "cimg killed with SIGKILL"
"$CIMG" --root "$CIMG_ROOT" run --name orphan "$RUN_IMG" sleep 100 >/dev/null 2>&1 &
job=$!
_CIMG_TEST_PIDS+=("$job")
if orphan_id=$(wait_running orphan); then
  cpid=$(jq -r .Pid "$CIMG_ROOT/containers/$orphan_id/state.json")
  kill -KILL "$job"
  wait_job "$job"
  for _ in $(seq 1 50); do
    kill -0 "$cpid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$cpid" 2>/dev/null; then fail "the container outlived cimg"; else pass "the container dies with cimg"; fi
  expect_ok cimg ps -a
  assert_match "$(grep ' orphan$' <<<"$OUT")" 'Exited \(255\)' "its record says exited (255), not running"
  expect_ok cimg ps -q
  assert_eq "$OUT" "" "ps does not list it as running"
  expect_ok cimg rm orphan
  assert_eq "$(cgroup_dirs "$orphan_id")" "" "rm removes the cgroup it left"
  assert_eq "$(host_mounts_of "$CIMG_ROOT")" "" "it left no mount"
fi

section "a setup that fails halfway"
remember_ids
expect_fail 125 cimg run --rm --tmpfs /run:size=bogus "$RUN_IMG" true
assert_contains "$ERR" "mount tmpfs on /run" "the child's setup error reaches the user"
expect_fail 125 cimg run --rm -w /bin/busybox "$RUN_IMG" true
assert_contains "$ERR" "chdir to cwd" "a working directory that is a file"
assert_eq "$(container_ids | wc -l)" 0 "--rm removes a container that could not start"
expect_fail 125 cimg run --name failed --tmpfs /run:size=bogus "$RUN_IMG" true
expect_ok cimg ps -a
assert_match "$(grep ' failed$' <<<"$OUT")" ' Created +failed$' "a container that could not start stays Created"
remember_ids
expect_ok cimg rm failed
assert_eq "$(count_container_cgroups)" 0 \
  "no cgroup left by the failed setups"
assert_eq "$(host_mounts_of "$CIMG_ROOT")" "" "no mount left by the failed setups"

section "nothing left on the host"
remember_ids
expect_ok cimg run --rm "$RUN_IMG" true
assert_eq "$(host_mounts_of "$CIMG_ROOT")" "" "no mount of the store left after run"
assert_eq "$(count_container_cgroups)" 0 \
  "no container cgroup left (ls /sys/fs/cgroup/*/cimg/)"
assert_eq "$(container_ids | wc -l)" 0 "--rm removes the container"
exec 7>"$TEST_TMP/fd7"
expect_ok cimg run --rm "$RUN_IMG" ls /proc/self/fd
exec 7>&-
assert_eq "$(tr '\n' ' ' <<<"$OUT")" "0 1 2 3 " "an fd opened by the caller is not inherited"
expect_ok cimg run --rm "$RUN_IMG" readlink /proc/1/exe
assert_eq "$OUT" "/bin/busybox" "/proc/1/exe is the command, not cimg"

section "filesystems"
expect_ok cimg run --rm "$RUN_IMG" sh -c 'wc -c < /proc/timer_list; grep -c " /proc/keys " /proc/self/mountinfo'
assert_eq "$(tr '\n' ' ' <<<"$OUT")" "0 1 " "masked paths (/proc/timer_list empty, /proc/keys covered)"
expect_rc 1 cimg run --rm "$RUN_IMG" sh -c 'echo x > /proc/sys/kernel/domainname'
assert_contains "$ERR" "Read-only file system" "/proc/sys is read-only"
expect_rc 1 cimg run --rm "$RUN_IMG" sh -c 'echo 1 > /proc/sysrq-trigger'
expect_rc 1 cimg run --rm "$RUN_IMG" touch /sys/kernel/x
assert_contains "$ERR" "Read-only file system" "/sys is read-only"
expect_ok cimg run --rm "$RUN_IMG" sh -c 'grep -E " /sys | /proc | /sys/fs/cgroup " /proc/self/mountinfo'
assert_match "$(grep ' /proc ' <<<"$OUT")" 'nosuid,nodev,noexec' "/proc is nosuid,nodev,noexec"
assert_match "$(grep ' /sys ' <<<"$OUT")" ' ro,' "/sys is mounted read-only"
assert_match "$(grep ' /sys/fs/cgroup ' <<<"$OUT")" ' ro,' "/sys/fs/cgroup is read-only"
expect_ok cimg run --rm "$RUN_IMG" sh -c 'for n in null zero full random urandom tty; do test -c /dev/$n && echo $n; done; for l in fd stdin ptmx; do readlink /dev/$l; done'
assert_eq "$(tr '\n' ' ' <<<"$OUT")" \
  "null zero full random urandom tty /proc/self/fd /proc/self/fd/0 pts/ptmx " "/dev nodes and links"
expect_ok cimg run --rm "$RUN_IMG" sh -c 'echo x > /dev/null && head -c 4 /dev/zero | wc -c'
assert_eq "$OUT" 4 "/dev/null and /dev/zero work"
expect_ok cimg run --rm "$RUN_IMG" df -k /dev/shm
assert_eq "$(tail -1 <<<"$OUT" | awk '{print $2}')" 65536 "/dev/shm is 64m"
expect_ok cimg run --rm --shm-size 128m "$RUN_IMG" df -k /dev/shm
assert_eq "$(tail -1 <<<"$OUT" | awk '{print $2}')" 131072 "--shm-size 128m"
expect_ok cimg run --rm "$RUN_IMG" sh -c 'grep -E " /dev/(pts|mqueue) " /proc/self/mountinfo'
assert_contains "$OUT" "ptmxmode=666" "/dev/pts is a new devpts instance"
assert_contains "$OUT" "mqueue" "/dev/mqueue"
expect_rc 1 cimg run --rm "$RUN_IMG" ls "$CIMG_ROOT/containers"
assert_contains "$ERR" "No such file" "the host's tree (the store) is not reachable from the container"

section "process: env, workdir, user, entrypoint"
printf 'FROM_FILE=1\n# a comment\n\nOVER=file\n' >"$TEST_TMP/envfile"
expect_ok cimg run --rm -e A=1 --env-file "$TEST_TMP/envfile" -e OVER=flag "$APP_IMG" env
assert_contains "$OUT" "A=1" "-e"
assert_contains "$OUT" "FROM_FILE=1" "--env-file"
assert_contains "$OUT" "OVER=flag" "-e after --env-file wins"
assert_contains "$OUT" "FROM_IMAGE=yes" "the image's Env"
assert_contains "$OUT" "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" "PATH"
assert_contains "$OUT" "HOME=/root" "HOME from /etc/passwd"
expect_ok cimg run --rm "$APP_IMG" pwd
assert_eq "$OUT" "/home" "the image's WorkingDir"
expect_ok cimg run --rm -w /tmp/new/dir "$APP_IMG" pwd
assert_eq "$OUT" "/tmp/new/dir" "-w (created when missing)"
expect_fail 125 cimg run --rm -w relative "$APP_IMG" pwd
expect_ok cimg run --rm -u 1000:1000 "$RUN_IMG" sh -c 'id -u; id -g'
assert_eq "$(tr '\n' ' ' <<<"$OUT")" "1000 1000 " "-u 1000:1000"
expect_ok cimg run --rm -u nobody "$RUN_IMG" id
assert_eq "$OUT" "uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)" "-u nobody (from the image's /etc/passwd)"
expect_ok cimg run --rm -u app "$APP_IMG" sh -c 'id; echo $HOME'
assert_eq "$OUT" $'uid=1000(app) gid=1000(app) groups=50(staff),1000(app)\n/home/app' \
  "-u app: groups from /etc/group, HOME from /etc/passwd"
expect_ok cimg run --rm -u app:staff --group-add 65534 "$APP_IMG" id
assert_eq "$OUT" "uid=1000(app) gid=50(staff) groups=50(staff),65534(nogroup)" "-u user:group and --group-add"
expect_ok cimg run --rm --entrypoint echo "$RUN_IMG" a b
assert_eq "$OUT" "a b" "--entrypoint"
expect_ok cimg run --rm "$RUN_IMG"
assert_eq "$OUT" "" "the image's Cmd (sh) with stdin /dev/null"

section "capabilities and seccomp"
expect_ok cimg run --rm "$RUN_IMG" grep -E '^Cap(Eff|Bnd|Prm|Inh|Amb)' /proc/self/status
assert_contains "$OUT" $'CapEff:\t00000000a80425fb' "CapEff is Docker's default"
assert_contains "$OUT" $'CapBnd:\t00000000a80425fb' "CapBnd is Docker's default"
assert_contains "$OUT" $'CapInh:\t0000000000000000' "CapInh is empty"
assert_contains "$OUT" $'CapAmb:\t0000000000000000' "CapAmb is empty"
expect_ok cimg run --rm --cap-drop ALL "$RUN_IMG" grep CapEff /proc/self/status
assert_eq "$OUT" $'CapEff:\t0000000000000000' "--cap-drop ALL"
expect_ok cimg run --rm --cap-add SYS_ADMIN --cap-drop NET_RAW "$RUN_IMG" grep CapEff /proc/self/status
assert_eq "$OUT" $'CapEff:\t00000000a82405fb' "--cap-add SYS_ADMIN --cap-drop NET_RAW"
expect_ok cimg run --rm -u 1000 "$RUN_IMG" grep CapEff /proc/self/status
assert_eq "$OUT" $'CapEff:\t0000000000000000' "a non-root user has no effective capability"
host_bnd=$(awk '$1 == "CapBnd:" {print $2}' /proc/self/status)
expect_ok cimg run --rm --privileged "$RUN_IMG" sh -c 'grep -E "^(CapEff|Seccomp):" /proc/self/status; grep -c " /proc/keys " /proc/self/mountinfo || true'
assert_eq "$(tr '\n\t' '  ' <<<"$OUT")" "CapEff: $host_bnd Seccomp: 0 0 " \
  "--privileged: every capability, no seccomp, no masked path"
expect_ok cimg run --rm "$RUN_IMG" grep Seccomp: /proc/self/status
assert_eq "$OUT" $'Seccomp:\t2' "seccomp filter on by default"
expect_rc 1 cimg run --rm "$RUN_IMG" unshare -U true
expect_rc 1 cimg run --rm "$RUN_IMG" mount -t tmpfs t /mnt
expect_ok cimg run --rm --security-opt seccomp=unconfined "$RUN_IMG" grep Seccomp: /proc/self/status
assert_eq "$OUT" $'Seccomp:\t0' "seccomp=unconfined"
expect_ok cimg run --rm --security-opt no-new-privileges "$RUN_IMG" grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status
assert_eq "$(tr '\n\t' '  ' <<<"$OUT")" "NoNewPrivs: 1 Seccomp: 2 " "no-new-privileges"
expect_ok cimg run --rm "$RUN_IMG" grep NoNewPrivs: /proc/self/status
assert_eq "$OUT" $'NoNewPrivs:\t0' "no no-new-privileges by default (setuid binaries work, as in Docker)"

section "devices"
# Writing to /dev/kmsg needs no capability: only the device cgroup stands in the way.
expect_rc 1 cimg run --rm "$RUN_IMG" sh -c 'mknod /tmp/kmsg c 1 11 && echo "<7>cimg test" > /tmp/kmsg'
assert_contains "$ERR" "Operation not permitted" "a device node outside Docker's allow-list cannot be opened"
expect_ok cimg run --rm --privileged "$RUN_IMG" sh -c 'mknod /tmp/kmsg c 1 11 && echo "<7>cimg test" > /tmp/kmsg'
expect_ok cimg run --rm --privileged "$RUN_IMG" sh -c 'test -c /dev/kmsg && echo yes'
assert_eq "$OUT" yes "--privileged: the host's device nodes are in /dev"
expect_rc 1 cimg run --rm "$RUN_IMG" test -e /dev/kmsg
expect_ok cimg run --rm --device /dev/kmsg:/dev/k2:w "$RUN_IMG" sh -c 'echo "<7>cimg test" > /dev/k2; stat -c "%t:%T" /dev/k2'
assert_eq "$OUT" "1:b" "--device HOST:CTR:PERMS makes the node and allows it"
expect_ok cimg run --rm "$RUN_IMG" sh -c 'head -c 1 /dev/urandom >/dev/null && echo ok'

section "mounts, ulimits, cidfile"
mkdir -p "$TEST_TMP/vol"
echo from-host >"$TEST_TMP/vol/f"
expect_ok cimg run --rm -v "$TEST_TMP/vol:/data" "$RUN_IMG" sh -c 'cat /data/f; echo from-ctr > /data/g'
assert_eq "$OUT" "from-host" "-v HOST:CTR shows the host's files"
assert_eq "$(cat "$TEST_TMP/vol/g" 2>/dev/null)" "from-ctr" "-v HOST:CTR is writable"
expect_rc 1 cimg run --rm -v "$TEST_TMP/vol:/data:ro" "$RUN_IMG" sh -c 'echo x > /data/h'
assert_contains "$ERR" "Read-only file system" "-v HOST:CTR:ro"
expect_fail 125 cimg run --rm -v relative:/data "$RUN_IMG" true
expect_ok cimg run --rm --tmpfs /run:size=1m "$RUN_IMG" sh -c 'grep " /run " /proc/self/mountinfo'
assert_match "$OUT" 'nosuid,nodev,noexec.* tmpfs .*size=1024k' "--tmpfs PATH:size=1m"
expect_ok cimg run --rm --ulimit nofile=100:200 "$RUN_IMG" sh -c 'ulimit -n; ulimit -Hn'
assert_eq "$(tr '\n' ' ' <<<"$OUT")" "100 200 " "--ulimit nofile=100:200"
expect_fail 125 cimg run --rm --ulimit nofile=300:200 "$RUN_IMG" true
expect_ok cimg run --rm --cidfile "$TEST_TMP/cid" "$RUN_IMG" true
assert_match "$(cat "$TEST_TMP/cid")" '^[0-9a-f]{64}$' "--cidfile holds the full ID"
expect_fail 125 cimg run --rm --cidfile "$TEST_TMP/cid" "$RUN_IMG" true
assert_contains "$ERR" "Container ID file found" "--cidfile refuses an existing file"

section "resources"
expect_fail 137 cimg run --rm -m 32m --memory-swap 32m "$RUN_IMG" sh -c 'head -c 100m /dev/zero | tail > /dev/null'
assert_contains "$ERR" "memory limit" "cimg says the OOM killer ended it"
expect_ok cimg run --rm -m 32m "$RUN_IMG" sh -c 'head -c 10m /dev/zero | tail | wc -c'
assert_eq "$OUT" 10485760 "under the limit, it runs"
start=$(date +%s)
run timeout 60 "$CIMG" --root "$CIMG_ROOT" run --rm --pids-limit 10 "$RUN_IMG" sh -c 'i=0; while [ $i -lt 30 ]; do sleep 30 & i=$((i+1)); done; echo done'
assert_contains "$ERR" "can't fork" "--pids-limit 10 stops a fork loop"
assert_lt "$(($(date +%s) - start))" 30 "the fork loop is bounded, then killed with its container"
"$CIMG" --root "$CIMG_ROOT" run --name cpu --cpus 0.5 --memory 64m --pids-limit 20 -c 512 \
  --memory-reservation 32m --memory-swappiness 10 --cpuset-cpus 0 --blkio-weight 300 \
  "$RUN_IMG" sleep 100 >/dev/null 2>&1 &
job=$!
_CIMG_TEST_PIDS+=("$job")
if cpu_id=$(wait_running cpu); then
  case "$(findmnt -rn -o FSTYPE /sys/fs/cgroup)" in
    cgroup2)
      assert_eq "$(cat "/sys/fs/cgroup/cimg/$cpu_id/cpu.max")" "50000 100000" "--cpus 0.5: cpu.max" ;;
    *)
      d=$(cgroup_dirs "$cpu_id" | grep '/cpu/\|/cpu,cpuacct/' | head -1)
      assert_eq "$(cat "$d/cpu.cfs_quota_us") $(cat "$d/cpu.cfs_period_us")" "50000 100000" \
        "--cpus 0.5: cfs quota and period"
      assert_eq "$(cat "$d/cpu.shares")" 512 "-c 512: cpu.shares"
      d=$(cgroup_dirs "$cpu_id" | grep '/memory/' | head -1)
      assert_eq "$(cat "$d/memory.limit_in_bytes")" 67108864 "--memory 64m"
      assert_eq "$(cat "$d/memory.soft_limit_in_bytes")" 33554432 "--memory-reservation 32m"
      assert_eq "$(cat "$d/memory.swappiness")" 10 "--memory-swappiness 10"
      d=$(cgroup_dirs "$cpu_id" | grep '/pids/' | head -1)
      assert_eq "$(cat "$d/pids.max")" 20 "--pids-limit 20"
      d=$(cgroup_dirs "$cpu_id" | grep '/cpuset/' | head -1)
      assert_eq "$(cat "$d/cpuset.cpus")" 0 "--cpuset-cpus 0"
      ;;
  esac
  expect_ok cimg rm -f cpu
  wait_job "$job"
fi

section "stdin, tty and signals"
run bash -c "echo in | '$CIMG' --root '$CIMG_ROOT' run --rm -i '$RUN_IMG' cat"
assert_eq "$OUT" "in" "-i passes stdin"
run bash -c "echo in | '$CIMG' --root '$CIMG_ROOT' run --rm '$RUN_IMG' cat"
assert_eq "$OUT" "" "without -i, stdin is /dev/null"
if out=$(pty_run 33 101 "$CIMG" --root "$CIMG_ROOT" run --rm -t "$RUN_IMG" sh -c 'tty; stty size; test -t 0 && echo stdin-tty'); then
  assert_eq "$out" $'/dev/pts/0\n33 101\nstdin-tty' "-t: a pty of the container's devpts, with the caller's window size"
else
  fail "-t run failed: $out"
fi
if out=$(pty_run 24 80 bash -c "printf 'hello\nexit 5\n' | '$CIMG' --root '$CIMG_ROOT' run --rm -i -t '$RUN_IMG' sh -c 'read x; echo got \$x; exit 4'"); then
  fail "-i -t: expected exit 4"
else
  assert_eq "$?" 4 "-i -t: exit code through the pty"
fi
assert_contains "$out" "got hello" "-i -t: input reaches the container's pty"
"$CIMG" --root "$CIMG_ROOT" run --rm "$RUN_IMG" sh -c 'trap "exit 7" TERM; sleep 100 & wait' &
job=$!
_CIMG_TEST_PIDS+=("$job")
for _ in $(seq 1 50); do
  [ "$(container_ids | wc -l)" -gt 0 ] && [ -n "$(cimg ps -q)" ] && break
  sleep 0.1
done
remember_ids
sleep 0.3 # the trap is set by the shell once it runs
kill -TERM "$job"
wait_job "$job"
assert_eq "$WAIT_RC" 7 "SIGTERM to cimg reaches the container (trap → exit 7)"

section "the end"
assert_eq "$(container_ids | wc -l)" 0 "no container left"
assert_eq "$(host_mounts_of "$CIMG_ROOT")" "" "no mount left"
expect_ok cimg rmi "$APP_IMG"
