/* Unit tests of runtime/caps.c and runtime/seccomp.c. Everything that changes the process's
   credentials or filters runs in a forked child, which reports what it saw through a pipe; the
   assertions are made in the parent. Each seccomp probe also runs once without the filter, so
   that a probe that fails for another reason (a missing kernel feature) shows. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/sched.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "runtime/confine.h"
#include "runtime/confine-internal.h"

#define BIT(c) (UINT64_C (1) << (c))

/* ---------------------------------------------------------------- caps: resolve */

static uint64_t
mask_of (char **caps)
{
  uint64_t m;
  cimg_error_t err = { 0 };
  if (cimg_caps_to_mask (caps, &m, &err) < 0)
    fail_msg ("%s", err.msg);
  return m;
}

static const uint64_t default_mask
    = BIT (CAP_CHOWN) | BIT (CAP_DAC_OVERRIDE) | BIT (CAP_FSETID) | BIT (CAP_FOWNER)
      | BIT (CAP_MKNOD) | BIT (CAP_NET_RAW) | BIT (CAP_SETGID) | BIT (CAP_SETUID)
      | BIT (CAP_SETFCAP) | BIT (CAP_SETPCAP) | BIT (CAP_NET_BIND_SERVICE) | BIT (CAP_SYS_CHROOT)
      | BIT (CAP_KILL) | BIT (CAP_AUDIT_WRITE);

static void
test_caps_default (void **state)
{
  (void)state;
  cleanup_strv char **d = cimg_caps_default ();
  assert_int_equal (cimg_strv_len (d), 14);
  assert_true (cimg_strv_contains (d, "CAP_AUDIT_WRITE"));
  assert_false (cimg_strv_contains (d, "CAP_SYS_ADMIN"));
  assert_true (mask_of (d) == default_mask);
  cimg_error_t err = { 0 };
  cleanup_strv char **r = cimg_caps_resolve (NULL, NULL, &err);
  assert_non_null (r);
  assert_int_equal (cimg_strv_len (r), 14);
  assert_true (mask_of (r) == default_mask);
}

static char **
resolve (const char *add, const char *drop, cimg_error_t *err)
{
  cleanup_strv char **a = NULL, **d = NULL;
  /* Comma-separated lists, for brevity in the table below. */
  const char *lists[2] = { add, drop };
  char ***outs[2] = { &a, &d };
  for (int i = 0; i < 2; i++)
    {
      if (lists[i] == NULL)
        continue;
      cleanup_free char *copy = xstrdup (lists[i]);
      char *save = NULL;
      for (char *t = strtok_r (copy, ",", &save); t; t = strtok_r (NULL, ",", &save))
        cimg_strv_append (outs[i], t);
    }
  return cimg_caps_resolve (a, d, err);
}

static void
test_caps_resolve (void **state)
{
  (void)state;
  const uint64_t all = (UINT64_C (1) << cimg_cap_count ()) - 1;
  assert_int_equal (cimg_cap_count (), CAP_LAST_CAP + 1);
  static const struct
  {
    const char *add, *drop;
    int64_t count; /* -1: do not check the count */
  } cases[] = {
    { "NET_ADMIN", NULL, 15 },
    { "cap_net_admin", NULL, 15 },
    { "Sys_Admin,CAP_SYS_PTRACE", NULL, 16 },
    { NULL, "CHOWN", 13 },
    { NULL, "chown,cap_kill", 12 },
    { "CAP_CHOWN", NULL, 14 },        /* already there */
    { "NET_ADMIN", "NET_ADMIN", 15 }, /* as Docker: the add wins outside ALL */
    { "ALL", NULL, CAP_LAST_CAP + 1 },
    { "all", "MKNOD,sys_admin", CAP_LAST_CAP - 1 },
    { "NET_RAW", "ALL", 1 },
    { NULL, "ALL", 0 },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cimg_error_t err = { 0 };
      cleanup_strv char **r = resolve (cases[i].add, cases[i].drop, &err);
      if (r == NULL)
        fail_msg ("case %zu: %s", i, err.msg);
      if ((int64_t)cimg_strv_len (r) != cases[i].count)
        fail_msg ("case %zu (add %s, drop %s): %zu capabilities, expected %lld", i,
                  cases[i].add ? cases[i].add : "-", cases[i].drop ? cases[i].drop : "-",
                  cimg_strv_len (r), (long long)cases[i].count);
      for (size_t j = 0; r[j]; j++)
        assert_true (cimg_str_has_prefix (r[j], "CAP_"));
    }

  cimg_error_t err = { 0 };
  cleanup_strv char **a = resolve ("NET_ADMIN", "chown", &err);
  assert_true (mask_of (a) == ((default_mask & ~BIT (CAP_CHOWN)) | BIT (CAP_NET_ADMIN)));
  cleanup_strv char **b = resolve ("ALL", "MKNOD,sys_admin", &err);
  assert_true (mask_of (b) == (all & ~BIT (CAP_MKNOD) & ~BIT (CAP_SYS_ADMIN)));
  cleanup_strv char **c = resolve ("NET_RAW", "ALL", &err);
  assert_string_equal (c[0], "CAP_NET_RAW");
  assert_null (c[1]);

  assert_null (resolve ("CAP_FOO", NULL, &err));
  assert_int_equal (err.code, EINVAL);
  assert_non_null (strstr (err.msg, "CAP_FOO"));
  cimg_error_clear (&err);
  assert_null (resolve (NULL, "chown,bogus", &err));
  assert_non_null (strstr (err.msg, "bogus"));
  cimg_error_clear (&err);
  assert_null (resolve ("CAP_", NULL, &err));
  cimg_error_clear (&err);
}

