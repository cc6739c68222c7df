#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# Runtime escapes (issue 7 §5): what a hostile image or container process tries, and what it
# must not get.
#   - fds: the container sees only 0, 1 and 2, whatever the caller had open;
#   - the cimg binary (CVE-2019-5736 class) cannot be opened for writing from inside, through
#     /proc/1/exe, /proc/self/exe or /proc/PID/exe of a process `cimg exec` starts;
#   - masked paths are empty, read-only paths cannot be written;
#   - a setuid-root binary from a layer gives nothing under no-new-privileges;
#   - a device node from a layer (/dev/mem's and /dev/sda's numbers) cannot be opened;
#   - a symlink at a mount target (a -v destination, /proc, /dev) cannot send the mount out of
#     the rootfs (CVE-2021-30465 class): the host path stays untouched;
#   - `cimg cp` resolves inside the container while the container swaps a directory for a
#     symlink to a host path (CVE-2018-15664 class), when `cimg cp` exists.
# The containers run a copy of the cimg binary, so a hole damages the copy, never the build.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

cp "$CIMG" "$TEST_TMP/cimg-copy"
CIMG="$TEST_TMP/cimg-copy"
cimg_sum=$(sha256_of "$CIMG")

section "fixtures (umoci, skopeo, gcc)"
CANARY="$TEST_TMP/host-canary"
mkdir -p "$CANARY"
echo HOSTSECRET >"$CANARY/f"
canary_listing() { (cd "$CANARY" && find . -printf '%y %m %s %p\n' | LC_ALL=C sort); }
canary0=$(canary_listing)

# A static probe that prints its real and effective uid: busybox drops a setuid bit by itself,
# so only a binary that keeps it shows what no-new-privileges does.
printf '#include <stdio.h>\n#include <unistd.h>\nint main(void){printf("%%d %%d\\n",(int)getuid(),(int)geteuid());return 0;}\n' \
  >"$TEST_TMP/probe.c"
gcc -static -O2 -o "$TEST_TMP/probe" "$TEST_TMP/probe.c" || die "gcc -static failed (libc6-dev)"

ESC="$TEST_TMP/esc-oci"
b="$TEST_TMP/esc-bundle"
make_fixture_oci "$ESC" busybox
_quietly esc-unpack umoci unpack --image "$ESC:busybox" "$b"
r="$b/rootfs"
install -m 4755 -o 0 -g 0 "$TEST_TMP/probe" "$r/bin/suidprobe"
mkdir -p "$r/devnodes" "$r/w"
mknod -m 666 "$r/devnodes/mem" c 1 1
mknod -m 666 "$r/devnodes/sda" b 8 0
mknod -m 666 "$r/devnodes/kmsg" c 1 11
# -v destinations that point out: absolute and relative, at the host canary's own path.
ln -s "$CANARY" "$r/vol-abs"
ln -s "../../../../../../../..$CANARY" "$r/vol-rel"
ln -s /etc "$r/vol-etc"
printf 'u1000:x:1000:1000::/tmp:/bin/sh\n' >>"$r/etc/passwd"
_quietly esc-repack umoci repack --refresh-bundle --image "$ESC:esc" "$b"
# /proc and /dev as symlinks to the host canary.
rm -rf "${r:?}/proc" "${r:?}/dev"
ln -s "$CANARY" "$r/proc"
ln -s "../../../../../..$CANARY" "$r/dev"
_quietly esc-repack2 umoci repack --refresh-bundle --image "$ESC:esclinks" "$b"
rm -rf "$b"
for t in esc esclinks; do
  _quietly "skopeo-$t" skopeo copy --quiet "oci:$ESC:$t" "docker-archive:$TEST_TMP/$t.tar:$t:1"
  must cimg load -q -i "$TEST_TMP/$t.tar"
done

