#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# cimg and its peers read each other's archives: an image made by umoci and written by skopeo
# (docker-archive, OCI layout) loads into cimg with the same identity, and what `cimg save`
# writes is read back by skopeo and umoci into the same rootfs.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

section "fixtures (umoci + skopeo)"
make_busybox_rootfs "$TEST_TMP/rootfs-orig"
orig_listing=$(rootfs_listing "$TEST_TMP/rootfs-orig")
orig_busybox=$(sha256_of "$TEST_TMP/rootfs-orig/bin/busybox")
make_fixture_docker_archive "$TEST_TMP/busybox-da.tar" busybox:fix
cfg=$(config_digest "docker-archive:$TEST_TMP/busybox-da.tar")
diff_ids=$(skopeo inspect --config "docker-archive:$TEST_TMP/busybox-da.tar" | jq -c .rootfs.diff_ids)
assert_eq "$(skopeo inspect --raw "docker-archive:$TEST_TMP/busybox-da.tar" | jq -r .config.digest)" \
  "$cfg" "skopeo's manifest names the config by the digest of its bytes"
assert_eq "$(jq -r length <<<"$diff_ids")" 1 "the fixture has one layer"
log "fixture: config $cfg, diff_ids $diff_ids"

# image_id ROOT NAME TAG: the full ID `images --no-trunc` shows for NAME:TAG, without sha256:.
image_id() {
  cimg_in "$1" images --no-trunc | awk -v r="$2" -v t="$3" '$1 == r && $2 == t {print $3}' |
    sed 's/^sha256://'
}

section "(a) docker-archive written by skopeo"
expect_ok cimg load -i "$TEST_TMP/busybox-da.tar"
assert_match "$OUT" '^Loaded image: (docker\.io/library/)?busybox:fix$' "load prints Loaded image: busybox:fix"
assert_eq "$(image_id "$CIMG_ROOT" busybox fix)" "${cfg#sha256:}" \
  "the image ID is the config digest skopeo reports"
expect_ok cimg inspect busybox:fix
assert_eq "$(jq -r '.[0].Id' <<<"$OUT" 2>/dev/null)" "$cfg" "inspect Id is the config digest"
assert_eq "$(jq -c '.[0].RootFS.Layers' <<<"$OUT" 2>/dev/null)" "$diff_ids" \
  "RootFS.Layers are the config's diff_ids"
assert_eq "$(jq -c '.[0].Config.Cmd' <<<"$OUT" 2>/dev/null)" '["/bin/sh"]' "Config.Cmd from umoci"
assert_eq "$(jq -r '.[0].Architecture' <<<"$OUT" 2>/dev/null)" "$(host_arch)" "Architecture from umoci"
assert_eq "$(jq -r '.[0].Os' <<<"$OUT" 2>/dev/null)" linux "Os from umoci"

layers_before=$(count_layer_dirs)
expect_ok cimg load -i "$TEST_TMP/busybox-da.tar"
assert_contains "$OUT" "Loaded image: " "loading the same archive again succeeds"
run cimg load <"$TEST_TMP/busybox-da.tar"
assert_eq "$RC" 0 "load reads the archive from stdin"
assert_contains "$OUT" "busybox:fix" "load from stdin names the image"
expect_ok cimg images -a -q --no-trunc
assert_eq "${OUT#sha256:}" "${cfg#sha256:}" "loading again adds no image"
assert_eq "$(count_layer_dirs)" "$layers_before" "loading again adds no layer"
assert_store_clean

section "(b) OCI layout written by umoci, tarred"
make_fixture_oci "$TEST_TMP/oci" fix
assert_eq "$(config_digest "oci:$TEST_TMP/oci:fix")" "$cfg" "the OCI fixture is the same image"
tar -C "$TEST_TMP/oci" -cf "$TEST_TMP/oci.tar" .
root_oci="$TEST_TMP/root-oci"
expect_ok cimg_in "$root_oci" load -i "$TEST_TMP/oci.tar"
assert_contains "$OUT" "Loaded image" "load of an OCI layout tar reports the image"
expect_ok cimg_in "$root_oci" images -a -q --no-trunc
assert_eq "${OUT#sha256:}" "${cfg#sha256:}" "the OCI layout loads as the same image ID"
expect_ok cimg_in "$root_oci" inspect "$cfg"
assert_eq "$(jq -c '.[0].RootFS.Layers' <<<"$OUT" 2>/dev/null)" "$diff_ids" \
  "the gzip layer of the OCI layout has the config's diff_id"
