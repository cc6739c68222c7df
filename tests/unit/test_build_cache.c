/* Unit tests of the build step cache: keys (every input changes the key; no two inputs run
   together) and records (a record whose layer is gone is a miss). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "build/build-exec.h"
#include "store/store-internal.h"
#include "tests/unit/fixture.h"

static void
key (const char *parent, const char *instr, char *const *args, const char *content,
     char out[CIMG_DIGEST_BUFSIZE])
{
  cimg_build_cache_key (parent, instr, args, content, out);
  assert_true (cimg_digest_valid (out));
}

static void
test_keys (void **state)
{
  (void)state;
  char a[CIMG_DIGEST_BUFSIZE], b[CIMG_DIGEST_BUFSIZE];
  char *args1[] = { "A=1", NULL }, *args2[] = { "A=2", NULL }, *args3[] = { "A=1", "B=", NULL };
  key ("sha256:p", "RUN x", args1, NULL, a);
  key ("sha256:p", "RUN x", args1, NULL, b);
  assert_string_equal (a, b); /* deterministic */
  key ("sha256:q", "RUN x", args1, NULL, b);
  assert_string_not_equal (a, b); /* parent */
  key ("sha256:p", "RUN y", args1, NULL, b);
  assert_string_not_equal (a, b); /* instruction */
  key ("sha256:p", "RUN x", args2, NULL, b);
  assert_string_not_equal (a, b); /* an arg's value */
  key ("sha256:p", "RUN x", args3, NULL, b);
  assert_string_not_equal (a, b); /* one more arg in scope */
  key ("sha256:p", "RUN x", NULL, NULL, b);
  assert_string_not_equal (a, b); /* no args */
  key ("sha256:p", "RUN x", args1, "sha256:c", b);
  assert_string_not_equal (a, b); /* content */
  key ("sha256:p", "RUN x", args1, "", b);
  assert_string_not_equal (a, b); /* empty content is not no content */
  /* Fields never run together: moving bytes from one field to the next changes the key. */
  key ("ab", "c", NULL, NULL, a);
  key ("a", "bc", NULL, NULL, b);
  assert_string_not_equal (a, b);
  char *s1[] = { "A=1 B=2", NULL }, *s2[] = { "A=1", "B=2", NULL };
  key ("p", "i", s1, NULL, a);
  key ("p", "i", s2, NULL, b);
  assert_string_not_equal (a, b);
  char *s3[] = { "x", NULL };
  key ("p", "i", s3, NULL, a);
  key ("p", "i", NULL, "x", b);
  assert_string_not_equal (a, b); /* an arg is not content */
}

static int
pack_write (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  return cimg_layer_sink_write (data, buf, len, err);
}

static void
test_records (void **state)
{
  struct store_fixture *f = *state;
  cimg_error_t err = { 0 };
  /* A one-file layer, through the same sink a build uses. */
  cleanup_free char *tree = xasprintf ("%s/tree", f->dir);
  assert_int_equal (mkdir (tree, 0755), 0);
  cleanup_free char *file = xasprintf ("%s/hello", tree);
  FILE *fp = fopen (file, "w");
  assert_non_null (fp);
  fputs ("hello\n", fp);
  fclose (fp);
  int tfd = open (tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (tfd >= 0);
  struct cimg_layer_sink *k = cimg_layer_sink_new (f->s, NULL, CIMG_SINK_KEEP_BLOB, &err);
  assert_non_null (k);
  assert_int_equal (cimg_layer_pack (tfd, 0, pack_write, k, &err), 0);
  struct cimg_layer_info info;
  assert_int_equal (cimg_layer_sink_finish (k, NULL, NULL, &info, &err), 0);
  cimg_layer_sink_free (k);
  close (tfd);

  char kk[CIMG_DIGEST_BUFSIZE];
  cimg_build_cache_key ("scratch", "COPY", NULL, "c", kk);
  assert_null (cimg_build_cache_get (f->s, kk)); /* nothing recorded yet */
  json_t *rec = json_pack ("{s:{s:{s:[s]}}, s:[{s:s, s:s, s:s, s:s, s:i, s:i}]}", "config",
                           "rootfs", "diff_ids", info.diff_id, "layers", "chain_id", info.chain_id,
                           "diff_id", info.diff_id, "digest", info.digest, "media_type", "x",
                           "blob_size", 1, "size", 1);
  assert_non_null (rec);
  assert_int_equal (cimg_build_cache_put (f->s, kk, rec, &err), 0);
  json_t *got = cimg_build_cache_get (f->s, kk);
  assert_non_null (got);
  assert_true (json_equal (got, rec));
  json_decref (got);
  assert_null (cimg_build_cache_get (f->s, "sha256:nothex")); /* never a path from a bad key */

  /* A config that does not describe the layers is a miss. */
  json_t *bad = json_deep_copy (rec);
  json_array_set_new (
      json_object_get (json_object_get (json_object_get (bad, "config"), "rootfs"), "diff_ids"), 0,
      json_string ("sha256:0000000000000000000000000000000000000000000000000000000000000000"));
  char k2[CIMG_DIGEST_BUFSIZE];
  cimg_build_cache_key ("scratch", "COPY", NULL, "d", k2);
  assert_int_equal (cimg_build_cache_put (f->s, k2, bad, &err), 0);
  assert_null (cimg_build_cache_get (f->s, k2));
  json_decref (bad);

  /* gc removes the layer (no image uses it): the record must now be a miss. */
  struct cimg_gc_report r;
  assert_int_equal (cimg_store_gc (f->s, &r, &err), 0);
  cimg_store_unlock (f->s);
  assert_false (cimg_store_has_layer (f->s, info.chain_id));
  assert_null (cimg_build_cache_get (f->s, kk));
  json_decref (rec);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_keys),
    cmocka_unit_test_setup_teardown (test_records, store_setup, store_teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
