/* Unit tests for image references (store/reference.c), against the rules of Docker's
   reference package. Case tables first, then the behaviours a table cannot show. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "store/store.h"

#define HEX64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX64_UPPER "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"
#define HEX32 "0123456789abcdef0123456789abcdef"
#define DGST "sha256:" HEX64

#define A10 "aaaaaaaaaa"
#define A100 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10
#define A200 A100 A100
/* "docker.io/library/" is 18 characters, "example.com/" 12: these bring names to exactly the
   255-character limit, and the _OVER ones one past it. */
#define A237 A200 A10 A10 A10 "aaaaaaa"
#define A238 A237 "a"
#define A243 A200 A10 A10 A10 A10 "aaa"
#define A244 A243 "a"
#define T10 "t_T-0.9tTt"
#define TAG128 T10 T10 T10 T10 T10 T10 T10 T10 T10 T10 T10 T10 "tttttttt"
#define TAG129 TAG128 "t"

struct valid_case
{
  const char *in;
  const char *domain;
  const char *path;
  const char *tag;    /* NULL: none */
  const char *digest; /* NULL: none */
  const char *full;
  const char *familiar;
};

static const struct valid_case valid_cases[] = {
  /* Docker Hub normalisation */
  { "ubuntu", "docker.io", "library/ubuntu", "latest", NULL, "docker.io/library/ubuntu:latest",
    "ubuntu:latest" },
  { "ubuntu:16.04", "docker.io", "library/ubuntu", "16.04", NULL, "docker.io/library/ubuntu:16.04",
    "ubuntu:16.04" },
  { "library/ubuntu", "docker.io", "library/ubuntu", "latest", NULL,
    "docker.io/library/ubuntu:latest", "ubuntu:latest" },
  { "docker.io/ubuntu", "docker.io", "library/ubuntu", "latest", NULL,
    "docker.io/library/ubuntu:latest", "ubuntu:latest" },
  { "docker.io/library/ubuntu:22.04", "docker.io", "library/ubuntu", "22.04", NULL,
    "docker.io/library/ubuntu:22.04", "ubuntu:22.04" },
  { "index.docker.io/library/ubuntu", "docker.io", "library/ubuntu", "latest", NULL,
    "docker.io/library/ubuntu:latest", "ubuntu:latest" },
  { "index.docker.io/ubuntu:x", "docker.io", "library/ubuntu", "x", NULL,
    "docker.io/library/ubuntu:x", "ubuntu:x" },
  { "user/app", "docker.io", "user/app", "latest", NULL, "docker.io/user/app:latest",
    "user/app:latest" },
  { "docker.io/user/app:v1", "docker.io", "user/app", "v1", NULL, "docker.io/user/app:v1",
    "user/app:v1" },
  /* "library/" is stripped only before a single component */
  { "library/a/b", "docker.io", "library/a/b", "latest", NULL, "docker.io/library/a/b:latest",
    "library/a/b:latest" },
  { "docker.io/library", "docker.io", "library/library", "latest", NULL,
    "docker.io/library/library:latest", "library:latest" },
  { "a/b/c/d/e", "docker.io", "a/b/c/d/e", "latest", NULL, "docker.io/a/b/c/d/e:latest",
    "a/b/c/d/e:latest" },
  { "0/1", "docker.io", "0/1", "latest", NULL, "docker.io/0/1:latest", "0/1:latest" },
  /* a bare "localhost" is a Hub name; "localhost/…" is a domain */
  { "localhost", "docker.io", "library/localhost", "latest", NULL,
    "docker.io/library/localhost:latest", "localhost:latest" },
  { "localhost/app", "localhost", "app", "latest", NULL, "localhost/app:latest",
    "localhost/app:latest" },
  { "localhost:5000/a/b:c", "localhost:5000", "a/b", "c", NULL, "localhost:5000/a/b:c",
    "localhost:5000/a/b:c" },
  { "127.0.0.1:5000/x", "127.0.0.1:5000", "x", "latest", NULL, "127.0.0.1:5000/x:latest",
    "127.0.0.1:5000/x:latest" },
  { "127.0.0.1/x", "127.0.0.1", "x", "latest", NULL, "127.0.0.1/x:latest", "127.0.0.1/x:latest" },
  { "1.2.3.4:0/x:1", "1.2.3.4:0", "x", "1", NULL, "1.2.3.4:0/x:1", "1.2.3.4:0/x:1" },
  { "[::1]:5000/x:1", "[::1]:5000", "x", "1", NULL, "[::1]:5000/x:1", "[::1]:5000/x:1" },
  { "[::1]/x", "[::1]", "x", "latest", NULL, "[::1]/x:latest", "[::1]/x:latest" },
  { "[2001:DB8::1]:443/ns/img", "[2001:DB8::1]:443", "ns/img", "latest", NULL,
    "[2001:DB8::1]:443/ns/img:latest", "[2001:DB8::1]:443/ns/img:latest" },
  { "registry.example.com/a/b/c", "registry.example.com", "a/b/c", "latest", NULL,
    "registry.example.com/a/b/c:latest", "registry.example.com/a/b/c:latest" },
  { "example.com/library/ubuntu", "example.com", "library/ubuntu", "latest", NULL,
    "example.com/library/ubuntu:latest", "example.com/library/ubuntu:latest" },
  { "example:5000/x", "example:5000", "x", "latest", NULL, "example:5000/x:latest",
    "example:5000/x:latest" },
  { "xn--bcher-kva.example/x", "xn--bcher-kva.example", "x", "latest", NULL,
    "xn--bcher-kva.example/x:latest", "xn--bcher-kva.example/x:latest" },
  { "a-1.b-2.c:65535/d:e", "a-1.b-2.c:65535", "d", "e", NULL, "a-1.b-2.c:65535/d:e",
    "a-1.b-2.c:65535/d:e" },
  /* upper case is allowed in domains, kept as given, and makes a first component a domain */
  { "Registry.Example.COM/a", "Registry.Example.COM", "a", "latest", NULL,
    "Registry.Example.COM/a:latest", "Registry.Example.COM/a:latest" },
  { "EXAMPLE:5000/a", "EXAMPLE:5000", "a", "latest", NULL, "EXAMPLE:5000/a:latest",
    "EXAMPLE:5000/a:latest" },
  { "Foo/bar", "Foo", "bar", "latest", NULL, "Foo/bar:latest", "Foo/bar:latest" },
  /* digests, with and without a tag */
  { "a.b/c@" DGST, "a.b", "c", NULL, DGST, "a.b/c@" DGST, "a.b/c@" DGST },
  { "x:tag@" DGST, "docker.io", "library/x", "tag", DGST, "docker.io/library/x:tag@" DGST,
    "x:tag@" DGST },
  { "ubuntu@" DGST, "docker.io", "library/ubuntu", NULL, DGST, "docker.io/library/ubuntu@" DGST,
    "ubuntu@" DGST },
  { "user/app:1.0@" DGST, "docker.io", "user/app", "1.0", DGST, "docker.io/user/app:1.0@" DGST,
    "user/app:1.0@" DGST },
  /* Docker reads a bare digest as name "sha256" with a tag */
  { "sha256:" HEX64, "docker.io", "library/sha256", HEX64, NULL, "docker.io/library/sha256:" HEX64,
    "sha256:" HEX64 },
  /* tags */
  { "a:1.2.3-rc_4", "docker.io", "library/a", "1.2.3-rc_4", NULL, "docker.io/library/a:1.2.3-rc_4",
    "a:1.2.3-rc_4" },
  { "a:_x", "docker.io", "library/a", "_x", NULL, "docker.io/library/a:_x", "a:_x" },
  { "a:X.Y-Z", "docker.io", "library/a", "X.Y-Z", NULL, "docker.io/library/a:X.Y-Z", "a:X.Y-Z" },
  { "a:" TAG128, "docker.io", "library/a", TAG128, NULL, "docker.io/library/a:" TAG128,
    "a:" TAG128 },
  /* path separators */
  { "a_b", "docker.io", "library/a_b", "latest", NULL, "docker.io/library/a_b:latest",
    "a_b:latest" },
  { "a__b", "docker.io", "library/a__b", "latest", NULL, "docker.io/library/a__b:latest",
    "a__b:latest" },
  { "a-b", "docker.io", "library/a-b", "latest", NULL, "docker.io/library/a-b:latest",
    "a-b:latest" },
  { "a--b", "docker.io", "library/a--b", "latest", NULL, "docker.io/library/a--b:latest",
    "a--b:latest" },
  { "a.b", "docker.io", "library/a.b", "latest", NULL, "docker.io/library/a.b:latest",
    "a.b:latest" },
  { "ns/a---b_c.d__e9", "docker.io", "ns/a---b_c.d__e9", "latest", NULL,
    "docker.io/ns/a---b_c.d__e9:latest", "ns/a---b_c.d__e9:latest" },
  /* the 255-character limit, at the limit */
  { A237, "docker.io", "library/" A237, "latest", NULL, "docker.io/library/" A237 ":latest",
    A237 ":latest" },
  { "example.com/" A243, "example.com", A243, "latest", NULL, "example.com/" A243 ":latest",
    "example.com/" A243 ":latest" },
};