/* ---------------------------------------------------------------- caps: apply */

struct capsets
{
  uint64_t eff, prm, inh, bnd, amb;
  int rc;
  char msg[256];
};

static uint64_t
status_field (const char *status, const char *key)
{
  const char *p = strstr (status, key);
  if (p == NULL)
    return ~UINT64_C (0);
  return strtoull (p + strlen (key), NULL, 16);
}

static void
read_capsets (struct capsets *c)
{
  char buf[8192] = "";
  int fd = open ("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    {
      ssize_t n = read (fd, buf, sizeof buf - 1);
      buf[n > 0 ? n : 0] = '\0';
      close (fd);
    }
  c->eff = status_field (buf, "CapEff:");
  c->prm = status_field (buf, "CapPrm:");
  c->inh = status_field (buf, "CapInh:");
  c->bnd = status_field (buf, "CapBnd:");
  c->amb = status_field (buf, "CapAmb:");
}

/* Apply keep in a child (after switching to uid/gid 65534 when as_nobody), report the sets. */
static struct capsets
apply_in_child (char **keep, bool as_nobody)
{
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      struct capsets c = { 0 };
      cimg_error_t err = { 0 };
      c.rc = 0;
      if (as_nobody
          && (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0 || setgroups (0, NULL) < 0
              || setgid (65534) < 0 || setuid (65534) < 0))
        {
          c.rc = -2;
          snprintf (c.msg, sizeof c.msg, "setuid: %s", strerror (errno));
        }
      else if (cimg_caps_apply (keep, &err) < 0)
        {
          c.rc = -1;
          snprintf (c.msg, sizeof c.msg, "%s", err.msg);
        }
      read_capsets (&c);
      _exit (write (p[1], &c, sizeof c) == sizeof c ? 0 : 1);
    }
  close (p[1]);
  struct capsets c;
  memset (&c, 0, sizeof c);
  ssize_t n = read (p[0], &c, sizeof c);
  close (p[0]);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  assert_int_equal (n, sizeof c);
  return c;
}

static void
test_caps_apply (void **state)
{
  (void)state;
  if (geteuid () != 0)
    skip ();
  struct capsets self;
  read_capsets (&self);

  struct
  {
    const char *add, *drop;
    bool nobody;
  } cases[] = {
    { NULL, NULL, false },      { NULL, NULL, true },   { "NET_ADMIN,SYS_ADMIN", "CHOWN", false },
    { "NET_RAW", "ALL", true }, { "ALL", NULL, false }, { NULL, "ALL", false },
  };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cimg_error_t err = { 0 };
      cleanup_strv char **keep = resolve (cases[i].add, cases[i].drop, &err);
      assert_non_null (keep);
      /* What cimg itself does not hold cannot be given (this VM lacks CAP_SYS_RESOURCE). */
      uint64_t want = mask_of (keep) & self.prm;
      struct capsets c = apply_in_child (keep, cases[i].nobody);
      if (c.rc != 0)
        fail_msg ("case %zu: %s", i, c.msg);
      if (c.eff != want || c.prm != want || c.bnd != want || c.inh != 0 || c.amb != 0)
        fail_msg ("case %zu: eff %llx prm %llx bnd %llx inh %llx amb %llx, want %llx", i,
                  (unsigned long long)c.eff, (unsigned long long)c.prm, (unsigned long long)c.bnd,
                  (unsigned long long)c.inh, (unsigned long long)c.amb, (unsigned long long)want);
    }
  /* The default set must really be the 14, not something that merely compares equal. */
  cleanup_strv char **d = cimg_caps_default ();
  struct capsets c = apply_in_child (d, false);
  assert_true (c.eff == (default_mask & self.prm));
  assert_true (c.bnd == 0x00000000a80425fbULL);

  /* An unknown name is refused before anything changes. */
  char *bad[] = { "CAP_CHOWN", "CAP_NOPE", NULL };
  struct capsets e = apply_in_child (bad, false);
  assert_int_equal (e.rc, -1);
  assert_non_null (strstr (e.msg, "CAP_NOPE"));
  assert_true (e.bnd == self.bnd);
}

