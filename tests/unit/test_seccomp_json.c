/* Unit tests of runtime/seccomp-json.c (--security-opt seccomp=PROFILE.json). Profiles are
   compiled in this process, as cimg does before clone, and loaded in a forked child under
   NO_NEW_PRIVS, which runs raw system calls and reports what each returned through a pipe;
   the assertions are made in the parent. The probes also run once without a filter, so that an
   errno seen under one is known to come from it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#if defined(__x86_64__)
#include <asm/prctl.h>
#endif

#include "runtime/confine.h"
#include "runtime/confine-internal.h"

/* ---------------------------------------------------------------- probes */

enum probe
{
  P_GETPID,
  P_UNAME,
  P_PERS_ZERO,
  P_PERS_QUERY,
  P_PERS_BAD,
  P_GETPPID,
  P_NEWER,
  P_UNSHARE_UTS,
  P_CLONE,
  P_CLONE_NEWNS,
  P_CLONE3,
  P_VSOCK,
  P_MOUNT,
  P_PROCESS_VM,
  P_ARCH_PRCTL,
  P_GETUID, /* last: a profile may kill the process on it */
  P_COUNT
};

static const char *const probe_names[] = {
  "getpid",
  "uname",
  "personality(0)",
  "personality(query)",
  "personality(ADDR_NO_RANDOMIZE)",
  "getppid",
  "cachestat",
  "unshare(NEWUTS)",
  "clone",
  "clone(NEWNS)",
  "clone3",
  "socket(VSOCK)",
  "mount",
  "process_vm_readv",
  "arch_prctl",
  "getuid",
};
_Static_assert(ARRAY_SIZE (probe_names) == P_COUNT, "a name per probe");

#define BIT(p) (1u << (p))
/* What the small profiles' children run: nothing that needs more than they allow. */
#define SMALL_PROBES                                                                               \
  (BIT (P_GETPID) | BIT (P_UNAME) | BIT (P_PERS_ZERO) | BIT (P_PERS_QUERY) | BIT (P_GETPPID)       \
   | BIT (P_NEWER))
#define ALL_PROBES ((1u << P_COUNT) - 1)

/* 0 on success, else errno. */
static int
result (long r)
{
  return r < 0 ? errno : 0;
}

/* A raw clone/clone3 that made a child: the child leaves at once; the parent reaps it. */
static int
reap (long r)
{
  if (r == 0)
    syscall (SYS_exit_group, 0);
  if (r > 0)
    {
      syscall (SYS_wait4, (pid_t)r, NULL, __WALL, NULL);
      return 0;
    }
  return errno;
}

/* The probes in mask (the others are left alone). Raw system calls only: libc (and the sanitizers'
   interceptors) could make others that a small profile refuses. */
static void
run_probes (unsigned mask, int *res)
{
  for (int p = 0; p < P_COUNT; p++)
    {
      if (!(mask & BIT (p)))
        continue;
      struct utsname u;
      struct clone_args ca;
      long v = 0;
      switch ((enum probe)p)
        {
        case P_GETPID:
          res[p] = result (syscall (SYS_getpid));
          break;
        case P_UNAME:
          res[p] = result (syscall (SYS_uname, &u));
          break;
        case P_PERS_ZERO:
          res[p] = result (syscall (SYS_personality, 0UL));
          break;
        case P_PERS_QUERY:
          res[p] = result (syscall (SYS_personality, 0xffffffffUL));
          break;
        case P_PERS_BAD:
          res[p] = result (syscall (SYS_personality, (unsigned long)ADDR_NO_RANDOMIZE));
          break;
        case P_GETPPID:
          res[p] = result (syscall (SYS_getppid));
          break;
        case P_NEWER:
          res[p] = result (syscall (451 /* cachestat, Linux 6.5 */, -1, NULL, NULL, 0));
          break;
        case P_UNSHARE_UTS:
          res[p] = result (syscall (SYS_unshare, CLONE_NEWUTS));
          break;
        case P_CLONE:
          res[p] = reap (syscall (SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, 0));
          break;
        case P_CLONE_NEWNS:
          res[p] = reap (
              syscall (SYS_clone, (unsigned long)(CLONE_NEWNS | SIGCHLD), NULL, NULL, NULL, 0));
          break;
        case P_CLONE3:
          memset (&ca, 0, sizeof ca);
          ca.exit_signal = SIGCHLD;
          res[p] = reap (syscall (SYS_clone3, &ca, sizeof ca));
          break;
        case P_VSOCK:
          v = syscall (SYS_socket, 40 /* AF_VSOCK */, 1 /* SOCK_STREAM */, 0);
          res[p] = result (v);
          if (v >= 0)
            syscall (SYS_close, v);
          break;
        case P_MOUNT:
          res[p] = result (syscall (SYS_mount, "none", "/nonexistent-cimg-test", "tmpfs", 0, NULL));
          break;
        case P_PROCESS_VM:
          res[p]
              = result (syscall (SYS_process_vm_readv, syscall (SYS_getpid), NULL, 0, NULL, 0, 0));
          break;
        case P_ARCH_PRCTL:
#if defined(__x86_64__)
          res[p] = result (syscall (SYS_arch_prctl, ARCH_GET_FS, &v));
#else
          res[p] = -1;
#endif
          break;
        case P_GETUID:
          res[p] = result (syscall (SYS_getuid));
          break;
        case P_COUNT:
          break;
        }
    }
}

struct report
{
  int setup; /* 0, or -1 with msg */
  char msg[256];
  int res[P_COUNT];
  int signal; /* the signal that ended the child, 0 when it exited */
};

