/* Metadata instructions on a container config: the build's and --change's (import, commit).

   This lives in build/ because a change line is a Dockerfile instruction: it needs the parser
   and the word expansion. The store never calls it: import takes the finished container config
   from the CLI, which applies the --change lines first (see docs/build.md). */
#include "build/change.h"
#include "build/build-internal.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

void
build_env_set (char ***env, const char *k, const char *v)
{
  cleanup_free char *kv = xasprintf ("%s=%s", k, v);
  size_t n = strlen (k);
  for (size_t i = 0; *env && (*env)[i]; i++)
    if (strncmp ((*env)[i], k, n) == 0 && (*env)[i][n] == '=')
      {
        free ((*env)[i]);
        (*env)[i] = steal_pointer (&kv);
        return;
      }
  cimg_strv_append (env, kv);
}

char *
build_clean_abs (const char *p)
{
  char **parts = NULL;
  cleanup_free char *copy = xstrdup (p);
  char *save = NULL;
  for (char *t = strtok_r (copy, "/", &save); t; t = strtok_r (NULL, "/", &save))
    {
      if (strcmp (t, ".") == 0)
        continue;
      if (strcmp (t, "..") == 0)
        {
          size_t n = cimg_strv_len (parts);
          if (n)
            {
              free (parts[n - 1]);
              parts[n - 1] = NULL;
            }
          continue;
        }
      cimg_strv_append (&parts, t);
    }
  struct sbuf s = { 0 };
  for (size_t i = 0; parts && parts[i]; i++)
    sbuf_addf (&s, "/%s", parts[i]);
  cimg_strv_free (parts);
  if (s.n == 0)
    sbuf_addc (&s, '/');
  return sbuf_steal (&s);
}

char *
build_upper_name (const char *n)
{
  char *u = xstrdup (n);
  for (char *p = u; *p; p++)
    *p = (char)toupper ((unsigned char)*p);
  return u;
}

char *
build_join_args (char *const *v, bool json)
{
  if (json)
    {
      cleanup_json json_t *a = cimg_json_from_strv (v);
      return json_dumps (a, JSON_COMPACT);
    }
  struct sbuf s = { 0 };
  for (size_t i = 0; v && v[i]; i++)
    sbuf_addf (&s, "%s%s", i ? " " : "", v[i]);
  return sbuf_steal (&s);
}

char **
build_command_of (json_t *cc, const struct cimg_instruction *in)
{
  if (in->json)
    {
      char **v = xzalloc (sizeof (char *));
      for (size_t i = 0; in->args[i]; i++)
        cimg_strv_append (&v, in->args[i]);
      return v;
    }
  char **v = cimg_json_to_strv (json_object_get (cc, "Shell"));
  if (v[0] == NULL)
    {
      cimg_strv_append (&v, "/bin/sh");
      cimg_strv_append (&v, "-c");
    }
  cimg_strv_append (&v, in->args[0] ? in->args[0] : "");
  return v;
}

static int
apply_pairs (json_t *cc, const struct cimg_instruction *in, struct cimg_meta_ctx *m, struct sbuf *d,
             cimg_error_t *err)
{
  bool label = in->name[0] == 'l';
  for (size_t i = 0; in->args[i] && in->args[i + 1]; i += 2)
    {
      cleanup_free char *k = NULL, *v = NULL;
      if (cimg_build_expand_word (in->args[i], m->escape, m->env, &k, err) < 0
          || cimg_build_expand_word (in->args[i + 1], m->escape, m->env, &v, err) < 0)
        return -1;
      sbuf_addf (d, " %s=%s", k, v);
      if (label)
        {
          json_object_set_new (cimg_json_object_field (cc, "Labels"), k, json_string (v));
          continue;
        }
      cleanup_strv char **e2 = cimg_json_to_strv (json_object_get (cc, "Env"));
      build_env_set (&e2, k, v);
      json_object_set_new (cc, "Env", cimg_json_from_strv (e2));
      build_env_set (&m->env, k, v);
    }
  return 0;
}