/* ---------------------------------------------------------------- seccomp */

enum probe
{
  P_GETPID,
  P_UNSHARE_USER,
  P_UNSHARE_UTS,
  P_MOUNT,
  P_KEYCTL,
  P_ADD_KEY,
  P_REBOOT,
  P_KEXEC,
  P_BPF,
  P_CLONE_NEWNS,
  P_FORK,
  P_CLONE3,
  P_VSOCK,
  P_PERSONALITY_QUERY,
  P_PERSONALITY_BAD,
  P_NEWER_SYSCALL,
  P_I386_GETPID,
  P_I386_UNSHARE,
  P_COUNT
};

static const char *const probe_names[] = {
  "getpid",
  "unshare(NEWUSER)",
  "unshare(NEWUTS)",
  "mount",
  "keyctl",
  "add_key",
  "reboot",
  "kexec_load",
  "bpf",
  "clone(NEWNS)",
  "fork",
  "clone3",
  "socket(VSOCK)",
  "personality(query)",
  "personality(ADDR_NO_RANDOMIZE)",
  "cachestat",
  "int80 getpid",
  "int80 unshare",
};

/* 0 on success, else errno. */
static int
result (long r)
{
  return r < 0 ? errno : 0;
}

/* A raw clone/clone3 that made a child: the child leaves at once. */
static int
reap (long r)
{
  if (r == 0)
    _exit (0);
  if (r > 0)
    {
      waitpid ((pid_t)r, NULL, __WALL);
      return 0;
    }
  return errno;
}

#if defined(__x86_64__)
/* A syscall through the i386 entry point (int $0x80): the 32-bit table, numbers and ABI. */
static long
int80 (long nr, long a)
{
  long ret;
  __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a) : "memory", "r8", "r9", "r10", "r11");
  if (ret < 0 && ret > -4096)
    {
      errno = (int)-ret;
      return -1;
    }
  return ret;
}
#endif

static void
run_probes (int *res)
{
  res[P_GETPID] = getpid () > 0 ? 0 : errno;
  /* The namespace probes run in throw-away children: success would change this process. */
  int r[4];
  static const int flags[2] = { CLONE_NEWUSER, CLONE_NEWUTS };
  for (int i = 0; i < 2; i++)
    {
      int p[2];
      if (pipe (p) < 0)
        _exit (90);
      pid_t pid = fork ();
      if (pid == 0)
        {
          int v = result (unshare (flags[i]));
          _exit (write (p[1], &v, sizeof v) == sizeof v ? 0 : 1);
        }
      close (p[1]);
      if (pid < 0 || read (p[0], &r[i], sizeof r[i]) != sizeof r[i])
        r[i] = -1;
      close (p[0]);
      if (pid > 0)
        waitpid (pid, NULL, 0);
    }
  res[P_UNSHARE_USER] = r[0];
  res[P_UNSHARE_UTS] = r[1];
  /* Arguments that make each call fail harmlessly where the filter lets it through. */
  res[P_MOUNT] = result (mount ("none", "/nonexistent-cimg-test", "tmpfs", 0, NULL));
  res[P_KEYCTL] = result (syscall (SYS_keyctl, 0x7fffffff, 0, 0, 0, 0));
  res[P_ADD_KEY] = result (syscall (SYS_add_key, "user", NULL, NULL, 0, 0));
  res[P_REBOOT] = result (syscall (SYS_reboot, 0, 0, 0, NULL)); /* bad magic: EINVAL */
  res[P_KEXEC] = result (syscall (SYS_kexec_load, 0, 0, NULL, 0xdead0000UL));
  res[P_BPF] = result (syscall (SYS_bpf, 0x7fff, NULL, 0));
  res[P_CLONE_NEWNS]
      = reap (syscall (SYS_clone, (unsigned long)(CLONE_NEWNS | SIGCHLD), NULL, NULL, NULL, 0));
  pid_t pid = fork ();
  if (pid == 0)
    _exit (7);
  int status = 0;
  res[P_FORK]
      = pid < 0 ? errno
        : waitpid (pid, &status, 0) == pid && WIFEXITED (status) && WEXITSTATUS (status) == 7 ? 0
                                                                                              : -1;
  struct clone_args ca;
  memset (&ca, 0, sizeof ca);
  ca.exit_signal = SIGCHLD;
  res[P_CLONE3] = reap (syscall (SYS_clone3, &ca, sizeof ca));
  int s = socket (40 /* AF_VSOCK */, SOCK_STREAM | SOCK_CLOEXEC, 0);
  res[P_VSOCK] = result (s);
  if (s >= 0)
    close (s);
  res[P_PERSONALITY_QUERY] = result (personality (0xffffffff));
  int cur = personality (0xffffffff);
  res[P_PERSONALITY_BAD] = result (personality (ADDR_NO_RANDOMIZE));
  if (res[P_PERSONALITY_BAD] == 0)
    personality ((unsigned long)cur);
  res[P_NEWER_SYSCALL] = result (syscall (451 /* cachestat, Linux 6.5 */, -1, NULL, NULL, 0));
#if defined(__x86_64__)
  res[P_I386_GETPID] = result (int80 (20, 0));
  /* unshare(0): changes nothing when allowed. */
  res[P_I386_UNSHARE] = result (int80 (310, 0));
#else
  res[P_I386_GETPID] = res[P_I386_UNSHARE] = -1;
#endif
}

