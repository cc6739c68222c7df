/* .dockerignore as Docker reads it (moby/patternmatcher and its ignorefile reader): each line is
   cleaned like Go's filepath.Clean, checked with filepath.Match's syntax, then matched the way
   patternmatcher matches, including its shortcuts (a pattern without wildcards is compared
   exactly, "x/" followed by "**" by prefix, a leading "**" by suffix), so that the same files are
   left out. */
#include "build/build-internal.h"

#include <errno.h>
#include <string.h>

enum
{
  T_LIT,       /* bytes */
  T_STAR,      /* regexp "[^/]*" */
  T_ONE,       /* regexp "[^/]" */
  T_DSTAR,     /* regexp "(.*" "/)?": empty, or anything ending in a slash */
  T_DSTAR_END, /* regexp ".*" */
  T_CLASS      /* regexp "[...]" */
};

struct range
{
  uint32_t lo, hi;
};

struct tok
{
  int kind;
  char *lit; /* T_LIT */
  size_t n;
  bool negated; /* T_CLASS */
  struct range *ranges;
  size_t nranges;
};

enum
{
  M_EXACT,
  M_PREFIX,
  M_SUFFIX,
  M_REGEXP
};

struct pattern
{
  char *text; /* cleaned, without the '!' */
  bool exclusion;
  int type;
  struct tok *toks;
  size_t ntoks;
  char **dirs;
};

struct cimg_dockerignore
{
  struct pattern *pats;
  size_t n;
  bool exclusions;
  char **cleaned; /* as given back by cimg_dockerignore_patterns */
};

/* ---------------------------------------------------------------- paths */

/* Go's filepath.Clean on Unix. */
static char *
path_clean (const char *p)
{
  bool rooted = *p == '/';
  char **comps = xzalloc (sizeof (char *));
  size_t n = 0;
  const char *s = p;
  while (*s)
    {
      size_t k = strcspn (s, "/");
      if (k == 0 || (k == 1 && s[0] == '.'))
        ;
      else if (k == 2 && s[0] == '.' && s[1] == '.')
        {
          if (n > 0 && strcmp (comps[n - 1], "..") != 0)
            {
              free (comps[--n]);
              comps[n] = NULL;
            }
          else if (!rooted)
            {
              cimg_strv_append (&comps, "..");
              n++;
            }
        }
      else
        {
          cleanup_free char *c = xstrndup (s, k);
          cimg_strv_append (&comps, c);
          n++;
        }
      s += k;
      if (*s == '/')
        s++;
    }
  struct sbuf b = { 0 };
  if (rooted)
    sbuf_addc (&b, '/');
  for (size_t i = 0; i < n; i++)
    {
      if (i)
        sbuf_addc (&b, '/');
      sbuf_adds (&b, comps[i]);
    }
  cimg_strv_free (comps);
  if (b.n == 0)
    sbuf_addc (&b, '.');
  return sbuf_steal (&b);
}

static char **
split_slash (const char *p)
{
  char **v = xzalloc (sizeof (char *));
  for (;;)
    {
      size_t k = strcspn (p, "/");
      cleanup_free char *c = xstrndup (p, k);
      cimg_strv_append (&v, c);
      if (p[k] == '\0')
        return v;
      p += k + 1;
    }
}

/* ---------------------------------------------------------------- filepath.Match syntax */

/* getEsc of Go's filepath: one class character; the class must go on after it. */
static bool
get_esc (const char **chunk, uint32_t *r)
{
  const char *c = *chunk;
  if (*c == '\0' || *c == '-' || *c == ']')
    return false;
  if (*c == '\\')
    {
      c++;
      if (*c == '\0')
        return false;
    }
  size_t n = utf8_decode (c, strlen (c), r);
  if (*r == 0xFFFD && n == 1 && (unsigned char)*c >= 0x80)
    return false;
  c += n;
  if (*c == '\0')
    return false;
  *chunk = c;
  return true;
}

