# shellcheck shell=bash
# Helpers of the registry tests (pull, push, auth, faults). Source lib.sh first.
#
# Every image in the registry is put there by skopeo from layouts umoci made; cimg only reads.
# shellcheck disable=SC2153 # REGISTRY is exported by lib.sh's start_registry
# shellcheck disable=SC2034 # OTHER_ARCH, HELPER_PORT are results for the sourcing test

# push_fixture SRC DST [SKOPEO-FLAGS…]: skopeo copy SRC (a transport:ref) to
# docker://$REGISTRY/DST.
push_fixture() {
  local src=$1 dst=$2
  shift 2
  _quietly "skopeo-push-${dst//[^a-zA-Z0-9]/_}" skopeo copy --quiet --dest-tls-verify=false \
    "$@" "$src" "docker://$REGISTRY/$dst"
}

# reg_manifest REPO:TAG: the manifest bytes as the registry serves them (skopeo --raw).
reg_manifest() {
  skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/$1"
}

# reg_manifest_at HOST:PORT REPO:TAG: the manifest bytes another registry serves.
reg_manifest_at() {
  skopeo inspect --raw --tls-verify=false "docker://$1/$2"
}

# reg_digest REPO:TAG: sha256 of the manifest bytes the registry serves for it.
reg_digest() {
  echo "sha256:$(reg_manifest "$1" | sha256sum | cut -d' ' -f1)"
}

# layer_chain_ids DIFF_ID…: the chain IDs (sha256:…) of a stack of diff IDs, one a line.
layer_chain_ids() {
  local chain="" d
  for d in "$@"; do
    if [ -z "$chain" ]; then
      chain=$d
    else
      chain="sha256:$(printf '%s %s' "$chain" "$d" | sha256sum | cut -d' ' -f1)"
    fi
    echo "$chain"
  done
}

# image_lowerdirs IMAGE [ROOT]: "top:…:base" of the image's layer diff directories, as an
# overlay lowerdir option.
image_lowerdirs() {
  local root=${2:-$CIMG_ROOT} out="" c
  local -a diffs
  mapfile -t diffs < <(cimg_in "$root" inspect "$1" | jq -r '.[0].RootFS.Layers[]')
  while IFS= read -r c; do
    out="$root/layers/${c#sha256:}/diff${out:+:$out}"
  done < <(layer_chain_ids "${diffs[@]}")
  echo "$out"
}

# mount_image IMAGE DIR [ROOT]: a read-only overlay of the image's layers on DIR (the harness
# unmounts it at exit).
mount_image() {
  mkdir -p "$2"
  mount -t overlay overlay -o "lowerdir=$(image_lowerdirs "$1" "${3:-$CIMG_ROOT}")" "$2"
}

# make_multilayer_oci DIR: an OCI layout with "ml", three layers made by umoci repack on the
# busybox fixture: layer 2 deletes files and adds a tree, layer 3 empties a directory, deletes
# a file and replaces a file by a directory. DIR/expected is the final rootfs umoci had.
make_multilayer_oci() {
  local dir=$1 b="$TEST_TMP/ml-bundle"
  make_fixture_oci "$dir" busybox
  rm -rf "$b"
  _quietly umoci-ml-unpack umoci unpack --image "$dir:busybox" "$b"
  local r="$b/rootfs"
  rm -f "$r/bin/vi" "$r/etc/group"
  mkdir -p "$r/data/sub" "$r/emptyme/deeper"
  echo a >"$r/data/a"
  echo b >"$r/data/sub/b"
  echo x >"$r/emptyme/x"
  echo y >"$r/emptyme/deeper/y"
  ln -s ../data/a "$r/data/link-a"
  _quietly umoci-ml-repack2 umoci repack --refresh-bundle --image "$dir:ml2" "$b"
  rm -rf "$r/emptyme/"* "$r/data/a" "$r/bin/ls"
  mkdir -p "$r/bin/ls"
  echo c >"$r/data/c"
  _quietly umoci-ml-repack3 umoci repack --refresh-bundle --image "$dir:ml" "$b"
  rm -rf "$dir.expected"
  cp -a "$r" "$dir.expected"
  rm -rf "$b"
}

