/* Unit tests of runtime/cgroup.c, as root against the machine's real cgroup hierarchies. The
   expected files are found from /proc/self/mountinfo by this test's own small parser, so that a
   mistake in the library's layout detection shows. Every test's cgroup and child processes are
   removed by the teardown, also when an assertion fails. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "runtime/confine.h"
#include "runtime/confine-internal.h"
#include "runtime/runtime-internal.h"
#include "tests/unit/fixture.h"

#define MIB (INT64_C (1) << 20)
#define MAX_KIDS 4

struct fixture
{
  char id[64];
  const char *force; /* NULL, "v1" or "v2": the backend forced on a hybrid machine */
  pid_t kids[MAX_KIDS];
  int nkids;
  int go[2];    /* parent → child: proceed */
  int done[2];  /* child → parent: done */
  char tmp[32]; /* a temporary directory of the test ("" if none): link, cimg/<id> */
};

static int seq;

static int
setup (void **state)
{
  struct fixture *f = xzalloc (sizeof *f);
  snprintf (f->id, sizeof f->id, "cimgtest-%d-%d", (int)getpid (), seq++);
  if (pipe2 (f->go, O_CLOEXEC) < 0 || pipe2 (f->done, O_CLOEXEC) < 0)
    return -1;
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  for (int i = 0; i < f->nkids; i++)
    if (f->kids[i] > 0)
      {
        kill (f->kids[i], SIGKILL);
        waitpid (f->kids[i], NULL, 0);
      }
  int r = test_cgroup_destroy (f->id, f->force);
  if (f->tmp[0] != '\0')
    {
      /* By name: link points into a cgroup hierarchy, which a recursive removal must not
         follow. */
      cleanup_free char *link = xasprintf ("%s/link", f->tmp);
      cleanup_free char *fake_parent = xasprintf ("%s/cimg", f->tmp);
      cleanup_free char *fake = xasprintf ("%s/%s", fake_parent, f->id);
      unlink (link);
      rmdir (fake);
      rmdir (fake_parent);
      rmdir (f->tmp);
    }
  for (int i = 0; i < 2; i++)
    {
      close (f->go[i]);
      close (f->done[i]);
    }
  free (f);
  return r;
}

/* ---------------------------------------------------------------- helpers */

/* The mount point of the v1 hierarchy that has controller ctl, or of the cgroup2 mount when ctl
   is NULL. */
static char *
mount_of (const char *ctl)
{
  FILE *m = fopen ("/proc/self/mountinfo", "re");
  assert_non_null (m);
  char line[4096];
  char *found = NULL;
  while (found == NULL && fgets (line, sizeof line, m))
    {
      char mnt[1024], fstype[64], opts[1024];
      char *sep = strstr (line, " - ");
      if (sep == NULL || sscanf (line, "%*s %*s %*s %*s %1023s", mnt) != 1
          || sscanf (sep + 3, "%63s %*s %1023s", fstype, opts) != 2)
        continue;
      if (ctl == NULL && strcmp (fstype, "cgroup2") == 0)
        found = xstrdup (mnt);
      if (ctl != NULL && strcmp (fstype, "cgroup") == 0)
        {
          char *save = NULL;
          for (char *o = strtok_r (opts, ",", &save); o; o = strtok_r (NULL, ",", &save))
            if (strcmp (o, ctl) == 0)
              found = xstrdup (mnt);
        }
    }
  fclose (m);
  return found;
}

static bool
v1_layout (const struct fixture *f)
{
  return strcmp (cimg_cgroup_mode (), "v2") != 0;
}

/* The container's directory in the hierarchy of ctl (NULL: unified). */
static char *
cg_dir (const struct fixture *f, const char *ctl)
{
  cleanup_free char *mnt = mount_of (ctl);
  if (mnt == NULL)
    return NULL;
  return xasprintf ("%s/cimg/%s", mnt, f->id);
}

static char *
read_file (const char *dir, const char *name)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  FILE *fp = fopen (path, "re");
  if (fp == NULL)
    return NULL;
  char *buf = xzalloc (65536);
  size_t n = fread (buf, 1, 65535, fp);
  buf[n] = '\0';
  fclose (fp);
  return buf;
}

static int64_t
read_int (const char *dir, const char *name)
{
  cleanup_free char *s = read_file (dir, name);
  if (s == NULL)
    fail_msg ("cannot read %s/%s", dir, name);
  return strtoll (s, NULL, 10);
}

static bool
exists (const char *dir, const char *name)
{
  cleanup_free char *path = name ? xasprintf ("%s/%s", dir, name) : xstrdup (dir);
  return access (path, F_OK) == 0;
}

static bool
line_in (const char *text, const char *line)
{
  size_t l = strlen (line);
  for (const char *p = text; p && *p; p = strchr (p, '\n') ? strchr (p, '\n') + 1 : NULL)
    if (strncmp (p, line, l) == 0 && (p[l] == '\n' || p[l] == '\0'))
      return true;
  return false;
}

/* A child that waits for a byte on go, then touches mb MiB of memory, reports on done and
   sleeps until killed. */
static pid_t
spawn_child (struct fixture *f, int mb, bool fork_grandchild)
{
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      char c;
      if (read (f->go[0], &c, 1) != 1)
        _exit (2);
      if (fork_grandchild && fork () == 0)
        {
          for (;;)
            pause ();
        }
      if (mb > 0)
        {
          char *p = mmap (NULL, (size_t)mb * MIB, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
          if (p == MAP_FAILED)
            _exit (3);
          for (size_t i = 0; i < (size_t)mb * MIB; i += 4096)
            p[i] = 1;
        }
      if (write (f->done[1], "x", 1) != 1)
        _exit (4);
      for (;;)
        pause ();
    }
  assert_true (f->nkids < MAX_KIDS);
  f->kids[f->nkids++] = pid;
  return pid;
}

static void
release_child (struct fixture *f, bool wait_done)
{
  assert_int_equal (write (f->go[1], "g", 1), 1);
  if (wait_done)
    {
      char c;
      assert_int_equal (read (f->done[0], &c, 1), 1);
    }
}

/* Every directory of the container, in whichever layout. */
static const char *const v1_ctls[]
    = { "memory", "cpu", "cpuacct", "pids", "blkio", "freezer", "cpuset" };

static void
assert_all_dirs (const struct fixture *f, bool present)
{
  if (v1_layout (f))
    for (size_t i = 0; i < ARRAY_SIZE (v1_ctls); i++)
      {
        cleanup_free char *d = cg_dir (f, v1_ctls[i]);
        if (d == NULL)
          continue;
        if (exists (d, NULL) != present)
          fail_msg ("%s should %sexist", d, present ? "" : "not ");
      }
  if (strcmp (cimg_cgroup_mode (), "v1") != 0)
    {
      cleanup_free char *d = cg_dir (f, NULL);
      if (d != NULL && exists (d, NULL) != present)
        fail_msg ("%s should %sexist", d, present ? "" : "not ");
    }
}

static void
skip_unless_root (void)
{
  if (geteuid () != 0)
    skip ();
}

