#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "build/build.h"

/* One instruction as a line the tables can spell:
   "LINE-END name --flag… [arg|arg] json <<NAME(e|n)(c)fd=body {sub}" with "\n" shown as "\n". */
static void
dump_instr (const struct cimg_instruction *in, char **s)
{
  char *o = xasprintf ("%s%d-%d %s", *s, in->line, in->end_line, in->name);
  free (*s);
  *s = o;
#define ADD(...)                                                                                   \
  do                                                                                               \
    {                                                                                              \
      char *t_ = xasprintf (__VA_ARGS__);                                                          \
      char *n_ = xasprintf ("%s%s", *s, t_);                                                       \
      free (t_);                                                                                   \
      free (*s);                                                                                   \
      *s = n_;                                                                                     \
    }                                                                                              \
  while (0)
  for (size_t i = 0; in->flags[i]; i++)
    ADD (" %s", in->flags[i]);
  ADD (" [");
  for (size_t i = 0; in->args[i]; i++)
    ADD ("%s%s", i ? "|" : "", in->args[i]);
  ADD ("]");
  if (in->json)
    ADD (" json");
  for (size_t i = 0; i < in->n_heredocs; i++)
    {
      const struct cimg_heredoc *h = &in->heredocs[i];
      ADD (" <<%s(%s)%s", h->name, h->expand ? "e" : "n", h->chomp ? "(c)" : "");
      if (h->fd)
        ADD ("%u", h->fd);
      ADD ("=");
      for (const char *c = h->content; *c; c++)
        {
          if (*c == '\n')
            ADD ("\\n");
          else if (*c == '\t')
            ADD ("\\t");
          else
            ADD ("%c", *c);
        }
    }
  if (in->sub)
    {
      ADD (" {");
      char *sub = xstrdup ("");
      dump_instr (in->sub, &sub);
      ADD ("%s}", sub);
      free (sub);
    }
#undef ADD
}

struct parse_case
{
  const char *text;
  const char *expected[12]; /* one dump per instruction, NULL-terminated */
};

