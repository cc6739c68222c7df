/* The lifecycle commands of containers: logs, wait, stop, kill, start, restart, and the
   "container" group (prune, and the aliases of run, ps, rm and these). Detached containers run
   under a monitor (runtime/monitor.c) that records their state; these commands read that state
   and signal the container's process. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/monitor.h"
#include "runtime/runtime.h"
#include "store/container.h"

static void
sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *
raw_status (struct cimg_container *c)
{
  return cimg_json_str (c->state, "Status") ?: "created";
}

/* Nothing will change the container's state any more by itself: it is not running, and no
   monitor is about to record an exit or restart it. */
static bool
settled (struct cimg_container *c)
{
  bool monitor = cimg_monitor_pid (c) > 0;
  if (strcmp (raw_status (c), "running") != 0)
    return !(monitor && json_is_true (json_object_get (c->state, "Restarting")));
  if (strcmp (cimg_container_status (c), "running") == 0)
    return false;
  return !monitor;
}

/* Wait (up to timeout_ms; < 0: for ever) until the state is settled. 0 when it is, 1 on
   timeout, -1 when the record went away. */
static int
wait_settled (struct cimg_store *s, struct cimg_container *c, int64_t timeout_ms)
{
  int64_t end = now_ms () + timeout_ms;
  for (;;)
    {
      cimg_error_t e = { 0 };
      if (cimg_container_reload (s, c, &e) < 0)
        {
          cimg_error_clear (&e);
          return -1;
        }
      if (settled (c))
        return 0;
      if (timeout_ms >= 0 && now_ms () >= end)
        return 1;
      sleep_ms (20);
    }
}

static void
set_manual_stop (struct cimg_store *s, struct cimg_container *c, bool on)
{
  cimg_error_t e = { 0 };
  cleanup_json json_t *f = json_pack ("{s:b}", "ManualStop", on);
  if (cimg_container_update_state (s, c, f, &e) < 0)
    cimg_error_clear (&e);
}

static const struct
{
  const char *name;
  int sig;
} signals[] = {
  { "HUP", SIGHUP },       { "INT", SIGINT },   { "QUIT", SIGQUIT },   { "ILL", SIGILL },
  { "TRAP", SIGTRAP },     { "ABRT", SIGABRT }, { "BUS", SIGBUS },     { "FPE", SIGFPE },
  { "KILL", SIGKILL },     { "USR1", SIGUSR1 }, { "SEGV", SIGSEGV },   { "USR2", SIGUSR2 },
  { "PIPE", SIGPIPE },     { "ALRM", SIGALRM }, { "TERM", SIGTERM },   { "CHLD", SIGCHLD },
  { "CONT", SIGCONT },     { "STOP", SIGSTOP }, { "TSTP", SIGTSTP },   { "TTIN", SIGTTIN },
  { "TTOU", SIGTTOU },     { "URG", SIGURG },   { "XCPU", SIGXCPU },   { "XFSZ", SIGXFSZ },
  { "VTALRM", SIGVTALRM }, { "PROF", SIGPROF }, { "WINCH", SIGWINCH }, { "IO", SIGIO },
  { "PWR", SIGPWR },       { "SYS", SIGSYS },
};

/* "TERM", "SIGTERM", "15" (any case); -1 when unknown. */
static int
parse_signal (const char *s)
{
  if (s == NULL || *s == '\0')
    return -1;
  char *end;
  long n = strtol (s, &end, 10);
  if (*end == '\0')
    return n > 0 && n < NSIG ? (int)n : -1;
  if (strncasecmp (s, "SIG", 3) == 0)
    s += 3;
  for (size_t i = 0; i < ARRAY_SIZE (signals); i++)
    if (strcasecmp (s, signals[i].name) == 0)
      return signals[i].sig;
  return -1;
}

/* The image's StopSignal, else SIGTERM. */
static int
stop_signal (struct cimg_store *s, struct cimg_container *c)
{
  const char *id = cimg_json_str (c->config, "Image");
  if (id == NULL)
    return SIGTERM;
  cimg_error_t e = { 0 };
  cleanup_image struct cimg_image *img = cimg_store_find_image (s, id, &e);
  cimg_error_clear (&e);
  if (img == NULL)
    return SIGTERM;
  int sig = parse_signal (cimg_json_str (json_object_get (img->config, "config"), "StopSignal"));
  return sig > 0 ? sig : SIGTERM;
}

/* A cgroup left by a monitor or a cimg run that was itself killed. */
static int
destroy_leftover_cgroup (struct cimg_container *c, cimg_error_t *err)
{
  struct cimg_cgroup *cg = cimg_cgroup_open (c->id, err);
  cimg_error_clear (err);
  if (cg == NULL)
    return 0;
  int r = cimg_cgroup_destroy (cg, err);
  cimg_cgroup_free (cg);
  return r;
}

/* pid has exited and waits to be reaped. With its monitor killed first, the container's
   process is a zombie of init's until init reaps it, which some inits do only every few
   seconds; its start time still matches the record meanwhile. */
