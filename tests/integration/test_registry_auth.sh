#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# Registry authentication: basic auth against a docker-registry with an htpasswd file, the
# Bearer token flow against the tests' token server (token_server.py) in front of a registry,
# cimg login / logout and ~/.docker/config.json, credential helpers (credHelpers, credsStore),
# tokens renewed before they expire (expires_in).

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

command -v htpasswd >/dev/null || die "htpasswd is not installed (apache2-utils, tests/setup.sh)"
export HOME="$TEST_TMP/home"
mkdir -p "$HOME"
DCONF="$HOME/.docker/config.json"
make_fixture_oci "$TEST_TMP/oci" busybox
cfg=$(config_digest "oci:$TEST_TMP/oci:busybox")

section "basic auth (htpasswd)"
htpasswd -Bbn alice 's3cret:pw' >"$TEST_TMP/htpasswd"
start_registry "$TEST_TMP/htpasswd"
push_fixture "oci:$TEST_TMP/oci:busybox" bb:1 --dest-creds 'alice:s3cret:pw'

expect_fail "$CIMG_ERR_CODE" cimg pull "$REGISTRY/bb:1"
assert_contains "$ERR" "authentication required" "an anonymous pull is refused with a reason"
assert_contains "$ERR" "cimg login $REGISTRY" "and the hint to log in"

expect_fail "$CIMG_ERR_CODE" cimg login -u alice -p wrong "$REGISTRY"
assert_contains "$ERR" "incorrect username or password" "wrong credentials are refused"
if [ -e "$DCONF" ]; then fail "a failed login wrote $DCONF"; else pass "a failed login writes nothing"; fi

run cimg login -u alice --password-stdin "$REGISTRY" <<<'s3cret:pw'
assert_eq "$RC" 0 "login with --password-stdin succeeds"
assert_contains "$OUT" "Login Succeeded" "login says so"
assert_eq "$(stat -c %a "$DCONF" 2>/dev/null)" 600 "config.json is mode 600"
assert_eq "$(jq -r --arg r "$REGISTRY" '.auths[$r].auth' "$DCONF" | base64 -d)" 'alice:s3cret:pw' \
  "auths holds base64 of user:password"

expect_ok cimg pull "$REGISTRY/bb:1"
assert_contains "$OUT" "Downloaded newer image" "a pull with the stored credentials works"
assert_eq "$(cimg inspect "$REGISTRY/bb:1" | jq -r '.[0].Id')" "$cfg" "the image is the fixture"

expect_ok cimg push "$REGISTRY/bb:1" "$REGISTRY/copy:2"
expect_ok skopeo inspect --tls-verify=false --creds 'alice:s3cret:pw' "docker://$REGISTRY/copy:2"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$(cimg inspect "$REGISTRY/bb:1" | jq -r '.[0].RepoDigests[0]' | cut -d@ -f2)" \
  "push with basic auth lands the same manifest"

# Other keys stay when login rewrites the file.
jq '. + {"psFormat": "table"}' "$DCONF" >"$DCONF.tmp" && mv "$DCONF.tmp" "$DCONF"
expect_ok cimg logout "$REGISTRY"
assert_contains "$OUT" "Removing login credentials for $REGISTRY" "logout says so"
assert_eq "$(jq -r --arg r "$REGISTRY" '.auths[$r] // "gone"' "$DCONF")" gone "logout removes the entry"
assert_eq "$(jq -r .psFormat "$DCONF")" table "logout keeps the other keys"
expect_fail "$CIMG_ERR_CODE" cimg_in "$TEST_TMP/root2" pull "$REGISTRY/bb:1"
assert_contains "$ERR" "authentication required" "after logout the pull is anonymous again"
expect_ok cimg logout "$REGISTRY"
assert_contains "$OUT" "Not logged in to $REGISTRY" "a second logout has nothing to remove"
expect_fail "$CIMG_USAGE_CODE" cimg login --password-stdin "$REGISTRY"
assert_store_clean

section "Bearer tokens (token_server.py in front of a registry)"
BASIC_REGISTRY=$REGISTRY
_kill_pid "$REGISTRY_PID"
rm -rf "$TEST_TMP/registry"
# docker-registry reads REGISTRY_* variables as configuration: the first one's exports would
# set the second one's storage driver.
unset REGISTRY REGISTRY_PID REGISTRY_STORAGE
start_registry
push_fixture "oci:$TEST_TMP/oci:busybox" bb:1
TLOG="$TEST_TMP/tokens.log"
start_helper token-server token_server.py --upstream "$REGISTRY" --user bob --password hunter2 \
  --log "$TLOG" --lifetime 600