static const struct parse_case ok_cases[] = {
  { "FROM alpine:3.19 AS Build\nRUN echo hi\n",
    { "1-1 from [alpine:3.19|AS|build]", "2-2 run [echo hi]" } },
  /* Names in any case; blank lines and comments between instructions. */
  { "\n# c\nfRoM x\n\n  run   echo   a  \n", { "3-3 from [x]", "5-5 run [echo   a]" } },
  /* Continuations: blanks after the escape, comments and empty lines inside. */
  { "RUN apt-get update \\   \n# comment inside\n    && apt-get install -y x \\\n\n    && rm -rf "
    "/var/lib/apt\nUSER u\n",
    { "1-5 run [apt-get update     && apt-get install -y x     && rm -rf /var/lib/apt]",
      "6-6 user [u]" } },
  /* An escaped escape does not continue the line. */
  { "RUN echo \\\\\nUSER u", { "1-1 run [echo \\\\]", "2-2 user [u]" } },
  /* A continuation at the end of the file. */
  { "RUN a \\", { "1-1 run [a]" } },
  /* Exec form and the fallback to shell form. */
  { "CMD [\"a\", \"b c\"]\nENTRYPOINT [\"x\"\nSHELL [\"/bin/sh\", \"-c\"]\nRUN []\nCMD [ \"a\" ] "
    "x\n",
    { "1-1 cmd [a|b c] json", "2-2 entrypoint [[\"x\"]", "3-3 shell [/bin/sh|-c] json",
      "4-4 run [] json", "5-5 cmd [[ \"a\" ] x]" } },
  { "COPY [\"a b\", \"/c\"]\nVOLUME /a /b\nVOLUME [\"/x\"]\nADD a  b\tc\n",
    { "1-1 copy [a b|/c] json", "2-2 volume [/a|/b]", "3-3 volume [/x] json", "4-4 add [a|b|c]" } },
  /* Flags. */
  { "COPY --from=build --chown=1000:1000 --chmod=755 --link src /dst\n"
    "RUN --mount=type=cache,target=/root/.cache --network=none make\n"
    "FROM --platform=$BUILDPLATFORM golang AS b\n"
    "COPY --chown=\"a b\" x y\n"
    "ADD --link=false --checksum=sha256:abc https://x/y /z\n"
    "COPY -- --from=x y\n",
    { "1-1 copy --from=build --chown=1000:1000 --chmod=755 --link [src|/dst]",
      "2-2 run --mount=type=cache,target=/root/.cache --network=none [make]",
      "3-3 from --platform=$BUILDPLATFORM [golang|AS|b]", "4-4 copy --chown=a b [x|y]",
      "5-5 add --link=false --checksum=sha256:abc [https://x/y|/z]", "6-6 copy [--from=x|y]" } },
  /* Heredocs. */
  { "FROM x\nRUN <<EOF\necho $HOME\nEOF\nRUN <<-EOT bash\n\techo tab\n\t\tEOT\n"
    "RUN <<\"EOF1\" cat && <<'EOF2' cat\na $x\nEOF1\nb\nEOF2\nCOPY <<EOF /path\ncontent\nEOF\n"
    "RUN 3<<EOF cat /dev/fd/3\nx\nEOF\nRUN [\"cat\", \"<<EOF\"]\nUSER u\n",
    { "1-1 from [x]", "2-4 run [<<EOF] <<EOF(e)=echo $HOME\\n",
      "5-7 run [<<-EOT bash] <<EOT(e)(c)=echo tab\\n", /* "\t\tEOT" ends it */
      "8-12 run [<<\"EOF1\" cat && <<'EOF2' cat] <<EOF1(n)=a $x\\n <<EOF2(n)=b\\n",
      "13-15 copy [<<EOF|/path] <<EOF(e)=content\\n",
      "16-18 run [3<<EOF cat /dev/fd/3] <<EOF(e)3=x\\n", "19-19 run [cat|<<EOF] json",
      "20-20 user [u]" } },
  { "RUN cat <<EOF\nEOF\nRUN echo a<<b\nRUN <<E\"O\"F\nx\nEOF\n",
    { "1-2 run [cat <<EOF] <<EOF(e)=", "3-3 run [echo a<<b]",
      "4-6 run [<<E\"O\"F] <<EOF(n)=x\\n" } },
  /* ONBUILD wraps an instruction (heredocs belong to the ONBUILD line). */
  { "ONBUILD RUN echo hi\nonbuild copy --from=x a b\nONBUILD RUN <<EOF\nhi\nEOF\n",
    { "1-1 onbuild [] {1-1 run [echo hi]}", "2-2 onbuild [] {2-2 copy --from=x [a|b]}",
      "3-5 onbuild [] <<EOF(e)=hi\\n {3-5 run [<<EOF]}" } },
  /* HEALTHCHECK. */
  { "HEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/ || exit 1\nHEALTHCHECK NONE\n"
    "HEALTHCHECK cmd [\"curl\", \"x\"]\n",
    { "1-1 healthcheck --interval=5s --retries=3 [CMD|curl -f http://x/ || exit 1]",
      "2-2 healthcheck [NONE]", "3-3 healthcheck [CMD|curl|x] json" } },
  /* ENV, LABEL, ARG: both forms, quotes kept for the expansion that comes later. */
  { "ENV A=1 B=\"two words\" C=3\\ 4\nENV legacy value with  spaces\n"
    "LABEL \"com.example\"=\"x y\" v=1\nARG V=1.0\nARG A B=2\nENV E=\n",
    { "1-1 env [A|1|B|\"two words\"|C|3\\ 4]", "2-2 env [legacy|value with  spaces]",
      "3-3 label [\"com.example\"|\"x y\"|v|1]", "4-4 arg [V=1.0]", "5-5 arg [A|B=2]",
      "6-6 env [E|]" } },
  { "MAINTAINER John Doe <j@x>\nEXPOSE 80/tcp 443\nWORKDIR /app\nUSER 1000:1000\nSTOPSIGNAL "
    "SIGTERM\n",
    { "1-1 maintainer [John Doe <j@x>]", "2-2 expose [80/tcp|443]", "3-3 workdir [/app]",
      "4-4 user [1000:1000]", "5-5 stopsignal [SIGTERM]" } },
  /* Directives: only at the very top. */
  { "# directive after an instruction is a comment\nFROM a\n# escape=`\nRUN x \\\n y\n",
    { "2-2 from [a]", "4-5 run [x  y]" } },
  { "\xEF\xBB\xBF"
    "# Escape = ` \n\nFROM a\nRUN x `\n y\nCOPY C:\\a C:\\b\n",
    { "3-3 from [a]", "4-5 run [x  y]", "6-6 copy [C:\\a|C:\\b]" } },
  /* A line that is only the escape continues too. */
  { "RUN a \\\n\\\n b\n", { "1-3 run [a  b]" } },
  /* CRLF line endings. */
  { "FROM a\r\nRUN b \\\r\n c\r\n", { "1-1 from [a]", "2-3 run [b  c]" } },
};

