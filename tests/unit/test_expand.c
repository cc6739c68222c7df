#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "build/build.h"

/* buildkit's own conformance data (../shared/testdata/buildkit-shell, see its README). */
static char *
testdata_path (const char *name)
{
  const char *dir = getenv ("CIMG_TESTDATA");
  if (dir == NULL)
    dir = "../shared/testdata";
  return xasprintf ("%s/buildkit-shell/%s", dir, name);
}

static FILE *
open_testdata (const char *name)
{
  cleanup_free char *path = testdata_path (name);
  FILE *f = fopen (path, "r");
  if (f == NULL)
    fail_msg ("%s: %s (buildkit's conformance data, ../shared/testdata beside the repository; "
              "CIMG_TESTDATA names its directory)",
              path, strerror (errno));
  return f;
}

static char *
trim (char *s)
{
  while (*s == ' ' || *s == '\t')
    s++;
  size_t n = strlen (s);
  while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
    s[--n] = '\0';
  return s;
}

static void
test_env_var_file (void **state)
{
  (void)state;
  FILE *f = open_testdata ("envVarTest");
  char *env[] = { "PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL=", NULL };
  char line[4096];
  int run = 0, failed = 0, lineno = 0;
  while (fgets (line, sizeof line, f))
    {
      lineno++;
      char *l = trim (line);
      if (*l == '\0' || *l == '#')
        continue;
      char *p1 = strchr (l, '|');
      assert_non_null (p1);
      char *p2 = strchr (p1 + 1, '|');
      assert_non_null (p2);
      *p1 = *p2 = '\0';
      char *platform = trim (l), *input = trim (p1 + 1), *expected = trim (p2 + 1);
      if (strcmp (platform, "A") != 0 && strcmp (platform, "U") != 0)
        continue;
      run++;
      cimg_error_t err = { 0 };
      char *got = NULL;
      int r = cimg_build_expand_word (input, '\\', env, &got, &err);
      if (strcmp (expected, "error") == 0)
        {
          if (r == 0)
            {
              print_error ("envVarTest:%d: input %s: expected an error, got \"%s\"\n", lineno,
                           input, got);
              failed++;
            }
        }
      else if (r < 0)
        {
          print_error ("envVarTest:%d: input %s: expected \"%s\", got error: %s\n", lineno, input,
                       expected, err.msg);
          failed++;
        }
      else if (strcmp (got, expected) != 0)
        {
          print_error ("envVarTest:%d: input %s: expected \"%s\", got \"%s\"\n", lineno, input,
                       expected, got);
          failed++;
        }
      free (got);
      cimg_error_clear (&err);
    }
  fclose (f);
  print_message ("envVarTest: %d A/U cases run, %d failed\n", run, failed);
  assert_true (run >= 200);
  assert_int_equal (failed, 0);
}

static void
test_words_file (void **state)
{
  (void)state;
  FILE *f = open_testdata ("wordsTest");
  cleanup_strv char **env = NULL;
  char line[4096];
  int run = 0, failed = 0, lineno = 0;
  while (fgets (line, sizeof line, f))
    {
      lineno++;
      size_t n = strlen (line);
      if (n > 0 && line[n - 1] == '\n')
        line[--n] = '\0';
      char *l = line;
      while (*l == ' ' || *l == '\t')
        l++;
      if (*l == '\0' || *l == '#')
        continue;
      if (strncmp (l, "ENV ", 4) == 0)
        {
          /* Trailing spaces of the value matter here. */
          char *kv = l + 4;
          while (*kv == ' ' || *kv == '\t')
            kv++;
          cimg_strv_append (&env, kv);
          continue;
        }
      char *bar = strchr (l, '|');
      assert_non_null (bar);
      *bar = '\0';
      char *input = trim (l);
      char *expected = bar + 1;
      while (*expected == ' ' || *expected == '\t')
        expected++;
      run++;
      cimg_error_t err = { 0 };
      char **got = NULL;
      int r = cimg_build_expand_words (input, '\\', env, &got, &err);
      cleanup_free char *joined = NULL;
      if (r == 0)
        {
          struct
          {
            char *p;
            size_t n;
          } b = { xstrdup (""), 0 };
          for (size_t i = 0; got[i]; i++)
            {
              char *nb = xasprintf ("%s%s%s", b.p, i ? "," : "", got[i]);
              free (b.p);
              b.p = nb;
            }
          joined = b.p;
        }
      if (strcmp (expected, "error") == 0)
        {
          if (r == 0)
            {
              print_error ("wordsTest:%d: input %s: expected an error, got [%s]\n", lineno, input,
                           joined);
              failed++;
            }
        }
      else if (r < 0)
        {
          print_error ("wordsTest:%d: input %s: expected [%s], got error: %s\n", lineno, input,
                       expected, err.msg);
          failed++;
        }
      else if (strcmp (joined, expected) != 0)
        {
          print_error ("wordsTest:%d: input %s: expected [%s], got [%s]\n", lineno, input, expected,
                       joined);
          failed++;
        }
      cimg_strv_free (got);
      cimg_error_clear (&err);
    }
  fclose (f);
  print_message ("wordsTest: %d cases run, %d failed\n", run, failed);
  assert_true (run >= 24);
  assert_int_equal (failed, 0);
}

