/* The pure parts of the newer build features (build/options.c) and the parser's checks of the
   flags they use: RUN --mount specs, platforms and the platform ARGs, heredoc body expansion. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "build/build.h"

static void
test_mount_defaults (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  struct cimg_build_mount m;

  assert_int_equal (cimg_build_mount_parse ("target=/src", &m, &err), 0);
  assert_int_equal (m.type, CIMG_BUILD_MOUNT_BIND);
  assert_string_equal (m.target, "/src");
  assert_null (m.source);
  assert_int_equal (m.readonly, 1); /* bind: read-only unless rw */
  cimg_build_mount_clear (&m);

  assert_int_equal (cimg_build_mount_parse ("type=bind,from=build,src=/out,dst=/o,rw", &m, &err),
                    0);
  assert_string_equal (m.from, "build");
  assert_string_equal (m.source, "/out");
  assert_string_equal (m.target, "/o");
  assert_int_equal (m.readonly, 0);
  cimg_build_mount_clear (&m);

  assert_int_equal (cimg_build_mount_parse ("type=cache,target=/root/.cache", &m, &err), 0);
  assert_int_equal (m.type, CIMG_BUILD_MOUNT_CACHE);
  assert_string_equal (m.id, "/root/.cache"); /* id defaults to the target */
  assert_int_equal (m.sharing, CIMG_BUILD_SHARING_SHARED);
  assert_int_equal (m.mode, 0755);
  assert_int_equal (m.readonly, 0);
  cimg_build_mount_clear (&m);

  assert_int_equal (
      cimg_build_mount_parse (
          "type=cache,id=go,target=/go,sharing=locked,mode=0700,uid=1000,gid=100,ro", &m, &err),
      0);
  assert_string_equal (m.id, "go");
  assert_int_equal (m.sharing, CIMG_BUILD_SHARING_LOCKED);
  assert_int_equal (m.mode, 0700);
  assert_int_equal (m.uid, 1000);
  assert_int_equal (m.gid, 100);
  assert_int_equal (m.readonly, 1);
  cimg_build_mount_clear (&m);

  assert_int_equal (cimg_build_mount_parse ("type=tmpfs,target=/t,size=64m", &m, &err), 0);
  assert_int_equal (m.type, CIMG_BUILD_MOUNT_TMPFS);
  assert_int_equal (m.size, 64LL << 20);
  cimg_build_mount_clear (&m);

  assert_int_equal (cimg_build_mount_parse ("type=secret,id=aws", &m, &err), 0);
  assert_int_equal (m.type, CIMG_BUILD_MOUNT_SECRET);
  assert_string_equal (m.target, "/run/secrets/aws");
  assert_int_equal (m.mode, 0400);
  assert_false (m.required);
  cimg_build_mount_clear (&m);

  /* The id of a secret defaults to its target's base name. */
  assert_int_equal (cimg_build_mount_parse ("type=secret,target=/etc/tok,required", &m, &err), 0);
  assert_string_equal (m.id, "tok");
  assert_true (m.required);
  cimg_build_mount_clear (&m);

  /* env only: no file is mounted. */
  assert_int_equal (cimg_build_mount_parse ("type=secret,id=t,env=TOKEN", &m, &err), 0);
  assert_null (m.target);
  assert_string_equal (m.env, "TOKEN");
  cimg_build_mount_clear (&m);

  /* Keys are case-insensitive, as BuildKit's CSV reader. */
  assert_int_equal (cimg_build_mount_parse ("Type=tmpfs,Target=/x", &m, &err), 0);
  assert_int_equal (m.type, CIMG_BUILD_MOUNT_TMPFS);
  cimg_build_mount_clear (&m);
}