/* Parse a class after its '['; fills ranges. false on a syntax error. */
static bool
parse_class (const char **pp, struct tok *t)
{
  const char *c = *pp;
  if (*c == '^')
    {
      t->negated = true;
      c++;
    }
  for (;;)
    {
      if (*c == ']' && t->nranges > 0)
        {
          c++;
          break;
        }
      uint32_t lo, hi;
      if (!get_esc (&c, &lo))
        return false;
      hi = lo;
      if (*c == '-')
        {
          c++;
          if (!get_esc (&c, &hi))
            return false;
        }
      t->ranges = xrealloc (t->ranges, (t->nranges + 1) * sizeof *t->ranges);
      t->ranges[t->nranges++] = (struct range){ lo, hi };
    }
  *pp = c;
  return true;
}

/* filepath.Match(p, ".") fails exactly when p has a bad class or ends in a lone '\'. */
static bool
match_syntax_ok (const char *p)
{
  while (*p)
    {
      if (*p == '\\')
        {
          if (p[1] == '\0')
            return false;
          p += 2;
        }
      else if (*p == '[')
        {
          struct tok t = { 0 };
          p++;
          bool ok = parse_class (&p, &t);
          free (t.ranges);
          if (!ok)
            return false;
        }
      else
        p++;
    }
  return true;
}

/* ---------------------------------------------------------------- compile and match */

static void
add_tok (struct pattern *pt, struct tok t)
{
  pt->toks = xrealloc (pt->toks, (pt->ntoks + 1) * sizeof *pt->toks);
  pt->toks[pt->ntoks++] = t;
}

static void
add_lit (struct pattern *pt, const char *s, size_t n)
{
  if (pt->ntoks > 0 && pt->toks[pt->ntoks - 1].kind == T_LIT)
    {
      struct tok *t = &pt->toks[pt->ntoks - 1];
      t->lit = xrealloc (t->lit, t->n + n + 1);
      memcpy (t->lit + t->n, s, n);
      t->n += n;
      t->lit[t->n] = '\0';
      return;
    }
  add_tok (pt, (struct tok){ .kind = T_LIT, .lit = xstrndup (s, n), .n = n });
}

/* Pattern.compile: the same walk over the pattern, producing tokens where patternmatcher
   produces a regular expression, and the same choice of match type. */
static void
compile (struct pattern *pt)
{
  const char *p = pt->text;
  int type = M_EXACT;
  for (int i = 0; *p; i++)
    {
      if (*p == '*')
        {
          if (p[1] == '*')
            {
              p += 2;
              if (*p == '/')
                p++;
              if (*p == '\0')
                {
                  if (type == M_EXACT)
                    type = M_PREFIX;
                  else
                    {
                      add_tok (pt, (struct tok){ .kind = T_DSTAR_END });
                      type = M_REGEXP;
                    }
                }
              else
                {
                  add_tok (pt, (struct tok){ .kind = T_DSTAR });
                  type = M_REGEXP;
                }
              if (i == 0)
                type = M_SUFFIX;
            }
          else
            {
              add_tok (pt, (struct tok){ .kind = T_STAR });
              type = M_REGEXP;
              p++;
            }
        }
      else if (*p == '?')
        {
          add_tok (pt, (struct tok){ .kind = T_ONE });
          type = M_REGEXP;
          p++;
        }
      else if (*p == '\\')
        {
          /* Validation refused a trailing '\', so one character follows. */
          uint32_t r;
          size_t n = utf8_decode (p + 1, strlen (p + 1), &r);
          add_lit (pt, p + 1, n);
          type = M_REGEXP;
          p += 1 + n;
        }
      else if (*p == '[')
        {
          struct tok t = { .kind = T_CLASS };
          const char *q = p + 1;
          /* Whole patterns were validated; only a component cut out of one can fail here. */
          if (!parse_class (&q, &t))
            {
              free (t.ranges);
              add_lit (pt, p, 1);
              p++;
              continue;
            }
          p = q;
          add_tok (pt, t);
          type = M_REGEXP;
        }
      else
        {
          uint32_t r;
          size_t n = utf8_decode (p, strlen (p), &r);
          add_lit (pt, p, n);
          p += n;
        }
    }
  pt->type = type;
}