/* In a child: NO_NEW_PRIVS, then prog (none when NULL), then the probes in mask. */
static struct report
probe_child (const struct cimg_seccomp_prog *prog, unsigned mask)
{
  int p[2];
  assert_int_equal (pipe2 (p, O_CLOEXEC), 0);
  struct report rep;
  memset (&rep, 0, sizeof rep);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      cimg_error_t err = { 0 };
      if (prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        {
          rep.setup = -1;
          snprintf (rep.msg, sizeof rep.msg, "no_new_privs: %s", strerror (errno));
        }
      else if (prog && cimg_seccomp_load (prog, &err) < 0)
        {
          rep.setup = -1;
          snprintf (rep.msg, sizeof rep.msg, "%s", err.msg);
        }
      else
        {
          /* Written before the probe that may kill: the parent still sees the others. */
          for (int i = 0; i < P_COUNT; i++)
            rep.res[i] = -1;
          run_probes (mask & ~BIT (P_GETUID), rep.res);
          if (syscall (SYS_write, p[1], &rep, sizeof rep) != sizeof rep)
            syscall (SYS_exit_group, 1);
          if (mask & BIT (P_GETUID))
            run_probes (BIT (P_GETUID), rep.res);
          /* The second report replaces the first: with getuid's result. */
          syscall (SYS_exit_group,
                   syscall (SYS_write, p[1], &rep, sizeof rep) == sizeof rep ? 0 : 1);
        }
      syscall (SYS_exit_group, write (p[1], &rep, sizeof rep) == sizeof rep ? 0 : 1);
    }
  close (p[1]);
  struct report got;
  size_t n = 0;
  for (;;)
    {
      ssize_t r = read (p[0], (char *)&got + n % sizeof got, sizeof got - n % sizeof got);
      if (r <= 0)
        break;
      n += (size_t)r;
      if (n % sizeof got == 0)
        rep = got;
    }
  close (p[0]);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  if (WIFSIGNALED (status))
    rep.signal = WTERMSIG (status);
  else if (WEXITSTATUS (status) != 0)
    fail_msg ("probe child: exit %d", WEXITSTATUS (status));
  assert_true (n >= sizeof rep);
  return rep;
}

/* prog in a child; a setup error fails the test. */
static struct report
probe (const struct cimg_seccomp_prog *prog, unsigned mask)
{
  struct report r = probe_child (prog, mask);
  if (r.setup != 0)
    fail_msg ("%s", r.msg);
  return r;
}

static void
expect (const struct report *rep, enum probe p, int want)
{
  if (rep->res[p] != want)
    fail_msg ("%s: got %s (%d), expected %s", probe_names[p],
              rep->res[p] > 0 ? strerror (rep->res[p]) : "success", rep->res[p],
              want ? strerror (want) : "success");
}

/* Every probe of mask gave the same result under both programs. */
static void
expect_same (const struct report *want, const struct report *got, unsigned mask, const char *what)
{
  for (int i = 0; i < P_COUNT; i++)
    if ((mask & BIT (i)) && want->res[i] != got->res[i])
      fail_msg ("%s: %s: got %d, the built-in profile gave %d", what, probe_names[i], got->res[i],
                want->res[i]);
}

/* The program for json and caps; a failure fails the test. */
static struct cimg_seccomp_prog *
compile (const char *json, char *const *caps)
{
  cimg_error_t err = { 0 };
  struct cimg_seccomp_prog *p = NULL;
  if (cimg_seccomp_prepare_json (json, strlen (json), caps, &p, &err) < 0)
    fail_msg ("%s", err.msg);
  assert_non_null (p);
  return p;
}

/* s with its first from replaced by to (which must be there). */
static char *
replace (const char *s, const char *from, const char *to)
{
  const char *at = strstr (s, from);
  assert_non_null (at);
  return xasprintf ("%.*s%s%s", (int)(at - s), s, to, at + strlen (from));
}

static char **
caps_with (const char *extra)
{
  char **caps = cimg_caps_default ();
  if (extra)
    cimg_strv_append (&caps, extra);
  return caps;
}

/* The probes without a filter, as root: what each gives when the filter lets it through. */
static struct report bare;

static int
group_setup (void **state)
{
  (void)state;
  if (geteuid () != 0)
    return 0;
  bare = probe_child (NULL, ALL_PROBES);
  return bare.setup;
}

/* ---------------------------------------------------------------- a small profile */

/* Default ERRNO (EPERM), an allow-list of what the child needs to load the second filter
   (prctl), write its report and exit, plus getpid; personality only with 0. */
static const char small_profile[] = "{\n"
                                    "  \"defaultAction\": \"SCMP_ACT_ERRNO\",\n"
                                    "  \"defaultErrnoRet\": 1,\n"
                                    "  \"syscalls\": [\n"
                                    "    { \"names\": [\"write\", \"exit\", \"exit_group\", "
                                    "\"prctl\", \"seccomp\", \"rt_sigreturn\", \"getpid\", "
                                    "\"no_such_syscall_cimg\"],\n"
                                    "      \"action\": \"SCMP_ACT_ALLOW\" },\n"
                                    "    { \"name\": \"personality\", \"action\": "
                                    "\"SCMP_ACT_ALLOW\",\n"
                                    "      \"args\": [ { \"index\": 0, \"value\": 0, \"op\": "
                                    "\"SCMP_CMP_EQ\" } ] },\n"
                                    "    { \"names\": [\"uname\"], \"action\": "
                                    "\"SCMP_ACT_ALLOW\",\n"
                                    "      \"includes\": { \"caps\": [\"CAP_SYS_ADMIN\"] } },\n"
                                    "    { \"names\": [\"getppid\"], \"action\": "
                                    "\"SCMP_ACT_ERRNO\", \"errnoRet\": 13,\n"
                                    "      \"excludes\": { \"caps\": [\"CAP_SYS_ADMIN\"] } },\n"
                                    "    { \"names\": [\"getppid\"], \"action\": "
                                    "\"SCMP_ACT_ALLOW\",\n"
                                    "      \"includes\": { \"caps\": [\"CAP_SYS_ADMIN\", "
                                    "\"CAP_SYS_BOOT\"] } }\n"
                                    "  ]\n"
                                    "}\n";