/* The container's cgroup id with limits l (NULL: none); fails the test when it cannot be made. */
static struct cimg_cgroup *
create_cg (const char *id, const struct cimg_limits *l)
{
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = cimg_cgroup_create (id, l, &err);
  if (cg == NULL)
    fail_msg ("create %s: %s", id, err.msg);
  return cg;
}

/* ---------------------------------------------------------------- tests */

static void
test_mode (void **state)
{
  (void)state;
  const char *m = cimg_cgroup_mode ();
  cleanup_free char *v2 = mount_of (NULL);
  cleanup_free char *mem = mount_of ("memory");
  const char *want = mem && v2 ? "hybrid" : mem ? "v1" : v2 ? "v2" : "none";
  assert_string_equal (m, want);
}

static void
test_limits_readback (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  struct cimg_limits l = { .memory = 64 * MIB,
                           .pids_limit = 32,
                           .cpu_quota = 50000,
                           .cpu_period = 200000,
                           .cpu_shares = 512,
                           .blkio_weight = 500 };
  struct cimg_cgroup *cg = create_cg (f->id, &l);
  cimg_cgroup_free (cg);
  assert_all_dirs (f, true);

  if (v1_layout (f))
    {
      cleanup_free char *mem = cg_dir (f, "memory");
      assert_int_equal (read_int (mem, "memory.limit_in_bytes"), 64 * MIB);
      if (exists (mem, "memory.memsw.limit_in_bytes"))
        assert_int_equal (read_int (mem, "memory.memsw.limit_in_bytes"), 128 * MIB);
      cleanup_free char *cpu = cg_dir (f, "cpu");
      assert_int_equal (read_int (cpu, "cpu.shares"), 512);
      assert_int_equal (read_int (cpu, "cpu.cfs_quota_us"), 50000);
      assert_int_equal (read_int (cpu, "cpu.cfs_period_us"), 200000);
      cleanup_free char *pids = cg_dir (f, "pids");
      assert_int_equal (read_int (pids, "pids.max"), 32);
      cleanup_free char *blkio = cg_dir (f, "blkio");
      if (exists (blkio, "blkio.weight"))
        assert_int_equal (read_int (blkio, "blkio.weight"), 500);
      else if (exists (blkio, "blkio.bfq.weight"))
        {
          /* "default 500" on some kernels, "500" on others. */
          cleanup_free char *w = read_file (blkio, "blkio.bfq.weight");
          assert_non_null (strstr (w, "500"));
        }
      cleanup_free char *cpuset = cg_dir (f, "cpuset");
      if (cpuset)
        {
          cleanup_free char *cpus = read_file (cpuset, "cpuset.cpus");
          cleanup_free char *mems = read_file (cpuset, "cpuset.mems");
          assert_true (cpus[0] >= '0' && cpus[0] <= '9');
          assert_true (mems[0] >= '0' && mems[0] <= '9');
        }
    }
  else
    {
      cleanup_free char *d = cg_dir (f, NULL);
      assert_int_equal (read_int (d, "memory.max"), 64 * MIB);
      if (exists (d, "memory.swap.max"))
        assert_int_equal (read_int (d, "memory.swap.max"), 64 * MIB);
      assert_int_equal (read_int (d, "cpu.weight"), 1 + ((512 - 2) * 9999) / 262142);
      cleanup_free char *max = read_file (d, "cpu.max");
      assert_string_equal (max, "50000 200000\n");
      assert_int_equal (read_int (d, "pids.max"), 32);
    }
}

/* A whole-disk block device (major, minor) for the throttle files; false if none. */
static bool
some_disk (unsigned *major, unsigned *minor)
{
  DIR *d = opendir ("/sys/block");
  if (d == NULL)
    return false;
  bool found = false;
  struct dirent *e;
  while (!found && (e = readdir (d)) != NULL)
    {
      if (e->d_name[0] == '.' || cimg_str_has_prefix (e->d_name, "loop")
          || cimg_str_has_prefix (e->d_name, "ram") || cimg_str_has_prefix (e->d_name, "zram"))
        continue;
      cleanup_free char *dir = xasprintf ("/sys/block/%s", e->d_name);
      cleanup_free char *dev = read_file (dir, "dev");
      found = dev && sscanf (dev, "%u:%u", major, minor) == 2;
    }
  closedir (d);
  return found;
}

static void
test_more_limits_readback (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  if (!v1_layout (f))
    skip (); /* the v2 files need controllers this machine's unified mount lacks */
  unsigned maj = 0, min = 0;
  bool disk = some_disk (&maj, &min);
  struct cimg_blkio_rate rates[] = {
    { CIMG_BLKIO_READ_BPS, maj, min, 1048576 },
    { CIMG_BLKIO_WRITE_IOPS, maj, min, 100 },
  };
  cimg_error_t err = { 0 };
  struct cimg_limits l = { .memory = 64 * MIB,
                           .memory_reservation = 32 * MIB,
                           .memory_swappiness_set = true,
                           .memory_swappiness = 0,
                           .oom_kill_disable = true,
                           .cpuset_cpus = "0",
                           .cpuset_mems = "0",
                           .blkio_rates = disk ? rates : NULL,
                           .n_blkio_rates = disk ? ARRAY_SIZE (rates) : 0 };
  struct cimg_cgroup *cg = create_cg (f->id, &l);
  cimg_cgroup_free (cg);

  cleanup_free char *mem = cg_dir (f, "memory");
  assert_int_equal (read_int (mem, "memory.soft_limit_in_bytes"), 32 * MIB);
  assert_int_equal (read_int (mem, "memory.swappiness"), 0);
  cleanup_free char *oc = read_file (mem, "memory.oom_control");
  assert_true (line_in (oc, "oom_kill_disable 1"));
  cleanup_free char *cpuset = cg_dir (f, "cpuset");
  if (cpuset)
    {
      cleanup_free char *cpus = read_file (cpuset, "cpuset.cpus");
      assert_string_equal (cpus, "0\n");
    }
  if (disk)
    {
      cleanup_free char *blkio = cg_dir (f, "blkio");
      cleanup_free char *rbps = read_file (blkio, "blkio.throttle.read_bps_device");
      cleanup_free char *want_r = xasprintf ("%u:%u 1048576", maj, min);
      assert_true (line_in (rbps, want_r));
      cleanup_free char *wiops = read_file (blkio, "blkio.throttle.write_iops_device");
      cleanup_free char *want_w = xasprintf ("%u:%u 100", maj, min);
      assert_true (line_in (wiops, want_w));
    }

  /* Refusals name the file and the value. */
  cleanup_free char *id2 = xasprintf ("%s-b", f->id);
  if (cpuset)
    {
      struct cimg_limits bad = { .cpuset_cpus = "4096" };
      struct cimg_cgroup *leak = cimg_cgroup_create (id2, &bad, &err);
      if (leak != NULL)
        {
          cimg_cgroup_destroy (leak, &err);
          cimg_cgroup_free (leak);
          fail_msg ("cpuset.cpus 4096 accepted");
        }
      cleanup_free char *mnt = mount_of ("cpuset");
      cleanup_free char *want
          = xasprintf ("cgroup: write \"4096\" to %s/cimg/%s/cpuset.cpus: ", mnt, id2);
      assert_non_null (strstr (err.msg, want));
      cimg_error_clear (&err);
    }
  struct cimg_limits sw = { .memory_swappiness_set = true, .memory_swappiness = 101 };
  assert_null (cimg_cgroup_create (id2, &sw, &err));
  assert_non_null (strstr (err.msg, "101"));
  cimg_error_clear (&err);
  assert_null (cimg_cgroup_open (id2, &err));
  cimg_error_clear (&err);
}

