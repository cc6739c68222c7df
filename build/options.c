/* The pure parts of the newer build features: heredoc body expansion, platforms and the platform
   ARGs BuildKit predefines, and RUN --mount specs. No store, no I/O: unit-tested on their own. */
#include "build/build-internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>

int
cimg_build_expand_heredoc (const char *body, char *const *env, char **out, cimg_error_t *err)
{
  /* BuildKit expands COPY/ADD heredocs with a lexer of its own: escape '\\' whatever the
     Dockerfile's, and SkipProcessQuotes, so quotes are kept and do not stop expansion (as a
     shell's unquoted heredoc). */
  struct build_lex_opts o = { .skip_quotes = true };
  return build_expand (body, '\\', env, &o, out, NULL, err);
}

/* ---------------------------------------------------------------- platforms */

static void
lower_copy (char *dst, size_t n, const char *s, size_t len)
{
  if (len >= n)
    len = n - 1;
  for (size_t i = 0; i < len; i++)
    dst[i] = (char)tolower ((unsigned char)s[i]);
  dst[len] = '\0';
}

/* containerd's platforms.Normalize for the names Docker users write. */
static void
normalize (struct cimg_platform *p)
{
  static const struct
  {
    const char *from, *arch, *variant;
  } map[] = { { "x86_64", "amd64", "" }, { "x86-64", "amd64", "" },   { "aarch64", "arm64", NULL },
              { "armhf", "arm", "v7" },  { "armel", "arm", "v6" },    { "i386", "386", "" },
              { "i686", "386", "" },     { "ppc64el", "ppc64le", "" } };
  for (size_t i = 0; i < ARRAY_SIZE (map); i++)
    if (strcmp (p->arch, map[i].from) == 0)
      {
        snprintf (p->arch, sizeof p->arch, "%s", map[i].arch);
        if (map[i].variant && p->variant[0] == '\0')
          snprintf (p->variant, sizeof p->variant, "%s", map[i].variant);
      }
  if (strcmp (p->arch, "arm64") == 0
      && (strcmp (p->variant, "v8") == 0 || strcmp (p->variant, "8") == 0))
    p->variant[0] = '\0';
  else if (strcmp (p->arch, "arm") == 0 && p->variant[0] == '\0')
    snprintf (p->variant, sizeof p->variant, "v7");
  else if (strcmp (p->arch, "arm") == 0 && isdigit ((unsigned char)p->variant[0]))
    {
      memmove (p->variant + 1, p->variant, sizeof p->variant - 2);
      p->variant[sizeof p->variant - 1] = '\0';
      p->variant[0] = 'v';
    }
}

int
cimg_build_platform_parse (const char *s, struct cimg_platform *p, cimg_error_t *err)
{
  memset (p, 0, sizeof *p);
  const char *parts[4] = { 0 };
  size_t lens[4] = { 0 }, n = 0;
  for (const char *c = s;;)
    {
      size_t k = strcspn (c, "/");
      if (n == 3 || k == 0 || k >= sizeof p->arch)
        return cimg_error_set (err, EINVAL, "invalid platform \"%s\": want os/arch[/variant]", s);
      parts[n] = c;
      lens[n++] = k;
      if (c[k] == '\0')
        break;
      c += k + 1;
    }
  if (n == 1)
    {
      /* "arm64" alone: the OS is linux (the only one cimg builds for). */
      snprintf (p->os, sizeof p->os, "linux");
      lower_copy (p->arch, sizeof p->arch, parts[0], lens[0]);
    }
  else
    {
      lower_copy (p->os, sizeof p->os, parts[0], lens[0]);
      lower_copy (p->arch, sizeof p->arch, parts[1], lens[1]);
      if (n == 3)
        lower_copy (p->variant, sizeof p->variant, parts[2], lens[2]);
    }
  for (const char *c = p->os; *c; c++)
    if (!isalnum ((unsigned char)*c))
      return cimg_error_set (err, EINVAL, "invalid platform \"%s\": bad OS", s);
  for (const char *c = p->arch; *c; c++)
    if (!isalnum ((unsigned char)*c) && *c != '_' && *c != '-')
      return cimg_error_set (err, EINVAL, "invalid platform \"%s\": bad architecture", s);
  normalize (p);
  return 0;
}