section "file descriptors"
# The caller holds fds 3, 7 and 9 open (a file, a directory, a pipe): none may reach the
# container. `ls /proc/self/fd` shows ls's own directory fd as the highest: dropped.
run bash -c 'exec 3<"$1" 7<"$2" 9< <(sleep 30); "$CIMG" --root "$CIMG_ROOT" run --rm esc:1 ls /proc/self/fd' \
  _ "$TEST_TMP/probe.c" "$TEST_TMP"
fds=$(sort -n <<<"$OUT" | head -n -1 | tr '\n' ' ')
assert_eq "$fds" "0 1 2 " "a container process sees fds 0, 1, 2 only (ls /proc/self/fd)"
run bash -c 'exec 3<"$1" 7<"$2"; "$CIMG" --root "$CIMG_ROOT" run --rm esc:1 sh -c "ls /proc/1/fd; true"' \
  _ "$TEST_TMP/probe.c" "$TEST_TMP"
assert_eq "$(sort -n <<<"$OUT" | tr '\n' ' ')" "0 1 2 " "the container's pid 1 has fds 0, 1, 2 only"
run bash -c 'exec 3<"$1"; "$CIMG" --root "$CIMG_ROOT" run --rm -t esc:1 ls /proc/self/fd </dev/null' \
  _ "$TEST_TMP/probe.c"
assert_eq "$(tr -d '\r' <<<"$OUT" | tr -s ' \n' '\n' | grep -v '^$' | sort -n | head -n -1 | tr '\n' ' ')" \
  "0 1 2 " "with -t as well"

section "the cimg binary cannot be written from inside"
# shellcheck disable=SC2016 # expanded in the container
write_all_exe='for p in /proc/[0-9]*; do
  if ( exec 3>>"$p/exe" ) 2>/dev/null; then echo "WROTE $p $(readlink "$p/exe")"; fi
done
( exec 3>>/proc/self/exe ) 2>/dev/null && echo "WROTE self"
echo done'
run cimg run --rm esc:1 sh -c "$write_all_exe"
assert_eq "$RC" 0 "the probe ran"
assert_not_contains "$OUT" WROTE "no /proc/*/exe (pid 1's included) opens for writing"
assert_contains "$OUT" "done" "the probe went through every process"
run cimg run --rm esc:1 sh -c 'readlink /proc/1/exe; readlink /proc/self/exe'
assert_not_contains "$OUT" cimg "no container process runs the cimg binary"

# A second process races every `cimg exec` into the container for the exec'd process's exe.
must cimg run -d --name racer esc:1 sh -c "while :; do $write_all_exe >/dev/null; for p in /proc/[0-9]*; do
  case \$(readlink \$p/exe) in *cimg*) echo \"SAW \$p\" >>/tmp/saw;; esac
  ( exec 3>>\$p/exe ) 2>/dev/null && echo \"WROTE \$p\" >>/tmp/wrote; done; done"
for _ in $(seq 1 30); do
  run cimg exec racer sh -c 'readlink /proc/self/exe; ( exec 3>>/proc/self/exe ) 2>/dev/null && echo WROTE'
  if [[ "$OUT" == *WROTE* || "$OUT" == *cimg* ]]; then break; fi
done
assert_not_contains "$OUT" WROTE "a process cimg exec starts cannot write its own /proc/self/exe"
assert_not_contains "$OUT" cimg "and it is not the cimg binary"
run cimg exec racer sh -c 'cat /tmp/wrote 2>/dev/null; echo; cat /tmp/saw 2>/dev/null'
run cimg rm -f racer
# CVE-2019-5736 itself: keep a read-only fd on the exe of a process `cimg exec` starts while it
# is still the cimg binary, and reopen it for writing (>> writes nothing). (`command exec`: a
# failed redirection of a plain `exec` ends the shell.) The open itself is refused: the process
# is non-dumpable until it execs; and ETXTBSY would stop the write, as the container's monitor
# (or the foreground `cimg run`) runs the same binary as long as the container lives.
# shellcheck disable=SC2016 # expanded in the container
must cimg run -d --name holder esc:1 sh -c 'while :; do
  for p in /proc/[0-9]*; do
    case $(readlink $p/exe 2>/dev/null) in *cimg*) command exec 5<$p/exe 2>/dev/null && echo "HELD $p" >>/tmp/held ;; esac
  done
  if [ -e /proc/$$/fd/5 ]; then ( exec 6>>/proc/$$/fd/5 ) 2>/dev/null && { echo WROTE >>/tmp/wrote; exit 0; }; fi
