#include "util/util.h"

#include <pthread.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

void
cimg_human_size (int64_t bytes, char *out, size_t n)
{
  /* Docker's units.HumanSizeWithPrecision (size, 3): decimal units, three significant digits. */
  static const char *units[] = { "B", "kB", "MB", "GB", "TB", "PB", "EB" };
  double v = (double)bytes;
  size_t i = 0;
  while (v >= 1000.0 && i + 1 < ARRAY_SIZE (units))
    {
      v /= 1000.0;
      i++;
    }
  snprintf (out, n, "%.3g%s", v, units[i]);
}

void
cimg_human_duration (int64_t seconds, char *out, size_t n)
{
  /* Docker's units.HumanDuration, so that CREATED and STATUS columns read the same. */
  int64_t minutes = seconds / 60, hours = (seconds + 1800) / 3600;
  if (seconds < 1)
    snprintf (out, n, "Less than a second");
  else if (seconds == 1)
    snprintf (out, n, "1 second");
  else if (seconds < 60)
    snprintf (out, n, "%lld seconds", (long long)seconds);
  else if (minutes == 1)
    snprintf (out, n, "About a minute");
  else if (minutes < 60)
    snprintf (out, n, "%lld minutes", (long long)minutes);
  else if (hours == 1)
    snprintf (out, n, "About an hour");
  else if (hours < 48)
    snprintf (out, n, "%lld hours", (long long)hours);
  else if (hours < 24 * 7 * 2)
    snprintf (out, n, "%lld days", (long long)(hours / 24));
  else if (hours < 24 * 30 * 2)
    snprintf (out, n, "%lld weeks", (long long)(hours / 24 / 7));
  else if (hours < 24 * 365 * 2)
    snprintf (out, n, "%lld months", (long long)(hours / 24 / 30));
  else
    snprintf (out, n, "%lld years", (long long)(hours / 24 / 365));
}

void
cimg_time_rfc3339 (int64_t sec, long nsec, char *out, size_t n)
{
  struct tm tm;
  time_t t = (time_t)sec;
  gmtime_r (&t, &tm);
  size_t k = strftime (out, n, "%Y-%m-%dT%H:%M:%S", &tm);
  if (nsec > 0 && k + 12 < n)
    {
      /* Go's RFC3339Nano: trailing zeros of the fraction are dropped. */
      char frac[24];
      snprintf (frac, sizeof frac, ".%09ld", nsec);
      size_t f = strlen (frac);
      while (f > 1 && frac[f - 1] == '0')
        frac[--f] = '\0';
      k += (size_t)snprintf (out + k, n - k, "%s", frac);
    }
  if (k + 2 <= n)
    snprintf (out + k, n - k, "Z");
}

int
cimg_time_parse_rfc3339 (const char *s, int64_t *sec)
{
  struct tm tm;
  memset (&tm, 0, sizeof tm);
  const char *p = strptime (s, "%Y-%m-%dT%H:%M:%S", &tm);
  if (p == NULL)
    return -1;
  if (*p == '.')
    {
      p++;
      while (*p >= '0' && *p <= '9')
        p++;
    }
  int64_t off = 0;
  if (*p == 'Z' || *p == 'z')
    p++;
  else if (*p == '+' || *p == '-')
    {
      int hh, mm;
      if (sscanf (p + 1, "%2d:%2d", &hh, &mm) != 2)
        return -1;
      off = (hh * 3600 + mm * 60) * (*p == '+' ? 1 : -1);
      p += 6;
    }
  else
    return -1;
  if (*p != '\0')
    return -1;
  *sec = (int64_t)timegm (&tm) - off;
  return 0;
}

int64_t
cimg_now (void)
{
  return (int64_t)time (NULL);
}

struct cimg_progress
{
  /* A push's uploads report from threads of their own: one line is written at a time. */
  pthread_mutex_t mu;
  FILE *out;
  bool tty, quiet;
  int cols; /* the terminal's width; 0 when it does not say */
  char **ids;
  char **last_action;
};

struct cimg_progress *
cimg_progress_new (FILE *out, bool quiet)
{
  struct cimg_progress *p = xzalloc (sizeof *p);
  pthread_mutex_init (&p->mu, NULL);
  p->out = out;
  p->quiet = quiet || out == NULL;
  p->tty = out && isatty (fileno (out));
  struct winsize ws;
  if (p->tty && ioctl (fileno (out), TIOCGWINSZ, &ws) == 0)
    p->cols = ws.ws_col;
  return p;
}

