#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# cimg push: images pulled from one loopback registry are pushed to another and read back by
# skopeo and umoci (reverse interop): the manifest digest is unchanged, the rootfs is the
# original. Blobs the registry has are skipped, blobs of a sibling repository are mounted.
# Large blobs go up in PATCH chunks (CIMG_PUSH_CHUNK_SIZE makes the busybox layer large), and
# a chunk that fails is resumed from the registry's offset (fault_proxy.py). A push records
# the repo digest. An image whose layer was already in the store when it was pulled (from a
# docker-archive, or through another manifest) still pushes digest for digest, and an image
# known through several manifests pushes, for each tag, the manifest that tag came with.

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

section "(c2) a name without a tag stands for latest, and says so (as Docker)"
must cimg tag "$REGISTRY/bb:oci" "$REGISTRY2/plain"
expect_ok cimg push "$REGISTRY2/plain"
assert_eq "$(head -n 1 <<<"$OUT")" "Using default tag: latest" "push names the tag a bare name means"
assert_contains "$OUT" "latest: digest: $(reg_digest bb:oci) size: $(reg_manifest bb:oci | wc -c)" \
  "the digest line names latest, the digest and the manifest's size"
expect_ok cimg pull "$REGISTRY2/plain"
assert_eq "$(head -n 1 <<<"$OUT")" "Using default tag: latest" "pull names it too"
assert_eq "$(tail -n 1 <<<"$OUT")" "$REGISTRY2/plain:latest" "and pulls latest"
expect_ok cimg pull -q "$REGISTRY2/plain"
assert_eq "$OUT" "$REGISTRY2/plain:latest" "-q prints only the reference"

section "(d) three layers with whiteouts, and -q"
expect_ok cimg push -q "$REGISTRY/ml:1" "$REGISTRY2/ml:1"
assert_eq "$OUT" "$(reg_digest ml:1)" "-q prints only the digest, the original one"
# As docker push prints them: a line per layer at once, the top one first, named by its
# diff_id (skopeo reads the diff_ids from umoci's layout).
expect_ok cimg push "$REGISTRY/ml:1" "$REGISTRY2/ml:2"
mapfile -t top_first < <(skopeo inspect --config "oci:$TEST_TMP/ml:ml" |
  jq -r '.rootfs.diff_ids | reverse | .[] | .[7:19]')
assert_eq "$(sed -n 2,4p <<<"$OUT")" "${top_first[0]}: Preparing
${top_first[1]}: Preparing
${top_first[2]}: Preparing" "every layer has its line before any upload, the top layer first"
assert_contains "$OUT" "${top_first[2]}: Layer already exists" "the base layer is named by its diff_id"
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

section "(a2) the push recorded the repo digest"
bb_digest=$(reg_digest bb:oci)
assert_contains "$(cimg inspect "$REGISTRY2/bb:1" | jq -r '.[0].RepoDigests[]')" \
  "$REGISTRY2/bb@$bb_digest" "inspect lists NAME@digest of the push"
assert_contains "$(cimg inspect "$REGISTRY2/bb:1" | jq -r '.[0].RepoDigests[]')" \
  "$REGISTRY2/other@$bb_digest" "and of the push to another name (SRC DST)"
expect_ok cimg images --digests
assert_match "$OUT" "$REGISTRY2/bb +1 +$bb_digest " "images --digests shows the pushed digest"
assert_store_clean

# ---------------------------------------------------------------------------------------------
# Chunked uploads, through the fault proxy in front of the second registry (which logs every
# request with its Content-Range). Each case pushes from its own store, so that no sibling
# repository offers a mount.
RULES="$TEST_TMP/push-rules.json"
PLOG="$TEST_TMP/push-proxy.log"
echo '[]' >"$RULES"
start_helper push-proxy fault_proxy.py --upstream "$REGISTRY2" --rules "$RULES" --log "$PLOG" \
  --lifetime 800
PROXY="127.0.0.1:$HELPER_PORT"
layer=$(reg_manifest bb:oci | jq -r '.layers[0].digest')
layer_size=$(reg_manifest bb:oci | jq -r '.layers[0].size')
chunks=$(((layer_size + 65535) / 65536))

