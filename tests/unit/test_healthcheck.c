/* HEALTHCHECK options (build/change.c): Go's time.ParseDuration and Duration.String, BuildKit's
   parseHealthcheck checks and messages, and the Healthcheck object they write into a config, for
   the build and for --change lines alike. The expected values and messages were printed by Go
   1.19's time and strconv packages for these exact inputs. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <string.h>

#include "build/change.h"

struct dur_case
{
  const char *in;
  int64_t ns;      /* when msg is NULL */
  const char *msg; /* the error, or NULL */
};

static const struct dur_case durations[] = {
  { "1m30s", 90000000000LL, NULL },
  { "1.5s", 1500000000LL, NULL },
  { "500ms", 500000000LL, NULL },
  { "2h", 7200000000000LL, NULL },
  { "300us", 300000, NULL },
  { "300\xc2\xb5s", 300000, NULL }, /* U+00B5 */
  { "300\xce\xbcs", 300000, NULL }, /* U+03BC */
  { "10ns", 10, NULL },
  { "-1.5h", -5400000000000LL, NULL },
  { "+5s", 5000000000LL, NULL },
  { "0", 0, NULL },
  { "-0", 0, NULL },
  { "+0", 0, NULL },
  { "0s", 0, NULL },
  { ".5s", 500000000LL, NULL },
  { "5.s", 5000000000LL, NULL },
  { "1h2m3s4ms5us6ns", 3723004005006LL, NULL },
  { "9223372036854775807ns", INT64_MAX, NULL },
  { "-9223372036854775808ns", INT64_MIN, NULL },
  { "2562047h47m16.854775807s", INT64_MAX, NULL },
  { "2562047h", 9223369200000000000LL, NULL },
  { "0.1ns", 0, NULL },
  { "1.0000000000000000000000001s", 1000000000LL, NULL },
  { "0.3333333333333333333h", 1200000000000LL, NULL },
  /* errors */
  { "", 0, "time: invalid duration \"\"" },
  { "5", 0, "time: missing unit in duration \"5\"" },
  { "1x", 0, "time: unknown unit \"x\" in duration \"1x\"" },
  { "abc", 0, "time: invalid duration \"abc\"" },
  { "-", 0, "time: invalid duration \"-\"" },
  { ".", 0, "time: invalid duration \".\"" },
  { ".s", 0, "time: invalid duration \".s\"" },
  { "1.5", 0, "time: missing unit in duration \"1.5\"" },
  { "s", 0, "time: invalid duration \"s\"" },
  { "1e3s", 0, "time: unknown unit \"e\" in duration \"1e3s\"" },
  { "5 s", 0, "time: unknown unit \" s\" in duration \"5 s\"" },
  { "1s ", 0, "time: unknown unit \"s \" in duration \"1s \"" },
  { "1h-5m", 0, "time: unknown unit \"h-\" in duration \"1h-5m\"" },
  { "1.2.3s", 0, "time: missing unit in duration \"1.2.3s\"" },
  { "1Ms", 0, "time: unknown unit \"Ms\" in duration \"1Ms\"" },
  { "1\xc2\xb5", 0, "time: unknown unit \"\\xc2\\xb5\" in duration \"1\\xc2\\xb5\"" },
  { "\"5s\"", 0, "time: invalid duration \"\\\"5s\\\"\"" },
  /* overflow: one past 2^63-1 ns, in a unit, in the fraction, in the number itself */
  { "9223372036854775808ns", 0, "time: invalid duration \"9223372036854775808ns\"" },
  { "2562047h47m16.854775808s", 0, "time: invalid duration \"2562047h47m16.854775808s\"" },
  { "2562048h", 0, "time: invalid duration \"2562048h\"" },
  { "99999999999999999999s", 0, "time: invalid duration \"99999999999999999999s\"" },
};