void
cimg_build_platform_host (struct cimg_platform *p)
{
  memset (p, 0, sizeof *p);
  snprintf (p->os, sizeof p->os, "linux");
  struct utsname u;
  const char *m = uname (&u) == 0 ? u.machine : "amd64";
  lower_copy (p->arch, sizeof p->arch, m, strlen (m));
  if (strcmp (p->arch, "armv7l") == 0 || strcmp (p->arch, "armv6l") == 0)
    {
      p->variant[0] = 'v';
      p->variant[1] = p->arch[4];
      p->variant[2] = '\0';
      snprintf (p->arch, sizeof p->arch, "arm");
    }
  normalize (p);
}

char *
cimg_build_platform_string (const struct cimg_platform *p)
{
  return p->variant[0] ? xasprintf ("%s/%s/%s", p->os, p->arch, p->variant)
                       : xasprintf ("%s/%s", p->os, p->arch);
}

char **
cimg_build_platform_args (const struct cimg_platform *build, const struct cimg_platform *target)
{
  char **v = xzalloc (sizeof (char *));
  const struct cimg_platform *ps[2] = { build, target };
  static const char *const pre[2] = { "BUILD", "TARGET" };
  for (int i = 0; i < 2; i++)
    {
      cleanup_free char *plat = cimg_build_platform_string (ps[i]);
      char *kv[4]
          = { xasprintf ("%sPLATFORM=%s", pre[i], plat), xasprintf ("%sOS=%s", pre[i], ps[i]->os),
              xasprintf ("%sARCH=%s", pre[i], ps[i]->arch),
              xasprintf ("%sVARIANT=%s", pre[i], ps[i]->variant) };
      for (int k = 0; k < 4; k++)
        {
          cimg_strv_append (&v, kv[k]);
          free (kv[k]);
        }
    }
  return v;
}

/* ---------------------------------------------------------------- RUN --mount */

void
cimg_build_mount_clear (struct cimg_build_mount *m)
{
  free (m->target);
  free (m->source);
  free (m->from);
  free (m->id);
  free (m->env);
  memset (m, 0, sizeof *m);
}

static int
parse_bool (const char *key, const char *v, bool *out, cimg_error_t *err)
{
  if (v == NULL || strcasecmp (v, "true") == 0 || strcmp (v, "1") == 0)
    *out = true;
  else if (strcasecmp (v, "false") == 0 || strcmp (v, "0") == 0)
    *out = false;
  else
    return cimg_error_set (err, EINVAL, "invalid value for %s: %s", key, v);
  return 0;
}

static int
parse_uint (const char *key, const char *v, int base, unsigned long max, unsigned long *out,
            cimg_error_t *err)
{
  char *end;
  errno = 0;
  unsigned long n = v ? strtoul (v, &end, base) : 0;
  if (v == NULL || *v == '\0' || *end || errno || n > max || *v == '-')
    return cimg_error_set (err, EINVAL, "invalid value for %s: %s", key, v ? v : "");
  *out = n;
  return 0;
}

/* "64m", "1g", "4096": bytes, as Docker's units.RAMInBytes. */
static int
parse_size (const char *v, long long *out, cimg_error_t *err)
{
  char *end;
  errno = 0;
  double n = v ? strtod (v, &end) : -1;
  if (v == NULL || end == v || errno || n < 0)
    return cimg_error_set (err, EINVAL, "invalid size: %s", v ? v : "");
  long long mul = 1;
  switch (tolower ((unsigned char)*end))
    {
    case '\0':
      break;
    case 'k':
      mul = 1LL << 10;
      break;
    case 'm':
      mul = 1LL << 20;
      break;
    case 'g':
      mul = 1LL << 30;
      break;
    default:
      return cimg_error_set (err, EINVAL, "invalid size: %s", v);
    }
  if (*end && end[1] && !(tolower ((unsigned char)end[1]) == 'b' && end[2] == '\0'))
    return cimg_error_set (err, EINVAL, "invalid size: %s", v);
  *out = (long long)(n * (double)mul);
  return 0;
}