static void
test_mount_errors (void **state)
{
  (void)state;
  static const struct
  {
    const char *spec, *msg;
  } cases[] = {
    { "type=foo,target=/x", "unsupported mount type \"foo\"" },
    { "type=ssh", "mount type ssh is not supported" },
    { "type=cache", "mount type=cache requires a target" },
    { "type=bind,source=x", "mount type=bind,source=x requires a target" },
    { "type=secret", "invalid secret mount: id or target required" },
    { "type=cache,target=/x,sharing=maybe", "unsupported sharing value \"maybe\"" },
    { "type=cache,target=/x,mode=999", "invalid value for mode: 999" },
    { "type=tmpfs,target=/x,size=lots", "invalid size: lots" },
    { "target=/x,bogus=1", "unexpected key 'bogus' in 'target=/x,bogus=1'" },
    { "target=/x,size=1m", "unexpected key 'size' in 'target=/x,size=1m'" },
    { "target=/x,ro=perhaps", "invalid value for ro: perhaps" },
    { "type=tmpfs,target=/x,from=y", "from= is only for bind and cache mounts" },
    { "type=cache,target=/x,from=y", "a cache mount with from= is not supported" },
    { "target", "invalid field 'target' must be a key=value pair" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_build_mount m;
      assert_int_equal (cimg_build_mount_parse (cases[i].spec, &m, &err), -1);
      if (strcmp (err.msg, cases[i].msg) != 0)
        fail_msg ("%s: got \"%s\", want \"%s\"", cases[i].spec, err.msg, cases[i].msg);
      cimg_error_clear (&err);
      assert_null (m.target);
    }
}

static void
test_platform (void **state)
{
  (void)state;
  static const struct
  {
    const char *in, *out;
  } cases[] = {
    { "linux/amd64", "linux/amd64" },    { "linux/x86_64", "linux/amd64" },
    { "Linux/AMD64", "linux/amd64" },    { "linux/aarch64", "linux/arm64" },
    { "linux/arm64/v8", "linux/arm64" }, { "linux/arm", "linux/arm/v7" },
    { "linux/arm/6", "linux/arm/v6" },   { "linux/arm/v5", "linux/arm/v5" },
    { "arm64", "linux/arm64" },          { "linux/riscv64", "linux/riscv64" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_platform p;
      assert_int_equal (cimg_build_platform_parse (cases[i].in, &p, &err), 0);
      char *s = cimg_build_platform_string (&p);
      if (strcmp (s, cases[i].out) != 0)
        fail_msg ("%s: got %s, want %s", cases[i].in, s, cases[i].out);
      free (s);
    }
  static const char *const bad[] = { "", "linux/", "/amd64", "linux/amd64/v1/x", "lin ux/amd64" };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_platform p;
      if (cimg_build_platform_parse (bad[i], &p, &err) != -1)
        fail_msg ("\"%s\" was accepted", bad[i]);
      assert_non_null (strstr (err.msg, "invalid platform"));
      cimg_error_clear (&err);
    }

  struct cimg_platform b, t;
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_build_platform_parse ("linux/amd64", &b, &err), 0);
  assert_int_equal (cimg_build_platform_parse ("linux/arm/v7", &t, &err), 0);
  char **args = cimg_build_platform_args (&b, &t);
  const char *want[] = { "BUILDPLATFORM=linux/amd64",
                         "BUILDOS=linux",
                         "BUILDARCH=amd64",
                         "BUILDVARIANT=",
                         "TARGETPLATFORM=linux/arm/v7",
                         "TARGETOS=linux",
                         "TARGETARCH=arm",
                         "TARGETVARIANT=v7",
                         NULL };
  for (size_t i = 0; want[i]; i++)
    assert_string_equal (args[i], want[i]);
  assert_null (args[8]);

  /* In a FROM line, the platform ARGs expand like any ARG before the first FROM. */
  char *got = NULL;
  assert_int_equal (
      cimg_build_expand_word ("--platform=$BUILDPLATFORM ${TARGETARCH}", '\\', args, &got, &err),
      0);
  assert_string_equal (got, "--platform=linux/amd64 arm");
  free (got);
  cimg_strv_free (args);

  struct cimg_platform h;
  cimg_build_platform_host (&h);
  assert_string_equal (h.os, "linux");
  assert_true (h.arch[0] != '\0');
}