static bool
is_zombie (pid_t pid)
{
  char p[64], buf[512];
  snprintf (p, sizeof p, "/proc/%d/stat", (int)pid);
  cleanup_close int fd = open (p, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return true;
  ssize_t n = read (fd, buf, sizeof buf - 1);
  if (n <= 0)
    return true;
  buf[n] = '\0';
  const char *rp = strrchr (buf, ')');
  return rp && rp[1] == ' ' && (rp[2] == 'Z' || rp[2] == 'X');
}

int
cli_container_kill_all (struct cimg_store *s, struct cimg_container *ctr)
{
  set_manual_stop (s, ctr, true);
  pid_t mpid = cimg_monitor_pid (ctr);
  pid_t pid = cimg_container_pid (ctr);
  /* The monitor first, so that it cannot restart the container; the container dies with it
     (PDEATHSIG), and is killed here as well. */
  if (mpid > 0)
    kill (mpid, SIGKILL);
  if (pid > 0)
    kill (pid, SIGKILL);
  int64_t end = now_ms () + 5000;
  while (now_ms () < end)
    {
      cimg_error_t e = { 0 };
      if (cimg_container_reload (s, ctr, &e) < 0)
        {
          cimg_error_clear (&e);
          return 0;
        }
      if (strcmp (cimg_container_status (ctr), "running") != 0 || (pid > 0 && is_zombie (pid)))
        return 0;
      sleep_ms (10);
    }
  return -1;
}

/* ---------------------------------------------------------------- logs */

struct log_opts
{
  bool timestamps;
  int64_t since_ns, until_ns; /* 0: none */
};

/* "YYYY-MM-DD[THH[:MM[:SS[.frac]]]][Z|±HH:MM]" (no zone: local time, as Docker), or a Unix
   time "SECONDS[.frac]". Nanoseconds since the epoch. */
static int
parse_time_ns (const char *s, int64_t *ns)
{
  int Y, M, D, h = 0, m = 0, sec = 0, n = 0;
  if (sscanf (s, "%4d-%2d-%2d%n", &Y, &M, &D, &n) == 3 && n == 10)
    {
      const char *p = s + 10;
      int64_t frac = 0;
      if (*p == 'T' || *p == 't')
        {
          p++;
          if (sscanf (p, "%2d%n", &h, &n) != 1 || n != 2)
            return -1;
          p += 2;
          if (*p == ':')
            {
              if (sscanf (p + 1, "%2d%n", &m, &n) != 1 || n != 2)
                return -1;
              p += 3;
              if (*p == ':')
                {
                  if (sscanf (p + 1, "%2d%n", &sec, &n) != 1 || n != 2)
                    return -1;
                  p += 3;
                  if (*p == '.')
                    {
                      int64_t scale = 100000000;
                      for (p++; *p >= '0' && *p <= '9'; p++, scale /= 10)
                        frac += (*p - '0') * scale;
                    }
                }
            }
        }
      struct tm tm = { .tm_year = Y - 1900,
                       .tm_mon = M - 1,
                       .tm_mday = D,
                       .tm_hour = h,
                       .tm_min = m,
                       .tm_sec = sec,
                       .tm_isdst = -1 };
      int64_t t;
      if (*p == '\0')
        t = (int64_t)mktime (&tm);
      else
        {
          int64_t off = 0;
          if (*p == 'Z' || *p == 'z')
            p++;
          else if (*p == '+' || *p == '-')
            {
              int oh, om;
              if (sscanf (p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5)
                return -1;
              off = (oh * 3600 + om * 60) * (*p == '+' ? 1 : -1);
              p += 6;
            }
          if (*p)
            return -1;
          t = (int64_t)timegm (&tm) - off;
        }
      if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60)
        return -1;
      *ns = t * 1000000000 + frac;
      return 0;
    }
  if (strchr (s, '-'))
    return -1;
  char *end;
  errno = 0;
  long long whole = strtoll (s, &end, 10);
  if (end == s || errno || whole < 0)
    return -1;
  int64_t frac = 0;
  if (*end == '.')
    {
      int64_t scale = 100000000;
      for (end++; *end >= '0' && *end <= '9'; end++, scale /= 10)
        frac += (*end - '0') * scale;
    }
  if (*end)
    return -1;
  *ns = (int64_t)whole * 1000000000 + frac;
  return 0;
}

/* Docker's --since/--until value: a Go duration before now ("10m"), a timestamp, or a Unix
   time. */
static int
parse_log_time (const char *v, int64_t *ns)
{
  int64_t d;
  cimg_error_t derr = { 0 };
  if (strcmp (v, "0") != 0 && cimg_parse_go_duration (v, &d, &derr) == 0)
    {
      struct timespec now;
      clock_gettime (CLOCK_REALTIME, &now);
      *ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec - d;
      return 0;
    }
  cimg_error_clear (&derr); /* not a duration: a timestamp then */
  return parse_time_ns (v, ns);
}

/* Print the complete lines of buf[0..len); returns how many bytes were used. *past_until is
   set at the first record after --until (the log is in time order: nothing more to print). */
static size_t
print_log_lines (const char *buf, size_t len, const struct log_opts *o, int64_t skip_lines,
                 bool *past_until)
{
  size_t used = 0;
  int64_t line = 0;
  while (used < len && !*past_until)
    {
      const char *nl = memchr (buf + used, '\n', len - used);
      if (nl == NULL)
        break;
      size_t n = (size_t)(nl - (buf + used));
      if (line++ >= skip_lines)
        {
          cimg_error_t e = { 0 };
          cleanup_json json_t *rec = cimg_json_parse (buf + used, n, &e);
          cimg_error_clear (&e);
          json_t *log = json_object_get (rec, "log");
          int64_t t = 0;
          bool in_range = true;
          if (o->since_ns || o->until_ns)
            {
              const char *ts = cimg_json_str (rec, "time");
              if (ts == NULL || parse_time_ns (ts, &t) < 0)
                t = 0;
              if (o->since_ns && t < o->since_ns)
                in_range = false;
              if (o->until_ns && t > o->until_ns)
                {
                  *past_until = true;
                  break;
                }
            }
          if (json_is_string (log) && in_range)
            {
              bool err = strcmp (cimg_json_str (rec, "stream") ?: "", "stderr") == 0;
              FILE *out = err ? stderr : stdout;
              if (o->timestamps)
                fprintf (out, "%s ", cimg_json_str (rec, "time") ?: "");
              fwrite (json_string_value (log), 1, json_string_length (log), out);
              fflush (out);
            }
        }
      used += n + 1;
    }
  return used;
}

static int64_t
count_lines (const char *buf, size_t len)
{
  int64_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += buf[i] == '\n';
  return n;
}

int
cmd_logs (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "follow", no_argument, NULL, 'f' },
                                            { "tail", required_argument, NULL, 'n' },
                                            { "timestamps", no_argument, NULL, 't' },
                                            { "since", required_argument, NULL, 'S' },
                                            { "until", required_argument, NULL, 'U' },
                                            { "details", no_argument, NULL, 'D' },
                                            { 0 } };
  bool follow = false;
  int64_t tail = -1;
  struct log_opts o = { 0 };
  int r;
  while ((r = cli_getopt (c, argc, argv, "fn:t", longopts)) != -1)
    switch (r)
      {
      case 'f':
        follow = true;
        break;
      case 'n':
        if (strcmp (optarg, "all") == 0)
          tail = -1;
        else
          {
            char *end;
            tail = strtoll (optarg, &end, 10);
            if (end == optarg || *end)
              return cli_usage_error (c, "invalid argument \"%s\" for \"-n, --tail\" flag", optarg);
          }
        break;
      case 't':
        o.timestamps = true;
        break;
      case 'S':
      case 'U':
        if (parse_log_time (optarg, r == 'S' ? &o.since_ns : &o.until_ns) < 0)
          return cli_usage_error (c,
                                  "invalid value \"%s\" for --%s: not a timestamp, a Unix time "
                                  "or a duration (10m)",
                                  optarg, r == 'S' ? "since" : "until");
        break;
      case 'D':
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (optind + 1 != argc)
    return cli_usage_error (c, "\"%s\" requires exactly 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  cleanup_container struct cimg_container *ctr = cimg_container_find (s, argv[optind], &err);
  if (ctr == NULL)
    return cli_fail (&err);
  cleanup_free char *p = xasprintf ("containers/%s/ctr.log", ctr->id);
  cleanup_close int fd = openat (cimg_store_dirfd (s), p, O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT)
    {
      cimg_error_sys (&err, "open %s", p);
      return cli_fail (&err);
    }
  size_t cap = 65536, len = 0;
  cleanup_free char *buf = xmalloc (cap);
  bool first = true;
  for (;;)
    {
      /* Read what is there, print the whole lines, keep a partial one for the next round. */
      bool done = !follow;
      if (follow)
        {
          cimg_error_t e = { 0 };
          if (cimg_container_reload (s, ctr, &e) < 0 || settled (ctr))
            done = true;
          cimg_error_clear (&e);
        }
      if (fd < 0)
        fd = openat (cimg_store_dirfd (s), p, O_RDONLY | O_CLOEXEC);
      for (; fd >= 0;)
        {
          if (cap - len < 16384)
            buf = xrealloc (buf, cap *= 2);
          ssize_t n = read (fd, buf + len, cap - len);
          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            break;
          len += (size_t)n;
        }
      int64_t skip = 0;
      if (first && tail >= 0)
        {
          int64_t total = count_lines (buf, len);
          skip = total > tail ? total - tail : 0;
        }
      first = false;
      bool past_until = false;
      size_t used = print_log_lines (buf, len, &o, skip, &past_until);
      memmove (buf, buf + used, len - used);
      len -= used;
      if (done || past_until)
        break;
      sleep_ms (100);
    }
  return 0;
}

/* ---------------------------------------------------------------- wait */

static int
wait_one (struct cimg_store *s, struct cimg_container *ctr, const char *name, void *data,
          cimg_error_t *err)
{
  (void)data;
  if (wait_settled (s, ctr, -1) < 0)
    return cimg_error_set (err, ENOENT, "container %s was removed while waiting", name);
  printf ("%d\n", cimg_container_exit_code (ctr));
  fflush (stdout);
  return 0;
}

int
cmd_wait (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { 0 } };
  int r;
  while ((r = cli_getopt (c, argc, argv, "", longopts)) != -1)
    return r == 'h' ? 0 : EXIT_USAGE;
  return cli_each_container (c, argc, argv, false, wait_one, NULL);
}

