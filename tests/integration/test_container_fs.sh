#!/bin/bash
# shellcheck disable=SC2016 # the commands run in the container are single-quoted on purpose
# A container's filesystem: diff, commit, export, cp. The base image is made by umoci (two
# layers: busybox, then /data/{a,b,sub/x} and /etc/motd) and written by skopeo; what cimg makes is
# read back by cimg run, by skopeo (save) and by GNU tar, and from the host for cp's symlink
# checks.

# shellcheck source-path=SCRIPTDIR source=lib-lifecycle.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-lifecycle.sh"

BASE=busybox:fs
# A file on the host that symlinks in containers point at: cp must never touch it.
CANARY="/tmp/cimg-fs-canary.$$"
INJECT="/tmp/cimg-fs-inject.$$"

# Containers go before lib-lifecycle's clean-up (monitors, cgroups, mounts, temp dir).
_fs_exit() {
  local rc=$? id
  set +e
  # A commit the test holds at index.lock goes on (and thaws its container) before rm -f.
  exec 9>&-
  for id in $(container_ids); do
    "$CIMG" --root "$CIMG_ROOT" rm -f "$id" >/dev/null 2>&1
  done
  rm -f "$CANARY" "$INJECT"
  chattr -i "$CIMG_ROOT/blobs/sha256" 2>/dev/null
  (exit "$rc")
  _life_exit
}
trap _fs_exit EXIT

# tar_names FILE|-: the entry names of a tar, "./" prefixes removed, sorted.
tar_names() {
  tar -tf "$1" | sed 's|^\./||' | grep -v '^$' | LC_ALL=C sort
}

section "fixtures"
oci="$TEST_TMP/oci-fs" work="$TEST_TMP/oci-fs-work"
make_fixture_oci "$oci" fs
_quietly umoci-unpack-fs umoci unpack --image "$oci:fs" "$work"
mkdir -p "$work/rootfs/data/sub"
echo x >"$work/rootfs/data/sub/x"
echo a >"$work/rootfs/data/a"
echo b >"$work/rootfs/data/b"
echo motd >"$work/rootfs/etc/motd"
_quietly umoci-repack-fs umoci repack --image "$oci:fs" "$work"
_quietly skopeo-fs skopeo copy --quiet "oci:$oci:fs" "docker-archive:$TEST_TMP/fs.tar:$BASE"
must cimg load -i "$TEST_TMP/fs.tar"
base_layers=$(skopeo inspect "docker-archive:$TEST_TMP/fs.tar" | jq '.Layers | length')
assert_eq "$base_layers" 2 "the base image has two layers"

section "diff"
must cimg run --name ch -e KEEP=me "$BASE" sh -c \
  'echo new >/added; echo more >>/etc/motd; rm /etc/group /data/a /data/b; mkdir -p /newdir/sub'
remember_ids
expect_ok cimg diff ch
assert_eq "$OUT" "A /added
C /data
D /data/a
D /data/b
C /etc
D /etc/group
C /etc/motd
A /newdir
A /newdir/sub" "diff: added, changed, deleted (lower layers), emptied dir; no runtime mount points"
must cimg run --name opq "$BASE" sh -c 'rm -rf /data; mkdir -p /data/sub; echo z >/data/z'
remember_ids
expect_ok cimg diff opq
assert_eq "$OUT" "C /data
D /data/a
D /data/b
C /data/sub
D /data/sub/x
A /data/z" "diff: a directory removed and made again (opaque) hides the image's entries"
must cimg run --name same "$BASE" true
remember_ids
expect_ok cimg diff same
assert_eq "$OUT" "" "diff: a container that changed nothing has no changes"

section "commit"
expect_ok cimg commit -m "the change" -a "Tester <t@example.com>" ch fs:committed
assert_match "$OUT" '^sha256:[0-9a-f]{64}$' "commit prints the image ID"
committed=$OUT
expect_ok cimg images -q --no-trunc fs:committed
assert_eq "$OUT" "$committed" "commit tags REPO:TAG with the new image"
expect_ok cimg run --rm fs:committed sh -c \
  'cat /added /etc/motd; ls /data | wc -l; test -e /etc/group && echo group || echo no-group; test -d /newdir/sub && echo sub'