static void
test_add_pid_and_stats (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_limits l = { .memory = 64 * MIB, .pids_limit = 32 };
  struct cimg_cgroup *cg = create_cg (f->id, &l);
  pid_t pid = spawn_child (f, 1, false);
  if (cimg_cgroup_add_pid (cg, pid, &err) < 0)
    fail_msg ("add_pid: %s", err.msg);
  /* Memory is charged to the cgroup the pages are touched in: the child touches its MiB after
     the move. */
  release_child (f, true);

  char spid[32];
  snprintf (spid, sizeof spid, "%d", (int)pid);
  cleanup_free char *proc_name = xasprintf ("%d/cgroup", (int)pid);
  cleanup_free char *proc_cg = read_file ("/proc", proc_name);
  cleanup_free char *want_path = xasprintf ("/cimg/%s", f->id);
  if (v1_layout (f))
    {
      cleanup_free char *mem = cg_dir (f, "memory");
      cleanup_free char *procs = read_file (mem, "cgroup.procs");
      assert_true (line_in (procs, spid));
      cleanup_free char *want = xasprintf (":memory:%s", want_path);
      assert_non_null (strstr (proc_cg, want));
      cleanup_free char *want_pids = xasprintf (":pids:%s", want_path);
      assert_non_null (strstr (proc_cg, want_pids));
    }
  if (strcmp (cimg_cgroup_mode (), "v1") != 0)
    {
      cleanup_free char *want = xasprintf ("0::%s", want_path);
      assert_true (line_in (proc_cg, want));
      cleanup_free char *d = cg_dir (f, NULL);
      cleanup_free char *procs = read_file (d, "cgroup.procs");
      assert_true (line_in (procs, spid));
    }

  struct cimg_cgroup_stats st;
  if (cimg_cgroup_stats (cg, &st, &err) < 0)
    fail_msg ("stats: %s", err.msg);
  assert_true (st.pids >= 1);
  assert_true (st.memory_usage > 0);
  assert_int_equal (st.memory_limit, 64 * MIB);
  assert_false (st.oom_killed);
  cimg_cgroup_free (cg);
}

/* The container's cgroup with limits l (NULL: none), in the devices hierarchy too (Docker's
   default allow-list): every hierarchy a process joins. */
static struct cimg_cgroup *
create_with_devices (const struct fixture *f, const struct cimg_limits *l)
{
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = create_cg (f->id, l);
  if (cimg_cgroup_set_devices (cg, NULL, 0, &err) < 0)
    {
      cimg_cgroup_free (cg);
      fail_msg ("devices: %s", err.msg);
    }
  return cg;
}

/* The spawner's way in: the child is created in the unified cgroup by clone3 CLONE_INTO_CGROUP
   (v2, hybrid) and moves itself into every v1 hierarchy, the devices one included; nobody
   writes its pid anywhere. */
static void
test_join_self (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_limits l = { .pids_limit = 32 };
  struct cimg_cgroup *cg = create_with_devices (f, &l);
  struct cimg_cgroup_join j = { .into_fd = -1 };
  if (cimg_cgroup_join_prepare (cg, &j, &err) < 0)
    fail_msg ("join_prepare: %s", err.msg);
  assert_int_equal (j.into_fd >= 0, strcmp (cimg_cgroup_mode (), "v1") != 0);
  assert_int_equal (j.n > 0, v1_layout (f));

  pid_t pid = -1;
  if (j.into_fd >= 0)
    {
      struct clone_args ca
          = { .flags = CLONE_INTO_CGROUP, .exit_signal = SIGCHLD, .cgroup = (uint64_t)j.into_fd };
      pid = (pid_t)syscall (SYS_clone3, &ca, sizeof ca);
      if (pid < 0 && errno == ENOSYS)
        skip ();
    }
  else
    pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      cimg_error_t cerr = { 0 };
      char r = cimg_cgroup_join_self (&j, &cerr) == 0 ? 'y' : 'n';
      if (write (f->done[1], &r, 1) != 1)
        _exit (4);
      for (;;)
        pause ();
    }
  f->kids[f->nkids++] = pid;
  cimg_cgroup_join_clear (&j);
  assert_int_equal (j.into_fd, -1);
  assert_int_equal (j.n, 0);
  char r;
  assert_int_equal (read (f->done[0], &r, 1), 1);
  assert_int_equal (r, 'y');

  cleanup_free char *proc_name = xasprintf ("%d/cgroup", (int)pid);
  cleanup_free char *proc_cg = read_file ("/proc", proc_name);
  cleanup_free char *want_path = xasprintf ("/cimg/%s", f->id);
  if (v1_layout (f))
    {
      static const char *const ctls[] = { "memory", "pids", "freezer", "devices" };
      for (size_t i = 0; i < ARRAY_SIZE (ctls); i++)
        {
          cleanup_free char *want = xasprintf (":%s:%s\n", ctls[i], want_path);
          if (strstr (proc_cg, want) == NULL)
            fail_msg ("not in %s%s: %s", ctls[i], want_path, proc_cg);
        }
    }
  if (strcmp (cimg_cgroup_mode (), "v1") != 0)
    {
      cleanup_free char *want = xasprintf ("0::%s", want_path);
      assert_true (line_in (proc_cg, want));
    }
  cimg_cgroup_free (cg);
}

/* exec's way in: the directories kept in a container's record (cimg_cgroup_dirs), opened
   without the mount lookup, are the ones the test finds from mountinfo; a process joins them
   (the unified one through cimg_cgroup_join_add_pid, the v1 ones by itself); and kept
   directories that are not plainly this container's cgroups are refused, leaving nothing
   open. */
