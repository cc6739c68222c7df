/* exec: a new process in a running container. It joins the container's namespaces (setns on a
   pidfd of its process, or on /proc/PID/ns/<name>; the mount namespace last: its root is the
   container's pivoted root) and its cgroup (the directories its record keeps), then confines
   itself as the container's process was (seccomp, user, capabilities, no-new-privileges)
   before execve. docs/runtime.md (exec) says why each step is where it is. */
#include "runtime/runtime-internal.h"
#include "runtime/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h> /* struct clone_args, CLONE_INTO_CGROUP */
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

enum
{
  X_ERROR = 1,
  X_READY = 2,
  X_EXEC = 3,
  X_PTY = 4, /* the pty master rides along as SCM_RIGHTS */
};

struct xmsg
{
  int type;
  int code;
  char text[1024];
};

static void
xsend (int sock, int type, int code, const char *text)
{
  struct xmsg m = { .type = type, .code = code };
  if (text)
    snprintf (m.text, sizeof m.text, "%s", text);
  while (send (sock, &m, sizeof m, MSG_NOSIGNAL) < 0 && errno == EINTR)
    ;
}

static void
xsend_fd (int sock, int type, int fd)
{
  struct xmsg m = { .type = type };
  struct iovec iov = { &m, sizeof m };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  struct cmsghdr *c = CMSG_FIRSTHDR (&mh);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN (sizeof (int));
  memcpy (CMSG_DATA (c), &fd, sizeof fd);
  while (sendmsg (sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
    ;
}

static _Noreturn void
xfail (int sock, cimg_error_t *err)
{
  xsend (sock, X_ERROR, err->code, err->msg ? err->msg : "exec setup failed");
  _exit (1);
}

/* The namespaces joined in the child, in this order: the mount namespace last, since after it
   /proc/PID of the host is no longer reachable (the fds were opened before anyway) and it sets
   the root and cwd to the container's. The PID namespace is joined by cimg itself, before
   clone: setns(CLONE_NEWPID) applies to the children made afterwards. */
static const struct
{
  const char *name;
  int type;
} child_ns[] = {
  { "ipc", CLONE_NEWIPC },       { "uts", CLONE_NEWUTS }, { "net", CLONE_NEWNET },
  { "cgroup", CLONE_NEWCGROUP }, { "mnt", CLONE_NEWNS },
};

/* With a pidfd of the container's process (Linux 5.8+), one setns joins them all at once (the
   kernel installs the mount namespace last as well), one already shared with cimg included. */
#define CHILD_NS_FLAGS (CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET | CLONE_NEWCGROUP | CLONE_NEWNS)

static _Noreturn void
exec_child (const struct cimg_exec_spec *x, const struct cimg_seccomp_prog *filter,
            struct cimg_cgroup_join *join, int pidfd, const int *nsfds, const struct winsize *ws,
            int sock)
{
  cimg_error_t err = { 0 };
  const struct cimg_spec_process *p = &x->process;
  if (cimg_cgroup_join_self (join, &err) < 0)
    xfail (sock, &err);
  if (pidfd >= 0 && setns (pidfd, CHILD_NS_FLAGS) < 0)
    {
      cimg_error_sys (&err, "join the container's namespaces");
      xfail (sock, &err);
    }
  for (size_t i = 0; pidfd < 0 && i < ARRAY_SIZE (child_ns); i++)
    if (nsfds[i] >= 0 && setns (nsfds[i], child_ns[i].type) < 0)
      {
        cimg_error_sys (&err, "join the container's %s namespace", child_ns[i].name);
        xfail (sock, &err);
      }
  if (chdir ("/") < 0)
    {
      cimg_error_sys (&err, "chdir to the container's root");
      xfail (sock, &err);
    }
  if (!p->stdin_open && !(p->tty && !x->detach))
    {
      int nullfd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
      if (nullfd < 0 || dup2 (nullfd, 0) < 0)
        {
          cimg_error_sys (&err, "open /dev/null");
          xfail (sock, &err);
        }
      close (nullfd);
    }
  if (p->tty && !x->detach)
    {
      /* A session of its own, whose controlling terminal the pty becomes. */
      if (setsid () < 0)
        {
          cimg_error_sys (&err, "setsid");
          xfail (sock, &err);
        }
      int master = cimg_pty_setup_child (p->uid, ws, &err);
      if (master < 0)
        xfail (sock, &err);
      xsend_fd (sock, X_PTY, master);
      close (master);
    }
  if (x->detach)
    {
      int nullfd = open ("/dev/null", O_RDWR | O_CLOEXEC);
      if (nullfd < 0 || dup2 (nullfd, 0) < 0 || dup2 (nullfd, 1) < 0 || dup2 (nullfd, 2) < 0)
        {
          cimg_error_sys (&err, "open /dev/null");
          xfail (sock, &err);
        }
      close (nullfd);
      setsid ();
    }
  for (size_t i = 0; i < p->n_rlimits; i++)
    {
      struct rlimit rl
          = { .rlim_cur = (rlim_t)p->rlimits[i].soft, .rlim_max = (rlim_t)p->rlimits[i].hard };
      setrlimit (p->rlimits[i].resource, &rl);
    }
  /* The same order as the container's own process (docs/runtime.md): the filter while
     CAP_SYS_ADMIN is held, unless no-new-privileges, where it comes last. */
  if (filter && !x->no_new_privileges && cimg_seccomp_load (filter, &err) < 0)
    xfail (sock, &err);
  if (cimg_child_switch_user (p, &err) < 0 || cimg_caps_apply (x->caps, &err) < 0)
    xfail (sock, &err);
  if (x->no_new_privileges && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    {
      cimg_error_sys (&err, "PR_SET_NO_NEW_PRIVS");
      xfail (sock, &err);
    }
  if (filter && x->no_new_privileges && cimg_seccomp_load (filter, &err) < 0)
    xfail (sock, &err);
  if (chdir (p->cwd ? p->cwd : "/") < 0)
    {
      cimg_error_sys (&err, "chdir to %s in the container", p->cwd ? p->cwd : "/");
      xfail (sock, &err);
    }
  if (!x->detach)
    prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* The signals ignored in cimg, found by cimg while this process set itself up (send_ignored):
     they are all execve keeps of cimg's dispositions. Nothing comes when cimg is gone or
     could not put this process in the container's cgroup: then it must not run. */
  uint64_t ignored = 0;
  ssize_t got;
  do
    got = recv (sock, &ignored, sizeof ignored, 0);
  while (got < 0 && errno == EINTR);
  if (got != (ssize_t)sizeof ignored)
    _exit (1);
  for (int sig = 1; sig <= 64 && ignored; sig++)
    if (ignored & (1ULL << (sig - 1)))
      signal (sig, SIG_DFL);
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);
  /* Every fd of cimg but the socket (O_CLOEXEC: it goes at execve). */
  if (sock > 3)
    syscall (SYS_close_range, 3U, (unsigned)sock - 1, 0U);
  syscall (SYS_close_range, (unsigned)sock + 1, ~0U, 0U);
  xsend (sock, X_READY, 0, NULL);
  char msg[1024];
  int code = cimg_child_exec_command (p, msg, sizeof msg);
  xsend (sock, X_EXEC, code, msg);
  _exit (code);
}

static ssize_t
xrecv (int sock, struct xmsg *m, int *fd)
{
  struct iovec iov = { m, sizeof *m };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  ssize_t n = recvmsg (sock, &mh, MSG_CMSG_CLOEXEC);
  if (n > 0)
    for (struct cmsghdr *c = CMSG_FIRSTHDR (&mh); c; c = CMSG_NXTHDR (&mh, c))
      if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
        memcpy (fd, CMSG_DATA (c), sizeof (int));
  return n;
}

static volatile sig_atomic_t got_winch, got_chld;

static void
on_flag (int sig)
{
  if (sig == SIGWINCH)
    got_winch = 1;
  else
    got_chld = 1;
}

/* exec -t: the caller's terminal in raw mode (with -i), the pty's output to stdout, stdin
   into it, the window size after each SIGWINCH, until the process exited and what it wrote
   is drained. The terminal is restored on the way out. */
static void
pty_loop (int master, pid_t pid, bool stdin_open, int *status)
{
  struct cimg_pty_raw raw;
  cimg_pty_raw_begin (&raw, stdin_open);
  sigset_t block, old, during;
  sigemptyset (&block);
  sigaddset (&block, SIGCHLD);
  sigaddset (&block, SIGWINCH);
  sigprocmask (SIG_BLOCK, &block, &old);
  during = old;
  sigdelset (&during, SIGCHLD);
  sigdelset (&during, SIGWINCH);
  struct sigaction sa = { .sa_handler = on_flag }, oc, ow;
  sigemptyset (&sa.sa_mask);
  sigaction (SIGCHLD, &sa, &oc);
  sigaction (SIGWINCH, &sa, &ow);
  got_winch = got_chld = 0;
  fcntl (master, F_SETFL, fcntl (master, F_GETFL) | O_NONBLOCK);
  bool in_open = stdin_open, out_open = true, exited = false;
  while (out_open)
    {
      if (got_winch)
        {
          got_winch = 0;
          cimg_pty_copy_winsize (master);
        }
      if (got_chld || !exited)
        {
          got_chld = 0;
          if (!exited && waitpid (pid, status, WNOHANG) == pid)
            exited = true;
        }
      struct pollfd pf[2] = { { .fd = master, .events = POLLIN },
                              { .fd = in_open && !exited ? 0 : -1, .events = POLLIN } };
      /* Once it exited, only what the pty still holds: a process it left behind with the
         slave open must not keep cimg waiting. */
      struct timespec zero = { 0, 0 };
      int r = ppoll (pf, 2, exited ? &zero : NULL, &during);
      if (r < 0)
        continue;
      if (r == 0)
        break;
      if (pf[0].revents & (POLLIN | POLLHUP | POLLERR))
        {
          char buf[16384];
          ssize_t n = read (master, buf, sizeof buf);
          if (n > 0)
            {
              if (cimg_write_all (1, buf, (size_t)n) < 0)
                (void)0; /* a reader that went away: keep draining */
            }
          else if (n == 0 || errno != EAGAIN)
            out_open = false; /* EIO: every slave fd is closed */
        }
      if (pf[1].revents & (POLLIN | POLLHUP | POLLERR))
        {
          char buf[4096];
          ssize_t n = read (0, buf, sizeof buf);
          if (n <= 0)
            {
              /* EOF of the caller's stdin: the terminal's EOF character, as Docker sends. */
              in_open = false;
              struct termios t;
              char eof = 4;
              if (tcgetattr (master, &t) == 0)
                eof = (char)t.c_cc[VEOF];
              cimg_write_all (master, &eof, 1);
            }
          else
            cimg_write_all (master, buf, (size_t)n);
        }
    }
  if (!exited)
    while (waitpid (pid, status, 0) < 0 && errno == EINTR)
      ;
  sigaction (SIGCHLD, &oc, NULL);
  sigaction (SIGWINCH, &ow, NULL);
  sigprocmask (SIG_SETMASK, &old, NULL);
  cimg_pty_raw_end (&raw);
}

/* The signals cimg ignores (bit sig-1), for the child to reset before execve: a handler is reset
   by execve itself, SIG_IGN is inherited, and the exec'd process must start with the default
   dispositions whatever cimg's caller ignored (nohup's SIGHUP, a Python parent's SIGPIPE), as
   Docker's does. Querying costs a syscall per signal, like resetting: done here, in cimg, while
   the child joins the container, instead of 62 resets on the child's way to execve. */
static void
send_ignored (int sock)
{
  uint64_t ignored = 0;
  for (int sig = 1; sig <= 64 && sig < NSIG; sig++)
    {
      struct sigaction o;
      if (sig != SIGKILL && sig != SIGSTOP && sigaction (sig, NULL, &o) == 0
          && o.sa_handler == SIG_IGN)
        ignored |= 1ULL << (sig - 1);
    }
  while (send (sock, &ignored, sizeof ignored, MSG_NOSIGNAL) < 0 && errno == EINTR)
    ;
}

static volatile sig_atomic_t exec_child_pid;

static void
forward (int sig)
{
  if (exec_child_pid > 0)
    kill ((pid_t)exec_child_pid, sig);
}

/* Without setns on a pidfd: the container's namespace files, opened while its /proc/PID is
   reachable, and its PID namespace. */
static int
open_ns_files (pid_t target, int *nsfds, int *pidns, cimg_error_t *err)
{
  char path[64];
  for (size_t i = 0; i < ARRAY_SIZE (child_ns); i++)
    {
      snprintf (path, sizeof path, "/proc/%d/ns/%s", (int)target, child_ns[i].name);
      nsfds[i] = open (path, O_RDONLY | O_CLOEXEC);
      if (nsfds[i] < 0)
        return cimg_error_sys (err, "open %s", path);
      /* A namespace the container shares with cimg (the host's network, v1's cgroup
         namespace) needs no setns. */
      snprintf (path, sizeof path, "/proc/self/ns/%s", child_ns[i].name);
      struct stat a, b;
      if (fstat (nsfds[i], &a) == 0 && stat (path, &b) == 0 && a.st_ino == b.st_ino
          && a.st_dev == b.st_dev)
        {
          close (nsfds[i]);
          nsfds[i] = -1;
        }
    }
  snprintf (path, sizeof path, "/proc/%d/ns/pid", (int)target);
  *pidns = open (path, O_RDONLY | O_CLOEXEC);
  if (*pidns < 0)
    return cimg_error_sys (err, "open %s", path);
  return 0;
}

int
cimg_runtime_exec (const struct cimg_exec_spec *x, struct cimg_run_result *res, cimg_error_t *err)
{
  memset (res, 0, sizeof *res);
  if (x->process.args == NULL || x->process.args[0] == NULL)
    return cimg_error_set (err, EINVAL, "no command specified");

  int nsfds[ARRAY_SIZE (child_ns)];
  /* pidns: a pidfd of the container's process, or (by_pidfd false) its /proc/PID/ns/pid;
     ownpidns: the same of cimg itself. */
  int pidns = -1, ownpidns = -1, ret = -1;
  int sv[2] = { -1, -1 };
  int master = -1;
  struct cimg_cgroup_join join = { .into_fd = -1 };
  cleanup_seccomp_prog struct cimg_seccomp_prog *filter = NULL;
  for (size_t i = 0; i < ARRAY_SIZE (child_ns); i++)
    nsfds[i] = -1;

  /* A pidfd names the container's process for good (a PID could be reused meanwhile) and
     spares a dozen lookups of /proc/PID/ns/ and /proc/self/ns/ magic links; where setns does
     not take one (before Linux 5.8), the namespace files below. */
  pidns = (int)syscall (SYS_pidfd_open, x->pid, 0);
  bool by_pidfd = pidns >= 0;
  struct stat pst;
  if (by_pidfd && x->pid_ino > 0 && fstat (pidns, &pst) == 0 && (int64_t)pst.st_ino != x->pid_ino)
    {
      cimg_error_set (err, ESRCH, "the container's process %d has exited", (int)x->pid);
      goto out;
    }
  if (!by_pidfd && open_ns_files (x->pid, nsfds, &pidns, err) < 0)
    goto out;
  struct winsize ws = { 0 };
  if (x->process.tty && !x->detach)
    cimg_pty_caller_winsize (x->process.rows, x->process.cols, &ws);
  if (x->seccomp
      && cimg_seccomp_prepare_for (x->store_dirfd, x->seccomp_profile, x->caps, &filter, err) < 0)
    goto out;
  /* The directories kept in the record; without them (a container started by an older cimg),
     or when they do not hold up, the lookup through /proc/self/mountinfo. */
  cimg_error_t kept_err = { 0 };
  if (x->cgroup_dirs == NULL
      || cimg_cgroup_join_prepare_dirs (x->id, x->cgroup_dirs, &join, &kept_err) < 0)
    {
      cimg_error_clear (&kept_err);
      struct cimg_cgroup *cg = cimg_cgroup_open (x->id, err);
      int r = cg ? cimg_cgroup_join_prepare (cg, &join, err) : -1;
      cimg_cgroup_free (cg);
      if (r < 0)
        goto out;
    }
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    {
      cimg_error_sys (err, "socketpair");
      goto out;
    }
  /* cimg's own later children are born in the container's PID namespace; cimg stays where it
     is. */
  ownpidns = by_pidfd ? (int)syscall (SYS_pidfd_open, getpid (), 0)
                      : open ("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
  if (ownpidns < 0)
    {
      cimg_error_sys (err, "open cimg's own PID namespace");
      goto out;
    }
  /* Until it execs, the child is a copy of cimg inside the container's PID namespace: a
     process of the container could open its /proc/PID/exe (the first step of CVE-2019-5736).
     Non-dumpable, that is refused to anyone without CAP_SYS_PTRACE over us; execve resets it. */
  if (prctl (PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
    {
      cimg_error_sys (err, "prctl PR_SET_DUMPABLE");
      goto out;
    }
  int joined = setns (pidns, CLONE_NEWPID);
  if (joined < 0 && by_pidfd && errno == EINVAL)
    {
      /* A kernel with pidfds but without setns on them (before 5.8). */
      close (pidns);
      close (ownpidns);
      pidns = ownpidns = -1;
      by_pidfd = false;
      if (open_ns_files (x->pid, nsfds, &pidns, err) < 0)
        goto out;
      ownpidns = open ("/proc/self/ns/pid", O_RDONLY | O_CLOEXEC);
      if (ownpidns < 0)
        {
          cimg_error_sys (err, "open /proc/self/ns/pid");
          goto out;
        }
      joined = setns (pidns, CLONE_NEWPID);
    }
  if (joined < 0)
    {
      cimg_error_sys (err, "join the container's PID namespace");
      goto out;
    }
  fflush (stdout);
  fflush (stderr);
  pid_t pid = -1;
  bool into = false;
  if (join.into_fd >= 0)
    {
      struct clone_args ca = { .flags = CLONE_INTO_CGROUP,
                               .exit_signal = SIGCHLD,
                               .cgroup = (uint64_t)join.into_fd };
      pid = (pid_t)syscall (SYS_clone3, &ca, sizeof ca);
      into = pid >= 0;
    }
  if (!into)
    pid = fork ();
  if (pid < 0)
    {
      cimg_error_sys (err, "fork");
      if (setns (ownpidns, CLONE_NEWPID) < 0)
        cimg_error_sys (err, "fork; and return to cimg's PID namespace");
      goto out;
    }
  if (pid == 0)
    {
      close (sv[0]);
      exec_child (x, filter, &join, by_pidfd ? pidns : -1, nsfds, &ws, sv[1]);
    }
  /* Back to cimg's own: a later child of cimg (LeakSanitizer's tracer at exit, say) must not
     be born in the container. */
  if (setns (ownpidns, CLONE_NEWPID) < 0)
    {
      cimg_error_sys (err, "return to cimg's PID namespace");
      kill (pid, SIGKILL);
      waitpid (pid, NULL, 0);
      goto out;
    }
  close (sv[1]);
  sv[1] = -1;
  /* Into the unified cgroup where clone3 could not put it, and then (before the forwarding
     handlers below) the dispositions it inherited: the child waits for them before it runs
     anything of the caller's. */
  if (!into && cimg_cgroup_join_add_pid (&join, pid, err) < 0)
    {
      kill (pid, SIGKILL);
      while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
        ;
      goto out;
    }
  /* A child that failed its setup has closed its end: its error waits in the socket. */
  send_ignored (sv[0]);
  exec_child_pid = pid;
  struct sigaction sa = { .sa_handler = forward }, old[6];
  static const int fw[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
  sigemptyset (&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  for (size_t i = 0; i < ARRAY_SIZE (fw); i++)
    sigaction (fw[i], &sa, &old[i]);
  /* Without a pty or -d nothing from the child is needed while it runs: wait for it first, then
     read what it said (its messages stay in the socket). cimg then sleeps once, as nsenter does,
     instead of waking at its READY, at the EOF of its execve and at its exit: on a loaded
     machine each wake-up is a scheduling delay (docs/runtime.md). */
  bool reaped = false;
  int st = 0;
  if (!x->detach && !x->process.tty)
    {
      while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
        ;
      exec_child_pid = 0;
      reaped = true;
    }
  bool ready = false, failed = false;
  for (;;)
    {
      struct xmsg m;
      int fd = -1;
      ssize_t n = xrecv (sv[0], &m, &fd);
      if (fd >= 0 && m.type == X_PTY && master < 0)
        master = fd;
      else if (fd >= 0)
        close (fd);
      if (n < 0 && (errno == EINTR || errno == ECONNRESET))
        continue;
      if (n <= 0)
        {
          if (!ready)
            {
              cimg_error_set (err, EIO, "the exec'd process died during setup");
              failed = true;
            }
          break;
        }
      m.text[sizeof m.text - 1] = '\0';
      if (m.type == X_READY)
        ready = true;
      else if (m.type == X_ERROR)
        {
          cimg_error_set (err, m.code, "%s", m.text);
          failed = true;
          break;
        }
      else if (m.type == X_EXEC)
        {
          res->exec_error = m.code;
          res->exec_message = xstrdup (m.text);
          break;
        }
    }
  if (failed)
    {
      if (!reaped)
        {
          kill (pid, SIGKILL);
          while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
            ;
        }
      goto restore;
    }
  if (x->detach && !res->exec_error)
    ret = 0;
  else
    {
      if (!reaped && master >= 0 && !res->exec_error)
        pty_loop (master, pid, x->process.stdin_open, &st);
      else if (!reaped)
        while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
          ;
      res->status = st;
      ret = 0;
    }
restore:
  exec_child_pid = 0;
  for (size_t i = 0; i < ARRAY_SIZE (fw); i++)
    sigaction (fw[i], &old[i], NULL);
out:
  for (size_t i = 0; i < ARRAY_SIZE (child_ns); i++)
    if (nsfds[i] >= 0)
      close (nsfds[i]);
  if (pidns >= 0)
    close (pidns);
  if (ownpidns >= 0)
    close (ownpidns);
  if (sv[0] >= 0)
    close (sv[0]);
  if (sv[1] >= 0)
    close (sv[1]);
  if (master >= 0)
    close (master);
  cimg_cgroup_join_clear (&join);
  return ret;
}
