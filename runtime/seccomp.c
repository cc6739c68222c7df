/* runtime/seccomp.c: Docker's default seccomp profile (moby profiles/seccomp/default.json),
   kept as a C table so that cimg needs no JSON file at run time, compiled with libseccomp.

   The filter is two programs stacked:
   1. the profile proper, built by libseccomp for the native architecture and, on x86-64, for
      i386 and x32 as well — otherwise a process could reach the forbidden calls through
      int 0x80 or the x32 numbers, which the kernel serves on the same kernel;
   2. a seven-instruction program that answers ENOSYS for native syscall numbers above the
      highest one the profile names. A syscall newer than the profile is then "not
      implemented" rather than "not permitted", so that libc falls back to an older call the
      profile allows (as runc does since 1.0 with its patched filters). The kernel runs every
      stacked filter and keeps the result of highest precedence; between two ERRNO results it
      keeps the one from the filter loaded last, which is why this one is loaded second.

   Compiling the profile for three ABIs costs libseccomp 15–20 ms, more than the rest of a
   container's start. So cimg compiles it once per key (profile version, libseccomp version,
   architecture, kernel >= 4.8, the capabilities the profile looks at), keeps the BPF program
   in the store (<store>/seccomp/<sha256 of the key>.bpf) and, in the container's process, only
   hands it to the kernel: cimg_seccomp_prepare in cimg before clone, cimg_seccomp_load in the
   child. */
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "runtime/confine.h"
#include "runtime/confine-internal.h"

/* Allowed whatever the capabilities (names missing on an architecture or unknown to this
   libseccomp are skipped). */