/* Failed (token, offset) pairs, so that patterns with several stars stay polynomial. */
struct memo
{
  const struct tok *t0;
  const char *s0;
  size_t width;
  uint8_t *failed;
};

static bool toks_match_m (struct memo *m, const struct tok *t, size_t nt, const char *s,
                          size_t len);
static bool toks_match_next (struct memo *m, const struct tok *t, size_t nt, const char *s,
                             size_t len);

static bool
toks_match_star (struct memo *m, const struct tok *t, size_t nt, const char *s, size_t len)
{
  size_t key = (size_t)(t - m->t0) * m->width + (size_t)(s - m->s0);
  if (m->failed[key / 8] & (1u << (key % 8)))
    return false;
  bool r = toks_match_m (m, t, nt, s, len);
  if (!r)
    m->failed[key / 8] |= (uint8_t)(1u << (key % 8));
  return r;
}

static bool
toks_match_next (struct memo *m, const struct tok *t, size_t nt, const char *s, size_t len)
{
  if (nt > 0 && t->kind != T_LIT && t->kind != T_ONE && t->kind != T_CLASS)
    return toks_match_star (m, t, nt, s, len);
  return toks_match_m (m, t, nt, s, len);
}

static bool
toks_match_m (struct memo *m, const struct tok *t, size_t nt, const char *s, size_t len)
{
  if (nt == 0)
    return len == 0;
  uint32_t r;
  size_t n;
  switch (t->kind)
    {
    case T_LIT:
      return len >= t->n && memcmp (s, t->lit, t->n) == 0
             && toks_match_next (m, t + 1, nt - 1, s + t->n, len - t->n);
    case T_ONE:
      if (len == 0 || s[0] == '/')
        return false;
      n = utf8_decode (s, len, &r);
      return toks_match_next (m, t + 1, nt - 1, s + n, len - n);
    case T_CLASS:
      {
        if (len == 0)
          return false;
        n = utf8_decode (s, len, &r);
        bool in = false;
        for (size_t i = 0; i < t->nranges; i++)
          in |= t->ranges[i].lo <= r && r <= t->ranges[i].hi;
        if (in == t->negated)
          return false;
        return toks_match_next (m, t + 1, nt - 1, s + n, len - n);
      }
    case T_STAR:
      for (size_t i = 0;; i++)
        {
          if (toks_match_next (m, t + 1, nt - 1, s + i, len - i))
            return true;
          if (i >= len || s[i] == '/')
            return false;
        }
    case T_DSTAR:
      if (toks_match_next (m, t + 1, nt - 1, s, len))
        return true;
      /* Any text without a newline, then a '/'. */
      for (size_t i = 0; i < len && s[i] != '\n'; i++)
        if (s[i] == '/' && toks_match_next (m, t + 1, nt - 1, s + i + 1, len - i - 1))
          return true;
      return false;
    default: /* T_DSTAR_END */
      for (size_t i = 0;; i++)
        {
          if (toks_match_next (m, t + 1, nt - 1, s + i, len - i))
            return true;
          if (i >= len || s[i] == '\n')
            return false;
        }
    }
}

static bool
toks_match (const struct tok *t, size_t nt, const char *s, size_t len)
{
  struct memo m = { t, s, len + 1, NULL };
  m.failed = xzalloc ((nt + 1) * (len + 1) / 8 + 1);
  bool r = toks_match_m (&m, t, nt, s, len);
  free (m.failed);
  return r;
}

static bool
pattern_match (const struct pattern *pt, const char *path)
{
  size_t pl = strlen (pt->text);
  switch (pt->type)
    {
    case M_EXACT:
      return strcmp (path, pt->text) == 0;
    case M_PREFIX:
      return strncmp (path, pt->text, pl - 2) == 0;
    case M_SUFFIX:
      {
        const char *suffix = pt->text + 2;
        size_t sl = strlen (suffix), n = strlen (path);
        if (n >= sl && strcmp (path + n - sl, suffix) == 0)
          return true;
        return suffix[0] == '/' && strcmp (path, suffix + 1) == 0;
      }
    default:
      return toks_match (pt->toks, pt->ntoks, path, strlen (path));
    }
}

