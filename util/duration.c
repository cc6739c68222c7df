/* Go's time.Duration in text: time.ParseDuration and Duration.String, with Go's messages (a
   Dockerfile's HEALTHCHECK options, `logs --since 10m`). */
#include "util/util.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* Go's time package quotes a duration in its messages: '"' and '\\' escaped, every byte below
   0x20 or above 0x7f as \xNN (it does not try to be strconv.Quote). */
static char *
time_quote (const char *s)
{
  char *q = xmalloc (4 * strlen (s) + 3), *w = q;
  *w++ = '"';
  for (const unsigned char *p = (const unsigned char *)s; *p; p++)
    {
      if (*p < 0x20 || *p >= 0x80)
        w += sprintf (w, "\\x%02x", *p);
      else
        {
          if (*p == '"' || *p == '\\')
            *w++ = '\\';
          *w++ = (char)*p;
        }
    }
  *w++ = '"';
  *w = '\0';
  return q;
}

#define NS_MAX_MAGNITUDE ((uint64_t)1 << 63)

static int
duration_invalid (const char *orig, cimg_error_t *err)
{
  cleanup_free char *q = time_quote (orig);
  return cimg_error_set (err, EINVAL, "time: invalid duration %s", q);
}

int
cimg_parse_go_duration (const char *orig, int64_t *ns, cimg_error_t *err)
{
  static const struct
  {
    const char *name;
    uint64_t ns;
  } units[] = {
    { "ns", 1 },
    { "us", 1000 },
    { "\xc2\xb5s", 1000 }, /* U+00B5 micro sign */
    { "\xce\xbcs", 1000 }, /* U+03BC Greek small mu */
    { "ms", 1000000 },
    { "s", 1000000000 },
    { "m", 60ULL * 1000000000 },
    { "h", 3600ULL * 1000000000 },
  };
  const char *s = orig;
  bool neg = false;
  if (*s == '-' || *s == '+')
    neg = *s++ == '-';
  if (strcmp (s, "0") == 0)
    {
      *ns = 0;
      return 0;
    }
  if (*s == '\0')
    return duration_invalid (orig, err);
  uint64_t d = 0;
  while (*s)
    {
      if (!(*s == '.' || (*s >= '0' && *s <= '9')))
        return duration_invalid (orig, err);
      uint64_t v = 0, f = 0;
      double scale = 1;
      const char *start = s;
      for (; *s >= '0' && *s <= '9'; s++)
        {
          if (v > NS_MAX_MAGNITUDE / 10)
            return duration_invalid (orig, err);
          v = v * 10 + (uint64_t)(*s - '0');
          if (v > NS_MAX_MAGNITUDE)
            return duration_invalid (orig, err);
        }
      bool pre = s != start, post = false;
      if (*s == '.')
        {
          s++;
          const char *fs = s;
          bool overflow = false;
          /* Digits past what 63 bits hold are dropped, not an error (Go's leadingFraction). */
          for (; *s >= '0' && *s <= '9'; s++)
            {
              if (overflow)
                continue;
              if (f > (NS_MAX_MAGNITUDE - 1) / 10)
                {
                  overflow = true;
                  continue;
                }
              uint64_t y = f * 10 + (uint64_t)(*s - '0');
              if (y > NS_MAX_MAGNITUDE)
                {
                  overflow = true;
                  continue;
                }
              f = y;
              scale *= 10;
            }
          post = s != fs;
        }
      if (!pre && !post)
        return duration_invalid (orig, err);
      size_t ulen = strcspn (s, ".0123456789");
      if (ulen == 0)
        {
          cleanup_free char *q = time_quote (orig);
          return cimg_error_set (err, EINVAL, "time: missing unit in duration %s", q);
        }
      uint64_t unit = 0;
      for (size_t i = 0; i < ARRAY_SIZE (units); i++)
        if (strlen (units[i].name) == ulen && memcmp (units[i].name, s, ulen) == 0)
          unit = units[i].ns;
      if (unit == 0)
        {
          cleanup_free char *u = xstrndup (s, ulen);
          cleanup_free char *qu = time_quote (u), *q = time_quote (orig);
          return cimg_error_set (err, EINVAL, "time: unknown unit %s in duration %s", qu, q);
        }
      s += ulen;
      if (v > NS_MAX_MAGNITUDE / unit)
        return duration_invalid (orig, err);
      v *= unit;
      if (f > 0)
        {
          /* float64 as Go does: exact to the nanosecond for fractions of an hour */
          v += (uint64_t)((double)f * ((double)unit / scale));
          if (v > NS_MAX_MAGNITUDE)
            return duration_invalid (orig, err);
        }
      d += v;
      if (d > NS_MAX_MAGNITUDE)
        return duration_invalid (orig, err);
    }
  if (neg)
    {
      *ns = d == NS_MAX_MAGNITUDE ? INT64_MIN : -(int64_t)d;
      return 0;
    }
  if (d > NS_MAX_MAGNITUDE - 1)
    return duration_invalid (orig, err);
  *ns = (int64_t)d;
  return 0;
}

/* v / 10^prec into the tail of buf (ending at *w) as ".123", trailing zeros and the point left
   out when they are all zeros; returns v / 10^prec. Go's fmtFrac. */
static uint64_t
fmt_frac (char *buf, size_t *w, uint64_t v, int prec)
{
  bool print = false;
  for (int i = 0; i < prec; i++)
    {
      unsigned digit = (unsigned)(v % 10);
      print = print || digit != 0;
      if (print)
        buf[--*w] = (char)('0' + digit);
      v /= 10;
    }
  if (print)
    buf[--*w] = '.';
  return v;
}

static void
fmt_int (char *buf, size_t *w, uint64_t v)
{
  if (v == 0)
    buf[--*w] = '0';
  for (; v > 0; v /= 10)
    buf[--*w] = (char)('0' + v % 10);
}

char *
cimg_format_go_duration (int64_t d)
{
  char buf[40];
  size_t w = sizeof buf;
  buf[--w] = '\0';
  uint64_t u = d < 0 ? (uint64_t)0 - (uint64_t)d : (uint64_t)d;
  if (u < 1000000000)
    {
      int prec = 0;
      buf[--w] = 's';
      if (u == 0)
        {
          buf[--w] = '0';
          return xstrdup (buf + w);
        }
      if (u < 1000)
        buf[--w] = 'n';
      else if (u < 1000000)
        {
          prec = 3;
          buf[--w] = '\xb5';
          buf[--w] = '\xc2';
        }
      else
        {
          prec = 6;
          buf[--w] = 'm';
        }
      u = fmt_frac (buf, &w, u, prec);
      fmt_int (buf, &w, u);
    }
  else
    {
      buf[--w] = 's';
      u = fmt_frac (buf, &w, u, 9);
      fmt_int (buf, &w, u % 60);
      u /= 60;
      if (u > 0)
        {
          buf[--w] = 'm';
          fmt_int (buf, &w, u % 60);
          u /= 60;
          if (u > 0)
            {
              buf[--w] = 'h';
              fmt_int (buf, &w, u);
            }
        }
    }
  if (d < 0)
    buf[--w] = '-';
  return xstrdup (buf + w);
}
