/* cimg top and cimg stats: what runs in a container and what it uses, read from its cgroup
   (runtime/cgroup.c) as Docker's daemon reads it. See docs/runtime.md. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "store/container.h"

/* ---------------------------------------------------------------- top */

/* Split line into at most n fields on blanks; the last one keeps the rest (CMD has spaces). */
static size_t
split_fields (char *line, char **f, size_t n)
{
  size_t k = 0;
  char *p = line;
  while (k < n)
    {
      p += strspn (p, " \t");
      if (*p == '\0')
        break;
      if (k == n - 1)
        {
          f[k++] = p;
          break;
        }
      f[k++] = p;
      p += strcspn (p, " \t");
      if (*p)
        *p++ = '\0';
    }
  return k;
}

/* Run `ps ARGS` on the host and read its whole output. */
static int
run_ps (char *const *args, char **out, cimg_error_t *err)
{
  int p[2];
  if (pipe2 (p, O_CLOEXEC) < 0)
    return cimg_error_sys (err, "pipe");
  fflush (stdout);
  fflush (stderr);
  pid_t pid = fork ();
  if (pid < 0)
    {
      close (p[0]);
      close (p[1]);
      return cimg_error_sys (err, "fork");
    }
  if (pid == 0)
    {
      dup2 (p[1], 1);
      execvp ("ps", args);
      _exit (127);
    }
  close (p[1]);
  size_t cap = 65536, len = 0;
  char *buf = xmalloc (cap);
  for (;;)
    {
      if (cap - len < 4096)
        buf = xrealloc (buf, cap *= 2);
      ssize_t n = read (p[0], buf + len, cap - len - 1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        break;
      len += (size_t)n;
    }
  buf[len] = '\0';
  close (p[0]);
  int st;
  while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
    ;
  if (!WIFEXITED (st) || WEXITSTATUS (st) != 0)
    {
      free (buf);
      if (WIFEXITED (st) && WEXITSTATUS (st) == 127)
        return cimg_error_set (err, ENOENT, "ps: not found");
      return cimg_error_set (err, EINVAL, "ps failed (exit status %d)",
                             WIFEXITED (st) ? WEXITSTATUS (st) : 128 + WTERMSIG (st));
    }
  *out = buf;
  return 0;
}

int
cmd_top (struct cli *c, int argc, char **argv)
{
  /* Everything after the container is ps's, as Docker: `cimg top web -o pid,comm`. */
  if (argc >= 2 && (strcmp (argv[1], "--help") == 0 || strcmp (argv[1], "-h") == 0))
    {
      cli_print_help (c);
      return 0;
    }
  if (argc < 2)
    return cli_usage_error (c, "\"%s\" requires at least 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = NULL;
  cleanup_container struct cimg_container *ctr = NULL;
  int rc = cli_one_container (c, argv[1], 0, &s, &ctr);
  if (rc != 0)
    return rc;
  cimg_error_t err = { 0 };
  if (cimg_container_pid (ctr) <= 0)
    {
      fprintf (stderr, "cimg: Container %s is not running\n", ctr->id);
      return EXIT_FAIL;
    }
  struct cimg_cgroup *cg = cimg_cgroup_open (ctr->id, &err);
  pid_t *pids = NULL;
  size_t npids = 0;
  int r = cg ? cimg_cgroup_pids (cg, &pids, &npids, &err) : -1;
  cimg_cgroup_free (cg);
  if (r < 0)
    return cli_fail (&err);
  cleanup_free pid_t *pids_owned = pids;

  cleanup_strv char **args = NULL;
  cimg_strv_append (&args, "ps");
  if (argc == 2)
    cimg_strv_append (&args, "-ef");
  for (int i = 2; i < argc; i++)
    cimg_strv_append (&args, argv[i]);
  cleanup_free char *out = NULL;
  if (run_ps (args, &out, &err) < 0)
    {
      cimg_error_wrap (&err, "top");
      return cli_fail (&err);
    }
  char *save = NULL;
  char *header = strtok_r (out, "\n", &save);
  if (header == NULL)
    {
      fprintf (stderr, "cimg: ps printed nothing\n");
      return EXIT_FAIL;
    }
  cleanup_free char *hcopy = xstrdup (header);
  char *titles[64];
  size_t nt = 0;
  char *hs = NULL;
  for (char *t = strtok_r (hcopy, " \t", &hs); t && nt < ARRAY_SIZE (titles);
       t = strtok_r (NULL, " \t", &hs))
    titles[nt++] = t;
  size_t pid_col = nt;
  for (size_t i = 0; i < nt; i++)
    if (strcmp (titles[i], "PID") == 0)
      pid_col = i;
  if (pid_col == nt)
    {
      fprintf (stderr, "cimg: Couldn't find PID field in ps output\n");
      return EXIT_FAIL;
    }
  struct table *t = table_new (nt);
  /* table_add takes ncols strings as varargs; rows go through a fixed-width call. */
  char *row[64];
  for (size_t i = 0; i < nt; i++)
    row[i] = titles[i];
#define ADD_ROW(r)                                                                                 \
  do                                                                                               \
    {                                                                                              \
      char *_c[64];                                                                                \
      for (size_t _i = 0; _i < 64; _i++)                                                           \
        _c[_i] = _i < nt ? (r)[_i] : "";                                                           \
      table_add (t, _c[0], _c[1], _c[2], _c[3], _c[4], _c[5], _c[6], _c[7], _c[8], _c[9], _c[10],  \
                 _c[11], _c[12], _c[13], _c[14], _c[15], _c[16], _c[17], _c[18], _c[19]);          \
    }                                                                                              \
  while (0)
  if (nt > 20)
    {
      table_free (t);
      fprintf (stderr, "cimg: top: too many ps columns (%zu, at most 20)\n", nt);
      return EXIT_FAIL;
    }
  ADD_ROW (row);
  for (char *line = strtok_r (NULL, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      char *f[64];
      size_t k = split_fields (line, f, nt);
      if (k <= pid_col)
        continue;
      char *end;
      long pid = strtol (f[pid_col], &end, 10);
      if (*end)
        continue;
      bool mine = false;
      for (size_t i = 0; i < npids && !mine; i++)
        mine = pids[i] == (pid_t)pid;
      if (!mine)
        continue;
      for (size_t i = k; i < nt; i++)
        f[i] = "";
      ADD_ROW (f);
    }
#undef ADD_ROW
  table_print (t, stdout);
  table_free (t);
  return 0;
}

/* ---------------------------------------------------------------- stats */

/* go-units' CustomSize: "%.4g" and the unit, base 1024 (BytesSize: MEM) or 1000 (HumanSize:
   NET and BLOCK I/O). */
static void
units_size (double v, bool binary, char *out, size_t n)
{
  static const char *const bin[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
  static const char *const dec[] = { "B", "kB", "MB", "GB", "TB", "PB" };
  double base = binary ? 1024 : 1000;
  size_t i = 0;
  while (v >= base && i < 5)
    v /= base, i++;
  snprintf (out, n, "%.4g%s", v, binary ? bin[i] : dec[i]);
}

struct sample
{
  struct cimg_container *ctr;
  bool running, have;
  struct cimg_cgroup_usage u;
  int64_t net_rx, net_tx;
  int64_t t_ns; /* CLOCK_MONOTONIC of the sample */
  int64_t prev_cpu_ns, prev_t_ns;
};

static int64_t
mono_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Bytes received and sent on the container's interfaces other than lo (its own network
   namespace's /proc/PID/net/dev); 0 with the host's network, as Docker shows it. */
static void
net_io (struct cimg_container *ctr, pid_t pid, int64_t *rx, int64_t *tx)
{
  *rx = *tx = 0;
  const char *mode = cimg_json_str (json_object_get (ctr->config, "HostConfig"), "NetworkMode");
  if (pid <= 0 || (mode && strcmp (mode, "host") == 0))
    return;
  char p[64];
  snprintf (p, sizeof p, "/proc/%d/net/dev", (int)pid);
  FILE *f = fopen (p, "re");
  if (f == NULL)
    return;
  char line[512];
  while (fgets (line, sizeof line, f))
    {
      char *colon = strchr (line, ':');
      if (colon == NULL)
        continue;
      *colon = '\0';
      char *name = line + strspn (line, " ");
      if (strcmp (name, "lo") == 0)
        continue;
      unsigned long long v[9];
      if (sscanf (colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2],
                  &v[3], &v[4], &v[5], &v[6], &v[7], &v[8])
          == 9)
        {
          *rx += (int64_t)v[0];
          *tx += (int64_t)v[8];
        }
    }
  fclose (f);
}

static void
take_sample (struct cimg_store *s, struct sample *x)
{
  cimg_error_t e = { 0 };
  x->prev_cpu_ns = x->have ? x->u.cpu_usage_ns : -1;
  x->prev_t_ns = x->t_ns;
  if (cimg_container_reload (s, x->ctr, &e) < 0)
    cimg_error_clear (&e);
  pid_t pid = cimg_container_pid (x->ctr);
  x->running = pid > 0;
  x->have = false;
  x->t_ns = mono_ns ();
  if (!x->running)
    return;
  struct cimg_cgroup *cg = cimg_cgroup_open (x->ctr->id, &e);
  if (cg && cimg_cgroup_usage (cg, &x->u, &e) == 0)
    x->have = true;
  cimg_error_clear (&e);
  cimg_cgroup_free (cg);
  net_io (x->ctr, pid, &x->net_rx, &x->net_tx);
}

static int64_t
host_memory (void)
{
  struct sysinfo si;
  if (sysinfo (&si) < 0)
    return 0;
  return (int64_t)si.totalram * si.mem_unit;
}

/* One row, as strings: ID NAME CPU% MEM-USAGE/LIMIT MEM% NET BLOCK PIDS. */
struct row
{
  char id[80], name[256], cpu[32], mem[80], memp[32], net[80], blk[80], pids[32];
};

static void
format_row (struct sample *x, bool no_trunc, struct row *r)
{
  snprintf (r->id, sizeof r->id, no_trunc ? "%s" : "%.12s", x->ctr->id);
  snprintf (r->name, sizeof r->name, "%s", cimg_container_name (x->ctr));
  if (!x->have)
    {
      /* A stopped container: Docker shows zeros and "--". */
      snprintf (r->cpu, sizeof r->cpu, "0.00%%");
      snprintf (r->mem, sizeof r->mem, "0B / 0B");
      snprintf (r->memp, sizeof r->memp, "0.00%%");
      snprintf (r->net, sizeof r->net, "0B / 0B");
      snprintf (r->blk, sizeof r->blk, "0B / 0B");
      snprintf (r->pids, sizeof r->pids, "0");
      return;
    }
  double cpu = 0;
  if (x->prev_cpu_ns >= 0 && x->t_ns > x->prev_t_ns && x->u.cpu_usage_ns >= x->prev_cpu_ns)
    cpu = (double)(x->u.cpu_usage_ns - x->prev_cpu_ns) / (double)(x->t_ns - x->prev_t_ns) * 100.0;
  snprintf (r->cpu, sizeof r->cpu, "%.2f%%", cpu);
  int64_t used = x->u.memory_usage - x->u.memory_inactive_file;
  if (used < 0)
    used = x->u.memory_usage;
  int64_t limit = x->u.memory_limit > 0 ? x->u.memory_limit : host_memory ();
  int64_t host = host_memory ();
  if (host > 0 && limit > host)
    limit = host;
  char a[32], b[32];
  units_size ((double)used, true, a, sizeof a);
  units_size ((double)limit, true, b, sizeof b);
  snprintf (r->mem, sizeof r->mem, "%s / %s", a, b);
  snprintf (r->memp, sizeof r->memp, "%.2f%%", limit > 0 ? (double)used / (double)limit * 100 : 0);
  units_size ((double)x->net_rx, false, a, sizeof a);
  units_size ((double)x->net_tx, false, b, sizeof b);
  snprintf (r->net, sizeof r->net, "%s / %s", a, b);
  units_size ((double)x->u.blkio_read, false, a, sizeof a);
  units_size ((double)x->u.blkio_write, false, b, sizeof b);
  snprintf (r->blk, sizeof r->blk, "%s / %s", a, b);
  snprintf (r->pids, sizeof r->pids, "%lld", (long long)x->u.pids);
}

static void
print_stats (struct sample *v, size_t n, bool no_trunc, bool as_json, bool clear)
{
  if (clear)
    fputs ("\033[2J\033[H", stdout);
  struct table *t = as_json ? NULL : table_new (8);
  if (t)
    table_add (t, "CONTAINER ID", "NAME", "CPU %", "MEM USAGE / LIMIT", "MEM %", "NET I/O",
               "BLOCK I/O", "PIDS");
  for (size_t i = 0; i < n; i++)
    {
      struct row r;
      format_row (&v[i], no_trunc, &r);
      if (t)
        {
          table_add (t, r.id, r.name, r.cpu, r.mem, r.memp, r.net, r.blk, r.pids);
          continue;
        }
      cleanup_json json_t *o
          = json_pack ("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "BlockIO", r.blk, "CPUPerc",
                       r.cpu, "Container", r.id, "ID", r.id, "MemPerc", r.memp, "MemUsage", r.mem,
                       "Name", r.name, "NetIO", r.net, "PIDs", r.pids);
      cleanup_free char *text = o ? json_dumps (o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
      if (text)
        printf ("%s\n", text);
    }
  if (t)
    {
      table_print (t, stdout);
      table_free (t);
    }
  fflush (stdout);
}

static volatile sig_atomic_t stats_stop;

static void
on_stop (int sig)
{
  (void)sig;
  stats_stop = 1;
}

static void
sleep_until (int64_t t_ns)
{
  for (;;)
    {
      int64_t d = t_ns - mono_ns ();
      if (d <= 0 || stats_stop)
        return;
      struct timespec ts = { d / 1000000000, d % 1000000000 };
      nanosleep (&ts, NULL);
    }
}

int
cmd_stats (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "all", no_argument, NULL, 'a' },
                                            { "no-stream", no_argument, NULL, 'S' },
                                            { "no-trunc", no_argument, NULL, 'T' },
                                            { "format", required_argument, NULL, 'F' },
                                            { 0 } };
  bool all = false, no_stream = false, no_trunc = false, as_json = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "a", longopts)) != -1)
    switch (r)
      {
      case 'a':
        all = true;
        break;
      case 'S':
        no_stream = true;
        break;
      case 'T':
        no_trunc = true;
        break;
      case 'F':
        if (strcmp (optarg, "json") != 0 && strcmp (optarg, "{{json .}}") != 0)
          return cli_usage_error (c, "unsupported --format \"%s\" (only json)", optarg);
        as_json = true;
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
  int rc = 0;
  if (optind < argc)
    {
      v = xzalloc ((size_t)(argc - optind) * sizeof *v);
      for (int i = optind; i < argc; i++)
        {
          struct cimg_container *ctr = cimg_container_find (s, argv[i], &err);
          if (ctr == NULL)
            {
              cli_fail (&err);
              rc = EXIT_FAIL;
              continue;
            }
          v[n++] = ctr;
        }
      if (rc)
        {
          cimg_containers_free (v, n);
          return rc;
        }
    }
  else
    {
      if (cimg_container_list (s, &v, &n, &err) < 0)
        return cli_fail (&err);
      size_t k = 0;
      for (size_t i = 0; i < n; i++)
        {
          if (all || cimg_container_pid (v[i]) > 0)
            v[k++] = v[i];
          else
            cimg_container_free (v[i]);
        }
      n = k;
    }
  struct sample *x = xzalloc ((n ? n : 1) * sizeof *x);
  for (size_t i = 0; i < n; i++)
    {
      x[i].ctr = v[i];
      take_sample (s, &x[i]);
    }
  struct sigaction sa = { .sa_handler = on_stop }, old_int, old_term;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGINT, &sa, &old_int);
  sigaction (SIGTERM, &sa, &old_term);
  /* CPU % needs two samples: the first figures come after the first interval, as Docker's. */
  int64_t next = mono_ns () + (no_stream ? 500000000 : 1000000000);
  while (!stats_stop)
    {
      sleep_until (next);
      if (stats_stop)
        break;
      next += 1000000000;
      for (size_t i = 0; i < n; i++)
        take_sample (s, &x[i]);
      print_stats (x, n, no_trunc, as_json, !no_stream && !as_json && isatty (1));
      if (no_stream)
        break;
    }
  sigaction (SIGINT, &old_int, NULL);
  sigaction (SIGTERM, &old_term, NULL);
  free (x);
  cimg_containers_free (v, n);
  return 0;
}
