#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# Bad input never reaches the store: truncated and corrupted archives, tars whose entries
# leave the layer, a full disk. Each is refused with exit 125 and a message that says why; the
# store keeps its images, `system check` finds nothing but debris, and after `--repair` it is
# clean.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# A good image first, so the store is not empty when bad input arrives.
section "a store with one good image"
make_busybox_rootfs "$TEST_TMP/rootfs"
tar -C "$TEST_TMP/rootfs" -cf "$TEST_TMP/rootfs.tar" .
must cimg import "$TEST_TMP/rootfs.tar" busybox:good
expect_ok cimg images -a -q --no-trunc
baseline=$OUT

# The canary sits beside the store; no entry of any tar below may reach it.
canary="$TEST_TMP/canary"
echo "canary" >"$canary"
canary_state=$(stat -c '%i %s %Y' "$canary")

# after_failure ROOT BASELINE LABEL: the failed command left no image, nothing worse than
# debris, and --repair leaves a clean store.
after_failure() {
  local root=$1 base=$2 label=$3
  run cimg_in "$root" images -a -q --no-trunc
  assert_eq "$OUT" "$base" "$label: no new image"
  run cimg_in "$root" system check
  if [ "$RC" -eq 0 ]; then
    pass "$label: system check finds nothing but debris"
  else
    fail "$label: system check exited $RC"
    _show_output
  fi
  run cimg_in "$root" system check --repair
  if [ "$RC" -eq 0 ]; then
    pass "$label: system check --repair"
  else
    fail "$label: system check --repair exited $RC"
    _show_output
  fi
  assert_store_clean "$root"
  assert_eq "$(store_debris "$root")" "" "$label: no debris left after repair"
  assert_eq "$(stat -c '%i %s %Y' "$canary")" "$canary_state" "$label: the canary is untouched"
  assert_eq "$(find "$TEST_TMP" -name evil | head -n 5)" "" "$label: no 'evil' file anywhere"
}

# flip_bytes FILE OFFSET COUNT: invert COUNT bytes of FILE at OFFSET, in place.
flip_bytes() {
  python3 - "$1" "$2" "$3" <<'EOF'
import sys
path, off, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(n)
    f.seek(off)
    f.write(bytes(x ^ 0xFF for x in b))
EOF
}

# truncate_to FILE SIZE OUT
truncate_to() {
  head -c "$2" "$1" >"$3"
}

make_fixture_docker_archive "$TEST_TMP/da.tar" busybox:bad
mkdir -p "$TEST_TMP/da"
tar -C "$TEST_TMP/da" -xf "$TEST_TMP/da.tar"
layer_file=$(jq -r '.[0].Layers[0]' "$TEST_TMP/da/manifest.json")
config_file=$(jq -r '.[0].Config' "$TEST_TMP/da/manifest.json")
# The archive's entries in skopeo's order (layer first, manifest.json last).
mapfile -t da_entries < <(tar -tf "$TEST_TMP/da.tar")

section "truncated archives"
size=$(stat -c %s "$TEST_TMP/da.tar")
truncate_to "$TEST_TMP/da.tar" $((size / 2)) "$TEST_TMP/trunc.tar"
expect_fail "$CIMG_ERR_CODE" cimg load -i "$TEST_TMP/trunc.tar"
after_failure "$CIMG_ROOT" "$baseline" "truncated docker-archive"

# manifest.json and the config first, so the cut falls in the layer after they were read.
reordered=(manifest.json "$config_file")
for e in "${da_entries[@]}"; do
  case "$e" in
    manifest.json | "$config_file" | "$layer_file") ;;
    *) reordered+=("$e") ;;
  esac
done
reordered+=("$layer_file")
tar --no-recursion -C "$TEST_TMP/da" -cf "$TEST_TMP/reordered.tar" "${reordered[@]}"
size=$(stat -c %s "$TEST_TMP/reordered.tar")
truncate_to "$TEST_TMP/reordered.tar" $((size * 6 / 10)) "$TEST_TMP/trunc-layer.tar"
expect_fail "$CIMG_ERR_CODE" cimg load -i "$TEST_TMP/trunc-layer.tar"
after_failure "$CIMG_ROOT" "$baseline" "archive cut inside its layer"