static const char *const allow_always[] = {
  "accept",
  "accept4",
  "access",
  "adjtimex",
  "alarm",
  "bind",
  "brk",
  "capget",
  "capset",
  "chdir",
  "chmod",
  "chown",
  "chown32",
  "clock_adjtime",
  "clock_adjtime64",
  "clock_getres",
  "clock_getres_time64",
  "clock_gettime",
  "clock_gettime64",
  "clock_nanosleep",
  "clock_nanosleep_time64",
  "close",
  "close_range",
  "connect",
  "copy_file_range",
  "creat",
  "dup",
  "dup2",
  "dup3",
  "epoll_create",
  "epoll_create1",
  "epoll_ctl",
  "epoll_ctl_old",
  "epoll_pwait",
  "epoll_pwait2",
  "epoll_wait",
  "epoll_wait_old",
  "eventfd",
  "eventfd2",
  "execve",
  "execveat",
  "exit",
  "exit_group",
  "faccessat",
  "faccessat2",
  "fadvise64",
  "fadvise64_64",
  "fallocate",
  "fanotify_mark",
  "fchdir",
  "fchmod",
  "fchmodat",
  "fchown",
  "fchown32",
  "fchownat",
  "fcntl",
  "fcntl64",
  "fdatasync",
  "fgetxattr",
  "flistxattr",
  "flock",
  "fork",
  "fremovexattr",
  "fsetxattr",
  "fstat",
  "fstat64",
  "fstatat64",
  "fstatfs",
  "fstatfs64",
  "fsync",
  "ftruncate",
  "ftruncate64",
  "futex",
  "futex_time64",
  "futex_waitv",
  "futimesat",
  "getcpu",
  "getcwd",
  "getdents",
  "getdents64",
  "getegid",
  "getegid32",
  "geteuid",
  "geteuid32",
  "getgid",
  "getgid32",
  "getgroups",
  "getgroups32",
  "getitimer",
  "getpeername",
  "getpgid",
  "getpgrp",
  "getpid",
  "getppid",
  "getpriority",
  "getrandom",
  "getresgid",
  "getresgid32",
  "getresuid",
  "getresuid32",
  "getrlimit",
  "get_robust_list",
  "getrusage",
  "getsid",
  "getsockname",
  "getsockopt",
  "get_thread_area",
  "gettid",
  "gettimeofday",
  "getuid",
  "getuid32",
  "getxattr",
  "inotify_add_watch",
  "inotify_init",
  "inotify_init1",
  "inotify_rm_watch",
  "io_cancel",
  "ioctl",
  "io_destroy",
  "io_getevents",
  "io_pgetevents",
  "io_pgetevents_time64",
  "ioprio_get",
  "ioprio_set",
  "io_setup",
  "io_submit",
  "io_uring_enter",
  "io_uring_register",
  "io_uring_setup",
  "ipc",
  "kill",
  "landlock_add_rule",
  "landlock_create_ruleset",
  "landlock_restrict_self",
  "lchown",
  "lchown32",
  "lgetxattr",
  "link",
  "linkat",
  "listen",
  "listxattr",
  "llistxattr",
  "_llseek",
  "lremovexattr",
  "lseek",
  "lsetxattr",
  "lstat",
  "lstat64",
  "madvise",
  "membarrier",
  "memfd_create",
  "memfd_secret",
  "mincore",
  "mkdir",
  "mkdirat",
  "mknod",
  "mknodat",
  "mlock",
  "mlock2",
  "mlockall",
  "mmap",
  "mmap2",
  "mprotect",
  "mq_getsetattr",
  "mq_notify",
  "mq_open",
  "mq_timedreceive",
  "mq_timedreceive_time64",
  "mq_timedsend",
  "mq_timedsend_time64",
  "mq_unlink",
  "mremap",
  "msgctl",
  "msgget",
  "msgrcv",
  "msgsnd",
  "msync",
  "munlock",
  "munlockall",
  "munmap",
  "name_to_handle_at",
  "nanosleep",
  "newfstatat",
  "_newselect",
  "open",
  "openat",
  "openat2",
  "pause",
  "pidfd_open",
  "pidfd_send_signal",
  "pipe",
  "pipe2",
  "pkey_alloc",
  "pkey_free",
  "pkey_mprotect",
  "poll",
  "ppoll",
  "ppoll_time64",
  "prctl",
  "pread64",
  "preadv",
  "preadv2",
  "prlimit64",
  "process_mrelease",
  "pselect6",
  "pselect6_time64",
  "pwrite64",
  "pwritev",
  "pwritev2",
  "read",
  "readahead",
  "readlink",
  "readlinkat",
  "readv",
  "recv",
  "recvfrom",
  "recvmmsg",
  "recvmmsg_time64",
  "recvmsg",
  "remap_file_pages",
  "removexattr",
  "rename",
  "renameat",
  "renameat2",
  "restart_syscall",
  "rmdir",
  "rseq",
  "rt_sigaction",
  "rt_sigpending",
  "rt_sigprocmask",
  "rt_sigqueueinfo",
  "rt_sigreturn",
  "rt_sigsuspend",
  "rt_sigtimedwait",
  "rt_sigtimedwait_time64",
  "rt_tgsigqueueinfo",
  "sched_getaffinity",
  "sched_getattr",
  "sched_getparam",
  "sched_get_priority_max",
  "sched_get_priority_min",
  "sched_getscheduler",
  "sched_rr_get_interval",
  "sched_rr_get_interval_time64",
  "sched_setaffinity",
  "sched_setattr",
  "sched_setparam",
  "sched_setscheduler",
  "sched_yield",
  "seccomp",
  "select",
  "semctl",
  "semget",
  "semop",
  "semtimedop",
  "semtimedop_time64",
  "send",
  "sendfile",
  "sendfile64",
  "sendmmsg",
  "sendmsg",
  "sendto",
  "setfsgid",
  "setfsgid32",
  "setfsuid",
  "setfsuid32",
  "setgid",
  "setgid32",
  "setgroups",
  "setgroups32",
  "setitimer",
  "setpgid",
  "setpriority",
  "setregid",
  "setregid32",
  "setresgid",
  "setresgid32",
  "setresuid",
  "setresuid32",
  "setreuid",
  "setreuid32",
  "setrlimit",
  "set_robust_list",
  "setsid",
  "setsockopt",
  "set_thread_area",
  "set_tid_address",
  "setuid",
  "setuid32",
  "setxattr",
  "shmat",
  "shmctl",
  "shmdt",
  "shmget",
  "shutdown",
  "sigaltstack",
  "signalfd",
  "signalfd4",
  "sigprocmask",
  "sigreturn",
  "socketcall",
  "socketpair",
  "splice",
  "stat",
  "stat64",
  "statfs",
  "statfs64",
  "statx",
  "symlink",
  "symlinkat",
  "sync",
  "sync_file_range",
  "syncfs",
  "sysinfo",
  "tee",
  "tgkill",
  "time",
  "timer_create",
  "timer_delete",
  "timer_getoverrun",
  "timer_gettime",
  "timer_gettime64",
  "timer_settime",
  "timer_settime64",
  "timerfd_create",
  "timerfd_gettime",
  "timerfd_gettime64",
  "timerfd_settime",
  "timerfd_settime64",
  "times",
  "tkill",
  "truncate",
  "truncate64",
  "ugetrlimit",
  "umask",
  "uname",
  "unlink",
  "unlinkat",
  "utime",
  "utimensat",
  "utimensat_time64",
  "utimes",
  "vfork",
  "vmsplice",
  "wait4",
  "waitid",
  "waitpid",
  "write",
  "writev",
};

