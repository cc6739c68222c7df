/* Image batches (store/image.h): removals (rmi of several names) and tags in one index update,
   with docker rmi's semantics per name. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "store/image.h"
#include "store/store-internal.h"
#include "tests/unit/fixture.h"

/* A scratch image (no layer) told apart by n, tagged with the NULL-terminated tags. */
static void
add_image (struct store_fixture *f, int n, const char *const *tags, char id[CIMG_DIGEST_BUFSIZE])
{
  cimg_error_t err = { 0 };
  cleanup_free char *config = xasprintf (
      "{\"created\":\"2024-01-%02dT00:00:00Z\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
      n);
  cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (f->s);
  assert_int_equal (
      cimg_image_batch_add (b, config, strlen (config), NULL, 0, NULL, 0, NULL, NULL, id, &err), 0);
  for (size_t i = 0; tags && tags[i]; i++)
    assert_int_equal (cimg_image_batch_tag (b, id, tags[i], &err), 0);
  assert_int_equal (cimg_image_batch_commit (b, &err), 0);
}

/* The tags of the index, sorted, joined with blanks. */
static char *
index_tags (struct store_fixture *f)
{
  cimg_error_t err = { 0 };
  cleanup_json json_t *idx = cimg_index_load (f->s, &err);
  assert_non_null (idx);
  cleanup_strv char **v = NULL;
  const char *k;
  json_t *val;
  json_object_foreach (json_object_get (idx, "tags"), k, val) cimg_strv_append (&v, k);
  size_t n = cimg_strv_len (v);
  for (size_t i = 0; i < n; i++)
    for (size_t j = i + 1; j < n; j++)
      if (strcmp (v[i], v[j]) > 0)
        {
          char *t = v[i];
          v[i] = v[j];
          v[j] = t;
        }
  char *out = xstrdup ("");
  for (size_t i = 0; i < n; i++)
    {
      char *o = xasprintf ("%s%s%s", out, i ? " " : "", v[i]);
      free (out);
      out = o;
    }
  return out;
}

static bool
index_has_image (struct store_fixture *f, const char *id)
{
  cimg_error_t err = { 0 };
  cleanup_json json_t *idx = cimg_index_load (f->s, &err);
  assert_non_null (idx);
  return json_object_get (json_object_get (idx, "images"), id) != NULL;
}

