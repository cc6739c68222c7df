#!/bin/bash
# Install what building and testing cimg needs on Debian 12 (run as root). Used by .ci/run,
# demo.sh and the README. Installs nothing when every package is already there.
set -euo pipefail

packages=(
  # build
  build-essential cmake pkg-config
  libarchive-dev libcurl4-openssl-dev libssl-dev libjansson-dev libisal-dev libzstd-dev
  zlib1g-dev libseccomp-dev libcap-dev
  # what the static libarchive links against (CIMG_STATIC_DEPS)
  libacl1-dev liblz4-dev libbz2-dev liblzma-dev nettle-dev
  # tests and checks
  libcmocka-dev clang-format
  # tests/fuzz/run.sh: libFuzzer and the sanitizer runtimes come with clang's compiler-rt
  clang libclang-rt-14-dev
  # peers that make and read the fixtures of the integration tests
  skopeo umoci busybox-static docker-registry runc
  # the test harness
  jq python3 ca-certificates util-linux
  # chattr: test_container_fs.sh makes the store's blob directory refuse writes
  e2fsprogs
  # registry tests (htpasswd for basic auth) and bench/pull.sh (bc, /usr/bin/time)
  apache2-utils bc time curl
  # test_registry_tls.sh: a CA, server and client certificates
  openssl
  # bench/
  hyperfine
)

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/setup.sh: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -eq 0 ]; then
  echo "tests/setup.sh: all ${#packages[@]} packages are installed"
  exit 0
fi

echo "tests/setup.sh: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${packages[@]}"
