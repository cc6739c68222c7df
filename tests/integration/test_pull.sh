#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# cimg pull from a loopback docker-registry holding images skopeo pushed from umoci layouts:
# OCI and Docker schema2 manifests, gzip and zstd layers, a multi-layer image with umoci's
# whiteouts, a two-platform index, pulls by digest, refusals, and one image through three
# manifests (each kept; a layer already in the store gets only its blob, verified).

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

section "fixtures"
start_registry
make_busybox_rootfs "$TEST_TMP/rootfs-orig"
orig_listing=$(rootfs_listing "$TEST_TMP/rootfs-orig")
make_fixture_oci "$TEST_TMP/oci" busybox
push_fixture "oci:$TEST_TMP/oci:busybox" bb:oci
push_fixture "oci:$TEST_TMP/oci:busybox" bb:v2s2 --format v2s2
# (recompressed into a layout first: copying straight to the registry would reuse its gzip blob)
_quietly skopeo-zstd skopeo copy --quiet --dest-compress --dest-compress-format zstd \
  "oci:$TEST_TMP/oci:busybox" "oci:$TEST_TMP/oci-zstd:busybox"
push_fixture "oci:$TEST_TMP/oci-zstd:busybox" bb:zstd
cfg=$(config_digest "oci:$TEST_TMP/oci:busybox")
diff_id=$(skopeo inspect --config "oci:$TEST_TMP/oci:busybox" | jq -r '.rootfs.diff_ids[0]')
assert_eq "$(reg_manifest bb:v2s2 | jq -r .mediaType)" \
  application/vnd.docker.distribution.manifest.v2+json "bb:v2s2 is a Docker schema2 manifest"
assert_eq "$(reg_manifest bb:zstd | jq -r '.layers[0].mediaType')" \
  application/vnd.oci.image.layer.v1.tar+zstd "bb:zstd has a zstd layer"

section "(a) OCI manifest, gzip layer"
expect_ok cimg pull "$REGISTRY/bb:oci"
digest=$(reg_digest bb:oci)
assert_contains "$OUT" "Digest: $digest" "pull prints the manifest digest"
assert_contains "$OUT" "Status: Downloaded newer image for $REGISTRY/bb:oci" "pull says it downloaded"
assert_eq "$(tail -n 1 <<<"$OUT")" "$REGISTRY/bb:oci" "the last line is the reference"
assert_match "$OUT" "[0-9a-f]{12}: Pull complete" "a layer line says Pull complete"
expect_ok cimg inspect "$REGISTRY/bb:oci"
assert_eq "$(jq -r '.[0].Id' <<<"$OUT")" "$cfg" "the image ID is the config digest"
assert_eq "$(jq -r '.[0].RootFS.Layers[0]' <<<"$OUT")" "$diff_id" "the layer has the config's diff_id"
assert_contains "$(jq -r '.[0].RepoDigests[]' <<<"$OUT")" "$REGISTRY/bb@$digest" \
  "RepoDigests has the repo digest"
