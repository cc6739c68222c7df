/* The --dry-run plan: what a build of a parsed Dockerfile would do, one line per instruction,
   stages numbered, FROM resolved with the ARGs that precede it, stages the target does not
   need marked as skipped. Nothing runs and nothing is read but df. */
#include "build/build-internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

struct stage
{
  size_t first, end; /* instruction range [first, end), first is the FROM */
  char *base;        /* FROM's image after expansion */
  char *name;        /* "AS name", lower case, or NULL */
  bool needed;
};

static const char *
env_get (char **env, const char *name)
{
  size_t n = strlen (name);
  const char *v = NULL;
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp (env[i], name, n) == 0 && env[i][n] == '=')
      v = env[i] + n + 1;
  return v;
}

/* The ARGs before the first FROM, with their defaults expanded in order and the build args
   that name them applied; plus the platform args buildkit predefines for FROM. */
static int
meta_env (const struct cimg_dockerfile *df, size_t nmeta, char *const *build_args, char ***out,
          cimg_error_t *err)
{
  struct cimg_platform host;
  cimg_build_platform_host (&host);
  cleanup_strv char **env = cimg_build_platform_args (&host, &host);
  /* --platform reaches the plan as TARGET* build args: a build arg naming one of the
     predefined platform ARGs replaces it. */
  for (size_t i = 0; build_args && build_args[i]; i++)
    for (size_t k = 0; env[k]; k++)
      {
        size_t n = strcspn (env[k], "=");
        if (strncmp (build_args[i], env[k], n + 1) == 0)
          {
            free (env[k]);
            env[k] = xstrdup (build_args[i]);
            break;
          }
      }
  for (size_t i = 0; i < nmeta; i++)
    {
      const struct cimg_instruction *in = &df->instrs[i];
      for (size_t k = 0; in->args[k]; k++)
        {
          const char *w = in->args[k];
          const char *eq = strchr (w, '=');
          cleanup_free char *name = eq ? xstrndup (w, (size_t)(eq - w)) : xstrdup (w);
          cleanup_free char *value = NULL;
          if (eq && cimg_build_expand_word (eq + 1, df->escape, env, &value, err) < 0)
            return cimg_error_wrap (err, "%s:%d", df->name, in->line);
          const char *given = env_get ((char **)build_args, name);
          if (given)
            {
              free (value);
              value = xstrdup (given);
            }
          if (value)
            {
              cleanup_free char *kv = xasprintf ("%s=%s", name, value);
              cimg_strv_append (&env, kv);
            }
        }
    }
  *out = steal_pointer (&env);
  return 0;
}

static void
render_json (struct sbuf *b, char *const *v)
{
  json_t *a = cimg_json_from_strv (v);
  char *s = json_dumps (a, JSON_COMPACT | JSON_ENCODE_ANY);
  sbuf_adds (b, s ? s : "[]");
  free (s);
  json_decref (a);
}

static void
render_instr (struct sbuf *b, const struct cimg_instruction *in, const char *from_base)
{
  for (const char *c = in->name; *c; c++)
    sbuf_addc (b, (char)toupper ((unsigned char)*c));
  for (size_t i = 0; in->flags[i]; i++)
    sbuf_addf (b, " %s", in->flags[i]);
  const char *nm = in->name;
  if (in->sub)
    {
      sbuf_addc (b, ' ');
      render_instr (b, in->sub, NULL);
      return;
    }
  if (!strcmp (nm, "healthcheck"))
    {
      sbuf_addf (b, " %s", in->args[0]);
      if (in->args[0] && in->args[1])
        {
          sbuf_addc (b, ' ');
          if (in->json)
            render_json (b, in->args + 1);
          else
            sbuf_adds (b, in->args[1]);
        }
      return;
    }
  if (in->json)
    {
      sbuf_addc (b, ' ');
      render_json (b, in->args);
      return;
    }
  if (!strcmp (nm, "from"))
    {
      sbuf_addf (b, " %s", from_base ? from_base : in->args[0]);
      if (in->args[1])
        sbuf_addf (b, " AS %s", in->args[2]);
      return;
    }
  if (!strcmp (nm, "env") || !strcmp (nm, "label"))
    {
      for (size_t i = 0; in->args[i] && in->args[i + 1]; i += 2)
        sbuf_addf (b, " %s=%s", in->args[i], in->args[i + 1]);
      return;
    }
  for (size_t i = 0; in->args[i]; i++)
    sbuf_addf (b, " %s", in->args[i]);
  for (size_t i = 0; i < in->n_heredocs; i++)
    {
      size_t lines = 0;
      for (const char *c = in->heredocs[i].content; *c; c++)
        lines += *c == '\n';
      sbuf_addf (b, " (heredoc %s: %zu line%s)", in->heredocs[i].name, lines,
                 lines == 1 ? "" : "s");
    }
}

/* The stage a --from= value (or FROM base) names: a stage name before `before`, or a stage
   number; -1 for an image. */
static long
stage_ref (struct stage *st, size_t nst, size_t before, const char *ref)
{
  for (size_t i = 0; i < before && i < nst; i++)
    if (st[i].name && strcasecmp (st[i].name, ref) == 0)
      return (long)i;
  char *end;
  errno = 0;
  long n = strtol (ref, &end, 10);
  if (*ref && *end == '\0' && errno == 0 && n >= 0 && (size_t)n < before)
    return n;
  return -1;
}