/* Allowed from Linux 4.8 on: before it, ptrace could change a syscall after the filter had
   seen it, a way around seccomp. */
static const char *const allow_since_4_8[] = { "process_vm_readv", "process_vm_writev", "ptrace" };

/* Allowed only for the architecture family that has them (names of the other families are
   unknown to the native architecture and skipped anyway, but the profile says so). */
static const char *const allow_x86[] = { "arch_prctl", "modify_ldt" };
static const char *const allow_arm[]
    = { "arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
        "breakpoint",       "cacheflush",          "set_tls" };
static const char *const allow_ppc[] = { "sync_file_range2", "swapcontext" };
static const char *const allow_s390[]
    = { "s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr" };
static const char *const allow_riscv[] = { "riscv_flush_icache" };

/* Allowed when the container keeps the capability (the syscall would fail without it anyway;
   the filter closes the kernel attack surface behind it). */
static const struct
{
  int cap;
  const char *name;
} allow_with_cap[] = {
  { CAP_DAC_READ_SEARCH, "open_by_handle_at" },
  { CAP_SYS_ADMIN, "bpf" },
  { CAP_SYS_ADMIN, "clone" },
  { CAP_SYS_ADMIN, "clone3" },
  { CAP_SYS_ADMIN, "fanotify_init" },
  { CAP_SYS_ADMIN, "fsconfig" },
  { CAP_SYS_ADMIN, "fsmount" },
  { CAP_SYS_ADMIN, "fsopen" },
  { CAP_SYS_ADMIN, "fspick" },
  { CAP_SYS_ADMIN, "lookup_dcookie" },
  { CAP_SYS_ADMIN, "mount" },
  { CAP_SYS_ADMIN, "mount_setattr" },
  { CAP_SYS_ADMIN, "move_mount" },
  { CAP_SYS_ADMIN, "open_tree" },
  { CAP_SYS_ADMIN, "perf_event_open" },
  { CAP_SYS_ADMIN, "quotactl" },
  { CAP_SYS_ADMIN, "quotactl_fd" },
  { CAP_SYS_ADMIN, "setdomainname" },
  { CAP_SYS_ADMIN, "sethostname" },
  { CAP_SYS_ADMIN, "setns" },
  { CAP_SYS_ADMIN, "syslog" },
  { CAP_SYS_ADMIN, "umount" },
  { CAP_SYS_ADMIN, "umount2" },
  { CAP_SYS_ADMIN, "unshare" },
  { CAP_SYS_BOOT, "reboot" },
  { CAP_SYS_CHROOT, "chroot" },
  { CAP_SYS_MODULE, "delete_module" },
  { CAP_SYS_MODULE, "init_module" },
  { CAP_SYS_MODULE, "finit_module" },
  { CAP_SYS_PACCT, "acct" },
  { CAP_SYS_PTRACE, "kcmp" },
  { CAP_SYS_PTRACE, "pidfd_getfd" },
  { CAP_SYS_PTRACE, "process_madvise" },
  { CAP_SYS_PTRACE, "process_vm_readv" },
  { CAP_SYS_PTRACE, "process_vm_writev" },
  { CAP_SYS_PTRACE, "ptrace" },
  { CAP_SYS_RAWIO, "iopl" },
  { CAP_SYS_RAWIO, "ioperm" },
  { CAP_SYS_TIME, "settimeofday" },
  { CAP_SYS_TIME, "stime" },
  { CAP_SYS_TIME, "clock_settime" },
  { CAP_SYS_TIME, "clock_settime64" },
  { CAP_SYS_TTY_CONFIG, "vhangup" },
  { CAP_SYS_NICE, "get_mempolicy" },
  { CAP_SYS_NICE, "mbind" },
  { CAP_SYS_NICE, "set_mempolicy" },
  { CAP_SYS_NICE, "set_mempolicy_home_node" },
  { CAP_SYSLOG, "syslog" },
  { CAP_BPF, "bpf" },
  { CAP_PERFMON, "perf_event_open" },
};

/* personality(2) values a container may set: PER_LINUX, PER_LINUX32, with UNAME26, and the
   0xffffffff query; the others (READ_IMPLIES_EXEC, ADDR_NO_RANDOMIZE, …) weaken the process. */
