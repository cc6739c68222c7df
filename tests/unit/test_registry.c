/* Unit tests for the registry client's pure parts (registry/manifest.c, registry/config.c):
   WWW-Authenticate challenges, Content-Range and Retry-After, platforms and index choice,
   manifest parsing, the registries config and Docker's credentials file; upload ranges, sizes,
   token lifetimes, and recording a repo digest in a store. */

#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "registry/registry-internal.h"
#include "store/repodigest.h"

#define HEX_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define HEX_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define HEX_D "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd"
#define DA "sha256:" HEX_A
#define DB "sha256:" HEX_B
#define DC "sha256:" HEX_C
#define DD "sha256:" HEX_D

static json_t *
parse (const char *s)
{
  json_error_t je;
  json_t *j = json_loads (s, 0, &je);
  assert_non_null (j);
  return j;
}

/* ---------------------------------------------------------------- challenges */

static void
test_challenge_bearer (void **state)
{
  (void)state;
  struct reg_challenge c;
  assert_int_equal (reg_challenge_parse ("Bearer realm=\"https://auth.docker.io/token\","
                                         "service=\"registry.docker.io\","
                                         "scope=\"repository:library/busybox:pull,push\"",
                                         &c),
                    0);
  assert_string_equal (c.scheme, "bearer");
  assert_string_equal (c.realm, "https://auth.docker.io/token");
  assert_string_equal (c.service, "registry.docker.io");
  /* The comma inside the quoted scope does not split it. */
  assert_string_equal (c.scope, "repository:library/busybox:pull,push");
  reg_challenge_clear (&c);
  assert_null (c.scheme);
}

static void
test_challenge_forms (void **state)
{
  (void)state;
  struct reg_challenge c;
  /* Case-insensitive scheme and names, spaces after commas, a token value, escapes. */
  assert_int_equal (reg_challenge_parse ("BASIC Realm=basic-realm, error=\"a \\\"b\\\"\"", &c), 0);
  assert_string_equal (c.scheme, "basic");
  assert_string_equal (c.realm, "basic-realm");
  assert_string_equal (c.error, "a \"b\"");
  assert_null (c.service);
  reg_challenge_clear (&c);
  /* Unknown parameters are ignored. */
  assert_int_equal (reg_challenge_parse ("Bearer foo=\"x\",realm=\"r\"", &c), 0);
  assert_string_equal (c.realm, "r");
  reg_challenge_clear (&c);
  assert_int_equal (reg_challenge_parse ("", &c), -1);
  assert_int_equal (reg_challenge_parse (NULL, &c), -1);
  assert_int_equal (reg_challenge_parse ("Bearer realm=\"unterminated", &c), -1);
  assert_null (c.scheme);
}

/* ---------------------------------------------------------------- headers */

static void
test_content_range (void **state)
{
  (void)state;
  int64_t s, e, t;
  assert_int_equal (reg_parse_content_range ("bytes 300000-1087999/1088000", &s, &e, &t), 0);
  assert_int_equal (s, 300000);
  assert_int_equal (e, 1087999);
  assert_int_equal (t, 1088000);
  assert_int_equal (reg_parse_content_range ("bytes 5-9/*", &s, &e, &t), 0);
  assert_int_equal (t, -1);
  assert_int_equal (reg_parse_content_range ("bytes 9-5/10", &s, &e, &t), -1);
  assert_int_equal (reg_parse_content_range ("items 0-1/2", &s, &e, &t), -1);
  assert_int_equal (reg_parse_content_range ("bytes -1-5/10", &s, &e, &t), -1);
  assert_int_equal (reg_parse_content_range ("bytes 0-5/10x", &s, &e, &t), -1);
  assert_int_equal (reg_parse_content_range (NULL, &s, &e, &t), -1);
}

static void
test_retry_after (void **state)
{
  (void)state;
  assert_int_equal (reg_parse_retry_after ("3"), 3000);
  assert_int_equal (reg_parse_retry_after (" 0 "), 0);
  /* Capped at a minute. */
  assert_int_equal (reg_parse_retry_after ("3600"), 60000);
  assert_int_equal (reg_parse_retry_after ("Wed, 21 Oct 2015 07:28:00 GMT"), -1);
  assert_int_equal (reg_parse_retry_after ("-1"), -1);
  assert_int_equal (reg_parse_retry_after (NULL), -1);
}

