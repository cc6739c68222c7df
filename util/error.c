#include "util/util.h"

#include <errno.h>
#include <string.h>

static char *vformat (const char *fmt, va_list ap) __attribute__ ((format (printf, 1, 0)));

static char *
vformat (const char *fmt, va_list ap)
{
  char *s = NULL;
  if (vasprintf (&s, fmt, ap) < 0)
    abort ();
  return s;
}

int
cimg_error_set (cimg_error_t *err, int code, const char *fmt, ...)
{
  va_list ap;
  if (err == NULL)
    return -1;
  free (err->msg);
  va_start (ap, fmt);
  err->msg = vformat (fmt, ap);
  va_end (ap);
  err->code = code;
  return -1;
}

int
cimg_error_sys (cimg_error_t *err, const char *fmt, ...)
{
  int saved = errno;
  va_list ap;
  if (err == NULL)
    return -1;
  va_start (ap, fmt);
  cleanup_free char *m = vformat (fmt, ap);
  va_end (ap);
  free (err->msg);
  err->msg = xasprintf ("%s: %s", m, strerror (saved));
  err->code = saved;
  errno = saved;
  return -1;
}

int
cimg_error_wrap (cimg_error_t *err, const char *fmt, ...)
{
  va_list ap;
  if (err == NULL || err->msg == NULL)
    return -1;
  va_start (ap, fmt);
  cleanup_free char *m = vformat (fmt, ap);
  va_end (ap);
  char *n = xasprintf ("%s: %s", m, err->msg);
  free (err->msg);
  err->msg = n;
  return -1;
}

void
cimg_error_clear (cimg_error_t *err)
{
  if (err == NULL)
    return;
  free (err->msg);
  err->msg = NULL;
  err->code = 0;
}
