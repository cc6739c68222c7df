/* Unit tests for the resumable downloads the registry client writes (store/ingest.c): a partial
   file survives a close that keeps it, is found again by digest, re-read and re-hashed, and
   becomes the blob only when the whole verifies. */

#include <setjmp.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "store/ingest.h"
#include "tests/unit/fixture.h"

struct fixture
{
  struct store_fixture st; /* first: store_teardown frees the whole */
  char data[300000];
  char digest[CIMG_DIGEST_BUFSIZE];
};

static int
setup (void **state)
{
  struct fixture *f = xzalloc (sizeof *f);
  f->st.s = temp_store_open (f->st.dir, sizeof f->st.dir);
  for (size_t i = 0; i < sizeof f->data; i++)
    f->data[i] = (char)(i * 7 + i / 1000);
  cimg_sha256_buf (f->data, sizeof f->data, f->digest);
  *state = f;
  return 0;
}

struct collect
{
  char *buf;
  size_t len;
};

static int
collect (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  struct collect *c = data;
  (void)err;
  c->buf = xrealloc (c->buf, c->len + len);
  memcpy (c->buf + c->len, buf, len);
  c->len += len;
  return 0;
}

static void
test_resume (void **state)
{
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_ingest *g = cimg_ingest_open (f->st.s, f->digest, sizeof f->data, &err);
  assert_non_null (g);
  assert_int_equal (cimg_ingest_offset (g), 0);
  assert_int_equal (cimg_ingest_write (g, f->data, 123456, &err), 0);
  /* A killed process: the file stays. */
  cimg_ingest_close (g, true);
  g = cimg_ingest_open (f->st.s, f->digest, sizeof f->data, &err);
  assert_non_null (g);
  assert_int_equal (cimg_ingest_offset (g), 123456);
  struct collect c = { 0 };
  assert_int_equal (cimg_ingest_replay (g, collect, &c, &err), 0);
  assert_int_equal (c.len, 123456);
  assert_memory_equal (c.buf, f->data, 123456);
  free (c.buf);
  assert_int_equal (cimg_ingest_write (g, f->data + 123456, sizeof f->data - 123456, &err), 0);
  assert_int_equal (cimg_ingest_commit (g, &err), 0);
  cimg_ingest_close (g, false);
  assert_true (cimg_store_has_blob (f->st.s, f->digest));
  assert_int_equal (cimg_store_blob_size (f->st.s, f->digest), sizeof f->data);
  /* Nothing is left in ingest/. */
  cleanup_free char *partial
      = xasprintf ("%s/root/ingest/dl-%s", f->st.dir, cimg_digest_hex (f->digest));
  struct stat st;
  assert_int_equal (stat (partial, &st), -1);
}

static void
test_wrong_bytes_are_refused (void **state)
{
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_ingest *g = cimg_ingest_open (f->st.s, f->digest, sizeof f->data, &err);
  assert_non_null (g);
  assert_int_equal (cimg_ingest_write (g, f->data, 1000, &err), 0);
  cimg_ingest_close (g, true);
  /* The partial bytes are re-hashed: one flipped byte on disk fails the commit. */
  cleanup_free char *partial
      = xasprintf ("%s/root/ingest/dl-%s", f->st.dir, cimg_digest_hex (f->digest));
  FILE *fp = fopen (partial, "r+");
  assert_non_null (fp);
  fseek (fp, 10, SEEK_SET);
  fputc (f->data[10] ^ 1, fp);
  fclose (fp);
  g = cimg_ingest_open (f->st.s, f->digest, sizeof f->data, &err);
  assert_non_null (g);
  assert_int_equal (cimg_ingest_replay (g, NULL, NULL, &err), 0);
  assert_int_equal (cimg_ingest_write (g, f->data + 1000, sizeof f->data - 1000, &err), 0);
  assert_int_equal (cimg_ingest_commit (g, &err), -1);
  assert_non_null (strstr (err.msg, "digest mismatch"));
  cimg_error_clear (&err);
  cimg_ingest_close (g, false);
  assert_false (cimg_store_has_blob (f->st.s, f->digest));
  struct stat st;
  assert_int_equal (stat (partial, &st), -1);
}

static void
test_reset_and_locking (void **state)
{
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_ingest *a = cimg_ingest_open (f->st.s, f->digest, sizeof f->data, &err);
  assert_non_null (a);
  assert_int_equal (cimg_ingest_write (a, "garbage", 7, &err), 0);
  /* A second writer of the same blob gets a private file, not the locked one. */
  struct cimg_ingest *b = cimg_ingest_open (f->st.s, f->digest, sizeof f->data, &err);
  assert_non_null (b);
  assert_int_equal (cimg_ingest_offset (b), 0);
  assert_int_equal (cimg_ingest_write (b, f->data, sizeof f->data, &err), 0);
  assert_int_equal (cimg_ingest_commit (b, &err), 0);
  cimg_ingest_close (b, false);
  /* The server ignored a Range: start over. */
  assert_int_equal (cimg_ingest_reset (a, &err), 0);
  assert_int_equal (cimg_ingest_offset (a), 0);
  assert_int_equal (cimg_ingest_write (a, f->data, sizeof f->data, &err), 0);
  assert_int_equal (cimg_ingest_commit (a, &err), 0);
  cimg_ingest_close (a, false);
  assert_true (cimg_store_has_blob (f->st.s, f->digest));
}

static void
test_refusals (void **state)
{
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  assert_null (cimg_ingest_open (f->st.s, "sha256:../../etc/passwd", 10, &err));
  assert_non_null (strstr (err.msg, "invalid digest"));
  cimg_error_clear (&err);
  /* A partial file longer than the blob is discarded. */
  struct cimg_ingest *g = cimg_ingest_open (f->st.s, f->digest, 10, &err);
  assert_non_null (g);
  assert_int_equal (cimg_ingest_write (g, f->data, 20, &err), 0);
  cimg_ingest_close (g, true);
  g = cimg_ingest_open (f->st.s, f->digest, 10, &err);
  assert_non_null (g);
  assert_int_equal (cimg_ingest_offset (g), 0);
  assert_int_equal (cimg_ingest_write (g, f->data, 20, &err), 0);
  assert_int_equal (cimg_ingest_commit (g, &err), -1);
  cimg_error_clear (&err);
  cimg_ingest_close (g, false);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_resume, setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_wrong_bytes_are_refused, setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_reset_and_locking, setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_refusals, setup, store_teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