struct report
{
  int setup; /* 0, or -1 with msg */
  char msg[256];
  int res[P_COUNT];
};

/* The profile for caps as the probe children load it: compiled in the child by
   cimg_seccomp_apply_default (prog NULL), or prepared by the test (the parent, as cimg before
   clone) and only loaded in the child. */
static int
apply (const struct cimg_seccomp_prog *prog, char **caps, cimg_error_t *err)
{
  return prog ? cimg_seccomp_load (prog, err) : cimg_seccomp_apply_default (caps, err);
}

/* In a child: optionally NO_NEW_PRIVS, optionally cimg_caps_apply(drop_to), optionally the
   profile with caps or prog (before the caps are dropped when seccomp_first), then the probes. */
static struct report
probe_child_full (bool nnp, char **drop_to, bool filter, char **caps, bool seccomp_first,
                  const struct cimg_seccomp_prog *prog)
{
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      struct report rep;
      memset (&rep, 0, sizeof rep);
      cimg_error_t err = { 0 };
      if (nnp && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        {
          rep.setup = -1;
          snprintf (rep.msg, sizeof rep.msg, "no_new_privs: %s", strerror (errno));
        }
      else if (filter && seccomp_first && apply (prog, caps, &err) < 0)
        {
          rep.setup = -1;
          snprintf (rep.msg, sizeof rep.msg, "%s", err.msg);
        }
      else if (drop_to && cimg_caps_apply (drop_to, &err) < 0)
        {
          rep.setup = -1;
          snprintf (rep.msg, sizeof rep.msg, "%s", err.msg);
        }
      else if (filter && !seccomp_first && apply (prog, caps, &err) < 0)
        {
          rep.setup = -1;
          snprintf (rep.msg, sizeof rep.msg, "%s", err.msg);
        }
      else
        run_probes (rep.res);
      _exit (write (p[1], &rep, sizeof rep) == sizeof rep ? 0 : 1);
    }
  close (p[1]);
  struct report rep;
  memset (&rep, 0, sizeof rep);
  ssize_t n = read (p[0], &rep, sizeof rep);
  close (p[0]);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    fail_msg ("probe child: status %#x", status);
  assert_int_equal (n, sizeof rep);
  return rep;
}

static struct report
probe_child_ordered (bool nnp, char **drop_to, bool filter, char **caps, bool seccomp_first)
{
  return probe_child_full (nnp, drop_to, filter, caps, seccomp_first, NULL);
}

static struct report
probe_child (bool nnp, char **drop_to, bool filter, char **caps)
{
  return probe_child_ordered (nnp, drop_to, filter, caps, false);
}

/* Under NO_NEW_PRIVS, the prepared program. */
static struct report
probe_prog (const struct cimg_seccomp_prog *prog)
{
  struct report r = probe_child_full (true, NULL, true, NULL, false, prog);
  if (r.setup != 0)
    fail_msg ("%s", r.msg);
  return r;
}

/* Every probe gave the same result under both filters. */
static void
expect_same (const struct report *want, const struct report *got, const char *what)
{
  for (int i = 0; i < P_COUNT; i++)
    if (want->res[i] != got->res[i])
      fail_msg ("%s: %s: got %d, the direct load gave %d", what, probe_names[i], got->res[i],
                want->res[i]);
}

static void
expect (const struct report *rep, enum probe p, int want)
{
  if (rep->res[p] != want)
    fail_msg ("%s: got %s (%d), expected %s", probe_names[p],
              rep->res[p] ? strerror (rep->res[p]) : "success", rep->res[p],
              want ? strerror (want) : "success");
}