# chunked_push NAME [RULES-JSON]: a store of its own with bb:oci, pushed to $PROXY/NAME:1 in
# 64 KiB chunks with the rules in force; OUT/ERR/RC as for run. The proxy log starts afresh.
chunked_push() {
  local name=$1 root="$TEST_TMP/root-chunk-$1"
  must cimg_in "$root" pull "$REGISTRY/bb:oci"
  must cimg_in "$root" tag "$REGISTRY/bb:oci" "$PROXY/$name:1"
  printf '%s' "${2:-[]}" >"$RULES"
  : >"$PLOG"
  export CIMG_PUSH_CHUNK_SIZE=64k CIMG_REGISTRY_BACKOFF_MS=50
  expect_ok cimg_in "$root" push "$PROXY/$name:1"
  unset CIMG_PUSH_CHUNK_SIZE CIMG_REGISTRY_BACKOFF_MS
  local out=$OUT
  assert_store_clean "$root"
  OUT=$out
}

# patch_ranges NAME: the Content-Range of every PATCH to NAME's uploads, in order.
patch_ranges() {
  grep "^PATCH /v2/$1/blobs/uploads/" "$PLOG" | sed 's/.* crange=\([^ ]*\) .*/\1/'
}

section "(g) a layer larger than the chunk size goes up in PATCH chunks"
chunked_push chunked
assert_contains "$OUT" "Pushed" "the layer was pushed"
if [ "$chunks" -ge 16 ]; then
  pass "the layer ($layer_size bytes) makes $chunks chunks of 64 KiB"
else
  fail "the layer ($layer_size bytes) makes only $chunks chunks"
fi
assert_eq "$(patch_ranges chunked | wc -l)" "$chunks" \
  "one PATCH a chunk (the config is not chunked)"
assert_eq "$(patch_ranges chunked | sed -n 1p)" "0-65535" "the first chunk is bytes 0-65535"
assert_eq "$(patch_ranges chunked | sed -n 2p)" "65536-131071" "the second follows it"
assert_eq "$(patch_ranges chunked | tail -n 1)" "$(((chunks - 1) * 65536))-$((layer_size - 1))" \
  "the last chunk ends at the layer's last byte"
assert_match "$(cat "$PLOG")" "PUT /v2/chunked/blobs/uploads/[^ ]*digest=$layer " \
  "the upload is closed with PUT ?digest= of the layer"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/chunked:1"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$bb_digest" \
  "skopeo reads the chunked push: the same manifest"
assert_eq "$(unpacked_listing chunked:1)" "$orig_listing" "and unpacks the original rootfs"

section "(g2) below the chunk size (the default, 64 MiB): one PUT"
root_m="$TEST_TMP/root-mono"
must cimg_in "$root_m" pull "$REGISTRY/bb:oci"
must cimg_in "$root_m" tag "$REGISTRY/bb:oci" "$PROXY/mono:1"
: >"$PLOG"
expect_ok cimg_in "$root_m" push "$PROXY/mono:1"
assert_eq "$(grep -c '^PATCH ' "$PLOG")" 0 "no PATCH"
assert_match "$(cat "$PLOG")" "PUT /v2/mono/blobs/uploads/[^ ]*digest=$layer " \
  "the layer went in one PUT"