struct invalid_case
{
  const char *in;
  const char *msg; /* a substring of the expected error */
};

static const struct invalid_case invalid_cases[] = {
  { "", "reference is empty" },
  { HEX64, "cannot be a 64-byte hexadecimal string" },
  { "Foo/Bar", "repository name must be lowercase" },
  { "Ubuntu", "repository name must be lowercase" },
  { "user/App:tag", "repository name must be lowercase" },
  { "a/B", "repository name must be lowercase" },
  /* an upper-case first component that is no domain either: Docker's case error */
  { "A_B/c", "repository name must be lowercase" },
  { "A_B/c@md5:" HEX32, "repository name must be lowercase" },
  /* …but only when lower case alone would make it valid; otherwise the other fault */
  { "FOO_BAR/-a", "invalid path component \"-a\"" },
  { "FOO_BAR/a:.x", "invalid tag \".x\"" },
  { "FOO_BAR/a@sha256:abc", "invalid digest" },
  /* Docker checks case up to the first ":", which takes in "@SHA256" */
  { "a@SHA256:" HEX64, "repository name must be lowercase" },
  { ":tag", "empty path component" },
  { "/a", "empty path component" },
  { "a/", "empty path component" },
  { "a//b", "empty path component" },
  { "example.com/", "empty path component" },
  { "-a", "invalid path component \"-a\"" },
  { "a-", "invalid path component \"a-\"" },
  { "a..b", "invalid path component \"a..b\"" },
  { "a___b", "invalid path component \"a___b\"" },
  { "a._b", "invalid path component \"a._b\"" },
  { "user/_a", "invalid path component \"_a\"" },
  { "a b", "invalid path component \"a b\"" },
  { " a", "invalid path component \" a\"" },
  { "a:", "tag is empty" },
  { "a:" TAG129, "tag is longer than 128 characters" },
  { "a:.x", "invalid tag \".x\"" },
  { "a:-x", "invalid tag \"-x\"" },
  { "a:b:c", "invalid tag \"b:c\"" },
  { "a/b:c/d", "invalid tag \"c/d\"" },
  { "a@", "digest is empty" },
  { "a@sha256:short", "invalid digest \"sha256:short\"" },
  { "a@sha256:" HEX64 "0", "invalid digest" },
  { "a@sha256:" HEX64_UPPER, "64 lower-case hex digits" },
  { "a@sha256", "invalid digest \"sha256\"" },
  { "a@:" HEX64, "invalid digest" },
  { "a@" DGST "@x", "invalid digest" },
  { "a@md5:" HEX32, "unsupported digest algorithm \"md5\": only sha256 is supported" },
  { "a@sha512:" HEX64 HEX64, "only sha256 is supported" },
  { "x:tag@sha384:" HEX64 HEX32, "only sha256 is supported" },
  { A238, "must not be more than 255 characters (it has 256)" },
  { "example.com/" A244, "must not be more than 255 characters" },
  { "http://x/y", "no URL scheme" },
  { "example.com:/x", "invalid domain \"example.com:\"" },
  { "example.com:port/x", "invalid domain \"example.com:port\"" },
  { "a:b/c", "invalid domain \"a:b\"" },
  { "-example.com/x", "invalid domain" },
  { "example-.com/x", "invalid domain" },
  { "example..com/x", "invalid domain" },
  { "example.com./x", "invalid domain" },
  { "[::g]:5000/x", "invalid domain" },
  { "[]:5000/x", "invalid domain" },
  { "[::1/x", "invalid domain" },
  { "[::1]x/y", "invalid domain" },
  /* Docker takes this as a name with no domain at all; we refuse it (see reference.c) */
  { "a_b.c/d", "invalid domain \"a_b.c\"" },
};

