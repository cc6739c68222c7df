#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# Eight cimg processes on one store at once (issue 7 §4): pulling from a loopback registry,
# tagging, removing images, building a tiny Dockerfile, running containers (foreground and
# detached), loading an archive and listing, for CIMG_CONCURRENCY_SECONDS (default 60; 20 when
# the binary is built with ASAN, which is slower by a factor of ~3).
#
# Every stderr line of every command is collected. The only errors allowed are the ones a user
# gets when another process changed the store under them — the same Docker gives:
#   - "No such image" / "Unable to find image" / "No such container": a worker removed or had
#     not yet pulled the image or container another one names;
#   - "conflict: unable to remove image … a container is using it" and "conflict: unable to
#     delete … image is referenced in multiple repositories" (the "in use" class);
# Anything else (a lock error, a missing layer, a broken record, a digest mismatch, a crash)
# fails the test, and `cimg system check` must be clean afterwards.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
# shellcheck source-path=SCRIPTDIR source=lib-registry.sh
. "$CIMG_SRC/tests/integration/lib-registry.sh"

if grep -qa __asan_init "$CIMG"; then default_secs=20; else default_secs=60; fi
SECS=${CIMG_CONCURRENCY_SECONDS:-$default_secs}
ALLOWED='No such image|Unable to find image|No such container|conflict: unable to remove image .* a container is using it|conflict: unable to delete .* image is referenced in multiple repositories'

section "fixtures (umoci, skopeo)"
start_registry
make_fixture_oci "$TEST_TMP/oci" busybox
push_fixture "oci:$TEST_TMP/oci:busybox" bb:1
make_multilayer_oci "$TEST_TMP/ml"
push_fixture "oci:$TEST_TMP/ml:ml" ml:1
make_fixture_docker_archive "$TEST_TMP/base.tar" base:1
make_fixture_docker_archive "$TEST_TMP/arch.tar" arch:1
must cimg load -q -i "$TEST_TMP/base.tar"
bb_sum=$(sha256_of "$TEST_TMP/cache/busybox-rootfs/bin/busybox")
mkdir -p "$TEST_TMP/ctx"
# shellcheck disable=SC2016 # $N is the Dockerfile's
printf 'FROM base:1\nARG N=0\nRUN echo "built $N" >/built\nCOPY f /f\n' >"$TEST_TMP/ctx/Dockerfile"
echo payload >"$TEST_TMP/ctx/f"

mkdir -p "$TEST_TMP/w"
# op WORKER CMD…: one cimg command; its stderr lines go to w/WORKER.err prefixed with the
# command, its count to w/WORKER.ops.
op() {
  local w=$1 rc=0
  shift
  "$CIMG" --root "$CIMG_ROOT" "$@" >"$TEST_TMP/w/$w.out" 2>"$TEST_TMP/w/$w.cur" || rc=$?
  if [ -s "$TEST_TMP/w/$w.cur" ]; then
    sed "s|^|[$w] $* (exit $rc): |" "$TEST_TMP/w/$w.cur" >>"$TEST_TMP/w/$w.err"
  elif [ "$rc" -ne 0 ]; then
    echo "[$w] $* (exit $rc): no message" >>"$TEST_TMP/w/$w.err"
  fi
  echo "$1" >>"$TEST_TMP/w/$w.ops"
  return "$rc"
}

deadline=$(($(date +%s) + SECS))
alive() { [ "$(date +%s)" -lt "$deadline" ]; }

