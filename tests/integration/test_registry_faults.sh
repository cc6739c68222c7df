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
# A body that stalls is given up after this long (not the default minute), so that a fault
# the client misreads costs seconds, not minutes.
export CIMG_REGISTRY_STALL_SECONDS=10

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

section "a pull killed after the last byte of a layer"
# What such a kill leaves: the whole blob in ingest/, not yet verified or unpacked. The next pull
# verifies and unpacks it without asking for a range past its end (a 416).
faulted whole '[]'
cimg_in "$CASE_ROOT" images >/dev/null
mkdir -p "$CASE_ROOT/ingest"
cp "$REGISTRY_STORAGE/docker/registry/v2/blobs/sha256/${blob:7:2}/${blob#sha256:}/data" \
  "$CASE_ROOT/ingest/dl-${blob#sha256:}"
expect_ok timeout 60 "$CIMG" --root "$CASE_ROOT" pull "$PROXY/bb:1"
assert_eq "$(blob_gets)" 0 "the layer was not asked for again"
pulled_ok whole

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

# ---------------------------------------------------------------------------------------------
# Issue 7 §2: every fault below ends with the verified image or with nothing stored, and the
# message names what happened.

section "Retry-After on the manifest is honoured"
faulted m429 '[{"path": "/manifests/", "method": "GET", "times": 1, "action": "status:429:2"}]'
start=$(date +%s%N)
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
t1=$(grep '^GET /v2/bb/manifests/1 ' "$PLOG" | sed -n 1p | sed 's/.* t=//')
t2=$(grep '^GET /v2/bb/manifests/1 ' "$PLOG" | sed -n 2p | sed 's/.* t=//')
gap_ms=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%d", (b - a) * 1000 }')
if [ "$gap_ms" -ge 2000 ] && [ "$gap_ms" -lt 5000 ]; then
  pass "Retry-After: 2 made the second request wait ${gap_ms} ms (pull took ${elapsed_ms} ms)"
else
  fail "Retry-After: 2 was not honoured: ${gap_ms} ms between the requests"
fi
pulled_ok m429

for code in 500 502 503 504; do
  section "HTTP $code twice on the layer, then success; always $code fails"
  faulted "s$code" "[{\"path\": \"/blobs/$blob\", \"times\": 2, \"action\": \"status:$code\"}]"
  expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
  assert_eq "$(blob_gets)" 3 "$code: two failed requests, then the layer"
  pulled_ok "s$code"
  faulted "a$code" "[{\"path\": \"/blobs/$blob\", \"action\": \"status:$code\"}]"
  CIMG_REGISTRY_RETRIES=2 expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
  assert_contains "$ERR" "HTTP $code" "$code: the error names the status"
  assert_contains "$ERR" "gave up after 3 attempts" "$code: and that cimg gave up"
  failed_clean "a$code"
done