assert_eq "$(rootfs_listing "$CIMG_ROOT/layers/${diff_id#sha256:}/diff")" "$orig_listing" \
  "the layer unpacks into the original rootfs (types, modes, links)"
assert_eq "$(sha256_of "$CIMG_ROOT/layers/${diff_id#sha256:}/diff/bin/busybox")" \
  "$(sha256_of "$TEST_TMP/rootfs-orig/bin/busybox")" "busybox has its checksum"
blob=$(reg_manifest bb:oci | jq -r '.layers[0].digest')
if [ -f "$CIMG_ROOT/blobs/sha256/${blob#sha256:}" ]; then
  pass "the compressed layer blob is kept"
else
  fail "the compressed layer blob is not in blobs/"
fi
assert_store_clean

layers_before=$(count_layer_dirs)
expect_ok cimg pull "$REGISTRY/bb:oci"
assert_contains "$OUT" "Status: Image is up to date for $REGISTRY/bb:oci" "a second pull is up to date"
assert_contains "$OUT" "Already exists" "the layer already exists"
assert_eq "$(count_layer_dirs)" "$layers_before" "no layer added"
expect_ok cimg pull -q "$REGISTRY/bb:oci"
assert_eq "$OUT" "$REGISTRY/bb:oci" "-q prints only the reference"

section "(b) Docker schema2 manifest"
root_b="$TEST_TMP/root-b"
expect_ok cimg_in "$root_b" pull "$REGISTRY/bb:v2s2"
assert_contains "$OUT" "Digest: $(reg_digest bb:v2s2)" "the schema2 manifest digest"
expect_ok cimg_in "$root_b" inspect "$REGISTRY/bb:v2s2"
assert_eq "$(jq -r '.[0].Id' <<<"$OUT")" "$cfg" "the same image ID"
assert_eq "$(rootfs_listing "$root_b/layers/${diff_id#sha256:}/diff")" "$orig_listing" \
  "the same rootfs"
assert_store_clean "$root_b"

section "(c) zstd layer"
root_c="$TEST_TMP/root-c"
expect_ok cimg_in "$root_c" pull "$REGISTRY/bb:zstd"
expect_ok cimg_in "$root_c" inspect "$REGISTRY/bb:zstd"
assert_eq "$(jq -r '.[0].RootFS.Layers[0]' <<<"$OUT")" "$diff_id" \
  "the zstd layer inflates to the same diff_id"
assert_eq "$(rootfs_listing "$root_c/layers/${diff_id#sha256:}/diff")" "$orig_listing" \
  "the same rootfs"
zblob=$(reg_manifest bb:zstd | jq -r '.layers[0].digest')
if [ -f "$root_c/blobs/sha256/${zblob#sha256:}" ]; then pass "the zstd blob is kept"; else fail "no zstd blob"; fi
assert_store_clean "$root_c"

section "(d) three layers with umoci's whiteouts"
make_multilayer_oci "$TEST_TMP/ml"
push_fixture "oci:$TEST_TMP/ml:ml" ml:1
assert_eq "$(reg_manifest ml:1 | jq '.layers | length')" 3 "the fixture has three layers"
expect_ok cimg pull --max-concurrent-downloads 1 "$REGISTRY/ml:1"
assert_contains "$OUT" "Already exists" "the busybox base layer is shared with bb:oci"
# As docker pull prints it: every layer has its line at once, in the manifest's order, and the
# one beyond the download limit says it waits.
mapfile -t ids < <(reg_manifest ml:1 | jq -r '.layers[].digest | .[7:19]')
assert_eq "$(sed -n 2,4p <<<"$OUT")" "${ids[0]}: Already exists
${ids[1]}: Pulling fs layer
${ids[2]}: Pulling fs layer" "each layer has its line before any download starts"
assert_contains "$OUT" "${ids[2]}: Waiting" "the layer beyond --max-concurrent-downloads 1 waits"
assert_not_contains "$OUT" "${ids[1]}: Waiting" "the first layer to fetch does not wait"
mount_image "$REGISTRY/ml:1" "$TEST_TMP/ml-mnt"
assert_eq "$(rootfs_listing "$TEST_TMP/ml-mnt")" "$(rootfs_listing "$TEST_TMP/ml.expected")" \
  "the overlay of the pulled layers is the rootfs umoci had"
for gone in bin/vi etc/group data/a emptyme/x emptyme/deeper; do
  if [ -e "$TEST_TMP/ml-mnt/$gone" ] || [ -L "$TEST_TMP/ml-mnt/$gone" ]; then
    fail "$gone is deleted by a whiteout"
  else
    pass "$gone is deleted by a whiteout"
  fi
done
if [ -d "$TEST_TMP/ml-mnt/bin/ls" ] && [ ! -L "$TEST_TMP/ml-mnt/bin/ls" ]; then
  pass "bin/ls became a directory"
else
  fail "bin/ls is not a directory"
fi
umount "$TEST_TMP/ml-mnt"
root_d="$TEST_TMP/root-d"
expect_ok cimg_in "$root_d" pull --max-concurrent-downloads 3 "$REGISTRY/ml:1"
assert_eq "$(grep -c 'Pull complete' <<<"$OUT")" 3 "three layers pulled in parallel into an empty store"
assert_not_contains "$OUT" "Waiting" "with three download slots no layer waits"
assert_eq "$(count_layer_dirs "$root_d")" 3 "three layer directories"
assert_store_clean "$root_d"

section "(e) an index of two platforms"
make_index_oci "$TEST_TMP/idx"
push_fixture "oci:$TEST_TMP/idx:multi" multi:1 --all
assert_eq "$(reg_manifest multi:1 | jq -r .mediaType)" application/vnd.oci.image.index.v1+json \
  "the registry serves an index"
root_e="$TEST_TMP/root-e"
expect_ok cimg_in "$root_e" pull "$REGISTRY/multi:1"
assert_contains "$OUT" "Digest: $(reg_digest multi:1)" "Digest is the index digest"
expect_ok cimg_in "$root_e" inspect "$REGISTRY/multi:1"
assert_eq "$(jq -r '.[0].Config.Labels.which' <<<"$OUT")" host "the host's platform is chosen"
assert_eq "$(jq -r '.[0].Architecture' <<<"$OUT")" "$(host_arch)" "with the host's architecture"
assert_contains "$(jq -r '.[0].RepoDigests[]' <<<"$OUT")" "$REGISTRY/multi@$(reg_digest multi:1)" \
  "the repo digest is the index digest"
expect_ok cimg_in "$root_e" pull --platform "linux/$OTHER_ARCH" "$REGISTRY/multi:1"
expect_ok cimg_in "$root_e" inspect "$REGISTRY/multi:1"
assert_eq "$(jq -r '.[0].Config.Labels.which' <<<"$OUT")" other "--platform picks the other one"
assert_eq "$(jq -r '.[0].Architecture' <<<"$OUT")" "$OTHER_ARCH" "with its architecture"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_e" pull --platform linux/s390x "$REGISTRY/multi:1"
assert_contains "$ERR" "no matching manifest for linux/s390x" "a missing platform is named"
assert_contains "$ERR" "linux/$OTHER_ARCH" "the error lists the platforms the index has"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_e" pull --platform bogus "$REGISTRY/multi:1"
assert_contains "$ERR" "invalid platform" "a malformed --platform is refused"
push_fixture "oci:$TEST_TMP/idx:multi" list:1 --all --format v2s2
assert_eq "$(reg_manifest list:1 | jq -r .mediaType)" \
  application/vnd.docker.distribution.manifest.list.v2+json "the registry serves a Docker manifest list"
# (another root: the same config under a second manifest would replace the image's manifest)
root_e2="$TEST_TMP/root-e2"
expect_ok cimg_in "$root_e2" pull --platform "linux/$OTHER_ARCH" "$REGISTRY/list:1"
assert_contains "$OUT" "Digest: $(reg_digest list:1)" "Digest is the list's digest"
expect_ok cimg_in "$root_e2" inspect "$REGISTRY/list:1"
assert_eq "$(jq -r '.[0].Config.Labels.which' <<<"$OUT")" other "--platform picks from a Docker list"
assert_store_clean "$root_e2"

section "(e') registry-mirrors for docker.io"
# No traffic leaves the machine: the mirror (this registry) serves the manifest, so
# registry-1.docker.io is never asked.
push_fixture "oci:$TEST_TMP/oci:busybox" library/busybox:latest
printf '{"registry-mirrors": ["http://%s/"]}\n' "$REGISTRY" >"$TEST_TMP/mirrors.json"
root_m="$TEST_TMP/root-m"
CIMG_CONFIG="$TEST_TMP/mirrors.json" expect_ok cimg_in "$root_m" pull busybox
assert_contains "$OUT" "Status: Downloaded newer image for busybox:latest" \
  "a Docker Hub name is pulled (through the mirror) and named as Docker names it"
assert_eq "$(tail -n 1 <<<"$OUT")" docker.io/library/busybox:latest "the full reference"
assert_eq "$(cimg_in "$root_m" inspect busybox | jq -r '.[0].Id')" "$cfg" "the mirror's image"
printf '{"registry-mirrors": ["busybox-mirror"]}\n' >"$TEST_TMP/bad-mirrors.json"
CIMG_CONFIG="$TEST_TMP/bad-mirrors.json" expect_fail "$CIMG_ERR_CODE" cimg_in "$root_m" pull busybox
assert_contains "$ERR" "not an http(s) URL" "a malformed config is refused, naming the key"
assert_store_clean "$root_m"

section "(f) by digest"
root_f="$TEST_TMP/root-f"
mdigest=$(reg_digest bb:oci)
expect_ok cimg_in "$root_f" pull "$REGISTRY/bb@$mdigest"
assert_eq "$(tail -n 1 <<<"$OUT")" "$REGISTRY/bb@$mdigest" "the last line is name@digest"
assert_eq "$(head -n 1 <<<"$OUT")" "$REGISTRY/bb@$mdigest: Pulling from bb" \
  "the first line names the digest pulled, as Docker's"
expect_ok cimg_in "$root_f" inspect "$REGISTRY/bb@$mdigest"
assert_eq "$(jq -r '.[0].Id' <<<"$OUT")" "$cfg" "the image is found by its repo digest"
assert_eq "$(jq -c '.[0].RepoTags' <<<"$OUT")" "[]" "a pull by digest adds no tag"
wrong="sha256:$(printf x | sha256sum | cut -d' ' -f1)"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_f" pull "$REGISTRY/bb@$wrong"
assert_contains "$ERR" "not found" "an unknown digest is not found"
assert_store_clean "$root_f"

section "(f2) on a terminal: each layer's line rewritten in place, within the terminal's width"
# script(1) gives cimg a terminal of COLS columns; term_screen.py shows what is left on it.
# Docker draws the bar only on terminals wider than 110 columns; a line that wrapped would make
# every later rewrite land a row off.
root_k="$TEST_TMP/root-k"
for cols in 80 150; do
  rm -rf "$root_k"
  run script -qec "stty cols $cols rows 50; $CIMG --root $root_k pull --max-concurrent-downloads 2 $REGISTRY/ml:1" /dev/null
  assert_eq "$RC" 0 "the pull on a $cols-column terminal succeeds"
  assert_eq "$(python3 "$CIMG_SRC/tests/integration/term_screen.py" --cols "$cols" <<<"$OUT")" \
    "1: Pulling from ml
${ids[0]}: Pull complete
${ids[1]}: Pull complete
${ids[2]}: Pull complete
Digest: $(reg_digest ml:1)
Status: Downloaded newer image for $REGISTRY/ml:1
$REGISTRY/ml:1" "the screen ends with one line a layer ($cols columns)"
  if [ "$cols" -eq 80 ]; then
    assert_not_contains "$OUT" "Downloading  [" "no bar on $cols columns"
    assert_match "$OUT" "Downloading +[0-9.]+[kMG]?B/[0-9.]+[kMG]?B" "the byte counts instead"
  else
    assert_match "$OUT" "Downloading +\\[[=>]" "a bar on $cols columns"
  fi
done
assert_store_clean "$root_k"

section "(h) one image through three manifests, pulled at once"
# bb:oci, bb:v2s2 and bb:zstd share one config: three pulls racing into one store keep all
# three manifests (each tag shows the digest it was pulled with), and the layer is unpacked
# once while the other blobs are only fetched and verified.
root_h="$TEST_TMP/root-h"
pids=()
for t in oci v2s2 zstd; do
  cimg_in "$root_h" pull "$REGISTRY/bb:$t" >"$TEST_TMP/h-$t.out" 2>&1 &
  pids+=("$!")
done
for i in 0 1 2; do
  if wait "${pids[$i]}"; then pass "concurrent pull $((i + 1)) succeeded"; else
    fail "concurrent pull $((i + 1)) failed"
    cat "$TEST_TMP"/h-*.out
  fi
done
assert_eq "$(count_layer_dirs "$root_h")" 1 "one layer directory"
assert_eq "$(cimg_in "$root_h" images -q --no-trunc | sort -u)" "$cfg" "one image"
expect_ok cimg_in "$root_h" images --digests
for t in oci v2s2 zstd; do
  assert_match "$OUT" "$REGISTRY/bb +$t +$(reg_digest "bb:$t") " "bb:$t keeps its own digest"
  blob=$(reg_manifest "bb:$t" | jq -r '.layers[0].digest')
  if [ -f "$root_h/blobs/sha256/${blob#sha256:}" ]; then
    pass "bb:$t's layer blob is in the store"
  else
    fail "bb:$t's layer blob is missing"
  fi
done
assert_store_clean "$root_h"
must cimg_in "$root_h" rmi "$REGISTRY/bb:zstd" "$REGISTRY/bb:v2s2"
zblob=$(reg_manifest bb:zstd | jq -r '.layers[0].digest')
if [ -f "$root_h/blobs/sha256/${zblob#sha256:}" ]; then
  pass "gc after rmi keeps the blobs of the image's other manifests"
else
  fail "gc after rmi removed the zstd blob of an image still in the store"
fi
assert_store_clean "$root_h"

section "(g) refusals"
expect_fail "$CIMG_ERR_CODE" cimg pull "$REGISTRY/bb:nosuchtag"
assert_contains "$ERR" "bb:nosuchtag" "the error names the reference"
assert_contains "$ERR" "not found" "an unknown tag is not found"
expect_fail "$CIMG_USAGE_CODE" cimg pull --max-concurrent-downloads 0 "$REGISTRY/bb:oci"
expect_fail "$CIMG_USAGE_CODE" cimg pull
expect_fail "$CIMG_ERR_CODE" cimg pull "$REGISTRY/UPPER:1"

# A config of 5 MB: refused before it is fetched.
big="$TEST_TMP/big.json"
{
  printf '{"pad":"'
  head -c 5000000 /dev/zero | tr '\0' 'a'
  printf '"}'
} >"$big"
bighex=$(sha256_of "$big")
loc=$(curl -s -o /dev/null -D - -X POST "http://$REGISTRY/v2/big/blobs/uploads/" |
  tr -d '\r' | awk 'tolower($1) == "location:" {print $2}')
[[ "$loc" == http* ]] || loc="http://$REGISTRY$loc"
must curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$big" \
  "$loc&digest=sha256:$bighex"
bigm=$(jq -cn --arg d "sha256:$bighex" --argjson s "$(stat -c %s "$big")" \
  '{schemaVersion: 2, mediaType: "application/vnd.oci.image.manifest.v1+json",
    config: {mediaType: "application/vnd.oci.image.config.v1+json", digest: $d, size: $s},
    layers: []}')
must curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "$bigm" "http://$REGISTRY/v2/big/manifests/1"
expect_fail "$CIMG_ERR_CODE" cimg pull "$REGISTRY/big:1"
assert_contains "$ERR" "over the limit" "a config over 4 MiB is refused"

# An index entry whose media type is not the manifest's.
push_fixture "oci:$TEST_TMP/oci:busybox" mt:oci
oci_d=$(jq -cn --arg d "$(reg_digest mt:oci)" --argjson s "$(reg_manifest mt:oci | wc -c)" --arg a "$(host_arch)" \
  '{mediaType: "application/vnd.docker.distribution.manifest.v2+json", digest: $d, size: $s,
    platform: {os: "linux", architecture: $a}}')
must curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
  --data-binary "$(jq -cn --argjson m "$oci_d" '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$m]}')" \
  "http://$REGISTRY/v2/mt/manifests/1"
expect_fail "$CIMG_ERR_CODE" cimg pull "$REGISTRY/mt:1"
assert_contains "$ERR" "media type mismatch" "a manifest whose type is not the index's is refused"

# Wrong bytes of the right length in the registry's copy of a layer.
# (recompressed at another level, so that no other repository shares the blob)
push_fixture "oci:$TEST_TMP/oci:busybox" corrupt:1 --dest-compress --dest-compress-level 1
cblob=$(reg_manifest corrupt:1 | jq -r '.layers[0].digest')
cfile="$REGISTRY_STORAGE/docker/registry/v2/blobs/sha256/${cblob:7:2}/${cblob#sha256:}/data"
size=$(stat -c %s "$cfile")
must dd if=/dev/urandom of="$cfile" bs=1 count=16 seek=$((size / 2)) conv=notrunc status=none
root_g="$TEST_TMP/root-g"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_g" pull "$REGISTRY/corrupt:1"
assert_contains "$ERR" "layer $cblob" "the error names the layer"
assert_match "$ERR" "digest mismatch|zstd|corrupt|decompress" "the error says what differed"
assert_eq "$(cimg_in "$root_g" images -q)" "" "nothing is tagged after a failed pull"
assert_eq "$(count_layer_dirs "$root_g")" 0 "no layer is kept from the failed pull"
assert_store_clean "$root_g"

section "(i) a layer already in the store, its blob corrupt or not that layer's"
# (last: skopeo may reuse a blob it already pushed instead of recompressing, so the corrupted
# blob may be bb:zstd's)
# The layer is there (from a docker-archive: (g) may have corrupted bb:oci's blob too); the
# registry's blob for it is fetched and verified: wrong bytes fail on the digest, a blob of
# another layer (a manifest that lies, with a valid digest) fails on the diff_id. Either way
# nothing is tagged and the store stays clean.
root_x="$TEST_TMP/root-x"
make_fixture_docker_archive "$TEST_TMP/da.tar" busybox:da
must cimg_in "$root_x" load -i "$TEST_TMP/da.tar"
_quietly skopeo-zc skopeo copy --quiet --dest-compress --dest-compress-format zstd \
  --dest-compress-level 7 "oci:$TEST_TMP/oci:busybox" "oci:$TEST_TMP/oci-zc:busybox"
push_fixture "oci:$TEST_TMP/oci-zc:busybox" zc:1
zcblob=$(reg_manifest zc:1 | jq -r '.layers[0].digest')
zcfile="$REGISTRY_STORAGE/docker/registry/v2/blobs/sha256/${zcblob:7:2}/${zcblob#sha256:}/data"
must dd if=/dev/urandom of="$zcfile" bs=1 count=16 seek=$(($(stat -c %s "$zcfile") / 2)) \
  conv=notrunc status=none
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_x" pull "$REGISTRY/zc:1"
assert_contains "$ERR" "layer $zcblob" "the error names the layer"
assert_match "$ERR" "digest mismatch|zstd" "and what differed"
assert_not_contains "$(cimg_in "$root_x" images)" "zc" "nothing is tagged"
if [ -e "$root_x/blobs/sha256/${zcblob#sha256:}" ]; then fail "the corrupt blob was kept"; else
  pass "the corrupt blob is not in the store"
fi
assert_store_clean "$root_x"
# liar:1 = bb:oci's config with ml:1's top layer blob (mounted into the repository) as its layer
top=$(reg_manifest ml:1 | jq -c '.layers[2]')
must curl -sf -o /dev/null -X POST \
  "http://$REGISTRY/v2/liar/blobs/uploads/?mount=$(jq -r .digest <<<"$top")&from=ml"
must curl -sf -o /dev/null -X POST \
  "http://$REGISTRY/v2/liar/blobs/uploads/?mount=$(reg_manifest bb:oci | jq -r .config.digest)&from=bb"
reg_manifest bb:oci | jq -c --argjson l "$top" '.layers = [$l]' >"$TEST_TMP/liar.json"
must curl -sf -o /dev/null -X PUT -H "Content-Type: application/vnd.oci.image.manifest.v1+json" \
  --data-binary "@$TEST_TMP/liar.json" "http://$REGISTRY/v2/liar/manifests/1"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_x" pull "$REGISTRY/liar:1"
assert_contains "$ERR" "diff_id mismatch" "a blob that inflates to another layer is refused"
assert_not_contains "$(cimg_in "$root_x" images)" "liar" "nothing is tagged"
assert_store_clean "$root_x"

section "(k) three layers at once, each bigger than its unpack buffer"
# Each layer is ~12 MB of tar (12 000 small files) for a 4 MiB ring: its extraction falls behind
# its download, so its transfer is paused and resumed (registry/pull.c) while the other layers'
# transfers go on in the same loop. A base of its own (umoci new): the busybox blob in this
# registry was damaged on purpose above.
_quietly umoci-many-init umoci init --layout "$TEST_TMP/many"
_quietly umoci-many-new umoci new --image "$TEST_TMP/many:many"
mb="$TEST_TMP/many-bundle"
_quietly umoci-many-unpack umoci unpack --image "$TEST_TMP/many:many" "$mb"
for n in 1 2 3; do
  must python3 -c 'import os, sys
d = os.path.join(sys.argv[1], "many%s" % sys.argv[2])
os.mkdir(d)
for i in range(12000):
    with open(os.path.join(d, "f%d" % i), "w") as f:
        f.write("%s-%d\n" % (sys.argv[2], i))' "$mb/rootfs" "$n"
  _quietly "umoci-many-repack$n" umoci repack --refresh-bundle --image "$TEST_TMP/many:many" "$mb"
done
push_fixture "oci:$TEST_TMP/many:many" many:1
assert_eq "$(reg_manifest many:1 | jq '.layers | length')" 3 "the fixture has three layers"
root_k="$TEST_TMP/root-k"
expect_ok cimg_in "$root_k" pull "$REGISTRY/many:1"
mount_image "$REGISTRY/many:1" "$TEST_TMP/many-mnt" "$root_k"
assert_eq "$(rootfs_listing "$TEST_TMP/many-mnt")" "$(rootfs_listing "$mb/rootfs")" \
  "the overlay of the pulled layers is the rootfs umoci had"
if diff -r "$TEST_TMP/many-mnt" "$mb/rootfs" >/dev/null; then
  pass "every file has its content"
else
  fail "contents differ: $(diff -r "$TEST_TMP/many-mnt" "$mb/rootfs" 2>&1 | head -3)"
fi
umount "$TEST_TMP/many-mnt"
assert_store_clean "$root_k"