static void
mark_needed (struct stage *st, size_t nst, size_t i, const struct cimg_dockerfile *df, char **env)
{
  if (st[i].needed)
    return;
  st[i].needed = true;
  long dep = stage_ref (st, nst, i, st[i].base);
  if (dep >= 0)
    mark_needed (st, nst, (size_t)dep, df, env);
  for (size_t k = st[i].first; k < st[i].end; k++)
    {
      const struct cimg_instruction *in = &df->instrs[k];
      for (size_t f = 0; in->flags[f]; f++)
        {
          const char *fl = in->flags[f];
          cleanup_free char *ref = NULL;
          if (cimg_str_has_prefix (fl, "--from="))
            ref = xstrdup (fl + 7);
          else if (cimg_str_has_prefix (fl, "--mount="))
            {
              /* --mount=type=cache,from=builder,target=/x */
              for (const char *s = fl + 8; *s;)
                {
                  size_t n = strcspn (s, ",");
                  if (n > 5 && strncmp (s, "from=", 5) == 0)
                    ref = xstrndup (s + 5, n - 5);
                  s += n + (s[n] == ',');
                }
            }
          if (ref == NULL)
            continue;
          cleanup_free char *x = NULL;
          cimg_error_t e = { 0 };
          if (cimg_build_expand_word (ref, df->escape, env, &x, &e) < 0)
            {
              cimg_error_clear (&e);
              x = xstrdup (ref);
            }
          dep = stage_ref (st, nst, i, x);
          if (dep >= 0)
            mark_needed (st, nst, (size_t)dep, df, env);
        }
    }
}

int
cimg_build_plan (const struct cimg_dockerfile *df, char *const *build_args, const char *target,
                 char **out, cimg_error_t *err)
{
  size_t nmeta = 0;
  while (nmeta < df->n_instrs && strcmp (df->instrs[nmeta].name, "from") != 0)
    {
      if (strcmp (df->instrs[nmeta].name, "arg") != 0)
        return cimg_error_set (err, EINVAL,
                               "%s:%d: no build stage in current context (%s before FROM)",
                               df->name, df->instrs[nmeta].line, df->instrs[nmeta].name);
      nmeta++;
    }
  if (nmeta == df->n_instrs)
    return cimg_error_set (err, EINVAL, "%s: no build stage in current context", df->name);

  cleanup_strv char **env = NULL;
  if (meta_env (df, nmeta, build_args, &env, err) < 0)
    return -1;

  size_t nst = 0;
  struct stage *st = xzalloc ((df->n_instrs + 1) * sizeof *st);
  int ret = -1;
  struct sbuf b = { 0 };
  for (size_t i = nmeta; i < df->n_instrs; i++)
    {
      if (strcmp (df->instrs[i].name, "from") != 0)
        continue;
      if (nst > 0)
        st[nst - 1].end = i;
      const struct cimg_instruction *in = &df->instrs[i];
      struct stage *cur = &st[nst++];
      cur->first = i;
      cur->end = df->n_instrs;
      if (cimg_build_expand_word (in->args[0], df->escape, env, &cur->base, err) < 0)
        {
          cimg_error_wrap (err, "%s:%d", df->name, in->line);
          goto out;
        }
      if (cur->base[0] == '\0')
        {
          cimg_error_set (err, EINVAL, "%s:%d: base name (%s) should not be blank", df->name,
                          in->line, in->args[0]);
          goto out;
        }
      if (in->args[1])
        cur->name = xstrdup (in->args[2]);
    }

  size_t t = nst - 1;
  if (target && *target)
    {
      long r = -1;
      for (size_t i = 0; i < nst; i++)
        if (st[i].name && strcasecmp (st[i].name, target) == 0)
          r = (long)i;
      if (r < 0)
        {
          cimg_error_set (err, ENOENT, "target stage \"%s\" could not be found", target);
          goto out;
        }
      t = (size_t)r;
    }
  mark_needed (st, nst, t, df, env);

  for (size_t i = 0; i < nmeta; i++)
    {
      sbuf_addf (&b, "%s:%d ", df->name, df->instrs[i].line);
      render_instr (&b, &df->instrs[i], NULL);
      sbuf_addc (&b, '\n');
    }
  for (size_t s = 0; s < nst; s++)
    {
      sbuf_addf (&b, "# stage %zu", s);
      if (st[s].name)
        sbuf_addf (&b, " \"%s\"", st[s].name);
      if (!st[s].needed)
        sbuf_addf (&b, " (skipped: not needed for the target)");
      else if (s == t)
        sbuf_adds (&b, " (target)");
      sbuf_addc (&b, '\n');
      for (size_t k = st[s].first; k < st[s].end; k++)
        {
          sbuf_addf (&b, "%s:%d ", df->name, df->instrs[k].line);
          render_instr (&b, &df->instrs[k], k == st[s].first ? st[s].base : NULL);
          sbuf_addc (&b, '\n');
        }
    }
  *out = sbuf_steal (&b);
  ret = 0;
out:
  for (size_t i = 0; i < nst; i++)
    {
      free (st[i].base);
      free (st[i].name);
    }
  free (st);
  free (b.p);
  return ret;
}