static void
test_seccomp_default (void **state)
{
  (void)state;
  if (geteuid () != 0)
    skip ();
  /* Without the filter, as root: the probes fail (or not) for their own reasons, never with
     the EPERM / ENOSYS the filter is expected to give — else the filtered run proves nothing. */
  struct report bare = probe_child (false, NULL, false, NULL);
  assert_int_equal (bare.setup, 0);
  expect (&bare, P_GETPID, 0);
  expect (&bare, P_UNSHARE_USER, 0);
  expect (&bare, P_UNSHARE_UTS, 0);
  expect (&bare, P_FORK, 0);
  expect (&bare, P_CLONE_NEWNS, 0);
  expect (&bare, P_CLONE3, 0);
  expect (&bare, P_REBOOT, EINVAL);
  expect (&bare, P_BPF, EINVAL);
  expect (&bare, P_PERSONALITY_BAD, 0);
  assert_int_not_equal (bare.res[P_MOUNT], EPERM);
  assert_int_not_equal (bare.res[P_KEYCTL], EPERM);
  assert_int_not_equal (bare.res[P_ADD_KEY], EPERM);
  assert_int_not_equal (bare.res[P_NEWER_SYSCALL], ENOSYS);

  cleanup_strv char **caps = cimg_caps_default ();
  struct report f = probe_child (true, NULL, true, caps);
  if (f.setup != 0)
    fail_msg ("%s", f.msg);
  expect (&f, P_GETPID, 0);
  expect (&f, P_UNSHARE_USER, EPERM);
  expect (&f, P_UNSHARE_UTS, EPERM);
  expect (&f, P_MOUNT, EPERM);
  expect (&f, P_KEYCTL, EPERM);
  expect (&f, P_ADD_KEY, EPERM);
  expect (&f, P_REBOOT, EPERM);
  expect (&f, P_KEXEC, EPERM);
  expect (&f, P_BPF, EPERM);
  expect (&f, P_CLONE_NEWNS, EPERM);
  expect (&f, P_FORK, 0);
  expect (&f, P_CLONE3, ENOSYS);
  expect (&f, P_VSOCK, EPERM);
  expect (&f, P_PERSONALITY_QUERY, 0);
  expect (&f, P_PERSONALITY_BAD, EPERM);
  /* Newer than the profile: "not implemented", so that libc falls back. */
  expect (&f, P_NEWER_SYSCALL, ENOSYS);
#if defined(__x86_64__)
  /* The i386 entry point is filtered too (where the kernel has it at all). */
  if (bare.res[P_I386_GETPID] == 0)
    {
      expect (&bare, P_I386_UNSHARE, 0);
      expect (&f, P_I386_GETPID, 0);
      expect (&f, P_I386_UNSHARE, EPERM);
    }
#endif

  /* Prepared in this process (as cimg does before clone), loaded in the child: the same
     answer to every probe, without a cache and from one. */
  cimg_error_t err = { 0 };
  cleanup_seccomp_prog struct cimg_seccomp_prog *nocache = NULL, *miss = NULL, *hit = NULL;
  assert_int_equal (cimg_seccomp_prepare (-1, caps, &nocache, &err), 0);
  struct report g = probe_prog (nocache);
  expect_same (&f, &g, "prepared without a cache");
  char dir[] = "/tmp/cimg-test-seccomp.XXXXXX";
  assert_non_null (mkdtemp (dir));
  int dfd = open (dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (dfd >= 0);
  int r1 = cimg_seccomp_prepare (dfd, caps, &miss, &err);
  int r2 = cimg_seccomp_prepare (dfd, caps, &hit, &err);
  close (dfd);
  struct report m = r1 == 0 ? probe_prog (miss) : f;
  struct report h = r2 == 0 ? probe_prog (hit) : f;
  cimg_rm_rf_at (AT_FDCWD, dir, NULL);
  assert_int_equal (r1, 0);
  assert_int_equal (r2, 0);
  expect_same (&f, &m, "compiled into the cache");
  expect_same (&f, &h, "loaded from the cache");
}

static void
test_seccomp_with_sys_admin (void **state)
{
  (void)state;
  if (geteuid () != 0)
    skip ();
  cimg_error_t err = { 0 };
  cleanup_strv char **caps = resolve ("SYS_ADMIN", NULL, &err);
  struct report f = probe_child (true, NULL, true, caps);
  if (f.setup != 0)
    fail_msg ("%s", f.msg);
  expect (&f, P_UNSHARE_UTS, 0);
  expect (&f, P_CLONE_NEWNS, 0);
  expect (&f, P_CLONE3, 0);
  expect (&f, P_KEYCTL, EPERM); /* no capability opens keyctl */
  expect (&f, P_REBOOT, EPERM); /* CAP_SYS_BOOT is not in the set */
  cimg_strv_append (&caps, "CAP_SYS_BOOT");
  struct report g = probe_child (true, NULL, true, caps);
  if (g.setup != 0)
    fail_msg ("%s", g.msg);
  expect (&g, P_REBOOT, EINVAL); /* reached the kernel, which refused the bad magic */

  cleanup_seccomp_prog struct cimg_seccomp_prog *prog = NULL;
  assert_int_equal (cimg_seccomp_prepare (-1, caps, &prog, &err), 0);
  struct report h = probe_prog (prog);
  expect_same (&g, &h, "prepared with CAP_SYS_ADMIN and CAP_SYS_BOOT");
}

/* As the spawner runs it: capabilities dropped first, then the profile under NO_NEW_PRIVS; and
   without NO_NEW_PRIVS once CAP_SYS_ADMIN is gone, the kernel refuses the filter. */
static void
test_seccomp_after_caps (void **state)
{
  (void)state;
  if (geteuid () != 0)
    skip ();
  cleanup_strv char **caps = cimg_caps_default ();
  struct report ok = probe_child (true, caps, true, caps);
  if (ok.setup != 0)
    fail_msg ("%s", ok.msg);
  expect (&ok, P_GETPID, 0);
  expect (&ok, P_FORK, 0);
  expect (&ok, P_MOUNT, EPERM);

  /* Without no-new-privileges, as the spawner does by default: the profile first, while
     CAP_SYS_ADMIN is held, then the capabilities, which the profile must let through. */
  struct report early = probe_child_ordered (false, caps, true, caps, true);
  if (early.setup != 0)
    fail_msg ("%s", early.msg);
  expect (&early, P_GETPID, 0);
  expect (&early, P_UNSHARE_UTS, EPERM);
  expect (&early, P_CLONE3, ENOSYS);

  struct report refused = probe_child (false, caps, true, caps);
  assert_int_equal (refused.setup, -1);
  assert_non_null (strstr (refused.msg, "seccomp"));

  char *bad[] = { "CAP_WHATEVER", NULL };
  struct report unknown = probe_child (true, NULL, true, bad);
  assert_int_equal (unknown.setup, -1);
  assert_non_null (strstr (unknown.msg, "CAP_WHATEVER"));

  /* The same orders with the program prepared beforehand, as the spawner runs them. */
  cimg_error_t err = { 0 };
  cleanup_seccomp_prog struct cimg_seccomp_prog *prog = NULL;
  assert_int_equal (cimg_seccomp_prepare (-1, caps, &prog, &err), 0);
  struct report ok2 = probe_child_full (true, caps, true, NULL, false, prog);
  if (ok2.setup != 0)
    fail_msg ("%s", ok2.msg);
  expect_same (&ok, &ok2, "prepared, loaded after the capabilities");
  struct report early2 = probe_child_full (false, caps, true, NULL, true, prog);
  if (early2.setup != 0)
    fail_msg ("%s", early2.msg);
  expect_same (&early, &early2, "prepared, loaded before the capabilities");
  struct report refused2 = probe_child_full (false, caps, true, NULL, false, prog);
  assert_int_equal (refused2.setup, -1);
  assert_non_null (strstr (refused2.msg, "seccomp"));
  cleanup_seccomp_prog struct cimg_seccomp_prog *none = NULL;
  assert_int_equal (cimg_seccomp_prepare (-1, bad, &none, &err), -1);
  assert_non_null (strstr (err.msg, "CAP_WHATEVER"));
  assert_null (none);
  cimg_error_clear (&err);
}

/* ---------------------------------------------------------------- seccomp: the cache */

/* A store root of its own for each cache test, removed also after a failed assertion. */
struct store
{
  char path[64];
  int fd;
};

static int
store_setup (void **state)
{
  struct store *st = xzalloc (sizeof *st);
  snprintf (st->path, sizeof st->path, "/tmp/cimg-test-seccomp.XXXXXX");
  if (mkdtemp (st->path) == NULL)
    return -1;
  st->fd = open (st->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  *state = st;
  return st->fd < 0 ? -1 : 0;
}

static int
store_teardown (void **state)
{
  struct store *st = *state;
  if (st->fd >= 0)
    close (st->fd);
  cimg_rm_rf_at (AT_FDCWD, st->path, NULL);
  free (st);
  return 0;
}

/* The *.bpf files of <store>/seccomp, sorted, into names ("seccomp/<name>"); how many. Fails
   on any other entry: a leftover temp file would be one. */
static size_t
cache_files (int storefd, char names[][96], size_t max)
{
  int dfd = openat (storefd, "seccomp", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (dfd >= 0);
  DIR *d = fdopendir (dfd);
  assert_non_null (d);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir (d)))
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      if (!cimg_str_has_suffix (e->d_name, ".bpf") || strlen (e->d_name) != 68)
        fail_msg ("unexpected entry seccomp/%s", e->d_name);
      assert_true (n < max);
      snprintf (names[n++], 96, "seccomp/%s", e->d_name);
    }
  closedir (d);
  qsort (names, n, sizeof names[0], (int (*) (const void *, const void *))strcmp);
  return n;
}