static void
test_join_kept_dirs (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = create_with_devices (f, NULL);
  cleanup_strv char **dirs = cimg_cgroup_dirs (cg);
  cimg_cgroup_free (cg);
  assert_non_null (dirs);
  static const char *const ctls[] = { "memory", "pids", "freezer", "devices" };
  size_t n_v1 = 0;
  for (size_t i = 0; dirs[i]; i++)
    if (!exists (dirs[i], NULL))
      fail_msg ("kept %s does not exist", dirs[i]);
  cleanup_free char *unified = cg_dir (f, NULL);
  if (v1_layout (f))
    for (size_t i = 0; i < ARRAY_SIZE (ctls); i++)
      {
        cleanup_free char *want = cg_dir (f, ctls[i]);
        if (want == NULL)
          continue;
        n_v1++;
        assert_true (cimg_strv_contains (dirs, want));
      }
  if (unified && strcmp (cimg_cgroup_mode (), "v1") != 0)
    assert_true (cimg_strv_contains (dirs, unified));

  struct cimg_cgroup_join j = { .into_fd = -1 };
  if (cimg_cgroup_join_prepare_dirs (f->id, dirs, &j, &err) < 0)
    fail_msg ("join_prepare_dirs: %s", err.msg);
  assert_int_equal (j.into_fd >= 0, strcmp (cimg_cgroup_mode (), "v1") != 0);
  assert_true ((size_t)j.n >= n_v1);
  assert_int_equal ((size_t)j.n + (j.into_fd >= 0), cimg_strv_len (dirs));
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      char c;
      if (read (f->go[0], &c, 1) != 1)
        _exit (2);
      cimg_error_t cerr = { 0 };
      char r = cimg_cgroup_join_self (&j, &cerr) == 0 ? 'y' : 'n';
      if (write (f->done[1], &r, 1) != 1)
        _exit (4);
      for (;;)
        pause ();
    }
  f->kids[f->nkids++] = pid;
  if (cimg_cgroup_join_add_pid (&j, pid, &err) < 0)
    fail_msg ("join_add_pid: %s", err.msg);
  cimg_cgroup_join_clear (&j);
  char r;
  assert_int_equal (write (f->go[1], "g", 1), 1);
  assert_int_equal (read (f->done[0], &r, 1), 1);
  assert_int_equal (r, 'y');
  cleanup_free char *proc_name = xasprintf ("%d/cgroup", (int)pid);
  cleanup_free char *proc_cg = read_file ("/proc", proc_name);
  for (size_t i = 0; v1_layout (f) && i < ARRAY_SIZE (ctls); i++)
    {
      cleanup_free char *mnt = mount_of (ctls[i]);
      cleanup_free char *want = xasprintf (":%s:/cimg/%s\n", ctls[i], f->id);
      if (mnt && strstr (proc_cg, want) == NULL)
        fail_msg ("not in %s/cimg/%s: %s", ctls[i], f->id, proc_cg);
    }
  if (strcmp (cimg_cgroup_mode (), "v1") != 0)
    {
      cleanup_free char *want = xasprintf ("0::/cimg/%s", f->id);
      assert_true (line_in (proc_cg, want));
    }

  /* Refused, each of them alone and among the good ones (nothing of the good ones stays open):
     every bad path is BASE/cimg/<id>SUFFIX. */
  snprintf (f->tmp, sizeof f->tmp, "/tmp/cimgtest-cg.XXXXXX");
  assert_non_null (mkdtemp (f->tmp));
  const char *tmp = f->tmp;
  cleanup_free char *fake_parent = xasprintf ("%s/cimg", tmp);
  cleanup_free char *fake = xasprintf ("%s/%s", fake_parent, f->id);
  assert_int_equal (mkdir (fake_parent, 0700), 0);
  assert_int_equal (mkdir (fake, 0700), 0);
  cleanup_free char *one_parent = xstrdup (dirs[0]);
  *strstr (one_parent, "/cimg/") = '\0';
  cleanup_free char *link = xasprintf ("%s/link", tmp);
  assert_int_equal (symlink (one_parent, link), 0);
  cleanup_free char *updown = xasprintf ("%s/../%s", one_parent, strrchr (one_parent, '/') + 1);
  const struct
  {
    const char *what, *base, *suffix;
  } bad[] = {
    { "another container's", one_parent, "-other" },   { "a path through \"..\"", updown, "" },
    { "a directory that is not a cgroup's", tmp, "" }, { "reached through a symlink", link, "" },
    { "a relative path", one_parent + 1, "" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
    {
      cleanup_free char *path = xasprintf ("%s/cimg/%s%s", bad[i].base, f->id, bad[i].suffix);
      char *const one[] = { path, NULL };
      struct cimg_cgroup_join b = { .into_fd = -1 };
      if (cimg_cgroup_join_prepare_dirs (f->id, one, &b, &err) != -1)
        fail_msg ("accepted %s (%s)", path, bad[i].what);
      assert_int_equal (b.into_fd, -1);
      assert_int_equal (b.n, 0);
      cimg_error_clear (&err);
      cleanup_strv char **mixed = NULL;
      for (size_t k = 0; dirs[k]; k++)
        cimg_strv_append (&mixed, dirs[k]);
      cimg_strv_append (&mixed, path);
      if (cimg_cgroup_join_prepare_dirs (f->id, mixed, &b, &err) != -1)
        fail_msg ("accepted %s (%s) among good ones", path, bad[i].what);
      assert_int_equal (b.into_fd, -1);
      assert_int_equal (b.n, 0);
      cimg_error_clear (&err);
    }
  char *const none[] = { NULL };
  struct cimg_cgroup_join b = { .into_fd = -1 };
  assert_int_equal (cimg_cgroup_join_prepare_dirs (f->id, none, &b, &err), -1);
  cimg_error_clear (&err);
}

/* Stats must see memory the child charges after it joined. */
static void
test_memory_usage_grows (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = create_cg (f->id, NULL);
  struct cimg_cgroup_stats before, after;
  pid_t pid = spawn_child (f, 16, false);
  if (cimg_cgroup_add_pid (cg, pid, &err) < 0 || cimg_cgroup_stats (cg, &before, &err) < 0)
    fail_msg ("%s", err.msg);
  release_child (f, true);
  if (cimg_cgroup_stats (cg, &after, &err) < 0)
    fail_msg ("stats: %s", err.msg);
  assert_true (after.memory_usage >= before.memory_usage + 15 * MIB);
  assert_int_equal (after.memory_limit, 0);
  if (v1_layout (f))
    assert_true (after.cpu_usage_ns > 0);
  cimg_cgroup_free (cg);
}

static void
test_oom_kill (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_limits l = { .memory = 32 * MIB };
  struct cimg_cgroup *cg = create_cg (f->id, &l);
  pid_t pid = spawn_child (f, 200, false);
  if (cimg_cgroup_add_pid (cg, pid, &err) < 0)
    fail_msg ("add_pid: %s", err.msg);
  release_child (f, false);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  f->kids[0] = 0;
  assert_true (WIFSIGNALED (status));
  assert_int_equal (WTERMSIG (status), SIGKILL);
  struct cimg_cgroup_stats st;
  if (cimg_cgroup_stats (cg, &st, &err) < 0)
    fail_msg ("stats: %s", err.msg);
  assert_true (st.oom_killed);
  assert_int_equal (st.memory_limit, 32 * MIB);
  cimg_cgroup_free (cg);
}

static void
test_destroy_kills_everything (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_limits l = { .pids_limit = 32 };
  struct cimg_cgroup *cg = create_cg (f->id, &l);
  pid_t pid = spawn_child (f, 1, true);
  if (cimg_cgroup_add_pid (cg, pid, &err) < 0)
    fail_msg ("add_pid: %s", err.msg);
  release_child (f, true);
  struct cimg_cgroup_stats st;
  if (cimg_cgroup_stats (cg, &st, &err) < 0)
    fail_msg ("stats: %s", err.msg);
  assert_int_equal (st.pids, 2); /* the child and its grandchild */

  if (cimg_cgroup_destroy (cg, &err) < 0)
    fail_msg ("destroy: %s", err.msg);
  cimg_cgroup_free (cg);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  f->kids[0] = 0;
  assert_true (WIFSIGNALED (status));
  assert_int_equal (WTERMSIG (status), SIGKILL);
  assert_all_dirs (f, false);

  cg = cimg_cgroup_open (f->id, &err);
  assert_null (cg);
  assert_int_equal (err.code, ENOENT);
  assert_non_null (strstr (err.msg, f->id));
  cimg_error_clear (&err);
}

static void
test_reopen (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_limits l = { .memory = 48 * MIB };
  struct cimg_cgroup *cg = create_cg (f->id, &l);
  cimg_cgroup_free (cg);

  /* A second create with the same id is refused. */
  assert_null (cimg_cgroup_create (f->id, &l, &err));
  assert_non_null (strstr (err.msg, "already has a cgroup"));
  cimg_error_clear (&err);

  cg = cimg_cgroup_open (f->id, &err);
  if (cg == NULL)
    fail_msg ("open: %s", err.msg);
  if (strcmp (cimg_cgroup_mode (), "v2") == 0)
    assert_true (cimg_cgroup_fd (cg) >= 0);
  else
    assert_int_equal (cimg_cgroup_fd (cg), -1);
  pid_t pid = spawn_child (f, 0, false);
  if (cimg_cgroup_add_pid (cg, pid, &err) < 0)
    fail_msg ("add_pid: %s", err.msg);
  struct cimg_cgroup_stats st;
  if (cimg_cgroup_stats (cg, &st, &err) < 0)
    fail_msg ("stats: %s", err.msg);
  assert_int_equal (st.memory_limit, 48 * MIB);
  assert_int_equal (st.pids, 1);
  if (cimg_cgroup_destroy (cg, &err) < 0)
    fail_msg ("destroy: %s", err.msg);
  cimg_cgroup_free (cg);
  assert_all_dirs (f, false);
}

static void
test_invalid_limits (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };

  struct cimg_limits l = { .memory = 64 * MIB, .blkio_weight = 5 };
  assert_null (cimg_cgroup_create (f->id, &l, &err));
  assert_int_equal (err.code, EINVAL);
  cleanup_free char *blkio = v1_layout (f) ? cg_dir (f, "blkio") : cg_dir (f, NULL);
  assert_non_null (strstr (err.msg, blkio));
  assert_non_null (strstr (err.msg, "weight"));
  assert_non_null (strstr (err.msg, "\"5\""));
  cimg_error_clear (&err);
  assert_all_dirs (f, false);

  /* Refused by the kernel itself: a CFS period below 1 ms. */
  struct cimg_limits p = { .cpu_quota = 50, .cpu_period = 100 };
  assert_null (cimg_cgroup_create (f->id, &p, &err));
  assert_int_equal (err.code, EINVAL);
  cleanup_free char *cpu = v1_layout (f) ? cg_dir (f, "cpu") : cg_dir (f, NULL);
  cleanup_free char *file
      = xasprintf ("%s/%s: Invalid argument", cpu, v1_layout (f) ? "cpu.cfs_period_us" : "cpu.max");
  assert_non_null (strstr (err.msg, file));
  assert_true (cimg_str_has_prefix (err.msg, "cgroup: write \"100"));
  cimg_error_clear (&err);
  assert_all_dirs (f, false);

  /* Ids that would leave cimg/. */
  assert_null (cimg_cgroup_create ("../x", NULL, &err));
  assert_int_equal (err.code, EINVAL);
  cimg_error_clear (&err);
  assert_null (cimg_cgroup_open ("..", &err));
  cimg_error_clear (&err);
}