static bool
record_exists (struct store_fixture *f, const char *id)
{
  cleanup_free char *p = xasprintf ("images/%s", cimg_digest_hex (id));
  return faccessat (f->s->dirfd, p, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

/* The report of removal i joined with newlines ("" when none); its error code in *code (0 when
   it succeeded). */
static char *
outcome (struct cimg_image_batch *b, size_t i, int *code)
{
  char *const *lines = NULL;
  cimg_error_t err = { 0 };
  *code = cimg_image_batch_removed (b, i, &lines, &err) < 0 ? err.code : 0;
  if (*code)
    assert_non_null (err.msg);
  cimg_error_clear (&err);
  char *out = xstrdup ("");
  for (size_t k = 0; lines && lines[k]; k++)
    {
      char *o = xasprintf ("%s%s%s", out, k ? "\n" : "", lines[k]);
      free (out);
      out = o;
    }
  return out;
}

static ino_t
index_inode (struct store_fixture *f)
{
  struct stat st;
  assert_int_equal (fstatat (f->s->dirfd, "index", &st, 0), 0);
  return st.st_ino;
}

static void
test_remove_in_order (void **state)
{
  struct store_fixture *f = *state;
  char a[CIMG_DIGEST_BUFSIZE], b2[CIMG_DIGEST_BUFSIZE];
  add_image (f, 1, (const char *const[]){ "a:1", "a:2", "a:3", NULL }, a);
  add_image (f, 2, (const char *const[]){ "b:1", NULL }, b2);
  ino_t before = index_inode (f);

  cimg_error_t err = { 0 };
  cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (f->s);
  const char *names[] = { "a:1", "nosuch:1", "a:2", "b:1", "a:1", "a:3" };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    cimg_image_batch_remove (b, names[i], 0);
  assert_int_equal (cimg_image_batch_commit (b, &err), 0);
  assert_int_not_equal (index_inode (f), before);

  int code;
  cleanup_free char *r0 = outcome (b, 0, &code);
  assert_int_equal (code, 0);
  assert_string_equal (r0, "Untagged: a:1");
  cleanup_free char *r1 = outcome (b, 1, &code);
  assert_int_equal (code, ENOENT);
  assert_string_equal (r1, "");
  cleanup_free char *r2 = outcome (b, 2, &code);
  assert_int_equal (code, 0);
  assert_string_equal (r2, "Untagged: a:2");
  cleanup_free char *r3 = outcome (b, 3, &code);
  cleanup_free char *want3 = xasprintf ("Untagged: b:1\nDeleted: %s", b2);
  assert_int_equal (code, 0);
  assert_string_equal (r3, want3);
  /* Gone with the first a:1 of the same batch. */
  cleanup_free char *r4 = outcome (b, 4, &code);
  assert_int_equal (code, ENOENT);
  cleanup_free char *r5 = outcome (b, 5, &code);
  cleanup_free char *want5 = xasprintf ("Untagged: a:3\nDeleted: %s", a);
  assert_int_equal (code, 0);
  assert_string_equal (r5, want5);

  cleanup_free char *tags = index_tags (f);
  assert_string_equal (tags, "");
  assert_false (index_has_image (f, a));
  assert_false (index_has_image (f, b2));
  assert_false (record_exists (f, a));
  assert_false (record_exists (f, b2));
  /* gc ran: the images' configs are gone too. */
  cleanup_free char *blob = cimg_blob_path (a);
  assert_int_not_equal (faccessat (f->s->dirfd, blob, F_OK, AT_SYMLINK_NOFOLLOW), 0);
}

static void
test_remove_conflicts (void **state)
{
  struct store_fixture *f = *state;
  char a[CIMG_DIGEST_BUFSIZE], u[CIMG_DIGEST_BUFSIZE];
  add_image (f, 1, (const char *const[]){ "a:1", "a:2", NULL }, a);
  add_image (f, 2, (const char *const[]){ "u:1", "u:2", NULL }, u);
  /* A container of u, as `run` records it. */
  cleanup_free char *cdir = xasprintf ("containers/%064d", 7);
  assert_true (mkdirat (f->s->dirfd, "containers", 0700) == 0 || errno == EEXIST);
  assert_int_equal (mkdirat (f->s->dirfd, cdir, 0700), 0);
  cleanup_free char *cfg = xasprintf ("%s/config.json", cdir);
  cleanup_free char *text = xasprintf ("{\"Image\":\"%s\"}", u);
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_write_file_atomic_at (f->s->dirfd, cfg, text, strlen (text), 0644, &err),
                    0);

  int code;
  {
    cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (f->s);
    cimg_image_batch_remove (b, a, 0);     /* by ID, two tags */
    cimg_image_batch_remove (b, "u:1", 0); /* in use, but not its last tag */
    cimg_image_batch_remove (b, "u:2", 0); /* in use, its last tag */
    assert_int_equal (cimg_image_batch_commit (b, &err), 0);
    cleanup_free char *r0 = outcome (b, 0, &code);
    assert_int_equal (code, EBUSY);
    cleanup_free char *r1 = outcome (b, 1, &code);
    assert_int_equal (code, 0);
    assert_string_equal (r1, "Untagged: u:1");
    cleanup_free char *r2 = outcome (b, 2, &code);
    assert_int_equal (code, EBUSY);
    cleanup_free char *tags = index_tags (f);
    assert_string_equal (tags, "docker.io/library/a:1 docker.io/library/a:2 docker.io/library/u:2");
  }
  {
    cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (f->s);
    cimg_image_batch_remove (b, a, CIMG_RMI_FORCE);
    cimg_image_batch_remove (b, "u:2", CIMG_RMI_FORCE);
    assert_int_equal (cimg_image_batch_commit (b, &err), 0);
    cleanup_free char *r0 = outcome (b, 0, &code);
    cleanup_free char *want0 = xasprintf ("Untagged: a:1\nUntagged: a:2\nDeleted: %s", a);
    cleanup_free char *want0b = xasprintf ("Untagged: a:2\nUntagged: a:1\nDeleted: %s", a);
    assert_int_equal (code, 0);
    /* An image's tags come in the index's order, then the image. */
    if (strcmp (r0, want0b) != 0)
      assert_string_equal (r0, want0);
    cleanup_free char *r1 = outcome (b, 1, &code);
    assert_int_equal (code, 0);
    assert_string_equal (r1, "Untagged: u:2");
  }
  cleanup_free char *tags = index_tags (f);
  assert_string_equal (tags, "");
  assert_false (index_has_image (f, a));
  assert_true (index_has_image (f, u)); /* kept for its container */
  assert_true (record_exists (f, u));
}

/* Names that all fail change nothing: the index is not even rewritten. */
static void
test_remove_nothing (void **state)
{
  struct store_fixture *f = *state;
  char a[CIMG_DIGEST_BUFSIZE];
  add_image (f, 1, (const char *const[]){ "a:1", "a:2", NULL }, a);
  ino_t before = index_inode (f);
  cimg_error_t err = { 0 };
  cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (f->s);
  cimg_image_batch_remove (b, "nosuch:1", 0);
  cimg_image_batch_remove (b, a, 0);
  cimg_image_batch_remove (b, "sha256:", 0);
  assert_int_equal (cimg_image_batch_commit (b, &err), 0);
  int code;
  for (size_t i = 0; i < 3; i++)
    {
      cleanup_free char *r = outcome (b, i, &code);
      assert_int_not_equal (code, 0);
      assert_string_equal (r, "");
    }
  assert_int_equal (index_inode (f), before);
  cleanup_free char *tags = index_tags (f);
  assert_string_equal (tags, "docker.io/library/a:1 docker.io/library/a:2");
  /* Out of range. */
  static char *some[] = { NULL };
  char *const *lines = some;
  assert_int_equal (cimg_image_batch_removed (b, 3, &lines, &err), -1);
  assert_null (lines);
  cimg_error_clear (&err);
}

/* Several tags (build -t a -t b) in one update: all or none. */
static void
test_tags (void **state)
{
  struct store_fixture *f = *state;
  char a[CIMG_DIGEST_BUFSIZE];
  add_image (f, 1, NULL, a);
  cimg_error_t err = { 0 };
  ino_t before = index_inode (f);
  {
    cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (f->s);
    assert_int_equal (cimg_image_batch_tag (b, a, "t:1", &err), 0);
    assert_int_equal (cimg_image_batch_tag (b, a, "t:2", &err), 0);
    /* A well-formed ID the store does not hold: the whole batch fails. */
    assert_int_equal (cimg_image_batch_tag (
                          b,
                          "sha256:0000000000000000000000000000000000000000000000000000000000000000",
                          "t:3", &err),
                      0);
    assert_int_equal (cimg_image_batch_commit (b, &err), -1);
    assert_int_equal (err.code, ENOENT);
    cimg_error_clear (&err);
  }
  assert_int_equal (index_inode (f), before);
  cleanup_free char *none = index_tags (f);
  assert_string_equal (none, "");
  {
    cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (f->s);
    assert_int_equal (cimg_image_batch_tag (b, a, "t:1", &err), 0);
    assert_int_equal (cimg_image_batch_tag (b, a, "quay.io/x/t:2", &err), 0);
    assert_int_equal (cimg_image_batch_tag (b, a, "t", &err), 0);
    assert_int_equal (cimg_image_batch_tag (b, a, "Bad:Tag", &err), -1);
    cimg_error_clear (&err);
    assert_int_equal (cimg_image_batch_commit (b, &err), 0);
  }
  cleanup_free char *tags = index_tags (f);
  assert_string_equal (tags, "docker.io/library/t:1 docker.io/library/t:latest quay.io/x/t:2");
}

/* A batch that removes an image and records it again keeps it: removals come first, and the
   record written by the add is not taken for the deleted one's. */
static void
test_remove_then_add (void **state)
{
  struct store_fixture *f = *state;
  char a[CIMG_DIGEST_BUFSIZE], again[CIMG_DIGEST_BUFSIZE];
  add_image (f, 1, (const char *const[]){ "a:1", NULL }, a);
  cimg_error_t err = { 0 };
  cleanup_free char *config = xasprintf (
      "{\"created\":\"2024-01-%02dT00:00:00Z\",\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[]}}",
      1);
  cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (f->s);
  cimg_image_batch_remove (b, "a:1", 0);
  assert_int_equal (
      cimg_image_batch_add (b, config, strlen (config), NULL, 0, NULL, 0, NULL, NULL, again, &err),
      0);
  assert_string_equal (again, a);
  assert_int_equal (cimg_image_batch_tag (b, again, "a:2", &err), 0);
  assert_int_equal (cimg_image_batch_commit (b, &err), 0);
  int code;
  cleanup_free char *r = outcome (b, 0, &code);
  assert_int_equal (code, 0);
  assert_non_null (strstr (r, "Deleted: "));
  cleanup_free char *tags = index_tags (f);
  assert_string_equal (tags, "docker.io/library/a:2");
  assert_true (index_has_image (f, a));
  assert_true (record_exists (f, a));
  cleanup_image struct cimg_image *img = cimg_store_find_image (f->s, "a:2", &err);
  assert_non_null (img);
  assert_string_equal (img->id, a);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_remove_in_order, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_remove_conflicts, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_remove_nothing, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_tags, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_remove_then_add, store_setup, store_teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