# make_index_oci DIR: an OCI layout whose tag "multi" is an image index of two platforms:
# linux/<this machine> (the busybox fixture, label which=host) and another architecture
# (label which=other). Prints nothing; OTHER_ARCH is set.
make_index_oci() {
  local dir=$1 host other
  host=$(host_arch)
  if [ "$host" == arm64 ]; then other=amd64; else other=arm64; fi
  OTHER_ARCH=$other
  make_fixture_oci "$dir" busybox
  _quietly umoci-idx-host umoci config --image "$dir:busybox" --tag host --config.label which=host
  _quietly umoci-idx-other umoci config --image "$dir:busybox" --tag other \
    --config.label which=other --architecture "$other"
  local hd od idx hex
  hd=$(jq -c '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "host")
    | {mediaType, digest, size}' "$dir/index.json")
  od=$(jq -c '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "other")
    | {mediaType, digest, size}' "$dir/index.json")
  idx=$(jq -cn --argjson h "$hd" --argjson o "$od" --arg ha "$host" --arg oa "$other" \
    '{schemaVersion: 2, mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [($o + {platform: {os: "linux", architecture: $oa}}),
                  ($h + {platform: {os: "linux", architecture: $ha}})]}')
  printf '%s' "$idx" >"$dir/idx.tmp"
  hex=$(sha256_of "$dir/idx.tmp")
  mv "$dir/idx.tmp" "$dir/blobs/sha256/$hex"
  jq --arg d "sha256:$hex" --argjson s "${#idx}" \
    '.manifests += [{mediaType: "application/vnd.oci.image.index.v1+json", digest: $d, size: $s,
      annotations: {"org.opencontainers.image.ref.name": "multi"}}]' \
    "$dir/index.json" >"$dir/index.json.tmp"
  mv "$dir/index.json.tmp" "$dir/index.json"
}

# start_helper NAME SCRIPT ARGS…: run one of the tests' python servers in the background on a
# free loopback port; sets HELPER_PORT. The server exits by itself after its time limit.
start_helper() {
  local name=$1 script=$2 port pid
  shift 2
  port=$(_free_port)
  python3 "$CIMG_SRC/tests/integration/$script" --port "$port" "$@" \
    >>"$TEST_TMP/$name.log" 2>&1 &
  pid=$!
  _CIMG_TEST_PIDS+=("$pid")
  for _ in $(seq 1 100); do
    if [ -n "$(http_status 127.0.0.1 "$port" /healthz)" ]; then
      HELPER_PORT=$port
      log "$name (pid $pid) on 127.0.0.1:$port"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$TEST_TMP/$name.log"
  die "could not start $name"
}

# start_registry2: a second docker-registry (as lib.sh's start_registry, without auth) in
# $TEST_TMP/registry2; exports REGISTRY2=127.0.0.1:PORT and REGISTRY2_PID.
start_registry2() {
  local dir="$TEST_TMP/registry2" port pid status
  mkdir -p "$dir/storage"
  port=$(_free_port)
  printf 'version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n' \
    "$dir/storage" "$port" >"$dir/config.yml"
  # docker-registry reads REGISTRY_* variables as configuration overrides: the first
  # registry's exports (REGISTRY_STORAGE, …) must not reach it.
  env -u REGISTRY -u REGISTRY_PID -u REGISTRY_STORAGE docker-registry serve "$dir/config.yml" \
    >>"$dir/registry.log" 2>&1 &
  pid=$!
  _CIMG_TEST_PIDS+=("$pid")
  for _ in $(seq 1 100); do
    status=$(http_status 127.0.0.1 "$port" /v2/)
    if [ "$status" == 200 ]; then
      export REGISTRY2="127.0.0.1:$port" REGISTRY2_PID=$pid
      log "second docker-registry (pid $pid) on $REGISTRY2"
      return 0
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/registry.log"
  die "could not start the second docker-registry"
}