static const uint64_t personality_ok[] = { 0x0, 0x8, 0x20000, 0x20008, 0xffffffff };

/* Every namespace flag clone(2) knows: without CAP_SYS_ADMIN clone may make none. */
#define CLONE_NS_FLAGS                                                                             \
  (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET         \
   | CLONE_NEWCGROUP)

#define AF_VSOCK_FAMILY 40

/* Part of the cache key: bump whenever a table above or a rule of build_profile changes, so that
   a program compiled from the old profile is never loaded by a new cimg. */
#define PROFILE_VERSION 1

/* The cache (see docs/confinement.md): <store>/seccomp/<sha256 of the key>.bpf, a header then
   the profile's instructions as libseccomp exported them. */
#define CACHE_DIR "seccomp"
#define CACHE_MAGIC "CIMGBPF"
#define CACHE_FORMAT 1

struct cimg_seccomp_prog
{
  uint32_t audit_arch; /* the native architecture, for the ENOSYS filter */
  int32_t max_native;  /* highest native syscall number the profile names; -1: no ENOSYS filter */
  uint32_t len;        /* instructions of the profile */
  struct sock_filter insns[];
};

/* Native byte order, no padding: the file is only ever read on the machine that wrote it (the
   architecture is in the key and checked again). */
struct cache_header
{
  char magic[8];       /* CACHE_MAGIC */
  uint32_t format;     /* CACHE_FORMAT */
  uint32_t len;        /* instructions that follow */
  uint32_t audit_arch; /* struct cimg_seccomp_prog's */
  int32_t max_native;
  char key[64]; /* hex sha256 of the key: a file copied under another key's name is refused */
  char sum[64]; /* hex sha256 of everything before sum, then of the instructions */
};
_Static_assert(offsetof (struct cache_header, sum) == 88, "cache_header has padding");
_Static_assert(sizeof (struct cache_header) % sizeof (struct sock_filter) == 0,
               "the cache file is a whole number of instructions");

/* What the compiled program depends on: the profile's version, libseccomp's (its syscall
   tables and code generator), the native architecture, whether the kernel is 4.8 or newer, and
   the capabilities the profile looks at. */
struct key
{
  uint64_t caps;
  uint32_t arch;
  bool since_4_8;
  char hex[65]; /* sha256 of the above as text: the cache file's name */
};

static void
seccomp_releasep (scmp_filter_ctx *ctx)
{
  if (*ctx)
    seccomp_release (*ctx);
}

void
cimg_seccomp_prog_free (struct cimg_seccomp_prog *p)
{
  free (p);
}

void
cimg_seccomp_prog_freep (struct cimg_seccomp_prog **p)
{
  cimg_seccomp_prog_free (*p);
  *p = NULL;
}

struct build
{
  scmp_filter_ctx ctx;
  int max_native; /* highest native syscall number named in a rule */
  cimg_error_t *err;
};

/* Add a rule for name; names unknown to this libseccomp or to every architecture of the filter
   are skipped, as runc skips them. */
static int
add_rule (struct build *b, uint32_t action, const char *name, unsigned nargs,
          const struct scmp_arg_cmp *args)
{
  int nr = seccomp_syscall_resolve_name (name);
  if (nr == __NR_SCMP_ERROR)
    return 0;
  int r = seccomp_rule_add_array (b->ctx, action, nr, nargs, args);
  /* A pseudo number (negative): a syscall the native architecture lacks, added where it
     exists; libseccomp answers -EDOM/-EINVAL when it exists on none of the filter's. */
  if (r < 0 && nr < 0)
    return 0;
  if (r < 0)
    return cimg_error_set (b->err, -r, "seccomp: rule for %s: %s", name, strerror (-r));
  if (nr > b->max_native)
    b->max_native = nr;
  return 0;
}

static int
add_names (struct build *b, const char *const *names, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (add_rule (b, SCMP_ACT_ALLOW, names[i], 0, NULL) < 0)
      return -1;
  return 0;
}

static bool
kernel_at_least (int major, int minor)
{
  struct utsname u;
  int ma = 0, mi = 0;
  if (uname (&u) < 0 || sscanf (u.release, "%d.%d", &ma, &mi) != 2)
    return false;
  return ma > major || (ma == major && mi >= minor);
}

/* The capabilities some rule of the profile depends on. Only these go into the key, so that
   e.g. --cap-add NET_ADMIN shares the default set's program. */
