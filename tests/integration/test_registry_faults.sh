#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# cimg pull through the tests' fault-injecting proxy (fault_proxy.py) in front of a loopback
# docker-registry: retries on 429 / 5xx, resume with Range after a body is cut, an ignored
# Range, a wrong Content-Range, wrong bytes of the right length, and giving up. After every
# failure nothing is tagged and the store is clean.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

# Short backoffs keep the test fast; Retry-After is honoured whatever this says.
export CIMG_REGISTRY_BACKOFF_MS=50

section "fixtures"
start_registry
make_busybox_rootfs "$TEST_TMP/rootfs-orig"
orig_listing=$(rootfs_listing "$TEST_TMP/rootfs-orig")
make_fixture_oci "$TEST_TMP/oci" busybox
push_fixture "oci:$TEST_TMP/oci:busybox" bb:1
cfg=$(config_digest "oci:$TEST_TMP/oci:busybox")
diff_id=$(skopeo inspect --config "oci:$TEST_TMP/oci:busybox" | jq -r '.rootfs.diff_ids[0]')
blob=$(reg_manifest bb:1 | jq -r '.layers[0].digest')
blob_size=$(reg_manifest bb:1 | jq -r '.layers[0].size')
log "layer $blob, $blob_size bytes"
[ "$blob_size" -gt 400000 ] || die "the layer is too small for the cut tests"

RULES="$TEST_TMP/rules.json"
PLOG="$TEST_TMP/proxy-requests.log"
echo '[]' >"$RULES"
start_helper fault-proxy fault_proxy.py --upstream "$REGISTRY" --rules "$RULES" --log "$PLOG" \
  --lifetime 600
PROXY="127.0.0.1:$HELPER_PORT"

# faulted CASE RULES-JSON: a fresh store root and fresh request log for one case.
faulted() {
  CASE_ROOT="$TEST_TMP/root-$1"
  printf '%s' "$2" >"$RULES"
  : >"$PLOG"
}