TOKREG="127.0.0.1:$HELPER_PORT"
root_t="$TEST_TMP/root-t"

expect_fail "$CIMG_ERR_CODE" cimg_in "$root_t" pull "$TOKREG/bb:1"
assert_contains "$ERR" "token from http://$TOKREG/token" "an anonymous token request is refused, naming the realm"
assert_contains "$(cat "$TLOG")" "TOKEN refused" "the token server saw the anonymous request"

run cimg login -u bob --password-stdin "$TOKREG" <<<'hunter2'
assert_eq "$RC" 0 "login through the token flow succeeds"
: >"$TLOG"
expect_ok cimg_in "$root_t" pull "$TOKREG/bb:1"
assert_eq "$(cimg_in "$root_t" inspect "$TOKREG/bb:1" | jq -r '.[0].Id')" "$cfg" "the image came through"
assert_contains "$(cat "$TLOG")" "TOKEN user=bob service=cimg-test scopes=repository:bb:pull" \
  "the token was asked for with the credentials, the service and the pull scope"
assert_eq "$(grep -c TOKEN "$TLOG")" 1 "one token serves the whole pull"

expect_ok cimg_in "$root_t" push "$TOKREG/bb:1" "$TOKREG/pushed:1"
assert_contains "$(cat "$TLOG")" "scopes=repository:pushed:pull,push" "push asks for the push scope"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY/pushed:1"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$(reg_digest bb:1)" "the pushed manifest is the pulled one"
assert_store_clean "$root_t"

section "access_token, and a fresh token when one stops working"
TLOG2="$TEST_TMP/tokens2.log"
start_helper token-server2 token_server.py --upstream "$REGISTRY" --user bob --password hunter2 \
  --log "$TLOG2" --token-field access_token --max-uses 2 --lifetime 600
TOKREG2="127.0.0.1:$HELPER_PORT"
jq --arg r "$TOKREG2" --arg a "$(printf bob:hunter2 | base64)" '.auths[$r] = {auth: $a}' "$DCONF" \
  >"$DCONF.tmp" && mv "$DCONF.tmp" "$DCONF"
root_a="$TEST_TMP/root-a"
expect_ok cimg_in "$root_a" pull "$TOKREG2/bb:1"
assert_eq "$(cimg_in "$root_a" inspect "$TOKREG2/bb:1" | jq -r '.[0].Id')" "$cfg" \
  "a token given as access_token works"
tokens=$(grep -c 'TOKEN user=bob' "$TLOG2")
if [ "$tokens" -ge 2 ]; then
  pass "a fresh token was fetched when the first stopped working ($tokens tokens)"
else
  fail "only $tokens token(s) for a pull that needs more than 2 requests"
fi
assert_store_clean "$root_a"

section "a token that expires (expires_in 2 s) is renewed before it does"
# token_server.py (tokens of 2 s, refused after that) in front of fault_proxy.py, which makes
# the push and the pull last longer than a token: the client must fetch new tokens on its own,
# before the registry would refuse the old one.
ERULES="$TEST_TMP/expiry-rules.json"
echo '[]' >"$ERULES"
start_helper expiry-proxy fault_proxy.py --upstream "$REGISTRY" --rules "$ERULES" \
  --log "$TEST_TMP/expiry-proxy.log" --lifetime 600
TLOG4="$TEST_TMP/tokens4.log"
start_helper token-server4 token_server.py --upstream "127.0.0.1:$HELPER_PORT" --user bob \
  --password hunter2 --log "$TLOG4" --expires-in 2 --lifetime 600
TOKREG4="127.0.0.1:$HELPER_PORT"
jq --arg r "$TOKREG4" --arg a "$(printf bob:hunter2 | base64)" '.auths[$r] = {auth: $a}' "$DCONF" \
  >"$DCONF.tmp" && mv "$DCONF.tmp" "$DCONF"