assert_eq "$OUT" "new
motd
more
1
no-group
sub" "the committed image runs with the change: added and changed files, deleted ones absent"
expect_ok cimg inspect fs:committed
assert_eq "$(jq -r '.[0].Author' <<<"$OUT")" "Tester <t@example.com>" "commit -a: Author"
assert_eq "$(jq -r '.[0].Config.Cmd | join(" ")' <<<"$OUT")" \
  "sh -c echo new >/added; echo more >>/etc/motd; rm /etc/group /data/a /data/b; mkdir -p /newdir/sub" \
  "commit: Cmd is the command the container ran"
assert_eq "$(jq -c '.[0].Config.Env | map(select(startswith("KEEP=") or startswith("HOSTNAME=") or startswith("HOME=")))' <<<"$OUT")" \
  '["KEEP=me"]' "commit: the container's -e is kept, the runtime's HOSTNAME and HOME are not"
expect_ok cimg history fs:committed
assert_contains "$OUT" "the change" "commit -m: the history entry's comment"

must cimg save -o "$TEST_TMP/committed.tar" fs:committed
layers=$(skopeo inspect "docker-archive:$TEST_TMP/committed.tar" | jq '.Layers | length')
assert_eq "$layers" $((base_layers + 1)) "skopeo reads the saved image: one layer more than its base"
mkdir -p "$TEST_TMP/saved"
tar -C "$TEST_TMP/saved" -xf "$TEST_TMP/committed.tar"
new_layer=$(jq -r '.[0].Layers[-1]' "$TEST_TMP/saved/manifest.json")
assert_eq "$(tar_names "$TEST_TMP/saved/$new_layer")" "added
data/
data/.wh.a
data/.wh.b
etc/
etc/.wh.group
etc/motd
newdir/
newdir/sub/" "the new layer holds exactly the change, whiteouts included"
assert_eq "$(tar -xOf "$TEST_TMP/saved/$new_layer" etc/motd)" "motd
more" "the new layer's changed file has the new content"

expect_ok cimg commit opq fs:opaque
expect_ok cimg save -o "$TEST_TMP/opaque.tar" fs:opaque
mkdir -p "$TEST_TMP/saved-opq"
tar -C "$TEST_TMP/saved-opq" -xf "$TEST_TMP/opaque.tar"
opq_layer=$(jq -r '.[0].Layers[-1]' "$TEST_TMP/saved-opq/manifest.json")
assert_eq "$(tar_names "$TEST_TMP/saved-opq/$opq_layer")" "data/
data/.wh..wh..opq
data/sub/
data/z" "an opaque directory is committed as .wh..wh..opq, with the (empty) directory made in it"
expect_ok cimg run --rm fs:opaque ls /data /data/sub
assert_eq "$OUT" $'/data:\nsub\nz\n\n/data/sub:' "the opaque directory hides the base's entries in the new image"

expect_ok cimg commit -c 'CMD ["echo","hi"]' -c 'ENV FOO=bar' -c 'WORKDIR /data' \
  -c 'LABEL k=v' -c 'EXPOSE 8080' -c 'USER root' ch fs:hi
expect_ok cimg run --rm fs:hi
assert_eq "$OUT" "hi" "commit -c 'CMD [\"echo\",\"hi\"]': the new image runs it"
expect_ok cimg inspect fs:hi
assert_eq "$(jq -c '[.[0].Config.WorkingDir, .[0].Config.Labels.k, (.[0].Config.Env | index("FOO=bar") != null), (.[0].Config.ExposedPorts | has("8080/tcp")), .[0].Config.User]' <<<"$OUT")" \
  '["/data","v",true,true,"root"]' "commit -c ENV, WORKDIR, LABEL, EXPOSE, USER"
expect_ok cimg run --rm fs:hi sh -c 'echo $FOO; pwd'
assert_eq "$OUT" $'bar\n/data' "the -c ENV and WORKDIR reach the container"

expect_ok cimg commit same fs:same
expect_ok cimg inspect fs:same
assert_eq "$(jq '.[0].RootFS.Layers | length' <<<"$OUT")" "$base_layers" \
  "commit without changes adds no layer"

start_registry
expect_ok cimg tag fs:committed "$REGISTRY/fs:committed"
expect_ok cimg push "$REGISTRY/fs:committed"
assert_eq "$(skopeo inspect --tls-verify=false "docker://$REGISTRY/fs:committed" | jq '.Layers | length')" \
  $((base_layers + 1)) "the committed image pushes; skopeo reads it from the registry"

