/* runtime/cgroup.c: container cgroups behind one interface, with three layouts chosen once from
   /proc/self/mountinfo:

   - v2: the unified hierarchy alone. The container gets <mnt>/cimg/<id>; the controllers it
     needs are enabled in cgroup.subtree_control of the root and of cimg/.
   - v1: one mount per hierarchy, each with one or more controllers (cpu and cpuacct are often
     co-mounted as "cpu,cpuacct", on this VM they are not: the hierarchies come from the mount
     options, never from directory names). The container gets <mnt>/cimg/<id> in each hierarchy
     of memory, cpu, cpuacct, pids, blkio, freezer and cpuset. devices is left alone: the
     container stays in the root devices cgroup, which allows everything, until a device
     allow-list is asked for.
   - hybrid: v1 hierarchies plus a cgroup2 mount (here /sys/fs/cgroup/unified, which holds no
     controller the container needs). The limits go to the v1 hierarchies as in v1, and the
     container also gets cimg/<id> in the unified hierarchy: it costs one mkdir and one write,
     and gives what v1 lacks — cgroup.kill (Linux 5.14) to kill every process of the container
     in one atomic step at teardown, and a "0::/cimg/<id>" line in /proc/PID/cgroup that tools
     expect. Nothing is limited there. cimg_cgroup_fd still answers -1 in hybrid mode, since a
     clone3 CLONE_INTO_CGROUP into the unified cgroup would leave the v1 hierarchies unjoined;
     cimg_cgroup_join_prepare gives both halves (the unified directory for clone3, the v1
     "tasks" files for the child to join by itself).

   The cimg/ parents sit at the top of each hierarchy as mounted (never below the caller's own
   cgroup, which on this VM is a memory cgroup of the session with limits of its own). On v2,
   where that top cannot be written (a delegated subtree: EACCES, EPERM or EROFS on mkdir), the
   fallback is <parent of the caller's own cgroup>/cimg — beside the caller, not below it, since
   a cgroup holding processes cannot delegate controllers to children (the "no internal
   processes" rule). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <limits.h>
#include <linux/magic.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "runtime/confine.h"
#include "runtime/confine-internal.h"
#include "runtime/runtime-internal.h"

enum
{
  CTL_MEMORY = 1u << 0,
  CTL_CPU = 1u << 1,
  CTL_CPUACCT = 1u << 2,
  CTL_PIDS = 1u << 3,
  CTL_BLKIO = 1u << 4,
  CTL_FREEZER = 1u << 5,
  CTL_CPUSET = 1u << 6,
  CTL_DEVICES = 1u << 7,
};

static const struct
{
  const char *name;
  unsigned bit;
} v1_controllers[] = {
  { "memory", CTL_MEMORY }, { "cpu", CTL_CPU },         { "cpuacct", CTL_CPUACCT },
  { "pids", CTL_PIDS },     { "blkio", CTL_BLKIO },     { "freezer", CTL_FREEZER },
  { "cpuset", CTL_CPUSET }, { "devices", CTL_DEVICES },
};

#define MAX_HIER 16

enum layout_mode
{
  MODE_NONE,
  MODE_V1,
  MODE_V2,
  MODE_HYBRID,
};

struct layout
{
  enum layout_mode mode;
  char *v2_mnt; /* cgroup2 mount point, NULL if none */
  int n;
  struct
  {
    char *mnt;
    unsigned ctl;
  } h[MAX_HIER]; /* v1 hierarchies cimg uses */
};

/* One directory of the container: a v1 hierarchy's cimg/<id> or the unified one. */
struct cg_dir
{
  char *path;
  unsigned ctl; /* v1 controllers of this hierarchy; 0 for the unified dir */
  bool v2;
};

struct cimg_cgroup
{
  char *id;
  enum layout_mode mode;
  int n;
  struct cg_dir d[MAX_HIER + 1];
  int v2_fd; /* O_RDONLY|O_DIRECTORY fd of the unified dir (v2 mode only), for clone3 */
};

static struct layout layout;
static pthread_once_t layout_once = PTHREAD_ONCE_INIT;
static const char *forced_mode;

void
cimg_cgroup_force_mode_for_tests (const char *mode)
{
  forced_mode = mode;
}

/* mountinfo escapes blanks in paths as octal (\040). */
static char *
unescape_mountinfo (const char *s)
{
  char *out = xmalloc (strlen (s) + 1), *o = out;
  while (*s)
    {
      if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] >= '0' && s[2] <= '7' && s[3] >= '0'
          && s[3] <= '7')
        {
          *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
          s += 4;
        }
      else
        *o++ = *s++;
    }
  *o = '\0';
  return out;
}

static void
parse_mountinfo (void)
{
  cleanup_fclose FILE *f = fopen ("/proc/self/mountinfo", "re");
  cleanup_free char *line = NULL;
  size_t cap = 0;
  layout.mode = MODE_NONE;
  if (f == NULL)
    return;
  while (getline (&line, &cap, f) > 0)
    {
      /* id parent major:minor root mountpoint options [optional…] - fstype source superopts */
      char *sep = strstr (line, " - ");
      if (sep == NULL)
        continue;
      *sep = '\0';
      char *rest = sep + 3;
      char *fields[5] = { 0 };
      char *save = NULL, *tok = strtok_r (line, " ", &save);
      for (int i = 0; i < 5 && tok != NULL; i++, tok = strtok_r (NULL, " ", &save))
        fields[i] = tok;
      if (fields[4] == NULL)
        continue;
      save = NULL;
      char *fstype = strtok_r (rest, " ", &save);
      char *source = strtok_r (NULL, " ", &save);
      char *opts = strtok_r (NULL, " \n", &save);
      (void)source;
      if (fstype == NULL || opts == NULL)
        continue;
      if (strcmp (fstype, "cgroup2") == 0)
        {
          if (layout.v2_mnt == NULL)
            layout.v2_mnt = unescape_mountinfo (fields[4]);
          continue;
        }
      if (strcmp (fstype, "cgroup") != 0)
        continue;
      unsigned ctl = 0;
      char *osave = NULL;
      for (char *o = strtok_r (opts, ",", &osave); o; o = strtok_r (NULL, ",", &osave))
        for (size_t i = 0; i < ARRAY_SIZE (v1_controllers); i++)
          if (strcmp (o, v1_controllers[i].name) == 0)
            ctl |= v1_controllers[i].bit;
      if (ctl == 0)
        continue; /* name=systemd and controllers cimg does not use (devices, net_cls, …) */
      /* A hierarchy mounted twice (bind mounts) is used once, at its first mount. */
      bool seen = false;
      for (int i = 0; i < layout.n; i++)
        if (layout.h[i].ctl & ctl)
          seen = true;
      if (seen || layout.n == MAX_HIER)
        continue;
      layout.h[layout.n].mnt = unescape_mountinfo (fields[4]);
      layout.h[layout.n].ctl = ctl;
      layout.n++;
    }
  if (layout.n > 0)
    layout.mode = layout.v2_mnt ? MODE_HYBRID : MODE_V1;
  else if (layout.v2_mnt)
    layout.mode = MODE_V2;
}

static const struct layout *
get_layout (void)
{
  pthread_once (&layout_once, parse_mountinfo);
  return &layout;
}

static enum layout_mode
effective_mode (void)
{
  const struct layout *lay = get_layout ();
  if (forced_mode != NULL && strcmp (forced_mode, "v2") == 0 && lay->v2_mnt != NULL)
    return MODE_V2;
  if (forced_mode != NULL && strcmp (forced_mode, "v1") == 0 && lay->n > 0)
    return MODE_V1;
  return lay->mode;
}

const char *
cimg_cgroup_mode (void)
{
  switch (effective_mode ())
    {
    case MODE_V1:
      return "v1";
    case MODE_V2:
      return "v2";
    case MODE_HYBRID:
      return "hybrid";
    default:
      return "none";
    }
}

/* ---------------------------------------------------------------- file helpers */

/* Write value to dir/name in one write(2): the kernel parses each write separately, so a split
   write would be two values. missing_ok: a knob this kernel lacks is skipped (swap accounting
   off, no BFQ, …). */
static int
write_knob (const char *dir, const char *name, const char *value, bool missing_ok,
            cimg_error_t *err)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  cleanup_close int fd = open (path, O_WRONLY | O_CLOEXEC);
  if (fd < 0)
    {
      if (missing_ok && errno == ENOENT)
        return 0;
      return cimg_error_sys (err, "cgroup: write \"%s\" to %s", value, path);
    }
  size_t len = strlen (value);
  ssize_t n;
  do
    n = write (fd, value, len);
  while (n < 0 && errno == EINTR);
  if (n < 0)
    return cimg_error_sys (err, "cgroup: write \"%s\" to %s", value, path);
  if ((size_t)n != len)
    return cimg_error_set (err, EIO, "cgroup: write \"%s\" to %s: short write", value, path);
  return 0;
}

static int
write_knob_int (const char *dir, const char *name, int64_t v, bool missing_ok, cimg_error_t *err)
{
  char buf[32];
  snprintf (buf, sizeof buf, "%lld", (long long)v);
  return write_knob (dir, name, buf, missing_ok, err);
}