static int
apply_words (json_t *cc, const struct cimg_instruction *in, struct cimg_meta_ctx *m,
             const char *upper, struct sbuf *d, cimg_error_t *err)
{
  bool expose = in->name[0] == 'e';
  json_t *set = cimg_json_object_field (cc, expose ? "ExposedPorts" : "Volumes");
  for (size_t i = 0; in->args[i]; i++)
    {
      cleanup_strv char **w = NULL;
      if (cimg_build_expand_words (in->args[i], m->escape, m->env, &w, err) < 0)
        return -1;
      for (size_t k = 0; w[k]; k++)
        {
          cleanup_free char *key = expose ? cimg_json_port_key (w[k]) : xstrdup (w[k]);
          if (key == NULL || *key == '\0')
            return cimg_error_set (err, EINVAL, "%s: invalid %s \"%s\"", upper,
                                   expose ? "port" : "path", w[k]);
          json_object_set_new (set, key, json_object ());
          sbuf_addf (d, " %s", key);
        }
    }
  return 0;
}

/* ---------------------------------------------------------------- HEALTHCHECK options */

/* strconv.ParseInt (s, 10, 32), with its messages. */
static int
parse_int32 (const char *s0, int64_t *out, cimg_error_t *err)
{
  const char *s = s0;
  bool neg = false;
  if (*s == '+' || *s == '-')
    neg = *s++ == '-';
  cleanup_free char *q = go_quote (s0);
  if (*s == '\0')
    return cimg_error_set (err, EINVAL, "strconv.ParseInt: parsing %s: invalid syntax", q);
  uint64_t n = 0;
  bool range = false;
  for (; *s; s++)
    {
      if (*s < '0' || *s > '9')
        return cimg_error_set (err, EINVAL, "strconv.ParseInt: parsing %s: invalid syntax", q);
      n = n * 10 + (uint64_t)(*s - '0');
      /* ParseUint stops at the first digit that overflows 32 bits: what follows is not read */
      if (n > UINT32_MAX)
        {
          range = true;
          break;
        }
    }
  if (range || (!neg && n > INT32_MAX) || (neg && n > (uint64_t)INT32_MAX + 1))
    return cimg_error_set (err, ERANGE, "strconv.ParseInt: parsing %s: value out of range", q);
  *out = neg ? -(int64_t)n : (int64_t)n;
  return 0;
}

/* HEALTHCHECK's duration flags and the HealthConfig fields they set. */
static const char *const hc_opts[][2] = { { "interval", "Interval" },
                                          { "timeout", "Timeout" },
                                          { "start-period", "StartPeriod" },
                                          { "start-interval", "StartInterval" } };

/* BuildKit's parseOptInterval: "" is unset (0), 0 stays 0, anything else at least 1ms. */
static int
opt_interval (const struct cimg_instruction *in, const char *name, int64_t *out, cimg_error_t *err)
{
  *out = 0;
  const char *v = cimg_build_flag_value (in, name);
  if (v == NULL || *v == '\0')
    return 0;
  if (cimg_parse_go_duration (v, out, err) < 0)
    return -1;
  if (*out != 0 && *out < 1000000)
    return cimg_error_set (err, EINVAL, "Interval \"%s\" cannot be less than 1ms", name);
  return 0;
}