images_before=$(cimg images -q | wc -l)
expect_fail "$CIMG_ERR_CODE" cimg commit -c 'RUN touch /x' ch fs:bad
assert_contains "$ERR" "not a valid change command" "commit -c RUN is refused"
expect_fail "$CIMG_ERR_CODE" cimg commit -c 'SHELL ["/bin/bash", "-c"]' ch fs:bad
assert_contains "$ERR" "SHELL is not a valid change command" "commit -c SHELL is refused, as import's"
expect_fail "$CIMG_ERR_CODE" cimg commit -c 'EXPOSE notaport' ch fs:bad
expect_fail "$CIMG_ERR_CODE" cimg commit ch 'fs:bad@sha256:1234'
# A bad name is refused before any work, as Docker's CLI checks it before asking for the
# container: the store gains no blob and no layer (the container has a change of its own, so a
# commit would add both).
must cimg run --name badtag "$BASE" sh -c 'echo badtag >/unique'
remember_ids
store_files() { find "$CIMG_ROOT/blobs" "$CIMG_ROOT/layers" -mindepth 1 -maxdepth 2 | LC_ALL=C sort; }
files_before=$(store_files)
expect_fail "$CIMG_ERR_CODE" cimg commit badtag Bad:Tag
assert_contains "$ERR" '"Bad:Tag"' "commit with an upper-case tag names it"
assert_contains "$ERR" "must be lowercase" "commit with an upper-case tag says the rule"
expect_fail "$CIMG_ERR_CODE" cimg commit badtag "fs:bad@sha256:$(printf '%064d' 0)"
assert_contains "$ERR" "refusing to create a tag with a digest reference" \
  "commit to a digest reference says a tag cannot be one"
assert_eq "$(store_files)" "$files_before" "a refused commit name adds no blob and no layer"
expect_fail "$CIMG_ERR_CODE" cimg commit no-such-container Bad:Tag
assert_contains "$ERR" "must be lowercase" "the name is checked before the container is looked up"
expect_fail "$CIMG_ERR_CODE" cimg commit no-such-container
assert_contains "$ERR" "no-such-container" "commit of a missing container names it"
expect_fail "$CIMG_USAGE_CODE" cimg commit
expect_fail "$CIMG_USAGE_CODE" cimg commit --bogus ch
assert_eq "$(cimg images -q | wc -l)" "$images_before" "failed commits leave no image"

section "export"
expect_ok cimg export -o "$TEST_TMP/ch.tar" ch
names=$(tar_names "$TEST_TMP/ch.tar")
for n in bin/busybox bin/sh etc/passwd etc/motd data/ added newdir/sub/; do
  assert_contains "$names" "$n" "export: has $n"
done
assert_not_contains "$names" "etc/group" "export: a deleted file is absent"
assert_not_contains "$names" "data/a" "export: a file deleted from a lower layer is absent"
assert_contains "$names" "data/sub/x" "export: the lower layer's files that stay"
assert_not_contains "$names" ".wh." "export: no whiteouts"
assert_eq "$(tar -xOf "$TEST_TMP/ch.tar" etc/motd)" $'motd\nmore' "export: the changed content"
cimg export ch >"$TEST_TMP/ch-stdout.tar"
assert_eq "$(tar_names "$TEST_TMP/ch-stdout.tar")" "$names" "export to stdout: the same tar"
run pty_run 24 80 "$CIMG" --root "$CIMG_ROOT" export ch
assert_contains "$OUT" "cowardly refusing" "export refuses a terminal as stdout"
assert_ne "$RC" 0 "export to a terminal fails"
expect_fail "$CIMG_ERR_CODE" cimg export -o "$TEST_TMP/none.tar" no-such-container
assert_eq "$(find "$TEST_TMP" -maxdepth 1 -name 'none.tar*' | wc -l)" 0 "a failed export leaves no file"
expect_fail "$CIMG_USAGE_CODE" cimg export

section "cp: running container"
echo canary >"$CANARY"
run_d --name cpr "$BASE" sh -c "echo ctr-shadow-marker >/etc/shadow; ln -s /etc/shadow /x; \
  ln -s $CANARY /y; mkdir -p /dir/sub; echo f1 >/dir/sub/f1; echo top >/dir/top; \
  touch /ready; exec sleep 1000"