/* The v2 backend, run on this machine's unified mount (which holds no controller, so no
   limits): create, fd, add, cgroup.kill, rmdir. */
static void
test_v2_backend_on_unified (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cleanup_free char *mnt = mount_of (NULL);
  if (mnt == NULL || strcmp (cimg_cgroup_mode (), "v2") == 0)
    skip ();
  f->force = "v2";
  cimg_cgroup_force_mode_for_tests ("v2");
  assert_string_equal (cimg_cgroup_mode (), "v2");
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = create_cg (f->id, NULL);
  assert_true (cimg_cgroup_fd (cg) >= 0);
  struct stat a, b;
  cleanup_free char *d = cg_dir (f, NULL);
  assert_int_equal (fstat (cimg_cgroup_fd (cg), &a), 0);
  assert_int_equal (stat (d, &b), 0);
  assert_true (a.st_ino == b.st_ino && a.st_dev == b.st_dev);

  pid_t pid = spawn_child (f, 0, true);
  if (cimg_cgroup_add_pid (cg, pid, &err) < 0)
    fail_msg ("add_pid: %s", err.msg);
  release_child (f, true);
  cleanup_free char *procs = read_file (d, "cgroup.procs");
  char spid[32];
  snprintf (spid, sizeof spid, "%d", (int)pid);
  assert_true (line_in (procs, spid));
  /* The memory cgroup (v1) is untouched in this mode. */
  cleanup_free char *mem = cg_dir (f, "memory");
  assert_false (mem && exists (mem, NULL));
  struct cimg_cgroup_stats st;
  if (cimg_cgroup_stats (cg, &st, &err) < 0)
    fail_msg ("stats: %s", err.msg);
  assert_true (st.cpu_usage_ns >= 0);

  if (cimg_cgroup_destroy (cg, &err) < 0)
    fail_msg ("destroy: %s", err.msg);
  cimg_cgroup_free (cg);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  f->kids[0] = 0;
  assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
  assert_false (exists (d, NULL));
}

/* The v1 teardown (freezer FROZEN, SIGKILL, THAWED), without the unified cgroup.kill that the
   hybrid backend uses first. */
static void
test_v1_backend_freezer_destroy (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cleanup_free char *freezer = mount_of ("freezer");
  if (freezer == NULL)
    skip ();
  f->force = "v1";
  cimg_cgroup_force_mode_for_tests ("v1");
  assert_string_equal (cimg_cgroup_mode (), "v1");
  cimg_error_t err = { 0 };
  struct cimg_limits l = { .memory = 64 * MIB, .pids_limit = 16 };
  struct cimg_cgroup *cg = create_cg (f->id, &l);
  assert_int_equal (cimg_cgroup_fd (cg), -1);
  pid_t pid = spawn_child (f, 1, true);
  if (cimg_cgroup_add_pid (cg, pid, &err) < 0)
    fail_msg ("add_pid: %s", err.msg);
  release_child (f, true);
  cleanup_free char *unified = mount_of (NULL);
  cleanup_free char *u = unified ? xasprintf ("%s/cimg/%s", unified, f->id) : NULL;
  assert_false (u && exists (u, NULL));
  struct cimg_cgroup_stats st;
  if (cimg_cgroup_stats (cg, &st, &err) < 0)
    fail_msg ("stats: %s", err.msg);
  assert_int_equal (st.pids, 2);

  if (cimg_cgroup_destroy (cg, &err) < 0)
    fail_msg ("destroy: %s", err.msg);
  cimg_cgroup_free (cg);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  f->kids[0] = 0;
  assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
  assert_all_dirs (f, false);
}

/* ---------------------------------------------------------------- devices */

enum
{
  D_NULL_RW, /* c 1:3, in Docker's list */
  D_KMSG_R,  /* c 1:11, not in it */
  D_FUSE_R,  /* c 10:229, allowed "r" by an extra rule */
  D_FUSE_W,  /* … but not "w" */
  D_MKNOD,   /* mknod of any node stays allowed */
  D_COUNT
};

