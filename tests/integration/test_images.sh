#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# The image commands on an imported busybox rootfs: images, inspect, tag, history, rmi, image
# prune, system df, system check; error codes and messages; --help everywhere.

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

section "version and --help"
expect_ok cimg version
assert_match "$OUT" '^cimg version [0-9]+\.[0-9]+\.[0-9]+' "version prints 'cimg version X.Y.Z'"

expect_ok cimg --help
assert_match "$OUT" '[Uu]sage' "cimg --help prints a usage"

for cmd in "version" "images" "tag" "rmi" "image prune" "inspect" "history" "system df" \
  "system check" "import" "save" "load"; do
  read -ra words <<<"$cmd"
  expect_ok cimg "${words[@]}" --help
  assert_match "$OUT" '[Uu]sage' "cimg $cmd --help prints a usage on stdout"
done

expect_fail "$CIMG_USAGE_CODE" cimg images --no-such-flag
assert_contains "$ERR" "--no-such-flag" "the message names the unknown flag"
expect_fail "$CIMG_USAGE_CODE" cimg no-such-command
assert_contains "$ERR" "no-such-command" "the message names the unknown command"

section "import"
make_busybox_rootfs "$TEST_TMP/rootfs"
tar -C "$TEST_TMP/rootfs" -cf "$TEST_TMP/rootfs.tar" .
diff_id="sha256:$(sha256_of "$TEST_TMP/rootfs.tar")"