json_t *
cimg_build_healthcheck (const struct cimg_instruction *in, cimg_error_t *err)
{
  json_t *test = json_array ();
  cleanup_json json_t *hc = json_pack ("{s:o}", "Test", test);
  /* BuildKit reads no flag of HEALTHCHECK NONE: its options are ignored. */
  if (in->args[0] == NULL || strcasecmp (in->args[0], "NONE") == 0)
    {
      json_array_append_new (test, json_string ("NONE"));
      return steal_pointer (&hc);
    }
  if (in->json)
    {
      json_array_append_new (test, json_string ("CMD"));
      for (size_t i = 1; in->args[i]; i++)
        json_array_append_new (test, json_string (in->args[i]));
    }
  else
    {
      json_array_append_new (test, json_string ("CMD-SHELL"));
      json_array_append_new (test, json_string (in->args[1] ? in->args[1] : ""));
    }
  /* Docker's HealthConfig, fields omitted when zero (omitempty), nanoseconds as integers. */
  for (size_t i = 0; i < ARRAY_SIZE (hc_opts); i++)
    {
      int64_t ns;
      if (opt_interval (in, hc_opts[i][0], &ns, err) < 0)
        return NULL;
      if (ns)
        json_object_set_new (hc, hc_opts[i][1], json_integer (ns));
    }
  const char *retries = cimg_build_flag_value (in, "retries");
  if (retries && *retries)
    {
      int64_t r = 0;
      if (parse_int32 (retries, &r, err) < 0)
        return NULL;
      if (r < 0)
        {
          cimg_error_set (err, EINVAL, "--retries cannot be negative (%lld)", (long long)r);
          return NULL;
        }
      if (r)
        json_object_set_new (hc, "Retries", json_integer (r));
    }
  return steal_pointer (&hc);
}

/* The history and cache-key text: the options that are set, normalised (so equal configs give
   equal text and different ones different text), then the test as JSON. */
static void
healthcheck_desc (json_t *hc, struct sbuf *d)
{
  for (size_t i = 0; i < ARRAY_SIZE (hc_opts); i++)
    {
      json_t *v = json_object_get (hc, hc_opts[i][1]);
      if (v)
        {
          cleanup_free char *t = cimg_format_go_duration ((int64_t)json_integer_value (v));
          sbuf_addf (d, " --%s=%s", hc_opts[i][0], t);
        }
    }
  json_t *r = json_object_get (hc, "Retries");
  if (r)
    sbuf_addf (d, " --retries=%lld", (long long)json_integer_value (r));
  cleanup_free char *j = json_dumps (json_object_get (hc, "Test"), JSON_COMPACT);
  sbuf_addf (d, " %s", j);
}

static int
apply_healthcheck (json_t *cc, const struct cimg_instruction *in, struct sbuf *d, cimg_error_t *err)
{
  json_t *hc = cimg_build_healthcheck (in, err);
  if (hc == NULL)
    return -1;
  healthcheck_desc (hc, d);
  json_object_set_new (cc, "Healthcheck", hc);
  return 0;
}