/* Read dir/name; NULL with errno set when it cannot be read. */
static char *
read_knob (const char *dir, const char *name)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  size_t cap = 4096, len = 0;
  char *buf = xmalloc (cap);
  for (;;)
    {
      if (len + 1 >= cap)
        buf = xrealloc (buf, cap *= 2);
      ssize_t n = read (fd, buf + len, cap - len - 1);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        {
          int e = errno;
          free (buf);
          errno = e;
          return NULL;
        }
      if (n == 0)
        break;
      len += (size_t)n;
    }
  buf[len] = '\0';
  return buf;
}

static int
read_knob_int (const char *dir, const char *name, int64_t *v, cimg_error_t *err)
{
  cleanup_free char *s = read_knob (dir, name);
  if (s == NULL)
    return cimg_error_sys (err, "cgroup: read %s/%s", dir, name);
  if (strncmp (s, "max", 3) == 0)
    {
      *v = -1;
      return 0;
    }
  char *end;
  errno = 0;
  long long x = strtoll (s, &end, 10);
  if (errno != 0 || end == s)
    return cimg_error_set (err, EINVAL, "cgroup: read %s/%s: not a number: \"%.32s\"", dir, name,
                           s);
  *v = x;
  return 0;
}

/* The value of "key N" in a flat keyed file (memory.events, cpu.stat, memory.oom_control). */
static bool
keyed_value (const char *text, const char *key, int64_t *v)
{
  size_t kl = strlen (key);
  for (const char *p = text; p && *p; p = strchr (p, '\n') ? strchr (p, '\n') + 1 : NULL)
    if (strncmp (p, key, kl) == 0 && p[kl] == ' ')
      {
        *v = strtoll (p + kl + 1, NULL, 10);
        return true;
      }
  return false;
}

static bool
file_exists (const char *dir, const char *name)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  return access (path, F_OK) == 0;
}

static int
make_dir (const char *path, cimg_error_t *err)
{
  if (mkdir (path, 0755) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "cgroup: mkdir %s", path);
  return 0;
}