wait_for 10 "the container is ready" test -e "$CIMG_ROOT/containers/$CID/upper/ready"
CPR=$CID
mkdir -p "$TEST_TMP/out"
cd "$TEST_TMP/out"
expect_ok cimg cp cpr:/x x
assert_eq "$(readlink x)" "/etc/shadow" "cp of a symlink copies the link itself"
expect_ok cimg cp -L cpr:/x shadow
assert_eq "$(cat shadow)" "ctr-shadow-marker" "cp -L through a link to /etc/shadow copies the container's file"
expect_fail "$CIMG_ERR_CODE" cimg cp cpr:/x/ shadow-dir-attempt
assert_contains "$ERR" "/x/" "cp of FILE/ (a directory expected) fails naming the path"
expect_ok cimg cp cpr:/dir .
assert_eq "$(cat dir/sub/f1 dir/top)" $'f1\ntop' "cp of a directory into an existing one"
expect_ok cimg cp cpr:/dir/. dir2
assert_eq "$(cd dir2 && find . | LC_ALL=C sort | tr '\n' ' ')" ". ./sub ./sub/f1 ./top " "cp DIR/. to a new path copies the contents"
expect_ok cimg cp cpr:/dir/top top-file
assert_eq "$(cat top-file)" "top" "cp of a file to a new file"
cimg cp cpr:/dir - >dir.tar
assert_eq "$(tar_names dir.tar | tr '\n' ' ')" "dir/ dir/sub/ dir/sub/f1 dir/top " "cp to - writes a tar"

echo host-data >hostfile
chown 1234:4321 hostfile
expect_ok cimg cp hostfile cpr:/dir/
expect_ok cimg exec cpr stat -c '%u:%g %n' /dir/hostfile
assert_eq "$OUT" "0:0 /dir/hostfile" "cp into a container: root-owned"
expect_ok cimg cp -a hostfile cpr:/dir/kept
expect_ok cimg exec cpr sh -c 'stat -c %u:%g /dir/kept; cat /dir/kept'
assert_eq "$OUT" $'1234:4321\nhost-data' "cp -a keeps the uid/gid"
mkdir -p hostdir/a
echo deep >hostdir/a/deep
expect_ok cimg cp hostdir cpr:/
expect_ok cimg exec cpr cat /hostdir/a/deep
assert_eq "$OUT" "deep" "cp of a directory into a running container"
mkdir -p tarsrc/t
echo from-tar >tarsrc/t/file
tar -C tarsrc -cf - . | cimg cp - cpr:/dir
expect_ok cimg exec cpr cat /dir/t/file
assert_eq "$OUT" "from-tar" "cp - extracts a tar stream into the container"

echo evil >evil
expect_ok cimg cp evil cpr:/y
assert_eq "$(cat "$CANARY")" "canary" "cp into a symlink to a host path leaves the host file alone"
expect_ok cimg exec cpr cat "$CANARY"
assert_eq "$OUT" "evil" "the symlink's target is the container's own file"
mkdir -p evil-tar
ln -s /tmp evil-tar/link
mkdir -p evil-tar2/link
echo injected >"evil-tar2/link/$(basename "$INJECT")"
# One tar: "link" -> /tmp, then "link/<name>" (GNU tar appends the second archive to the first).
tar -C evil-tar -cf evil1.tar link
tar -C evil-tar2 -cf evil2.tar "link/$(basename "$INJECT")"
tar -Af evil1.tar evil2.tar
assert_eq "$(tar -tf evil1.tar | tr '\n' ' ')" "link link/$(basename "$INJECT") " "the hostile tar holds the link, then a file below it"
run cimg cp - cpr:/dir <evil1.tar
if [ -e "$INJECT" ]; then fail "a tar with a symlink to /tmp wrote into the host's /tmp"; else pass "a tar's symlink cannot lead the extraction out of the container"; fi
expect_ok cimg exec cpr cat "$INJECT"
assert_eq "$OUT" "injected" "the tar's symlinked entry lands in the container's /tmp"

expect_fail "$CIMG_ERR_CODE" cimg cp evil cpr:/proc/evil
assert_contains "$ERR" "kernel filesystem" "cp into the running container's /proc is refused"
expect_fail "$CIMG_ERR_CODE" cimg cp hostdir cpr:/sys/
assert_contains "$ERR" "kernel filesystem" "cp into the running container's /sys is refused"