static void
test_parse_ok (void **state)
{
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < ARRAY_SIZE (ok_cases); i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_dockerfile *df
          = cimg_build_parse ("Dockerfile", ok_cases[i].text, strlen (ok_cases[i].text), &err);
      if (df == NULL)
        {
          print_error ("case %zu: unexpected error: %s\n", i, err.msg);
          cimg_error_clear (&err);
          failed++;
          continue;
        }
      size_t n = 0;
      while (ok_cases[i].expected[n])
        n++;
      if (n != df->n_instrs)
        {
          print_error ("case %zu: %zu instructions, expected %zu\n", i, df->n_instrs, n);
          failed++;
        }
      for (size_t k = 0; k < df->n_instrs && k < n; k++)
        {
          char *got = xstrdup ("");
          dump_instr (&df->instrs[k], &got);
          if (strcmp (got, ok_cases[i].expected[k]) != 0)
            {
              print_error ("case %zu instruction %zu:\n  expected %s\n  got      %s\n", i, k,
                           ok_cases[i].expected[k], got);
              failed++;
            }
          free (got);
        }
      cimg_dockerfile_free (df);
    }
  assert_int_equal (failed, 0);
}

static void
test_directives (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  const char *t = "# syntax=docker/dockerfile:1\n#escape=`\nFROM a\n";
  cleanup_dockerfile struct cimg_dockerfile *df
      = cimg_build_parse ("Dockerfile", t, strlen (t), &err);
  assert_non_null (df);
  assert_string_equal (df->syntax, "docker/dockerfile:1");
  assert_int_equal (df->escape, '`');
  const char *t2 = "# hello\n# escape=`\nFROM a\n";
  cleanup_dockerfile struct cimg_dockerfile *df2
      = cimg_build_parse ("Dockerfile", t2, strlen (t2), &err);
  assert_non_null (df2);
  assert_int_equal (df2->escape, '\\');
  assert_null (df2->syntax);
  const char *t3 = "RUN a \\\n\n b\n";
  cleanup_dockerfile struct cimg_dockerfile *df3
      = cimg_build_parse ("Dockerfile", t3, strlen (t3), &err);
  assert_non_null (df3);
  assert_int_equal (cimg_strv_len (df3->warnings), 1);
  assert_string_equal (df3->warnings[0], "Dockerfile:1: empty continuation line");
}

struct bad_case
{
  const char *text;
  const char *error; /* the whole message */
};