static void
test_small_profile (void **state)
{
  (void)state;
  if (geteuid () != 0)
    skip ();
  expect (&bare, P_GETPID, 0);
  expect (&bare, P_UNAME, 0);
  expect (&bare, P_PERS_ZERO, 0);
  expect (&bare, P_PERS_QUERY, 0);
  expect (&bare, P_GETPPID, 0);
  assert_int_not_equal (bare.res[P_NEWER], ENOSYS);

  cleanup_strv char **caps = caps_with (NULL);
  cleanup_seccomp_prog struct cimg_seccomp_prog *p = compile (small_profile, caps);
  struct report r = probe (p, SMALL_PROBES);
  expect (&r, P_GETPID, 0);
  expect (&r, P_UNAME, EPERM); /* not listed: the default errno */
  expect (&r, P_PERS_ZERO, 0); /* arg0 == 0 */
  expect (&r, P_PERS_QUERY, EPERM);
  expect (&r, P_GETPPID, EACCES); /* errnoRet, the excludes.caps entry */
  expect (&r, P_NEWER, ENOSYS);   /* newer than the profile: "not implemented" */

  /* includes.caps: every capability listed must be held; excludes.caps: any drops. */
  cleanup_strv char **admin = caps_with ("CAP_SYS_ADMIN");
  cleanup_seccomp_prog struct cimg_seccomp_prog *pa = compile (small_profile, admin);
  struct report ra = probe (pa, SMALL_PROBES);
  expect (&ra, P_UNAME, 0);
  expect (&ra, P_GETPPID, EPERM); /* neither entry: CAP_SYS_BOOT is missing */
  cleanup_strv char **boot = caps_with ("CAP_SYS_ADMIN");
  cimg_strv_append (&boot, "CAP_SYS_BOOT");
  cleanup_seccomp_prog struct cimg_seccomp_prog *pb = compile (small_profile, boot);
  struct report rb = probe (pb, SMALL_PROBES);
  expect (&rb, P_UNAME, 0);
  expect (&rb, P_GETPPID, 0);

  /* Another default errno. */
  cleanup_free char *eacces
      = replace (small_profile, "\"defaultErrnoRet\": 1,", "\"defaultErrnoRet\": 5,");
  cleanup_seccomp_prog struct cimg_seccomp_prog *pe = compile (eacces, caps);
  struct report re = probe (pe, SMALL_PROBES);
  expect (&re, P_UNAME, EIO);
  expect (&re, P_PERS_QUERY, EIO);
  expect (&re, P_GETPID, 0);
}

/* Operators, an index compared twice (one rule per condition: ORed), the legacy "name". */
static void
test_args (void **state)
{
  (void)state;
  if (geteuid () != 0)
    skip ();
  static const char json[]
      = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
        "{\"names\":[\"write\",\"exit_group\",\"prctl\",\"seccomp\",\"getpid\"],"
        "\"action\":\"SCMP_ACT_ALLOW\"},"
        /* personality(0) or personality(0xffffffff): the same index twice */
        "{\"name\":\"personality\",\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
        "{\"index\":0,\"value\":0,\"op\":\"SCMP_CMP_EQ\"},"
        "{\"index\":0,\"value\":4294967295,\"op\":\"SCMP_CMP_EQ\"}]},"
        /* uname(p) with p & 0 == 0: always; valueTwo is MASKED_EQ's */
        "{\"names\":[\"uname\"],\"action\":\"SCMP_ACT_ALLOW\",\"args\":["
        "{\"index\":0,\"value\":0,\"valueTwo\":0,\"op\":\"SCMP_CMP_MASKED_EQ\"}]},"
        /* getppid(a0 > 5 and a1 < 2): never with zeros → the rule's errno does not apply */
        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":22,\"args\":["
        "{\"index\":0,\"value\":5,\"op\":\"SCMP_CMP_GT\"},"
        "{\"index\":1,\"value\":2,\"op\":\"SCMP_CMP_LT\"}]}"
        "]}";
  cleanup_strv char **caps = caps_with (NULL);
  cleanup_seccomp_prog struct cimg_seccomp_prog *p = compile (json, caps);
  struct report r = probe (p, SMALL_PROBES | BIT (P_PERS_BAD));
  expect (&r, P_PERS_ZERO, 0);
  expect (&r, P_PERS_QUERY, 0);
  expect (&r, P_PERS_BAD, EPERM);
  expect (&r, P_UNAME, 0);
  expect (&r, P_GETPPID, EPERM); /* the default: the GT/LT rule did not match */
}

/* Other actions: KILL_PROCESS ends the child with SIGSYS; a default ALLOW has no ENOSYS
   filter; architectures and minKernel in includes/excludes. */
static void
test_actions_and_filters (void **state)
{
  (void)state;
  if (geteuid () != 0)
    skip ();
  cleanup_strv char **caps = caps_with (NULL);
  static const char kill[]
      = "{\"defaultAction\":\"SCMP_ACT_ALLOW\",\"syscalls\":["
        "{\"names\":[\"getuid\"],\"action\":\"SCMP_ACT_KILL_PROCESS\"},"
        "{\"names\":[\"uname\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":61},"
        "{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\"}]}";
  cleanup_seccomp_prog struct cimg_seccomp_prog *pk = compile (kill, caps);
  struct report rk = probe (pk, SMALL_PROBES | BIT (P_GETUID));
  expect (&rk, P_GETPID, 0);
  expect (&rk, P_UNAME, ENODATA);
  expect (&rk, P_NEWER, bare.res[P_NEWER]); /* no ENOSYS filter under a default ALLOW */
  assert_int_equal (rk.signal, SIGSYS);
  assert_int_equal (rk.res[P_GETUID], -1); /* killed before it could report */