/* ---------------------------------------------------------------- API */

void
cimg_dockerignore_free (struct cimg_dockerignore *di)
{
  if (di == NULL)
    return;
  for (size_t i = 0; i < di->n; i++)
    {
      struct pattern *pt = &di->pats[i];
      for (size_t j = 0; j < pt->ntoks; j++)
        {
          free (pt->toks[j].lit);
          free (pt->toks[j].ranges);
        }
      free (pt->toks);
      free (pt->text);
      cimg_strv_free (pt->dirs);
    }
  free (di->pats);
  cimg_strv_free (di->cleaned);
  free (di);
}

void
cimg_dockerignore_freep (struct cimg_dockerignore **di)
{
  cimg_dockerignore_free (*di);
  *di = NULL;
}

/* Go's strings.TrimSpace. */
static char *
trim_space (const char *s, size_t n)
{
  size_t i = 0;
  while (i < n)
    {
      uint32_t r;
      size_t k = utf8_decode (s + i, n - i, &r);
      if (!rune_is_space (r))
        break;
      i += k;
    }
  size_t e = n;
  while (e > i)
    {
      /* Walk back to the start of the last rune. */
      size_t b = e - 1;
      while (b > i && ((unsigned char)s[b] & 0xC0) == 0x80)
        b--;
      uint32_t r;
      utf8_decode (s + b, e - b, &r);
      if (!rune_is_space (r))
        break;
      e = b;
    }
  return xstrndup (s + i, e - i);
}

struct cimg_dockerignore *
cimg_dockerignore_new (char *const *patterns, cimg_error_t *err)
{
  cleanup_dockerignore struct cimg_dockerignore *di = xzalloc (sizeof *di);
  di->cleaned = xzalloc (sizeof (char *));
  for (size_t i = 0; patterns && patterns[i]; i++)
    {
      cleanup_free char *t = trim_space (patterns[i], strlen (patterns[i]));
      if (*t == '\0')
        continue;
      cleanup_free char *p = path_clean (t);
      cimg_strv_append (&di->cleaned, p);
      bool exclusion = false;
      const char *body = p;
      if (p[0] == '!')
        {
          if (p[1] == '\0')
            {
              cimg_error_set (err, EINVAL, "illegal exclusion pattern: \"!\"");
              return NULL;
            }
          exclusion = true;
          body++;
          di->exclusions = true;
        }
      if (!match_syntax_ok (body))
        {
          cimg_error_set (err, EINVAL, "%s: syntax error in pattern", patterns[i]);
          return NULL;
        }
      di->pats = xrealloc (di->pats, (di->n + 1) * sizeof *di->pats);
      struct pattern *pt = &di->pats[di->n++];
      *pt = (struct pattern){ .text = xstrdup (body), .exclusion = exclusion };
      pt->dirs = split_slash (body);
      compile (pt);
    }
  return steal_pointer (&di);
}

struct cimg_dockerignore *
cimg_dockerignore_parse (const char *text, size_t len, cimg_error_t *err)
{
  cleanup_strv char **pats = xzalloc (sizeof (char *));
  size_t pos = 0;
  if (len >= 3 && memcmp (text, "\xEF\xBB\xBF", 3) == 0)
    pos = 3;
  while (pos < len)
    {
      const char *s = text + pos;
      const char *nl = memchr (s, '\n', len - pos);
      size_t n = nl ? (size_t)(nl - s) : len - pos;
      pos += n + (nl ? 1 : 0);
      if (n > 0 && s[n - 1] == '\r')
        n--;
      /* A comment only when '#' is the very first character, before any trimming. */
      if (n > 0 && s[0] == '#')
        continue;
      cleanup_free char *p = trim_space (s, n);
      if (*p == '\0')
        continue;
      bool invert = p[0] == '!';
      cleanup_free char *body = invert ? trim_space (p + 1, strlen (p + 1)) : xstrdup (p);
      if (*body)
        {
          char *c = path_clean (body);
          free (body);
          body = c;
          if (body[0] == '/' && body[1] != '\0')
            memmove (body, body + 1, strlen (body));
        }
      cleanup_free char *full = xasprintf ("%s%s", invert ? "!" : "", body);
      cimg_strv_append (&pats, full);
    }
  return cimg_dockerignore_new (pats, err);
}