# 17 chunks of 64 KiB, each held 0.25 s: a push of about 4.5 s.
echo '[{"method": "PATCH", "action": "delay:0.25"}]' >"$ERULES"
export CIMG_PUSH_CHUNK_SIZE=64k
start=$(date +%s%N)
expect_ok cimg_in "$root_t" push "$TOKREG/bb:1" "$TOKREG4/expiring:1"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
unset CIMG_PUSH_CHUNK_SIZE
assert_lt 3000 "$elapsed_ms" "the push lasted longer than a token (${elapsed_ms} ms)"
tokens=$(grep -c 'TOKEN user=bob' "$TLOG4")
assert_lt 2 "$tokens" "new tokens were fetched during the push ($tokens tokens)"
assert_eq "$(grep -c EXPIRED "$TLOG4")" 0 "no request went out with an expired token (no 401)"
expect_ok skopeo inspect --tls-verify=false "docker://$REGISTRY/expiring:1"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$(reg_digest bb:1)" "the push landed"

# The config and the layer each held 2.2 s: the layer is asked for after the first token
# expired.
echo '[{"method": "GET", "path": "/blobs/", "action": "delay:2.2"}]' >"$ERULES"
: >"$TLOG4"
root_e="$TEST_TMP/root-expiry"
start=$(date +%s%N)
expect_ok cimg_in "$root_e" pull "$TOKREG4/expiring:1"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
assert_lt 4000 "$elapsed_ms" "the pull lasted longer than two tokens (${elapsed_ms} ms)"
assert_eq "$(cimg_in "$root_e" inspect "$TOKREG4/expiring:1" | jq -r '.[0].Id')" "$cfg" \
  "the image came through"
tokens=$(grep -c 'TOKEN user=bob' "$TLOG4")
assert_lt 1 "$tokens" "a new token was fetched during the pull ($tokens tokens)"
assert_eq "$(grep -c EXPIRED "$TLOG4")" 0 "no request went out with an expired token (no 401)"
echo '[]' >"$ERULES"
assert_store_clean "$root_e"

section "anonymous tokens"
TLOG3="$TEST_TMP/tokens3.log"
start_helper token-server3 token_server.py --upstream "$REGISTRY" --user bob --password hunter2 \
  --log "$TLOG3" --anonymous-pull --lifetime 600
TOKREG3="127.0.0.1:$HELPER_PORT"
root_n="$TEST_TMP/root-n"
expect_ok cimg_in "$root_n" pull "$TOKREG3/bb:1"
assert_contains "$(cat "$TLOG3")" "TOKEN user=- service=cimg-test scopes=repository:bb:pull" \
  "without credentials the token is asked for anonymously"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_n" push "$TOKREG3/bb:1" "$TOKREG3/anon:1"
assert_contains "$ERR" "unauthorized" "an anonymous token does not allow a push"
run skopeo inspect --tls-verify=false "docker://$REGISTRY/anon:1"
assert_ne "$RC" 0 "nothing was pushed"
assert_store_clean "$root_n"

section "credential helpers"
mkdir -p "$TEST_TMP/bin"
cat >"$TEST_TMP/bin/docker-credential-cimgtest" <<EOF
#!/bin/sh
read -r server
echo "\$1 \$server" >>"$TEST_TMP/helper.log"
if [ "\$1" = get ] && [ "\$server" = "$TOKREG" ]; then
  printf '{"ServerURL":"%s","Username":"bob","Secret":"hunter2"}\n' "\$server"
  exit 0
fi
echo "credentials not found in native keychain"
exit 1
EOF
chmod +x "$TEST_TMP/bin/docker-credential-cimgtest"
export PATH="$TEST_TMP/bin:$PATH"
cp "$DCONF" "$DCONF.saved"
jq -n --arg r "$TOKREG" '{credHelpers: {($r): "cimgtest"}}' >"$DCONF"
root_h="$TEST_TMP/root-h"
expect_ok cimg_in "$root_h" pull "$TOKREG/bb:1"
assert_contains "$(cat "$TEST_TMP/helper.log")" "get $TOKREG" "credHelpers: the helper was asked for the server"
jq -n '{credsStore: "cimgtest"}' >"$DCONF"
: >"$TEST_TMP/helper.log"
rm -rf "$root_h"
expect_ok cimg_in "$root_h" pull "$TOKREG/bb:1"
assert_contains "$(cat "$TEST_TMP/helper.log")" "get $TOKREG" "credsStore: the helper was asked for the server"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_h" pull "$BASIC_REGISTRY/bb:1"
assert_contains "$(cat "$TEST_TMP/helper.log")" "get $BASIC_REGISTRY" \
  "a helper without credentials for a server means anonymous"
assert_store_clean "$root_h"