static int
try_open (const char *dir, const char *name, int flags)
{
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  int fd = open (path, flags | O_CLOEXEC | O_NOCTTY);
  if (fd < 0)
    return errno;
  close (fd);
  return 0;
}

static void
device_probes (const char *dir, int *res)
{
  res[D_NULL_RW] = try_open (dir, "null", O_RDWR);
  res[D_KMSG_R] = try_open (dir, "kmsg", O_RDONLY | O_NONBLOCK);
  res[D_FUSE_R] = try_open (dir, "fuse", O_RDONLY);
  res[D_FUSE_W] = try_open (dir, "fuse", O_WRONLY);
  cleanup_free char *made = xasprintf ("%s/made-%d", dir, (int)getpid ());
  res[D_MKNOD] = mknod (made, S_IFCHR | 0600, makedev (1, 11)) < 0 ? errno : 0;
  unlink (made);
}

/* Device nodes as an image layer could ship them, in a directory of their own. */
static char *
make_nodes (void)
{
  char tmpl[] = "/tmp/cimg-test-dev-XXXXXX";
  assert_non_null (mkdtemp (tmpl));
  static const struct
  {
    const char *name;
    unsigned maj, min;
  } nodes[] = { { "null", 1, 3 }, { "kmsg", 1, 11 }, { "fuse", 10, 229 } };
  for (size_t i = 0; i < ARRAY_SIZE (nodes); i++)
    {
      cleanup_free char *path = xasprintf ("%s/%s", tmpl, nodes[i].name);
      assert_int_equal (mknod (path, S_IFCHR | 0600, makedev (nodes[i].maj, nodes[i].min)), 0);
    }
  return xstrdup (tmpl);
}

static void
remove_nodes (char *dir)
{
  static const char *const names[] = { "null", "kmsg", "fuse" };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      cleanup_free char *path = xasprintf ("%s/%s", dir, names[i]);
      unlink (path);
    }
  rmdir (dir);
  free (dir);
}

static void
check_devices (struct fixture *f)
{
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = create_cg (f->id, NULL);
  const struct cimg_device_rule extra[] = { { 'c', 10, 229, "r" } };
  if (cimg_cgroup_set_devices (cg, extra, ARRAY_SIZE (extra), &err) < 0)
    {
      cimg_cgroup_free (cg);
      fail_msg ("set_devices: %s", err.msg);
    }
  char *dir = make_nodes ();
  int bare[D_COUNT];
  device_probes (dir, bare);

  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      char c;
      int res[D_COUNT];
      if (read (f->go[0], &c, 1) != 1)
        _exit (2);
      device_probes (dir, res);
      _exit (write (f->done[1], res, sizeof res) == sizeof res ? 0 : 3);
    }
  f->kids[f->nkids++] = pid;
  int r = cimg_cgroup_add_pid (cg, pid, &err);
  cimg_cgroup_free (cg);
  if (r < 0)
    {
      remove_nodes (dir);
      fail_msg ("add_pid: %s", err.msg);
    }
  assert_int_equal (write (f->go[1], "g", 1), 1);
  int res[D_COUNT];
  ssize_t n = read (f->done[0], res, sizeof res);
  remove_nodes (dir);
  assert_int_equal (n, sizeof res);

  /* Outside the cgroup, as root, every probe passes: the refusals below are the cgroup's. */
  for (int i = 0; i < D_COUNT; i++)
    assert_int_equal (bare[i], 0);
  assert_int_equal (res[D_NULL_RW], 0);
  assert_int_equal (res[D_KMSG_R], EPERM);
  assert_int_equal (res[D_FUSE_R], 0);
  assert_int_equal (res[D_FUSE_W], EPERM);
  assert_int_equal (res[D_MKNOD], 0);
}

static void
test_devices (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cleanup_free char *devices = mount_of ("devices");
  if (devices == NULL && strcmp (cimg_cgroup_mode (), "v2") != 0)
    skip ();
  check_devices (f);
  if (devices != NULL && strcmp (cimg_cgroup_mode (), "v2") != 0)
    {
      cleanup_free char *d = cg_dir (f, "devices");
      cleanup_free char *list = read_file (d, "devices.list");
      assert_non_null (list);
      assert_true (line_in (list, "c 1:3 rwm"));
      assert_true (line_in (list, "c 136:* rwm"));
      assert_true (line_in (list, "c 10:229 r"));
      assert_false (line_in (list, "a *:* rwm"));
    }

  /* The devices directory is part of the container's cgroup: reopened, destroyed with it. */
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = cimg_cgroup_open (f->id, &err);
  assert_non_null (cg);
  if (cimg_cgroup_destroy (cg, &err) < 0)
    fail_msg ("destroy: %s", err.msg);
  cimg_cgroup_free (cg);
  cleanup_free char *d = devices ? cg_dir (f, "devices") : NULL;
  assert_false (d && exists (d, NULL));
}

/* The v2 path (a BPF_CGROUP_DEVICE program), on this machine's unified mount. */
static void
test_devices_bpf (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cleanup_free char *mnt = mount_of (NULL);
  if (mnt == NULL || strcmp (cimg_cgroup_mode (), "v2") == 0)
    skip ();
  f->force = "v2";
  cimg_cgroup_force_mode_for_tests ("v2");
  check_devices (f);
}

static void
test_devices_bad_rule (void **state)
{
  skip_unless_root ();
  struct fixture *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = create_cg (f->id, NULL);
  const struct cimg_device_rule bad[] = { { 'c', 1, 1, "rx" } };
  int r = cimg_cgroup_set_devices (cg, bad, 1, &err);
  cimg_cgroup_free (cg);
  assert_int_equal (r, -1);
  assert_non_null (strstr (err.msg, "\"rx\""));
  cimg_error_clear (&err);
}

/* ---------------------------------------------------------------- leftovers (system check) */

/* The cases of one sweep: a container cgroup left with no process (with an empty child, as a
   container with a cgroup namespace may leave), one its ID is kept for, one with a process,
   a dead build's step with a process, and one made just now. */
enum
{
  SW_OLD,
  SW_KEPT,
  SW_LIVE,
  SW_DEAD,
  SW_YOUNG,
  SW_COUNT
};

/* The sweep's own minimum age in these tests: SW_YOUNG is made this long after the others. */
#define SWEEP_MIN_AGE_S 2

struct sweep_fixture
{
  const char *force; /* the mode the cgroups are made in (NULL: the machine's) */
  char ids[SW_COUNT][64];
  pid_t kids[2];
  int nkids;
};

/* The mount points of every cgroup and cgroup2 mount. */
static char **
cgroup_mounts (void)
{
  FILE *m = fopen ("/proc/self/mountinfo", "re");
  assert_non_null (m);
  char line[4096];
  char **out = NULL;
  while (fgets (line, sizeof line, m))
    {
      char mnt[1024], fstype[64];
      char *sep = strstr (line, " - ");
      if (sep == NULL || sscanf (line, "%*s %*s %*s %*s %1023s", mnt) != 1
          || sscanf (sep + 3, "%63s", fstype) != 1)
        continue;
      if ((strcmp (fstype, "cgroup") == 0 || strcmp (fstype, "cgroup2") == 0)
          && !cimg_strv_contains (out, mnt))
        cimg_strv_append (&out, mnt);
    }
  fclose (m);
  return out;
}

