#include "util/util.h"

#include <string.h>

static void
oom (void)
{
  static const char m[] = "cimg: out of memory\n";
  if (write (2, m, sizeof m - 1) < 0)
    abort ();
  abort ();
}

void *
xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);
  if (p == NULL)
    oom ();
  return p;
}

void *
xzalloc (size_t n)
{
  void *p = calloc (1, n ? n : 1);
  if (p == NULL)
    oom ();
  return p;
}

void *
xrealloc (void *p, size_t n)
{
  void *r = realloc (p, n ? n : 1);
  if (r == NULL)
    oom ();
  return r;
}

char *
xstrdup (const char *s)
{
  char *r = strdup (s);
  if (r == NULL)
    oom ();
  return r;
}

char *
xstrndup (const char *s, size_t n)
{
  char *r = strndup (s, n);
  if (r == NULL)
    oom ();
  return r;
}

char *
xasprintf (const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) < 0)
    oom ();
  va_end (ap);
  return s;
}

void *
xmemdup (const void *p, size_t n)
{
  void *r = xmalloc (n + 1);
  memcpy (r, p, n);
  ((char *)r)[n] = '\0';
  return r;
}

void
cimg_freep (void *p)
{
  free (*(void **)p);
}

void
cimg_closep (int *fd)
{
  if (*fd >= 0)
    close (*fd);
  *fd = -1;
}

void
cimg_fclosep (FILE **f)
{
  if (*f)
    fclose (*f);
  *f = NULL;
}

void
cimg_closedirp (DIR **d)
{
  if (*d)
    closedir (*d);
  *d = NULL;
}

void
cimg_json_decrefp (json_t **j)
{
  json_decref (*j);
  *j = NULL;
}

size_t
cimg_strv_len (char *const *v)
{
  size_t n = 0;
  while (v && v[n])
    n++;
  return n;
}

void
cimg_strv_free (char **v)
{
  for (size_t i = 0; v && v[i]; i++)
    free (v[i]);
  free (v);
}

void
cimg_strvfreep (char ***v)
{
  cimg_strv_free (*v);
  *v = NULL;
}

void
cimg_strv_append (char ***v, const char *s)
{
  size_t n = cimg_strv_len (*v);
  *v = xrealloc (*v, (n + 2) * sizeof (char *));
  (*v)[n] = xstrdup (s);
  (*v)[n + 1] = NULL;
}

bool
cimg_strv_contains (char *const *v, const char *s)
{
  for (size_t i = 0; v && v[i]; i++)
    if (strcmp (v[i], s) == 0)
      return true;
  return false;
}

bool
cimg_str_has_prefix (const char *s, const char *prefix)
{
  return strncmp (s, prefix, strlen (prefix)) == 0;
}

bool
cimg_str_has_suffix (const char *s, const char *suffix)
{
  size_t a = strlen (s), b = strlen (suffix);
  return a >= b && memcmp (s + a - b, suffix, b) == 0;
}