static void
test_parse_duration (void **state)
{
  (void)state;
  for (size_t i = 0; i < sizeof durations / sizeof durations[0]; i++)
    {
      const struct dur_case *c = &durations[i];
      cimg_error_t err = { 0 };
      int64_t ns = 12345;
      int rc = cimg_parse_go_duration (c->in, &ns, &err);
      if (c->msg == NULL)
        {
          if (rc != 0)
            fail_msg ("\"%s\": unexpected error %s", c->in, err.msg);
          if (ns != c->ns)
            fail_msg ("\"%s\": got %lld, want %lld", c->in, (long long)ns, (long long)c->ns);
        }
      else
        {
          if (rc != -1)
            fail_msg ("\"%s\": accepted (%lld), want %s", c->in, (long long)ns, c->msg);
          if (strcmp (err.msg, c->msg) != 0)
            fail_msg ("\"%s\": message %s, want %s", c->in, err.msg, c->msg);
        }
      cimg_error_clear (&err);
    }
}

static void
test_format_duration (void **state)
{
  (void)state;
  static const struct
  {
    int64_t ns;
    const char *s;
  } cases[] = {
    { 0, "0s" },
    { 1, "1ns" },
    { 999, "999ns" },
    { 1000, "1\xc2\xb5s" },
    { 1500, "1.5\xc2\xb5s" },
    { 300000, "300\xc2\xb5s" },
    { 1000000, "1ms" },
    { 1500000, "1.5ms" },
    { 999999999, "999.999999ms" },
    { 1000000000, "1s" },
    { 1500000000, "1.5s" },
    { 60000000000LL, "1m0s" },
    { 90000000000LL, "1m30s" },
    { 3600000000000LL, "1h0m0s" },
    { 5400000000000LL, "1h30m0s" },
    { 7200000000000LL, "2h0m0s" },
    { -1500000000, "-1.5s" },
    { INT64_MAX, "2562047h47m16.854775807s" },
    { INT64_MIN, "-2562047h47m16.854775808s" },
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    {
      cleanup_free char *s = cimg_format_go_duration (cases[i].ns);
      if (strcmp (s, cases[i].s) != 0)
        fail_msg ("%lld: got %s, want %s", (long long)cases[i].ns, s, cases[i].s);
      /* what is printed parses back to the same value */
      int64_t back;
      cimg_error_t err = { 0 };
      assert_int_equal (cimg_parse_go_duration (s, &back, &err), 0);
      assert_true (back == cases[i].ns);
    }
}

/* The Healthcheck object of one Dockerfile line, or NULL with *msg set. */
static json_t *
healthcheck_of (const char *line, char **msg)
{
  cimg_error_t err = { 0 };
  cleanup_free char *text = xasprintf ("%s\n", line);
  cleanup_dockerfile struct cimg_dockerfile *df
      = cimg_build_parse ("Dockerfile", text, strlen (text), &err);
  if (df == NULL)
    fail_msg ("parse %s: %s", line, err.msg);
  assert_int_equal (df->n_instrs, 1);
  json_t *hc = cimg_build_healthcheck (&df->instrs[0], &err);
  if (hc == NULL)
    *msg = xstrdup (err.msg);
  cimg_error_clear (&err);
  return hc;
}

static void
assert_hc (const char *line, const char *want)
{
  char *msg = NULL;
  cleanup_json json_t *hc = healthcheck_of (line, &msg);
  if (hc == NULL)
    fail_msg ("%s: %s", line, msg);
  cleanup_free char *got = json_dumps (hc, JSON_COMPACT);
  if (strcmp (got, want) != 0)
    fail_msg ("%s:\n got  %s\n want %s", line, got, want);
}

static void
assert_hc_error (const char *line, const char *want)
{
  cleanup_free char *msg = NULL;
  cleanup_json json_t *hc = healthcheck_of (line, &msg);
  if (hc)
    fail_msg ("%s: accepted", line);
  if (strcmp (msg, want) != 0)
    fail_msg ("%s:\n got  %s\n want %s", line, msg, want);
}

static void
test_healthcheck_object (void **state)
{
  (void)state;
  assert_hc ("HEALTHCHECK CMD true", "{\"Test\":[\"CMD-SHELL\",\"true\"]}");
  assert_hc ("HEALTHCHECK CMD [\"/bin/check\", \"-q\"]",
             "{\"Test\":[\"CMD\",\"/bin/check\",\"-q\"]}");
  assert_hc ("HEALTHCHECK --interval=1m30s --timeout=5s --start-period=2m --start-interval=500ms "
             "--retries=3 CMD curl -f http://localhost/",
             "{\"Test\":[\"CMD-SHELL\",\"curl -f http://localhost/\"],\"Interval\":90000000000,"
             "\"Timeout\":5000000000,\"StartPeriod\":120000000000,\"StartInterval\":500000000,"
             "\"Retries\":3}");
  /* zero is left out (omitempty); an empty value is no value; exactly 1ms is allowed */
  assert_hc ("HEALTHCHECK --interval=0s --timeout=0 --retries=0 CMD true",
             "{\"Test\":[\"CMD-SHELL\",\"true\"]}");
  assert_hc ("HEALTHCHECK --interval= --retries= CMD true", "{\"Test\":[\"CMD-SHELL\",\"true\"]}");
  assert_hc ("HEALTHCHECK --timeout=1ms --retries=+7 CMD true",
             "{\"Test\":[\"CMD-SHELL\",\"true\"],\"Timeout\":1000000,\"Retries\":7}");
  assert_hc ("HEALTHCHECK --retries=2147483647 CMD true",
             "{\"Test\":[\"CMD-SHELL\",\"true\"],\"Retries\":2147483647}");
  /* BuildKit reads no option of NONE */
  assert_hc ("HEALTHCHECK --interval=5x NONE", "{\"Test\":[\"NONE\"]}");
  assert_hc ("healthcheck none", "{\"Test\":[\"NONE\"]}");

  assert_hc_error ("HEALTHCHECK --interval=500us CMD true",
                   "Interval \"interval\" cannot be less than 1ms");
  assert_hc_error ("HEALTHCHECK --timeout=-1s CMD true",
                   "Interval \"timeout\" cannot be less than 1ms");
  assert_hc_error ("HEALTHCHECK --start-period=999999ns CMD true",
                   "Interval \"start-period\" cannot be less than 1ms");
  assert_hc_error ("HEALTHCHECK --start-interval=1ns CMD true",
                   "Interval \"start-interval\" cannot be less than 1ms");
  assert_hc_error ("HEALTHCHECK --interval=5 CMD true", "time: missing unit in duration \"5\"");
  assert_hc_error ("HEALTHCHECK --timeout=1x CMD true",
                   "time: unknown unit \"x\" in duration \"1x\"");
  assert_hc_error ("HEALTHCHECK --interval=3000000h CMD true",
                   "time: invalid duration \"3000000h\"");
  assert_hc_error ("HEALTHCHECK --retries=-1 CMD true", "--retries cannot be negative (-1)");
  assert_hc_error ("HEALTHCHECK --retries=-2147483648 CMD true",
                   "--retries cannot be negative (-2147483648)");
  assert_hc_error ("HEALTHCHECK --retries=x CMD true",
                   "strconv.ParseInt: parsing \"x\": invalid syntax");
  assert_hc_error ("HEALTHCHECK --retries=1_000 CMD true",
                   "strconv.ParseInt: parsing \"1_000\": invalid syntax");
  assert_hc_error ("HEALTHCHECK --retries=0x10 CMD true",
                   "strconv.ParseInt: parsing \"0x10\": invalid syntax");
  assert_hc_error ("HEALTHCHECK --retries=3.0 CMD true",
                   "strconv.ParseInt: parsing \"3.0\": invalid syntax");
  assert_hc_error ("HEALTHCHECK --retries=+ CMD true",
                   "strconv.ParseInt: parsing \"+\": invalid syntax");
  assert_hc_error ("HEALTHCHECK --retries=2147483648 CMD true",
                   "strconv.ParseInt: parsing \"2147483648\": value out of range");
  assert_hc_error ("HEALTHCHECK --retries=-2147483649 CMD true",
                   "strconv.ParseInt: parsing \"-2147483649\": value out of range");
  /* ParseUint gives up at the first digit past 32 bits: the 'x' after it is never read */
  assert_hc_error ("HEALTHCHECK --retries=99999999999x CMD true",
                   "strconv.ParseInt: parsing \"99999999999x\": value out of range");
  /* BuildKit checks interval, timeout, start-period, start-interval, then retries */
  assert_hc_error ("HEALTHCHECK --retries=-1 --start-interval=1us --timeout=1x CMD true",
                   "time: unknown unit \"x\" in duration \"1x\"");
}

/* The same options through --change (import, commit), and the text the build's history and
   step key see: equal configs give equal text, so the key never confuses two of them. */
static void
test_change_and_desc (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  cleanup_json json_t *cc = json_object ();
  assert_int_equal (cimg_config_apply_change (
                        cc, "HEALTHCHECK --interval=90s --retries=3 CMD [\"/check\"]", &err),
                    0);
  cleanup_free char *got = json_dumps (json_object_get (cc, "Healthcheck"), JSON_COMPACT);
  assert_string_equal (got, "{\"Test\":[\"CMD\",\"/check\"],\"Interval\":90000000000,"
                            "\"Retries\":3}");
  /* HEALTHCHECK NONE replaces the whole object */
  assert_int_equal (cimg_config_apply_change (cc, "HEALTHCHECK NONE", &err), 0);
  free (got);
  got = json_dumps (json_object_get (cc, "Healthcheck"), JSON_COMPACT);
  assert_string_equal (got, "{\"Test\":[\"NONE\"]}");
  /* an error names the line */
  const char *bad[] = { "HEALTHCHECK --timeout=10us CMD true", NULL };
  assert_int_equal (cimg_config_apply_changes (cc, (char *const *)bad, &err), -1);
  assert_string_equal (err.msg, "change \"HEALTHCHECK --timeout=10us CMD true\": Interval "
                                "\"timeout\" cannot be less than 1ms");
  cimg_error_clear (&err);

  static const struct
  {
    const char *line, *desc;
  } descs[] = {
    { "HEALTHCHECK CMD true", "HEALTHCHECK [\"CMD-SHELL\",\"true\"]" },
    { "HEALTHCHECK --interval=90s --timeout=5000ms --start-period=0s --retries=3 CMD true",
      "HEALTHCHECK --interval=1m30s --timeout=5s --retries=3 [\"CMD-SHELL\",\"true\"]" },
    { "HEALTHCHECK --interval=1m30s --timeout=5s --retries=+3 CMD true",
      "HEALTHCHECK --interval=1m30s --timeout=5s --retries=3 [\"CMD-SHELL\",\"true\"]" },
    { "HEALTHCHECK --start-interval=1.5ms CMD [\"a\"]",
      "HEALTHCHECK --start-interval=1.5ms [\"CMD\",\"a\"]" },
    { "HEALTHCHECK --interval=5s NONE", "HEALTHCHECK [\"NONE\"]" },
  };
  for (size_t i = 0; i < sizeof descs / sizeof descs[0]; i++)
    {
      cleanup_free char *text = xasprintf ("%s\n", descs[i].line);
      cleanup_dockerfile struct cimg_dockerfile *df
          = cimg_build_parse ("Dockerfile", text, strlen (text), &err);
      assert_non_null (df);
      cleanup_json json_t *c2 = json_object ();
      struct cimg_meta_ctx m = { .escape = '\\' };
      cleanup_free char *desc = NULL;
      assert_int_equal (cimg_build_apply_meta (c2, &df->instrs[0], &m, &desc, &err), 0);
      if (strcmp (desc, descs[i].desc) != 0)
        fail_msg ("%s:\n got  %s\n want %s", descs[i].line, desc, descs[i].desc);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_parse_duration),
    cmocka_unit_test (test_format_duration),
    cmocka_unit_test (test_healthcheck_object),
    cmocka_unit_test (test_change_and_desc),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