static const struct bad_case bad_cases[] = {
  { "FROM x\nRUNN echo", "Dockerfile:2: unknown instruction: RUNN" },
  { "FROM x\nRUN <<EOF\nfoo\n", "Dockerfile:2: unterminated heredoc \"EOF\"" },
  { "FROM x\nRUN <<A <<B\na\nA\nb\n", "Dockerfile:2: unterminated heredoc \"B\"" },
  { "FROM x\nARG\n", "Dockerfile:2: ARG requires at least one argument" },
  { "ENV =x", "Dockerfile:1: ENV names can not be blank" },
  { "LABEL =x", "Dockerfile:1: LABEL names can not be blank" },
  { "ENV onlykey", "Dockerfile:1: ENV must have two arguments" },
  { "ENV", "Dockerfile:1: ENV requires at least one argument" },
  { "ENV a=1 b",
    "Dockerfile:1: Syntax error - can't find = in \"b\". Must be of the form: name=value" },
  { "ARG =x", "Dockerfile:1: ARG names can not be blank" },
  { "# escape=x\nFROM a", "Dockerfile:1: invalid escape token 'x' does not match ` or \\" },
  { "# escape=`\n# escape=\\\nFROM a",
    "Dockerfile:2: only one escape parser directive can be used" },
  { "FROM a b", "Dockerfile:1: FROM requires either one or three arguments" },
  { "FROM", "Dockerfile:1: FROM requires either one or three arguments" },
  { "FROM a AS 1x", "Dockerfile:1: invalid name for build stage: \"1x\", name can't start with "
                    "a number or contain symbols" },
  { "COPY onlyone", "Dockerfile:1: COPY requires at least two arguments, but only one was "
                    "provided. Destination could not be determined" },
  { "SHELL /bin/sh -c", "Dockerfile:1: SHELL requires the arguments to be in JSON form" },
  { "HEALTHCHECK NONE x", "Dockerfile:1: HEALTHCHECK NONE takes no arguments" },
  { "HEALTHCHECK FOO x", "Dockerfile:1: Unknown type \"FOO\" in HEALTHCHECK (try CMD)" },
  { "HEALTHCHECK CMD", "Dockerfile:1: Missing command after HEALTHCHECK CMD" },
  { "ONBUILD ONBUILD RUN x", "Dockerfile:1: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed" },
  { "ONBUILD from x", "Dockerfile:1: FROM isn't allowed as an ONBUILD trigger" },
  { "ONBUILD", "Dockerfile:1: ONBUILD requires at least one argument" },
  { "ONBUILD BAD x", "Dockerfile:1: unknown instruction: BAD" },
  { "COPY --frm=x a b", "Dockerfile:1: unknown flag: frm" },
  { "WORKDIR --from=x /a", "Dockerfile:1: unknown flag: from" },
  { "RUN --network a", "Dockerfile:1: Missing a value on flag: network" },
  { "COPY --from=a --from=b x y", "Dockerfile:1: Duplicate flag specified: from" },
  { "COPY --link=maybe x y", "Dockerfile:1: expecting boolean value for flag link, not: maybe" },
  { "", "Dockerfile:0: file with no instructions" },
  { "# only a comment\n\n", "Dockerfile:2: file with no instructions" },
  { "FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument" },
  { "FROM a\nUSER\n", "Dockerfile:2: USER requires exactly one argument" },
  { "RUN [\"a\", 1]",
    "Dockerfile:1: when using JSON array syntax, arrays must be comprised of strings only" },
  { "FROM a\nRUN x \\\n  y\nBAD z", "Dockerfile:4: unknown instruction: BAD" },
  { "FROM a\nRUN x \\\n  y \\\nBAD z", "Dockerfile:2: unknown flag: …" /* see below */ },
  { "VOLUME [\"\"]", "Dockerfile:1: VOLUME specified can not be an empty string" },
  { "EXPOSE", "Dockerfile:1: EXPOSE requires at least one argument" },
  { "RUN", "Dockerfile:1: RUN requires at least one argument" },
};

static void
test_parse_errors (void **state)
{
  (void)state;
  int failed = 0;
  for (size_t i = 0; i < ARRAY_SIZE (bad_cases); i++)
    {
      const char *want = bad_cases[i].error;
      /* A continued line takes the next one in: "RUN x y BAD z" is a valid RUN. */
      if (strstr (want, "…"))
        want = NULL;
      cimg_error_t err = { 0 };
      struct cimg_dockerfile *df
          = cimg_build_parse ("Dockerfile", bad_cases[i].text, strlen (bad_cases[i].text), &err);
      if (want == NULL)
        {
          if (df == NULL)
            {
              print_error ("case %zu: unexpected error %s\n", i, err.msg);
              failed++;
            }
        }
      else if (df != NULL)
        {
          print_error ("case %zu: %s: accepted, expected %s\n", i, bad_cases[i].text, want);
          failed++;
        }
      else if (strcmp (err.msg, want) != 0)
        {
          print_error ("case %zu:\n  expected %s\n  got      %s\n", i, want, err.msg);
          failed++;
        }
      cimg_dockerfile_free (df);
      cimg_error_clear (&err);
    }
  assert_int_equal (failed, 0);
}

static const char plan_df[] = "ARG VERSION=3.19\n"
                              "ARG BASE=alpine\n"
                              "FROM ${BASE}:${VERSION} AS build\n"
                              "RUN echo build\n"
                              "FROM scratch AS unused\n"
                              "COPY x /x\n"
                              "FROM busybox AS final\n"
                              "COPY --from=build /out /out\n"
                              "ENV A=1 B=\"2 3\"\n"
                              "HEALTHCHECK --retries=2 CMD [\"true\"]\n"
                              "ONBUILD RUN make\n"
                              "CMD [\"sh\", \"-c\", \"echo \\\"hi\\\"\"]\n";

