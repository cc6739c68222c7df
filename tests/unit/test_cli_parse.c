/* cli/container-common.c: flag values in seconds, and the lookup of the one container a
   command is about (exit codes, the message the user sees). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "store/container.h"

/* What a call printed on stderr: fd 2 goes to a temp file between capture_start and
   capture_end. */
static int saved_stderr = -1;
static FILE *capture;

static void
capture_start (void)
{
  fflush (stderr);
  capture = tmpfile ();
  assert_non_null (capture);
  saved_stderr = dup (2);
  assert_true (saved_stderr >= 0);
  assert_true (dup2 (fileno (capture), 2) == 2);
}

static char *
capture_end (void)
{
  fflush (stderr);
  dup2 (saved_stderr, 2);
  close (saved_stderr);
  saved_stderr = -1;
  long n = ftell (capture);
  char *out = xzalloc ((size_t)(n > 0 ? n : 0) + 1);
  rewind (capture);
  if (n > 0 && fread (out, 1, (size_t)n, capture) != (size_t)n)
    fail_msg ("short read of the captured stderr");
  fclose (capture);
  capture = NULL;
  return out;
}

static struct cli cli = { .root = NULL, .prog = "cimg stop" };

/* The value parsed, or INT64_MIN when the call failed with the usage exit code; *msg gets what
   was printed (NULL when nothing was). */
static int64_t
seconds (const char *value, bool forever, char **msg)
{
  int64_t v = 12345;
  capture_start ();
  int rc = cli_parse_seconds (&cli, "-t, --time", value, forever, &v);
  char *printed = capture_end ();
  if (rc == 0)
    {
      assert_string_equal (printed, "");
      free (printed);
      printed = NULL;
    }
  else
    assert_int_equal (rc, EXIT_USAGE);
  if (msg)
    *msg = printed;
  else
    free (printed);
  return rc == 0 ? v : INT64_MIN;
}

static void
test_seconds_valid (void **state)
{
  (void)state;
  assert_int_equal (seconds ("0", false, NULL), 0);
  assert_int_equal (seconds ("10", false, NULL), 10);
  assert_int_equal (seconds ("+7", false, NULL), 7);
  assert_int_equal (seconds ("007", false, NULL), 7);
  assert_int_equal (seconds ("2147483647", false, NULL), 2147483647);
  assert_int_equal (seconds ("-1", true, NULL), -1);
}

static void
test_seconds_invalid (void **state)
{
  (void)state;
  static const char *const bad[] = { "", "abc", "1s", "1.5", " 5", "5 ", "-", "+", "0x10", "--1" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      cleanup_free char *msg = NULL;
      if (seconds (bad[i], true, &msg) != INT64_MIN)
        fail_msg ("\"%s\" was taken as a number of seconds", bad[i]);
      cleanup_free char *want
          = xasprintf ("invalid argument \"%s\" for \"-t, --time\" flag", bad[i]);
      if (strstr (msg, want) == NULL)
        fail_msg ("for \"%s\": %s", bad[i], msg);
      assert_non_null (strstr (msg, "See 'cimg stop --help'."));
    }
}

static void
test_seconds_range (void **state)
{
  (void)state;
  cleanup_free char *msg = NULL;
  assert_true (seconds ("-1", false, &msg) == INT64_MIN);
  assert_non_null (strstr (msg, "invalid argument \"-1\" for \"-t, --time\" flag"));
  assert_non_null (strstr (msg, "0 or more"));
  free (msg);
  /* -1 is the one negative value with a meaning. */
  assert_true (seconds ("-2", true, &msg) == INT64_MIN);
  assert_non_null (strstr (msg, "\"-2\""));
  free (msg);
  assert_true (seconds ("2147483648", false, &msg) == INT64_MIN);
  assert_non_null (strstr (msg, "out of range"));
  free (msg);
  assert_true (seconds ("99999999999999999999999", true, &msg) == INT64_MIN);
  assert_non_null (strstr (msg, "out of range"));
}

/* cli_one_container on a store of its own: found by name and by ID prefix; an unknown name
   and an ambiguous prefix are errors that say so, with nothing handed back. */
static void
test_one_container (void **state)
{
  (void)state;
  char dir[] = "/tmp/cimg-test-cli-XXXXXX";
  assert_non_null (mkdtemp (dir));
  cleanup_free char *root = xasprintf ("%s/root", dir);
  struct cli c = { .root = root, .prog = "cimg diff" };
  cimg_error_t err = { 0 };
  {
    cleanup_store struct cimg_store *s = cimg_store_open (root, &err);
    assert_non_null (s);
    cleanup_json json_t *cfg = json_pack ("{s:s, s:[]}", "Path", "true", "Args");
    static const char *const ids[]
        = { "abc0000000000000000000000000000000000000000000000000000000000001",
            "abc0000000000000000000000000000000000000000000000000000000000002" };
    for (size_t i = 0; i < 2; i++)
      {
        struct cimg_container *k = cimg_container_create (s, ids[i], i ? NULL : "web", cfg, &err);
        if (k == NULL)
          fail_msg ("create: %s", err.msg);
        cimg_container_free (k);
      }
  }
  struct cimg_store *s = NULL;
  struct cimg_container *ctr = NULL;
  capture_start ();
  int rc = cli_one_container (&c, "web", 0, &s, &ctr);
  cleanup_free char *none = capture_end ();
  assert_int_equal (rc, 0);
  assert_string_equal (none, "");
  assert_non_null (s);
  assert_string_equal (ctr->id, "abc0000000000000000000000000000000000000000000000000000000000001");
  cimg_container_free (ctr);
  cimg_store_close (s);

  rc = cli_one_container (&c, "abc0000000000000000000000000000000000000000000000000000000000002", 0,
                          &s, &ctr);
  assert_int_equal (rc, 0);
  cimg_container_free (ctr);
  cimg_store_close (s);

  static const char *const wrong[] = { "nosuch", "abc" };
  for (size_t i = 0; i < 2; i++)
    {
      s = (struct cimg_store *)&c; /* must be reset */
      ctr = (struct cimg_container *)&c;
      capture_start ();
      rc = cli_one_container (&c, wrong[i], 0, &s, &ctr);
      cleanup_free char *msg = capture_end ();
      assert_int_equal (rc, EXIT_FAIL);
      assert_null (s);
      assert_null (ctr);
      assert_true (strncmp (msg, "cimg: ", 6) == 0);
      assert_non_null (strstr (msg, wrong[i]));
      assert_non_null (strstr (msg, i == 0 ? "No such container" : "multiple IDs"));
    }
  cimg_rm_rf_at (AT_FDCWD, dir, &err);
  cimg_error_clear (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_seconds_valid),
    cmocka_unit_test (test_seconds_invalid),
    cmocka_unit_test (test_seconds_range),
    cmocka_unit_test (test_one_container),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