int
cimg_build_apply_meta (json_t *cc, const struct cimg_instruction *in, struct cimg_meta_ctx *m,
                       char **desc, cimg_error_t *err)
{
  const char *n = in->name;
  struct sbuf d = { 0 };
  cleanup_free char *upper = build_upper_name (n);
  sbuf_addf (&d, "%s", upper);
  int rc = 0;
  if (strcmp (n, "env") == 0 || strcmp (n, "label") == 0)
    rc = apply_pairs (cc, in, m, &d, err);
  else if (strcmp (n, "cmd") == 0 || strcmp (n, "entrypoint") == 0)
    {
      cleanup_strv char **cmd = build_command_of (cc, in);
      json_object_set_new (cc, n[0] == 'c' ? "Cmd" : "Entrypoint", cimg_json_from_strv (cmd));
      cleanup_free char *j = build_join_args (cmd, true);
      sbuf_addf (&d, " %s", j);
      /* Docker: ENTRYPOINT resets a Cmd that this run did not set (an inherited one). */
      if (n[0] == 'e' && !m->cmd_set)
        json_object_set_new (cc, "Cmd", json_null ());
      if (n[0] == 'c')
        m->cmd_set = true;
    }
  else if (strcmp (n, "shell") == 0)
    {
      json_object_set_new (cc, "Shell", cimg_json_from_strv (in->args));
      cleanup_free char *j = build_join_args (in->args, true);
      sbuf_addf (&d, " %s", j);
    }
  else if (strcmp (n, "workdir") == 0 || strcmp (n, "user") == 0 || strcmp (n, "stopsignal") == 0)
    {
      cleanup_free char *v = NULL;
      rc = cimg_build_expand_word (in->args[0] ? in->args[0] : "", m->escape, m->env, &v, err);
      if (rc == 0 && n[0] == 'w')
        {
          /* A relative WORKDIR continues the previous one. */
          const char *prev = cimg_json_str (cc, "WorkingDir");
          cleanup_free char *raw
              = v[0] == '/' ? xstrdup (v) : xasprintf ("%s/%s", prev && *prev ? prev : "", v);
          cleanup_free char *wd = build_clean_abs (raw);
          json_object_set_new (cc, "WorkingDir", json_string (wd));
          free (d.p);
          d = (struct sbuf){ 0 };
          /* the legacy builder writes one blank here, two elsewhere */
          sbuf_addf (&d, "\001WORKDIR %s", wd);
        }
      else if (rc == 0)
        {
          json_object_set_new (cc, n[0] == 'u' ? "User" : "StopSignal", json_string (v));
          sbuf_addf (&d, " %s", v);
        }
    }
  else if (strcmp (n, "expose") == 0 || strcmp (n, "volume") == 0)
    rc = apply_words (cc, in, m, upper, &d, err);
  else if (strcmp (n, "onbuild") == 0)
    {
      json_t *ob = json_object_get (cc, "OnBuild");
      if (!json_is_array (ob))
        {
          ob = json_array ();
          json_object_set_new (cc, "OnBuild", ob);
        }
      const char *t = in->sub && in->sub->original ? in->sub->original : in->text;
      json_array_append_new (ob, json_string (t));
      sbuf_addf (&d, " %s", t);
    }
  else if (strcmp (n, "healthcheck") == 0)
    rc = apply_healthcheck (cc, in, &d, err);
  else
    rc = cimg_error_set (err, EINVAL, "unknown instruction: %s", upper);
  if (rc < 0 || desc == NULL)
    {
      free (d.p);
      return rc;
    }
  *desc = sbuf_steal (&d);
  return 0;
}

/* What Docker's BuildFromConfig accepts (validCommitCommands). */
static const char *const change_ok[]
    = { "cmd",     "entrypoint", "env",  "expose", "healthcheck", "label",
        "onbuild", "stopsignal", "user", "volume", "workdir" };

static int
apply_change (json_t *cc, const char *line, bool *cmd_set, cimg_error_t *err)
{
  cleanup_free char *text = xasprintf ("%s\n", line);
  cleanup_dockerfile struct cimg_dockerfile *df
      = cimg_build_parse ("change", text, strlen (text), err);
  if (df == NULL)
    return -1;
  if (df->n_instrs != 1)
    return cimg_error_set (err, EINVAL, "expected one instruction, found %zu", df->n_instrs);
  const struct cimg_instruction *in = &df->instrs[0];
  bool known = false;
  for (size_t i = 0; i < ARRAY_SIZE (change_ok); i++)
    if (strcmp (in->name, change_ok[i]) == 0)
      known = true;
  cleanup_free char *upper = build_upper_name (in->name);
  if (!known)
    return cimg_error_set (err, EINVAL, "%s is not a valid change command", upper);
  if (in->args[0] == NULL && in->sub == NULL)
    return cimg_error_set (err, EINVAL, "%s requires at least one argument", upper);
  struct cimg_meta_ctx m = {
    .escape = df->escape,
    .env = cimg_json_to_strv (json_object_get (cc, "Env")),
    .cmd_set = *cmd_set,
  };
  int rc = cimg_build_apply_meta (cc, in, &m, NULL, err);
  cimg_strv_free (m.env);
  *cmd_set = m.cmd_set;
  return rc;
}

int
cimg_config_apply_change (json_t *cc, const char *line, cimg_error_t *err)
{
  bool cmd_set = false;
  return apply_change (cc, line, &cmd_set, err);
}

int
cimg_config_apply_changes (json_t *cc, char *const *changes, cimg_error_t *err)
{
  bool cmd_set = false;
  for (size_t i = 0; changes && changes[i]; i++)
    if (apply_change (cc, changes[i], &cmd_set, err) < 0)
      return cimg_error_wrap (err, "change \"%s\"", changes[i]);
  return 0;
}