/* ---------------------------------------------------------------- stop, kill */

/* Send sig, wait timeout_s, then SIGKILL; returns 0 once the exit is recorded. */
static int
stop_one (struct cimg_store *s, struct cimg_container *ctr, int sig, int64_t timeout_s)
{
  set_manual_stop (s, ctr, true);
  pid_t pid = cimg_container_pid (ctr);
  if (pid <= 0)
    return wait_settled (s, ctr, 5000) == 1 ? -1 : 0;
  if (timeout_s != 0 && kill (pid, sig) == 0)
    {
      int w = wait_settled (s, ctr, timeout_s < 0 ? -1 : timeout_s * 1000);
      if (w <= 0)
        return 0;
    }
  pid = cimg_container_pid (ctr);
  if (pid > 0)
    kill (pid, SIGKILL);
  return wait_settled (s, ctr, 10000) == 1 ? -1 : 0;
}

struct stop_args
{
  int sig; /* 0: the image's StopSignal */
  int64_t timeout;
};

static int
stop_cb (struct cimg_store *s, struct cimg_container *ctr, const char *name, void *data,
         cimg_error_t *err)
{
  struct stop_args *a = data;
  if (stop_one (s, ctr, a->sig ? a->sig : stop_signal (s, ctr), a->timeout) < 0)
    return cimg_error_set (err, ETIMEDOUT, "container %s did not stop", name);
  return 0;
}