# crange_of LINE: the Content-Range of a proxy log line.
crange_of() {
  local r=${1#* crange=}
  echo "${r%% *}"
}

# session_of LINE: the upload session's UUID in a proxy log line.
session_of() {
  cut -d' ' -f2 <<<"$1" | sed 's|.*/uploads/||; s/?.*//'
}

section "(h) a chunk answered 500 is sent again from the registry's offset"
chunked_push resume500 '[{"method": "PATCH", "skip": 3, "times": 1, "action": "status:500"}]'
failed=$(grep '^PATCH .*action=status:500' "$PLOG")
assert_eq "$(grep -c . <<<"$failed")" 1 "one PATCH failed"
after=$(grep -A1 '^PATCH .*action=status:500' "$PLOG" | sed -n 2p)
assert_eq "$(cut -d' ' -f1 <<<"$after") $(session_of "$after")" "GET $(session_of "$failed")" \
  "then the upload's offset was asked for (GET on the session)"
assert_eq "$(patch_ranges resume500 | sed -n 5p)" "$(patch_ranges resume500 | sed -n 4p)" \
  "the failed chunk (which never reached the registry) was sent again"
assert_eq "$(patch_ranges resume500 | wc -l)" "$((chunks + 1))" "every other chunk once"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/resume500:1"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$bb_digest" "the push succeeded with the same manifest"
assert_eq "$(unpacked_listing resume500:1)" "$orig_listing" "and the original rootfs"

section "(h2) a chunk whose answer is lost: the session is asked, then started afresh"
# The chunk reached the registry, but the client never heard: docker-registry then refuses the
# session's (stale) location and forgets the upload, so the client asks where it stands, is
# told the session is gone, and uploads again in a new one.
chunked_push resumedrop '[{"method": "PATCH", "skip": 5, "times": 1, "action": "drop-response"}]'
dropped_line=$(grep '^PATCH .*action=drop-response' "$PLOG")
assert_eq "$(crange_of "$dropped_line")" "327680-393215" \
  "the sixth chunk's answer was dropped"
after=$(grep -A1 '^PATCH .*action=drop-response' "$PLOG" | sed -n 2p)
assert_eq "$(cut -d' ' -f1 <<<"$after") $(session_of "$after")" \
  "GET $(session_of "$dropped_line")" \
  "then the upload's offset was asked for (GET on the session)"
restart=$(grep '^PATCH /v2/resumedrop/' "$PLOG" | sed -n 7p)
assert_eq "$(crange_of "$restart")" "0-65535" \
  "the registry had forgotten the session: the upload starts again from 0"
assert_ne "$(session_of "$restart")" "$(session_of "$dropped_line")" "in a new session"
assert_eq "$(patch_ranges resumedrop | wc -l)" "$((chunks + 6))" \
  "every chunk once more after the six"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/resumedrop:1"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$bb_digest" "the push succeeded with the same manifest"
assert_eq "$(unpacked_listing resumedrop:1)" "$orig_listing" "and the original rootfs"

section "(h3) a chunk refused with 416: resumed from the registry's offset"
chunked_push resume416 '[{"method": "PATCH", "skip": 2, "times": 1, "action": "status:416"}]'
assert_eq "$(patch_ranges resume416 | sed -n 4p)" "$(patch_ranges resume416 | sed -n 3p)" \
  "the refused chunk was sent again from where the registry stands"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/resume416:1"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$bb_digest" "the push succeeded with the same manifest"

section "(h4) a registry that keeps failing: the push fails, naming the chunk"
root_x="$TEST_TMP/root-chunk-fail"
must cimg_in "$root_x" pull "$REGISTRY/bb:oci"
must cimg_in "$root_x" tag "$REGISTRY/bb:oci" "$PROXY/failing:1"
printf '%s' '[{"method": "PATCH", "skip": 1, "action": "status:503"}]' >"$RULES"
export CIMG_PUSH_CHUNK_SIZE=64k CIMG_REGISTRY_BACKOFF_MS=10 CIMG_REGISTRY_RETRIES=2
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_x" push "$PROXY/failing:1"
unset CIMG_PUSH_CHUNK_SIZE CIMG_REGISTRY_BACKOFF_MS CIMG_REGISTRY_RETRIES
assert_contains "$ERR" "chunk at 65536" "the error names the chunk"
assert_contains "$ERR" "503" "and the status"
assert_eq "$(cimg_in "$root_x" inspect "$PROXY/failing:1" |
  jq --arg p "$PROXY/" '[.[0].RepoDigests[] | select(startswith($p))] | length')" \
  0 "a failed push records no repo digest"
assert_store_clean "$root_x"
echo '[]' >"$RULES"