must cimg import "$TEST_TMP/rootfs.tar" busybox:imp
assert_match "$OUT" '^sha256:[0-9a-f]{64}$' "import prints the image ID (sha256:…) and nothing else"
id=$(tail -n 1 <<<"$OUT")
hex=${id#sha256:}
short=${hex:0:12}
log "imported busybox:imp as $id"

section "images"
expect_ok cimg images
header=$(head -n 1 <<<"$OUT")
assert_match "$header" '^REPOSITORY +TAG +IMAGE ID +CREATED +SIZE *$' "images header"
row=$(awk '$1 == "busybox" && $2 == "imp"' <<<"$OUT")
assert_ne "$row" "" "images lists busybox:imp"
assert_eq "$(awk '{print $3}' <<<"$row")" "$short" "IMAGE ID is the 12 first hex digits of the ID"
assert_contains "$row" "ago" "CREATED is relative"
assert_match "$row" '[0-9.]+ ?[kKMG]?B *$' "SIZE is a human size"
assert_eq "$(wc -l <<<"$OUT")" 2 "images shows one row"

expect_ok cimg images -q
assert_eq "$OUT" "$short" "images -q prints the short ID only"

expect_ok cimg images --no-trunc
full=$(awk '$1 == "busybox" && $2 == "imp" {print $3}' <<<"$OUT")
assert_match "$full" '^(sha256:)?[0-9a-f]{64}$' "images --no-trunc shows the full ID"
assert_eq "sha256:${full#sha256:}" "$id" "the --no-trunc ID is the imported ID"

expect_ok cimg images -q --no-trunc
assert_eq "${OUT#sha256:}" "$hex" "images -q --no-trunc prints the full ID"

expect_ok cimg images --digests
assert_match "$(head -n 1 <<<"$OUT")" '^REPOSITORY +TAG +DIGEST +IMAGE ID +CREATED +SIZE *$' \
  "images --digests header"

expect_ok cimg images --format json
assert_eq "$(wc -l <<<"$OUT")" 1 "images --format json prints one line per image"
if jq -e . >/dev/null 2>&1 <<<"$OUT"; then
  pass "the line is JSON"
  for key in Repository Tag ID CreatedSince CreatedAt Size Digest; do
    assert_eq "$(jq -r --arg k "$key" 'has($k)' <<<"$OUT")" true "json has key $key"
  done
  assert_eq "$(jq -r .Repository <<<"$OUT")" busybox "json Repository"
  assert_eq "$(jq -r .Tag <<<"$OUT")" imp "json Tag"
  assert_eq "$(jq -r .ID <<<"$OUT")" "$short" "json ID"
else
  fail "images --format json prints JSON: $OUT"
fi

# The store root also comes from $CIMG_ROOT when --root is not given.
run env CIMG_ROOT="$CIMG_ROOT" "$CIMG" images -q
assert_eq "$OUT" "$short" "\$CIMG_ROOT selects the store when --root is absent"

section "inspect"
expect_ok cimg inspect busybox:imp
if jq -e 'type == "array" and length == 1' >/dev/null 2>&1 <<<"$OUT"; then
  pass "inspect prints a JSON array of one"
  j=$OUT
  assert_eq "$(jq -r '.[0].Id' <<<"$j")" "$id" "Id is sha256: + the full ID"
  assert_eq "$(jq -r '.[0].RepoTags | index("busybox:imp") != null' <<<"$j")" true \
    "RepoTags has busybox:imp"
  assert_eq "$(jq -r '.[0].RepoDigests | type' <<<"$j")" array "RepoDigests is an array"
  assert_eq "$(jq -r '.[0].RootFS.Type' <<<"$j")" layers "RootFS.Type is layers"
  assert_eq "$(jq -r '.[0].RootFS.Layers | length' <<<"$j")" 1 "RootFS.Layers has 1 entry"
  assert_eq "$(jq -r '.[0].RootFS.Layers[0]' <<<"$j")" "$diff_id" \
    "the layer's diff ID is the sha256 of the imported tar"
  assert_eq "$(jq -r '.[0].Architecture' <<<"$j")" "$(host_arch)" "Architecture"
  assert_eq "$(jq -r '.[0].Os' <<<"$j")" linux "Os"
  assert_match "$(jq -r '.[0].Created' <<<"$j")" '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9:]+)$' \
    "Created is RFC 3339"
  assert_eq "$(jq -r '.[0].Config | type' <<<"$j")" object "Config is an object"
  assert_eq "$(jq -r '.[0] | has("GraphDriver")' <<<"$j")" true "GraphDriver is there"
  size=$(jq -r '.[0].Size' <<<"$j")
  if [[ "$size" =~ ^[0-9]+$ ]] && [ "$size" -ge "$(stat -c %s /bin/busybox)" ]; then
    pass "Size ($size) counts the layer"
  else
    fail "Size is '$size'"
  fi
else
  fail "inspect prints a JSON array of one"
fi

expect_ok cimg inspect "$short"
assert_eq "$(jq -r '.[0].Id' <<<"$OUT" 2>/dev/null)" "$id" "inspect accepts the short ID"
expect_ok cimg inspect "$id"
assert_eq "$(jq -r '.[0].Id' <<<"$OUT" 2>/dev/null)" "$id" "inspect accepts sha256:<full ID>"

section "import from stdin shares the layer"
layers_before=$(count_layer_dirs)
run cimg import - busybox:stdin <"$TEST_TMP/rootfs.tar"
assert_eq "$RC" 0 "import - reads the tar from stdin"
assert_match "$OUT" '^sha256:[0-9a-f]{64}$' "import - prints the image ID"
assert_eq "$(count_layer_dirs)" "$layers_before" "the same tar is stored as the same layer"
expect_ok cimg inspect busybox:stdin
assert_eq "$(jq -r '.[0].RootFS.Layers[0]' <<<"$OUT" 2>/dev/null)" "$diff_id" "same diff ID"
expect_ok cimg rmi busybox:stdin
assert_contains "$OUT" "Untagged: busybox:stdin" "rmi busybox:stdin untags"
assert_contains "$OUT" "Deleted: sha256:" "rmi busybox:stdin deletes its image"
assert_eq "$(count_layer_dirs)" "$layers_before" "a layer still used by busybox:imp stays"

section "tag"
must cimg tag busybox:imp busybox:other
expect_ok cimg tag busybox:imp localhost:5000/team/bb:v1
expect_ok cimg images
assert_eq "$(awk '$1 == "busybox" && $2 == "other" {print $3}' <<<"$OUT")" "$short" \
  "busybox:other is listed with the same ID"
assert_eq "$(awk '$1 == "busybox" && $2 == "imp" {print $3}' <<<"$OUT")" "$short" \
  "busybox:imp is still listed"
assert_eq "$(awk '$1 == "localhost:5000/team/bb" && $2 == "v1" {print $3}' <<<"$OUT")" "$short" \
  "localhost:5000/team/bb:v1 is listed with the same ID"
expect_ok cimg images -q
assert_eq "$OUT" "$short" "images -q prints an image once whatever its tags"
# A second image, with two tags, beside the first with its three: each ID once, in the order
# `images` lists them.
must cimg import -m "a second image" "$TEST_TMP/rootfs.tar" order:1
must cimg tag order:1 order:2
expect_ok cimg images
listed=$(awk 'NR > 1 && !seen[$3]++ { print $3 }' <<<"$OUT")
assert_eq "$(wc -l <<<"$listed")" 2 "images lists two image IDs"
expect_ok cimg images -q
assert_eq "$OUT" "$listed" "images -q prints each ID once, in the listing's order"
must cimg rmi order:1 order:2
expect_ok cimg inspect busybox:other
assert_eq "$(jq -r '.[0].RepoTags | sort | join(",")' <<<"$OUT" 2>/dev/null)" \
  "busybox:imp,busybox:other,localhost:5000/team/bb:v1" "RepoTags lists every tag"

section "history"
expect_ok cimg history busybox:imp
assert_match "$(head -n 1 <<<"$OUT")" '^IMAGE +CREATED +CREATED BY +SIZE' "history header"
if [ "$(wc -l <<<"$OUT")" -ge 2 ]; then pass "history has a row"; else fail "history has no row"; fi
assert_contains "$OUT" "$short" "history shows the image ID"
expect_ok cimg history --no-trunc busybox:imp
assert_contains "$OUT" "$hex" "history --no-trunc shows the full ID"

section "rmi of one tag"
expect_ok cimg rmi busybox:other localhost:5000/team/bb:v1
assert_contains "$OUT" "Untagged: busybox:other" "rmi prints Untagged: busybox:other"
assert_contains "$OUT" "Untagged: localhost:5000/team/bb:v1" "rmi prints Untagged: …/bb:v1"
assert_not_contains "$OUT" "Deleted:" "the image still has a tag, nothing is deleted"
expect_ok cimg images -q
assert_eq "$OUT" "$short" "the image stays"

section "system df"
expect_ok cimg system df
assert_match "$(head -n 1 <<<"$OUT")" '^TYPE +TOTAL +ACTIVE +SIZE +RECLAIMABLE *$' "system df header"
assert_eq "$(awk '$1 == "Images" {print $2}' <<<"$OUT")" 1 "system df counts 1 image"
assert_eq "$(awk '$1 == "Images" {print $3}' <<<"$OUT")" 0 "no image is in use"
assert_store_clean

section "errors"
expect_fail "$CIMG_ERR_CODE" cimg inspect nosuchimage:tag
assert_contains "$ERR" "nosuchimage" "inspect names the unknown image"
expect_fail "$CIMG_ERR_CODE" cimg rmi nosuchimage:tag
assert_contains "$ERR" "nosuchimage" "rmi names the unknown image"
expect_fail "$CIMG_ERR_CODE" cimg history nosuchimage
assert_contains "$ERR" "nosuchimage" "history names the unknown image"
expect_fail "$CIMG_ERR_CODE" cimg tag nosuchimage:tag busybox:x
assert_contains "$ERR" "nosuchimage" "tag names the unknown source"
expect_fail "$CIMG_ERR_CODE" cimg save -o "$TEST_TMP/nosuch.tar" nosuchimage
assert_contains "$ERR" "nosuchimage" "save names the unknown image"
expect_fail "$CIMG_ERR_CODE" cimg tag busybox:imp Upper/Case
assert_contains "$ERR" "must be lowercase" "tag names the lowercase rule"
expect_fail "$CIMG_ERR_CODE" cimg import "$TEST_TMP/rootfs.tar" Upper/Case
assert_contains "$ERR" "must be lowercase" "import names the lowercase rule"
expect_fail "$CIMG_ERR_CODE" cimg inspect 'bad::ref'
assert_contains "$ERR" "invalid reference" "a malformed reference is refused as such"
expect_fail "$CIMG_ERR_CODE" cimg import "$TEST_TMP/no-such-file.tar" busybox:x
assert_contains "$ERR" "no-such-file.tar" "import names the missing file"
expect_ok cimg images -a -q
assert_eq "$OUT" "$short" "failed commands change nothing"

section "rmi of the last tag"
layers_before=$(count_layer_dirs)
if [ "$layers_before" -ge 1 ]; then pass "the layer is in $CIMG_ROOT/layers"; else fail "no layer directory"; fi
expect_ok cimg rmi busybox:imp
assert_contains "$OUT" "Untagged: busybox:imp" "rmi prints Untagged: busybox:imp"
assert_contains "$OUT" "Deleted: $id" "rmi prints Deleted: sha256:<ID>"
assert_lt "$(count_layer_dirs)" "$layers_before" "the layer directory is gone"
expect_ok cimg images -a -q
assert_eq "$OUT" "" "no image is left"
expect_ok cimg system df
assert_eq "$(awk '$1 == "Images" {print $2}' <<<"$OUT")" 0 "system df counts 0 images"
assert_store_clean

section "image prune"
must cimg import "$TEST_TMP/rootfs.tar" prune:1
first=$(tail -n 1 <<<"$OUT")
sleep 1.1 # a later Created, so a different config and image ID
must cimg import "$TEST_TMP/rootfs.tar" prune:1
second=$(tail -n 1 <<<"$OUT")
assert_ne "$first" "$second" "a second import is a new image"
expect_ok cimg images -q --no-trunc
assert_not_contains "$OUT" "${first#sha256:}" "the untagged image is hidden without -a"
expect_ok cimg images -a
assert_match "$OUT" $'(^|\n)<none> +<none> +'"${first:7:12}" "images -a shows it as <none> <none>"
expect_ok cimg image prune -f
assert_contains "$OUT" "Deleted: $first" "image prune deletes the dangling image"
expect_ok cimg images -a -q --no-trunc
assert_eq "${OUT#sha256:}" "${second#sha256:}" "the tagged image stays"
expect_ok cimg image prune -a -f
assert_contains "$OUT" "Deleted: $second" "image prune -a deletes unused images"
expect_ok cimg images -a -q
assert_eq "$OUT" "" "no image is left"
assert_eq "$(count_layer_dirs)" 0 "no layer is left"
assert_store_clean