#if defined(__x86_64__)
  static const char arches[]
      = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_X86_64\","
        "\"SCMP_ARCH_X86\",\"SCMP_ARCH_X32\"],\"syscalls\":["
        "{\"names\":[\"write\",\"exit_group\",\"prctl\",\"seccomp\"],\"action\":\"SCMP_ACT_ALLOW\"}"
        ","
        "{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":[\"amd64\"]"
        "}},"
        "{\"names\":[\"uname\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"arches\":[\"s390x\"]}"
        "},"
        "{\"names\":[\"getppid\"],\"action\":\"SCMP_ACT_ALLOW\",\"excludes\":{\"arches\":["
        "\"amd64\"]}},"
        "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"minKernel\":"
        "\"4.8\"}},"
        "{\"names\":[\"personality\"],\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":7,"
        "\"excludes\":{\"minKernel\":\"4.8\"}},"
        "{\"names\":[\"getuid\"],\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"minKernel\":\"255."
        "0\"}}"
        "]}";
  cleanup_seccomp_prog struct cimg_seccomp_prog *pa = compile (arches, caps);
  struct report ra = probe (pa, SMALL_PROBES | BIT (P_GETUID));
  expect (&ra, P_GETPID, 0);
  expect (&ra, P_UNAME, EPERM);
  expect (&ra, P_GETPPID, EPERM);
  expect (&ra, P_PERS_ZERO, 0);
  expect (&ra, P_GETUID, EPERM);
#endif
}

/* ---------------------------------------------------------------- Docker's default profile */

/* A trimmed copy of moby's profiles/seccomp/default.json, written by hand with its real
   structure: the archMap, the big allow-list (shortened), the minKernel, socket, personality,
   per-architecture, per-capability and clone/clone3 entries (a few of each). */