expect_ok cimg export -o "$TEST_TMP/cpr.tar" cpr
assert_eq "$(tar -xOf "$TEST_TMP/cpr.tar" dir/t/file)" "from-tar" "export of a running container has what cp put there"
expect_ok cimg commit cpr fs:running
expect_ok cimg run --rm fs:running cat /dir/hostfile /hostdir/a/deep
assert_eq "$OUT" $'host-data\ndeep' "commit of a running container: the image has its files"

section "cp: stopped container"
must cimg stop -t 1 cpr
echo stopped >stopped-in
expect_ok cimg cp stopped-in cpr:/stopped-in
expect_ok cimg cp cpr:/stopped-in back
assert_eq "$(cat back)" "stopped" "cp in and out of a stopped container"
echo evil2 >evil2
expect_ok cimg cp evil2 cpr:/y
assert_eq "$(cat "$CANARY")" "canary" "stopped: cp through a symlink to a host path leaves the host file alone"
expect_ok cimg cp -L cpr:/x shadow2
assert_eq "$(cat shadow2)" "ctr-shadow-marker" "stopped: cp -L of a link to /etc/shadow reads the container's file"
expect_ok cimg cp cpr:/etc/motd motd
assert_eq "$(cat motd)" "motd" "stopped: a file of the image's lower layer"
cimg cp cpr:/dir/. - >contents.tar
assert_eq "$(tar_names contents.tar | tr '\n' ' ')" "hostfile kept link sub/ sub/f1 t/ t/file top " "stopped: cp DIR/. - streams the directory's contents"
expect_ok cimg cp hostdir cpr:/data/
expect_ok cimg diff cpr
assert_contains "$OUT" "A /stopped-in" "diff sees what cp wrote into the stopped container"
assert_contains "$OUT" "A /data/hostdir/a/deep" "cp of a directory into a stopped container"
assert_eq "$(findmnt -rn -o TARGET | grep -c "$CIMG_ROOT" || true)" 0 "cp leaves no mount behind"
must cimg start cpr
expect_ok cimg exec cpr sh -c "cat /stopped-in $CANARY"
assert_eq "$OUT" $'stopped\nevil2' "the restarted container sees what cp wrote while it was stopped"
ch_id=$(cimg ps -aq --no-trunc -f name=ch)
expect_ok cimg cp -a hostfile ch:/etc/
expect_ok cimg cp ch:/etc/hostfile ch-hostfile
assert_eq "$(stat -c %u:%g ch-hostfile)" "0:0" "cp out: to the caller's uid/gid"
expect_ok cimg cp -a ch:/etc/hostfile ch-hostfile-a
assert_eq "$(stat -c %u:%g ch-hostfile-a)" "1234:4321" "cp -a out: the container file's uid/gid"
assert_eq "$(find "$CIMG_ROOT/containers/$ch_id" -maxdepth 1 -name '*.tmp-*' | wc -l)" 0 "no temp dirs left in the container"

section "cp: errors"
expect_fail "$CIMG_ERR_CODE" cimg cp no-such-container:/x out-x
assert_contains "$ERR" "no-such-container" "cp from a missing container names it"
expect_fail "$CIMG_ERR_CODE" cimg cp cpr:/no/such/path out-x
assert_contains "$ERR" "/no/such/path" "cp of a missing path names it"
expect_fail "$CIMG_ERR_CODE" cimg cp ./no-such-local cpr:/tmp/
assert_contains "$ERR" "no-such-local" "cp of a missing local file names it"
expect_fail "$CIMG_ERR_CODE" cimg cp hostdir cpr:/stopped-in
expect_fail "$CIMG_USAGE_CODE" cimg cp a b
expect_fail "$CIMG_USAGE_CODE" cimg cp cpr:/a cpr:/b
expect_fail "$CIMG_USAGE_CODE" cimg cp cpr:/a
expect_fail "$CIMG_USAGE_CODE" cimg cp --bogus cpr:/a b
expect_fail "$CIMG_ERR_CODE" cimg diff no-such-container
expect_fail "$CIMG_USAGE_CODE" cimg diff
cd "$TEST_TMP"

section "commit --pause"
# The test holds index.lock, which a commit takes only to record the new image, after it has
# read the write layer: so the commit stops there, deterministically, for as long as the test
# looks at the container.