/* Fail naming the case, so that a table failure says which row broke. */
static void
check_str (const char *in, const char *what, const char *got, const char *want)
{
  if (got == NULL && want == NULL)
    return;
  if (got == NULL || want == NULL || strcmp (got, want) != 0)
    fail_msg ("reference \"%s\": %s is \"%s\", expected \"%s\"", in, what, got ? got : "(null)",
              want ? want : "(null)");
}

static void
test_valid_table (void **state)
{
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE (valid_cases); i++)
    {
      const struct valid_case *c = &valid_cases[i];
      cimg_error_t err = { 0 };
      cleanup_ref struct cimg_ref *r = cimg_ref_parse (c->in, &err);
      if (r == NULL)
        fail_msg ("reference \"%s\" refused: %s", c->in, err.msg ? err.msg : "(no message)");
      if (cimg_error_is_set (&err))
        fail_msg ("reference \"%s\" parsed but set an error: %s", c->in, err.msg);
      check_str (c->in, "domain", r->domain, c->domain);
      check_str (c->in, "path", r->path, c->path);
      check_str (c->in, "tag", r->tag, c->tag);
      check_str (c->in, "digest", r->digest, c->digest);

      cleanup_free char *name = cimg_ref_name (r);
      cleanup_free char *want_name = xasprintf ("%s/%s", c->domain, c->path);
      check_str (c->in, "name", name, want_name);
      cleanup_free char *full = cimg_ref_string (r);
      check_str (c->in, "string", full, c->full);
      cleanup_free char *familiar = cimg_ref_familiar_string (full);
      check_str (c->in, "familiar string", familiar, c->familiar);

      /* Names must be stable: the full and the familiar form each read back as the same
         reference, or a stored tag would drift on every rewrite. */
      cleanup_ref struct cimg_ref *again = cimg_ref_parse (c->full, &err);
      if (again == NULL)
        fail_msg ("full \"%s\" of \"%s\" refused: %s", c->full, c->in, err.msg);
      cleanup_free char *full2 = cimg_ref_string (again);
      check_str (c->in, "string of the full string", full2, c->full);
      cleanup_ref struct cimg_ref *fam = cimg_ref_parse (c->familiar, &err);
      if (fam == NULL)
        fail_msg ("familiar \"%s\" of \"%s\" refused: %s", c->familiar, c->in, err.msg);
      cleanup_free char *full3 = cimg_ref_string (fam);
      check_str (c->in, "string of the familiar string", full3, c->full);
    }
}