static const char docker_default[]
    = "{\n"
      "\t\"defaultAction\": \"SCMP_ACT_ERRNO\",\n"
      "\t\"defaultErrnoRet\": 1,\n"
      "\t\"archMap\": [\n"
      "\t\t{ \"architecture\": \"SCMP_ARCH_X86_64\",\n"
      "\t\t  \"subArchitectures\": [ \"SCMP_ARCH_X86\", \"SCMP_ARCH_X32\" ] },\n"
      "\t\t{ \"architecture\": \"SCMP_ARCH_AARCH64\", \"subArchitectures\": [ \"SCMP_ARCH_ARM\" ] "
      "},\n"
      "\t\t{ \"architecture\": \"SCMP_ARCH_MIPS64\",\n"
      "\t\t  \"subArchitectures\": [ \"SCMP_ARCH_MIPS\", \"SCMP_ARCH_MIPS64N32\" ] },\n"
      "\t\t{ \"architecture\": \"SCMP_ARCH_S390X\", \"subArchitectures\": [ \"SCMP_ARCH_S390\" ] "
      "},\n"
      "\t\t{ \"architecture\": \"SCMP_ARCH_RISCV64\", \"subArchitectures\": null }\n"
      "\t],\n"
      "\t\"syscalls\": [\n"
      "\t\t{\n"
      "\t\t\t\"names\": [ \"accept\", \"access\", \"brk\", \"capget\", \"capset\", \"chdir\",\n"
      "\t\t\t\t\"close\", \"dup2\", \"execve\", \"exit\", \"exit_group\", \"fcntl\", \"fstat\",\n"
      "\t\t\t\t\"futex\", \"futex_waitv\", \"getcwd\", \"getpid\", \"getppid\", \"getuid\",\n"
      "\t\t\t\t\"ioctl\", \"kill\", \"memfd_secret\", \"mmap\", \"mprotect\", \"munmap\",\n"
      "\t\t\t\t\"openat\", \"pipe2\", \"prctl\", \"read\", \"rt_sigaction\", \"rt_sigprocmask\",\n"
      "\t\t\t\t\"rt_sigreturn\", \"seccomp\", \"set_robust_list\", \"set_tid_address\",\n"
      "\t\t\t\t\"setgid\", \"setgroups\", \"setuid\", \"sigaltstack\", \"uname\", \"wait4\",\n"
      "\t\t\t\t\"write\", \"writev\" ],\n"
      "\t\t\t\"action\": \"SCMP_ACT_ALLOW\"\n"
      "\t\t},\n"
      "\t\t{\n"
      "\t\t\t\"names\": [ \"process_vm_readv\", \"process_vm_writev\", \"ptrace\" ],\n"
      "\t\t\t\"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t\t\"includes\": { \"minKernel\": \"4.8\" }\n"
      "\t\t},\n"
      "\t\t{\n"
      "\t\t\t\"names\": [ \"socket\" ],\n"
      "\t\t\t\"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t\t\"args\": [ { \"index\": 0, \"value\": 40, \"valueTwo\": 0, \"op\": "
      "\"SCMP_CMP_NE\" } ]\n"
      "\t\t},\n"
      "\t\t{ \"names\": [ \"personality\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"args\": [ { \"index\": 0, \"value\": 0, \"valueTwo\": 0, \"op\": \"SCMP_CMP_EQ\" } "
      "] },\n"
      "\t\t{ \"names\": [ \"personality\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"args\": [ { \"index\": 0, \"value\": 8, \"valueTwo\": 0, \"op\": \"SCMP_CMP_EQ\" } "
      "] },\n"
      "\t\t{ \"names\": [ \"personality\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"args\": [ { \"index\": 0, \"value\": 131072, \"valueTwo\": 0, \"op\": "
      "\"SCMP_CMP_EQ\" } ] },\n"
      "\t\t{ \"names\": [ \"personality\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"args\": [ { \"index\": 0, \"value\": 131080, \"valueTwo\": 0, \"op\": "
      "\"SCMP_CMP_EQ\" } ] },\n"
      "\t\t{ \"names\": [ \"personality\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"args\": [ { \"index\": 0, \"value\": 4294967295, \"valueTwo\": 0, \"op\": "
      "\"SCMP_CMP_EQ\" } ] },\n"
      "\t\t{ \"names\": [ \"sync_file_range2\", \"swapcontext\" ], \"action\": "
      "\"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"includes\": { \"arches\": [ \"ppc64le\" ] } },\n"
      "\t\t{ \"names\": [ \"arm_fadvise64_64\", \"arm_sync_file_range\", \"breakpoint\", "
      "\"cacheflush\", \"set_tls\" ],\n"
      "\t\t  \"action\": \"SCMP_ACT_ALLOW\", \"includes\": { \"arches\": [ \"arm\", \"arm64\" ] } "
      "},\n"
      "\t\t{ \"names\": [ \"arch_prctl\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"includes\": { \"arches\": [ \"amd64\", \"x32\" ] } },\n"
      "\t\t{ \"names\": [ \"modify_ldt\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"includes\": { \"arches\": [ \"amd64\", \"x32\", \"x86\" ] } },\n"
      "\t\t{ \"names\": [ \"s390_pci_mmio_read\", \"s390_pci_mmio_write\", "
      "\"s390_runtime_instr\" ],\n"
      "\t\t  \"action\": \"SCMP_ACT_ALLOW\", \"includes\": { \"arches\": [ \"s390\", \"s390x\" ] } "
      "},\n"
      "\t\t{ \"names\": [ \"riscv_flush_icache\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"includes\": { \"arches\": [ \"riscv64\" ] } },\n"
      "\t\t{ \"names\": [ \"open_by_handle_at\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"includes\": { \"caps\": [ \"CAP_DAC_READ_SEARCH\" ] } },\n"
      "\t\t{\n"
      "\t\t\t\"names\": [ \"bpf\", \"clone\", \"clone3\", \"fanotify_init\", \"fsconfig\", "
      "\"fsmount\",\n"
      "\t\t\t\t\"fsopen\", \"fspick\", \"lookup_dcookie\", \"mount\", \"mount_setattr\",\n"
      "\t\t\t\t\"move_mount\", \"open_tree\", \"perf_event_open\", \"quotactl\", "
      "\"quotactl_fd\",\n"
      "\t\t\t\t\"setdomainname\", \"sethostname\", \"setns\", \"syslog\", \"umount\", "
      "\"umount2\",\n"
      "\t\t\t\t\"unshare\" ],\n"
      "\t\t\t\"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t\t\"includes\": { \"caps\": [ \"CAP_SYS_ADMIN\" ] }\n"
      "\t\t},\n"
      "\t\t{\n"
      "\t\t\t\"names\": [ \"clone\" ],\n"
      "\t\t\t\"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t\t\"args\": [ { \"index\": 0, \"value\": 2114060288, \"valueTwo\": 0, \"op\": "
      "\"SCMP_CMP_MASKED_EQ\" } ],\n"
      "\t\t\t\"excludes\": { \"caps\": [ \"CAP_SYS_ADMIN\" ], \"arches\": [ \"s390\", \"s390x\" ] "
      "}\n"
      "\t\t},\n"
      "\t\t{\n"
      "\t\t\t\"names\": [ \"clone\" ],\n"
      "\t\t\t\"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t\t\"args\": [ { \"index\": 1, \"value\": 2114060288, \"valueTwo\": 0, \"op\": "
      "\"SCMP_CMP_MASKED_EQ\" } ],\n"
      "\t\t\t\"comment\": \"s390 parameter ordering for clone is different\",\n"
      "\t\t\t\"includes\": { \"arches\": [ \"s390\", \"s390x\" ] },\n"
      "\t\t\t\"excludes\": { \"caps\": [ \"CAP_SYS_ADMIN\" ] }\n"
      "\t\t},\n"
      "\t\t{\n"
      "\t\t\t\"names\": [ \"clone3\" ],\n"
      "\t\t\t\"action\": \"SCMP_ACT_ERRNO\",\n"
      "\t\t\t\"errnoRet\": 38,\n"
      "\t\t\t\"excludes\": { \"caps\": [ \"CAP_SYS_ADMIN\" ] }\n"
      "\t\t},\n"
      "\t\t{ \"names\": [ \"reboot\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"includes\": { \"caps\": [ \"CAP_SYS_BOOT\" ] } },\n"
      "\t\t{ \"names\": [ \"chroot\" ], \"action\": \"SCMP_ACT_ALLOW\",\n"
      "\t\t  \"includes\": { \"caps\": [ \"CAP_SYS_CHROOT\" ] } },\n"
      "\t\t{ \"names\": [ \"kcmp\", \"pidfd_getfd\", \"process_madvise\", \"process_vm_readv\",\n"
      "\t\t              \"process_vm_writev\", \"ptrace\" ],\n"
      "\t\t  \"action\": \"SCMP_ACT_ALLOW\", \"includes\": { \"caps\": [ \"CAP_SYS_PTRACE\" ] } "
      "},\n"
      "\t\t{ \"names\": [ \"settimeofday\", \"stime\", \"clock_settime\", \"clock_settime64\" ],\n"
      "\t\t  \"action\": \"SCMP_ACT_ALLOW\", \"includes\": { \"caps\": [ \"CAP_SYS_TIME\" ] } },\n"
      "\t\t{ \"names\": [ \"get_mempolicy\", \"mbind\", \"set_mempolicy\", "
      "\"set_mempolicy_home_node\" ],\n"
      "\t\t  \"action\": \"SCMP_ACT_ALLOW\", \"includes\": { \"caps\": [ \"CAP_SYS_NICE\" ] } }\n"
      "\t]\n"
      "}\n";