# freezer_state ID: FROZEN or THAWED, from the v1 freezer (freezer.state, FREEZING counts as
# not frozen yet) or else cgroup v2's cgroup.events.
freezer_state() {
  local d
  d=$(cgroup_dirs "$1" | grep '/freezer/' | head -n 1)
  if [ -n "$d" ]; then
    cat "$d/freezer.state"
    return
  fi
  d=$(cgroup_dirs "$1" | head -n 1)
  if grep -qx 'frozen 1' "$d/cgroup.events"; then echo FROZEN; else echo THAWED; fi
}
is_frozen() { [ "$(freezer_state "$1")" == FROZEN ]; }
counter() { cat "$CIMG_ROOT/containers/$CTR/upper/counter"; }
counter_above() { [ "$(counter)" -gt "$1" ]; }
# blocked_on_lock PID: PID waits for a flock (/proc/locks lists waiters with "->").
blocked_on_lock() { grep -Eq "^[0-9]+: -> FLOCK +ADVISORY +WRITE +$1 " /proc/locks; }
# commit_held ARGS…: `cimg commit ARGS…` in the background while this shell holds index.lock
# (fd 9); sets COMMIT_PID once the commit waits for that lock.
commit_held() {
  exec 9<>"$CIMG_ROOT/index.lock"
  flock -x 9
  "$CIMG" --root "$CIMG_ROOT" commit "$@" >"$TEST_TMP/commit-held.out" 2>"$TEST_TMP/commit-held.err" 9>&- &
  COMMIT_PID=$!
  _CIMG_TEST_PIDS+=("$COMMIT_PID")
  wait_for 20 "commit $* reads the write layer and waits to record the image" \
    blocked_on_lock "$COMMIT_PID"
}
# commit_release: let the held commit finish; RC is its exit code, OUT its output.
commit_release() {
  exec 9>&-
  RC=0
  wait "$COMMIT_PID" || RC=$?
  OUT=$(cat "$TEST_TMP/commit-held.out")
}

run_d --name counter "$BASE" sh -c \
  'i=0; while :; do i=$((i + 1)); echo $i >/c.tmp; mv /c.tmp /counter; sleep 0.01; done'
CTR=$CID
wait_for 10 "the container writes its counter" test -s "$CIMG_ROOT/containers/$CTR/upper/counter"
assert_eq "$(freezer_state "$CTR")" THAWED "the running container is not frozen"

commit_held counter fs:paused
assert_eq "$(freezer_state "$CTR")" FROZEN "during commit (-p is the default) the container's cgroup is frozen"
frozen_at=$(counter)
sleep 0.5
assert_eq "$(counter)" "$frozen_at" "the frozen container writes nothing while commit reads its layer"
commit_release
assert_eq "$RC" 0 "the paused commit succeeds"
assert_match "$OUT" '^sha256:[0-9a-f]{64}$' "and prints the image ID"
assert_eq "$(freezer_state "$CTR")" THAWED "after commit the container is thawed"
wait_for 10 "the counter goes on after the commit" counter_above "$frozen_at"
expect_ok cimg run --rm fs:paused cat /counter
assert_eq "$OUT" "$frozen_at" "the committed layer holds the counter of the frozen instant"

commit_held --pause=false counter fs:unpaused
assert_eq "$(freezer_state "$CTR")" THAWED "commit --pause=false does not freeze the container"
at=$(counter)
wait_for 10 "and it goes on writing during the commit" counter_above "$at"
commit_release
assert_eq "$RC" 0 "commit --pause=false succeeds"

expect_fail "$CIMG_USAGE_CODE" cimg commit --pause=maybe counter fs:x
assert_contains "$ERR" "--pause" "a bad --pause value names the flag"
# A commit that fails once the container is frozen thaws it all the same: the packed layer is
# recorded only after the freeze, and an immutable blob directory refuses it.
chattr +i "$CIMG_ROOT/blobs/sha256"
expect_fail "$CIMG_ERR_CODE" cimg commit counter fs:unrecorded
chattr -i "$CIMG_ROOT/blobs/sha256"
assert_contains "$ERR" "write layer: store blob sha256:" "a commit that cannot store its layer says so"
assert_contains "$ERR" "Operation not permitted" "and why"
assert_eq "$(freezer_state "$CTR")" THAWED "a failed commit leaves the container thawed"
at=$(counter)
wait_for 10 "the container goes on writing after the failed commit" counter_above "$at"
expect_fail "$CIMG_ERR_CODE" cimg image inspect fs:unrecorded
must cimg rm -f counter

section "clean-up"
must cimg rm -f cpr ch opq same badtag
assert_eq "$(container_ids | wc -l)" 0 "every container removed"
assert_store_clean