worker_pull() { # pull the two registry images again and again
  while alive; do
    op "$1" pull -q "$REGISTRY/ml:1" || true
    op "$1" pull -q "$REGISTRY/bb:1" || true
  done
}
worker_remove() { # remove what the others pull, load and tag
  while alive; do
    op "$1" rmi "$REGISTRY/ml:1" || true
    op "$1" rmi "$REGISTRY/bb:1" || true
    op "$1" rmi arch:1 || true
    op "$1" rmi mlalias:1 || true
    sleep 0.2
  done
}
worker_tag() {
  local n=0
  while alive; do
    n=$((n + 1))
    op "$1" tag base:1 "tagged:$n" || true
    op "$1" tag "$REGISTRY/ml:1" mlalias:1 || true
    op "$1" images || true
    op "$1" rmi "tagged:$n" || true
  done
}
worker_build() {
  local n=0
  while alive; do
    n=$((n + 1))
    if op "$1" build -q --build-arg "N=$n" -t "built:$1" "$TEST_TMP/ctx"; then
      op "$1" run --rm "built:$1" cat /built || true
    fi
    op "$1" rmi "built:$1" || true
  done
}
worker_run() {
  while alive; do
    op "$1" run --rm base:1 sh -c 'echo hi >/x && cat /x' || true
    # An image the others pull and remove: "Unable to find image" or, for rmi, "in use".
    op "$1" run --rm "$REGISTRY/bb:1" true || true
  done
}
worker_detached() {
  local n=0
  while alive; do
    n=$((n + 1))
    op "$1" run -d --name "det-$n" base:1 sleep 0.3 || continue
    op "$1" ps -a || true
    op "$1" wait "det-$n" || true
    op "$1" rm "det-$n" || true
  done
}
worker_load() {
  while alive; do
    op "$1" load -q -i "$TEST_TMP/arch.tar" || true
    op "$1" inspect arch:1 || true
    op "$1" system df || true
    op "$1" ps -a -q || true
  done
}

section "8 processes for $SECS s"
pids=()
worker_pull pull1 &
pids+=($!)
worker_pull pull2 &
pids+=($!)
worker_remove remove &
pids+=($!)
worker_tag tag &
pids+=($!)
worker_build build &
pids+=($!)
worker_run run &
pids+=($!)
worker_detached detached &
pids+=($!)
worker_load load &
pids+=($!)
_CIMG_TEST_PIDS+=("${pids[@]}")
for p in "${pids[@]}"; do wait "$p" || true; done

total=0
summary=""
for f in "$TEST_TMP"/w/*.ops; do
  w=$(basename "$f" .ops)
  n=$(wc -l <"$f")
  total=$((total + n))
  summary+="$w $n, "
done
log "operations: $total in $SECS s (${summary%, })"
log "by command: $(cat "$TEST_TMP"/w/*.ops | sort | uniq -c | awk '{printf "%s %s, ", $2, $1}')"
assert_lt 100 "$total" "the workers did real work ($total operations)"
cat "$TEST_TMP"/w/*.err >"$TEST_TMP/all.err" 2>/dev/null || true
allowed=$(grep -cE "$ALLOWED" "$TEST_TMP/all.err" || true)
unexpected=$(grep -vE "$ALLOWED" "$TEST_TMP/all.err" || true)
log "$allowed allowed error lines ($(grep -oE "$ALLOWED" "$TEST_TMP/all.err" | sed 's/ .*a container is using it/ … in use/' | sort | uniq -c | awk '{c=$1; $1=""; printf "%s:%s, ", substr($0,2), c}'))"
if [ -z "$unexpected" ]; then
  pass "no error other than the allowed 'No such …' and 'in use' classes"
else
  fail "unexpected errors while 8 processes shared the store"
  head -n 40 <<<"$unexpected"
fi

section "the store after"
# Detached containers still running (a worker stopped mid-loop) are left to finish.
for _ in $(seq 1 50); do
  [ -z "$(cimg ps -q)" ] && break
  sleep 0.1
done
run cimg ps -a -q
for c in $OUT; do run cimg rm -f "$c"; done
assert_store_clean
run cimg run --rm base:1 sha256sum /bin/busybox
assert_eq "${OUT%% *}" "$bb_sum" "base:1 still runs with its original bytes"
expect_ok cimg pull -q "$REGISTRY/ml:1"
assert_store_clean