int
cmd_stop (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "time", required_argument, NULL, 't' },
                                            { "signal", required_argument, NULL, 's' },
                                            { 0 } };
  int64_t timeout = 10;
  int sig = 0;
  int r;
  while ((r = cli_getopt (c, argc, argv, "t:s:", longopts)) != -1)
    switch (r)
      {
      case 't':
        if (cli_parse_seconds (c, "-t, --time", optarg, true, &timeout) != 0)
          return EXIT_USAGE;
        break;
      case 's':
        sig = parse_signal (optarg);
        if (sig <= 0)
          return cli_usage_error (c, "Invalid signal: %s", optarg);
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  struct stop_args a = { sig, timeout };
  return cli_each_container (c, argc, argv, true, stop_cb, &a);
}

static int
kill_cb (struct cimg_store *s, struct cimg_container *ctr, const char *name, void *data,
         cimg_error_t *err)
{
  int sig = *(int *)data;
  pid_t pid = cimg_container_pid (ctr);
  if (pid <= 0)
    return cimg_error_set (err, ESRCH, "Cannot kill container: %s: Container %s is not running",
                           name, ctr->id);
  /* As Docker: a killed container is not restarted by its policy. */
  set_manual_stop (s, ctr, true);
  if (kill (pid, sig) < 0)
    return cimg_error_sys (err, "kill container %s", name);
  return 0;
}

int
cmd_kill (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "signal", required_argument, NULL, 's' }, { 0 } };
  int sig = SIGKILL;
  int r;
  while ((r = cli_getopt (c, argc, argv, "s:", longopts)) != -1)
    switch (r)
      {
      case 's':
        sig = parse_signal (optarg);
        if (sig <= 0)
          return cli_usage_error (c, "Invalid signal: %s", optarg);
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  return cli_each_container (c, argc, argv, true, kill_cb, &sig);
}

/* ---------------------------------------------------------------- start, restart */

/* start -a [-i]: Docker's way, a detached start with the caller attached from the first byte:
   the monitor takes one end of a socket pair as its first client before the container runs,
   so no output is lost, the log is written and the restart policy applies as for any start. */
static int
start_attached (struct cimg_store *s, struct cimg_container *ctr, bool interactive)
{
  int sv[2];
  if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
    {
      cimg_error_t err = { 0 };
      cimg_error_sys (&err, "socketpair");
      return cli_fail (&err);
    }
  int rc = cli_start_detached (s, ctr, false, sv[1]);
  close (sv[1]);
  if (rc != 0)
    {
      close (sv[0]);
      return rc;
    }
  cimg_error_t e = { 0 };
  if (cimg_container_reload (s, ctr, &e) < 0)
    cimg_error_clear (&e);
  pid_t pid = cimg_container_pid (ctr);
  json_t *cfg = json_object_get (ctr->config, "Config");
  bool tty = json_is_true (json_object_get (cfg, "Tty"));
  bool open_stdin = json_is_true (json_object_get (cfg, "OpenStdin"));
  bool detached;
  int r = cli_attach_io (sv[0], pid, tty, interactive && open_stdin, true, &detached);
  close (sv[0]);
  if (r < 0)
    {
      cimg_error_sys (&e, "attach");
      return cli_fail (&e);
    }
  return detached ? 0 : cli_attached_exit_code (s, ctr, pid);
}