gzip -c "$TEST_TMP/da.tar" >"$TEST_TMP/da.tar.gz"
size=$(stat -c %s "$TEST_TMP/da.tar.gz")
truncate_to "$TEST_TMP/da.tar.gz" $((size * 8 / 10)) "$TEST_TMP/trunc.tar.gz"
expect_fail "$CIMG_ERR_CODE" cimg load -i "$TEST_TMP/trunc.tar.gz"
after_failure "$CIMG_ROOT" "$baseline" "truncated gzip'd archive"

size=$(stat -c %s "$TEST_TMP/rootfs.tar")
truncate_to "$TEST_TMP/rootfs.tar" $((size / 2)) "$TEST_TMP/trunc-rootfs.tar"
expect_fail "$CIMG_ERR_CODE" cimg import "$TEST_TMP/trunc-rootfs.tar" busybox:trunc
after_failure "$CIMG_ROOT" "$baseline" "truncated import"

section "corrupted layer in a docker-archive"
cp -a "$TEST_TMP/da" "$TEST_TMP/da-bad"
lsize=$(stat -c %s "$TEST_TMP/da-bad/$layer_file")
flip_bytes "$TEST_TMP/da-bad/$layer_file" $((lsize / 2)) 16
# Still a well-formed tar: only the diff_id check can catch it.
tar -tf "$TEST_TMP/da-bad/$layer_file" >/dev/null || die "the corrupted layer is not a tar any more"
tar --no-recursion -C "$TEST_TMP/da-bad" -cf "$TEST_TMP/corrupt.tar" "${da_entries[@]}"
expect_fail "$CIMG_ERR_CODE" cimg load -i "$TEST_TMP/corrupt.tar"
assert_match "$ERR" '[Dd]igest|mismatch|diff.?id' "the message says the layer does not match"
after_failure "$CIMG_ROOT" "$baseline" "corrupted layer"

section "corrupted blobs in an OCI layout"
make_fixture_oci "$TEST_TMP/oci-bad-layer" bad
manifest=$(jq -r '.manifests[0].digest' "$TEST_TMP/oci-bad-layer/index.json")
blob=$(jq -r '.layers[0].digest' "$TEST_TMP/oci-bad-layer/blobs/sha256/${manifest#sha256:}")
bfile="$TEST_TMP/oci-bad-layer/blobs/sha256/${blob#sha256:}"
flip_bytes "$bfile" $(($(stat -c %s "$bfile") / 2)) 16
tar -C "$TEST_TMP/oci-bad-layer" -cf "$TEST_TMP/oci-bad-layer.tar" .
expect_fail "$CIMG_ERR_CODE" cimg load -i "$TEST_TMP/oci-bad-layer.tar"
after_failure "$CIMG_ROOT" "$baseline" "corrupted gzip layer blob"

make_fixture_oci "$TEST_TMP/oci-bad-config" bad
manifest=$(jq -r '.manifests[0].digest' "$TEST_TMP/oci-bad-config/index.json")
blob=$(jq -r '.config.digest' "$TEST_TMP/oci-bad-config/blobs/sha256/${manifest#sha256:}")
bfile="$TEST_TMP/oci-bad-config/blobs/sha256/${blob#sha256:}"
# Valid JSON still, but no longer the bytes its digest names.
sed -i 's,/bin/sh,/bin/ls,' "$bfile"
tar -C "$TEST_TMP/oci-bad-config" -cf "$TEST_TMP/oci-bad-config.tar" .
expect_fail "$CIMG_ERR_CODE" cimg load -i "$TEST_TMP/oci-bad-config.tar"
after_failure "$CIMG_ROOT" "$baseline" "config blob that does not match its digest"

section "tar entries that leave the layer"
# make_evil_tar KIND OUT: tars with a few good entries and one that escapes.
make_evil_tar() {
  python3 - "$1" "$2" "${canary#/}" "$TEST_TMP" <<'EOF'
import io, sys, tarfile
kind, out, canary_rel, tmp = sys.argv[1:5]
up = "../" * 16

def reg(t, name, data=b"pwned\n"):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = 0o644
    t.addfile(ti, io.BytesIO(data))

def dir_(t, name):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    t.addfile(ti)

def link(t, name, target, kind=tarfile.SYMTYPE):
    ti = tarfile.TarInfo(name)
    ti.type = kind
    ti.linkname = target
    ti.mode = 0o777
    t.addfile(ti)

with tarfile.open(out, "w", format=tarfile.GNU_FORMAT) as t:
    dir_(t, "./")
    dir_(t, "./etc")
    reg(t, "./etc/ok", b"fine\n")
    if kind == "dotdot":
        reg(t, "../evil")
    elif kind == "deep":
        reg(t, up + canary_rel)
    elif kind == "inner-dotdot":
        reg(t, "etc/../../evil")
    elif kind == "hardlink":
        link(t, "hl", up + canary_rel, tarfile.LNKTYPE)
    elif kind == "symlink-abs":
        link(t, "esc", tmp)
        reg(t, "esc/canary")
    elif kind == "symlink-rel":
        link(t, "up", up.rstrip("/") + tmp)
        reg(t, "up/canary")
    else:
        sys.exit("unknown kind " + kind)
EOF
}