/* ---------------------------------------------------------------- platforms */

static void
test_platform_parse (void **state)
{
  (void)state;
  struct reg_platform p;
  cimg_error_t err = { 0 };
  assert_int_equal (reg_platform_parse (NULL, &p, &err), 0);
  assert_string_equal (p.os, "linux");
  assert_true (p.arch[0] != '\0');
  assert_int_equal (reg_platform_parse ("linux/arm64/v8", &p, &err), 0);
  assert_string_equal (p.arch, "arm64");
  assert_string_equal (p.variant, "v8");
  assert_int_equal (reg_platform_parse ("Linux/AArch64", &p, &err), 0);
  assert_string_equal (p.os, "linux");
  assert_string_equal (p.arch, "arm64");
  assert_string_equal (p.variant, "");
  assert_int_equal (reg_platform_parse ("linux/x86_64", &p, &err), 0);
  assert_string_equal (p.arch, "amd64");
  assert_int_equal (reg_platform_parse ("linux", &p, &err), -1);
  assert_non_null (strstr (err.msg, "invalid platform \"linux\""));
  cimg_error_clear (&err);
  assert_int_equal (reg_platform_parse ("a/b/c/d", &p, &err), -1);
  cimg_error_clear (&err);
}

#define INDEX                                                                                      \
  "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\","                \
  "\"manifests\":["                                                                                \
  "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DA                 \
  "\",\"size\":10,\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}},"                    \
  "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DB                 \
  "\",\"size\":11,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm64\","                      \
  "\"variant\":\"v8\"}},"                                                                          \
  "{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"" DC                 \
  "\",\"size\":12,\"platform\":{\"os\":\"linux\",\"architecture\":\"arm\",\"variant\":\"v7\"}},"   \
  "{\"mediaType\":\"application/vnd.in-toto+json\",\"digest\":\"" DD                               \
  "\",\"size\":13,\"platform\":{\"os\":\"unknown\",\"architecture\":\"unknown\"}}]}"

static void
choose (const char *plat, const char *want_digest)
{
  cleanup_json json_t *idx = parse (INDEX);
  struct reg_platform p;
  struct reg_descriptor d;
  cimg_error_t err = { 0 };
  assert_int_equal (reg_platform_parse (plat, &p, &err), 0);
  int rc = reg_index_choose (idx, &p, &d, &err);
  if (want_digest == NULL)
    {
      assert_int_equal (rc, -1);
      assert_non_null (strstr (err.msg, "no matching manifest for"));
      /* The error lists what the index has. */
      assert_non_null (strstr (err.msg, "linux/arm/v7"));
      cimg_error_clear (&err);
      return;
    }
  assert_int_equal (rc, 0);
  assert_string_equal (d.digest, want_digest);
}

static void
test_index_choose (void **state)
{
  (void)state;
  choose ("linux/amd64", DA);
  /* arm64 without a variant asked for takes v8; with v8 too. */
  choose ("linux/arm64", DB);
  choose ("linux/arm64/v8", DB);
  choose ("linux/arm/v7", DC);
  choose ("linux/arm", DC);
  choose ("linux/arm/v6", NULL);
  choose ("linux/s390x", NULL);
  choose ("windows/amd64", NULL);
}

static void
test_index_refuses_bad_entries (void **state)
{
  (void)state;
  cleanup_json json_t *idx
      = parse ("{\"manifests\":[{\"digest\":\"sha256:../../etc\",\"size\":1,"
               "\"platform\":{\"os\":\"linux\",\"architecture\":\"amd64\"}}]}");
  struct reg_platform p;
  struct reg_descriptor d;
  cimg_error_t err = { 0 };
  assert_int_equal (reg_platform_parse ("linux/amd64", &p, &err), 0);
  assert_int_equal (reg_index_choose (idx, &p, &d, &err), -1);
  assert_non_null (strstr (err.msg, "invalid digest"));
  cimg_error_clear (&err);
  cleanup_json json_t *nolist = parse ("{\"schemaVersion\":2}");
  assert_int_equal (reg_index_choose (nolist, &p, &d, &err), -1);
  cimg_error_clear (&err);
}