section "(h5) layers go up in parallel, up to --max-concurrent-uploads"
# The registry holds its answer to the top layer's HEAD for 2 s: with 3 uploads at once the
# other layers are asked for while it waits, with 1 only after it.
root_p="$TEST_TMP/root-par"
must cimg_in "$root_p" pull "$REGISTRY/ml:1"
top=$(reg_manifest ml:1 | jq -r '.layers[2].digest')
mlcfg=$(reg_manifest ml:1 | jq -r .config.digest)
for n in 3 1; do
  must cimg_in "$root_p" tag "$REGISTRY/ml:1" "$PROXY/par$n:1"
  printf '%s' "[{\"path\": \"/blobs/$top\", \"method\": \"HEAD\", \"action\": \"delay:2\"}]" >"$RULES"
  : >"$PLOG"
  expect_ok cimg_in "$root_p" push --max-concurrent-uploads "$n" "$PROXY/par$n:1"
  spread=$(grep "^HEAD /v2/par$n/blobs/" "$PLOG" | grep -v "$mlcfg" | sed 's/.* t=//' |
    awk 'NR == 1 {min = $1} {max = $1} END {printf "%d", (max - min) * 1000}')
  if [ "$n" -eq 3 ]; then
    assert_lt "$spread" 1000 "with 3 uploads, every layer is asked for at once (${spread} ms apart)"
    assert_not_contains "$OUT" "Waiting" "no layer waits"
  else
    assert_lt 2000 "$spread" "with 1 upload, the layers are asked for one after the other (${spread} ms)"
    assert_eq "$(grep -c ': Waiting$' <<<"$OUT")" 2 "the two layers below the top one say Waiting"
    assert_not_contains "$OUT" "${top_first[0]}: Waiting" "the top layer, first up, does not"
  fi
  assert_eq "$(grep "^HEAD /v2/par$n/blobs/" "$PLOG" | grep -vc "$mlcfg")" 3 \
    "three layers asked for (max $n)"
  expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/par$n:1"
  assert_eq "$(jq -r .Digest <<<"$OUT")" "$(reg_digest ml:1)" "the push landed, digest for digest (max $n)"
done
# One upload refused while the others go on: the push fails naming that layer, records nothing.
# (A store of its own: in root_p the image is known in par3 and par1, so its blobs are mounted.)
mid=$(reg_manifest ml:1 | jq -r '.layers[1].digest')
root_pf="$TEST_TMP/root-parfail"
must cimg_in "$root_pf" pull "$REGISTRY/ml:1"
must cimg_in "$root_pf" tag "$REGISTRY/ml:1" "$PROXY/parfail:1"
printf '%s' "[{\"path\": \"digest=$mid\", \"method\": \"PUT\", \"action\": \"status:400\"}]" >"$RULES"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_pf" push --max-concurrent-uploads 3 "$PROXY/parfail:1"
assert_contains "$ERR" "layer $mid" "the error names the layer whose upload failed"
assert_contains "$ERR" "400" "and the status"
assert_eq "$(cimg_in "$root_pf" inspect "$PROXY/parfail:1" |
  jq --arg p "$PROXY/parfail@" '[.[0].RepoDigests[] | select(startswith($p))] | length')" \
  0 "the failed push records no repo digest"
# One at a time, top first: after the middle layer fails, the base layer is never started.
base=$(reg_manifest ml:1 | jq -r '.layers[0].digest')
must cimg_in "$root_pf" tag "$REGISTRY/ml:1" "$PROXY/parfail1:1"
: >"$PLOG"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_pf" push --max-concurrent-uploads 1 "$PROXY/parfail1:1"
assert_contains "$ERR" "layer $mid" "one at a time, the error names the middle layer"
assert_eq "$(grep -c "^HEAD /v2/parfail1/blobs/$base " "$PLOG")" 0 \
  "a failed layer stops the uploads not yet started"
echo '[]' >"$RULES"
expect_fail "$CIMG_USAGE_CODE" cimg_in "$root_p" push --max-concurrent-uploads 0 "$PROXY/par1:1"
assert_contains "$ERR" "--max-concurrent-uploads" "a bad count is refused, naming the flag"
assert_store_clean "$root_p"
assert_store_clean "$root_pf"