static void
test_plan (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  cleanup_dockerfile struct cimg_dockerfile *df
      = cimg_build_parse ("Dockerfile", plan_df, strlen (plan_df), &err);
  assert_non_null (df);
  char *out = NULL;
  assert_int_equal (cimg_build_plan (df, NULL, NULL, &out, &err), 0);
  assert_string_equal (out, "Dockerfile:1 ARG VERSION=3.19\n"
                            "Dockerfile:2 ARG BASE=alpine\n"
                            "# stage 0 \"build\"\n"
                            "Dockerfile:3 FROM alpine:3.19 AS build\n"
                            "Dockerfile:4 RUN echo build\n"
                            "# stage 1 \"unused\" (skipped: not needed for the target)\n"
                            "Dockerfile:5 FROM scratch AS unused\n"
                            "Dockerfile:6 COPY x /x\n"
                            "# stage 2 \"final\" (target)\n"
                            "Dockerfile:7 FROM busybox AS final\n"
                            "Dockerfile:8 COPY --from=build /out /out\n"
                            "Dockerfile:9 ENV A=1 B=\"2 3\"\n"
                            "Dockerfile:10 HEALTHCHECK --retries=2 CMD [\"true\"]\n"
                            "Dockerfile:11 ONBUILD RUN make\n"
                            "Dockerfile:12 CMD [\"sh\",\"-c\",\"echo \\\"hi\\\"\"]\n");
  free (out);

  char *args[] = { "VERSION=3.20", "UNDECLARED=x", NULL };
  assert_int_equal (cimg_build_plan (df, args, "build", &out, &err), 0);
  assert_non_null (strstr (out, "Dockerfile:3 FROM alpine:3.20 AS build\n"));
  assert_non_null (strstr (out, "# stage 0 \"build\" (target)\n"));
  assert_non_null (strstr (out, "# stage 1 \"unused\" (skipped"));
  assert_non_null (strstr (out, "# stage 2 \"final\" (skipped"));
  free (out);

  assert_int_equal (cimg_build_plan (df, NULL, "nope", &out, &err), -1);
  assert_string_equal (err.msg, "target stage \"nope\" could not be found");
  cimg_error_clear (&err);

  /* A stage used as a base or through RUN --mount=from= is needed too. */
  const char *t = "FROM a AS one\nFROM one AS two\nFROM b AS three\nFROM c\n"
                  "RUN --mount=type=bind,from=two,target=/x true\nCOPY --from=0 / /\n";
  cleanup_dockerfile struct cimg_dockerfile *df2
      = cimg_build_parse ("Dockerfile", t, strlen (t), &err);
  assert_non_null (df2);
  assert_int_equal (cimg_build_plan (df2, NULL, NULL, &out, &err), 0);
  assert_non_null (strstr (out, "# stage 0 \"one\"\n"));
  assert_non_null (strstr (out, "# stage 1 \"two\"\n"));
  assert_non_null (strstr (out, "# stage 2 \"three\" (skipped"));
  assert_non_null (strstr (out, "# stage 3 (target)\n"));
  free (out);

  /* A FROM that expands to nothing, and instructions before the first FROM. */
  const char *t3 = "ARG X\nFROM ${X}\n";
  cleanup_dockerfile struct cimg_dockerfile *df3
      = cimg_build_parse ("Dockerfile", t3, strlen (t3), &err);
  assert_non_null (df3);
  assert_int_equal (cimg_build_plan (df3, NULL, NULL, &out, &err), -1);
  assert_string_equal (err.msg, "Dockerfile:2: base name (${X}) should not be blank");
  cimg_error_clear (&err);
  char *xa[] = { "X=busybox", NULL };
  assert_int_equal (cimg_build_plan (df3, xa, NULL, &out, &err), 0);
  assert_non_null (strstr (out, "Dockerfile:2 FROM busybox\n"));
  free (out);
  const char *t4 = "RUN x\nFROM a\n";
  cleanup_dockerfile struct cimg_dockerfile *df4
      = cimg_build_parse ("Dockerfile", t4, strlen (t4), &err);
  assert_non_null (df4);
  assert_int_equal (cimg_build_plan (df4, NULL, NULL, &out, &err), -1);
  assert_non_null (strstr (err.msg, "Dockerfile:1: no build stage"));
  cimg_error_clear (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_ok),
    cmocka_unit_test (test_directives),
    cmocka_unit_test (test_parse_errors),
    cmocka_unit_test (test_plan),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
