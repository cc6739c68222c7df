#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "build/build.h"

struct ignore_case
{
  const char *ignore; /* the .dockerignore text */
  const char *path;
  bool excluded;
};

/* Expected values follow moby/patternmatcher (MatchesOrParentMatches) on Linux. */
static const struct ignore_case cases[] = {
  /* '*' stays inside one path component; a parent that matches excludes what is below it. */
  { "*.go", "main.go", true },
  { "*.go", "dir/main.go", false },
  { "*", "anything", true },
  { "*", "a/b/c", true },
  { "a*b", "ab", true },
  { "a*b", "axxb", true },
  { "a*b", "a/b", false },
  { "*/tmp", "x/tmp", true },
  { "*/tmp", "x/y/tmp", false },
  { "*/tmp", "x/tmp/z", true },
  /* '?' is one character, never '/', counted in runes. */
  { "?.txt", "a.txt", true },
  { "?.txt", "ab.txt", false },
  { "tmp?", "tmp/x", false },
  { "?", "é", true },
  { "é?", "éa", true },
  /* Classes: ranges, '^' negates, '!' does not (it is Go regexp syntax, not a shell's). */
  { "[a-c].txt", "b.txt", true },
  { "[a-c].txt", "d.txt", false },
  { "[^a].txt", "b.txt", true },
  { "[^a].txt", "a.txt", false },
  { "[!a].txt", "!.txt", true },
  { "[!a].txt", "a.txt", true },
  { "[!a].txt", "b.txt", false },
  { "[a-z][0-9]", "x1", true },
  { "[a-z][0-9]", "xx", false },
  { "*.[ch]", "x.c", true },
  { "*.[ch]", "x.o", false },
  { "[\\]]", "]", true },
  /* '\' escapes. */
  { "\\*.txt", "*.txt", true },
  { "\\*.txt", "a.txt", false },
  { "a\\?b", "a?b", true },
  { "a\\?b", "axb", false },
  { "\\[x\\]", "[x]", true },
  /* Regexp characters are literal. */
  { "a.b", "a.b", true },
  { "a.b", "axb", false },
  { "(x)+", "(x)+", true },
  { "x$", "x$", true },
  /* '**'. */
  { "**", "x/y/z", true },
  { "**/", "x/y", true },
  { "**/foo", "foo", true },
  { "**/foo", "a/b/foo", true },
  { "**/foo", "a/foo/bar", true },
  { "**/foo", "afoo", false },
  { "**foo", "xfoo", true }, /* patternmatcher's suffix shortcut */
  { "**/*.log", "x.log", true },
  { "**/*.log", "a/b/x.log", true },
  { "**/*.log", "a/b/x.txt", false },
  { "**/.git", ".git/config", true },
  { "foo/**", "foo/x", true },
  { "foo/**", "foo/x/y", true },
  { "foo/**", "foo", false },
  { "foo/**", "foobar", false },
  { "foo/**/bar", "foo/bar", true },
  { "foo/**/bar", "foo/a/b/bar", true },
  { "foo/**/bar", "foo/a/bar/c", true },
  { "foo/**/bar", "fooxbar", false },
  { "a/**/", "a/x", true },
  /* Exceptions and order: the last matching line wins. */
  { "*.md\n!README.md", "README.md", false },
  { "*.md\n!README.md", "a.md", true },
  { "!README.md\n*.md", "README.md", true },
  { "docs\n!docs/keep.md", "docs/keep.md", false },
  { "docs\n!docs/keep.md", "docs/other.md", true },
  { "docs\n!docs/keep.md", "docs", true },
  { "docs/*\n!docs/keep", "docs/keep/x", false },
  { "dir/file\n!dir", "dir/file", false },
  { "*\n!keep\n!keep/**", "keep/a", false },
  { "*\n!keep\n!keep/**", "other", true },
  { "*\n!keep\n*", "keep", true },
  /* Cleaning: leading '/', './', '..', trailing '/', blanks; comments only at column 0. */
  { "/abs/file", "abs/file", true },
  { "./rel/file", "rel/file", true },
  { "a/../b", "b", true },
  { "a/../b", "a", false },
  { "dir/", "dir/x", true },
  { "  spaced  \t", "spaced", true },
  { "# comment\nx", "# comment", false },
  { "# comment\nx", "x", true },
  { " #notcomment", "#notcomment", true },
  { "\n\n  \nx\n", "x", true },
  { "x\r\n", "x", true },
  { "\xEF\xBB\xBF"
    "bom",
    "bom", true },
  { "node_modules", "a/node_modules", false },
  { "node_modules", "node_modules/x/y", true },
  /* Paths are cleaned too; "." is never excluded. */
  { "*", ".", false },
  { "*", "./a", true },
  { "a", "/a", true },
  { "a/b", "a//b/", true },
  /* Many stars and no match: must stay fast. */
  { "*a*a*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    false },
  { "**/a**a**a**a**a**a**a**a**b", "a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/c",
    false },
};

static void
test_table (void **state)
{
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_dockerignore *di
          = cimg_dockerignore_parse (cases[i].ignore, strlen (cases[i].ignore), &err);
      if (di == NULL)
        {
          print_error ("case %zu: patterns \"%s\": %s\n", i, cases[i].ignore, err.msg);
          cimg_error_clear (&err);
          failed++;
          continue;
        }
      bool got = cimg_dockerignore_excluded (di, cases[i].path);
      if (got != cases[i].excluded)
        {
          print_error ("case %zu: patterns \"%s\", path \"%s\": expected %s, got %s\n", i,
                       cases[i].ignore, cases[i].path, cases[i].excluded ? "excluded" : "kept",
                       got ? "excluded" : "kept");
          failed++;
        }
      cimg_dockerignore_free (di);
    }
  print_message ("%zu .dockerignore cases\n", ARRAY_SIZE (cases));
  assert_true (ARRAY_SIZE (cases) >= 40);
  assert_int_equal (failed, 0);
}