/* What the message should start with: the reference as given, quoted. The table holds only
   printable inputs, so no escaping is needed here. */
static char *
expected_prefix (const char *in)
{
  return xasprintf ("invalid reference \"%s\": ", in);
}

static void
test_invalid_table (void **state)
{
  (void)state;
  for (size_t i = 0; i < ARRAY_SIZE (invalid_cases); i++)
    {
      const struct invalid_case *c = &invalid_cases[i];
      cleanup_free char *prefix = expected_prefix (c->in);
      for (int name_only = 0; name_only <= 1; name_only++)
        {
          cimg_error_t err = { 0 };
          struct cimg_ref *r
              = name_only ? cimg_ref_parse_name (c->in, &err) : cimg_ref_parse (c->in, &err);
          if (r != NULL)
            {
              cleanup_free char *s = cimg_ref_string (r);
              cimg_ref_free (r);
              fail_msg ("reference \"%s\" accepted as \"%s\"", c->in, s);
            }
          if (!cimg_error_is_set (&err))
            fail_msg ("reference \"%s\" refused without a message", c->in);
          if (!cimg_str_has_prefix (err.msg, prefix))
            fail_msg ("reference \"%s\": message \"%s\" does not start with \"%s\"", c->in, err.msg,
                      prefix);
          if (strstr (err.msg, c->msg) == NULL)
            fail_msg ("reference \"%s\": message \"%s\" lacks \"%s\"", c->in, err.msg, c->msg);
          /* The rule is not a system call's failure. */
          assert_int_equal (err.code, 0);
          cimg_error_clear (&err);
        }
    }
}