make_evil_tar dotdot "$TEST_TMP/dotdot.tar"
grep -qx '\.\./evil' < <(tar -tf "$TEST_TMP/dotdot.tar" 2>/dev/null) || die "python3 did not write ../evil"
expect_fail "$CIMG_ERR_CODE" cimg import "$TEST_TMP/dotdot.tar" evil:dotdot
assert_contains "$ERR" "../evil" "the message names the entry"
assert_contains "$ERR" "path leaves the layer" "the message says the path leaves the layer"
after_failure "$CIMG_ROOT" "$baseline" "../evil"

make_evil_tar inner-dotdot "$TEST_TMP/inner-dotdot.tar"
expect_fail "$CIMG_ERR_CODE" cimg import "$TEST_TMP/inner-dotdot.tar" evil:inner
assert_contains "$ERR" "path leaves the layer" "etc/../../evil leaves the layer"
after_failure "$CIMG_ROOT" "$baseline" "etc/../../evil"

make_evil_tar deep "$TEST_TMP/deep.tar"
expect_fail "$CIMG_ERR_CODE" cimg import "$TEST_TMP/deep.tar" evil:deep
assert_contains "$ERR" "path leaves the layer" "a path up to the canary leaves the layer"
after_failure "$CIMG_ROOT" "$baseline" "../../…/canary"

make_evil_tar hardlink "$TEST_TMP/hardlink.tar"
expect_fail "$CIMG_ERR_CODE" cimg import "$TEST_TMP/hardlink.tar" evil:hardlink
assert_contains "$ERR" "leaves the layer" "a hard link to the canary is refused"
after_failure "$CIMG_ROOT" "$baseline" "hard link out of the layer"

# Through a symlink the entry may be refused or resolved inside the layer (as the kernel would
# in the container's root); either way the canary outside stays as it is.
for kind in symlink-abs symlink-rel; do
  make_evil_tar "$kind" "$TEST_TMP/$kind.tar"
  run cimg import "$TEST_TMP/$kind.tar" "evil:$kind"
  if [ "$RC" -eq 0 ]; then
    pass "$kind: imported with the write kept inside the layer"
    expect_ok cimg rmi "evil:$kind"
  elif [ "$RC" -eq "$CIMG_ERR_CODE" ]; then
    pass "$kind: refused ($(head -n 1 <<<"$ERR"))"
  else
    fail "$kind: import exited $RC"
    _show_output
  fi
  after_failure "$CIMG_ROOT" "$baseline" "$kind"
done
assert_eq "$(cat "$canary")" "canary" "the canary still says canary"

section "no space left on device"
small="$TEST_TMP/small"
mkdir -p "$small"
mount -t tmpfs -o size=2m,mode=0755 tmpfs "$small"
small_root="$small/root"
make_busybox_rootfs "$TEST_TMP/big"
head -c $((3 * 1024 * 1024)) /dev/urandom >"$TEST_TMP/big/random.bin"
tar -C "$TEST_TMP/big" -cf "$TEST_TMP/big.tar" .
expect_fail "$CIMG_ERR_CODE" cimg_in "$small_root" import "$TEST_TMP/big.tar" big:1
assert_contains "$ERR" "No space left on device" "the message says the disk is full"
after_failure "$small_root" "" "ENOSPC"

# The store still works once the space is back.
mkdir -p "$TEST_TMP/tiny"
echo hello >"$TEST_TMP/tiny/hello"
tar -C "$TEST_TMP/tiny" -cf "$TEST_TMP/tiny.tar" .
expect_ok cimg_in "$small_root" import "$TEST_TMP/tiny.tar" tiny:1
expect_ok cimg_in "$small_root" images -q
assert_ne "$OUT" "" "a small import works after the failed one"
assert_store_clean "$small_root"

section "the first store is as it was"
expect_ok cimg images -a -q --no-trunc
assert_eq "$OUT" "$baseline" "busybox:good is still the only image"
expect_ok cimg inspect busybox:good
assert_store_clean