static char *
read_all (int storefd, const char *name, size_t *len)
{
  char *buf = NULL;
  cimg_error_t err = { 0 };
  if (cimg_read_file_at (storefd, name, 1 << 20, &buf, len, &err) < 0)
    fail_msg ("%s", err.msg);
  return buf;
}

static void
stat_at (int storefd, const char *name, struct stat *st)
{
  if (fstatat (storefd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
    fail_msg ("stat %s: %s", name, strerror (errno));
}

/* Prepare caps against the store and check that name was rewritten (another inode, by the
   atomic rename) with exactly want's bytes, and that the program prepared is the right one
   (its probes match want_probes). */
static void
expect_recompiled (int storefd, char **caps, const char *name, const struct stat *before,
                   const char *want, size_t want_len, const struct report *want_probes,
                   const char *what)
{
  cimg_error_t err = { 0 };
  cleanup_seccomp_prog struct cimg_seccomp_prog *p = NULL;
  if (cimg_seccomp_prepare (storefd, caps, &p, &err) < 0)
    fail_msg ("%s: %s", what, err.msg);
  struct stat after;
  stat_at (storefd, name, &after);
  if (after.st_ino == before->st_ino)
    fail_msg ("%s: the file was not rewritten", what);
  assert_true (S_ISREG (after.st_mode));
  size_t len;
  cleanup_free char *got = read_all (storefd, name, &len);
  if (len != want_len || memcmp (got, want, len) != 0)
    fail_msg ("%s: the rewritten file differs from the first compilation", what);
  struct report r = probe_prog (p);
  expect_same (want_probes, &r, what);
}

static void
test_seccomp_cache (void **state)
{
  struct store *st = *state;
  if (geteuid () != 0)
    skip ();
  cimg_error_t err = { 0 };
  cleanup_strv char **caps = cimg_caps_default ();
  struct report direct = probe_child (true, NULL, true, caps);
  if (direct.setup != 0)
    fail_msg ("%s", direct.msg);

  /* First prepare: compiles, creates seccomp/ (0700) and one file (0600). */
  cleanup_seccomp_prog struct cimg_seccomp_prog *p1 = NULL, *p2 = NULL, *p3 = NULL, *p4 = NULL;
  assert_int_equal (cimg_seccomp_prepare (st->fd, caps, &p1, &err), 0);
  struct stat ds;
  stat_at (st->fd, "seccomp", &ds);
  assert_true (S_ISDIR (ds.st_mode));
  assert_int_equal (ds.st_mode & 07777, 0700);
  char names[4][96];
  assert_int_equal (cache_files (st->fd, names, 4), 1);
  char name[96];
  snprintf (name, sizeof name, "%s", names[0]);
  struct stat a;
  stat_at (st->fd, name, &a);
  assert_true (S_ISREG (a.st_mode));
  assert_int_equal (a.st_mode & 07777, 0600);
  assert_int_equal (a.st_size % sizeof (struct sock_filter), 0);
  size_t orig_len;
  cleanup_free char *orig = read_all (st->fd, name, &orig_len);

  /* Second: the same file, untouched, and the same program. */
  assert_int_equal (cimg_seccomp_prepare (st->fd, caps, &p2, &err), 0);
  struct stat b;
  stat_at (st->fd, name, &b);
  assert_true (a.st_ino == b.st_ino);
  assert_true (a.st_mtim.tv_sec == b.st_mtim.tv_sec && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec);
  assert_true (a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec);
  assert_int_equal (cache_files (st->fd, names, 4), 1);
  struct report r2 = probe_prog (p2);
  expect_same (&direct, &r2, "from the cache");

  /* A capability no rule looks at shares the file; CAP_SYS_ADMIN makes another. */
  cleanup_strv char **net_admin = cimg_caps_default ();
  cimg_strv_append (&net_admin, "CAP_NET_ADMIN");
  assert_int_equal (cimg_seccomp_prepare (st->fd, net_admin, &p3, &err), 0);
  assert_int_equal (cache_files (st->fd, names, 4), 1);
  cleanup_strv char **sys_admin = cimg_caps_default ();
  cimg_strv_append (&sys_admin, "CAP_SYS_ADMIN");
  assert_int_equal (cimg_seccomp_prepare (st->fd, sys_admin, &p4, &err), 0);
  assert_int_equal (cache_files (st->fd, names, 4), 2);
  char admin_name[96];
  snprintf (admin_name, sizeof admin_name, "%s", strcmp (names[0], name) ? names[0] : names[1]);
  struct report admin = probe_prog (p4);
  expect (&admin, P_UNSHARE_UTS, 0);
  expect (&admin, P_MOUNT, direct.res[P_MOUNT] == EPERM ? ENOENT : admin.res[P_MOUNT]);

  /* Truncated: at an instruction boundary (the header's count and checksum catch it), inside
     an instruction, inside the header, empty. Each time recompiled and rewritten. */
  const off_t cuts[] = { (off_t)orig_len - 8, (off_t)orig_len - 3, 100, 0 };
  for (size_t i = 0; i < ARRAY_SIZE (cuts); i++)
    {
      struct stat before;
      stat_at (st->fd, name, &before);
      int fd = openat (st->fd, name, O_WRONLY | O_CLOEXEC);
      assert_true (fd >= 0);
      assert_int_equal (ftruncate (fd, cuts[i]), 0);
      close (fd);
      char what[64];
      snprintf (what, sizeof what, "truncated to %lld bytes", (long long)cuts[i]);
      expect_recompiled (st->fd, caps, name, &before, orig, orig_len, &direct, what);
    }

  /* Bytes flipped so that the program, were it loaded, would let through what the profile
     forbids: every "return ERRNO(EPERM)" (the default action) becomes "return ALLOW". */
  {
    const struct sock_filter eperm = BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
                             allow = BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    cleanup_free char *forged = xmemdup (orig, orig_len);
    size_t flipped = 0;
    for (size_t off = orig_len % sizeof eperm; off + sizeof eperm <= orig_len; off += sizeof eperm)
      if (memcmp (forged + off, &eperm, sizeof eperm) == 0)
        memcpy (forged + off, &allow, sizeof allow), flipped++;
    assert_true (flipped > 0);
    struct stat before;
    stat_at (st->fd, name, &before);
    int fd = openat (st->fd, name, O_WRONLY | O_CLOEXEC);
    assert_true (fd >= 0);
    assert_int_equal (pwrite (fd, forged, orig_len, 0), orig_len);
    close (fd);
    expect_recompiled (st->fd, caps, name, &before, orig, orig_len, &direct,
                       "EPERM flipped to ALLOW");
  }
  /* One bit flipped anywhere (the header, the checksum, an instruction). */
  const size_t bits[] = { 0, 20, 30, 100, 140, orig_len / 2 };
  for (size_t i = 0; i < ARRAY_SIZE (bits); i++)
    {
      struct stat before;
      stat_at (st->fd, name, &before);
      char c = (char)(orig[bits[i]] ^ 0x04);
      int fd = openat (st->fd, name, O_WRONLY | O_CLOEXEC);
      assert_true (fd >= 0);
      assert_int_equal (pwrite (fd, &c, 1, (off_t)bits[i]), 1);
      close (fd);
      char what[64];
      snprintf (what, sizeof what, "bit flipped at byte %zu", bits[i]);
      expect_recompiled (st->fd, caps, name, &before, orig, orig_len, &direct, what);
    }

  /* A foreign file: another key's valid program under this key's name (here the one that
     lets CAP_SYS_ADMIN unshare), and a symlink to it. */
  {
    size_t alen;
    cleanup_free char *abytes = read_all (st->fd, admin_name, &alen);
    struct stat before;
    stat_at (st->fd, name, &before);
    assert_int_equal (cimg_write_file_atomic_at (st->fd, name, abytes, alen, 0600, &err), 0);
    struct stat forged;
    stat_at (st->fd, name, &forged);
    expect_recompiled (st->fd, caps, name, &forged, orig, orig_len, &direct,
                       "another key's program");
    stat_at (st->fd, name, &before);
    assert_int_equal (unlinkat (st->fd, name, 0), 0);
    assert_int_equal (symlinkat (admin_name + strlen ("seccomp/"), st->fd, name), 0);
    stat_at (st->fd, name, &forged);
    assert_true (S_ISLNK (forged.st_mode));
    expect_recompiled (st->fd, caps, name, &forged, orig, orig_len, &direct, "a symlink");
  }
  assert_int_equal (cache_files (st->fd, names, 4), 2);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_caps_default),
    cmocka_unit_test (test_caps_resolve),
    cmocka_unit_test (test_caps_apply),
    cmocka_unit_test (test_seccomp_default),
    cmocka_unit_test (test_seccomp_with_sys_admin),
    cmocka_unit_test (test_seccomp_after_caps),
    cmocka_unit_test_setup_teardown (test_seccomp_cache, store_setup, store_teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