/* The directories <mount>/cimg/<id> that exist, in mountinfo order. */
static char **
dirs_of (const char *id)
{
  cleanup_strv char **mnts = cgroup_mounts ();
  char **out = NULL;
  for (size_t i = 0; mnts && mnts[i]; i++)
    {
      cleanup_free char *d = xasprintf ("%s/cimg/%s", mnts[i], id);
      if (exists (d, NULL))
        cimg_strv_append (&out, d);
    }
  return out;
}

/* rmdir dir and the cgroups below it, deepest first. */
static void
rmdir_tree (const char *dir)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  while (d && (e = readdir (d)))
    if (e->d_type == DT_DIR && e->d_name[0] != '.')
      {
        cleanup_free char *sub = xasprintf ("%s/%s", dir, e->d_name);
        rmdir_tree (sub);
      }
  if (d)
    closedir (d);
  if (rmdir (dir) < 0 && errno != ENOENT)
    fprintf (stderr, "teardown: rmdir %s: %s\n", dir, strerror (errno));
}

static int
sweep_setup (void **state)
{
  static const char *const names[SW_COUNT] = { "old", "kept", "live", "dead", "young" };
  struct sweep_fixture *f = xzalloc (sizeof *f);
  for (int i = 0; i < SW_COUNT; i++)
    snprintf (f->ids[i], sizeof f->ids[i], "cimgtest-%d-%d-%s", (int)getpid (), seq, names[i]);
  seq++;
  *state = f;
  return 0;
}

static int
sweep_teardown (void **state)
{
  struct sweep_fixture *f = *state;
  for (int i = 0; i < f->nkids; i++)
    {
      kill (f->kids[i], SIGKILL);
      waitpid (f->kids[i], NULL, 0);
    }
  int r = 0;
  for (int i = 0; i < SW_COUNT; i++)
    {
      /* destroy removes the container's own directories, not a child cgroup (the old one's), nor
         what it cannot open (a sweep that stopped half-way): those go by hand. */
      cleanup_strv char **dirs = dirs_of (f->ids[i]);
      for (size_t k = 0; dirs && dirs[k]; k++)
        {
          cleanup_free char *sub = xasprintf ("%s/sub", dirs[k]);
          rmdir_tree (sub);
        }
      test_cgroup_destroy (f->ids[i], f->force);
      cleanup_strv char **left = dirs_of (f->ids[i]);
      for (size_t k = 0; left && left[k]; k++)
        rmdir_tree (left[k]);
      cleanup_strv char **still = dirs_of (f->ids[i]);
      if (still != NULL)
        r = -1;
    }
  cimg_cgroup_force_mode_for_tests (NULL);
  free (f);
  return r;
}

/* A new cgroup id; with_process, with a child that sleeps in it until killed. */
static void
make_cgroup (struct sweep_fixture *f, const char *id, bool with_process)
{
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = create_cg (id, NULL);
  if (with_process)
    {
      pid_t pid = fork ();
      assert_true (pid >= 0);
      if (pid == 0)
        for (;;)
          pause ();
      f->kids[f->nkids++] = pid;
      if (cimg_cgroup_add_pid (cg, pid, &err) < 0)
        fail_msg ("add_pid %s: %s", id, err.msg);
    }
  cimg_cgroup_free (cg);
}

static const struct cimg_cgroup_leftover *
find_leftover (const struct cimg_cgroup_leftover *v, size_t n, const char *id)
{
  for (size_t i = 0; i < n; i++)
    if (strcmp (v[i].id, id) == 0)
      return &v[i];
  return NULL;
}

/* The same directories, in any order. */
static void
assert_same_dirs (char *const *got, char *const *want, const char *id)
{
  bool same = cimg_strv_len (got) == cimg_strv_len (want);
  for (size_t i = 0; same && want && want[i]; i++)
    same = cimg_strv_contains (got, want[i]);
  if (!same)
    {
      for (size_t i = 0; got && got[i]; i++)
        fprintf (stderr, "  reported: %s\n", got[i]);
      for (size_t i = 0; want && want[i]; i++)
        fprintf (stderr, "  expected: %s\n", want[i]);
      fail_msg ("cgroup %s: the sweep's directories are not the ones that exist", id);
    }
}

/* Every cimg/<id> on the machine that is not this test's: other tests and stores run beside
   this one, and the sweep must touch none of theirs (a young empty one may be a container
   between its mkdir and its first process). The sweep itself lists the places it looks in
   (including the v2 fallback parent); live ones are added from the mounts. */
static char **
foreign_ids (const struct sweep_fixture *f)
{
  char **keep = NULL;
  cimg_error_t err = { 0 };
  struct cimg_cgroup_leftover *v = NULL;
  size_t n = 0;
  if (cimg_cgroup_sweep (NULL, NULL, 0, false, &v, &n, &err) < 0)
    fail_msg ("sweep: %s", err.msg);
  for (size_t i = 0; i < n; i++)
    cimg_strv_append (&keep, v[i].id);
  cimg_cgroup_leftovers_free (v, n);
  cleanup_strv char **mnts = cgroup_mounts ();
  for (size_t i = 0; mnts && mnts[i]; i++)
    {
      cleanup_free char *parent = xasprintf ("%s/cimg", mnts[i]);
      DIR *d = opendir (parent);
      struct dirent *e;
      while (d && (e = readdir (d)))
        if (e->d_type == DT_DIR && e->d_name[0] != '.' && !cimg_strv_contains (keep, e->d_name))
          cimg_strv_append (&keep, e->d_name);
      if (d)
        closedir (d);
    }
  char **out = NULL;
  for (size_t i = 0; keep && keep[i]; i++)
    {
      bool mine = false;
      for (int k = 0; k < SW_COUNT; k++)
        mine |= strcmp (keep[i], f->ids[k]) == 0;
      if (!mine)
        cimg_strv_append (&out, keep[i]);
    }
  cimg_strv_free (keep);
  return out;
}

/* cimg_cgroup_sweep over cgroups made by the backend of mode: the leftovers are found in every
   hierarchy they exist in (and only there), reported, and with remove deleted; a dead build's
   step has its process killed first; a live, a young and a kept cgroup are not reported and
   stay. */