static size_t
line_of (struct cimg_progress *p, const char *id)
{
  size_t n = cimg_strv_len (p->ids);
  for (size_t i = 0; i < n; i++)
    if (strcmp (p->ids[i], id) == 0)
      return i;
  cimg_strv_append (&p->ids, id);
  p->last_action = xrealloc (p->last_action, (n + 2) * sizeof (char *));
  p->last_action[n] = xstrdup ("");
  p->last_action[n + 1] = NULL;
  if (p->tty)
    fputc ('\n', p->out);
  return n;
}

static void
print_line (struct cimg_progress *p, size_t i, const char *text)
{
  if (!p->tty)
    {
      fprintf (p->out, "%s\n", text);
      fflush (p->out);
      return;
    }
  /* Move up to the line of this id, rewrite it, and come back down. That counts one row a
     line: a line as wide as the terminal would wrap onto a second row and every move after it
     would land one row off, so it is cut short of the last column. */
  int n = (int)strlen (text);
  if (p->cols > 0 && n >= p->cols)
    n = p->cols - 1;
  size_t up = cimg_strv_len (p->ids) - i;
  fprintf (p->out, "\033[%zuA\r\033[2K%.*s\033[%zuB\r", up, n, text, up);
  fflush (p->out);
}

static void
update_locked (struct cimg_progress *p, const char *id, const char *action, int64_t done,
               int64_t total)
{
  size_t i = line_of (p, id);
  char text[256];
  if (!p->tty)
    {
      /* Plain output: one line per change of action, never per chunk. */
      if (strcmp (p->last_action[i], action) == 0)
        return;
      free (p->last_action[i]);
      p->last_action[i] = xstrdup (action);
      snprintf (text, sizeof text, "%s: %s", id, action);
      print_line (p, i, text);
      return;
    }
  char a[32], b[32], bar[52];
  cimg_human_size (done, a, sizeof a);
  /* As Docker: the bar only where the terminal is wider than 110 columns (or does not say). */
  if (total > 0 && (p->cols == 0 || p->cols > 110))
    {
      int w = (int)(50 * (done > total ? total : done) / total);
      memset (bar, '=', (size_t)w);
      bar[w] = w < 50 ? '>' : '=';
      memset (bar + w + 1, ' ', (size_t)(50 - w > 0 ? 50 - w - 1 : 0));
      bar[50] = '\0';
      cimg_human_size (total, b, sizeof b);
      snprintf (text, sizeof text, "%s: %-12s [%s] %s/%s", id, action, bar, a, b);
    }
  else if (total > 0)
    {
      cimg_human_size (total, b, sizeof b);
      snprintf (text, sizeof text, "%s: %-12s %s/%s", id, action, a, b);
    }
  else
    snprintf (text, sizeof text, "%s: %-12s %s", id, action, a);
  print_line (p, i, text);
}

void
cimg_progress_note (struct cimg_progress *p, const char *id, const char *text)
{
  if (p == NULL || p->quiet)
    return;
  pthread_mutex_lock (&p->mu);
  fprintf (p->out, "%s: %s\n", id, text);
  fflush (p->out);
  pthread_mutex_unlock (&p->mu);
}

void
cimg_progress_update (struct cimg_progress *p, const char *id, const char *action, int64_t done,
                      int64_t total)
{
  if (p == NULL || p->quiet)
    return;
  pthread_mutex_lock (&p->mu);
  update_locked (p, id, action, done, total);
  pthread_mutex_unlock (&p->mu);
}

void
cimg_progress_done (struct cimg_progress *p, const char *id, const char *action)
{
  if (p == NULL || p->quiet)
    return;
  pthread_mutex_lock (&p->mu);
  size_t i = line_of (p, id);
  char text[256];
  snprintf (text, sizeof text, "%s: %s", id, action);
  free (p->last_action[i]);
  p->last_action[i] = xstrdup (action);
  print_line (p, i, text);
  pthread_mutex_unlock (&p->mu);
}

void
cimg_progress_free (struct cimg_progress *p)
{
  if (p == NULL)
    return;
  cimg_strv_free (p->ids);
  cimg_strv_free (p->last_action);
  pthread_mutex_destroy (&p->mu);
  free (p);
}
