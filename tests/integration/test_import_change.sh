#!/bin/bash
# shellcheck disable=SC2119 # helpers with an optional ROOT argument are called without it
# import --change: the lines are Dockerfile instructions, parsed as commit -c and a build parse
# them (quotes, JSON form, both ENV forms, expansion against the config's Env), limited to what
# Docker's --change accepts; ENTRYPOINT keeps a CMD of the same run, in a build too. Also: save
# and export refuse a terminal alike (exit 1, as Docker), save -o is whole or not at all.

# shellcheck source-path=SCRIPTDIR source=lib-run.sh
. "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib-run.sh"

make_busybox_rootfs "$TEST_TMP/rootfs"
tar -C "$TEST_TMP/rootfs" -cf "$TEST_TMP/rootfs.tar" .

# config IMAGE JQ: the jq filter applied to the image's container config.
config() {
  run cimg inspect "$1"
  jq -cS ".[0].Config | $2" <<<"$OUT"
}

section "import --change: Dockerfile syntax"
# shellcheck disable=SC2016 # ${A} is for cimg to expand
expect_ok cimg import \
  -c 'ENV A=b C="d e"' \
  -c 'ENV F g h' \
  -c 'ENV G=${A}-x' \
  -c 'LABEL "my key"="my value" other=1' \
  -c 'CMD ["echo", "a b"]' \
  -c 'ENTRYPOINT ["/bin/sh", "-c"]' \
  -c 'EXPOSE 80 53/UDP' \
  -c 'VOLUME ["/data", "/logs"]' \
  -c 'WORKDIR /srv' -c 'WORKDIR app/../web' \
  -c 'USER nobody' -c 'STOPSIGNAL SIGINT' \
  -c 'ONBUILD RUN echo child' \
  -c 'HEALTHCHECK CMD true' \
  "$TEST_TMP/rootfs.tar" imp:changed
assert_eq "$(config imp:changed '.Env')" \
  '["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","A=b","C=d e","F=g h","G=b-x"]' \
  "ENV: key=value pairs with quotes, the legacy form, \$A expanded; the default PATH first"
assert_eq "$(config imp:changed '.Labels')" '{"my key":"my value","other":"1"}' \
  "LABEL: a quoted key and value"
assert_eq "$(config imp:changed '[.Cmd, .Entrypoint]')" '[["echo","a b"],["/bin/sh","-c"]]' \
  "JSON CMD kept by an ENTRYPOINT that comes after it in the same import"
assert_eq "$(config imp:changed '[.ExposedPorts, .Volumes]')" \
  '[{"53/udp":{},"80/tcp":{}},{"/data":{},"/logs":{}}]' "EXPOSE (protocol in lower case), JSON VOLUME"
assert_eq "$(config imp:changed '[.WorkingDir, .User, .StopSignal]')" '["/srv/web","nobody","SIGINT"]' \
  "a relative WORKDIR continues the previous one, cleaned; USER; STOPSIGNAL"
assert_eq "$(config imp:changed '[.OnBuild, .Healthcheck.Test]')" \
  '[["RUN echo child"],["CMD-SHELL","true"]]' "ONBUILD and HEALTHCHECK, as Docker's --change takes them"

expect_ok cimg import -c 'CMD echo hi' -c 'entrypoint ["/bin/tool"]' "$TEST_TMP/rootfs.tar" imp:ep
assert_eq "$(config imp:ep '[.Cmd, .Entrypoint]')" '[["/bin/sh","-c","echo hi"],["/bin/tool"]]' \
  "shell-form CMD through /bin/sh -c; a lower-case instruction name"
expect_ok cimg import -c 'ENTRYPOINT ["/bin/tool"]' "$TEST_TMP/rootfs.tar" imp:ep2
assert_eq "$(config imp:ep2 '.Cmd')" 'null' "ENTRYPOINT alone leaves no Cmd"

