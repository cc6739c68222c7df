#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# cimg push: images pulled from one loopback registry are pushed to another and read back by
# skopeo and umoci (reverse interop): the manifest digest is unchanged, the rootfs is the
# original. Blobs the registry has are skipped, blobs of a sibling repository are mounted.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

section "fixtures"
start_registry
start_registry2
make_busybox_rootfs "$TEST_TMP/rootfs-orig"
orig_listing=$(rootfs_listing "$TEST_TMP/rootfs-orig")
make_fixture_oci "$TEST_TMP/oci" busybox
push_fixture "oci:$TEST_TMP/oci:busybox" bb:oci
push_fixture "oci:$TEST_TMP/oci:busybox" bb:v2s2 --format v2s2
make_multilayer_oci "$TEST_TMP/ml"
push_fixture "oci:$TEST_TMP/ml:ml" ml:1
_quietly skopeo-zstd skopeo copy --quiet --dest-compress --dest-compress-format zstd \
  "oci:$TEST_TMP/oci:busybox" "oci:$TEST_TMP/oci-zstd:busybox"
push_fixture "oci:$TEST_TMP/oci-zstd:busybox" bb:zstd
must cimg pull "$REGISTRY/bb:oci"
must cimg pull "$REGISTRY/ml:1"

# unpacked_listing REF [SKOPEO-FLAGS…]: skopeo copies REF (on $REGISTRY2) into an OCI layout,
# umoci unpacks it; prints the rootfs listing.
unpacked_listing() {
  local d="$TEST_TMP/rt-${1//[^a-zA-Z0-9]/_}" ref=$1
  shift
  rm -rf "$d"
  mkdir -p "$d"
  _quietly "skopeo-back-${ref//[^a-zA-Z0-9]/_}" skopeo copy --quiet --src-tls-verify=false "$@" \
    "docker://$REGISTRY2/$ref" "oci:$d/layout:t"
  _quietly "umoci-back-${ref//[^a-zA-Z0-9]/_}" umoci unpack --image "$d/layout:t" "$d/bundle"
  rootfs_listing "$d/bundle/rootfs"
}

section "(a) push to another registry: every blob uploaded"
must cimg tag "$REGISTRY/bb:oci" "$REGISTRY2/bb:1"
expect_ok cimg push "$REGISTRY2/bb:1"
assert_contains "$OUT" "The push refers to repository [$REGISTRY2/bb]" "push names the repository"
assert_match "$OUT" "[0-9a-f]{12}: Pushed" "the layer was pushed"
assert_contains "$OUT" "1: digest: $(reg_digest bb:oci)" "push prints the manifest digest"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/bb:1"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$(reg_digest bb:oci)" \
  "skopeo sees the manifest digest of the original (bytes unchanged)"
assert_eq "sha256:$(skopeo inspect --tls-verify=false --config --raw "docker://$REGISTRY2/bb:1" | sha256sum | cut -d' ' -f1)" \
  "$(cimg inspect "$REGISTRY/bb:oci" | jq -r '.[0].Id')" "the config is the image's"
assert_eq "$(unpacked_listing bb:1)" "$orig_listing" "skopeo + umoci unpack the original rootfs"

section "(b) again: the registry has every blob"
expect_ok cimg push "$REGISTRY2/bb:1"
assert_contains "$OUT" "Layer already exists" "a blob the registry has is not uploaded again"
assert_not_contains "$OUT" "Pushed" "nothing is uploaded"

section "(c) a sibling repository: blobs are mounted"
expect_ok cimg push "$REGISTRY2/bb:1" "$REGISTRY2/other:7"
assert_contains "$OUT" "Mounted from bb" "the layer is mounted from bb"
assert_contains "$OUT" "7: digest: $(reg_digest bb:oci)" "the same digest"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/other:7"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$(reg_digest bb:oci)" "skopeo reads it back"

section "(d) three layers with whiteouts, and -q"
expect_ok cimg push -q "$REGISTRY/ml:1" "$REGISTRY2/ml:1"
assert_eq "$OUT" "$(reg_digest ml:1)" "-q prints only the digest, the original one"
assert_eq "$(unpacked_listing ml:1)" "$(rootfs_listing "$TEST_TMP/ml.expected")" \
  "umoci unpacks the rootfs umoci made (whiteouts and all)"

section "(e) Docker schema2 and zstd keep their media types"
root_e="$TEST_TMP/root-e"
must cimg_in "$root_e" pull "$REGISTRY/bb:v2s2"
expect_ok cimg_in "$root_e" push "$REGISTRY/bb:v2s2" "$REGISTRY2/v2s2:1"
assert_eq "$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY2/v2s2:1" | jq -r .mediaType)" \
  application/vnd.docker.distribution.manifest.v2+json "a schema2 manifest stays schema2"
root_z="$TEST_TMP/root-z"
must cimg_in "$root_z" pull "$REGISTRY/bb:zstd"
expect_ok cimg_in "$root_z" push "$REGISTRY/bb:zstd" "$REGISTRY2/zstd:1"
assert_eq "$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY2/zstd:1" | jq -r '.layers[0].mediaType')" \
  application/vnd.oci.image.layer.v1.tar+zstd "a zstd layer stays zstd"
# (umoci 0.4 reads no zstd: skopeo recompresses on the way)
assert_eq "$(unpacked_listing zstd:1 --dest-compress --dest-compress-format gzip)" "$orig_listing" \
  "and unpacks to the original rootfs"
assert_store_clean "$root_e"
assert_store_clean "$root_z"

section "(e') an image cimg loaded from a docker-archive (uncompressed layers)"
root_l="$TEST_TMP/root-l"
make_fixture_docker_archive "$TEST_TMP/da.tar" busybox:da
must cimg_in "$root_l" load -i "$TEST_TMP/da.tar"
expect_ok cimg_in "$root_l" push busybox:da "$REGISTRY2/loaded:1"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/loaded:1"
assert_eq "$(jq -c .Layers <<<"$OUT")" "$(cimg_in "$root_l" inspect busybox:da | jq -c '.[0].RootFS.Layers')" \
  "skopeo sees the layers of the loaded image"
assert_eq "$(unpacked_listing loaded:1)" "$orig_listing" "and umoci unpacks the original rootfs"
assert_store_clean "$root_l"

section "(f) refusals"
expect_fail "$CIMG_ERR_CODE" cimg push "$REGISTRY2/nosuch:1"
expect_fail "$CIMG_ERR_CODE" cimg push "$REGISTRY/bb:oci" "$REGISTRY2/bb@sha256:$(printf x | sha256sum | cut -d' ' -f1)"
assert_contains "$ERR" "must be a tag" "a digest destination is refused"
expect_fail "$CIMG_USAGE_CODE" cimg push
expect_fail "$CIMG_USAGE_CODE" cimg push a b c
# The zstd manifest of the same image, pulled where its layer already exists (from the gzip
# pull): the zstd blob was never fetched, so the manifest cannot be pushed unchanged.
root_f="$TEST_TMP/root-f"
must cimg_in "$root_f" pull "$REGISTRY/bb:oci"
must cimg_in "$root_f" pull "$REGISTRY/bb:zstd"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_f" push "$REGISTRY/bb:zstd" "$REGISTRY2/nozstd:1"
assert_contains "$ERR" "no kept compressed blob" "an image without its compressed blob is refused"
run skopeo inspect --tls-verify=false "docker://$REGISTRY2/nozstd:1"
assert_ne "$RC" 0 "nothing was pushed"
assert_store_clean