#define DOCKER_PROBES (ALL_PROBES & ~BIT (P_GETUID))

static void
test_docker_default (void **state)
{
  (void)state;
  if (geteuid () != 0)
    skip ();
  expect (&bare, P_UNSHARE_UTS, 0);
  expect (&bare, P_CLONE, 0);
  expect (&bare, P_CLONE_NEWNS, 0);
  expect (&bare, P_CLONE3, 0);
  expect (&bare, P_PERS_BAD, 0);
  expect (&bare, P_PROCESS_VM, 0);
  assert_int_not_equal (bare.res[P_MOUNT], EPERM);

  /* Default capabilities: the same answers as cimg's built-in copy of the profile. */
  cimg_error_t err = { 0 };
  cleanup_strv char **caps = caps_with (NULL);
  cleanup_seccomp_prog struct cimg_seccomp_prog *builtin = NULL,
                                                *json = compile (docker_default, caps);
  assert_int_equal (cimg_seccomp_prepare (-1, caps, &builtin, &err), 0);
  struct report want = probe (builtin, DOCKER_PROBES);
  struct report got = probe (json, DOCKER_PROBES);
  expect_same (&want, &got, DOCKER_PROBES, "default capabilities");
  expect (&got, P_GETPID, 0);
  expect (&got, P_UNAME, 0);
  expect (&got, P_UNSHARE_UTS, EPERM);
  expect (&got, P_CLONE, 0);
  expect (&got, P_CLONE_NEWNS, EPERM); /* the MASKED_EQ on the namespace flags */
  expect (&got, P_CLONE3, ENOSYS);     /* errnoRet 38 */
  expect (&got, P_VSOCK, EPERM);       /* SCMP_CMP_NE 40 */
  expect (&got, P_MOUNT, EPERM);
  expect (&got, P_PERS_QUERY, 0);
  expect (&got, P_PERS_BAD, EPERM);
  expect (&got, P_PROCESS_VM, 0); /* minKernel 4.8 */
  expect (&got, P_NEWER, ENOSYS);
#if defined(__x86_64__)
  expect (&got, P_ARCH_PRCTL, 0); /* includes.arches amd64 */
#endif

  /* With CAP_SYS_ADMIN: the includes.caps entry instead of the clone/clone3 ones. */
  cleanup_strv char **admin = caps_with ("CAP_SYS_ADMIN");
  cleanup_seccomp_prog struct cimg_seccomp_prog *badmin = NULL,
                                                *jadmin = compile (docker_default, admin);
  assert_int_equal (cimg_seccomp_prepare (-1, admin, &badmin, &err), 0);
  struct report wa = probe (badmin, DOCKER_PROBES);
  struct report ga = probe (jadmin, DOCKER_PROBES);
  expect_same (&wa, &ga, DOCKER_PROBES, "with CAP_SYS_ADMIN");
  expect (&ga, P_UNSHARE_UTS, 0);
  expect (&ga, P_CLONE_NEWNS, 0);
  expect (&ga, P_CLONE3, 0);
  expect (&ga, P_MOUNT, bare.res[P_MOUNT]);

  /* A minKernel above the running kernel drops the entry. */
  cleanup_free char *future
      = replace (docker_default, "\"minKernel\": \"4.8\"", "\"minKernel\": \"99.0\"");
  cleanup_seccomp_prog struct cimg_seccomp_prog *pf = compile (future, caps);
  struct report gf = probe (pf, DOCKER_PROBES);
  expect (&gf, P_PROCESS_VM, EPERM);
}

/* ---------------------------------------------------------------- bad profiles */