static void
test_counts (void **state)
{
  (void)state;
  /* The brief the tables answer: at least 40 accepted and 25 refused references. */
  assert_true (ARRAY_SIZE (valid_cases) >= 40);
  assert_true (ARRAY_SIZE (invalid_cases) >= 25);
}

static void
test_exact_message (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  assert_null (cimg_ref_parse ("Foo/Bar", &err));
  assert_string_equal (err.msg, "invalid reference \"Foo/Bar\": repository name must be lowercase");
  cimg_error_clear (&err);
}

static void
test_message_escapes_input (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  assert_null (cimg_ref_parse ("a\033[2Jb\"\\", &err));
  assert_non_null (err.msg);
  /* No raw escape byte may reach a terminal through the message. */
  assert_null (strchr (err.msg, '\033'));
  assert_non_null (strstr (err.msg, "invalid reference \"a\\x1b[2Jb\\\"\\\\\""));
  cimg_error_clear (&err);

  assert_null (cimg_ref_parse ("a\nb", &err));
  assert_null (strchr (err.msg, '\n'));
  assert_non_null (strstr (err.msg, "\"a\\x0ab\""));
  cimg_error_clear (&err);
}

static void
test_error_replaces_previous (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  assert_null (cimg_ref_parse ("a:", &err));
  assert_null (cimg_ref_parse ("a@", &err));
  assert_non_null (strstr (err.msg, "digest is empty"));
  assert_null (strstr (err.msg, "tag is empty"));
  cimg_error_clear (&err);
}

static void
test_null_err_and_input (void **state)
{
  (void)state;
  assert_null (cimg_ref_parse ("A", NULL));
  assert_null (cimg_ref_parse_name ("", NULL));
  cimg_error_t err = { 0 };
  assert_null (cimg_ref_parse (NULL, &err));
  assert_non_null (err.msg);
  cimg_error_clear (&err);
  cimg_ref_free (NULL);
  assert_null (cimg_ref_familiar_string (NULL));
}

static void
test_parse_tag (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  cleanup_ref struct cimg_ref *r = cimg_ref_parse_tag ("ubuntu", &err);
  assert_non_null (r);
  cleanup_free char *full = cimg_ref_string (r);
  assert_string_equal (full, "docker.io/library/ubuntu:latest");
  cleanup_ref struct cimg_ref *t = cimg_ref_parse_tag ("127.0.0.1:5000/a/b:v1", &err);
  assert_non_null (t);
  assert_string_equal (t->tag, "v1");
  assert_false (cimg_error_is_set (&err));

  /* A tag cannot give an image a digest, with or without a tag beside it. */
  static const char *const digests[]
      = { "x@sha256:0000000000000000000000000000000000000000000000000000000000000000",
          "x:1@sha256:0000000000000000000000000000000000000000000000000000000000000000" };
  for (size_t i = 0; i < ARRAY_SIZE (digests); i++)
    {
      assert_null (cimg_ref_parse_tag (digests[i], &err));
      assert_non_null (strstr (err.msg, "refusing to create a tag with a digest reference"));
      assert_non_null (strstr (err.msg, digests[i]));
      cimg_error_clear (&err);
    }
  assert_null (cimg_ref_parse_tag ("Bad:Tag", &err));
  assert_string_equal (err.msg, "invalid reference \"Bad:Tag\": repository name must be lowercase");
  cimg_error_clear (&err);
  assert_null (cimg_ref_parse_tag ("x@sha256:00", NULL));
}

