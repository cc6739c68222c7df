#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional argument are called without it
# TLS with per-registry certificates, the Docker way: $CIMG_CERTS_DIR/HOST:PORT/*.crt are CAs,
# client.cert + client.key a client certificate. docker-registry serves TLS on 127.0.0.1 with
# a server certificate for the IP 127.0.0.1 that a CA made here (openssl) signed.
# - with the CA configured, pull and push go over verified https;
# - without a certificates directory, 127.0.0.1 is insecure by default: https first (not
#   verified), and plain HTTP only for a registry that does not speak TLS;
# - with a wrong CA the pull fails, naming the certificate problem, and stores nothing;
# - a registry that requires client certificates (http.tls.clientcas) serves only a client
#   that has client.cert and client.key.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

command -v openssl >/dev/null || die "openssl is not installed (tests/setup.sh)"
export CIMG_CERTS_DIR="$TEST_TMP/certs.d"
# A certificate failure is final; other failures in these cases need not wait long.
export CIMG_REGISTRY_RETRIES=1 CIMG_REGISTRY_BACKOFF_MS=50
PKI="$TEST_TMP/pki"
mkdir -p "$PKI" "$CIMG_CERTS_DIR"

# make_ca NAME: a self-signed CA in $PKI/NAME.crt (key NAME.key).
make_ca() {
  _quietly "openssl-ca-$1" openssl req -x509 -newkey rsa:2048 -nodes -days 2 \
    -subj "/CN=cimg test $1" -keyout "$PKI/$1.key" -out "$PKI/$1.crt" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# make_cert NAME CA EXT: a key and a certificate NAME.{key,crt} signed by CA, with the
# extensions in EXT (an openssl extension section's lines).
make_cert() {
  local name=$1 ca=$2 ext=$3
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  _quietly "openssl-req-$name" openssl req -newkey rsa:2048 -nodes -subj "/CN=$name" \
    -keyout "$PKI/$name.key" -out "$PKI/$name.csr"
  _quietly "openssl-sign-$name" openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" \
    -CAkey "$PKI/$ca.key" -CAcreateserial -days 2 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt"
}

# start_tls_registry NAME [CLIENT_CA]: docker-registry serving TLS with the server certificate
# on a free loopback port; with CLIENT_CA it requires client certificates that CLIENT_CA
# signed. Sets TLS_REGISTRY=127.0.0.1:PORT.
start_tls_registry() {
  local name=$1 clientca=${2:-} dir="$TEST_TMP/$1" port pid
  mkdir -p "$dir/storage"
  port=$(_free_port)
  {
    printf 'version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n'
    printf 'storage:\n  filesystem:\n    rootdirectory: %s\n' "$dir/storage"
    printf 'http:\n  addr: 127.0.0.1:%s\n  tls:\n' "$port"
    printf '    certificate: %s\n    key: %s\n' "$PKI/server.crt" "$PKI/server.key"
    if [ -n "$clientca" ]; then
      printf '    clientcas:\n      - %s\n' "$clientca"
    fi
  } >"$dir/config.yml"
  env -u REGISTRY -u REGISTRY_PID -u REGISTRY_STORAGE docker-registry serve "$dir/config.yml" \
    >>"$dir/registry.log" 2>&1 &
  pid=$!
  _CIMG_TEST_PIDS+=("$pid")
  local -a client=()
  if [ -n "$clientca" ]; then client=(--cert "$PKI/client.crt" --key "$PKI/client.key"); fi
  for _ in $(seq 1 100); do
    if [ "$(curl -s -o /dev/null -w '%{http_code}' --cacert "$PKI/ca.crt" "${client[@]}" \
      "https://127.0.0.1:$port/v2/" || true)" == 200 ]; then
      TLS_REGISTRY="127.0.0.1:$port"
      log "$name: docker-registry with TLS (pid $pid) on $TLS_REGISTRY"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/registry.log"
  die "could not start $name"
}

# certs_for HOST:PORT FILE:NAME…: the certificates directory of HOST:PORT holds exactly these
# files (FILE copied as NAME).
certs_for() {
  local d="$CIMG_CERTS_DIR/$1" f
  shift
  rm -rf "$d"
  mkdir -p "$d"
  for f in "$@"; do cp "$PKI/${f%%:*}" "$d/${f#*:}"; done
}

section "fixtures: a CA, a server certificate for 127.0.0.1, a client certificate, a wrong CA"
make_ca ca
make_ca wrong
make_cert server ca "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
make_cert client ca "extendedKeyUsage=clientAuth"
start_tls_registry reg-tls
REG=$TLS_REGISTRY
make_fixture_oci "$TEST_TMP/oci" busybox
_quietly skopeo-push skopeo copy --quiet --dest-tls-verify=false "oci:$TEST_TMP/oci:busybox" "docker://$REG/bb:1"
digest="sha256:$(skopeo inspect --raw --tls-verify=false "docker://$REG/bb:1" | sha256sum | cut -d' ' -f1)"

section "(a) the registry's CA configured: pull and push over verified https"
certs_for "$REG" ca.crt:ca.crt
expect_ok cimg pull "$REG/bb:1"
assert_contains "$OUT" "Digest: $digest" "the pull resolved the registry's manifest"
must cimg tag "$REG/bb:1" "$REG/pushed:2"
expect_ok cimg push "$REG/pushed:2"
assert_contains "$OUT" "2: digest: $digest" "push prints the same manifest digest"
expect_ok skopeo inspect --cert-dir "$CIMG_CERTS_DIR/$REG" "docker://$REG/pushed:2"
assert_eq "$(jq -r .Digest <<<"$OUT")" "$digest" "skopeo (verifying with the CA) reads it back"
assert_store_clean

section "(b) no certificates directory: 127.0.0.1 is insecure, https is still tried first"
rm -rf "${CIMG_CERTS_DIR:?}/$REG"
root_b="$TEST_TMP/root-b"
expect_ok cimg_in "$root_b" pull "$REG/bb:1"
assert_contains "$OUT" "Digest: $digest" "a TLS-only registry on 127.0.0.1 is pulled over https"
start_registry
push_fixture "oci:$TEST_TMP/oci:busybox" plain:1
expect_ok cimg_in "$root_b" pull "$REGISTRY/plain:1"
assert_contains "$OUT" "Status:" "a plain-HTTP registry on 127.0.0.1 is still pulled (HTTP after https)"
assert_store_clean "$root_b"

section "(c) a wrong CA: the certificate is refused, nothing is stored"
certs_for "$REG" wrong.crt:ca.crt
root_c="$TEST_TMP/root-c"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_c" pull "$REG/bb:1"
log "the error: $ERR"
assert_contains "$ERR" "certificate" "the error names the certificate problem"
assert_contains "$ERR" "$REG" "and the registry"
assert_not_contains "$ERR" "http://" "no fall back to plain HTTP once certificates are configured"
assert_eq "$(cimg_in "$root_c" images -q | wc -l)" 0 "no image was stored"
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_c" push "$REG/bb:1"
# (the image is not in root_c: the push fails before any request; a pull is the real check)
assert_store_clean "$root_c"

section "(d) a registry that requires a client certificate"
start_tls_registry reg-mtls "$PKI/ca.crt"
MREG=$TLS_REGISTRY
mkdir -p "$TEST_TMP/skopeo-client"
cp "$PKI/client.crt" "$TEST_TMP/skopeo-client/client.cert"
cp "$PKI/client.key" "$TEST_TMP/skopeo-client/client.key"
_quietly skopeo-push-mtls skopeo copy --quiet --dest-tls-verify=false \
  --dest-cert-dir "$TEST_TMP/skopeo-client" "oci:$TEST_TMP/oci:busybox" "docker://$MREG/bb:1"
root_d="$TEST_TMP/root-d"
certs_for "$MREG" ca.crt:ca.crt
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_d" pull "$MREG/bb:1"
log "the error: $ERR"
assert_contains "$ERR" "certificate" "without a client certificate the handshake is refused"
certs_for "$MREG" ca.crt:ca.crt client.crt:client.cert
expect_fail "$CIMG_ERR_CODE" cimg_in "$root_d" pull "$MREG/bb:1"
log "the error: $ERR"
assert_contains "$ERR" "missing key" "a client.cert without its key is an error that says so"
certs_for "$MREG" ca.crt:ca.crt client.crt:client.cert client.key:client.key
expect_ok cimg_in "$root_d" pull "$MREG/bb:1"
assert_contains "$OUT" "Digest: $digest" "with client.cert and client.key the pull works"
expect_ok cimg_in "$root_d" push "$MREG/bb:1" "$MREG/back:1"
assert_contains "$OUT" "1: digest: $digest" "and so does a push"
assert_store_clean "$root_d"