static int
start_one (struct cimg_store *s, struct cimg_container *ctr, bool attach, bool interactive)
{
  cimg_error_t err = { 0 };
  pid_t running = cimg_container_pid (ctr);
  if (running > 0 && attach)
    {
      /* Already running: start -a attaches to it, as Docker. */
      cleanup_close int sock = cimg_monitor_attach (s, ctr, &err);
      if (sock < 0)
        return cli_fail (&err);
      json_t *cfg = json_object_get (ctr->config, "Config");
      bool detached;
      if (cli_attach_io (sock, running, json_is_true (json_object_get (cfg, "Tty")),
                         interactive && json_is_true (json_object_get (cfg, "OpenStdin")), true,
                         &detached)
          < 0)
        {
          cimg_error_sys (&err, "attach");
          return cli_fail (&err);
        }
      return detached ? 0 : cli_attached_exit_code (s, ctr, running);
    }
  if (running > 0)
    return 0; /* already running: nothing to do, as Docker */
  pid_t mpid = cimg_monitor_pid (ctr);
  if (mpid > 0)
    {
      /* A monitor waiting to restart it: it is replaced. */
      kill (mpid, SIGKILL);
      for (int i = 0; i < 100 && cimg_pid_start_time (mpid) != 0; i++)
        sleep_ms (10);
    }
  if (destroy_leftover_cgroup (ctr, &err) < 0)
    return cli_fail (&err);
  cleanup_json json_t *f
      = json_pack ("{s:b, s:b, s:i}", "ManualStop", 0, "Restarting", 0, "MonitorPid", 0);
  if (cimg_container_update_state (s, ctr, f, &err) < 0)
    return cli_fail (&err);
  return attach ? start_attached (s, ctr, interactive) : cli_start_detached (s, ctr, false, -1);
}

static int
start_cb (struct cimg_store *s, struct cimg_container *ctr, const char *name, void *data,
          cimg_error_t *err)
{
  (void)name, (void)err;
  const bool *ai = data;
  /* With -a or -i (one container) its exit code is the command's, 0 included. */
  return start_one (s, ctr, ai[0], ai[1]);
}

int
cmd_start (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[]
      = { { "attach", no_argument, NULL, 'a' }, { "interactive", no_argument, NULL, 'i' }, { 0 } };
  bool attach = false, interactive = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "ai", longopts)) != -1)
    switch (r)
      {
      case 'a':
        attach = true;
        break;
      case 'i':
        interactive = true;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  /* As Docker, -i attaches too (stdin, and the output). */
  attach |= interactive;
  if (attach && argc - optind > 1)
    return cli_usage_error (c, "you cannot start and attach multiple containers at once");
  bool ai[2] = { attach, interactive };
  return cli_each_container (c, argc, argv, !attach, start_cb, ai);
}

static int
restart_cb (struct cimg_store *s, struct cimg_container *ctr, const char *name, void *data,
            cimg_error_t *err)
{
  if (stop_one (s, ctr, stop_signal (s, ctr), *(int64_t *)data) < 0)
    return cimg_error_set (err, ETIMEDOUT, "container %s did not stop", name);
  return start_one (s, ctr, false, false);
}

int
cmd_restart (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "time", required_argument, NULL, 't' }, { 0 } };
  int64_t timeout = 10;
  int r;
  while ((r = cli_getopt (c, argc, argv, "t:", longopts)) != -1)
    switch (r)
      {
      case 't':
        if (cli_parse_seconds (c, "-t, --time", optarg, true, &timeout) != 0)
          return EXIT_USAGE;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  return cli_each_container (c, argc, argv, true, restart_cb, &timeout);
}

/* ---------------------------------------------------------------- container prune */

static int
cmd_container_prune (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "force", no_argument, NULL, 'f' }, { 0 } };
  int r;
  while ((r = cli_getopt (c, argc, argv, "f", longopts)) != -1)
    switch (r)
      {
      case 'f':
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  struct cimg_container **v = NULL;
  size_t n = 0;
  if (cimg_container_list (s, &v, &n, &err) < 0)
    return cli_fail (&err);
  int rc = 0;
  int64_t reclaimed = 0;
  bool any = false;
  for (size_t k = 0; k < n; k++)
    {
      struct cimg_container *ctr = v[k];
      if (!settled (ctr))
        continue;
      cleanup_free char *dir = cimg_container_dir (ctr);
      cleanup_free char *upper = xasprintf ("%s/upper", dir);
      int64_t size = cimg_disk_usage_at (cimg_store_dirfd (s), upper);
      if (destroy_leftover_cgroup (ctr, &err) < 0)
        {
          rc = cli_fail (&err);
          continue;
        }
      cleanup_close int lk = cimg_container_lock (s, ctr, &err);
      if (lk < 0 || cimg_container_remove (s, ctr, &err) < 0)
        {
          rc = cli_fail (&err);
          continue;
        }
      if (!any)
        printf ("Deleted Containers:\n");
      any = true;
      printf ("%s\n", ctr->id);
      reclaimed += size > 0 ? size : 0;
    }
  cimg_containers_free (v, n);
  char hs[64];
  cimg_human_size (reclaimed, hs, sizeof hs);
  printf ("%sTotal reclaimed space: %s\n", any ? "\n" : "", hs);
  return rc;
}