section "(h6) on a terminal: three uploads at once, each on its own line"
# Three threads rewrite their lines at once on an 80-column terminal (script(1)); what is left
# on it (term_screen.py) is one line a layer, top first. A fresh store: no repository of
# $REGISTRY2 is known to it, so every layer is uploaded.
root_tty="$TEST_TMP/root-tty"
must cimg_in "$root_tty" pull "$REGISTRY/ml:1"
run script -qec "stty cols 80 rows 50; $CIMG --root $root_tty push --max-concurrent-uploads 3 $REGISTRY/ml:1 $REGISTRY2/tty:1" /dev/null
assert_eq "$RC" 0 "the push on a terminal succeeds"
screen=$(python3 "$CIMG_SRC/tests/integration/term_screen.py" --cols 80 <<<"$OUT")
assert_eq "$(head -n 4 <<<"$screen")" "The push refers to repository [$REGISTRY2/tty]
${top_first[0]}: Pushed
${top_first[1]}: Pushed
${top_first[2]}: Pushed" "the screen ends with one line a layer, each Pushed"
assert_contains "$(tr -d '\r\n' <<<"$OUT")" "1: digest: $(reg_digest ml:1) size: $(reg_manifest ml:1 | wc -c)" \
  "then the digest line"
assert_store_clean "$root_tty"

section "(i) a pull that finds its layer already in the store fetches only the missing blob"
# The layer comes first from a docker-archive (uncompressed, as docker save writes it); the
# registry's manifest names the gzip blob of the same layer. The pull must fetch that blob
# (verified, not unpacked again) so that the image pushes digest for digest.
root_i="$TEST_TMP/root-i"
make_fixture_docker_archive "$TEST_TMP/da-i.tar" busybox:da
must cimg_in "$root_i" load -i "$TEST_TMP/da-i.tar"
layer_dir=$(ls -d "$root_i"/layers/[0-9a-f]*)
layer_inode=$(stat -c %i "$layer_dir/diff")
expect_ok cimg_in "$root_i" pull "$REGISTRY/bb:oci"
assert_eq "$(cimg_in "$root_i" inspect "$REGISTRY/bb:oci" | jq -r '.[0].Id')" \
  "$(cimg_in "$root_i" inspect busybox:da | jq -r '.[0].Id')" "the pulled image is the loaded one"
assert_contains "$OUT" "Verifying Checksum" "the missing gzip blob was fetched and verified"
assert_not_contains "$OUT" "Extracting" "nothing was unpacked again"
assert_eq "$(stat -c %i "$layer_dir/diff")" "$layer_inode" "the layer directory is the loaded one"
assert_eq "$(count_layer_dirs "$root_i")" 1 "still one layer in the store"
if [ -f "$root_i/blobs/sha256/${layer#sha256:}" ]; then
  pass "the registry's blob is in the store"
else
  fail "the registry's blob is not in the store"
fi
expect_ok cimg_in "$root_i" pull "$REGISTRY/bb:oci"
assert_contains "$OUT" "Already exists" "a second pull fetches nothing"
assert_not_contains "$OUT" "Verifying Checksum" "not even the blob"
expect_ok cimg_in "$root_i" push "$REGISTRY/bb:oci" "$REGISTRY2/reused:1"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY2/reused:1"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$(reg_digest bb:oci)" \
  "skopeo sees the registry's manifest digest"
assert_eq "$(reg_manifest_at "$REGISTRY2" reused:1 | jq -r '.layers[0].digest')" "$layer" \
  "the layer is the registry's gzip blob"
assert_eq "$(unpacked_listing reused:1)" "$orig_listing" "skopeo + umoci unpack the original rootfs"
# save of the same image: skopeo reads it back whole
must cimg_in "$root_i" save -o "$TEST_TMP/saved-i.tar" "$REGISTRY/bb:oci"
expect_ok skopeo inspect "docker-archive:$TEST_TMP/saved-i.tar"
assert_eq "$(jq -c .Layers <<<"$OUT")" "$(cimg_in "$root_i" inspect "$REGISTRY/bb:oci" | jq -c '.[0].RootFS.Layers')" \
  "skopeo reads the layers of the saved image"
rm -rf "$TEST_TMP/saved-i"
must skopeo copy --quiet "docker-archive:$TEST_TMP/saved-i.tar" "oci:$TEST_TMP/saved-i:t"
assert_store_clean "$root_i"