# pulled_ok: the image pulled into $CASE_ROOT is the fixture, byte for byte.
pulled_ok() {
  run cimg_in "$CASE_ROOT" inspect "$PROXY/bb:1"
  assert_eq "$(jq -r '.[0].Id' <<<"$OUT" 2>/dev/null)" "$cfg" "$1: the image is there"
  assert_eq "$(rootfs_listing "$CASE_ROOT/layers/${diff_id#sha256:}/diff")" "$orig_listing" \
    "$1: its rootfs is the original"
  if [ -f "$CASE_ROOT/blobs/sha256/${blob#sha256:}" ] &&
    [ "$(sha256_of "$CASE_ROOT/blobs/sha256/${blob#sha256:}")" == "${blob#sha256:}" ]; then
    pass "$1: the kept blob has its digest"
  else
    fail "$1: the kept blob is missing or wrong"
  fi
  assert_store_clean "$CASE_ROOT"
}

# failed_clean: nothing of the image is in $CASE_ROOT.
failed_clean() {
  assert_eq "$(cimg_in "$CASE_ROOT" images -a -q)" "" "$1: nothing is tagged or recorded"
  assert_eq "$(count_layer_dirs "$CASE_ROOT")" 0 "$1: no layer is kept"
  assert_store_clean "$CASE_ROOT"
}

blob_gets() {
  grep -c "^GET /v2/bb/blobs/$blob " "$PLOG" || true
}

section "503 on the manifest, twice"
faulted m503 '[{"path": "/manifests/", "method": "GET", "times": 2, "action": "status:503"}]'
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_eq "$(grep -c '^GET /v2/bb/manifests/1 ' "$PLOG")" 3 "the manifest was asked for three times"
pulled_ok m503

section "429 with Retry-After on the layer"
faulted r429 "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"status:429:1\"}]"
start=$(date +%s%N)
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
assert_eq "$(blob_gets)" 2 "the layer was asked for twice"
if [ "$elapsed_ms" -ge 1000 ]; then
  pass "Retry-After: 1 was honoured (${elapsed_ms} ms)"
else
  fail "Retry-After: 1 was not honoured (${elapsed_ms} ms)"
fi
pulled_ok r429

section "a body cut short resumes with Range"
cut=300000
faulted cut "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"cut:$cut\"}]"
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_eq "$(blob_gets)" 2 "the layer was asked for twice"
assert_eq "$(grep "^GET /v2/bb/blobs/$blob " "$PLOG" | sed -n 2p | sed 's/.* range=\([^ ]*\) .*/\1/')" \
  "bytes=$cut-" "the second request resumes from the byte where the body broke"
pulled_ok cut

section "a cut, then a server that ignores Range"
faulted ignore "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"cut:$cut\"},
  {\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"ignore-range\"}]"
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$(cat "$PLOG")" "range=bytes=$cut- action=ignore-range" \
  "the retry asked for a range, which the proxy dropped"
pulled_ok ignore

section "500 three times on the layer, then a cut, then success"
faulted mixed "[{\"path\": \"/blobs/$blob\", \"times\": 3, \"action\": \"status:500\"},
  {\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"cut:123457\"}]"
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_eq "$(blob_gets)" 5 "three 500s, one cut body, one resumed request"
pulled_ok mixed

section "a cut, then a 206 from the wrong byte"
faulted badrange "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"cut:$cut\"},
  {\"path\": \"/blobs/$blob\", \"action\": \"bad-range\"}]"
expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "layer $blob" "the error names the layer"
assert_contains "$ERR" "asked for bytes from $cut, the server sent from 0" "and what differed"
failed_clean badrange

section "wrong bytes of the right length"
faulted corrupt "[{\"path\": \"/blobs/$blob\", \"action\": \"corrupt\"}]"
expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "layer $blob" "the error names the layer"
assert_match "$ERR" "digest mismatch|corrupt" "the error says the bytes are wrong"
failed_clean corrupt

section "wrong bytes in the manifest"
faulted mcorrupt '[{"path": "/manifests/", "method": "GET", "action": "corrupt"}]'
run cimg_in "$CASE_ROOT" pull "$PROXY/bb@$(reg_digest bb:1)"
assert_eq "$RC" "$CIMG_ERR_CODE" "a manifest that does not hash to the digest asked for fails"
assert_match "$ERR" "digest mismatch|JSON|parse|invalid" "the error says why"
failed_clean mcorrupt

section "a 500 that never ends"
faulted always500 "[{\"path\": \"/blobs/$blob\", \"action\": \"status:500\"}]"
expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "layer $blob" "the error names the layer"
assert_contains "$ERR" "HTTP 500" "the error names the status"
assert_contains "$ERR" "gave up after 6 attempts" "five retries, then the pull fails"
assert_eq "$(blob_gets)" 6 "six requests were made"
failed_clean always500

section "a body cut every time"
faulted alwayscut "[{\"path\": \"/blobs/$blob\", \"action\": \"cut:1000\"}]"
CIMG_REGISTRY_RETRIES=2 expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "gave up after 3 attempts" "CIMG_REGISTRY_RETRIES bounds the attempts"
assert_eq "$(grep "^GET /v2/bb/blobs/$blob " "$PLOG" | sed -n 3p | sed 's/.* range=\([^ ]*\) .*/\1/')" \
  "bytes=2000-" "every retry resumes where the previous body stopped"
failed_clean alwayscut

section "404 is not retried"
faulted b404 "[{\"path\": \"/blobs/$blob\", \"action\": \"status:404\"}]"
expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "HTTP 404" "the error names the status"
assert_eq "$(blob_gets)" 1 "one request only"
failed_clean b404

section "a killed pull resumes where it stopped"
faulted killed "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"slow:200000\"}]"
# (the binary itself, not the cimg_in function: $! must be the process to kill)
"$CIMG" --root "$CASE_ROOT" pull "$PROXY/bb:1" >"$TEST_TMP/killed.out" 2>&1 &
victim=$!
partial="$CASE_ROOT/ingest/dl-${blob#sha256:}"
for _ in $(seq 1 100); do
  if [ -f "$partial" ] && [ "$(stat -c %s "$partial")" -gt 200000 ]; then break; fi
  sleep 0.1
done
kill -KILL "$victim" 2>/dev/null || true
wait "$victim" 2>/dev/null || true
have=$(stat -c %s "$partial" 2>/dev/null || echo 0)
if [ "$have" -gt 200000 ] && [ "$have" -lt "$blob_size" ]; then
  pass "the killed pull left a partial download of $have bytes"
else
  fail "no partial download after the kill ($have of $blob_size bytes)"
fi
run cimg_in "$CASE_ROOT" system check
assert_eq "$RC" 0 "the partial download is only debris"
assert_contains "$OUT" "ingest/dl-${blob#sha256:}" "system check lists it"
assert_eq "$(cimg_in "$CASE_ROOT" images -a -q)" "" "the killed pull tagged nothing"
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$OUT" "Resuming" "the next pull says it resumes"
assert_eq "$(grep "^GET /v2/bb/blobs/$blob " "$PLOG" | sed -n 2p | sed 's/.* range=\([^ ]*\) .*/\1/')" \
  "bytes=$have-" "the next pull asks only for the bytes after the partial download"
if [ -e "$partial" ]; then fail "the partial download is still in ingest/"; else pass "the partial download became the blob"; fi
# The killed process's unfinished layer directory is debris for check --repair.
must cimg_in "$CASE_ROOT" system check --repair
pulled_ok killed

section "the base layer retried while the layers above it wait"
make_multilayer_oci "$TEST_TMP/ml"
push_fixture "oci:$TEST_TMP/ml:ml" ml:1
base=$(reg_manifest ml:1 | jq -r '.layers[0].digest')
faulted mlretry "[{\"path\": \"/v2/ml/blobs/$base\", \"times\": 2, \"action\": \"status:503\"}]"
# The two upper layers finish while the base layer waits to be retried: with two downloads at
# most, they must not keep the base layer from starting again.
CIMG_REGISTRY_BACKOFF_MS=300 run timeout 60 "$CIMG" --root "$CASE_ROOT" pull \
  --max-concurrent-downloads 2 "$PROXY/ml:1"
assert_eq "$RC" 0 "the pull completes"
assert_eq "$(grep -c "^GET /v2/ml/blobs/$base " "$PLOG")" 3 "the base layer was asked for three times"
assert_eq "$(cimg_in "$CASE_ROOT" inspect "$PROXY/ml:1" | jq '.[0].RootFS.Layers | length')" 3 \
  "the image has its three layers"
assert_store_clean "$CASE_ROOT"

section "layers download in parallel, up to --max-concurrent-downloads"
# The base layer comes slowly (~2.5 s); the two layers above it are asked for while it is
# still coming with 3 downloads at once, only after it with 1.
mlcfg=$(reg_manifest ml:1 | jq -r .config.digest)
for n in 3 1; do
  faulted "par$n" "[{\"path\": \"/v2/ml/blobs/$base\", \"action\": \"slow:400000\"}]"
  expect_ok cimg_in "$CASE_ROOT" pull --max-concurrent-downloads "$n" "$PROXY/ml:1"
  spread=$(grep '^GET /v2/ml/blobs/' "$PLOG" | grep -v "$mlcfg" | sed 's/.* t=//' |
    awk 'NR == 1 {min = $1} {max = $1} END {printf "%d", (max - min) * 1000}')
  if [ "$n" -eq 3 ]; then
    assert_lt "$spread" 1000 "with 3 downloads, all layers are asked for at once (${spread} ms apart)"
  else
    assert_lt 2000 "$spread" "with 1 download, the layers are asked for one after the other (${spread} ms)"
  fi
  assert_eq "$(grep '^GET /v2/ml/blobs/' "$PLOG" | grep -vc "$mlcfg")" 3 "three layer requests (max $n)"
  assert_store_clean "$CASE_ROOT"
done

section "connection refused until the registry comes up"
late_port=$(_free_port)
CASE_ROOT="$TEST_TMP/root-late"
echo '[]' >"$RULES"
(
  sleep 1
  exec python3 "$CIMG_SRC/tests/integration/fault_proxy.py" --port "$late_port" \
    --upstream "$REGISTRY" --rules "$RULES" --log "$TEST_TMP/late.log" --lifetime 120
) >>"$TEST_TMP/late-proxy.log" 2>&1 &
_CIMG_TEST_PIDS+=("$!")
CIMG_REGISTRY_BACKOFF_MS=200 expect_ok cimg_in "$CASE_ROOT" pull "127.0.0.1:$late_port/bb:1"
assert_eq "$(cimg_in "$CASE_ROOT" inspect "127.0.0.1:$late_port/bb:1" | jq -r '.[0].Id')" "$cfg" \
  "the pull retried until the registry answered"
assert_store_clean "$CASE_ROOT"

section "nobody listening"
dead_port=$(_free_port)
CASE_ROOT="$TEST_TMP/root-dead"
CIMG_REGISTRY_RETRIES=2 expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "127.0.0.1:$dead_port/bb:1"
assert_contains "$ERR" "connect" "the error says the registry could not be reached"
assert_contains "$ERR" "127.0.0.1:$dead_port/bb:1" "and names the reference"
failed_clean dead
