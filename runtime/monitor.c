/* The monitor of a detached container: double-forked from cimg (no shell, no re-exec), it is
   the container's parent for as long as the container lives, holds its output, writes the log,
   records its state and applies the restart policy. See docs/runtime.md. */
#include "runtime/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int
cimg_restart_parse (const char *s, enum cimg_restart_kind *kind, int *max_retries,
                    cimg_error_t *err)
{
  *max_retries = 0;
  if (s == NULL || *s == '\0' || strcmp (s, "no") == 0)
    *kind = CIMG_RESTART_NO;
  else if (strcmp (s, "always") == 0)
    *kind = CIMG_RESTART_ALWAYS;
  else if (strcmp (s, "unless-stopped") == 0)
    *kind = CIMG_RESTART_UNLESS_STOPPED;
  else if (strcmp (s, "on-failure") == 0)
    *kind = CIMG_RESTART_ON_FAILURE;
  else if (cimg_str_has_prefix (s, "on-failure:"))
    {
      char *end;
      errno = 0;
      long n = strtol (s + 11, &end, 10);
      if (end == s + 11 || *end || errno || n < 0 || n > 1000000)
        return cimg_error_set (err, EINVAL,
                               "invalid restart policy: maximum retry count must be "
                               "a non-negative integer: %s",
                               s);
      *kind = CIMG_RESTART_ON_FAILURE;
      *max_retries = (int)n;
    }
  else
    return cimg_error_set (err, EINVAL, "invalid restart policy format: %s", s);
  if (*kind != CIMG_RESTART_ON_FAILURE && s && strchr (s, ':'))
    return cimg_error_set (err, EINVAL,
                           "maximum retry count cannot be used with restart "
                           "policy '%s'",
                           s);
  return 0;
}

pid_t
cimg_monitor_pid (const struct cimg_container *c)
{
  pid_t pid = (pid_t)cimg_json_int (c->state, "MonitorPid");
  if (pid <= 0)
    return 0;
  int64_t want = cimg_json_int (c->state, "MonitorStart");
  int64_t got = cimg_pid_start_time (pid);
  return got != 0 && (want == 0 || want == got) ? pid : 0;
}

/* ---------------------------------------------------------------- the log */

#define LINE_MAX_BYTES 16384

struct logger
{
  int fd; /* ctr.log, O_APPEND */
  char buf[2][LINE_MAX_BYTES];
  size_t len[2];
};

/* One record: {"log":"…","stream":"stdout","time":"…"}, as Docker's json-file driver. Bytes that
   are not UTF-8 are written as '?', so that every line is valid JSON. */