struct own_case
{
  int escape;
  const char *input;
  const char *expected; /* NULL: must fail */
};

static void
test_own_cases (void **state)
{
  (void)state;
  char *env[] = { "F=archive.tar.gz",
                  "P=/usr/local/bin/tool",
                  "E=",
                  "D=a.b.c.d",
                  "U=안녕.한국어",
                  "M=line1\nline2",
                  "L=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                  NULL };
  static const struct own_case cases[] = {
    { '\\', "${F#*.}", "tar.gz" },
    { '\\', "${F##*.}", "gz" },
    { '\\', "${F%.*}", "archive.tar" },
    { '\\', "${F%%.*}", "archive" },
    { '\\', "${P##*/}", "tool" },
    { '\\', "${P%/*}", "/usr/local/bin" },
    { '\\', "${P#/usr}", "/local/bin/tool" },
    { '\\', "${P#nomatch}", "/usr/local/bin/tool" },
    { '\\', "${D#?.}", "b.c.d" },
    { '\\', "${D%.?}", "a.b.c" },
    { '\\', "${U#*.}", "한국어" },
    { '\\', "${U%?어}", "안녕.한" },
    { '\\', "${UNSET#x}", "" },
    { '\\', "${F#\\*}", "archive.tar.gz" },
    { '\\', "${F%\\}", NULL },
    { '\\', "${F#\\a}", NULL },
    { '\\', "${M#*1}", "\nline2" },
    { '\\', "${M##*}", "\nline2" }, /* '*' stops at a newline, as Go's regexp '.' */
    { '\\', "${F/tar/zip}", "archive.zip.gz" },
    { '\\', "${D//./-}", "a-b-c-d" },
    { '\\', "${D/.}", NULL },
    { '\\', "${E:?must be set}", NULL },
    { '\\', "${E?}", "" },
    { '\\', "${F:#x}", "archive.tar.gz" },
    { '\\', "${F:=x}", NULL },
    /* Many stars and no match: must stay fast (failed positions are remembered). */
    { '\\', "${L#*a*a*a*a*a*a*a*a*a*a*b}",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
    { '\\', "${L%%*a*a*a*a*a*a*a*a*a*a*b}",
      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" },
    /* The backtick escape (# escape=`). */
    { '`', "a`$F", "a$F" },
    { '`', "C:\\dir\\$F", "C:\\dir\\archive.tar.gz" },
    { '`', "\"a`\"b\"", "a\"b" },
    { '`', "\"a\\\"b", "a\\b" },
    { '`', "'x`y'", "x`y" },
    { '`', "end`", "end" },
    { '`', "``", "`" },
    { '\\', "a\\ b", "a b" },
  };
  int failed = 0;
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cimg_error_t err = { 0 };
      char *got = NULL;
      int r = cimg_build_expand_word (cases[i].input, cases[i].escape, env, &got, &err);
      if (cases[i].expected == NULL ? r == 0 : r < 0 || strcmp (got, cases[i].expected) != 0)
        {
          print_error ("case %zu (escape %c) %s: expected %s, got %s\n", i, cases[i].escape,
                       cases[i].input, cases[i].expected ? cases[i].expected : "an error",
                       r == 0 ? got : err.msg);
          failed++;
        }
      free (got);
      cimg_error_clear (&err);
    }
  assert_int_equal (failed, 0);
}

static void
test_error_message (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  char *got = NULL;
  assert_int_equal (cimg_build_expand_word ("x${A:?is required}", '\\', NULL, &got, &err), -1);
  assert_string_equal (err.msg, "failed to process \"x${A:?is required}\": A: is required");
  cimg_error_clear (&err);
  assert_int_equal (cimg_build_expand_word ("${A", '\\', NULL, &got, &err), -1);
  assert_string_equal (err.msg, "failed to process \"${A\": syntax error: missing '}'");
  cimg_error_clear (&err);
  assert_int_equal (cimg_build_expand_word ("'a", '\\', NULL, &got, &err), -1);
  assert_non_null (strstr (err.msg, "matching single-quote"));
  cimg_error_clear (&err);
  char *env[] = { "A=1", "A=2", "B", NULL };
  assert_int_equal (cimg_build_expand_word ("$A${B-unset}", '\\', env, &got, &err), 0);
  assert_string_equal (got, "2"); /* the later A wins; B is set (empty) */
  free (got);
  char **words = NULL;
  assert_int_equal (cimg_build_expand_words ("  ", '\\', env, &words, &err), 0);
  assert_non_null (words);
  assert_null (words[0]);
  cimg_strv_free (words);
}

/* The pattern forms against Go's regexp, which buildkit turns the patterns into: the results in
   tests/unit/data/expand-patterns.jsonl were made by gen-expand-patterns.go beside it. */
static void
test_patterns_as_go (void **state)
{
  (void)state;
  const char *src = getenv ("CIMG_SRC");
  cleanup_free char *path = xasprintf ("%s/tests/unit/data/expand-patterns.jsonl", src ? src : ".");
  FILE *f = fopen (path, "r");
  assert_non_null (f);
  char line[4096];
  int run = 0, failed = 0;
  while (fgets (line, sizeof line, f))
    {
      json_t *c = json_loads (line, 0, NULL);
      assert_non_null (c);
      const char *word = json_string_value (json_object_get (c, "word"));
      const char *value = json_string_value (json_object_get (c, "value"));
      const char *want = json_string_value (json_object_get (c, "want"));
      assert_true (word && value && want);
      cleanup_free char *a = xasprintf ("A=%s", value);
      char *env[] = { a, NULL };
      cimg_error_t err = { 0 };
      char *got = NULL;
      run++;
      if (cimg_build_expand_word (word, '\\', env, &got, &err) < 0)
        {
          print_message ("%s with A=%s: %s\n", word, value, err.msg);
          failed++;
        }
      else if (strcmp (got, want) != 0)
        {
          print_message ("%s with A=%s: got \"%s\", Go gives \"%s\"\n", word, value, got, want);
          failed++;
        }
      free (got);
      cimg_error_clear (&err);
      json_decref (c);
    }
  fclose (f);
  assert_int_equal (run, 3000);
  assert_int_equal (failed, 0);
}

/* Repeated expansions of a long value are refused past 1 MiB (docs/build.md), not expanded
   into gigabytes; just under the cap still expands. */
static void
test_expansion_cap (void **state)
{
  (void)state;
  size_t half = 512 * 1024;
  char *a = xmalloc (half + 3);
  memcpy (a, "A=", 2);
  memset (a + 2, 'x', half);
  a[half + 2] = '\0';
  char *env[] = { a, NULL };
  cimg_error_t err = { 0 };
  char *got = NULL;
  assert_int_equal (cimg_build_expand_word ("$A$A", '\\', env, &got, &err), 0);
  assert_int_equal (strlen (got), 2 * half);
  free (got);
  assert_int_equal (cimg_build_expand_word ("$A$A$A", '\\', env, &got, &err), -1);
  assert_non_null (strstr (err.msg, "the expansion is longer than 1048576 bytes"));
  cimg_error_clear (&err);
  char **words = NULL;
  assert_int_equal (cimg_build_expand_words ("$A $A $A", '\\', env, &words, &err), -1);
  assert_non_null (strstr (err.msg, "longer than"));
  cimg_error_clear (&err);
  free (a);
  /* A replacement that expands the value is refused while it is being built: a value of 2 000
     bytes with itself between each of its runes would be 4 MB. */
  char b[2003] = "B=";
  memset (b + 2, 'y', 2000);
  b[2002] = '\0';
  char *env2[] = { b, NULL };
  assert_int_equal (cimg_build_expand_word ("${B//?/$B}", '\\', env2, &got, &err), -1);
  assert_non_null (strstr (err.msg, "the expansion is longer than 1048576 bytes"));
  cimg_error_clear (&err);
  b[502] = '\0';
  assert_int_equal (cimg_build_expand_word ("${B//?/$B}", '\\', env2, &got, &err), 0);
  assert_int_equal (strlen (got), 500 * 500);
  free (got);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_env_var_file),   cmocka_unit_test (test_words_file),
    cmocka_unit_test (test_own_cases),      cmocka_unit_test (test_error_message),
    cmocka_unit_test (test_patterns_as_go), cmocka_unit_test (test_expansion_cap),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