done'
for _ in $(seq 1 40); do
  run cimg exec holder true
done
sleep 1
run cimg exec holder sh -c 'cat /tmp/wrote 2>/dev/null; echo; cat /tmp/held 2>/dev/null'
# cimg exec makes itself non-dumpable before it forks into the container's PID namespace.
assert_not_contains "$OUT" HELD "no container process opens the exe of an exec'd process, even read-only"
assert_not_contains "$OUT" WROTE "a held fd on the exe of an exec'd process never reopens for writing"
run cimg rm -f holder
assert_not_contains "$OUT" WROTE "the racing process never opened an exe of an exec'd process for writing"
log "the racer saw the cimg binary as some process's exe: $(grep -c SAW <<<"$OUT" || true) times"
assert_eq "$(sha256_of "$CIMG")" "$cimg_sum" "the cimg binary is unchanged"

section "masked and read-only paths"
for p in /proc/kcore /proc/keys /proc/timer_list /proc/sched_debug /proc/latency_stats; do
  run cimg run --rm esc:1 sh -c "test -e $p || { echo absent; exit 0; }; head -c 64 $p | wc -c"
  if [ "$OUT" == 0 ] || [ "$OUT" == absent ]; then
    pass "$p is empty ($OUT)"
  else
    fail "$p gives $OUT bytes"
  fi
done
for p in /sys/firmware /proc/acpi /proc/scsi /proc/asound; do
  run cimg run --rm esc:1 sh -c "ls -A $p 2>/dev/null | wc -l"
  assert_eq "$OUT" 0 "$p lists nothing"
done
# (/proc/keys and the other masked files are /dev/null: writing to them goes nowhere.)
run cimg run --rm esc:1 sh -c 'echo h >/proc/sysrq-trigger && echo WROTE sysrq-trigger; echo 1 >/proc/sys/kernel/sysrq && echo WROTE sys; touch /sys/firmware/x && echo WROTE firmware; touch /proc/acpi/x && echo WROTE acpi; echo end'
assert_not_contains "$OUT" WROTE "masked and read-only paths cannot be written"
assert_contains "$OUT" end "the probe ran to its end"

section "a setuid binary under no-new-privileges"
run cimg run --rm -u 1000 esc:1 /bin/suidprobe
log "without no-new-privileges, uid 1000 running the setuid probe gets: $OUT"
control=$OUT
run cimg run --rm -u 1000 --security-opt no-new-privileges esc:1 /bin/suidprobe
assert_eq "$OUT" "1000 1000" "with no-new-privileges the setuid bit gives nothing (uid, euid)"
run cimg run --rm -u 1000 --security-opt no-new-privileges esc:1 id -u
assert_eq "$OUT" 1000 "id -u stays 1000"
if [ "$control" == "1000 0" ]; then
  pass "the control: without no-new-privileges the bit works, so the case above can fail"
else
  log "the control gave '$control' (setuid already neutralised by default)"
fi

section "device nodes from a layer"
run cimg run --rm esc:1 sh -c 'ls -l /devnodes'
assert_contains "$OUT" "1,   1" "the layer's /devnodes/mem is a char device 1:1 in the container"
for n in mem sda kmsg; do
  run cimg run --rm esc:1 sh -c "head -c 1 /devnodes/$n >/dev/null 2>&1 && echo OPENED || echo denied"
  assert_eq "$OUT" denied "/devnodes/$n from the layer cannot be opened"
done
run cimg run --rm esc:1 sh -c 'mknod /tmp/m c 1 1 2>/dev/null; head -c 1 /tmp/m >/dev/null 2>&1 && echo OPENED || echo denied'
assert_eq "$OUT" denied "a node made inside the container cannot be opened either"
run cimg run --rm --privileged esc:1 true
log "--privileged run: exit $RC (not a confinement case)"