static void
test_heredoc_expansion (void **state)
{
  (void)state;
  char *env[] = { "NAME=world", "EMPTY=", NULL };
  static const struct
  {
    const char *in, *out;
  } cases[] = {
    /* Quotes are plain characters: they neither stop expansion nor go away. */
    { "hello $NAME\n", "hello world\n" },
    { "\"$NAME\" '${NAME}'\n", "\"world\" 'world'\n" },
    { "a \\$NAME b\n", "a $NAME b\n" },
    { "${NAME:-x} ${UNSET:-dflt} [${EMPTY}]\n", "world dflt []\n" },
    { "${NAME#wor}\n", "ld\n" },
    { "line1\nline2 $NAME\n", "line1\nline2 world\n" },
    { "no vars at all\n", "no vars at all\n" },
    { "it's\n", "it's\n" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      cimg_error_t err = { 0 };
      char *got = NULL;
      if (cimg_build_expand_heredoc (cases[i].in, env, &got, &err) < 0)
        fail_msg ("%s: %s", cases[i].in, err.msg);
      if (strcmp (got, cases[i].out) != 0)
        fail_msg ("%s: got \"%s\", want \"%s\"", cases[i].in, got, cases[i].out);
      free (got);
    }
  cimg_error_t err = { 0 };
  char *got = NULL;
  assert_int_equal (cimg_build_expand_heredoc ("${NAME\n", env, &got, &err), -1);
  cimg_error_clear (&err);

  /* The parser marks which bodies expand: a quoted delimiter turns it off. */
  const char *df = "FROM x\nCOPY <<A <<\"B\" <<'C' /d/\n$X\nA\n$X\nB\n$X\nC\n";
  struct cimg_dockerfile *d = cimg_build_parse ("Dockerfile", df, strlen (df), &err);
  assert_non_null (d);
  assert_int_equal (d->instrs[1].n_heredocs, 3);
  assert_true (d->instrs[1].heredocs[0].expand);
  assert_false (d->instrs[1].heredocs[1].expand);
  assert_false (d->instrs[1].heredocs[2].expand);
  cimg_dockerfile_free (d);
}

static void
test_parser_flags (void **state)
{
  (void)state;
  static const struct
  {
    const char *df, *msg; /* msg NULL: accepted */
  } cases[] = {
    { "FROM x\nCOPY --link --parents --exclude=*.log --exclude=tmp a b /d/\n", NULL },
    { "FROM x\nADD --link=true --exclude=a --checksum=sha256:00 http://h/f /d\n", NULL },
    { "FROM x\nRUN --mount=type=cache,target=/a --mount=type=tmpfs,target=/b --network=none "
      "--security=insecure true\n",
      NULL },
    { "FROM x\nCOPY --parents=maybe a /b\n",
      "Dockerfile:2: expecting boolean value for flag parents, not: maybe" },
    { "FROM x\nCOPY --link --link a /b\n", "Dockerfile:2: Duplicate flag specified: link" },
    { "FROM x\nRUN --network=none --network=host true\n",
      "Dockerfile:2: Duplicate flag specified: network" },
    { "FROM x\nCOPY --checksum=sha256:00 a /b\n", "Dockerfile:2: unknown flag: checksum" },
    { "FROM x\nRUN --mount true\n", "Dockerfile:2: Missing a value on flag: mount" },
    { "FROM x\nCOPY --exclude a /b\n", "Dockerfile:2: Missing a value on flag: exclude" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_dockerfile *d
          = cimg_build_parse ("Dockerfile", cases[i].df, strlen (cases[i].df), &err);
      if (cases[i].msg == NULL)
        {
          if (d == NULL)
            fail_msg ("%s: %s", cases[i].df, err.msg);
          cimg_dockerfile_free (d);
          continue;
        }
      if (d != NULL)
        fail_msg ("%s: accepted", cases[i].df);
      if (strcmp (err.msg, cases[i].msg) != 0)
        fail_msg ("%s: got \"%s\", want \"%s\"", cases[i].df, err.msg, cases[i].msg);
      cimg_error_clear (&err);
    }
  /* Repeated --exclude and --mount are kept in order. */
  const char *df = "FROM x\nCOPY --exclude=a --exclude=b c /d/\n";
  cimg_error_t err = { 0 };
  struct cimg_dockerfile *d = cimg_build_parse ("Dockerfile", df, strlen (df), &err);
  assert_non_null (d);
  assert_string_equal (d->instrs[1].flags[0], "--exclude=a");
  assert_string_equal (d->instrs[1].flags[1], "--exclude=b");
  assert_null (d->instrs[1].flags[2]);
  cimg_dockerfile_free (d);
}

static void
test_plan_platform (void **state)
{
  (void)state;
  /* The plan resolves FROM with the platform ARGs; --platform reaches it as TARGET* args. */
  const char *df = "FROM --platform=$BUILDPLATFORM busybox AS b\nFROM img-$TARGETARCH\n";
  cimg_error_t err = { 0 };
  struct cimg_dockerfile *d = cimg_build_parse ("Dockerfile", df, strlen (df), &err);
  assert_non_null (d);
  char *args[] = { "TARGETARCH=s390x", NULL };
  char *plan = NULL;
  assert_int_equal (cimg_build_plan (d, args, NULL, &plan, &err), 0);
  assert_non_null (strstr (plan, "FROM img-s390x"));
  free (plan);
  cimg_dockerfile_free (d);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_mount_defaults), cmocka_unit_test (test_mount_errors),
    cmocka_unit_test (test_platform),       cmocka_unit_test (test_heredoc_expansion),
    cmocka_unit_test (test_parser_flags),   cmocka_unit_test (test_plan_platform),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