static uint64_t
relevant_caps (void)
{
  uint64_t m = UINT64_C (1) << CAP_SYS_ADMIN;
  for (size_t i = 0; i < ARRAY_SIZE (allow_with_cap); i++)
    m |= UINT64_C (1) << allow_with_cap[i].cap;
  return m;
}

/* util's SHA-256 with the "sha256:" prefix left off: the cache's names and sums are bare hex. */
struct sha
{
  struct cimg_sha256 *h;
};

static void
sha_init (struct sha *s)
{
  s->h = cimg_sha256_new ();
}

static void
sha_update (struct sha *s, const void *buf, size_t len)
{
  cimg_sha256_update (s->h, buf, len);
}

static void
sha_hex (struct sha *s, char out[64])
{
  char d[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_final (s->h, d);
  cimg_sha256_free (s->h);
  s->h = NULL;
  memcpy (out, d + strlen ("sha256:"), 64);
}

static void
make_key (uint64_t capmask, struct key *k)
{
  k->caps = capmask & relevant_caps ();
  k->arch = seccomp_arch_native ();
  k->since_4_8 = kernel_at_least (4, 8);
  const struct scmp_version *v = seccomp_version ();
  char text[256];
  int n = snprintf (text, sizeof text,
                    "cimg default seccomp profile %d, cache format %d\nlibseccomp %u.%u.%u\n"
                    "arch %#x\nkernel >= 4.8: %d\ncaps %#llx\n",
                    PROFILE_VERSION, CACHE_FORMAT, v ? v->major : 0, v ? v->minor : 0,
                    v ? v->micro : 0, k->arch, k->since_4_8, (unsigned long long)k->caps);
  struct sha s;
  sha_init (&s);
  sha_update (&s, text, (size_t)n);
  sha_hex (&s, k->hex);
  k->hex[64] = '\0';
}

/* The profile for k, as a libseccomp context (NULL with err set). */
static scmp_filter_ctx
build_profile (const struct key *k, int *max_native, cimg_error_t *err)
{
#define HAS(c) ((k->caps & (UINT64_C (1) << (c))) != 0)
  __attribute__ ((cleanup (seccomp_releasep))) scmp_filter_ctx ctx
      = seccomp_init (SCMP_ACT_ERRNO (EPERM));
  if (ctx == NULL)
    {
      cimg_error_set (err, ENOMEM, "seccomp: seccomp_init failed");
      return NULL;
    }
  struct build b = { .ctx = ctx, .max_native = -1, .err = err };

  /* The caller of cimg_seccomp_load decides about NO_NEW_PRIVS; libseccomp would set it. */
  int r = seccomp_attr_set (ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (r < 0)
    {
      cimg_error_set (err, -r, "seccomp: unset NO_NEW_PRIVS attribute: %s", strerror (-r));
      return NULL;
    }

  /* A binary search on the syscall number rather than libseccomp's default linear chain: the
     same decisions (compared by emulating both programs over every syscall number of the three
     ABIs), fewer instructions run per syscall, and a load about twice as fast (~0.7 ms instead
     of ~1.5 ms here, measured: likely the kernel running the filter once per syscall number for
     its cache of always-allowed calls). A libseccomp without the attribute keeps the linear
     program. */
  seccomp_attr_set (ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

  uint32_t native = k->arch;
  if (native == SCMP_ARCH_X86_64)
    {
      /* As Docker's archMap: the 32-bit and x32 entry points reach the same kernel. */
      static const uint32_t sub[] = { SCMP_ARCH_X86, SCMP_ARCH_X32 };
      for (size_t i = 0; i < ARRAY_SIZE (sub); i++)
        {
          r = seccomp_arch_add (ctx, sub[i]);
          if (r < 0 && r != -EEXIST)
            {
              cimg_error_set (err, -r, "seccomp: add architecture %#x: %s", sub[i], strerror (-r));
              return NULL;
            }
        }
    }
  else if (native == SCMP_ARCH_AARCH64)
    {
      r = seccomp_arch_add (ctx, SCMP_ARCH_ARM);
      if (r < 0 && r != -EEXIST)
        {
          cimg_error_set (err, -r, "seccomp: add architecture arm: %s", strerror (-r));
          return NULL;
        }
    }

  if (add_names (&b, allow_always, ARRAY_SIZE (allow_always)) < 0)
    return NULL;
  if (k->since_4_8 && add_names (&b, allow_since_4_8, ARRAY_SIZE (allow_since_4_8)) < 0)
    return NULL;

  bool s390 = native == SCMP_ARCH_S390X || native == SCMP_ARCH_S390;
  int rc = 0;
  if (native == SCMP_ARCH_X86_64 || native == SCMP_ARCH_X32 || native == SCMP_ARCH_X86)
    /* arch_prctl for amd64 and x32, modify_ldt for those and i386. */
    rc = native == SCMP_ARCH_X86 ? add_names (&b, allow_x86 + 1, 1)
                                 : add_names (&b, allow_x86, ARRAY_SIZE (allow_x86));
  else if (native == SCMP_ARCH_AARCH64 || native == SCMP_ARCH_ARM)
    rc = add_names (&b, allow_arm, ARRAY_SIZE (allow_arm));
  else if (native == SCMP_ARCH_PPC64LE)
    rc = add_names (&b, allow_ppc, ARRAY_SIZE (allow_ppc));
  else if (s390)
    rc = add_names (&b, allow_s390, ARRAY_SIZE (allow_s390));
  else if (native == SCMP_ARCH_RISCV64)
    rc = add_names (&b, allow_riscv, ARRAY_SIZE (allow_riscv));
  if (rc < 0)
    return NULL;

  for (size_t i = 0; i < ARRAY_SIZE (allow_with_cap); i++)
    if (HAS (allow_with_cap[i].cap)
        && add_rule (&b, SCMP_ACT_ALLOW, allow_with_cap[i].name, 0, NULL) < 0)
      return NULL;

  if (!HAS (CAP_SYS_ADMIN))
    {
      /* clone without namespace flags; s390 passes the flags second. */
      struct scmp_arg_cmp flags = {
        .arg = s390 ? 1 : 0, .op = SCMP_CMP_MASKED_EQ, .datum_a = CLONE_NS_FLAGS, .datum_b = 0
      };
      if (add_rule (&b, SCMP_ACT_ALLOW, "clone", 1, &flags) < 0)
        return NULL;
      /* clone3 takes its flags in memory, out of a filter's reach: make it look absent, so
         that glibc (2.34+) falls back to clone, where the flags can be checked. */
      if (add_rule (&b, SCMP_ACT_ERRNO (ENOSYS), "clone3", 0, NULL) < 0)
        return NULL;
    }

  /* socket for every family but AF_VSOCK, which reaches the host's hypervisor sockets. */
  struct scmp_arg_cmp family
      = { .arg = 0, .op = SCMP_CMP_NE, .datum_a = AF_VSOCK_FAMILY, .datum_b = 0 };
  if (add_rule (&b, SCMP_ACT_ALLOW, "socket", 1, &family) < 0)
    return NULL;

  for (size_t i = 0; i < ARRAY_SIZE (personality_ok); i++)
    {
      struct scmp_arg_cmp p
          = { .arg = 0, .op = SCMP_CMP_EQ, .datum_a = personality_ok[i], .datum_b = 0 };
      if (add_rule (&b, SCMP_ACT_ALLOW, "personality", 1, &p) < 0)
        return NULL;
    }
  *max_native = b.max_native;
  return steal_pointer (&ctx);
#undef HAS
}

/* pread(2) exactly len bytes at off; a short file is an error (errno EIO). */
static int
pread_all (int fd, void *buf, size_t len, off_t off)
{
  char *p = buf;
  while (len > 0)
    {
      ssize_t n = pread (fd, p, len, off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          if (n == 0)
            errno = EIO;
          return -1;
        }
      p += n, len -= (size_t)n, off += n;
    }
  return 0;
}

/* Export ctx's BPF program (see confine-internal.h). */
struct cimg_seccomp_prog *
cimg_seccomp_prog_from_ctx (void *ctx, uint32_t audit_arch, int max_native, cimg_error_t *err)
{
  /* libseccomp 2.5 exports only to a file descriptor (seccomp_export_bpf_mem is 2.6's): a
     memfd, which no filesystem sees. */
  cleanup_close int fd = memfd_create ("cimg-seccomp", MFD_CLOEXEC);
  if (fd < 0)
    {
      cimg_error_sys (err, "seccomp: memfd_create");
      return NULL;
    }
  int r = seccomp_export_bpf (ctx, fd);
  if (r < 0)
    {
      cimg_error_set (err, -r, "seccomp: export the profile: %s", strerror (-r));
      return NULL;
    }
  off_t size = lseek (fd, 0, SEEK_CUR);
  if (size < 0)
    {
      cimg_error_sys (err, "seccomp: export the profile");
      return NULL;
    }
  size_t n = (size_t)size / sizeof (struct sock_filter);
  if (size == 0 || (size_t)size % sizeof (struct sock_filter) != 0 || n > BPF_MAXINSNS)
    {
      cimg_error_set (err, EINVAL,
                      "seccomp: libseccomp exported %lld bytes, not a program of 1 to %d "
                      "instructions",
                      (long long)size, BPF_MAXINSNS);
      return NULL;
    }
  cleanup_free struct cimg_seccomp_prog *p = xmalloc (sizeof *p + (size_t)size);
  p->audit_arch = audit_arch;
  p->max_native = max_native;
  p->len = (uint32_t)n;
  if (pread_all (fd, p->insns, (size_t)size, 0) < 0)
    {
      cimg_error_sys (err, "seccomp: read the exported profile");
      return NULL;
    }
  return steal_pointer (&p);
}

/* Build the profile for k with libseccomp and take its BPF program: the 15–20 ms that the
   cache saves. */
static struct cimg_seccomp_prog *
compile (const struct key *k, cimg_error_t *err)
{
  int max_native = -1;
  __attribute__ ((cleanup (seccomp_releasep))) scmp_filter_ctx ctx
      = build_profile (k, &max_native, err);
  if (ctx == NULL)
    return NULL;
  return cimg_seccomp_prog_from_ctx (ctx, k->arch, max_native, err);
}

static void
cache_sum (const struct cache_header *h, const struct sock_filter *insns, size_t n, char out[64])
{
  struct sha s;
  sha_init (&s);
  sha_update (&s, h, offsetof (struct cache_header, sum));
  sha_update (&s, insns, n * sizeof *insns);
  sha_hex (&s, out);
}

/* <store>/seccomp, made 0700 if missing; -1 when it cannot be used, which only costs a
   compilation: a directory (or a symlink) that is not this user's, or that others may write
   into, is not trusted. */
static int
cache_dir_open (int store_dirfd)
{
  if (mkdirat (store_dirfd, CACHE_DIR, 0700) < 0 && errno != EEXIST)
    return -1;
  cleanup_close int fd
      = openat (store_dirfd, CACHE_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0 || st.st_uid != geteuid () || (st.st_mode & 022) != 0)
    return -1;
  return steal_fd (&fd);
}

/* The program in dirfd/name, or NULL when there is none or it is not to be trusted: not a
   regular file of this user, a size that is not a header and 1..BPF_MAXINSNS instructions, a
   header of another format, key or architecture, or a checksum that does not match (truncated,
   bytes flipped). The caller then compiles and replaces it. */
static struct cimg_seccomp_prog *
cache_load (int dirfd, const char *name, const struct key *k)
{
  /* O_NONBLOCK: a FIFO under the name must not hang the run (fstat refuses it next). */
  cleanup_close int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0 || !S_ISREG (st.st_mode) || st.st_uid != geteuid ()
      || (st.st_mode & 022) != 0)
    return NULL;
  const size_t hsz = sizeof (struct cache_header), isz = sizeof (struct sock_filter);
  if (st.st_size < (off_t)(hsz + isz) || ((size_t)st.st_size - hsz) % isz != 0
      || ((size_t)st.st_size - hsz) / isz > BPF_MAXINSNS)
    return NULL;
  size_t n = ((size_t)st.st_size - hsz) / isz;
  struct cache_header h;
  cleanup_free struct cimg_seccomp_prog *p = xmalloc (sizeof *p + n * isz);
  if (pread_all (fd, &h, hsz, 0) < 0 || pread_all (fd, p->insns, n * isz, (off_t)hsz) < 0)
    return NULL;
  if (memcmp (h.magic, CACHE_MAGIC, sizeof h.magic) != 0 || h.format != CACHE_FORMAT || h.len != n
      || h.audit_arch != k->arch || h.max_native < -1 || memcmp (h.key, k->hex, sizeof h.key) != 0)
    return NULL;
  char sum[64];
  cache_sum (&h, p->insns, n, sum);
  if (memcmp (sum, h.sum, sizeof sum) != 0)
    return NULL;
  p->audit_arch = h.audit_arch;
  p->max_native = h.max_native;
  p->len = h.len;
  return steal_pointer (&p);
}

/* Atomically (temp file, rename): a reader sees the old file, the new one, or none, never
   half of one. Concurrent runs that both missed write the same bytes; the last rename wins. */
static int
cache_store (int dirfd, const char *name, const struct key *k, const struct cimg_seccomp_prog *p,
             cimg_error_t *err)
{
  size_t isz = p->len * sizeof (struct sock_filter);
  size_t total = sizeof (struct cache_header) + isz;
  cleanup_free char *buf = xzalloc (total);
  struct cache_header *h = (struct cache_header *)buf;
  memcpy (h->magic, CACHE_MAGIC, sizeof CACHE_MAGIC);
  h->format = CACHE_FORMAT;
  h->len = p->len;
  h->audit_arch = p->audit_arch;
  h->max_native = p->max_native;
  memcpy (h->key, k->hex, sizeof h->key);
  memcpy (buf + sizeof *h, p->insns, isz);
  cache_sum (h, p->insns, p->len, h->sum);
  return cimg_write_file_atomic_at (dirfd, name, buf, total, 0600, err);
}

int
cimg_seccomp_prepare (int store_dirfd, char *const *caps, struct cimg_seccomp_prog **out,
                      cimg_error_t *err)
{
  *out = NULL;
  uint64_t capmask;
  if (cimg_caps_to_mask (caps, &capmask, err) < 0)
    return cimg_error_wrap (err, "seccomp");
  struct key k;
  make_key (capmask, &k);
  char name[sizeof k.hex + 4];
  snprintf (name, sizeof name, "%s.bpf", k.hex);

  cleanup_close int dirfd = store_dirfd >= 0 ? cache_dir_open (store_dirfd) : -1;
  if (dirfd >= 0 && (*out = cache_load (dirfd, name, &k)) != NULL)
    return 0;
  struct cimg_seccomp_prog *p = compile (&k, err);
  if (p == NULL)
    return -1;
  /* The cache only saves time: a store that cannot take the file (read-only, full) still
     runs the container, with the program just compiled. */
  cimg_error_t cerr = { 0 };
  if (dirfd >= 0)
    cache_store (dirfd, name, &k, p, &cerr);
  cimg_error_clear (&cerr);
  *out = p;
  return 0;
}

/* The second filter (see the top of the file): ENOSYS above max_nr for the native
   architecture; everything else is left to the profile. */
static int
load_enosys_filter (uint32_t audit_arch, int max_nr, cimg_error_t *err)
{
  struct sock_filter insns[] = {
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, arch)),
    BPF_JUMP (BPF_JMP | BPF_JEQ | BPF_K, audit_arch, 0, 4),
    BPF_STMT (BPF_LD | BPF_W | BPF_ABS, offsetof (struct seccomp_data, nr)),
    /* x32 numbers carry bit 30 on the x86-64 audit arch: the profile decides for them. */
    BPF_JUMP (BPF_JMP | BPF_JGE | BPF_K, 0x40000000u, 2, 0),
    BPF_JUMP (BPF_JMP | BPF_JGT | BPF_K, (uint32_t)max_nr, 0, 1),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (ENOSYS & SECCOMP_RET_DATA)),
    BPF_STMT (BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  struct sock_fprog prog = { .len = ARRAY_SIZE (insns), .filter = insns };
  if (prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
    return cimg_error_sys (err, "seccomp: load the ENOSYS filter");
  return 0;
}

/* Two system calls, nothing allocated: safe in the container's process after a fork of a
   multi-threaded one too. The kernel checks the program again (seccomp_check_filter), so even
   a cache file that passed every check cannot make it run anything but a seccomp filter. */
int
cimg_seccomp_load (const struct cimg_seccomp_prog *p, cimg_error_t *err)
{
  struct sock_fprog prog
      = { .len = (unsigned short)p->len, .filter = (struct sock_filter *)p->insns };
  /* seccomp(2) with no flags, as libseccomp's seccomp_load does with its default attributes
     (no TSYNC, no LOG); prctl on kernels before 3.17, which lack it. */
  long r = syscall (SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0U, &prog);
  if (r < 0 && errno == ENOSYS)
    r = prctl (PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
  if (r < 0)
    {
      int e = errno;
      return cimg_error_set (err, e, "seccomp: load the default profile: %s%s", strerror (e),
                             e == EACCES ? " (neither NO_NEW_PRIVS nor CAP_SYS_ADMIN)" : "");
    }
  if (p->max_native >= 0 && load_enosys_filter (p->audit_arch, p->max_native, err) < 0)
    return -1;
  return 0;
}

/* Compiled here, not cached: for callers without a store. libseccomp allocates: call this in a
   process forked from a single-threaded one (or before any lock may be held). */
int
cimg_seccomp_apply_default (char *const *caps, cimg_error_t *err)
{
  cleanup_seccomp_prog struct cimg_seccomp_prog *p = NULL;
  if (cimg_seccomp_prepare (-1, caps, &p, err) < 0)
    return -1;
  return cimg_seccomp_load (p, err);
}