static bool
valid_id (const char *id)
{
  if (id == NULL || id[0] == '\0' || id[0] == '.' || strlen (id) > 128)
    return false;
  for (const char *p = id; *p; p++)
    if (!isalnum ((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.')
      return false;
  return true;
}

/* ---------------------------------------------------------------- v2 */

/* The directory that holds cimg/ in the unified hierarchy (see the fallback at the top). */
static char *
v2_fallback_base (const char *mnt)
{
  cleanup_fclose FILE *f = fopen ("/proc/self/cgroup", "re");
  cleanup_free char *line = NULL;
  size_t cap = 0;
  if (f == NULL)
    return NULL;
  while (getline (&line, &cap, f) > 0)
    if (strncmp (line, "0::", 3) == 0)
      {
        char *p = line + 3;
        p[strcspn (p, "\n")] = '\0';
        char *slash = strrchr (p, '/');
        if (slash == NULL || slash == p)
          return NULL; /* the caller is at the top already: no other place */
        *slash = '\0';
        return xasprintf ("%s%s", mnt, p);
      }
  return NULL;
}

/* Enable in dir/cgroup.subtree_control those of want that dir offers and has not enabled.
   Writing a controller the parent does not offer fails the whole write, hence the filter. */
static int
v2_enable_controllers (const char *dir, const char *const *want, cimg_error_t *err)
{
  cleanup_free char *avail = read_knob (dir, "cgroup.controllers");
  cleanup_free char *on = read_knob (dir, "cgroup.subtree_control");
  if (avail == NULL)
    return cimg_error_sys (err, "cgroup: read %s/cgroup.controllers", dir);
  char buf[256] = "";
  for (size_t i = 0; want[i] != NULL; i++)
    {
      cleanup_free char *w = xasprintf (" %s ", want[i]);
      cleanup_free char *a = xasprintf (" %s ", avail);
      cleanup_free char *o = xasprintf (" %s ", on ? on : "");
      for (char *c = a; *c; c++)
        if (*c == '\n')
          *c = ' ';
      for (char *c = o; *c; c++)
        if (*c == '\n')
          *c = ' ';
      if (strstr (a, w) == NULL || strstr (o, w) != NULL)
        continue;
      size_t l = strlen (buf);
      snprintf (buf + l, sizeof buf - l, "%s+%s", l ? " " : "", want[i]);
    }
  if (buf[0] == '\0')
    return 0;
  if (write_knob (dir, "cgroup.subtree_control", buf, false, err) < 0)
    {
      /* EBUSY: dir holds processes and is not the root (no internal processes rule). */
      if (err && err->code == EBUSY)
        cimg_error_wrap (err,
                         "cgroup: %s holds processes, so it cannot enable controllers for "
                         "children",
                         dir);
      return -1;
    }
  return 0;
}

/* Docker refuses a blkio weight outside 10..1000 before it reaches the kernel, whose range
   differs per knob (BFQ takes 1..1000): the same check here, naming the file it was meant for. */
static int
check_weight (const char *dir, const char *knob, int64_t w, cimg_error_t *err)
{
  if (w >= 10 && w <= 1000)
    return 0;
  return cimg_error_set (err, EINVAL,
                         "cgroup: write \"%lld\" to %s/%s: blkio weight out of range (10 to 1000)",
                         (long long)w, dir, knob);
}

static const char *const v2_wanted[] = { "cpu", "io", "memory", "pids", NULL };
/* cpuset only when asked for: enabling it makes every later sibling inherit an explicit
   cpuset, which is only worth it when the container uses one. */
static const char *const v2_wanted_cpuset[] = { "cpu", "io", "memory", "pids", "cpuset", NULL };

static const char *const blkio_v1_files[] = {
  [CIMG_BLKIO_READ_BPS] = "blkio.throttle.read_bps_device",
  [CIMG_BLKIO_WRITE_BPS] = "blkio.throttle.write_bps_device",
  [CIMG_BLKIO_READ_IOPS] = "blkio.throttle.read_iops_device",
  [CIMG_BLKIO_WRITE_IOPS] = "blkio.throttle.write_iops_device",
};
static const char *const blkio_v2_keys[] = {
  [CIMG_BLKIO_READ_BPS] = "rbps",
  [CIMG_BLKIO_WRITE_BPS] = "wbps",
  [CIMG_BLKIO_READ_IOPS] = "riops",
  [CIMG_BLKIO_WRITE_IOPS] = "wiops",
};

static int
write_cpuset (const char *dir, const struct cimg_limits *l, cimg_error_t *err)
{
  /* cpus before mems; each must lie within the parent's (EINVAL otherwise). */
  if (l->cpuset_cpus && write_knob (dir, "cpuset.cpus", l->cpuset_cpus, false, err) < 0)
    return -1;
  if (l->cpuset_mems && write_knob (dir, "cpuset.mems", l->cpuset_mems, false, err) < 0)
    return -1;
  return 0;
}

static int
v2_set_limits (const char *dir, const struct cimg_limits *l, cimg_error_t *err)
{
  if (l->memory > 0)
    {
      if (write_knob_int (dir, "memory.max", l->memory, false, err) < 0)
        return -1;
      /* memory.swap.max is swap alone, Docker's --memory-swap is memory plus swap; the file is
         missing when the kernel accounts no swap (swapaccount=0, CONFIG_MEMCG_SWAP off). */
      if (l->memory_swap == -1)
        {
          if (write_knob (dir, "memory.swap.max", "max", true, err) < 0)
            return -1;
        }
      else
        {
          int64_t swap = l->memory_swap == 0 ? l->memory : l->memory_swap - l->memory;
          if (write_knob_int (dir, "memory.swap.max", swap, true, err) < 0)
            return -1;
        }
    }
  if (l->cpu_shares > 0)
    {
      /* Docker's (and runc's) mapping of shares 2..262144 onto weight 1..10000. */
      int64_t s = l->cpu_shares < 2 ? 2 : l->cpu_shares > 262144 ? 262144 : l->cpu_shares;
      if (write_knob_int (dir, "cpu.weight", 1 + ((s - 2) * 9999) / 262142, false, err) < 0)
        return -1;
    }
  if (l->cpu_quota > 0 || l->cpu_period > 0)
    {
      char buf[64];
      int64_t period = l->cpu_period > 0 ? l->cpu_period : 100000;
      if (l->cpu_quota > 0)
        snprintf (buf, sizeof buf, "%lld %lld", (long long)l->cpu_quota, (long long)period);
      else
        snprintf (buf, sizeof buf, "max %lld", (long long)period);
      if (write_knob (dir, "cpu.max", buf, false, err) < 0)
        return -1;
    }
  if (l->pids_limit > 0 && write_knob_int (dir, "pids.max", l->pids_limit, false, err) < 0)
    return -1;
  /* --memory-reservation is memory.low, as runc maps it: memory protected from reclaim, the
     closest v2 has to v1's soft limit. Swappiness and the OOM killer switch have no v2
     counterpart and are left to the CLI to warn about. */
  if (l->memory_reservation > 0
      && write_knob_int (dir, "memory.low", l->memory_reservation, false, err) < 0)
    return -1;
  if (write_cpuset (dir, l, err) < 0)
    return -1;
  for (size_t i = 0; i < l->n_blkio_rates; i++)
    {
      /* One key per write: the others of the same device keep their values. */
      const struct cimg_blkio_rate *r = &l->blkio_rates[i];
      char buf[96];
      snprintf (buf, sizeof buf, "%u:%u %s=%llu", r->major, r->minor, blkio_v2_keys[r->kind],
                (unsigned long long)r->rate);
      if (write_knob (dir, "io.max", buf, false, err) < 0)
        return -1;
    }
  if (l->blkio_weight > 0)
    {
      /* With BFQ the weight keeps its v1 range in io.bfq.weight; otherwise io.weight takes
         1..10000, onto which runc and crun map 10..1000 linearly. */
      const char *knob = file_exists (dir, "io.bfq.weight") ? "io.bfq.weight" : "io.weight";
      if (check_weight (dir, knob, l->blkio_weight, err) < 0)
        return -1;
      if (file_exists (dir, "io.bfq.weight"))
        {
          if (write_knob_int (dir, "io.bfq.weight", l->blkio_weight, false, err) < 0)
            return -1;
        }
      else if (write_knob_int (dir, "io.weight", 1 + (l->blkio_weight - 10) * 9999 / 990, true, err)
               < 0)
        return -1;
    }
  return 0;
}

/* ---------------------------------------------------------------- v1 */

/* A new cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, and the kernel refuses to
   attach a task to it (ENOSPC) until both are set: copy the parent's. */
static int
v1_cpuset_inherit (const char *parent, const char *dir, cimg_error_t *err)
{
  static const char *const knobs[] = { "cpuset.cpus", "cpuset.mems" };
  for (size_t i = 0; i < ARRAY_SIZE (knobs); i++)
    {
      cleanup_free char *cur = read_knob (dir, knobs[i]);
      if (cur != NULL && cur[0] != '\0' && cur[0] != '\n')
        continue;
      cleanup_free char *v = read_knob (parent, knobs[i]);
      if (v == NULL)
        return cimg_error_sys (err, "cgroup: read %s/%s", parent, knobs[i]);
      v[strcspn (v, "\n")] = '\0';
      if (write_knob (dir, knobs[i], v, false, err) < 0)
        return -1;
    }
  return 0;
}

static int
v1_set_limits (const struct cg_dir *d, const struct cimg_limits *l, cimg_error_t *err)
{
  if ((d->ctl & CTL_MEMORY) && l->memory > 0)
    {
      /* memory.limit_in_bytes first: memory.memsw.limit_in_bytes may never be below it, and a
         new cgroup starts with both unlimited. */
      if (write_knob_int (d->path, "memory.limit_in_bytes", l->memory, false, err) < 0)
        return -1;
      int64_t memsw = l->memory_swap == 0 ? 2 * l->memory : l->memory_swap;
      /* The memsw files exist only with swap accounting (CONFIG_MEMCG_SWAP, swapaccount=1). */
      if (write_knob_int (d->path, "memory.memsw.limit_in_bytes", memsw, true, err) < 0)
        return -1;
    }
  if ((d->ctl & CTL_CPU) && l->cpu_shares > 0
      && write_knob_int (d->path, "cpu.shares", l->cpu_shares, false, err) < 0)
    return -1;
  if ((d->ctl & CTL_CPU) && (l->cpu_quota > 0 || l->cpu_period > 0))
    {
      /* Period before quota: the kernel checks the pair (and the parent's quota) on each
         write, and a new cgroup has quota -1, which any period accepts. */
      int64_t period = l->cpu_period > 0 ? l->cpu_period : 100000;
      if (write_knob_int (d->path, "cpu.cfs_period_us", period, false, err) < 0)
        return -1;
      if (l->cpu_quota > 0
          && write_knob_int (d->path, "cpu.cfs_quota_us", l->cpu_quota, false, err) < 0)
        return -1;
    }
  if ((d->ctl & CTL_PIDS) && l->pids_limit > 0
      && write_knob_int (d->path, "pids.max", l->pids_limit, false, err) < 0)
    return -1;
  if ((d->ctl & CTL_MEMORY) && l->memory_reservation > 0
      && write_knob_int (d->path, "memory.soft_limit_in_bytes", l->memory_reservation, false, err)
             < 0)
    return -1;
  if ((d->ctl & CTL_MEMORY) && l->memory_swappiness_set
      && write_knob_int (d->path, "memory.swappiness", l->memory_swappiness, false, err) < 0)
    return -1;
  /* oom_kill_disable 1: a task that hits the limit waits (under_oom) instead of being killed. */
  if ((d->ctl & CTL_MEMORY) && l->oom_kill_disable
      && write_knob (d->path, "memory.oom_control", "1", false, err) < 0)
    return -1;
  if ((d->ctl & CTL_CPUSET) && write_cpuset (d->path, l, err) < 0)
    return -1;
  for (size_t i = 0; (d->ctl & CTL_BLKIO) && i < l->n_blkio_rates; i++)
    {
      const struct cimg_blkio_rate *r = &l->blkio_rates[i];
      char buf[64];
      snprintf (buf, sizeof buf, "%u:%u %llu", r->major, r->minor, (unsigned long long)r->rate);
      if (write_knob (d->path, blkio_v1_files[r->kind], buf, false, err) < 0)
        return -1;
    }
  if ((d->ctl & CTL_BLKIO) && l->blkio_weight > 0)
    {
      /* blkio.weight belongs to CFQ, gone since Linux 5.0; BFQ offers blkio.bfq.weight with the
         same range. With neither (no proportional scheduler) the weight is dropped, as
         Docker does with a warning. */
      const char *knob
          = file_exists (d->path, "blkio.weight") ? "blkio.weight" : "blkio.bfq.weight";
      if (check_weight (d->path, knob, l->blkio_weight, err) < 0)
        return -1;
      if (write_knob_int (d->path, knob, l->blkio_weight, true, err) < 0)
        return -1;
    }
  return 0;
}

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

/* ---------------------------------------------------------------- create / open */

static void
cg_free_dirs (struct cimg_cgroup *cg)
{
  for (int i = 0; i < cg->n; i++)
    free (cg->d[i].path);
  cg->n = 0;
}

void
cimg_cgroup_free (struct cimg_cgroup *cg)
{
  if (cg == NULL)
    return;
  cg_free_dirs (cg);
  if (cg->v2_fd >= 0)
    close (cg->v2_fd);
  free (cg->id);
  free (cg);
}

static void
cgroup_freep (struct cimg_cgroup **cg)
{
  cimg_cgroup_free (*cg);
}
#define cleanup_cgroup __attribute__ ((cleanup (cgroup_freep)))

static int
check_limits (const struct cimg_limits *l, cimg_error_t *err)
{
  if (l->memory < 0 || l->memory_swap < -1 || l->cpu_shares < 0 || l->cpu_quota < 0
      || l->cpu_period < 0 || l->pids_limit < -1 || l->blkio_weight < 0)
    return cimg_error_set (err, EINVAL, "cgroup: negative limit");
  if (l->memory_swap > 0 && l->memory == 0)
    return cimg_error_set (err, EINVAL,
                           "cgroup: a memory+swap limit (%lld) needs a memory limit as well",
                           (long long)l->memory_swap);
  if (l->memory_reservation < 0 || (l->n_blkio_rates > 0 && l->blkio_rates == NULL))
    return cimg_error_set (err, EINVAL, "cgroup: invalid limits");
  if (l->memory_swappiness_set && (l->memory_swappiness < 0 || l->memory_swappiness > 100))
    return cimg_error_set (err, EINVAL,
                           "cgroup: memory swappiness %lld is not in the range 0 to 100",
                           (long long)l->memory_swappiness);
  for (size_t i = 0; i < l->n_blkio_rates; i++)
    if ((unsigned)l->blkio_rates[i].kind > CIMG_BLKIO_WRITE_IOPS)
      return cimg_error_set (err, EINVAL, "cgroup: invalid block I/O rate kind");
  if (l->memory_swap > 0 && l->memory_swap < l->memory)
    return cimg_error_set (err, EINVAL,
                           "cgroup: memory+swap limit %lld is below the memory limit %lld",
                           (long long)l->memory_swap, (long long)l->memory);
  return 0;
}

static struct cimg_cgroup *
cg_new (const char *id, cimg_error_t *err)
{
  if (!valid_id (id))
    {
      cimg_error_set (err, EINVAL, "cgroup: invalid container id \"%s\"", id ? id : "");
      return NULL;
    }
  enum layout_mode mode = effective_mode ();
  if (mode == MODE_NONE)
    {
      cimg_error_set (err, ENOENT, "cgroup: no cgroup hierarchy is mounted (/proc/self/mountinfo)");
      return NULL;
    }
  struct cimg_cgroup *cg = xzalloc (sizeof *cg);
  cg->id = xstrdup (id);
  cg->mode = mode;
  cg->v2_fd = -1;
  return cg;
}

/* Fill cg->d with the paths of the container's directories (existing or not). base_v2: the
   directory holding cimg/ in the unified hierarchy (NULL: none). with_devices: include the
   devices hierarchy. */
static void
cg_fill_paths (struct cimg_cgroup *cg, const char *base_v2, bool with_devices)
{
  const struct layout *lay = get_layout ();
  if (cg->mode == MODE_V1 || cg->mode == MODE_HYBRID)
    for (int i = 0; i < lay->n; i++)
      {
        /* The devices hierarchy is joined only when cimg_cgroup_set_devices asks for it. */
        if (lay->h[i].ctl == CTL_DEVICES && !with_devices)
          continue;
        cg->d[cg->n].path = xasprintf ("%s/cimg/%s", lay->h[i].mnt, cg->id);
        cg->d[cg->n].ctl = lay->h[i].ctl;
        cg->n++;
      }
  if ((cg->mode == MODE_V2 || cg->mode == MODE_HYBRID) && base_v2 != NULL)
    {
      cg->d[cg->n].path = xasprintf ("%s/cimg/%s", base_v2, cg->id);
      cg->d[cg->n].v2 = true;
      cg->n++;
    }
}

static int
cg_open_v2_fd (struct cimg_cgroup *cg, cimg_error_t *err)
{
  if (cg->mode != MODE_V2)
    return 0;
  for (int i = 0; i < cg->n; i++)
    if (cg->d[i].v2)
      {
        cg->v2_fd = open (cg->d[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (cg->v2_fd < 0)
          return cimg_error_sys (err, "cgroup: open %s", cg->d[i].path);
      }
  return 0;
}

static int
create_v2 (struct cimg_cgroup *cg, const struct cimg_limits *l, cimg_error_t *err)
{
  const struct layout *lay = get_layout ();
  cleanup_free char *base = xstrdup (lay->v2_mnt);
  cleanup_free char *parent = xasprintf ("%s/cimg", base);
  if (mkdir (parent, 0755) < 0 && errno != EEXIST)
    {
      int e = errno;
      cleanup_free char *fb = NULL;
      if ((e == EACCES || e == EPERM || e == EROFS) && (fb = v2_fallback_base (lay->v2_mnt)))
        {
          free (base);
          base = steal_pointer (&fb);
          free (parent);
          parent = xasprintf ("%s/cimg", base);
          if (make_dir (parent, err) < 0)
            return -1;
        }
      else
        {
          errno = e;
          return cimg_error_sys (err, "cgroup: mkdir %s", parent);
        }
    }
  if (cg->mode == MODE_V2)
    {
      const char *const *want = l->cpuset_cpus || l->cpuset_mems ? v2_wanted_cpuset : v2_wanted;
      if (v2_enable_controllers (base, want, err) < 0
          || v2_enable_controllers (parent, want, err) < 0)
        return -1;
    }
  cg_fill_paths (cg, base, false);
  return 0;
}

struct cimg_cgroup *
cimg_cgroup_create (const char *id, const struct cimg_limits *l, cimg_error_t *err)
{
  static const struct cimg_limits none;
  if (l == NULL)
    l = &none;
  if (check_limits (l, err) < 0)
    return NULL;
  cleanup_cgroup struct cimg_cgroup *cg = cg_new (id, err);
  if (cg == NULL)
    return NULL;
  const struct layout *lay = get_layout ();

  if (cg->mode == MODE_V2)
    {
      if (create_v2 (cg, l, err) < 0)
        return NULL;
    }
  else if (cg->mode == MODE_HYBRID)
    {
      /* The unified part is a convenience in hybrid mode (see the top of the file): where it
         cannot be made (a read-only or foreign cgroup2 mount), go on without it. */
      cimg_error_t e = { 0 };
      if (create_v2 (cg, l, &e) < 0)
        {
          cimg_error_clear (&e);
          cg_free_dirs (cg);
          cg_fill_paths (cg, NULL, false);
        }
    }
  else
    cg_fill_paths (cg, NULL, false);

  /* The cimg/ parents of the v1 hierarchies. */
  for (int i = 0; i < lay->n && cg->mode != MODE_V2; i++)
    {
      if (lay->h[i].ctl == CTL_DEVICES)
        continue;
      cleanup_free char *parent = xasprintf ("%s/cimg", lay->h[i].mnt);
      if (make_dir (parent, err) < 0)
        return NULL;
      if ((lay->h[i].ctl & CTL_CPUSET) && v1_cpuset_inherit (lay->h[i].mnt, parent, err) < 0)
        return NULL;
    }

  for (int i = 0; i < cg->n; i++)
    {
      if (mkdir (cg->d[i].path, 0755) < 0)
        {
          int e = errno;
          if (cg->mode == MODE_HYBRID && cg->d[i].v2 && e != EEXIST && i == cg->n - 1)
            {
              /* The optional unified directory (always last): drop it, as above. */
              free (cg->d[i].path);
              cg->n--;
              break;
            }
          cimg_error_sys (err, "cgroup: mkdir %s", cg->d[i].path);
          if (e == EEXIST)
            cimg_error_wrap (err, "container %s already has a cgroup", cg->id);
          /* Remove what this call made; the existing directory is not ours to remove. */
          for (int j = 0; j < i; j++)
            rmdir (cg->d[j].path);
          return NULL;
        }
    }

  int r = 0;
  for (int i = 0; i < cg->n && r == 0; i++)
    {
      if (cg->d[i].v2 && cg->mode == MODE_V2)
        r = v2_set_limits (cg->d[i].path, l, err);
      else if (!cg->d[i].v2)
        {
          if (cg->d[i].ctl & CTL_CPUSET)
            {
              cleanup_free char *parent = xstrdup (cg->d[i].path);
              *strrchr (parent, '/') = '\0';
              r = v1_cpuset_inherit (parent, cg->d[i].path, err);
            }
          if (r == 0)
            r = v1_set_limits (&cg->d[i], l, err);
        }
    }
  if (r == 0)
    r = cg_open_v2_fd (cg, err);
  if (r < 0)
    {
      for (int i = 0; i < cg->n; i++)
        rmdir (cg->d[i].path);
      return NULL;
    }
  return steal_pointer (&cg);
}

struct cimg_cgroup *
cimg_cgroup_open (const char *id, cimg_error_t *err)
{
  cleanup_cgroup struct cimg_cgroup *cg = cg_new (id, err);
  if (cg == NULL)
    return NULL;
  const struct layout *lay = get_layout ();
  cleanup_free char *base = NULL;
  if (cg->mode == MODE_V2 || cg->mode == MODE_HYBRID)
    {
      base = xstrdup (lay->v2_mnt);
      cleanup_free char *p = xasprintf ("%s/cimg/%s", base, id);
      cleanup_free char *fb = NULL;
      if (access (p, F_OK) < 0 && (fb = v2_fallback_base (lay->v2_mnt)) != NULL)
        {
          cleanup_free char *q = xasprintf ("%s/cimg/%s", fb, id);
          if (access (q, F_OK) == 0)
            {
              free (base);
              base = steal_pointer (&fb);
            }
        }
    }
  cg_fill_paths (cg, base, true);

  /* Keep the directories that exist: a teardown interrupted half-way leaves some. */
  int kept = 0;
  for (int i = 0; i < cg->n; i++)
    {
      if (access (cg->d[i].path, F_OK) == 0)
        cg->d[kept++] = cg->d[i];
      else
        free (cg->d[i].path);
    }
  cg->n = kept;
  if (kept == 0)
    {
      cimg_error_set (err, ENOENT, "cgroup: container %s has no cgroup", id);
      return NULL;
    }
  if (cg_open_v2_fd (cg, err) < 0)
    return NULL;
  return steal_pointer (&cg);
}

int
cimg_cgroup_fd (struct cimg_cgroup *cg)
{
  return cg ? cg->v2_fd : -1;
}

int
cimg_cgroup_add_pid (struct cimg_cgroup *cg, pid_t pid, cimg_error_t *err)
{
  for (int i = 0; i < cg->n; i++)
    if (write_knob_int (cg->d[i].path, "cgroup.procs", pid, false, err) < 0)
      return -1;
  return 0;
}

void
cimg_cgroup_join_clear (struct cimg_cgroup_join *j)
{
  if (j->into_fd >= 0)
    close (j->into_fd);
  j->into_fd = -1;
  for (int i = 0; i < j->n; i++)
    close (j->tasks[i]);
  j->n = 0;
}

int
cimg_cgroup_join_prepare (struct cimg_cgroup *cg, struct cimg_cgroup_join *j, cimg_error_t *err)
{
  j->into_fd = -1;
  j->n = 0;
  for (int i = 0; i < cg->n; i++)
    {
      if (cg->d[i].v2)
        {
          if (j->into_fd < 0)
            j->into_fd = open (cg->d[i].path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
          if (j->into_fd < 0)
            {
              cimg_error_sys (err, "cgroup: open %s", cg->d[i].path);
              cimg_cgroup_join_clear (j);
              return -1;
            }
          continue;
        }
      if (j->n == (int)ARRAY_SIZE (j->tasks))
        break; /* cannot happen: MAX_HIER v1 directories at most */
      cleanup_free char *path = xasprintf ("%s/tasks", cg->d[i].path);
      int fd = open (path, O_WRONLY | O_CLOEXEC);
      if (fd < 0)
        {
          cimg_error_sys (err, "cgroup: open %s", path);
          cimg_cgroup_join_clear (j);
          return -1;
        }
      j->tasks[j->n++] = fd;
    }
  return 0;
}

/* "0" is the writer itself, and a thread moving itself through a v1 "tasks" file skips the
   global cgroup_threadgroup_rwsem (the kernel's single-thread migration path), whose write
   side waits for an RCU grace period: 5–15 ms on this VM for cimg's write of a pid to
   cgroup.procs, ~0.3 ms for the eight self-moves. The caller is single-threaded, so moving
   the thread moves the process. */
int
cimg_cgroup_join_self (struct cimg_cgroup_join *j, cimg_error_t *err)
{
  for (int i = 0; i < j->n; i++)
    {
      ssize_t n;
      do
        n = write (j->tasks[i], "0", 1);
      while (n < 0 && errno == EINTR);
      if (n != 1)
        return cimg_error_sys (err, "cgroup: join the container's cgroup");
      close (j->tasks[i]);
      j->tasks[i] = -1;
    }
  j->n = 0;
  return 0;
}

char **
cimg_cgroup_dirs (const struct cimg_cgroup *cg)
{
  char **v = xzalloc (sizeof (char *));
  for (int i = 0; i < cg->n; i++)
    cimg_strv_append (&v, cg->d[i].path);
  return v;
}

/* A kept directory must name this container's cgroup and nothing else: absolute, no "." or
   ".." component, no doubled or trailing slash, ending in "/cimg/<id>". What it resolves to is
   checked on the opened fd (a cgroup file system). */
static bool
kept_dir_ok (const char *dir, const char *id)
{
  if (dir == NULL || dir[0] != '/' || strlen (dir) >= PATH_MAX)
    return false;
  for (const char *c = dir; *c; c++)
    if (c[0] == '/'
        && (c[1] == '/' || c[1] == '\0' || (c[1] == '.' && (c[2] == '/' || c[2] == '\0'))
            || (c[1] == '.' && c[2] == '.' && (c[3] == '/' || c[3] == '\0'))))
      return false;
  size_t n = strlen (dir), k = strlen (id);
  return n > k + 6 && strcmp (dir + n - k, id) == 0 && strncmp (dir + n - k - 6, "/cimg/", 6) == 0;
}

int
cimg_cgroup_join_prepare_dirs (const char *id, char *const *dirs, struct cimg_cgroup_join *j,
                               cimg_error_t *err)
{
  j->into_fd = -1;
  j->n = 0;
  if (!valid_id (id) || dirs == NULL || dirs[0] == NULL)
    return cimg_error_set (err, EINVAL, "cgroup: no kept cgroup directories");
  for (size_t i = 0; dirs[i]; i++)
    {
      if (!kept_dir_ok (dirs[i], id))
        {
          cimg_error_set (err, EINVAL, "cgroup: kept directory \"%s\" is not container %s's",
                          dirs[i], id);
          goto fail;
        }
      /* No symlink anywhere on the way (a mount point, which is what cimg keeps, is never
         one): the path is the directory itself, on whatever file system fstatfs then tells.
         A kernel without openat2 (before 5.6) takes the lookup. */
      struct open_how how = { .flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
                              .resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS };
      cleanup_close int dfd = (int)syscall (SYS_openat2, AT_FDCWD, dirs[i], &how, sizeof how);
      struct statfs sfs;
      if (dfd < 0 || fstatfs (dfd, &sfs) < 0)
        {
          cimg_error_sys (err, "cgroup: open %s", dirs[i]);
          goto fail;
        }
      if (sfs.f_type == CGROUP2_SUPER_MAGIC)
        {
          if (j->into_fd >= 0)
            {
              cimg_error_set (err, EINVAL, "cgroup: two unified directories kept");
              goto fail;
            }
          j->into_fd = steal_fd (&dfd);
          continue;
        }
      if (sfs.f_type != CGROUP_SUPER_MAGIC)
        {
          cimg_error_set (err, EINVAL, "cgroup: %s is not on a cgroup file system", dirs[i]);
          goto fail;
        }
      if (j->n == (int)ARRAY_SIZE (j->tasks))
        {
          cimg_error_set (err, E2BIG, "cgroup: too many kept directories");
          goto fail;
        }
      int fd = openat (dfd, "tasks", O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        {
          cimg_error_sys (err, "cgroup: open %s/tasks", dirs[i]);
          goto fail;
        }
      j->tasks[j->n++] = fd;
    }
  return 0;
fail:
  cimg_cgroup_join_clear (j);
  return -1;
}

int
cimg_cgroup_join_add_pid (struct cimg_cgroup_join *j, pid_t pid, cimg_error_t *err)
{
  if (j->into_fd < 0)
    return 0;
  cleanup_close int fd = openat (j->into_fd, "cgroup.procs", O_WRONLY | O_CLOEXEC);
  char buf[32];
  int len = snprintf (buf, sizeof buf, "%d", (int)pid);
  if (fd < 0 || write (fd, buf, (size_t)len) != len)
    return cimg_error_sys (err, "cgroup: add %d to the unified cgroup", (int)pid);
  return 0;
}

/* ---------------------------------------------------------------- devices */

/* Docker's allow-list for a container that is not privileged (what `cat devices.list` shows
   in one): mknod of any node, so that images may carry device nodes, but no access to them
   beyond these. */
static const struct cimg_device_rule default_devices[] = {
  { 'c', -1, -1, "m" },    { 'b', -1, -1, "m" },
  { 'c', 1, 3, "rwm" },                                        /* null */
  { 'c', 1, 5, "rwm" },    /* zero */ { 'c', 1, 7, "rwm" },    /* full */
  { 'c', 1, 8, "rwm" },    /* random */ { 'c', 1, 9, "rwm" },  /* urandom */
  { 'c', 5, 0, "rwm" },    /* tty */ { 'c', 5, 1, "rwm" },     /* console */
  { 'c', 5, 2, "rwm" },    /* ptmx */ { 'c', 136, -1, "rwm" }, /* pts */
  { 'c', 10, 200, "rwm" },                                     /* net/tun */
};

static int
check_rule (const struct cimg_device_rule *r, cimg_error_t *err)
{
  if (r->type != 'a' && r->type != 'b' && r->type != 'c')
    return cimg_error_set (err, EINVAL, "cgroup: device rule: type '%c' (want a, b or c)",
                           r->type ? r->type : '?');
  if (r->access == NULL || r->access[0] == '\0' || strspn (r->access, "rwm") != strlen (r->access))
    return cimg_error_set (err, EINVAL, "cgroup: device rule: access \"%s\" (want r, w, m)",
                           r->access ? r->access : "");
  if (r->major < -1 || r->minor < -1 || r->major > UINT32_MAX || r->minor > UINT32_MAX)
    return cimg_error_set (err, EINVAL, "cgroup: device rule: bad device number");
  return 0;
}

/* "c 1:3 rwm", as devices.allow and Docker's --device-cgroup-rule write it. */
static void
format_rule (const struct cimg_device_rule *r, char *buf, size_t n)
{
  char ma[24] = "*", mi[24] = "*";
  if (r->major >= 0)
    snprintf (ma, sizeof ma, "%lld", (long long)r->major);
  if (r->minor >= 0)
    snprintf (mi, sizeof mi, "%lld", (long long)r->minor);
  if (r->type == 'a')
    snprintf (buf, n, "a");
  else
    snprintf (buf, n, "%c %s:%s %s", r->type, ma, mi, r->access);
}

static int
v1_set_devices (struct cimg_cgroup *cg, const char *mnt, const struct cimg_device_rule *rules,
                size_t n, cimg_error_t *err)
{
  cleanup_free char *parent = xasprintf ("%s/cimg", mnt);
  cleanup_free char *dir = xasprintf ("%s/%s", parent, cg->id);
  int idx = -1;
  for (int i = 0; i < cg->n; i++)
    if (strcmp (cg->d[i].path, dir) == 0)
      idx = i;
  if (idx < 0)
    {
      if (cg->n == MAX_HIER + 1)
        return cimg_error_set (err, E2BIG, "cgroup: too many hierarchies");
      if (make_dir (parent, err) < 0 || make_dir (dir, err) < 0)
        return -1;
      idx = cg->n++;
      cg->d[idx].path = xstrdup (dir);
      cg->d[idx].ctl = CTL_DEVICES;
      cg->d[idx].v2 = false;
    }
  /* "a" in devices.deny empties the inherited allow-list and makes deny the default; each
     devices.allow write then adds one exception. */
  if (write_knob (dir, "devices.deny", "a", false, err) < 0)
    return -1;
  for (size_t i = 0; i < n; i++)
    {
      char buf[64];
      format_rule (&rules[i], buf, sizeof buf);
      if (write_knob (dir, "devices.allow", buf, false, err) < 0)
        return -1;
    }
  return 0;
}

static struct bpf_insn
insn (uint8_t code, uint8_t dst, uint8_t src, int16_t off, int32_t imm)
{
  struct bpf_insn i;
  memset (&i, 0, sizeof i);
  i.code = code;
  i.dst_reg = dst & 0xf;
  i.src_reg = src & 0xf;
  i.off = off;
  i.imm = imm;
  return i;
}

/* cgroup v2 has no devices files: the check is a BPF_PROG_TYPE_CGROUP_DEVICE program run on
   each open and mknod of a device node, given (access << 16 | type, major, minor), returning 1
   to allow. One block per rule, falling through to the next on a mismatch, deny at the end. */
static int
v2_set_devices (struct cimg_cgroup *cg, const char *dir, const struct cimg_device_rule *rules,
                size_t n, cimg_error_t *err)
{
  size_t cap = 8 + n * 8, len = 0;
  cleanup_free struct bpf_insn *p = xmalloc (cap * sizeof *p);
  /* r2 = type, r3 = access, r4 = major, r5 = minor (the context is struct bpf_cgroup_dev_ctx) */
  p[len++] = insn (BPF_LDX | BPF_W | BPF_MEM, 2, 1, 0, 0);
  p[len++] = insn (BPF_ALU | BPF_AND | BPF_K, 2, 0, 0, 0xffff);
  p[len++] = insn (BPF_LDX | BPF_W | BPF_MEM, 3, 1, 0, 0);
  p[len++] = insn (BPF_ALU | BPF_RSH | BPF_K, 3, 0, 0, 16);
  p[len++] = insn (BPF_LDX | BPF_W | BPF_MEM, 4, 1, 4, 0);
  p[len++] = insn (BPF_LDX | BPF_W | BPF_MEM, 5, 1, 8, 0);
  for (size_t i = 0; i < n; i++)
    {
      const struct cimg_device_rule *r = &rules[i];
      int32_t mask = 0;
      for (const char *a = r->access; *a; a++)
        mask |= *a == 'r'   ? BPF_DEVCG_ACC_READ
                : *a == 'w' ? BPF_DEVCG_ACC_WRITE
                            : BPF_DEVCG_ACC_MKNOD;
      bool all_access = mask == (BPF_DEVCG_ACC_READ | BPF_DEVCG_ACC_WRITE | BPF_DEVCG_ACC_MKNOD);
      /* Number of tests (each a jump past the rest of the block) and the block's length. */
      int ntests = (r->type != 'a') + (all_access ? 0 : 1) + (r->major >= 0) + (r->minor >= 0);
      int blen = ntests + (all_access ? 0 : 2) + 2;
      int pos = 0; /* instructions of this block emitted so far */
#define SKIP() ((int16_t)(blen - pos - 1))
      if (r->type != 'a')
        {
          int t = r->type == 'b' ? BPF_DEVCG_DEV_BLOCK : BPF_DEVCG_DEV_CHAR;
          p[len++] = insn (BPF_JMP | BPF_JNE | BPF_K, 2, 0, SKIP (), t);
          pos++;
        }
      if (!all_access)
        {
          /* Allowed when the access asked for is within the rule's: (access & ~mask) == 0. */
          p[len++] = insn (BPF_ALU | BPF_MOV | BPF_X, 1, 3, 0, 0);
          pos++;
          p[len++] = insn (BPF_ALU | BPF_AND | BPF_K, 1, 0, 0, ~mask & 7);
          pos++;
          p[len++] = insn (BPF_JMP | BPF_JNE | BPF_K, 1, 0, SKIP (), 0);
          pos++;
        }
      if (r->major >= 0)
        {
          p[len++] = insn (BPF_JMP | BPF_JNE | BPF_K, 4, 0, SKIP (), (int32_t)r->major);
          pos++;
        }
      if (r->minor >= 0)
        {
          p[len++] = insn (BPF_JMP | BPF_JNE | BPF_K, 5, 0, SKIP (), (int32_t)r->minor);
          pos++;
        }
#undef SKIP
      p[len++] = insn (BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 1);
      p[len++] = insn (BPF_JMP | BPF_EXIT, 0, 0, 0, 0);
    }
  p[len++] = insn (BPF_ALU64 | BPF_MOV | BPF_K, 0, 0, 0, 0);
  p[len++] = insn (BPF_JMP | BPF_EXIT, 0, 0, 0, 0);

  char log[4096] = "";
  union bpf_attr load;
  memset (&load, 0, sizeof load);
  load.prog_type = BPF_PROG_TYPE_CGROUP_DEVICE;
  load.insns = (uintptr_t)p;
  load.insn_cnt = (uint32_t)len;
  load.license = (uintptr_t) "Apache-2.0";
  load.log_buf = (uintptr_t)log;
  load.log_size = sizeof log;
  load.log_level = 1;
  cleanup_close int prog = (int)syscall (SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
  if (prog < 0 && errno == ENOSPC)
    {
      /* The verifier log was too small to hold; load again without it. */
      load.log_buf = 0;
      load.log_size = 0;
      load.log_level = 0;
      prog = (int)syscall (SYS_bpf, BPF_PROG_LOAD, &load, sizeof load);
    }
  if (prog < 0)
    return cimg_error_sys (err, "cgroup: load the device filter for %s%s%.200s", dir,
                           log[0] ? ": " : "", log);
  cleanup_close int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return cimg_error_sys (err, "cgroup: open %s", dir);
  union bpf_attr at;
  memset (&at, 0, sizeof at);
  at.target_fd = (uint32_t)dfd;
  at.attach_bpf_fd = (uint32_t)prog;
  at.attach_type = BPF_CGROUP_DEVICE;
  /* MULTI: a program a parent holds (systemd's, say) still runs, and both must allow. The
     program stays attached when the fds close, and goes with the cgroup. */
  at.attach_flags = BPF_F_ALLOW_MULTI;
  if (syscall (SYS_bpf, BPF_PROG_ATTACH, &at, sizeof at) < 0)
    return cimg_error_sys (err, "cgroup: attach the device filter to %s", dir);
  (void)cg;
  return 0;
}

int
cimg_cgroup_set_devices (struct cimg_cgroup *cg, const struct cimg_device_rule *extra,
                         size_t n_extra, cimg_error_t *err)
{
  for (size_t i = 0; i < n_extra; i++)
    if (check_rule (&extra[i], err) < 0)
      return -1;
  size_t n = ARRAY_SIZE (default_devices) + n_extra;
  cleanup_free struct cimg_device_rule *rules = xmalloc (n * sizeof *rules);
  memcpy (rules, default_devices, sizeof default_devices);
  if (n_extra)
    memcpy (rules + ARRAY_SIZE (default_devices), extra, n_extra * sizeof *extra);

  const struct layout *lay = get_layout ();
  if (cg->mode != MODE_V2)
    for (int i = 0; i < lay->n; i++)
      if (lay->h[i].ctl & CTL_DEVICES)
        return v1_set_devices (cg, lay->h[i].mnt, rules, n, err);
  /* v2, or a v1 layout without the devices controller: the BPF program on the unified cgroup
     (a hybrid kernel runs both checks). */
  for (int i = 0; i < cg->n; i++)
    if (cg->d[i].v2)
      return v2_set_devices (cg, cg->d[i].path, rules, n, err);
  return cimg_error_set (err, ENOTSUP,
                         "cgroup: no devices controller and no cgroup2 mount to "
                         "restrict the container's devices");
}

/* ---------------------------------------------------------------- stats */

int
cimg_cgroup_stats (struct cimg_cgroup *cg, struct cimg_cgroup_stats *st, cimg_error_t *err)
{
  memset (st, 0, sizeof *st);
  for (int i = 0; i < cg->n; i++)
    {
      const struct cg_dir *d = &cg->d[i];
      if (d->v2 && cg->mode == MODE_V2)
        {
          int64_t v;
          if (file_exists (d->path, "memory.current"))
            {
              if (read_knob_int (d->path, "memory.current", &st->memory_usage, err) < 0)
                return -1;
              if (read_knob_int (d->path, "memory.max", &v, err) < 0)
                return -1;
              st->memory_limit = v < 0 ? 0 : v;
              cleanup_free char *ev = read_knob (d->path, "memory.events");
              if (ev && keyed_value (ev, "oom_kill", &v))
                st->oom_killed = v > 0;
            }
          if (file_exists (d->path, "pids.current")
              && read_knob_int (d->path, "pids.current", &st->pids, err) < 0)
            return -1;
          cleanup_free char *cs = read_knob (d->path, "cpu.stat");
          if (cs && keyed_value (cs, "usage_usec", &v))
            st->cpu_usage_ns = v * 1000;
          continue;
        }
      if (d->ctl & CTL_MEMORY)
        {
          int64_t v;
          if (read_knob_int (d->path, "memory.usage_in_bytes", &st->memory_usage, err) < 0
              || read_knob_int (d->path, "memory.limit_in_bytes", &v, err) < 0)
            return -1;
          /* "Unlimited" reads back as PAGE_COUNTER_MAX pages, rounded to the page size. */
          st->memory_limit = v >= (INT64_C (1) << 62) ? 0 : v;
          /* oom_kill in memory.oom_control since Linux 4.13. */
          cleanup_free char *oc = read_knob (d->path, "memory.oom_control");
          if (oc && keyed_value (oc, "oom_kill", &v))
            st->oom_killed = v > 0;
        }
      if ((d->ctl & CTL_PIDS) && read_knob_int (d->path, "pids.current", &st->pids, err) < 0)
        return -1;
      if ((d->ctl & CTL_CPUACCT)
          && read_knob_int (d->path, "cpuacct.usage", &st->cpu_usage_ns, err) < 0)
        return -1;
    }
  return 0;
}

/* ---------------------------------------------------------------- destroy */

static void
sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* SIGKILL every process listed in dir/cgroup.procs; the number seen, or -1 if unreadable. */
static int
kill_procs (const char *dir)
{
  cleanup_free char *procs = read_knob (dir, "cgroup.procs");
  if (procs == NULL)
    return errno == ENOENT ? 0 : -1;
  int n = 0;
  for (char *p = procs, *end; *p; p = end)
    {
      long pid = strtol (p, &end, 10);
      if (end == p)
        break;
      if (pid > 0)
        {
          kill ((pid_t)pid, SIGKILL);
          n++;
        }
    }
  return n;
}

static bool
dir_empty (const char *dir)
{
  cleanup_free char *procs = read_knob (dir, "cgroup.procs");
  return procs == NULL || procs[strspn (procs, " \n")] == '\0';
}

/* v1 freezer: FROZEN is reached through FREEZING, and a frozen task cannot act on SIGKILL until
   thawed; so freeze (no task can fork a new one past the kill), kill all, thaw so the signals
   are delivered. */
static void
v1_freeze (const char *dir, bool freeze)
{
  cimg_error_t e = { 0 };
  if (write_knob (dir, "freezer.state", freeze ? "FROZEN" : "THAWED", true, &e) < 0)
    {
      cimg_error_clear (&e);
      return;
    }
  for (int i = 0; freeze && i < 1000; i++)
    {
      cleanup_free char *s = read_knob (dir, "freezer.state");
      if (s == NULL || strncmp (s, "FROZEN", 6) == 0)
        break;
      sleep_ms (1);
    }
}

int
cimg_cgroup_destroy (struct cimg_cgroup *cg, cimg_error_t *err)
{
  /* cgroup.kill (Linux 5.14) kills the whole subtree atomically, forks included. */
  for (int i = 0; i < cg->n; i++)
    if (cg->d[i].v2 && file_exists (cg->d[i].path, "cgroup.kill"))
      {
        cimg_error_t e = { 0 };
        if (write_knob (cg->d[i].path, "cgroup.kill", "1", true, &e) < 0)
          cimg_error_clear (&e);
      }

  const char *freezer = NULL;
  for (int i = 0; i < cg->n; i++)
    if (cg->d[i].ctl & CTL_FREEZER)
      freezer = cg->d[i].path;
  const char *v2_dir = NULL;
  for (int i = 0; i < cg->n; i++)
    if (cg->d[i].v2 && cg->mode == MODE_V2)
      v2_dir = cg->d[i].path;

  /* Kill and wait, up to 10 s: the time the kernel may take to tear the processes down (a
     large address space, a task in D state on NFS, …), killing again every 250 ms whatever
     escaped. Nothing left (the common case after a container's exit): no freezing at all. */
  bool empty = true;
  for (int i = 0; i < cg->n && empty; i++)
    empty = dir_empty (cg->d[i].path);
  for (int round = 0; round < 2000 && !empty; round++)
    {
      if (round % 50 == 0)
        {
          if (freezer)
            v1_freeze (freezer, true);
          else if (v2_dir && !file_exists (v2_dir, "cgroup.kill"))
            {
              /* v2 freezer (Linux 5.2): unlike v1, fatal signals still reach frozen tasks, so
                 they die without a thaw; the cgroup is removed right after. */
              cimg_error_t e = { 0 };
              if (write_knob (v2_dir, "cgroup.freeze", "1", true, &e) < 0)
                cimg_error_clear (&e);
            }
          for (int i = 0; i < cg->n; i++)
            kill_procs (cg->d[i].path);
          if (freezer)
            v1_freeze (freezer, false);
        }
      empty = true;
      for (int i = 0; i < cg->n && empty; i++)
        empty = dir_empty (cg->d[i].path);
      if (!empty)
        sleep_ms (round < 10 ? 1 : 5);
    }
  if (!empty)
    {
      for (int i = 0; i < cg->n; i++)
        if (!dir_empty (cg->d[i].path))
          return cimg_error_set (err, EBUSY,
                                 "cgroup: %s/cgroup.procs: processes still there "
                                 "after SIGKILL",
                                 cg->d[i].path);
    }

  /* rmdir can still answer EBUSY for a moment after cgroup.procs reads empty: exiting tasks
     are unlinked from their css_set after they disappear from the listing. */
  for (int i = 0; i < cg->n; i++)
    {
      int r = -1;
      for (int t = 0; t < 1000; t++)
        {
          r = rmdir (cg->d[i].path);
          if (r == 0 || errno == ENOENT)
            {
              r = 0;
              break;
            }
          if (errno != EBUSY)
            break;
          sleep_ms (2);
        }
      if (r < 0)
        return cimg_error_sys (err, "cgroup: rmdir %s", cg->d[i].path);
    }
  if (cg->v2_fd >= 0)
    {
      close (cg->v2_fd);
      cg->v2_fd = -1;
    }
  return 0;
}

/* ---------------------------------------------------------------- usage (stats, top) */

/* Sum the Read and Write lines of a v1 blkio.throttle.io_service_bytes ("MAJ:MIN Read N"), or
   the rbytes=/wbytes= fields of a v2 io.stat ("MAJ:MIN rbytes=N wbytes=N …"). */
static void
sum_io (const char *text, bool v2, int64_t *rd, int64_t *wr)
{
  for (const char *p = text; p && *p; p = strchr (p, '\n') ? strchr (p, '\n') + 1 : NULL)
    {
      if (v2)
        {
          const char *e = strchr (p, '\n');
          size_t n = e ? (size_t)(e - p) : strlen (p);
          cleanup_free char *line = xstrndup (p, n);
          char *r = strstr (line, " rbytes="), *w = strstr (line, " wbytes=");
          if (r)
            *rd += strtoll (r + 8, NULL, 10);
          if (w)
            *wr += strtoll (w + 8, NULL, 10);
          continue;
        }
      unsigned ma, mi;
      char op[16];
      long long v;
      if (sscanf (p, "%u:%u %15s %lld", &ma, &mi, op, &v) != 4)
        continue;
      if (strcmp (op, "Read") == 0)
        *rd += v;
      else if (strcmp (op, "Write") == 0)
        *wr += v;
    }
}

int
cimg_cgroup_usage (struct cimg_cgroup *cg, struct cimg_cgroup_usage *u, cimg_error_t *err)
{
  memset (u, 0, sizeof *u);
  struct cimg_cgroup_stats st;
  if (cimg_cgroup_stats (cg, &st, err) < 0)
    return -1;
  u->memory_usage = st.memory_usage;
  u->memory_limit = st.memory_limit;
  u->pids = st.pids;
  u->cpu_usage_ns = st.cpu_usage_ns;
  for (int i = 0; i < cg->n; i++)
    {
      const struct cg_dir *d = &cg->d[i];
      int64_t v;
      if (d->v2 && cg->mode == MODE_V2)
        {
          cleanup_free char *ms = read_knob (d->path, "memory.stat");
          if (ms && keyed_value (ms, "inactive_file", &v))
            u->memory_inactive_file = v;
          cleanup_free char *io = read_knob (d->path, "io.stat");
          if (io)
            sum_io (io, true, &u->blkio_read, &u->blkio_write);
          continue;
        }
      if (d->ctl & CTL_MEMORY)
        {
          cleanup_free char *ms = read_knob (d->path, "memory.stat");
          if (ms && keyed_value (ms, "total_inactive_file", &v))
            u->memory_inactive_file = v;
        }
      if (d->ctl & CTL_BLKIO)
        {
          cleanup_free char *io = read_knob (d->path, "blkio.throttle.io_service_bytes_recursive");
          if (io == NULL)
            io = read_knob (d->path, "blkio.throttle.io_service_bytes");
          if (io)
            sum_io (io, false, &u->blkio_read, &u->blkio_write);
        }
    }
  return 0;
}

int
cimg_cgroup_pids (struct cimg_cgroup *cg, pid_t **pids, size_t *n, cimg_error_t *err)
{
  *pids = NULL;
  *n = 0;
  /* Every hierarchy holds every process of the container; the unified one (or the first). */
  const char *dir = cg->n > 0 ? cg->d[0].path : NULL;
  for (int i = 0; i < cg->n; i++)
    if (cg->d[i].v2)
      dir = cg->d[i].path;
  if (dir == NULL)
    return cimg_error_set (err, ENOENT, "cgroup: container %s has no cgroup", cg->id);
  cleanup_free char *procs = read_knob (dir, "cgroup.procs");
  if (procs == NULL)
    return cimg_error_sys (err, "cgroup: read %s/cgroup.procs", dir);
  size_t cap = 16;
  pid_t *v = xmalloc (cap * sizeof *v);
  for (char *p = procs, *end; *p; p = end)
    {
      long pid = strtol (p, &end, 10);
      if (end == p)
        break;
      if (*n == cap)
        v = xrealloc (v, (cap *= 2) * sizeof *v);
      v[(*n)++] = (pid_t)pid;
    }
  *pids = v;
  return 0;
}

/* ---------------------------------------------------------------- freezer */

int
cimg_cgroup_freeze (struct cimg_cgroup *cg, bool freeze, cimg_error_t *err)
{
  /* The v1 freezer where it is mounted (v1, hybrid), else the v2 core file (Linux 5.2). */
  const char *v1 = NULL, *v2 = NULL;
  for (int i = 0; i < cg->n; i++)
    if (cg->d[i].ctl & CTL_FREEZER)
      v1 = cg->d[i].path;
    else if (cg->d[i].v2 && file_exists (cg->d[i].path, "cgroup.freeze"))
      v2 = cg->d[i].path;
  const char *dir = v1 ? v1 : v2;
  if (dir == NULL)
    return cimg_error_set (err, ENOTSUP, "cgroup: container %s has no freezer", cg->id);
  const char *knob = v1 ? "freezer.state" : "cgroup.freeze";
  const char *thawed = v1 ? "THAWED" : "0";
  if (!freeze)
    return write_knob (dir, knob, thawed, false, err);
  if (write_knob (dir, knob, v1 ? "FROZEN" : "1", false, err) < 0)
    return -1;
  /* The write only starts it: the kernel stops the tasks one by one (v1 reads FREEZING until
     the last one is stopped, v2 says "frozen 1" in cgroup.events), and a task in
     uninterruptible sleep holds it back. Wait up to 5 s, else thaw again and say so. */
  for (int i = 0; i < 5000; i++)
    {
      cleanup_free char *s = read_knob (dir, v1 ? "freezer.state" : "cgroup.events");
      if (s && (v1 ? strncmp (s, "FROZEN", 6) == 0 : strstr (s, "frozen 1") != NULL))
        return 0;
      sleep_ms (1);
    }
  cimg_error_t e = { 0 };
  if (write_knob (dir, knob, thawed, false, &e) < 0)
    cimg_error_clear (&e);
  return cimg_error_set (err, ETIMEDOUT, "cgroup: container %s: %s/%s did not freeze within 5 s",
                         cg->id, dir, knob);
}

/* ---------------------------------------------------------------- leftovers (system check) */

/* The directories that hold cimg/ in every hierarchy of this host, whatever mode is forced:
   a leftover may come from a run under another mode (tests force v1 or v2 on this hybrid
   machine). */
static char **
leftover_parents (void)
{
  const struct layout *lay = get_layout ();
  char **out = NULL;
  for (int i = 0; i < lay->n; i++)
    {
      cleanup_free char *p = xasprintf ("%s/cimg", lay->h[i].mnt);
      cimg_strv_append (&out, p);
    }
  if (lay->v2_mnt != NULL)
    {
      cleanup_free char *p = xasprintf ("%s/cimg", lay->v2_mnt);
      cimg_strv_append (&out, p);
      cleanup_free char *fb = v2_fallback_base (lay->v2_mnt);
      cleanup_free char *q = fb ? xasprintf ("%s/cimg", fb) : NULL;
      if (q && !cimg_strv_contains (out, q))
        cimg_strv_append (&out, q);
    }
  return out;
}

/* Whether a process is in dir or a cgroup below it (a container with a cgroup namespace may
   have made children). */
static bool
subtree_live (int depth, const char *dir)
{
  /* Unreadable for another reason than being gone: assumed live, so never removed. */
  cleanup_free char *procs = read_knob (dir, "cgroup.procs");
  if (procs == NULL ? errno != ENOENT : procs[strspn (procs, " \n")] != '\0')
    return true;
  cleanup_dir DIR *d = depth < 16 ? opendir (dir) : NULL;
  struct dirent *e;
  while (d && (e = readdir (d)))
    if (e->d_type == DT_DIR && e->d_name[0] != '.')
      {
        cleanup_free char *sub = xasprintf ("%s/%s", dir, e->d_name);
        if (subtree_live (depth + 1, sub))
          return true;
      }
  return false;
}

/* SIGKILL every process of dir's subtree (cgroup.kill where the kernel has it, which also
   catches a process forking at that moment). */
static void
subtree_kill (int depth, const char *dir)
{
  if (file_exists (dir, "cgroup.kill"))
    {
      cimg_error_t e = { 0 };
      if (write_knob (dir, "cgroup.kill", "1", true, &e) < 0)
        cimg_error_clear (&e);
    }
  kill_procs (dir);
  cleanup_dir DIR *d = depth < 16 ? opendir (dir) : NULL;
  struct dirent *e;
  while (d && (e = readdir (d)))
    if (e->d_type == DT_DIR && e->d_name[0] != '.')
      {
        cleanup_free char *sub = xasprintf ("%s/%s", dir, e->d_name);
        subtree_kill (depth + 1, sub);
      }
}

/* rmdir dir's subtree, deepest first; EBUSY is retried for a moment, as in destroy. */
static int
subtree_rmdir (int depth, const char *dir, cimg_error_t *err)
{
  {
    cleanup_dir DIR *d = depth < 16 ? opendir (dir) : NULL;
    struct dirent *e;
    while (d && (e = readdir (d)))
      if (e->d_type == DT_DIR && e->d_name[0] != '.')
        {
          cleanup_free char *sub = xasprintf ("%s/%s", dir, e->d_name);
          if (subtree_rmdir (depth + 1, sub, err) < 0)
            return -1;
        }
  }
  for (int t = 0; t < 500; t++)
    {
      if (rmdir (dir) == 0 || errno == ENOENT)
        return 0;
      if (errno != EBUSY)
        break;
      sleep_ms (2);
    }
  return cimg_error_sys (err, "cgroup: rmdir %s", dir);
}

static void
leftover_clear (struct cimg_cgroup_leftover *l)
{
  free (l->id);
  cimg_strv_free (l->dirs);
  memset (l, 0, sizeof *l);
}

void
cimg_cgroup_leftovers_free (struct cimg_cgroup_leftover *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    leftover_clear (&v[i]);
  free (v);
}

/* The directory of l in the v1 freezer hierarchy, or NULL. */
static const char *
leftover_freezer (const struct cimg_cgroup_leftover *l)
{
  const struct layout *lay = get_layout ();
  for (int h = 0; h < lay->n; h++)
    if (lay->h[h].ctl & CTL_FREEZER)
      for (size_t k = 0; l->dirs && l->dirs[k]; k++)
        {
          size_t m = strlen (lay->h[h].mnt);
          if (strncmp (l->dirs[k], lay->h[h].mnt, m) == 0 && l->dirs[k][m] == '/')
            return l->dirs[k];
        }
  return NULL;
}

int
cimg_cgroup_sweep (char *const *keep, char *const *dead, int64_t min_age_s, bool remove,
                   struct cimg_cgroup_leftover **out, size_t *n, cimg_error_t *err)
{
  *out = NULL;
  *n = 0;
  cleanup_strv char **parents = leftover_parents ();
  struct cimg_cgroup_leftover *v = NULL;
  size_t nv = 0;
  /* Group the cimg/<id> directories of every hierarchy by ID. */
  for (size_t p = 0; parents && parents[p]; p++)
    {
      cleanup_dir DIR *d = opendir (parents[p]);
      struct dirent *e;
      while (d && (e = readdir (d)))
        {
          if (e->d_type != DT_DIR || !valid_id (e->d_name)
              || cimg_strv_contains ((char **)keep, e->d_name))
            continue;
          cleanup_free char *dir = xasprintf ("%s/%s", parents[p], e->d_name);
          struct stat st;
          /* Gone meanwhile: its owner's teardown (another store's container) got there first. */
          if (stat (dir, &st) < 0)
            continue;
          size_t i = 0;
          while (i < nv && strcmp (v[i].id, e->d_name) != 0)
            i++;
          if (i == nv)
            {
              v = xrealloc (v, (nv + 1) * sizeof *v);
              memset (&v[nv], 0, sizeof v[nv]);
              v[nv].id = xstrdup (e->d_name);
              v[nv].dead_build = cimg_strv_contains ((char **)dead, e->d_name);
              nv++;
            }
          if ((int64_t)st.st_mtime > v[i].created)
            v[i].created = (int64_t)st.st_mtime;
          v[i].live |= subtree_live (0, dir);
          cimg_strv_append (&v[i].dirs, dir);
        }
    }

  /* What is not provably a leftover is not reported: a live cgroup, or a young one, may be a
     container of another store (on its way in, between its mkdir and its first process). */
  time_t now = time (NULL);
  size_t kept = 0;
  for (size_t i = 0; i < nv; i++)
    {
      bool leftover = v[i].dead_build || (!v[i].live && (int64_t)now - v[i].created >= min_age_s);
      if (leftover)
        v[kept++] = v[i];
      else
        leftover_clear (&v[i]);
    }
  nv = kept;

  for (size_t i = 0; remove && i < nv; i++)
    {
      struct cimg_cgroup_leftover *l = &v[i];
      /* A dead build's step: kill what is left of it first, up to 10 s as destroy does (its
         processes die with the build through PDEATHSIG; this catches any that escaped). */
      for (int round = 0; l->dead_build && l->live && round < 2000; round++)
        {
          l->killed = true;
          if (round % 50 == 0)
            {
              const char *freezer = leftover_freezer (l);
              if (freezer)
                v1_freeze (freezer, true);
              for (size_t k = 0; l->dirs[k]; k++)
                subtree_kill (0, l->dirs[k]);
              if (freezer)
                v1_freeze (freezer, false);
            }
          l->live = false;
          for (size_t k = 0; l->dirs[k] && !l->live; k++)
            l->live = subtree_live (0, l->dirs[k]);
          if (l->live)
            sleep_ms (round < 10 ? 1 : 5);
        }
      if (l->live)
        continue;
      int rc = 0;
      for (size_t k = 0; l->dirs[k] && rc == 0; k++)
        rc = subtree_rmdir (0, l->dirs[k], err);
      if (rc < 0 && !l->dead_build && err->code == EBUSY)
        {
          /* Not this store's, and a process has joined it since: in use again, left alone. */
          cimg_error_clear (err);
          l->live = true;
          continue;
        }
      if (rc < 0)
        {
          cimg_cgroup_leftovers_free (v, nv);
          return -1;
        }
      l->removed = true;
    }
  *out = v;
  *n = nv;
  return 0;
}