/* cimg container COMMAND: Docker's management command. */
int
cmd_container (struct cli *c, int argc, char **argv)
{
  static const struct
  {
    const char *name;
    int (*fn) (struct cli *c, int argc, char **argv);
  } sub[] = {
    { "prune", cmd_container_prune },
    { "ls", cmd_ps },
    { "list", cmd_ps },
    { "ps", cmd_ps },
    { "rm", cmd_rm },
    { "run", cmd_run },
    { "logs", cmd_logs },
    { "wait", cmd_wait },
    { "stop", cmd_stop },
    { "kill", cmd_kill },
    { "start", cmd_start },
    { "restart", cmd_restart },
    { "exec", cmd_exec },
    { "attach", cmd_attach },
    { "top", cmd_top },
    { "stats", cmd_stats },
    { "inspect", cmd_inspect_any },
  };
  if (argc < 2 || strcmp (argv[1], "--help") == 0)
    {
      FILE *out = argc < 2 ? stderr : stdout;
      fprintf (out, "\nUsage:  cimg container COMMAND\n\nCommands:\n");
      for (size_t i = 0; i < ARRAY_SIZE (sub); i++)
        fprintf (out, "  %s\n", sub[i].name);
      return argc < 2 ? EXIT_USAGE : 0;
    }
  for (size_t i = 0; i < ARRAY_SIZE (sub); i++)
    if (strcmp (argv[1], sub[i].name) == 0)
      {
        cleanup_free char *prog = xasprintf ("cimg container %s", sub[i].name);
        const char *saved = c->prog;
        c->prog = prog;
        optind = 1;
        int r = sub[i].fn (c, argc - 1, argv + 1);
        c->prog = saved;
        return r;
      }
  fprintf (stderr, "cimg: 'container %s' is not a cimg command.\nSee 'cimg container --help'.\n",
           argv[1]);
  return EXIT_USAGE;
}

/* ---------------------------------------------------------------- exec */

/* "uid[:gid]" numerically, or a name looked up in the container's /etc/passwd (read inside
   its root: /proc/PID/root, every path resolved in it). */
static int
exec_user (pid_t pid, const char *spec, uid_t *uid, gid_t *gid, cimg_error_t *err)
{
  cleanup_free char *copy = xstrdup (spec);
  char *g = strchr (copy, ':');
  if (g)
    *g++ = '\0';
  char *end;
  unsigned long u = strtoul (copy, &end, 10);
  if (*copy && *end == '\0')
    *uid = (uid_t)u;
  else
    {
      char root[64];
      snprintf (root, sizeof root, "/proc/%d/root", (int)pid);
      cleanup_close int rfd = open (root, O_PATH | O_DIRECTORY | O_CLOEXEC);
      cleanup_close int fd = rfd < 0 ? -1 : cimg_openat_in_root (rfd, "/etc/passwd", O_RDONLY, 0);
      cleanup_free char *buf = NULL;
      size_t len = 0;
      char fdpath[64];
      snprintf (fdpath, sizeof fdpath, "/proc/self/fd/%d", fd);
      if (fd >= 0 && cimg_read_file_at (AT_FDCWD, fdpath, 1 << 20, &buf, &len, err) < 0)
        cimg_error_clear (err);
      bool found = false;
      char *save = NULL;
      for (char *line = buf ? strtok_r (buf, "\n", &save) : NULL; line && !found;
           line = strtok_r (NULL, "\n", &save))
        {
          char name[256];
          unsigned lu, lg;
          if (sscanf (line, "%255[^:]:%*[^:]:%u:%u", name, &lu, &lg) == 3
              && strcmp (name, copy) == 0)
            {
              *uid = (uid_t)lu;
              *gid = (gid_t)lg;
              found = true;
            }
        }
      if (!found)
        return cimg_error_set (err, ENOENT,
                               "unable to find user %s: no matching entries in passwd file", copy);
    }
  if (g && *g)
    {
      unsigned long gv = strtoul (g, &end, 10);
      if (*end)
        return cimg_error_set (err, EINVAL, "exec -u: group %s: only numeric groups", g);
      *gid = (gid_t)gv;
    }
  return 0;
}