static void
log_record (struct logger *lg, int stream, const char *text, size_t n)
{
  json_t *str = json_stringn (text, n);
  if (str == NULL)
    {
      cleanup_free char *copy = xmemdup (text, n);
      for (size_t i = 0; i < n; i++)
        if ((unsigned char)copy[i] >= 0x80 || copy[i] == '\0')
          copy[i] = '?';
      str = json_stringn (copy, n);
    }
  if (str == NULL)
    return;
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  char now[64];
  cimg_time_rfc3339 (ts.tv_sec, ts.tv_nsec, now, sizeof now);
  cleanup_json json_t *rec = json_pack ("{s:o, s:s, s:s}", "log", str, "stream",
                                        stream == 2 ? "stderr" : "stdout", "time", now);
  if (rec == NULL)
    return;
  cleanup_free char *line = json_dumps (rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
  if (line == NULL)
    return;
  size_t len = strlen (line);
  line[len] = '\0';
  char *withnl = xasprintf ("%s\n", line);
  /* One write per record, on an O_APPEND fd: a reader sees whole lines. */
  cimg_write_all (lg->fd, withnl, len + 1);
  free (withnl);
}

static void
on_output (void *data, int stream, const char *buf, size_t n)
{
  struct logger *lg = data;
  int k = stream == 2 ? 1 : 0;
  for (size_t i = 0; i < n; i++)
    {
      lg->buf[k][lg->len[k]++] = buf[i];
      if (buf[i] == '\n' || lg->len[k] == LINE_MAX_BYTES)
        {
          log_record (lg, stream, lg->buf[k], lg->len[k]);
          lg->len[k] = 0;
        }
    }
}

static void
log_flush (struct logger *lg)
{
  for (int k = 0; k < 2; k++)
    if (lg->len[k])
      {
        log_record (lg, k + 1, lg->buf[k], lg->len[k]);
        lg->len[k] = 0;
      }
}

/* ---------------------------------------------------------------- the monitor */

struct mon
{
  struct cimg_store *s;
  struct cimg_container *c;
  struct logger *lg;
  int status_fd; /* to the caller, until the first start: "R<pid>", "X<code>:<msg>", "E<msg>" */
};

static void report (struct mon *m, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
report (struct mon *m, const char *fmt, ...)
{
  if (m->status_fd < 0)
    return;
  va_list ap;
  va_start (ap, fmt);
  char buf[2048];
  int n = vsnprintf (buf, sizeof buf, fmt, ap);
  va_end (ap);
  if (n > 0)
    cimg_write_all (m->status_fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
  close (m->status_fd);
  m->status_fd = -1;
}

static void
forget_error (cimg_error_t *e)
{
  cimg_error_clear (e);
}

static int
on_started (void *data, pid_t pid, cimg_error_t *err)
{
  struct mon *m = data;
  if (cimg_container_set_running (m->s, m->c, pid, err) < 0)
    return -1;
  report (m, "R%d", (int)pid);
  return 0;
}

static void
hook_output (void *data, int stream, const char *buf, size_t n)
{
  struct mon *m = data;
  on_output (m->lg, stream, buf, n);
}

static bool
manually_stopped (struct mon *m)
{
  cimg_error_t e = { 0 };
  if (cimg_container_reload (m->s, m->c, &e) < 0)
    {
      /* The record is gone (rm -f): nothing to restart. */
      forget_error (&e);
      return true;
    }
  return json_is_true (json_object_get (m->c->state, "ManualStop"));
}

static void
sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

static _Noreturn void
monitor_main (struct mon *m, const struct cimg_spec *spec)
{
  json_t *rp = json_object_get (json_object_get (m->c->config, "HostConfig"), "RestartPolicy");
  enum cimg_restart_kind kind = CIMG_RESTART_NO;
  int max = 0;
  {
    cimg_error_t e = { 0 };
    if (cimg_restart_parse (cimg_json_str (rp, "Name"), &kind, &max, &e) < 0)
      forget_error (&e);
    if (kind == CIMG_RESTART_ON_FAILURE && cimg_json_int (rp, "MaximumRetryCount") > 0)
      max = (int)cimg_json_int (rp, "MaximumRetryCount");
  }
  bool auto_remove
      = json_is_true (json_object_get (json_object_get (m->c->config, "HostConfig"), "AutoRemove"));
  {
    cimg_error_t e = { 0 };
    cleanup_json json_t *f
        = json_pack ("{s:i, s:I, s:b}", "MonitorPid", (int)getpid (), "MonitorStart",
                     (json_int_t)cimg_pid_start_time (getpid ()), "ManualStop", 0);
    if (cimg_container_update_state (m->s, m->c, f, &e) < 0)
      {
        report (m, "E%s", e.msg ? e.msg : "record the monitor");
        _exit (1);
      }
  }
  int restarts = (int)cimg_json_int (m->c->state, "RestartCount");
  long backoff = 100;
  for (bool first = true;; first = false)
    {
      struct cimg_run_hooks hooks = { on_started, m };
      struct cimg_run_result res = { 0 };
      cimg_error_t err = { 0 };
      int64_t t0 = cimg_now ();
      int r = cimg_runtime_run_captured (spec, &hooks, hook_output, m, &res, &err);
      log_flush (m->lg);
      int code;
      bool oom = false, res_exec_failed = res.exec_error != 0;
      if (r < 0)
        {
          report (m, "E%s", err.msg ? err.msg : "could not start the container");
          cimg_error_clear (&err);
          if (first)
            _exit (1); /* left "created", as Docker leaves a container that could not start */
          code = 125;
        }
      else if (res.exec_error)
        {
          report (m, "X%d:%s", res.exec_error, res.exec_message ? res.exec_message : "");
          code = res.exec_error;
        }
      else
        {
          code = cimg_runtime_exit_code (res.status);
          oom = res.oom_killed;
        }
      cimg_run_result_clear (&res);

      bool again = false;
      if (r == 0 && !res_exec_failed && !manually_stopped (m))
        switch (kind)
          {
          case CIMG_RESTART_NO:
            break;
          case CIMG_RESTART_ON_FAILURE:
            again = code != 0 && (max == 0 || restarts < max);
            break;
          case CIMG_RESTART_ALWAYS:
          case CIMG_RESTART_UNLESS_STOPPED:
            again = true;
            break;
          }
      cimg_error_t e = { 0 };
      if (again)
        {
          restarts++;
          cleanup_json json_t *f
              = json_pack ("{s:i, s:b}", "RestartCount", restarts, "Restarting", 1);
          if (cimg_container_update_state (m->s, m->c, f, &e) < 0)
            forget_error (&e);
        }
      if (cimg_container_set_exited (m->s, m->c, code, oom, &e) < 0)
        {
          /* The record is gone (rm -f): the monitor's work is done. */
          forget_error (&e);
          _exit (0);
        }
      if (!again)
        break;
      /* Docker's back-off: 100 ms, doubled after each restart of a container that ran for less
         than 10 s, reset otherwise. A stop or kill during the wait cancels the restart. */
      if (cimg_now () - t0 >= 10)
        backoff = 100;
      for (long waited = 0; waited < backoff; waited += 50)
        {
          sleep_ms (50);
          if (manually_stopped (m))
            {
              cleanup_json json_t *f = json_pack ("{s:b}", "Restarting", 0);
              if (cimg_container_update_state (m->s, m->c, f, &e) < 0)
                forget_error (&e);
              _exit (0);
            }
        }
      backoff = backoff * 2 > 60000 ? 60000 : backoff * 2;
    }
  if (auto_remove)
    {
      cimg_error_t e = { 0 };
      int lk = cimg_container_lock (m->s, m->c, &e);
      if (lk < 0 || cimg_container_remove (m->s, m->c, &e) < 0)
        forget_error (&e);
      if (lk >= 0)
        close (lk);
    }
  _exit (0);
}

/* Keep only the fds the monitor needs: the store, the log and the status pipe. */
static void
close_other_fds (const int *keep, size_t n)
{
  long max = sysconf (_SC_OPEN_MAX);
  if (max < 0 || max > 65536)
    max = 65536;
  for (int fd = 3; fd < max; fd++)
    {
      bool k = false;
      for (size_t i = 0; i < n; i++)
        k |= keep[i] == fd;
      if (!k)
        close (fd);
    }
}

int
cimg_monitor_start (struct cimg_store *s, struct cimg_container *c, const struct cimg_spec *spec,
                    pid_t *pid, int *exec_error, char **exec_message, cimg_error_t *err)
{
  *pid = 0;
  *exec_error = 0;
  *exec_message = NULL;
  cleanup_free char *logp = xasprintf ("containers/%s/ctr.log", c->id);
  cleanup_close int logfd = openat (cimg_store_dirfd (s), logp,
                                    O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (logfd < 0)
    return cimg_error_sys (err, "open %s", logp);
  int sp[2];
  if (pipe2 (sp, O_CLOEXEC) < 0)
    return cimg_error_sys (err, "pipe");
  fflush (stdout);
  fflush (stderr);
  pid_t a = fork ();
  if (a < 0)
    {
      close (sp[0]);
      close (sp[1]);
      return cimg_error_sys (err, "fork");
    }
  if (a == 0)
    {
      /* A session of its own, then a second fork: the monitor is no session leader (it can
         never get a controlling terminal) and its parent (init or a subreaper) is not cimg. */
      close (sp[0]);
      setsid ();
      pid_t b = fork ();
      if (b != 0)
        _exit (b < 0 ? 1 : 0);
      int null = open ("/dev/null", O_RDWR | O_CLOEXEC);
      if (null < 0 || dup2 (null, 0) < 0 || dup2 (null, 1) < 0 || dup2 (null, 2) < 0)
        _exit (1);
      int keep[] = { cimg_store_dirfd (s), logfd, sp[1] };
      close_other_fds (keep, ARRAY_SIZE (keep));
      if (chdir ("/") < 0)
        _exit (1);
      for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
          signal (sig, SIG_DFL);
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      static struct logger lg;
      lg.fd = logfd;
      struct mon m = { .s = s, .c = c, .lg = &lg, .status_fd = sp[1] };
      monitor_main (&m, spec);
    }
  close (sp[1]);
  int st;
  while (waitpid (a, &st, 0) < 0 && errno == EINTR)
    ;
  char buf[2048];
  size_t len = 0;
  for (;;)
    {
      ssize_t n = read (sp[0], buf + len, sizeof buf - 1 - len);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      len += (size_t)n;
      if (len == sizeof buf - 1)
        break;
    }
  close (sp[0]);
  buf[len] = '\0';
  if (len == 0)
    return cimg_error_set (err, EIO, "the container's monitor died before the container started");
  if (buf[0] == 'R')
    {
      *pid = (pid_t)strtol (buf + 1, NULL, 10);
      return 0;
    }
  if (buf[0] == 'X')
    {
      char *colon = strchr (buf, ':');
      *exec_error = (int)strtol (buf + 1, NULL, 10);
      *exec_message = xstrdup (colon ? colon + 1 : "");
      return 0;
    }
  return cimg_error_set (err, EIO, "%s", buf + 1);
}