int
cimg_build_mount_parse (const char *spec, struct cimg_build_mount *m, cimg_error_t *err)
{
  memset (m, 0, sizeof *m);
  m->type = CIMG_BUILD_MOUNT_BIND;
  m->readonly = -1;
  m->required = false;
  m->mode = (unsigned)-1;
  m->uid = (unsigned)-1;
  m->gid = (unsigned)-1;
  cleanup_free char *copy = xstrdup (spec);
  /* The type first: the defaults of the other keys depend on it. */
  for (char *save = NULL, *f = strtok_r (copy, ",", &save); f; f = strtok_r (NULL, ",", &save))
    if (strncasecmp (f, "type=", 5) == 0)
      {
        const char *t = f + 5;
        if (strcmp (t, "bind") == 0)
          m->type = CIMG_BUILD_MOUNT_BIND;
        else if (strcmp (t, "cache") == 0)
          m->type = CIMG_BUILD_MOUNT_CACHE;
        else if (strcmp (t, "tmpfs") == 0)
          m->type = CIMG_BUILD_MOUNT_TMPFS;
        else if (strcmp (t, "secret") == 0)
          m->type = CIMG_BUILD_MOUNT_SECRET;
        else if (strcmp (t, "ssh") == 0)
          return cimg_error_set (err, ENOTSUP, "mount type ssh is not supported");
        else
          return cimg_error_set (err, EINVAL, "unsupported mount type \"%s\"", t);
      }
  free (copy);
  copy = xstrdup (spec);
  int rc = 0;
  for (char *save = NULL, *f = strtok_r (copy, ",", &save); f && rc == 0;
       f = strtok_r (NULL, ",", &save))
    {
      char *eq = strchr (f, '=');
      if (eq)
        *eq = '\0';
      const char *v = eq ? eq + 1 : NULL;
      for (char *c = f; *c; c++)
        *c = (char)tolower ((unsigned char)*c);
      /* Initialised for gcc -O3, which cannot see that parse_* set them when they return 0. */
      unsigned long n = 0;
      bool b = false;
      if (strcmp (f, "type") == 0)
        continue;
      if (v == NULL && strcmp (f, "readonly") && strcmp (f, "ro") && strcmp (f, "readwrite")
          && strcmp (f, "rw") && strcmp (f, "required"))
        {
          rc = cimg_error_set (err, EINVAL, "invalid field '%s' must be a key=value pair", f);
          break;
        }
      if (strcmp (f, "target") == 0 || strcmp (f, "dst") == 0 || strcmp (f, "destination") == 0)
        {
          free (m->target);
          m->target = xstrdup (v);
        }
      else if (strcmp (f, "source") == 0 || strcmp (f, "src") == 0)
        {
          free (m->source);
          m->source = xstrdup (v);
        }
      else if (strcmp (f, "from") == 0)
        {
          free (m->from);
          m->from = xstrdup (v);
        }
      else if (strcmp (f, "id") == 0)
        {
          free (m->id);
          m->id = xstrdup (v);
        }
      else if (strcmp (f, "env") == 0 && m->type == CIMG_BUILD_MOUNT_SECRET)
        {
          free (m->env);
          m->env = xstrdup (v);
        }
      else if (strcmp (f, "readonly") == 0 || strcmp (f, "ro") == 0)
        {
          if ((rc = parse_bool (f, v, &b, err)) == 0)
            m->readonly = b;
        }
      else if (strcmp (f, "readwrite") == 0 || strcmp (f, "rw") == 0)
        {
          if ((rc = parse_bool (f, v, &b, err)) == 0)
            m->readonly = !b;
        }
      else if (strcmp (f, "required") == 0)
        rc = parse_bool (f, v, &m->required, err);
      else if (strcmp (f, "sharing") == 0 && m->type == CIMG_BUILD_MOUNT_CACHE)
        {
          if (strcmp (v, "shared") == 0)
            m->sharing = CIMG_BUILD_SHARING_SHARED;
          else if (strcmp (v, "private") == 0)
            m->sharing = CIMG_BUILD_SHARING_PRIVATE;
          else if (strcmp (v, "locked") == 0)
            m->sharing = CIMG_BUILD_SHARING_LOCKED;
          else
            rc = cimg_error_set (err, EINVAL, "unsupported sharing value \"%s\"", v);
        }
      else if (strcmp (f, "mode") == 0
               && (m->type == CIMG_BUILD_MOUNT_CACHE || m->type == CIMG_BUILD_MOUNT_SECRET))
        {
          if ((rc = parse_uint (f, v, 8, 07777, &n, err)) == 0)
            m->mode = (unsigned)n;
        }
      else if ((strcmp (f, "uid") == 0 || strcmp (f, "gid") == 0)
               && (m->type == CIMG_BUILD_MOUNT_CACHE || m->type == CIMG_BUILD_MOUNT_SECRET))
        {
          if ((rc = parse_uint (f, v, 10, 0xfffffffe, &n, err)) == 0)
            *(f[0] == 'u' ? &m->uid : &m->gid) = (unsigned)n;
        }
      else if (strcmp (f, "size") == 0 && m->type == CIMG_BUILD_MOUNT_TMPFS)
        rc = parse_size (v, &m->size, err);
      else
        rc = cimg_error_set (err, EINVAL, "unexpected key '%s' in '%s'", f, spec);
    }
  if (rc < 0)
    {
      cimg_build_mount_clear (m);
      return -1;
    }
  if (m->type == CIMG_BUILD_MOUNT_SECRET)
    {
      if (m->id == NULL && m->target == NULL && m->env == NULL)
        goto bad_secret;
      if (m->id == NULL)
        {
          const char *t = m->target ? m->target : m->env;
          const char *sl = strrchr (t, '/');
          m->id = xstrdup (sl ? sl + 1 : t);
          if (*m->id == '\0')
            goto bad_secret;
        }
      if (m->target == NULL && m->env == NULL)
        m->target = xasprintf ("/run/secrets/%s", m->id);
      if (m->mode == (unsigned)-1)
        m->mode = 0400;
    }
  else if (m->target == NULL || *m->target == '\0')
    {
      cimg_build_mount_clear (m);
      return cimg_error_set (err, EINVAL, "mount %s requires a target", spec);
    }
  if (m->type == CIMG_BUILD_MOUNT_CACHE)
    {
      if (m->id == NULL || *m->id == '\0')
        {
          free (m->id);
          m->id = xstrdup (m->target);
        }
      if (m->mode == (unsigned)-1)
        m->mode = 0755;
      if (m->from)
        {
          cimg_build_mount_clear (m);
          return cimg_error_set (err, ENOTSUP, "a cache mount with from= is not supported");
        }
    }
  if (m->type != CIMG_BUILD_MOUNT_BIND && m->type != CIMG_BUILD_MOUNT_CACHE && m->from)
    {
      cimg_build_mount_clear (m);
      return cimg_error_set (err, EINVAL, "from= is only for bind and cache mounts");
    }
  if (m->readonly < 0)
    m->readonly = m->type == CIMG_BUILD_MOUNT_BIND;
  if (m->uid == (unsigned)-1)
    m->uid = 0;
  if (m->gid == (unsigned)-1)
    m->gid = 0;
  return 0;
bad_secret:
  cimg_build_mount_clear (m);
  return cimg_error_set (err, EINVAL, "invalid secret mount: id or target required");
}