section "(i2) the zstd manifest of an image already there: its zstd blob is fetched"
root_f="$TEST_TMP/root-f"
must cimg_in "$root_f" pull "$REGISTRY/bb:oci"
expect_ok cimg_in "$root_f" pull "$REGISTRY/bb:zstd"
assert_contains "$OUT" "Verifying Checksum" "the zstd blob is fetched, not the layer"
expect_ok cimg_in "$root_f" push "$REGISTRY/bb:zstd" "$REGISTRY2/zstd2:1"
assert_eq "$(reg_manifest_at "$REGISTRY2" zstd2:1 | jq -r '.layers[0].mediaType')" \
  application/vnd.oci.image.layer.v1.tar+zstd "the pushed layer is the zstd blob"
assert_eq "$(reg_manifest_at "$REGISTRY2" zstd2:1 | sha256sum | cut -d' ' -f1)" \
  "$(reg_manifest bb:zstd | sha256sum | cut -d' ' -f1)" "the manifest is the registry's zstd one"
assert_store_clean "$root_f"

section "(j) one image, three manifests: each tag pushes the manifest it was pulled with"
# bb:oci (OCI, gzip), bb:zstd (OCI, zstd) and bb:v2s2 (Docker schema2) have one config.
must cimg_in "$root_f" pull "$REGISTRY/bb:v2s2"
assert_eq "$(cimg_in "$root_f" images -q --no-trunc | sort -u | wc -l)" 1 "one image in the store"
for t in oci zstd v2s2; do
  expect_ok cimg_in "$root_f" push "$REGISTRY/bb:$t" "$REGISTRY2/three:$t"
  assert_contains "$OUT" "$t: digest: $(reg_digest "bb:$t")" "bb:$t is pushed as the registry's bb:$t"
  assert_eq "sha256:$(reg_manifest_at "$REGISTRY2" "three:$t" | sha256sum | cut -d' ' -f1)" \
    "$(reg_digest "bb:$t")" "skopeo reads bb:$t's manifest back from three:$t"
done
expect_ok cimg_in "$root_f" images --digests
for t in oci zstd v2s2; do
  assert_match "$OUT" "$REGISTRY/bb +$t +$(reg_digest "bb:$t") " "images --digests: bb:$t's own digest"
done
must cimg_in "$root_f" rmi "$REGISTRY/bb:zstd" "$REGISTRY/bb:v2s2"
expect_ok cimg_in "$root_f" push "$REGISTRY/bb:oci" "$REGISTRY2/three:again"
assert_contains "$OUT" "again: digest: $(reg_digest bb:oci)" "after rmi and gc, bb:oci still pushes its own"
# three:zstd went up with the zstd manifest; tagged again from bb:oci it takes bb:oci's manifest
# (the source named wins over the tag's history, as with containerd's image store), and images
# --digests shows the digest of that push.
must cimg_in "$root_f" tag "$REGISTRY/bb:oci" "$REGISTRY2/three:zstd"
expect_ok cimg_in "$root_f" push "$REGISTRY2/three:zstd"
assert_contains "$OUT" "zstd: digest: $(reg_digest bb:oci)" "three:zstd now pushes bb:oci's manifest"
expect_ok cimg_in "$root_f" images --digests
assert_match "$OUT" "$REGISTRY2/three +zstd +$(reg_digest bb:oci) " \
  "images --digests: three:zstd has the digest of its push"
assert_match "$OUT" "$REGISTRY/bb +oci +$(reg_digest bb:oci) " "and bb:oci its own"
assert_store_clean "$root_f"

section "(f) refusals"
expect_fail "$CIMG_ERR_CODE" cimg push "$REGISTRY2/nosuch:1"
expect_fail "$CIMG_ERR_CODE" cimg push "$REGISTRY/bb:oci" "$REGISTRY2/bb@sha256:$(printf x | sha256sum | cut -d' ' -f1)"
assert_contains "$ERR" "must be a tag" "a digest destination is refused"
expect_fail "$CIMG_USAGE_CODE" cimg push
expect_fail "$CIMG_USAGE_CODE" cimg push a b c
assert_store_clean
