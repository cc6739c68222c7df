#!/bin/bash
# cimg tag SRC DST: the new tag keeps what push and save use of the source. An image pulled
# through two manifests (OCI and Docker schema2, one config) pushes, for each tag, the manifest
# that tag came with, digest for digest: a tag made from it pushes the same manifest, also after
# the source tag is gone, and a tag moved to the other source follows it. tag adds no repo
# digest (as Docker: only a pull or a push does). What cimg pushes and saves is read by skopeo.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

# The config's media type tells the two manifests apart (an OCI manifest may omit its own).
OCI_CONFIG_MT=application/vnd.oci.image.config.v1+json
V2_CONFIG_MT=application/vnd.docker.container.image.v1+json

section "fixtures"
start_registry
make_fixture_oci "$TEST_TMP/oci" busybox
push_fixture "oci:$TEST_TMP/oci:busybox" bb:oci
push_fixture "oci:$TEST_TMP/oci:busybox" bb:v2s2 --format v2s2
oci_digest=$(reg_digest bb:oci)
v2_digest=$(reg_digest bb:v2s2)
assert_ne "$oci_digest" "$v2_digest" "the registry holds two manifests"
must cimg pull "$REGISTRY/bb:oci"
must cimg pull "$REGISTRY/bb:v2s2"
id=$(cimg inspect "$REGISTRY/bb:oci" | jq -r '.[0].Id')
assert_eq "$(cimg inspect "$REGISTRY/bb:v2s2" | jq -r '.[0].Id')" "$id" \
  "both pulls are one image (one config)"
repo_digests=$(cimg inspect "$id" | jq -c '.[0].RepoDigests | sort')

section "tag keeps the manifest of its source"
# bb:v2s2 was pulled last: its manifest is the image's newest, which a tag that forgot its
# source would push.
must cimg tag "$REGISTRY/bb:oci" "$REGISTRY/copy:oci"
must cimg tag "$REGISTRY/bb:v2s2" "$REGISTRY/copy:v2s2"
must cimg tag "$REGISTRY/bb:oci" "$REGISTRY/bb:again"
assert_eq "$(cimg inspect "$id" | jq -c '.[0].RepoDigests | sort')" "$repo_digests" \
  "tag adds no repo digest and drops none"
expect_ok cimg images --digests
assert_match "$OUT" "$REGISTRY/bb +again +$oci_digest " \
  "images --digests: a new tag in the source's repository shows the source's digest"
assert_match "$OUT" "$REGISTRY/copy +oci +<none> " \
  "images --digests: a tag in a new repository has no digest there yet (as Docker)"

expect_ok cimg push "$REGISTRY/copy:oci"
assert_contains "$OUT" "oci: digest: $oci_digest" "push of a tag of bb:oci prints bb:oci's digest"
assert_eq "$(reg_digest copy:oci)" "$oci_digest" "skopeo: the registry has bb:oci's manifest, byte for byte"
assert_eq "$(reg_manifest copy:oci | jq -r .config.mediaType)" "$OCI_CONFIG_MT" "an OCI manifest"
expect_ok cimg push "$REGISTRY/copy:v2s2"
assert_eq "$(reg_digest copy:v2s2)" "$v2_digest" "push of a tag of bb:v2s2 sends the schema2 manifest"
assert_eq "$(reg_manifest copy:v2s2 | jq -r .config.mediaType)" "$V2_CONFIG_MT" "a Docker schema2 manifest"
expect_ok cimg inspect "$id"
assert_contains "$(jq -r '.[0].RepoDigests[]' <<<"$OUT")" "$REGISTRY/copy@$oci_digest" \
  "the push (not the tag) records the repo digest"

section "the tag outlives its source, and moves with a new one"
must cimg rmi "$REGISTRY/bb:oci"
expect_ok cimg push "$REGISTRY/bb:again" "$REGISTRY/again:1"
assert_eq "$(reg_digest again:1)" "$oci_digest" "with bb:oci untagged, its copy still pushes its manifest"
must cimg tag "$REGISTRY/bb:v2s2" "$REGISTRY/copy:oci"
expect_ok cimg push "$REGISTRY/copy:oci" "$REGISTRY/moved:1"
assert_eq "$(reg_digest moved:1)" "$v2_digest" "a tag moved onto bb:v2s2 pushes bb:v2s2's manifest"

section "save of the new tag"
must cimg save -o "$TEST_TMP/copy.tar" "$REGISTRY/copy:v2s2"
assert_eq "$(tar -xOf "$TEST_TMP/copy.tar" manifest.json | jq -c '.[].RepoTags')" \
  "[\"$REGISTRY/copy:v2s2\"]" "the archive's manifest.json names the new tag"
expect_ok skopeo inspect "docker-archive:$TEST_TMP/copy.tar:$REGISTRY/copy:v2s2"
assert_eq "$(jq -c .Layers <<<"$OUT")" "$(cimg inspect "$id" | jq -c '.[0].RootFS.Layers')" \
  "skopeo: the source's layers"
assert_eq "$(config_digest "docker-archive:$TEST_TMP/copy.tar")" "$id" "skopeo: the source's config"
mkdir -p "$TEST_TMP/unpacked"
_quietly skopeo-oci skopeo copy --quiet "docker-archive:$TEST_TMP/copy.tar" "oci:$TEST_TMP/unpacked/layout:t"
_quietly umoci-unpack umoci unpack --image "$TEST_TMP/unpacked/layout:t" "$TEST_TMP/unpacked/bundle"
make_busybox_rootfs "$TEST_TMP/rootfs-orig"
assert_eq "$(rootfs_listing "$TEST_TMP/unpacked/bundle/rootfs")" "$(rootfs_listing "$TEST_TMP/rootfs-orig")" \
  "umoci unpacks the source's rootfs from the saved tag"
assert_store_clean