static void
test_parse_name_adds_no_tag (void **state)
{
  (void)state;
  static const struct
  {
    const char *in, *tag, *digest, *full;
  } cases[] = {
    { "ubuntu", NULL, NULL, "docker.io/library/ubuntu" },
    { "ubuntu:16.04", "16.04", NULL, "docker.io/library/ubuntu:16.04" },
    { "ubuntu@" DGST, NULL, DGST, "docker.io/library/ubuntu@" DGST },
    { "x:t@" DGST, "t", DGST, "docker.io/library/x:t@" DGST },
    { "localhost:5000/a/b", NULL, NULL, "localhost:5000/a/b" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cimg_error_t err = { 0 };
      cleanup_ref struct cimg_ref *r = cimg_ref_parse_name (cases[i].in, &err);
      if (r == NULL)
        fail_msg ("\"%s\" refused: %s", cases[i].in, err.msg);
      check_str (cases[i].in, "tag", r->tag, cases[i].tag);
      check_str (cases[i].in, "digest", r->digest, cases[i].digest);
      cleanup_free char *s = cimg_ref_string (r);
      check_str (cases[i].in, "string", s, cases[i].full);
    }
}

static void
test_familiar_name (void **state)
{
  (void)state;
  static const struct
  {
    const char *in, *familiar;
  } cases[] = {
    { "ubuntu:1", "ubuntu" },
    { "user/app", "user/app" },
    { "library/a/b", "library/a/b" },
    { "docker.io/library/library", "library" },
    { "127.0.0.1:5000/x", "127.0.0.1:5000/x" },
    { "localhost/library/x", "localhost/library/x" },
    { "example.com/library/x", "example.com/library/x" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cleanup_ref struct cimg_ref *r = cimg_ref_parse (cases[i].in, NULL);
      if (r == NULL)
        fail_msg ("\"%s\" refused", cases[i].in);
      cleanup_free char *f = cimg_ref_familiar_name (r);
      check_str (cases[i].in, "familiar name", f, cases[i].familiar);
    }
}

static void
test_familiar_string (void **state)
{
  (void)state;
  static const struct
  {
    const char *full, *familiar;
  } cases[] = {
    { "docker.io/library/ubuntu:latest", "ubuntu:latest" },
    { "docker.io/library/ubuntu", "ubuntu" },
    { "docker.io/library/ubuntu@" DGST, "ubuntu@" DGST },
    { "docker.io/library/a/b:c", "library/a/b:c" },
    { "docker.io/user/app:v2", "user/app:v2" },
    { "[::1]:5000/x:1", "[::1]:5000/x:1" },
    /* a stored string that does not parse is shown as stored */
    { "docker.io/library/Bad:x", "docker.io/library/Bad:x" },
    { "", "" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cleanup_free char *f = cimg_ref_familiar_string (cases[i].full);
      check_str (cases[i].full, "familiar string", f, cases[i].familiar);
    }
}

static void
test_cleanup_ref_frees (void **state)
{
  (void)state;
  struct cimg_ref *r = cimg_ref_parse ("ubuntu", NULL);
  assert_non_null (r);
  cimg_ref_freep (&r);
  assert_null (r);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_counts),
    cmocka_unit_test (test_valid_table),
    cmocka_unit_test (test_invalid_table),
    cmocka_unit_test (test_exact_message),
    cmocka_unit_test (test_message_escapes_input),
    cmocka_unit_test (test_error_replaces_previous),
    cmocka_unit_test (test_null_err_and_input),
    cmocka_unit_test (test_parse_tag),
    cmocka_unit_test (test_parse_name_adds_no_tag),
    cmocka_unit_test (test_familiar_name),
    cmocka_unit_test (test_familiar_string),
    cmocka_unit_test (test_cleanup_ref_frees),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