int
cmd_exec (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[]
      = { { "detach", no_argument, NULL, 'd' },        { "interactive", no_argument, NULL, 'i' },
          { "tty", no_argument, NULL, 't' },           { "env", required_argument, NULL, 'e' },
          { "workdir", required_argument, NULL, 'w' }, { "user", required_argument, NULL, 'u' },
          { "help", no_argument, NULL, 'H' },          { 0 } };
  bool detach = false, interactive = false, tty = false;
  const char *workdir = NULL, *user = NULL;
  cleanup_strv char **envs = NULL;
  int r;
  /* "+": options end at the container; what follows is the command and its own flags. */
  while ((r = getopt_long (argc, argv, "+:dite:w:u:", longopts, NULL)) != -1)
    switch (r)
      {
      case 'H':
        cli_print_help (c);
        return 0;
      case ':':
        return cli_usage_error (c, "flag needs an argument: %s", argv[optind - 1]);
      case '?':
        if (optopt)
          return cli_usage_error (c, "unknown shorthand flag: '%c' in -%c", optopt, optopt);
        return cli_usage_error (c, "unknown flag: %s", argv[optind - 1]);
      case 'd':
        detach = true;
        break;
      case 'i':
        interactive = true;
        break;
      case 't':
        tty = true;
        break;
      case 'e':
        cimg_strv_append (&envs, optarg);
        break;
      case 'w':
        workdir = optarg;
        break;
      case 'u':
        user = optarg;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (argc - optind < 2)
    return cli_usage_error (c, "\"%s\" requires at least 2 arguments.", c->prog);
  if (workdir && workdir[0] != '/')
    return cli_usage_error (c,
                            "the working directory '%s' is invalid, it needs to be an "
                            "absolute path",
                            workdir);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  cleanup_container struct cimg_container *ctr = cimg_container_find (s, argv[optind], &err);
  if (ctr == NULL)
    return cli_fail (&err);
  pid_t pid = cimg_container_pid (ctr);
  if (pid <= 0)
    {
      fprintf (stderr, "cimg: Container %s is not running\n", ctr->id);
      return EXIT_FAIL;
    }
  json_t *ccfg = json_object_get (ctr->config, "Config");
  json_t *hc = json_object_get (ctr->config, "HostConfig");
  json_t *pu = json_object_get (ctr->config, "ProcessUser");
  cleanup_strv char **env = NULL, **caps = NULL;
  size_t i;
  json_t *e;
  json_array_foreach (json_object_get (ccfg, "Env"), i, e)
      cimg_strv_append (&env, json_string_value (e));
  for (size_t k = 0; envs && envs[k]; k++)
    {
      const char *kv = envs[k];
      cleanup_free char *full = strchr (kv, '=') ? xstrdup (kv)
                                : getenv (kv)    ? xasprintf ("%s=%s", kv, getenv (kv))
                                                 : NULL;
      if (full == NULL)
        continue;
      size_t klen = (size_t)(strchr (full, '=') - full);
      bool replaced = false;
      for (size_t j = 0; env && env[j]; j++)
        if (strncmp (env[j], full, klen + 1) == 0)
          {
            free (env[j]);
            env[j] = xstrdup (full);
            replaced = true;
          }
      if (!replaced)
        cimg_strv_append (&env, full);
    }
  json_array_foreach (json_object_get (hc, "Capabilities"), i, e)
      cimg_strv_append (&caps, json_string_value (e));
  if (caps == NULL)
    caps = xzalloc (sizeof (char *));
  json_t *g = json_object_get (pu, "AdditionalGids");
  cleanup_free gid_t *groups = xzalloc ((json_array_size (g) + 1) * sizeof (gid_t));
  json_array_foreach (g, i, e) groups[i] = (gid_t)json_integer_value (e);
  uid_t uid = (uid_t)cimg_json_int (pu, "UID");
  gid_t gid = (gid_t)cimg_json_int (pu, "GID");
  size_t n_groups = json_array_size (g);
  if (user)
    {
      gid = 0;
      if (exec_user (pid, user, &uid, &gid, &err) < 0)
        return cli_fail (&err);
      groups[0] = gid;
      n_groups = 1;
    }
  /* The cgroup directories the record keeps (the runtime validates them): none, or anything
     but strings, means a lookup of the cgroup mounts. */
  cleanup_strv char **cgdirs = NULL;
  json_array_foreach (json_object_get (ctr->state, "CgroupPaths"), i, e)
      cimg_strv_append (&cgdirs, json_is_string (e) ? json_string_value (e) : "");
  struct cimg_exec_spec x = {
    .pid = pid,
    .pid_ino = cimg_json_int (ctr->state, "PidIno"),
    .id = ctr->id,
    .cgroup_dirs = cgdirs,
    .store_dirfd = cimg_store_dirfd (s),
    .process = {
      .args = argv + optind + 1,
      .env = env,
      .cwd = workdir ? workdir : cimg_json_str (ccfg, "WorkingDir"),
      .uid = uid,
      .gid = gid,
      .groups = groups,
      .n_groups = n_groups,
      .tty = tty,
      .stdin_open = interactive,
    },
    .caps = caps,
    .seccomp = json_is_true (json_object_get (hc, "Seccomp")),
    .seccomp_profile = cimg_json_str (hc, "SeccompProfile"),
    .no_new_privileges = json_is_true (json_object_get (hc, "NoNewPrivileges")),
    .detach = detach,
  };
  struct cimg_run_result res = { 0 };
  if (cimg_runtime_exec (&x, &res, &err) < 0)
    {
      cli_fail (&err);
      return 126; /* as Docker when the exec'd process cannot be set up */
    }
  int rc;
  if (res.exec_error)
    {
      fprintf (stderr, "cimg: %s\n", res.exec_message);
      rc = res.exec_error;
    }
  else
    rc = detach ? 0 : cimg_runtime_exit_code (res.status);
  cimg_run_result_clear (&res);
  return rc;
}

/* ---------------------------------------------------------------- inspect */

/* Docker's inspect of a container, from the record and its state. */
static json_t *
container_inspect_json (struct cimg_store *s, struct cimg_container *ctr)
{
  json_t *cfg = ctr->config;
  const char *status = cimg_container_status (ctr);
  bool running = strcmp (status, "running") == 0;
  bool restarting = !running && json_is_true (json_object_get (ctr->state, "Restarting"))
                    && cimg_monitor_pid (ctr) > 0;
  const char *iid = cimg_json_str (cfg, "Image") ?: "";
  cleanup_free char *image
      = cimg_str_has_prefix (iid, "sha256:") ? xstrdup (iid) : xasprintf ("sha256:%s", iid);
  const char *root = cimg_store_root (s);
  json_t *gd = json_object_get (json_object_get (cfg, "GraphDriver"), "Data");
  cleanup_free char *lowers = xstrdup ("");
  cleanup_free char *lcopy = xstrdup (cimg_json_str (gd, "LowerDir") ?: "");
  char *save = NULL;
  for (char *t = strtok_r (lcopy, ":", &save); t; t = strtok_r (NULL, ":", &save))
    {
      char *n = xasprintf ("%s%s%s/%s", lowers, *lowers ? ":" : "", root, t);
      free (lowers);
      lowers = n;
    }
  cleanup_free char *dir = xasprintf ("%s/containers/%s", root, ctr->id);
  cleanup_free char *upper = xasprintf ("%s/upper", dir);
  cleanup_free char *work = xasprintf ("%s/work", dir);
  cleanup_free char *merged = xasprintf ("%s/merged", dir);
  cleanup_free char *logp = xasprintf ("%s/ctr.log", dir);
  json_t *config = json_deep_copy (json_object_get (cfg, "Config"));
  if (config == NULL)
    config = json_object ();
  json_t *hc = json_deep_copy (json_object_get (cfg, "HostConfig"));
  if (hc == NULL)
    hc = json_object ();
  json_t *o = json_pack (
      "{s:s, s:s, s:s, s:O, s:{s:s, s:b, s:b, s:b, s:b, s:b, s:i, s:i, s:s, s:s, s:s}, s:s, "
      "s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:o, s:{s:s, s:{s:s, s:s, s:s, s:s}}, s:o}",
      "Id", ctr->id, "Created", cimg_json_str (cfg, "Created") ?: "", "Path",
      cimg_json_str (cfg, "Path") ?: "", "Args", json_object_get (cfg, "Args"), "State", "Status",
      restarting ? "restarting" : status, "Running", running, "Paused", 0, "Restarting", restarting,
      "OOMKilled", json_is_true (json_object_get (ctr->state, "OOMKilled")), "Dead", 0, "Pid",
      (int)cimg_container_pid (ctr), "ExitCode", cimg_container_exit_code (ctr), "Error", "",
      "StartedAt", cimg_json_str (ctr->state, "StartedAt") ?: "0001-01-01T00:00:00Z", "FinishedAt",
      cimg_json_str (ctr->state, "FinishedAt") ?: "0001-01-01T00:00:00Z", "Image", image, "LogPath",
      logp, "Name", cimg_json_str (cfg, "Name") ?: "", "Driver", "overlay", "Platform", "linux",
      "RestartCount", (json_int_t)cimg_json_int (ctr->state, "RestartCount"), "ImageName",
      cimg_json_str (cfg, "ImageName") ?: "", "Config", config, "HostConfig", hc, "GraphDriver",
      "Name", "overlay", "Data", "LowerDir", lowers, "UpperDir", upper, "WorkDir", work,
      "MergedDir", merged, "Mounts", json_array ());
  if (o == NULL)
    return json_object ();
  /* Docker's Config.Image is the name the user gave. */
  json_object_set_new (config, "Image", json_string (cimg_json_str (cfg, "ImageName") ?: ""));
  return o;
}

/* cimg inspect: containers (a name, ID or ID prefix of one) and images; --type chooses. */
int
cmd_inspect_any (struct cli *c, int argc, char **argv)
{
  const char *type = NULL;
  for (int i = 1; i < argc; i++)
    {
      if (strcmp (argv[i], "--type") == 0 && i + 1 < argc)
        type = argv[i + 1];
      else if (cimg_str_has_prefix (argv[i], "--type="))
        type = argv[i] + 7;
    }
  if (type && strcmp (type, "container") != 0 && strcmp (type, "image") != 0)
    return cli_usage_error (c, "\"%s\" is not a valid value for --type", type);
  if (type && strcmp (type, "image") == 0)
    return cmd_inspect (c, argc, argv);
  static const struct option longopts[] = { { "type", required_argument, NULL, 't' },
                                            { "format", required_argument, NULL, 'f' },
                                            { 0 } };
  int r;
  while ((r = cli_getopt (c, argc, argv, "f:", longopts)) != -1)
    switch (r)
      {
      case 't':
        break;
      case 'f':
        return cli_usage_error (c, "--format templates are not supported; pipe the JSON to jq");
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (optind >= argc)
    return cli_usage_error (c, "\"%s\" requires at least 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  /* Containers first, as Docker; names that are no container are images. */
  struct cimg_container **found = xzalloc ((size_t)(argc - optind + 1) * sizeof *found);
  bool all = true;
  for (int i = optind; i < argc; i++)
    {
      cimg_error_t err = { 0 };
      found[i - optind] = cimg_container_find (s, argv[i], &err);
      cimg_error_clear (&err);
      all &= found[i - optind] != NULL;
    }
  if (!all && type == NULL)
    {
      cimg_containers_free (found, (size_t)(argc - optind));
      optind = 1;
      return cmd_inspect (c, argc, argv);
    }
  cleanup_json json_t *out = json_array ();
  int rc = 0;
  for (int i = optind; i < argc; i++)
    {
      if (found[i - optind] == NULL)
        {
          fprintf (stderr, "cimg: No such container: %s\n", argv[i]);
          rc = EXIT_FAIL;
          continue;
        }
      json_array_append_new (out, container_inspect_json (s, found[i - optind]));
    }
  cimg_containers_free (found, (size_t)(argc - optind));
  cleanup_free char *txt = json_dumps (out, JSON_INDENT (4) | JSON_PRESERVE_ORDER);
  printf ("%s\n", txt);
  return rc;
}