section "symlinks at mount targets (CVE-2021-30465 class)"
mkdir -p "$TEST_TMP/src"
echo from-src >"$TEST_TMP/src/s"
for dest in /vol-abs /vol-rel /vol-etc /vol-abs/sub; do
  run cimg run --rm -v "$TEST_TMP/src:$dest" esc:1 sh -c "cat $dest/s; echo w >$dest/written; echo ok"
  if [ "$RC" -eq 0 ]; then
    assert_contains "$OUT" from-src "-v …:$dest: the volume is mounted (inside the rootfs)"
  else
    assert_contains "$ERR" "cimg:" "-v …:$dest refused with a message"
  fi
  assert_eq "$(canary_listing)" "$canary0" "-v …:$dest: the host path the symlink names is untouched"
  assert_eq "$(findmnt -rn -o TARGET | grep -c "^$CANARY" || true)" 0 "-v …:$dest: no mount on the host path"
  rm -f "$TEST_TMP/src/written"
done
run cimg run --rm -v "$TEST_TMP/src:/vol-etc" esc:1 cat /etc/s
assert_eq "$OUT" from-src "-v on a symlink to /etc: the volume covers the container's own /etc"
if [ -e /etc/s ]; then fail "the host's /etc got the volume"; else pass "the host's /etc is untouched"; fi
for what in proc dev; do
  run cimg run --rm esclinks:1 sh -c 'cat /proc/self/status | head -1; ls /dev/null; echo ok'
  log "image with /proc and /dev as symlinks to a host path: exit $RC ${ERR:+($ERR)}"
  if [ "$RC" -ne 0 ]; then assert_contains "$ERR" "cimg:" "/$what as a symlink: refused with a message"; fi
  assert_eq "$(canary_listing)" "$canary0" "/$what as a symlink to a host path: the host path is untouched"
  assert_eq "$(findmnt -rn -o TARGET | grep -c "^$CANARY" || true)" 0 "/$what as a symlink: no mount on the host path"
done

section "cimg cp racing a symlink swap (CVE-2018-15664 class)"
if "$CIMG" cp --help >/dev/null 2>&1; then
  # The container swaps /w/d between a directory holding f ("inside") and a symlink to the
  # host canary's path; cp must resolve inside the container whatever it meets.
  must cimg run -d --name swapper esc:1 sh -c "while :; do mkdir -p /w/d.new && echo inside >/w/d.new/f &&
    rm -rf /w/d && mv /w/d.new /w/d; rm -rf /w/d && ln -s $CANARY /w/d; done"
  got_host=0 got_inside=0 failed=0
  for i in $(seq 1 60); do
    rm -rf "$TEST_TMP/out"
    mkdir -p "$TEST_TMP/out"
    if "$CIMG" --root "$CIMG_ROOT" cp swapper:/w/d/f "$TEST_TMP/out/f" 2>/dev/null; then
      if grep -q HOSTSECRET "$TEST_TMP/out/f" 2>/dev/null; then got_host=$((got_host + 1)); else got_inside=$((got_inside + 1)); fi
    else
      failed=$((failed + 1))
    fi
    echo "in-$i" >"$TEST_TMP/in"
    "$CIMG" --root "$CIMG_ROOT" cp "$TEST_TMP/in" swapper:/w/d/g 2>/dev/null || true
  done
  log "cp out of the container: $got_inside copied the container's file, $failed failed cleanly"
  assert_eq "$got_host" 0 "cp never copied the host file the symlink names"
  assert_eq "$(canary_listing)" "$canary0" "cp into the container never wrote to the host path"
  run cimg rm -f swapper
else
  log "SKIP: cimg cp does not exist in this build; the CVE-2018-15664 case runs once it does"
fi

assert_eq "$(sha256_of "$CIMG")" "$cimg_sum" "the cimg binary is unchanged at the end"
assert_eq "$(canary_listing)" "$canary0" "the host canary is unchanged at the end"