static void
test_bad_patterns (void **state)
{
  (void)state;
  static const char *const bad[] = { "[", "a[b", "a\\", "!", "[]", "[a-]", "x/[z-", "!  " };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_dockerignore *di = cimg_dockerignore_parse (bad[i], strlen (bad[i]), &err);
      if (di != NULL)
        print_error ("pattern \"%s\" was accepted\n", bad[i]);
      assert_null (di);
      assert_non_null (err.msg);
      cimg_error_clear (&err);
    }
  cimg_error_t err = { 0 };
  struct cimg_dockerignore *di = cimg_dockerignore_parse ("ok\n[x", 5, &err);
  assert_null (di);
  assert_non_null (strstr (err.msg, "syntax error in pattern"));
  cimg_error_clear (&err);
  di = cimg_dockerignore_parse ("!", 1, &err);
  assert_null (di);
  assert_string_equal (err.msg, "illegal exclusion pattern: \"!\"");
  cimg_error_clear (&err);
}

static void
test_patterns_cleaned (void **state)
{
  (void)state;
  const char *text = "# c\n/a/b/\n! ./x/../y\n  z  \n";
  cimg_error_t err = { 0 };
  cleanup_dockerignore struct cimg_dockerignore *di
      = cimg_dockerignore_parse (text, strlen (text), &err);
  assert_non_null (di);
  char *const *p = cimg_dockerignore_patterns (di);
  assert_int_equal (cimg_strv_len (p), 3);
  assert_string_equal (p[0], "a/b");
  assert_string_equal (p[1], "!y");
  assert_string_equal (p[2], "z");
}

struct walk_case
{
  const char *ignore;
  const char *dir;
  bool walk;
};

static void
test_must_walk (void **state)
{
  (void)state;
  static const struct walk_case wc[] = {
    { "docs\n!docs/keep.md", "docs", true },
    { "docs\n!docs/keep.md", "other", false },
    { "*", "a", false }, /* no exceptions: an excluded directory is never entered */
    { "*\n!**/keep", "a/b", true },
    { "*\n!*/keep", "a", true },
    { "*\n!*/keep", "a/b", false },
    { "vendor\n!vendor/a/b", "vendor/a", true },
    { "vendor\n!vendor/a/b", "vendor/c", false },
    { "vendor\n![a-c]*/x", "vendor", false },
    { "vendor\n!v[a-z]ndor/x", "vendor", true },
  };
  int failed = 0;
  for (size_t i = 0; i < ARRAY_SIZE (wc); i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_dockerignore *di
          = cimg_dockerignore_parse (wc[i].ignore, strlen (wc[i].ignore), &err);
      assert_non_null (di);
      bool got = cimg_dockerignore_must_walk (di, wc[i].dir);
      if (got != wc[i].walk)
        {
          print_error ("walk case %zu: \"%s\" dir %s: expected %d\n", i, wc[i].ignore, wc[i].dir,
                       wc[i].walk);
          failed++;
        }
      cimg_dockerignore_free (di);
    }
  assert_int_equal (failed, 0);
}

static void
test_always_kept (void **state)
{
  (void)state;
  assert_true (cimg_dockerignore_always_kept ("Dockerfile", NULL));
  assert_true (cimg_dockerignore_always_kept ("./Dockerfile", NULL));
  assert_true (cimg_dockerignore_always_kept (".dockerignore", "x/Dockerfile"));
  assert_false (cimg_dockerignore_always_kept ("sub/Dockerfile", NULL));
  assert_true (cimg_dockerignore_always_kept ("build/Dockerfile.dev", "./build/Dockerfile.dev"));
  assert_false (cimg_dockerignore_always_kept ("Dockerfile", "build/Dockerfile.dev"));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_table),
    cmocka_unit_test (test_bad_patterns),
    cmocka_unit_test (test_patterns_cleaned),
    cmocka_unit_test (test_must_walk),
    cmocka_unit_test (test_always_kept),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
