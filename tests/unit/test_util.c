#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "util/util.h"

static void
test_error_chain (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  assert_false (cimg_error_is_set (&err));
  assert_int_equal (
      cimg_error_set (&err, EINVAL, "entry \"%s\": path leaves the layer", "../etc/passwd"), -1);
  cimg_error_wrap (&err, "layer 2 (%s)", "sha256:ab12");
  cimg_error_wrap (&err, "load %s", "x.tar");
  assert_string_equal (err.msg,
                       "load x.tar: layer 2 (sha256:ab12): entry \"../etc/passwd\": path leaves "
                       "the layer");
  assert_int_equal (err.code, EINVAL);
  cimg_error_clear (&err);
  assert_null (err.msg);
  errno = ENOENT;
  cimg_error_sys (&err, "open %s", "f");
  assert_string_equal (err.msg, "open f: No such file or directory");
  assert_int_equal (err.code, ENOENT);
  cimg_error_clear (&err);
}

static void
test_sha256 (void **state)
{
  (void)state;
  char d[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf ("abc", 3, d);
  assert_string_equal (d,
                       "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  struct cimg_sha256 *h = cimg_sha256_new ();
  cimg_sha256_update (h, "a", 1);
  cimg_sha256_update (h, "bc", 2);
  char d2[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_final (h, d2);
  assert_string_equal (d, d2);
  cimg_sha256_free (h);
  assert_true (cimg_digest_valid (d));
  assert_false (cimg_digest_valid (
      "sha256:BA7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
  assert_false (cimg_digest_valid ("sha256:ba78"));
  assert_false (
      cimg_digest_valid ("sha256:../../../../../../../../../../../../../../../../etc/passwd"));
  assert_false (cimg_digest_valid (
      "sha512:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
}

static void
test_human (void **state)
{
  (void)state;
  char b[64];
  cimg_human_size (940, b, sizeof b);
  assert_string_equal (b, "940B");
  cimg_human_size (1234567, b, sizeof b);
  assert_string_equal (b, "1.23MB");
  cimg_human_size (72800000, b, sizeof b);
  assert_string_equal (b, "72.8MB");
  cimg_human_duration (3, b, sizeof b);
  assert_string_equal (b, "3 seconds");
  cimg_human_duration (120, b, sizeof b);
  assert_string_equal (b, "2 minutes");
  cimg_human_duration (3 * 86400, b, sizeof b);
  assert_string_equal (b, "3 days");
  int64_t t;
  assert_int_equal (cimg_time_parse_rfc3339 ("2024-01-02T03:04:05.123456789Z", &t), 0);
  assert_int_equal (t, 1704164645);
  assert_int_equal (cimg_time_parse_rfc3339 ("2024-01-02T05:04:05+02:00", &t), 0);
  assert_int_equal (t, 1704164645);
  assert_int_equal (cimg_time_parse_rfc3339 ("yesterday", &t), -1);
  cimg_time_rfc3339 (1704164645, 120000000, b, sizeof b);
  assert_string_equal (b, "2024-01-02T03:04:05.12Z");
}

static void
open_in_root (void)
{
  char tmpdir[] = "/tmp/cimg-test-util-XXXXXX";
  cimg_error_t err = { 0 };
  assert_non_null (mkdtemp (tmpdir));
  int root = open (tmpdir, O_RDONLY | O_DIRECTORY);
  assert_true (root >= 0);
  assert_int_equal (mkdirat (root, "r", 0755), 0);
  assert_int_equal (mkdirat (root, "outside", 0755), 0);
  int r = openat (root, "r", O_RDONLY | O_DIRECTORY);
  assert_int_equal (mkdirat (r, "etc", 0755), 0);
  /* Links that point out of r must resolve inside it. */
  assert_int_equal (symlinkat ("/", r, "abs"), 0);
  assert_int_equal (symlinkat ("../../outside", r, "rel"), 0);
  assert_int_equal (symlinkat ("/etc", r, "etclink"), 0);
  int fd = cimg_openat_in_root (r, "abs/outside/x", O_WRONLY | O_CREAT, 0644);
  assert_true (fd < 0); /* r has no "outside" directory: ENOENT, never the real one */
  fd = cimg_openat_in_root (r, "rel/x", O_WRONLY | O_CREAT | O_EXCL, 0644);
  assert_true (fd >= 0 || errno == ENOENT);
  if (fd >= 0)
    close (fd);
  assert_int_equal (faccessat (root, "outside/x", F_OK, 0), -1);
  fd = cimg_openat_in_root (r, "etclink/passwd", O_WRONLY | O_CREAT | O_EXCL, 0644);
  assert_true (fd >= 0);
  close (fd);
  assert_int_equal (faccessat (r, "etc/passwd", F_OK, 0), 0);
  fd = cimg_openat_in_root (r, "../../../etc/passwd", O_RDONLY, 0);
  assert_true (fd >= 0);
  struct stat a, b;
  fstat (fd, &a);
  fstatat (r, "etc/passwd", &b, 0);
  assert_int_equal (a.st_ino, b.st_ino);
  close (fd);

  /* Atomic writes and bounded reads. */
  assert_int_equal (cimg_write_file_atomic_at (root, "f.json", "{\"a\":1}", 7, 0644, &err), 0);
  char *buf = NULL;
  size_t len = 0;
  assert_int_equal (cimg_read_file_at (root, "f.json", 100, &buf, &len, &err), 0);
  assert_int_equal (len, 7);
  free (buf);
  assert_int_equal (cimg_read_file_at (root, "f.json", 3, &buf, &len, &err), -1);
  assert_non_null (strstr (err.msg, "over the limit"));
  cimg_error_clear (&err);
  json_t *j = cimg_json_load_at (root, "f.json", 100, &err);
  assert_non_null (j);
  assert_int_equal (cimg_json_int (j, "a"), 1);
  json_decref (j);

  close (r);
  assert_int_equal (cimg_rm_rf_at (root, "r", &err), 0);
  assert_int_equal (faccessat (root, "r", F_OK, AT_SYMLINK_NOFOLLOW), -1);
  assert_int_equal (faccessat (root, "outside", F_OK, 0), 0);
  close (root);
  assert_int_equal (cimg_rm_rf_at (AT_FDCWD, tmpdir, &err), 0);
}

static void
test_open_in_root (void **state)
{
  (void)state;
  open_in_root ();
}

static void
test_open_in_root_fallback (void **state)
{
  (void)state;
  /* The userspace walk must keep the same promises as openat2 RESOLVE_IN_ROOT. */
  cimg_openat2_disable ();
  open_in_root ();
}

static void
test_json_helpers (void **state)
{
  (void)state;
  /* get-or-create: an existing object is kept, a value of another type is replaced. */
  cleanup_json json_t *o = json_pack ("{s:{s:i}, s:s}", "Labels", "a", 1, "Volumes", "x");
  json_t *labels = cimg_json_object_field (o, "Labels");
  assert_ptr_equal (labels, json_object_get (o, "Labels"));
  assert_int_equal (json_object_size (labels), 1);
  json_t *vols = cimg_json_object_field (o, "Volumes");
  assert_true (json_is_object (vols));
  assert_int_equal (json_object_size (vols), 0);
  assert_ptr_equal (vols, json_object_get (o, "Volumes"));
  json_t *ports = cimg_json_object_field (o, "ExposedPorts");
  assert_ptr_equal (ports, json_object_get (o, "ExposedPorts"));

  /* strv ↔ array, both ways; non-strings are skipped, NULL gives an empty array. */
  char *const v[] = { (char *)"/bin/sh", (char *)"-c", (char *)"echo hi", NULL };
  cleanup_json json_t *a = cimg_json_from_strv (v);
  assert_int_equal (json_array_size (a), 3);
  assert_string_equal (json_string_value (json_array_get (a, 2)), "echo hi");
  json_array_append_new (a, json_integer (7));
  cleanup_strv char **back = cimg_json_to_strv (a);
  assert_int_equal (cimg_strv_len (back), 3);
  assert_string_equal (back[0], "/bin/sh");
  assert_string_equal (back[2], "echo hi");
  cleanup_json json_t *empty = cimg_json_from_strv (NULL);
  assert_int_equal (json_array_size (empty), 0);
  cleanup_strv char **none = cimg_json_to_strv (o);
  assert_non_null (none);
  assert_null (none[0]);

  /* Port keys as EXPOSE takes them. */
  static const struct
  {
    const char *in, *out;
  } ports_cases[] = {
    { "80", "80/tcp" },     { "53/udp", "53/udp" },   { "8000-8010/TCP", "8000-8010/tcp" },
    { "9/Sctp", "9/sctp" }, { "65535", "65535/tcp" }, { "", NULL },
    { "http", NULL },       { "80/icmp", NULL },      { "123456", NULL },
    { "80-", NULL },        { "80/", NULL },          { "80:81", NULL },
  };
  for (size_t i = 0; i < ARRAY_SIZE (ports_cases); i++)
    {
      cleanup_free char *k = cimg_json_port_key (ports_cases[i].in);
      if (ports_cases[i].out == NULL)
        {
          if (k != NULL)
            fail_msg ("port \"%s\" gave \"%s\"", ports_cases[i].in, k);
        }
      else if (k == NULL || strcmp (k, ports_cases[i].out) != 0)
        fail_msg ("port \"%s\" gave \"%s\", want \"%s\"", ports_cases[i].in, k ? k : "(null)",
                  ports_cases[i].out);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_error_chain),
    cmocka_unit_test (test_sha256),
    cmocka_unit_test (test_human),
    cmocka_unit_test (test_open_in_root),
    cmocka_unit_test (test_open_in_root_fallback),
    cmocka_unit_test (test_json_helpers),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