static void
sweep_case (struct sweep_fixture *f, const char *mode)
{
  f->force = mode;
  cimg_cgroup_force_mode_for_tests (mode);
  if (mode != NULL && strcmp (cimg_cgroup_mode (), mode) != 0)
    skip ();
  const char *old = f->ids[SW_OLD], *dead = f->ids[SW_DEAD];
  make_cgroup (f, old, false);
  make_cgroup (f, f->ids[SW_KEPT], false);
  make_cgroup (f, f->ids[SW_LIVE], true);
  make_cgroup (f, dead, true);
  pid_t dead_pid = f->kids[1];

  cleanup_strv char **old_dirs = dirs_of (old);
  cleanup_strv char **dead_dirs = dirs_of (dead);
  assert_non_null (old_dirs);
  /* The directories are the mode's: the unified one alone in v2, none of it in v1. */
  cleanup_free char *unified = mount_of (NULL);
  cleanup_free char *unified_old = unified ? xasprintf ("%s/cimg/%s", unified, old) : NULL;
  cleanup_free char *memory = mount_of ("memory");
  cleanup_free char *memory_old = memory ? xasprintf ("%s/cimg/%s", memory, old) : NULL;
  if (strcmp (cimg_cgroup_mode (), "v2") == 0)
    assert_int_equal (cimg_strv_len (old_dirs), 1);
  if (strcmp (cimg_cgroup_mode (), "v1") != 0)
    assert_true (cimg_strv_contains (old_dirs, unified_old));
  else
    assert_false (unified_old && cimg_strv_contains (old_dirs, unified_old));
  if (strcmp (cimg_cgroup_mode (), "v2") != 0)
    assert_true (cimg_strv_contains (old_dirs, memory_old));
  for (size_t k = 0; old_dirs[k]; k++)
    {
      cleanup_free char *sub = xasprintf ("%s/sub", old_dirs[k]);
      if (mkdir (sub, 0755) < 0)
        fail_msg ("mkdir %s: %s", sub, strerror (errno));
    }

  sleep (SWEEP_MIN_AGE_S);
  make_cgroup (f, f->ids[SW_YOUNG], false);
  cleanup_strv char **keep = foreign_ids (f);
  cimg_strv_append (&keep, f->ids[SW_KEPT]);
  char *const dead_ids[] = { (char *)dead, NULL };

  /* A report changes nothing. */
  cimg_error_t err = { 0 };
  struct cimg_cgroup_leftover *v = NULL;
  size_t n = 0;
  if (cimg_cgroup_sweep (keep, dead_ids, SWEEP_MIN_AGE_S, false, &v, &n, &err) < 0)
    fail_msg ("sweep: %s", err.msg);
  const struct cimg_cgroup_leftover *l = find_leftover (v, n, old);
  if (l == NULL)
    {
      for (size_t k = 0; old_dirs[k]; k++)
        {
          struct stat st;
          if (stat (old_dirs[k], &st) < 0)
            fprintf (stderr, "  %s: %s\n", old_dirs[k], strerror (errno));
          else
            fprintf (stderr, "  %s: mtime %lld, now %lld\n", old_dirs[k], (long long)st.st_mtime,
                     (long long)time (NULL));
        }
      fail_msg ("the old empty cgroup %s is not reported", old);
    }
  assert_same_dirs (l->dirs, old_dirs, old);
  assert_false (l->dead_build || l->live || l->killed || l->removed);
  assert_true (l->created <= (int64_t)time (NULL) - SWEEP_MIN_AGE_S);
  l = find_leftover (v, n, dead);
  if (l == NULL)
    fail_msg ("the dead step %s is not reported", dead);
  assert_same_dirs (l->dirs, dead_dirs, dead);
  assert_true (l->dead_build && l->live);
  assert_false (l->killed || l->removed);
  for (int i = SW_KEPT; i < SW_COUNT; i++)
    if (i != SW_DEAD && find_leftover (v, n, f->ids[i]))
      fail_msg ("%s is reported", f->ids[i]);
  cimg_cgroup_leftovers_free (v, n);
  for (int i = 0; i < SW_COUNT; i++)
    {
      cleanup_strv char **d = dirs_of (f->ids[i]);
      if (d == NULL)
        fail_msg ("the report removed %s", f->ids[i]);
    }
  assert_int_equal (kill (dead_pid, 0), 0);

  /* --repair */
  if (cimg_cgroup_sweep (keep, dead_ids, SWEEP_MIN_AGE_S, true, &v, &n, &err) < 0)
    fail_msg ("sweep --repair: %s", err.msg);
  l = find_leftover (v, n, old);
  assert_non_null (l);
  assert_true (l->removed);
  assert_false (l->killed || l->live);
  l = find_leftover (v, n, dead);
  assert_non_null (l);
  assert_true (l->dead_build && l->killed && l->removed);
  assert_false (l->live);
  for (int i = SW_KEPT; i < SW_COUNT; i++)
    if (i != SW_DEAD && find_leftover (v, n, f->ids[i]))
      fail_msg ("%s is reported", f->ids[i]);
  cimg_cgroup_leftovers_free (v, n);
  for (size_t k = 0; old_dirs[k]; k++)
    if (exists (old_dirs[k], NULL))
      fail_msg ("%s is still there", old_dirs[k]);
  for (size_t k = 0; dead_dirs[k]; k++)
    if (exists (dead_dirs[k], NULL))
      fail_msg ("%s is still there", dead_dirs[k]);
  int status;
  assert_int_equal (waitpid (dead_pid, &status, 0), dead_pid);
  f->nkids = 1; /* reaped: the teardown leaves it alone */
  assert_true (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);
  for (int i = SW_KEPT; i < SW_COUNT; i++)
    if (i != SW_DEAD)
      {
        cleanup_strv char **d = dirs_of (f->ids[i]);
        if (d == NULL)
          fail_msg ("the sweep removed %s", f->ids[i]);
      }
  assert_int_equal (kill (f->kids[0], 0), 0);
}

static void
test_sweep_v2 (void **state)
{
  skip_unless_root ();
  sweep_case (*state, "v2");
}

static void
test_sweep_v1 (void **state)
{
  skip_unless_root ();
  sweep_case (*state, "v1");
}

/* The machine's own layout: hybrid here, where the leftover is in v1 and unified at once. */
static void
test_sweep_machine (void **state)
{
  skip_unless_root ();
  sweep_case (*state, NULL);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_mode),
    cmocka_unit_test_setup_teardown (test_limits_readback, setup, teardown),
    cmocka_unit_test_setup_teardown (test_more_limits_readback, setup, teardown),
    cmocka_unit_test_setup_teardown (test_add_pid_and_stats, setup, teardown),
    cmocka_unit_test_setup_teardown (test_join_self, setup, teardown),
    cmocka_unit_test_setup_teardown (test_join_kept_dirs, setup, teardown),
    cmocka_unit_test_setup_teardown (test_memory_usage_grows, setup, teardown),
    cmocka_unit_test_setup_teardown (test_oom_kill, setup, teardown),
    cmocka_unit_test_setup_teardown (test_destroy_kills_everything, setup, teardown),
    cmocka_unit_test_setup_teardown (test_reopen, setup, teardown),
    cmocka_unit_test_setup_teardown (test_invalid_limits, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v2_backend_on_unified, setup, teardown),
    cmocka_unit_test_setup_teardown (test_v1_backend_freezer_destroy, setup, teardown),
    cmocka_unit_test_setup_teardown (test_devices, setup, teardown),
    cmocka_unit_test_setup_teardown (test_devices_bpf, setup, teardown),
    cmocka_unit_test_setup_teardown (test_devices_bad_rule, setup, teardown),
    cmocka_unit_test_setup_teardown (test_sweep_v2, sweep_setup, sweep_teardown),
    cmocka_unit_test_setup_teardown (test_sweep_v1, sweep_setup, sweep_teardown),
    cmocka_unit_test_setup_teardown (test_sweep_machine, sweep_setup, sweep_teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