assert_store_clean "$root_oci"

section "(c) cimg save, read by skopeo and umoci"
must cimg save -o "$TEST_TMP/out.tar" busybox:fix
if [ -s "$TEST_TMP/out.tar" ]; then pass "save wrote out.tar"; else fail "out.tar is empty"; fi
expect_ok skopeo inspect "docker-archive:$TEST_TMP/out.tar"
assert_eq "$(jq -c .Layers <<<"$OUT" 2>/dev/null)" "$diff_ids" "skopeo sees the same layers"
assert_eq "$(jq -r .Architecture <<<"$OUT" 2>/dev/null)" "$(host_arch)" "skopeo sees the architecture"
expect_ok skopeo inspect --config "docker-archive:$TEST_TMP/out.tar"
assert_eq "$(jq -c .rootfs.diff_ids <<<"$OUT" 2>/dev/null)" "$diff_ids" "skopeo sees the same diff_ids"
assert_eq "$(config_digest "docker-archive:$TEST_TMP/out.tar")" "$cfg" \
  "the saved config is byte for byte the loaded one"
# skopeo picks an image of a docker-archive by the names in manifest.json's RepoTags.
expect_ok skopeo inspect "docker-archive:$TEST_TMP/out.tar:busybox:fix"

must skopeo copy --quiet "docker-archive:$TEST_TMP/out.tar" "oci:$TEST_TMP/roundtrip:t"
must umoci unpack --image "$TEST_TMP/roundtrip:t" "$TEST_TMP/bundle"
assert_eq "$(rootfs_listing "$TEST_TMP/bundle/rootfs")" "$orig_listing" \
  "umoci unpacks the saved image into the original file list (types, modes, links)"
assert_eq "$(sha256_of "$TEST_TMP/bundle/rootfs/bin/busybox")" "$orig_busybox" \
  "busybox has the original checksum"

mkdir -p "$TEST_TMP/out-x"
must tar -C "$TEST_TMP/out-x" -xf "$TEST_TMP/out.tar"
for f in manifest.json oci-layout index.json; do
  if [ -f "$TEST_TMP/out-x/$f" ]; then pass "the archive has $f"; else fail "the archive has no $f"; fi
done
assert_eq "$(jq -r '.[0].RepoTags | index("busybox:fix") != null' "$TEST_TMP/out-x/manifest.json" 2>/dev/null)" \
  true "manifest.json RepoTags has busybox:fix (Docker's short form)"
expect_ok skopeo inspect "oci:$TEST_TMP/out-x"
assert_eq "$(jq -r '.Layers | length' <<<"$OUT" 2>/dev/null)" 1 \
  "skopeo reads the OCI layout in the same archive"
assert_eq "$(config_digest "oci:$TEST_TMP/out-x")" "$cfg" "the OCI layout has the same config"
expect_ok skopeo inspect --config "oci:$TEST_TMP/out-x"
assert_eq "$(jq -c .rootfs.diff_ids <<<"$OUT" 2>/dev/null)" "$diff_ids" "… and the same diff_ids"

section "(c') save of several images"
must cimg tag busybox:fix busybox:fix2
must cimg save -o "$TEST_TMP/multi.tar" busybox:fix busybox:fix2
expect_ok skopeo inspect "docker-archive:$TEST_TMP/multi.tar:busybox:fix"
expect_ok skopeo inspect "docker-archive:$TEST_TMP/multi.tar:busybox:fix2"
assert_eq "$(jq -c .Layers <<<"$OUT" 2>/dev/null)" "$diff_ids" "both names lead to the same layers"

section "(d) gzip'd save"
must gzip -k "$TEST_TMP/out.tar"
root_gz="$TEST_TMP/root-gz"
expect_ok cimg_in "$root_gz" load -i "$TEST_TMP/out.tar.gz"
assert_match "$OUT" 'Loaded image: (docker\.io/library/)?busybox:fix' "a gzip'd archive loads"
assert_eq "$(image_id "$root_gz" busybox fix)" "${cfg#sha256:}" "with the same image ID"
expect_ok cimg_in "$root_gz" inspect busybox:fix
assert_eq "$(jq -c '.[0].RootFS.Layers' <<<"$OUT" 2>/dev/null)" "$diff_ids" "and the same layers"
assert_store_clean "$root_gz"
assert_store_clean