static void
test_bad_profiles (void **state)
{
  (void)state;
  static const struct
  {
    const char *json;
    const char *msg; /* the whole message, or its start when it ends with '*' */
  } cases[] = {
    { "{\"defaultAction\": \"SCMP_ACT_ERRNO\", \"syscalls\": [", "seccomp profile: invalid JSON*" },
    { "[]", "seccomp profile: invalid JSON: not an object" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":["
      "{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\"},"
      "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"},"
      "{\"names\":[\"write\"],\"action\":\"SCMP_ACT_ALLOW\"},"
      "{\"names\":[\"uname\"],\"action\":\"SCMP_ACT_FOO\"}]}",
      "seccomp profile: syscalls[3].action: unknown action \"SCMP_ACT_FOO\"" },
    { "{\"defaultAction\":\"SCMP_ACT_NOPE\"}",
      "seccomp profile: defaultAction: unknown action \"SCMP_ACT_NOPE\"" },
    { "{\"syscalls\":[{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: defaultAction: missing" },
    { "{\"defaultAction\":\"\",\"syscalls\":[{\"names\":[\"getpid\"],\"action\":\"SCMP_ACT_ALLOW\"}"
      "]}",
      "seccomp profile: defaultAction: missing" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"],"
      "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1,\"op\":\"SCMP_CMP_XX\"}]}]"
      "}",
      "seccomp profile: syscalls[0].args[0].op: unknown operator \"SCMP_CMP_XX\"" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"],"
      "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":1}]}]}",
      "seccomp profile: syscalls[0].args[0].op: missing" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"],"
      "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":6,\"value\":1,\"op\":\"SCMP_CMP_EQ\"}]}]"
      "}",
      "seccomp profile: syscalls[0].args[0].index: 6 is out of range (0 to 5)" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"],"
      "\"action\":\"SCMP_ACT_ALLOW\",\"args\":[{\"index\":0,\"value\":-1,\"op\":\"SCMP_CMP_EQ\"}]}]"
      "}",
      "seccomp profile: syscalls[0].args[0].value: expected an unsigned integer, got a negative "
      "number" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"],"
      "\"action\":\"SCMP_ACT_ALLOW\"},{\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: syscalls[1].names: missing (a list of syscall names)" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[],"
      "\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: syscalls[0].names: missing (a list of syscall names)" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\",7],"
      "\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: syscalls[0].names[1]: expected a string, got a number" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"name\":\"getpid\","
      "\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\"}]}",
      "seccomp profile: syscalls[0]: both \"name\" and \"names\" are given; use one" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"]}]}",
      "seccomp profile: syscalls[0].action: missing" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"],"
      "\"action\":\"SCMP_ACT_ERRNO\",\"errnoRet\":5000}]}",
      "seccomp profile: syscalls[0].errnoRet: 5000 is out of range (0 to 4095)" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"defaultErrnoRet\":\"EPERM\"}",
      "seccomp profile: defaultErrnoRet: expected an unsigned integer, got a string" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"],"
      "\"action\":\"SCMP_ACT_ALLOW\",\"includes\":{\"minKernel\":\"4\"}}]}",
      "seccomp profile: syscalls[0].includes.minKernel: invalid kernel version \"4\", expected "
      "\"<kernel>.<major>\"" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":[\"getpid\"],"
      "\"action\":\"SCMP_ACT_ALLOW\",\"excludes\":{\"caps\":\"CAP_SYS_ADMIN\"}}]}",
      "seccomp profile: syscalls[0].excludes.caps: expected an array, got a string" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[17]}",
      "seccomp profile: syscalls[0]: expected an object, got a number" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":{}}",
      "seccomp profile: syscalls: expected an array, got an object" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_X86_64\"],"
      "\"archMap\":[{\"architecture\":\"SCMP_ARCH_X86_64\"}]}",
      "seccomp profile: archMap: \"architectures\" and \"archMap\" are both given; use one" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"architectures\":[\"SCMP_ARCH_FOO\"]}",
      "seccomp profile: architectures[0]: unknown architecture \"SCMP_ARCH_FOO\"" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"archMap\":[{\"subArchitectures\":[]}]}",
      "seccomp profile: archMap[0].architecture: missing" },
    { "{\"defaultAction\":\"SCMP_ACT_NOTIFY\"}",
      "seccomp profile: defaultAction: SCMP_ACT_NOTIFY is not supported (cimg has no seccomp "
      "agent)" },
    { "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"flags\":[\"SECCOMP_FILTER_FLAG_LOG\"]}",
      "seccomp profile: flags[0]: SECCOMP_FILTER_FLAG_LOG is not supported" },
  };
  cleanup_strv char **caps = caps_with (NULL);
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_seccomp_prog *p = NULL;
      int r = cimg_seccomp_prepare_json (cases[i].json, strlen (cases[i].json), caps, &p, &err);
      if (r != -1 || p != NULL || err.msg == NULL)
        fail_msg ("case %zu: accepted", i);
      size_t n = strlen (cases[i].msg);
      bool prefix = cases[i].msg[n - 1] == '*';
      if (prefix ? strncmp (err.msg, cases[i].msg, n - 1) != 0
                 : strcmp (err.msg, cases[i].msg) != 0)
        fail_msg ("case %zu: message\n  %s\nexpected\n  %s", i, err.msg, cases[i].msg);
      assert_int_equal (err.code, EINVAL);
      cimg_error_clear (&err);
    }

  /* Over the size limit, whatever it holds. */
  size_t big = CIMG_SECCOMP_PROFILE_MAX + 1;
  cleanup_free char *huge = xmalloc (big);
  memset (huge, ' ', big);
  huge[0] = '{';
  huge[big - 1] = '}';
  cimg_error_t err = { 0 };
  struct cimg_seccomp_prog *p = NULL;
  assert_int_equal (cimg_seccomp_prepare_json (huge, big, caps, &p, &err), -1);
  assert_null (p);
  assert_int_equal (err.code, EFBIG);
  assert_non_null (strstr (err.msg, "over the limit"));
  cimg_error_clear (&err);
  /* Exactly at it: fine (an empty object, no filter). */
  assert_int_equal (cimg_seccomp_prepare_json (huge, big - 1, caps, &p, &err), -1);
  cimg_error_clear (&err);
  huge[big - 2] = '}';
  assert_int_equal (cimg_seccomp_prepare_json (huge, big - 1, caps, &p, &err), 0);
  assert_null (p);

  /* An unknown capability in the container's set is named. */
  char *bad_caps[] = { "CAP_CHOWN", "CAP_WHATEVER", NULL };
  assert_int_equal (
      cimg_seccomp_prepare_json (small_profile, strlen (small_profile), bad_caps, &p, &err), -1);
  assert_non_null (strstr (err.msg, "CAP_WHATEVER"));
  cimg_error_clear (&err);
}

/* As Docker: no defaultAction and no syscalls is no filter; unknown fields and syscall names
   are ignored; keys match in any case, as Go's decoder matches them. */