section "ENTRYPOINT and Cmd: the same rule in a build"
mkdir -p "$TEST_TMP/ctx"
printf 'FROM scratch\nCMD ["a"]\nENTRYPOINT ["b"]\n' >"$TEST_TMP/ctx/Dockerfile"
expect_ok cimg build -t built:cmd "$TEST_TMP/ctx"
assert_eq "$(config built:cmd '[.Cmd, .Entrypoint]')" '[["a"],["b"]]' \
  "build: a CMD earlier in the stage stays after ENTRYPOINT"
printf 'FROM imp:ep\nENTRYPOINT ["c"]\n' >"$TEST_TMP/ctx/Dockerfile"
expect_ok cimg build -t built:inherit "$TEST_TMP/ctx"
assert_eq "$(config built:inherit '[.Cmd, .Entrypoint]')" '[null,["c"]]' \
  "build: ENTRYPOINT clears a Cmd inherited from the base"

section "import --change: refused"
images_before=$(cimg images -q | wc -l)
for bad in 'RUN rm -rf /' 'SHELL ["/bin/bash", "-c"]' 'MAINTAINER me' 'COPY a /b' 'ARG X=1' \
  'FROM busybox'; do
  name=${bad%% *}
  expect_fail "$CIMG_ERR_CODE" cimg import -c "$bad" "$TEST_TMP/rootfs.tar" imp:bad
  assert_contains "$ERR" "$name is not a valid change command" "import --change '$bad' names $name"
done
expect_fail "$CIMG_ERR_CODE" cimg import -c 'EXPOSE notaport' "$TEST_TMP/rootfs.tar" imp:bad
assert_contains "$ERR" 'invalid port "notaport"' "a bad EXPOSE names the port"
expect_fail "$CIMG_ERR_CODE" cimg import -c 'ENV A="unterminated' "$TEST_TMP/rootfs.tar" imp:bad
assert_contains "$ERR" 'change "ENV A="unterminated"' "a bad line is named in the error"
expect_fail "$CIMG_ERR_CODE" cimg import "$TEST_TMP/rootfs.tar" "imp@sha256:$(printf '%064d' 0)"
assert_contains "$ERR" "refusing to create a tag with a digest reference" \
  "import to a digest reference says a tag cannot be one"
assert_eq "$(cimg images -q | wc -l)" "$images_before" "refused changes and names leave no image"

section "save and export refuse a terminal alike"
run pty_run 24 80 "$CIMG" --root "$CIMG_ROOT" save imp:changed
assert_contains "$OUT" "cowardly refusing to save to a terminal" "save names the reason"
assert_eq "$RC" 1 "save to a terminal exits 1, as Docker"
run pty_run 24 80 "$CIMG" --root "$CIMG_ROOT" save -o - imp:changed
assert_eq "$RC" 1 "save -o - to a terminal exits 1 too"
run pty_run 24 80 "$CIMG" --root "$CIMG_ROOT" export no-such-container
assert_contains "$OUT" "cowardly refusing to save to a terminal" "export names the reason"
assert_eq "$RC" 1 "export to a terminal exits 1, as save"

section "save -o: whole or not at all"
expect_ok cimg save -o "$TEST_TMP/imp.tar" imp:changed
assert_contains "$(tar -tf "$TEST_TMP/imp.tar")" "manifest.json" "save -o writes the archive"
expect_fail "$CIMG_ERR_CODE" cimg save -o "$TEST_TMP/imp.tar" imp:changed no-such:image
assert_contains "$(tar -tf "$TEST_TMP/imp.tar")" "manifest.json" "a failed save keeps the old file"
assert_eq "$(find "$TEST_TMP" -maxdepth 1 -name 'imp.tar.tmp*' | wc -l)" 0 \
  "a failed save leaves no temp file"
expect_fail "$CIMG_ERR_CODE" cimg save -o "$TEST_TMP/no-such-dir/x.tar" imp:changed
assert_contains "$ERR" "no-such-dir/x.tar" "save names an output it cannot create"

assert_store_clean
