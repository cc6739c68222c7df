/* The monitor of a detached container: double-forked from cimg (no shell, no re-exec), it is
   the container's parent for as long as the container lives, holds its output (and its stdin
   with -i) for attached clients, writes the log, records its state and applies the restart
   policy. See docs/runtime.md. */
#include "runtime/monitor.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

struct cimg_log
{
  int fd; /* ctr.log, O_APPEND */
  char buf[2][LINE_MAX_BYTES];
  size_t len[2];
};

/* One record: {"log":"…","stream":"stdout","time":"…"}, as Docker's json-file driver. Bytes that
   are not UTF-8 are written as '?', so that every line is valid JSON. */
static void
log_record (struct cimg_log *lg, int stream, const char *text, size_t n)
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

void
cimg_log_write (void *data, int stream, const char *buf, size_t n)
{
  struct cimg_log *lg = data;
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
log_flush (struct cimg_log *lg)
{
  for (int k = 0; k < 2; k++)
    if (lg->len[k])
      {
        log_record (lg, k + 1, lg->buf[k], lg->len[k]);
        lg->len[k] = 0;
      }
}

static int
open_log (struct cimg_store *s, const char *id, cimg_error_t *err)
{
  cleanup_free char *logp = xasprintf ("containers/%s/ctr.log", id);
  int fd = openat (cimg_store_dirfd (s), logp,
                   O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0)
    return cimg_error_sys (err, "open %s", logp);
  return fd;
}

struct cimg_log *
cimg_log_open (struct cimg_store *s, const char *id, cimg_error_t *err)
{
  int fd = open_log (s, id, err);
  if (fd < 0)
    return NULL;
  struct cimg_log *lg = xmalloc (sizeof *lg);
  lg->fd = fd;
  lg->len[0] = lg->len[1] = 0;
  return lg;
}

void
cimg_log_close (struct cimg_log *lg)
{
  if (lg == NULL)
    return;
  log_flush (lg);
  close (lg->fd);
  free (lg);
}

/* ---------------------------------------------------------------- attach */

/* The monitor's only thread is in the runtime's wait loop while the container runs, so the
   clients of containers/<id>/attach.sock are served by signal-driven I/O: the listening
   socket, each client and the container's stdin pipe are O_ASYNC, and the SIGIO handler
   accepts, reads what clients send and copies it into the container's stdin, until every
   call would block. The main thread sends the output to them (hook_output), with SIGIO
   blocked while it touches the client list. Not a thread: the container's process is cloned
   from the monitor with fork semantics, and the copy of a multi-threaded process keeps for
   ever any lock (malloc's, stdio's, glibc's set*id) another thread held at that instant. The
   handler makes system calls only (async-signal-safe). */
#define MAX_CLIENTS 32

struct attach_srv
{
  int listen_fd;
  int stdin_w;     /* write end of the container's stdin; -1: not -i (or closed) */
  bool stdin_once; /* Config.StdinOnce: a client's EOF closes the container's stdin */
  int n;
  struct
  {
    int fd;
    bool input_done;   /* its EOF was read */
    char pend[4096];   /* read from it, not yet written to a full stdin pipe */
    size_t npend, off; /* (a pipe that fills up keeps the rest in the client's socket) */
  } c[MAX_CLIENTS];
};

static struct attach_srv srv = { .listen_fd = -1, .stdin_w = -1 };

static void
set_async (int fd)
{
  fcntl (fd, F_SETOWN, getpid ());
  fcntl (fd, F_SETFL, fcntl (fd, F_GETFL) | O_ASYNC | O_NONBLOCK);
}

static void
srv_add (int fd)
{
  if (srv.n >= MAX_CLIENTS)
    {
      close (fd);
      return;
    }
  set_async (fd);
  srv.c[srv.n].fd = fd;
  srv.c[srv.n].input_done = false;
  srv.c[srv.n].npend = srv.c[srv.n].off = 0;
  srv.n++;
}

static void
srv_remove_at (int i)
{
  close (srv.c[i].fd);
  srv.c[i] = srv.c[--srv.n];
}

static void
close_stdin (void)
{
  if (srv.stdin_w >= 0)
    close (srv.stdin_w);
  srv.stdin_w = -1;
}

/* Move what client i sent into the container's stdin; false when it is to be removed. */
static bool
pump_client (int i)
{
  for (;;)
    {
      if (srv.c[i].off < srv.c[i].npend)
        {
          if (srv.stdin_w < 0)
            srv.c[i].off = srv.c[i].npend; /* no stdin (any more): dropped */
          else
            {
              ssize_t w = write (srv.stdin_w, srv.c[i].pend + srv.c[i].off,
                                 srv.c[i].npend - srv.c[i].off);
              if (w < 0 && errno == EINTR)
                continue;
              if (w < 0 && errno == EAGAIN)
                return true; /* SIGIO again once the container read some */
              if (w <= 0)
                close_stdin ();
              else
                srv.c[i].off += (size_t)w;
              continue;
            }
        }
      srv.c[i].off = srv.c[i].npend = 0;
      if (srv.c[i].input_done)
        return true;
      ssize_t r = read (srv.c[i].fd, srv.c[i].pend, sizeof srv.c[i].pend);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return errno == EAGAIN;
      if (r == 0)
        {
          /* EOF of its input; it may still read the output. */
          srv.c[i].input_done = true;
          if (srv.stdin_once)
            close_stdin ();
          return true;
        }
      srv.c[i].npend = (size_t)r;
    }
}

static void
on_sigio (int sig)
{
  (void)sig;
  int saved = errno;
  for (;;)
    {
      int fd = accept4 (srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);
      if (fd < 0)
        break;
      srv_add (fd);
    }
  for (int i = 0; i < srv.n;)
    {
      if (pump_client (i))
        i++;
      else
        srv_remove_at (i);
    }
  errno = saved;
}

static void
block_sigio (bool on, sigset_t *old)
{
  sigset_t m;
  sigemptyset (&m);
  sigaddset (&m, SIGIO);
  sigprocmask (on ? SIG_BLOCK : SIG_SETMASK, on ? &m : old, on ? old : NULL);
}

/* All of buf to a non-blocking socket, waiting for room at most 2 s in all: a client that does
   not read is dropped rather than stall the container. */
static int
send_all (int fd, const void *buf, size_t n, int64_t *budget_ms)
{
  const char *p = buf;
  while (n > 0)
    {
      ssize_t w = send (fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w > 0)
        {
          p += w;
          n -= (size_t)w;
          continue;
        }
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0 && errno == EAGAIN && *budget_ms > 0)
        {
          struct pollfd pf = { .fd = fd, .events = POLLOUT };
          struct timespec t0, t1;
          clock_gettime (CLOCK_MONOTONIC, &t0);
          poll (&pf, 1, (int)*budget_ms);
          clock_gettime (CLOCK_MONOTONIC, &t1);
          *budget_ms -= (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 + 1;
          continue;
        }
      return -1;
    }
  return 0;
}

/* Send one frame to every client; a client that fails (gone, or not reading) is dropped. */
static void
srv_broadcast (int stream, const char *buf, size_t n)
{
  if (srv.listen_fd < 0 || srv.n == 0)
    return;
  sigset_t old;
  block_sigio (true, &old);
  unsigned char h[CIMG_ATTACH_HEADER] = { (unsigned char)stream,
                                          0,
                                          0,
                                          0,
                                          (unsigned char)(n >> 24),
                                          (unsigned char)(n >> 16),
                                          (unsigned char)(n >> 8),
                                          (unsigned char)n };
  for (int i = 0; i < srv.n;)
    {
      int64_t budget = 2000;
      if (send_all (srv.c[i].fd, h, sizeof h, &budget) < 0
          || send_all (srv.c[i].fd, buf, n, &budget) < 0)
        srv_remove_at (i);
      else
        i++;
    }
  block_sigio (false, &old);
}

/* The container exited: every client gets EOF (after the exit was recorded). */
static void
srv_hangup (void)
{
  sigset_t old;
  block_sigio (true, &old);
  while (srv.n > 0)
    srv_remove_at (0);
  block_sigio (false, &old);
}

/* Serve the socket (and stdin_w) from now on. */
static void
srv_start (void)
{
  struct sigaction sa = { .sa_handler = on_sigio, .sa_flags = SA_RESTART };
  sigfillset (&sa.sa_mask);
  sigaction (SIGIO, &sa, NULL);
  set_async (srv.listen_fd);
  if (srv.stdin_w >= 0)
    set_async (srv.stdin_w);
  for (int i = 0; i < srv.n; i++)
    set_async (srv.c[i].fd);
  /* Whatever arrived before the handler was there. */
  raise (SIGIO);
}

/* A path naming a file in dirfd that fits a sockaddr_un whatever the store's path. */
static void
sock_addr (int dirfd, struct sockaddr_un *sa)
{
  memset (sa, 0, sizeof *sa);
  sa->sun_family = AF_UNIX;
  snprintf (sa->sun_path, sizeof sa->sun_path, "/proc/self/fd/%d/attach.sock", dirfd);
}

static int
srv_listen (struct cimg_store *s, const char *id, cimg_error_t *err)
{
  cleanup_free char *dir = xasprintf ("containers/%s", id);
  cleanup_close int dfd
      = openat (cimg_store_dirfd (s), dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return cimg_error_sys (err, "open %s", dir);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return cimg_error_sys (err, "socket");
  struct sockaddr_un sa;
  sock_addr (dfd, &sa);
  unlinkat (dfd, "attach.sock", 0);
  /* Only root (the owner) may connect: the container's stdin and output. */
  mode_t old = umask (077);
  int r = bind (fd, (struct sockaddr *)&sa, sizeof sa);
  umask (old);
  if (r < 0 || listen (fd, 16) < 0)
    {
      cimg_error_sys (err, "listen on %s/attach.sock", dir);
      close (fd);
      return -1;
    }
  return fd;
}

int
cimg_monitor_attach (struct cimg_store *s, const struct cimg_container *c, cimg_error_t *err)
{
  cleanup_free char *dir = xasprintf ("containers/%s", c->id);
  cleanup_close int dfd
      = openat (cimg_store_dirfd (s), dir, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    return cimg_error_sys (err, "open %s", dir);
  int fd = socket (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return cimg_error_sys (err, "socket");
  struct sockaddr_un sa;
  sock_addr (dfd, &sa);
  if (connect (fd, (struct sockaddr *)&sa, sizeof sa) < 0)
    {
      cimg_error_sys (err, "attach to container %.12s: connect to its monitor", c->id);
      close (fd);
      return -1;
    }
  return fd;
}

/* ---------------------------------------------------------------- the monitor */

struct mon
{
  struct cimg_store *s;
  struct cimg_container *c;
  struct cimg_log *lg;
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
on_started (void *data, pid_t pid, char *const *cgroup_dirs, cimg_error_t *err)
{
  struct mon *m = data;
  if (cimg_container_set_running_in (m->s, m->c, pid, cgroup_dirs, err) < 0)
    return -1;
  report (m, "R%d", (int)pid);
  /* What the setup allocated and freed goes back to the kernel (docs/runtime.md, memory). */
  malloc_trim (0);
  return 0;
}

static void
hook_output (void *data, int stream, const char *buf, size_t n)
{
  struct mon *m = data;
  srv_broadcast (stream, buf, n);
  cimg_log_write (m->lg, stream, buf, n);
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
      srv_hangup ();
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

/* Keep only the fds the monitor needs: the store, the log, the status pipe, the attach socket,
   the container's stdin and a first client (-1: none). */
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

/* In the monitor: the memory it inherited from the cimg that forked it is private to it once
   that cimg exits; most of the heap is free chunks of what the command allocated on its way
   here, which malloc_trim hands back. Allocations of the monitor's own are small; a lower
   mmap threshold keeps a large transient one (a long log line) out of the heap. */
static void
shrink_memory (void)
{
  mallopt (M_MMAP_THRESHOLD, 64 * 1024);
  mallopt (M_TRIM_THRESHOLD, 64 * 1024);
  malloc_trim (0);
}

int
cimg_monitor_start (struct cimg_store *s, struct cimg_container *c, const struct cimg_spec *spec,
                    int attach_fd, pid_t *pid, int *exec_error, char **exec_message,
                    cimg_error_t *err)
{
  *pid = 0;
  *exec_error = 0;
  *exec_message = NULL;
  cleanup_close int logfd = open_log (s, c->id, err);
  if (logfd < 0)
    return -1;
  cleanup_close int lfd = srv_listen (s, c->id, err);
  if (lfd < 0)
    return -1;
  /* The container's stdin with -i: the monitor keeps the write end for the clients. */
  int inp[2] = { -1, -1 };
  if (spec->process.stdin_open && pipe2 (inp, O_CLOEXEC) < 0)
    return cimg_error_sys (err, "pipe");
  int sp[2];
  if (pipe2 (sp, O_CLOEXEC) < 0)
    {
      int e = errno;
      if (inp[0] >= 0)
        close (inp[0]), close (inp[1]);
      errno = e;
      return cimg_error_sys (err, "pipe");
    }
  fflush (stdout);
  fflush (stderr);
  pid_t a = fork ();
  if (a < 0)
    {
      close (sp[0]);
      close (sp[1]);
      if (inp[0] >= 0)
        close (inp[0]), close (inp[1]);
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
      if (null < 0 || dup2 (inp[0] >= 0 ? inp[0] : null, 0) < 0 || dup2 (null, 1) < 0
          || dup2 (null, 2) < 0)
        _exit (1);
      int keep[] = { cimg_store_dirfd (s), logfd, sp[1], lfd, inp[1], attach_fd };
      close_other_fds (keep, ARRAY_SIZE (keep));
      if (chdir ("/") < 0)
        _exit (1);
      for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
          signal (sig, SIG_DFL);
      sigset_t none;
      sigemptyset (&none);
      sigprocmask (SIG_SETMASK, &none, NULL);
      shrink_memory ();
      static struct cimg_log lg;
      lg.fd = logfd;
      srv.listen_fd = lfd;
      srv.stdin_w = inp[1];
      srv.stdin_once
          = json_is_true (json_object_get (json_object_get (c->config, "Config"), "StdinOnce"));
      if (attach_fd >= 0)
        srv_add (attach_fd);
      srv_start ();
      struct mon m = { .s = s, .c = c, .lg = &lg, .status_fd = sp[1] };
      monitor_main (&m, spec);
    }
  if (inp[0] >= 0)
    close (inp[0]), close (inp[1]);
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