static void
test_lenient (void **state)
{
  (void)state;
  cleanup_strv char **caps = caps_with (NULL);
  static const char *const none[] = { "{}", "{\"syscalls\": []}", "{\"defaultAction\": \"\"}",
                                      "{\"comment\": \"x\", \"syscalls\": null}" };
  for (size_t i = 0; i < ARRAY_SIZE (none); i++)
    {
      cimg_error_t err = { 0 };
      struct cimg_seccomp_prog *p = (struct cimg_seccomp_prog *)1;
      if (cimg_seccomp_prepare_json (none[i], strlen (none[i]), caps, &p, &err) != 0)
        fail_msg ("%s: %s", none[i], err.msg);
      assert_null (p);
    }
  static const char odd[]
      = "{\"DefaultAction\":\"SCMP_ACT_ERRNO\",\"whatever\":[1,2],\"syscalls\":["
        "{\"Names\":[\"getpid\",\"not_a_syscall\"],\"action\":\"SCMP_ACT_ALLOW\",\"comment\":\"\","
        "\"includes\":{},\"excludes\":{}},"
        "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ERRNO\"}," /* the default: skipped */
        "{\"names\":[\"read\"],\"action\":\"SCMP_ACT_ALLOW\",\"errnoRet\":99999}]}";
  cleanup_seccomp_prog struct cimg_seccomp_prog *p = compile (odd, caps);
}

/* The file variant: read from a path, errors name it. */
static void
test_file (void **state)
{
  (void)state;
  cleanup_strv char **caps = caps_with (NULL);
  char dir[] = "/tmp/cimg-test-seccomp-json.XXXXXX";
  assert_non_null (mkdtemp (dir));
  cleanup_free char *good = xasprintf ("%s/good.json", dir);
  cleanup_free char *badf = xasprintf ("%s/bad.json", dir);
  cleanup_free char *link = xasprintf ("%s/link.json", dir);
  cimg_error_t err = { 0 };
  int r1 = cimg_write_file_atomic_at (AT_FDCWD, good, small_profile, strlen (small_profile), 0644,
                                      &err);
  static const char bad[] = "{\"defaultAction\":\"SCMP_ACT_ERRNO\",\"syscalls\":[{\"names\":"
                            "[\"getpid\"],\"action\":\"SCMP_ACT_FOO\"}]}";
  int r2 = cimg_write_file_atomic_at (AT_FDCWD, badf, bad, strlen (bad), 0644, &err);
  int r3 = symlink ("good.json", link);
  cleanup_seccomp_prog struct cimg_seccomp_prog *p = NULL, *q = NULL;
  int g = cimg_seccomp_prepare_json_file (good, caps, &p, &err);
  cleanup_free char *gmsg = err.msg ? xstrdup (err.msg) : NULL;
  cimg_error_clear (&err);
  int l = cimg_seccomp_prepare_json_file (link, caps, &q, &err);
  cimg_error_clear (&err);
  struct cimg_seccomp_prog *none = NULL;
  int b = cimg_seccomp_prepare_json_file (badf, caps, &none, &err);
  cleanup_free char *bmsg = err.msg ? xstrdup (err.msg) : NULL;
  cimg_error_clear (&err);
  cleanup_free char *text = NULL;
  size_t tlen = 0;
  int t = cimg_seccomp_read_profile (link, &text, &tlen, &err);
  cimg_error_clear (&err);
  /* A file one byte over the limit. */
  cleanup_free char *bigf = xasprintf ("%s/big.json", dir);
  cleanup_free char *bigbuf = xmalloc (CIMG_SECCOMP_PROFILE_MAX + 1);
  memset (bigbuf, ' ', CIMG_SECCOMP_PROFILE_MAX + 1);
  int r4 = cimg_write_file_atomic_at (AT_FDCWD, bigf, bigbuf, CIMG_SECCOMP_PROFILE_MAX + 1, 0644,
                                      &err);
  cleanup_free char *bigtext = NULL;
  int bt = cimg_seccomp_read_profile (bigf, &bigtext, &tlen, &err);
  int bcode = err.code;
  cimg_error_clear (&err);
  int d = cimg_seccomp_prepare_json_file (dir, caps, &none, &err);
  cleanup_free char *dmsg = err.msg ? xstrdup (err.msg) : NULL;
  cimg_error_clear (&err);
  cimg_rm_rf_at (AT_FDCWD, dir, NULL);
  int m = cimg_seccomp_prepare_json_file (good, caps, &none, &err);
  cleanup_free char *mmsg = err.msg ? xstrdup (err.msg) : NULL;
  cimg_error_clear (&err);

  assert_int_equal (r1, 0);
  assert_int_equal (r2, 0);
  assert_int_equal (r3, 0);
  assert_int_equal (r4, 0);
  assert_int_equal (t, 0);
  assert_string_equal (text, small_profile);
  assert_int_equal (bt, -1);
  assert_int_equal (bcode, EFBIG);
  assert_null (bigtext);
  if (g != 0)
    fail_msg ("%s", gmsg);
  assert_non_null (p);
  assert_int_equal (l, 0);
  assert_non_null (q);
  assert_int_equal (b, -1);
  cleanup_free char *want
      = xasprintf ("seccomp profile %s: syscalls[0].action: unknown action \"SCMP_ACT_FOO\"", badf);
  assert_string_equal (bmsg, want);
  assert_int_equal (d, -1);
  assert_non_null (strstr (dmsg, "not a regular file"));
  assert_int_equal (m, -1);
  assert_non_null (strstr (mmsg, good));
  assert_non_null (strstr (mmsg, "No such file"));
  assert_null (none);
  if (geteuid () == 0)
    {
      struct report r = probe (p, SMALL_PROBES);
      expect (&r, P_UNAME, EPERM);
      expect (&r, P_GETPID, 0);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_small_profile),
    cmocka_unit_test (test_args),
    cmocka_unit_test (test_actions_and_filters),
    cmocka_unit_test (test_docker_default),
    cmocka_unit_test (test_bad_profiles),
    cmocka_unit_test (test_lenient),
    cmocka_unit_test (test_file),
  };
  return cmocka_run_group_tests (tests, group_setup, NULL);
}