char *const *
cimg_dockerignore_patterns (const struct cimg_dockerignore *di)
{
  return di->cleaned;
}

static char *
clean_rel (const char *path)
{
  char *c = path_clean (path);
  if (c[0] == '/' && c[1] != '\0')
    memmove (c, c + 1, strlen (c));
  else if (c[0] == '/')
    c[0] = '.';
  return c;
}

bool
cimg_dockerignore_excluded (const struct cimg_dockerignore *di, const char *path)
{
  cleanup_free char *file = clean_rel (path);
  if (strcmp (file, ".") == 0 || di == NULL)
    return false;
  /* The parent directories of file: "a", "a/b", … (none for a top-level name). */
  char *slash = strrchr (file, '/');
  cleanup_free char *parent = slash ? xstrndup (file, (size_t)(slash - file)) : NULL;
  bool matched = false;
  for (size_t i = 0; i < di->n; i++)
    {
      const struct pattern *pt = &di->pats[i];
      /* An inclusion only matters while nothing matched, an exclusion once something did. */
      if (pt->exclusion != matched)
        continue;
      bool m = pattern_match (pt, file);
      if (!m && parent)
        for (char *s = parent;; s++)
          {
            if (*s == '/' || *s == '\0')
              {
                char c = *s;
                *s = '\0';
                m = pattern_match (pt, parent);
                *s = c;
                if (m || c == '\0')
                  break;
              }
          }
      if (m)
        matched = !pt->exclusion;
    }
  return matched;
}

/* Could the single path component pattern pc match the name c? */
static bool
component_match (const char *pc, const char *c)
{
  /* "**" may match any number of components; a class with a '/' in it ("[/]") was cut in two
     and is not worth reasoning about. Both could match. */
  if (strstr (pc, "**") || !match_syntax_ok (pc))
    return true;
  struct pattern pt = { .text = (char *)pc };
  compile (&pt);
  bool r = pt.type == M_EXACT ? strcmp (pc, c) == 0 : toks_match (pt.toks, pt.ntoks, c, strlen (c));
  for (size_t j = 0; j < pt.ntoks; j++)
    {
      free (pt.toks[j].lit);
      free (pt.toks[j].ranges);
    }
  free (pt.toks);
  return r;
}

bool
cimg_dockerignore_must_walk (const struct cimg_dockerignore *di, const char *dir)
{
  if (di == NULL || !di->exclusions)
    return false;
  cleanup_free char *d = clean_rel (dir);
  if (strcmp (d, ".") == 0)
    return true;
  cleanup_strv char **comps = split_slash (d);
  size_t nc = cimg_strv_len (comps);
  for (size_t i = 0; i < di->n; i++)
    {
      const struct pattern *pt = &di->pats[i];
      if (!pt->exclusion)
        continue;
      /* Docker's own test ("!dir/sub" under "dir") is a special case of this one, which also
         sees that a wildcard exception ("!" "*" "/keep") may re-include something below any
         directory. */
      size_t np = cimg_strv_len (pt->dirs);
      bool possible = true;
      for (size_t k = 0; k < nc && possible; k++)
        {
          if (k >= np)
            {
              possible = false;
              break;
            }
          if (strstr (pt->dirs[k], "**"))
            break;
          possible = component_match (pt->dirs[k], comps[k]);
        }
      if (possible)
        return true;
    }
  return false;
}

bool
cimg_dockerignore_always_kept (const char *path, const char *dockerfile)
{
  cleanup_free char *p = clean_rel (path);
  cleanup_free char *df = clean_rel (dockerfile ? dockerfile : "Dockerfile");
  return strcmp (p, ".dockerignore") == 0 || strcmp (p, df) == 0;
}