/* ---------------------------------------------------------------- manifests */

#define MANIFEST(layers)                                                                           \
  "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","             \
  "\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"" DA        \
  "\",\"size\":100},\"layers\":[" layers "]}"
#define LAYER(mt, dg, size) "{\"mediaType\":\"" mt "\",\"digest\":\"" dg "\",\"size\":" #size "}"

static void
test_manifest_parse (void **state)
{
  (void)state;
  cleanup_json json_t *m
      = parse (MANIFEST (LAYER ("application/vnd.oci.image.layer.v1.tar+gzip", DB, 5) "," LAYER (
          "application/vnd.oci.image.layer.v1.tar+zstd", DC,
          6) "," LAYER ("application/vnd.docker.image.rootfs.diff.tar.gzip", DD, 0)));
  struct reg_manifest man;
  cimg_error_t err = { 0 };
  assert_int_equal (reg_manifest_parse (m, &man, &err), 0);
  assert_string_equal (man.config.digest, DA);
  assert_int_equal (man.config.size, 100);
  assert_int_equal (man.n_layers, 3);
  assert_string_equal (man.layers[1].digest, DC);
  assert_int_equal (man.layers[1].size, 6);
  assert_string_equal (man.layers[1].media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  reg_manifest_clear (&man);
  assert_string_equal (reg_manifest_media_type (m), "application/vnd.oci.image.manifest.v1+json");
}

static void
bad_manifest (const char *text, const char *want)
{
  cleanup_json json_t *m = parse (text);
  struct reg_manifest man;
  cimg_error_t err = { 0 };
  assert_int_equal (reg_manifest_parse (m, &man, &err), -1);
  if (strstr (err.msg, want) == NULL)
    fail_msg ("\"%s\" does not contain \"%s\"", err.msg, want);
  assert_null (man.layers);
  cimg_error_clear (&err);
}

static void
test_manifest_refusals (void **state)
{
  (void)state;
  bad_manifest ("{\"schemaVersion\":1,\"name\":\"x\",\"fsLayers\":[]}", "schema 1");
  bad_manifest ("{\"schemaVersion\":3}", "schemaVersion is not 2");
  bad_manifest (MANIFEST (LAYER ("application/vnd.oci.image.layer.v1.tar+gzip", "sha256:abc", 5)),
                "layer 1: invalid digest");
  bad_manifest (MANIFEST (LAYER ("application/vnd.oci.image.layer.v1.tar+gzip", DB, -5)),
                "invalid size");
  bad_manifest (
      MANIFEST (LAYER ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", DB, 5)),
      "unsupported media type");
  bad_manifest ("{\"schemaVersion\":2,\"layers\":[]}", "config: not an object");
}

static void
test_media_type_guess (void **state)
{
  (void)state;
  cleanup_json json_t *idx = parse ("{\"schemaVersion\":2,\"manifests\":[]}");
  assert_string_equal (reg_manifest_media_type (idx), "application/vnd.oci.image.index.v1+json");
  cleanup_json json_t *m = parse ("{\"schemaVersion\":2,\"config\":{}}");
  assert_string_equal (reg_manifest_media_type (m), "application/vnd.oci.image.manifest.v1+json");
  assert_true (
      reg_media_type_is_index ("application/vnd.docker.distribution.manifest.list.v2+json"));
  assert_false (reg_media_type_is_index ("application/vnd.oci.image.manifest.v1+json"));
  assert_true (reg_media_type_is_manifest ("application/vnd.docker.distribution.manifest.v2+json"));
}

/* ---------------------------------------------------------------- config */

static void
test_config_insecure (void **state)
{
  (void)state;
  struct reg_config c = { 0 };
  cimg_error_t err = { 0 };
  /* Loopback is insecure without any config, as in Docker. */
  assert_true (reg_config_insecure (&c, "127.0.0.1:5000"));
  assert_true (reg_config_insecure (&c, "127.9.8.7"));
  assert_true (reg_config_insecure (&c, "localhost:5000"));
  assert_true (reg_config_insecure (&c, "[::1]:5000"));
  assert_false (reg_config_insecure (&c, "128.0.0.1:5000"));
  assert_false (reg_config_insecure (&c, "docker.io"));
  cleanup_json json_t *j
      = parse ("{\"insecure-registries\":[\"myreg:5000\",\"10.0.0.0/8\","
               "\"plain.example\"],\"registry-mirrors\":[\"https://m.example/\"]}");
  assert_int_equal (reg_config_merge (&c, j, &err), 0);
  assert_true (reg_config_insecure (&c, "myreg:5000"));
  assert_false (reg_config_insecure (&c, "myreg:5001"));
  assert_true (reg_config_insecure (&c, "10.1.2.3:443"));
  assert_false (reg_config_insecure (&c, "11.1.2.3"));
  assert_true (reg_config_insecure (&c, "plain.example:8080"));
  assert_int_equal (cimg_strv_len (c.mirrors), 1);
  /* Merging the same file twice adds nothing. */
  assert_int_equal (reg_config_merge (&c, j, &err), 0);
  assert_int_equal (cimg_strv_len (c.insecure), 3);
  reg_config_clear (&c);
}

static void
test_config_refusals (void **state)
{
  (void)state;
  struct reg_config c = { 0 };
  cimg_error_t err = { 0 };
  cleanup_json json_t *a = parse ("{\"registry-mirrors\":[\"m.example\"]}");
  assert_int_equal (reg_config_merge (&c, a, &err), -1);
  assert_non_null (strstr (err.msg, "not an http(s) URL"));
  cimg_error_clear (&err);
  cleanup_json json_t *b = parse ("{\"insecure-registries\":\"x\"}");
  assert_int_equal (reg_config_merge (&c, b, &err), -1);
  assert_non_null (strstr (err.msg, "array of strings"));
  cimg_error_clear (&err);
  reg_config_clear (&c);
}

/* ---------------------------------------------------------------- credentials */

static void
test_auth_encoding (void **state)
{
  (void)state;
  cleanup_free char *a = reg_auth_encode ("alice", "s3:cret");
  assert_string_equal (a, "YWxpY2U6czM6Y3JldA==");
  char *u = NULL, *p = NULL;
  assert_int_equal (reg_auth_decode (a, &u, &p), 0);
  assert_string_equal (u, "alice");
  /* Only the first colon separates: passwords may hold colons. */
  assert_string_equal (p, "s3:cret");
  free (u), free (p);
  assert_int_equal (reg_auth_decode ("bm9jb2xvbg==", &u, &p), -1); /* "nocolon" */
  assert_int_equal (reg_auth_decode ("!!!", &u, &p), -1);
  assert_int_equal (reg_auth_decode ("", &u, &p), -1);
}

static void
test_docker_config_lookup (void **state)
{
  (void)state;
  cleanup_json json_t *cfg
      = parse ("{\"auths\":{\"https://index.docker.io/v1/\":{\"auth\":\"aHViOmh1YnB3\"},"
               "\"http://reg.example:5000/v2/\":{\"auth\":\"cmVnOnJlZ3B3\"},"
               "\"plain.example\":{\"username\":\"pu\",\"password\":\"pp\"},"
               "\"broken.example\":{\"auth\":\"***\"}},"
               "\"credHelpers\":{\"gcr.io\":\"gcloud\"},\"credsStore\":\"desktop\"}");
  char *u, *p, *h;
  cimg_error_t err = { 0 };
  assert_int_equal (reg_docker_config_lookup (cfg, "docker.io", &u, &p, &h, &err), 0);
  assert_string_equal (u, "hub");
  assert_string_equal (p, "hubpw");
  assert_null (h);
  free (u), free (p);
  /* A URL key matches its host. */
  assert_int_equal (reg_docker_config_lookup (cfg, "reg.example:5000", &u, &p, &h, &err), 0);
  assert_string_equal (u, "reg");
  free (u), free (p);
  assert_int_equal (reg_docker_config_lookup (cfg, "plain.example", &u, &p, &h, &err), 0);
  assert_string_equal (u, "pu");
  assert_string_equal (p, "pp");
  free (u), free (p);
  /* credHelpers before auths, credsStore as the fallback. */
  assert_int_equal (reg_docker_config_lookup (cfg, "gcr.io", &u, &p, &h, &err), 0);
  assert_null (u);
  assert_string_equal (h, "gcloud");
  free (h);
  assert_int_equal (reg_docker_config_lookup (cfg, "other.example", &u, &p, &h, &err), 0);
  assert_string_equal (h, "desktop");
  free (h);
  assert_int_equal (reg_docker_config_lookup (cfg, "broken.example", &u, &p, &h, &err), -1);
  assert_non_null (strstr (err.msg, "not base64"));
  cimg_error_clear (&err);
  cleanup_json json_t *empty = parse ("{}");
  assert_int_equal (reg_docker_config_lookup (empty, "x.example", &u, &p, &h, &err), 0);
  assert_null (u);
  assert_null (h);
}

static void
test_server_names (void **state)
{
  (void)state;
  const char *cases[][2] = {
    { NULL, "docker.io" },
    { "https://index.docker.io/v1/", "docker.io" },
    { "registry-1.docker.io", "docker.io" },
    { "127.0.0.1:5000", "127.0.0.1:5000" },
    { "http://reg.example:5000/v2/", "reg.example:5000" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cleanup_free char *n = cimg_registry_server_name (cases[i][0]);
      assert_string_equal (n, cases[i][1]);
    }
  assert_string_equal (reg_auth_key ("docker.io"), "https://index.docker.io/v1/");
  assert_string_equal (reg_auth_key ("127.0.0.1:5000"), "127.0.0.1:5000");
}

/* ---------------------------------------------------------------- uploads, sizes, tokens */

static void
test_upload_range (void **state)
{
  (void)state;
  int64_t next = -1;
  assert_int_equal (reg_parse_upload_range ("0-65535", 65536, &next), 0);
  assert_int_equal (next, 65536);
  /* Less than was sent: the offset is the registry's, not the caller's. */
  assert_int_equal (reg_parse_upload_range ("0-99", 65536, &next), 0);
  assert_int_equal (next, 100);
  assert_int_equal (reg_parse_upload_range ("bytes=0-9", 10, &next), 0);
  assert_int_equal (next, 10);
  /* "0-0": nothing, unless the caller sent exactly one byte. */
  assert_int_equal (reg_parse_upload_range ("0-0", 0, &next), 0);
  assert_int_equal (next, 0);
  assert_int_equal (reg_parse_upload_range ("0-0", 1, &next), 0);
  assert_int_equal (next, 1);
  assert_int_equal (reg_parse_upload_range ("0-0", 5000, &next), 0);
  assert_int_equal (next, 0);
  assert_int_equal (reg_parse_upload_range ("5-9", 10, &next), -1);
  assert_int_equal (reg_parse_upload_range ("0-", 10, &next), -1);
  assert_int_equal (reg_parse_upload_range ("0-9x", 10, &next), -1);
  assert_int_equal (reg_parse_upload_range ("0--9", 10, &next), -1);
  assert_int_equal (reg_parse_upload_range ("", 10, &next), -1);
  assert_int_equal (reg_parse_upload_range (NULL, 10, &next), -1);
}

static void
test_parse_size (void **state)
{
  (void)state;
  int64_t n = -1;
  assert_int_equal (reg_parse_size ("67108864", &n), 0);
  assert_int_equal (n, 67108864);
  assert_int_equal (reg_parse_size ("64k", &n), 0);
  assert_int_equal (n, 65536);
  assert_int_equal (reg_parse_size ("64KiB", &n), 0);
  assert_int_equal (n, 65536);
  assert_int_equal (reg_parse_size ("64kb", &n), 0);
  assert_int_equal (n, 65536);
  assert_int_equal (reg_parse_size ("64M", &n), 0);
  assert_int_equal (n, 64 << 20);
  assert_int_equal (reg_parse_size ("2g", &n), 0);
  assert_int_equal (n, (int64_t)2 << 30);
  assert_int_equal (reg_parse_size ("0", &n), 0);
  assert_int_equal (n, 0);
  assert_int_equal (reg_parse_size ("", &n), -1);
  assert_int_equal (reg_parse_size ("k", &n), -1);
  assert_int_equal (reg_parse_size ("-1", &n), -1);
  assert_int_equal (reg_parse_size ("64t", &n), -1);
  assert_int_equal (reg_parse_size ("64kx", &n), -1);
  assert_int_equal (reg_parse_size ("99999999999999999g", &n), -1);
  assert_int_equal (reg_parse_size (NULL, &n), -1);
}

static void
test_rfc3339 (void **state)
{
  (void)state;
  int64_t ms = 0;
  assert_int_equal (reg_parse_rfc3339_ms ("1970-01-01T00:00:01Z", &ms), 0);
  assert_int_equal (ms, 1000);
  assert_int_equal (reg_parse_rfc3339_ms ("2026-11-23T19:00:00.25Z", &ms), 0);
  assert_int_equal (ms, (int64_t)1795460400 * 1000 + 250);
  assert_int_equal (reg_parse_rfc3339_ms ("2026-11-23T19:00:00.123456789Z", &ms), 0);
  assert_int_equal (ms, (int64_t)1795460400 * 1000 + 123);
  /* 20:00 at +01:00 is 19:00 UTC. */
  assert_int_equal (reg_parse_rfc3339_ms ("2026-11-23T20:00:00+01:00", &ms), 0);
  assert_int_equal (ms, (int64_t)1795460400 * 1000);
  assert_int_equal (reg_parse_rfc3339_ms ("2026-11-23T19:00:00", &ms), -1);
  assert_int_equal (reg_parse_rfc3339_ms ("2026-13-23T19:00:00Z", &ms), -1);
  assert_int_equal (reg_parse_rfc3339_ms ("2026-11-23T19:00:00Zjunk", &ms), -1);
  assert_int_equal (reg_parse_rfc3339_ms ("yesterday", &ms), -1);
  assert_int_equal (reg_parse_rfc3339_ms (NULL, &ms), -1);
}

static void
test_token_refresh (void **state)
{
  (void)state;
  int64_t now = (int64_t)1795460400 * 1000;
  /* 300 s: renewed 30 s before the end (a quarter would be 75 s). */
  assert_int_equal (reg_token_refresh_after_ms (300, NULL, now), 270000);
  /* 2 s: a quarter before the end. */
  assert_int_equal (reg_token_refresh_after_ms (2, NULL, now), 1500);
  /* No lifetime said: the spec's 60 s. */
  assert_int_equal (reg_token_refresh_after_ms (0, NULL, now), 45000);
  assert_int_equal (reg_token_refresh_after_ms (-5, NULL, now), 45000);
  /* Issued 100 s ago with 300 s: 200 s left, renewed 30 s before. */
  assert_int_equal (reg_token_refresh_after_ms (300, "2026-11-23T18:58:20Z", now), 170000);
  /* Issued in the future (clock skew): counted from now. */
  assert_int_equal (reg_token_refresh_after_ms (300, "2026-11-23T19:10:00Z", now), 270000);
  /* Issued longer ago than it lasts: renew at once. */
  assert_int_equal (reg_token_refresh_after_ms (60, "2026-11-23T18:00:00Z", now), 0);
  /* An unreadable issued_at is ignored. */
  assert_int_equal (reg_token_refresh_after_ms (300, "soon", now), 270000);
}

static void
test_config_chunk_size (void **state)
{
  (void)state;
  struct reg_config c = { 0 };
  cimg_error_t err = { 0 };
  assert_false (c.has_push_chunk_size);
  cleanup_json json_t *a = parse ("{\"push-chunk-size\": 1048576}");
  assert_int_equal (reg_config_merge (&c, a, &err), 0);
  assert_true (c.has_push_chunk_size);
  assert_int_equal (c.push_chunk_size, 1048576);
  /* A later file overrides; units are accepted. */
  cleanup_json json_t *b = parse ("{\"push-chunk-size\": \"16M\"}");
  assert_int_equal (reg_config_merge (&c, b, &err), 0);
  assert_int_equal (c.push_chunk_size, 16 << 20);
  cleanup_json json_t *z = parse ("{\"push-chunk-size\": 0}");
  assert_int_equal (reg_config_merge (&c, z, &err), 0);
  assert_int_equal (c.push_chunk_size, 0);
  cleanup_json json_t *bad1 = parse ("{\"push-chunk-size\": -1}");
  assert_int_equal (reg_config_merge (&c, bad1, &err), -1);
  assert_non_null (strstr (err.msg, "push-chunk-size"));
  cimg_error_clear (&err);
  cleanup_json json_t *bad2 = parse ("{\"push-chunk-size\": \"lots\"}");
  assert_int_equal (reg_config_merge (&c, bad2, &err), -1);
  cimg_error_clear (&err);
  cleanup_json json_t *bad3 = parse ("{\"push-chunk-size\": true}");
  assert_int_equal (reg_config_merge (&c, bad3, &err), -1);
  cimg_error_clear (&err);
  reg_config_clear (&c);
}

/* ---------------------------------------------------------------- repo digests (store) */

static void
test_store_repo_digest (void **state)
{
  (void)state;
  char dir[] = "/tmp/cimg-test-repodigest-XXXXXX";
  assert_non_null (mkdtemp (dir));
  cimg_error_t err = { 0 };
  cleanup_free char *root = xasprintf ("%s/store", dir);
  struct cimg_store *s = cimg_store_open (root, &err);
  assert_non_null (s);
  const char *cfg = "{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":"
                    "\"layers\",\"diff_ids\":[]}}";
  char id[CIMG_DIGEST_BUFSIZE];
  assert_int_equal (
      cimg_store_add_image (s, cfg, strlen (cfg), NULL, 0, NULL, 0, "r.example/a@" DA, id, &err),
      0);
  assert_int_equal (cimg_store_add_repo_digest (s, id, "127.0.0.1:5000/b@" DB, &err), 0);
  /* Twice: no duplicate. */
  assert_int_equal (cimg_store_add_repo_digest (s, id, "127.0.0.1:5000/b@" DB, &err), 0);
  struct cimg_image *img = cimg_store_find_image (s, id, &err);
  assert_non_null (img);
  assert_int_equal (cimg_strv_len (img->repo_digests), 2);
  assert_string_equal (img->repo_digests[0], "r.example/a@" DA);
  assert_string_equal (img->repo_digests[1], "127.0.0.1:5000/b@" DB);
  cimg_image_free (img);
  assert_int_equal (cimg_store_add_repo_digest (s, DC, "x/y@" DB, &err), -1);
  assert_int_equal (err.code, ENOENT);
  cimg_error_clear (&err);
  const char *bad[] = { "no-digest", "x/y@sha256:abc", "@" DB, "x y@" DB, "x\ny@" DB };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      assert_int_equal (cimg_store_add_repo_digest (s, id, bad[i], &err), -1);
      assert_int_equal (err.code, EINVAL);
      cimg_error_clear (&err);
    }
  cimg_store_close (s);
  cleanup_free char *cmd = xasprintf ("rm -rf '%s'", dir);
  assert_int_equal (system (cmd), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_challenge_bearer),
    cmocka_unit_test (test_challenge_forms),
    cmocka_unit_test (test_content_range),
    cmocka_unit_test (test_retry_after),
    cmocka_unit_test (test_platform_parse),
    cmocka_unit_test (test_index_choose),
    cmocka_unit_test (test_index_refuses_bad_entries),
    cmocka_unit_test (test_manifest_parse),
    cmocka_unit_test (test_manifest_refusals),
    cmocka_unit_test (test_media_type_guess),
    cmocka_unit_test (test_config_insecure),
    cmocka_unit_test (test_config_refusals),
    cmocka_unit_test (test_auth_encoding),
    cmocka_unit_test (test_docker_config_lookup),
    cmocka_unit_test (test_server_names),
    cmocka_unit_test (test_upload_range),
    cmocka_unit_test (test_parse_size),
    cmocka_unit_test (test_rfc3339),
    cmocka_unit_test (test_token_refresh),
    cmocka_unit_test (test_config_chunk_size),
    cmocka_unit_test (test_store_repo_digest),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