section "HTTP 502 on the config blob and 504 on the manifest, then success"
cfgblob=$(reg_manifest bb:1 | jq -r '.config.digest')
faulted cfg5xx "[{\"path\": \"/blobs/$cfgblob\", \"times\": 2, \"action\": \"status:502\"},
  {\"path\": \"/manifests/\", \"method\": \"GET\", \"times\": 1, \"action\": \"status:504\"}]"
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
pulled_ok cfg5xx

section "bodies cut at random offsets resume from the byte where they broke"
for seed in 11 23 37 41 59 7001; do
  RANDOM=$seed
  off=$(((RANDOM * 32768 + RANDOM) % (blob_size - 1) + 1))
  faulted "rcut$seed" "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"cut:$off\"}]"
  expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
  assert_eq "$(grep "^GET /v2/bb/blobs/$blob " "$PLOG" | sed -n 2p | sed 's/.* range=\([^ ]*\) .*/\1/')" \
    "bytes=$off-" "seed $seed: cut at $off of $blob_size, resumed from there"
  pulled_ok "rcut$seed"
done
for what in manifest config; do
  if [ "$what" == manifest ]; then path=/manifests/; else path="/blobs/$cfgblob"; fi
  RANDOM=$((${#what} * 97))
  off=$((RANDOM % 200 + 1))
  faulted "cut$what" "[{\"path\": \"$path\", \"method\": \"GET\", \"times\": 1, \"action\": \"cut:$off\"}]"
  expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
  pulled_ok "cut$what"
  faulted "acut$what" "[{\"path\": \"$path\", \"method\": \"GET\", \"action\": \"cut:$off\"}]"
  CIMG_REGISTRY_RETRIES=1 expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
  assert_match "$ERR" "[Pp]artial|cut short|closed" "a $what always cut at $off: the error says the body broke"
  failed_clean "acut$what"
done

section "a Content-Length longer than the body"
faulted lenlong "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"length:+1000\"}]"
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
pulled_ok lenlong
faulted alenlong "[{\"path\": \"/blobs/$blob\", \"action\": \"length:+1000\"}]"
CIMG_REGISTRY_RETRIES=1 run cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
# The announced length is a lie, the bytes are right: cimg may keep the verified image (all
# its bytes came and hash right) or refuse it, never keep anything half-way.
if [ "$RC" -eq 0 ]; then
  pulled_ok alenlong
else
  assert_match "$ERR" "layer $blob" "a layer always announced too long: the error names it"
  failed_clean alenlong
fi
faulted mlenlong '[{"path": "/manifests/", "method": "GET", "action": "length:+1000"}]'
CIMG_REGISTRY_RETRIES=1 expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_match "$ERR" "[Pp]artial|closed|manifest" "a manifest announced too long: the error says so"
failed_clean mlenlong

section "a Content-Length shorter than the body"
faulted lenshort "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"length:-1000\"}]"
expect_ok cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_eq "$(grep "^GET /v2/bb/blobs/$blob " "$PLOG" | sed -n 2p | sed 's/.* range=\([^ ]*\) .*/\1/')" \
  "bytes=$((blob_size - 1000))-" "the short body is resumed for the last 1000 bytes"
pulled_ok lenshort
faulted alenshort "[{\"path\": \"/blobs/$blob\", \"action\": \"length:-1000\"}]"
CIMG_REGISTRY_RETRIES=1 expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "layer $blob" "a layer always announced short: the error names it"
assert_match "$ERR" "cut short|gave up" "and says the body was short"
failed_clean alenshort
faulted mlenshort '[{"path": "/manifests/", "method": "GET", "action": "length:-10"}]'
expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_match "$ERR" "manifest" "a manifest announced short: the error names the manifest"
failed_clean mlenshort

section "a manifest over 4 MiB"
faulted mbig '[{"path": "/manifests/", "method": "GET", "action": "big:5000000"}]'
expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "over the limit of 4194304 bytes" "the error says the manifest is too big"
assert_eq "$(grep -c '^GET /v2/bb/manifests/1 ' "$PLOG")" 1 "a too-big manifest is not retried"
failed_clean mbig

section "a redirect loop"
faulted mloop '[{"path": "/manifests/", "method": "GET", "action": "redirect-loop"}]'
CIMG_REGISTRY_RETRIES=1 expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_match "$ERR" "[Rr]edirect" "on the manifest: the error says redirects"
hops=$(grep -c '^GET /v2/bb/manifests/1' "$PLOG")
assert_lt "$hops" 20 "the loop is cut short ($hops requests)"
failed_clean mloop
faulted bloop "[{\"path\": \"/blobs/$blob\", \"action\": \"redirect-loop\"}]"
CIMG_REGISTRY_RETRIES=1 expect_fail "$CIMG_ERR_CODE" cimg_in "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "layer $blob" "on the layer: the error names the layer"
assert_match "$ERR" "[Rr]edirect" "and says redirects"
failed_clean bloop

section "a trickling body: a stall is retried and resumed, a server that always stalls fails"
# CIMG_REGISTRY_STALL_SECONDS (default 60) is the low-speed timeout: under 1 byte/s for that
# long is a broken connection.
faulted trickle1 "[{\"path\": \"/blobs/$blob\", \"times\": 1, \"action\": \"trickle:4096:4\"}]"
start=$(date +%s%N)
CIMG_REGISTRY_STALL_SECONDS=2 expect_ok timeout 60 "$CIMG" --root "$CASE_ROOT" pull "$PROXY/bb:1"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
assert_eq "$(blob_gets)" 2 "the stalled request was given up and the layer asked for again"
assert_lt "$elapsed_ms" 15000 "the stall was detected within seconds (${elapsed_ms} ms)"
pulled_ok trickle1
faulted trickle2 "[{\"path\": \"/blobs/$blob\", \"action\": \"trickle:1:3\"}]"
CIMG_REGISTRY_STALL_SECONDS=2 CIMG_REGISTRY_RETRIES=1 expect_fail "$CIMG_ERR_CODE" timeout 60 \
  "$CIMG" --root "$CASE_ROOT" pull "$PROXY/bb:1"
assert_contains "$ERR" "layer $blob" "the error names the layer"
assert_match "$ERR" "too slow|[Tt]imeout|stall" "and says it was too slow"
failed_clean trickle2
