/* The spawner: cgroup, clone into new namespaces, the container's setup up to execve, and the
   parent's wait loop (signals, pty). See docs/runtime.md for why each step is where it is. */
#include "runtime/runtime-internal.h"
#include "runtime/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h> /* struct clone_args, CLONE_INTO_CGROUP */
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define DEFAULT_PATH "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* Messages from the container's process to cimg over a SOCK_SEQPACKET pair (one message per
   send). The socket is O_CLOEXEC in the child: EOF after MSG_READY means execve succeeded. */
enum
{
  MSG_ERROR = 1, /* setup failed: code = errno, text = message */
  MSG_PTY = 2,   /* the pty master rides along as SCM_RIGHTS */
  MSG_READY = 3, /* about to execve */
  MSG_EXEC = 4,  /* execve failed: code = 126 or 127 */
};

struct msg
{
  int type;
  int code;
  char text[1024];
};

/* Signals cimg forwards to the container (SIGWINCH is handled: it resizes the pty). */
static const int forwarded[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

void
cimg_run_result_clear (struct cimg_run_result *r)
{
  free (r->exec_message);
  memset (r, 0, sizeof *r);
}

int
cimg_runtime_exit_code (int status)
{
  if (WIFEXITED (status))
    return WEXITSTATUS (status);
  if (WIFSIGNALED (status))
    return 128 + WTERMSIG (status);
  return 125;
}

/* ---------------------------------------------------------------- the container's side */

static void
send_msg (int sock, int type, int code, const char *text, int fd)
{
  struct msg m = { .type = type, .code = code };
  if (text)
    snprintf (m.text, sizeof m.text, "%s", text);
  struct iovec iov = { &m, sizeof m };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
  if (fd >= 0)
    {
      mh.msg_control = u.buf;
      mh.msg_controllen = sizeof u.buf;
      struct cmsghdr *c = CMSG_FIRSTHDR (&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN (sizeof (int));
      memcpy (CMSG_DATA (c), &fd, sizeof fd);
    }
  while (sendmsg (sock, &mh, MSG_NOSIGNAL) < 0 && errno == EINTR)
    ;
}

static _Noreturn void
child_fail (int sock, cimg_error_t *err)
{
  send_msg (sock, MSG_ERROR, err->code, err->msg ? err->msg : "container setup failed", -1);
  _exit (1);
}

static const char *
env_get (char *const *env, const char *key)
{
  size_t n = strlen (key);
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp (env[i], key, n) == 0 && env[i][n] == '=')
      return env[i] + n + 1;
  return NULL;
}

/* execve args[0], looked up in PATH of the container's environment as Docker (runc) does.
   Returns only on failure, with the exit code Docker gives (127 not found, 126 cannot run)
   and its message. */
static int
exec_command (const struct cimg_spec_process *p, char *msg, size_t n)
{
  const char *cmd = p->args[0];
  if (strchr (cmd, '/'))
    {
      execve (cmd, p->args, p->env);
      int e = errno;
      if (e == ENOENT || e == ENOTDIR)
        {
          snprintf (msg, n, "exec: \"%.400s\": stat %.400s: %s", cmd, cmd, strerror (e));
          return 127;
        }
      snprintf (msg, n, "exec: \"%.900s\": %s", cmd, strerror (e));
      return 126;
    }
  const char *path = env_get (p->env, "PATH");
  if (path == NULL)
    path = DEFAULT_PATH;
  int denied = 0;
  char buf[4096];
  for (const char *d = path;; d++)
    {
      const char *e = strchrnul (d, ':');
      int len = (int)(e - d);
      /* An empty PATH element is the current directory, as in execvp. */
      snprintf (buf, sizeof buf, "%.*s%s%s", len, d, len ? "/" : "", cmd);
      execve (buf, p->args, p->env);
      if (errno == EACCES)
        denied = errno;
      else if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP && errno != ENAMETOOLONG)
        {
          snprintf (msg, n, "exec: \"%.900s\": %s", buf, strerror (errno));
          return 126;
        }
      if (*e == '\0')
        break;
      d = e;
    }
  if (denied)
    {
      snprintf (msg, n, "exec: \"%.900s\": permission denied", cmd);
      return 126;
    }
  snprintf (msg, n, "exec: \"%.900s\": executable file not found in $PATH", cmd);
  return 127;
}

/* Raw system calls, not glibc's wrappers: the child is cloned with fork semantics from a
   caller that may have threads (a monitor's, a layer sink's), and glibc's setgroups/setres*id
   then signal every thread of the copied thread list and wait for them for ever (a detached
   `cimg run` hung in setxid_mark_thread). The kernel calls change only this thread, which is
   the whole process here. */
static int
switch_user (const struct cimg_spec_process *p, cimg_error_t *err)
{
  if (syscall (SYS_setgroups, p->n_groups, p->groups) < 0)
    return cimg_error_sys (err, "setgroups");
  if (syscall (SYS_setresgid, p->gid, p->gid, p->gid) < 0)
    return cimg_error_sys (err, "setgid %u", (unsigned)p->gid);
  /* Keep the permitted set across setuid so that cimg_caps_apply can still choose it. */
  if (prctl (PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
    return cimg_error_sys (err, "PR_SET_KEEPCAPS");
  if (syscall (SYS_setresuid, p->uid, p->uid, p->uid) < 0)
    return cimg_error_sys (err, "setuid %u", (unsigned)p->uid);
  if (prctl (PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
    return cimg_error_sys (err, "PR_SET_KEEPCAPS");
  return 0;
}

static void
close_fds_from_3 (int keep)
{
  /* Everything the caller had open (a pipe, a socket, a file of the store) stays outside:
     close every fd above 2 but the sync socket, which is O_CLOEXEC and goes at execve. */
  if (keep > 3)
    syscall (SYS_close_range, 3U, (unsigned)keep - 1, 0U);
  if (syscall (SYS_close_range, (unsigned)keep + 1, ~0U, 0U) < 0)
    {
      long max = sysconf (_SC_OPEN_MAX);
      for (int fd = 3; fd < max; fd++)
        if (fd != keep)
          close (fd);
    }
}

static _Noreturn void
child_main (const struct cimg_spec *spec, const struct cimg_seccomp_prog *filter,
            struct cimg_cgroup_join *join, int sock, const struct winsize *ws, const int *outfds)
{
  cimg_error_t err = { 0 };
  const struct cimg_spec_process *p = &spec->process;
  char go;

  /* The v1 hierarchies first, so that the whole setup (the mounts' memory too) is the
     container's: the process moves itself, which costs no RCU grace period (confine.h). */
  if (cimg_cgroup_join_self (join, &err) < 0)
    child_fail (sock, &err);

  /* Where clone3 could not put this process into the unified cgroup, cimg writes its pid there
     while it sets itself up (on v1 the first write to a cgroup.procs waits for an RCU grace
     period, 5–15 ms; the mounts below overlap it); "go" says it is done. Only on v2 is the wait
     first: the container gets a cgroup namespace rooted at its cgroup (as Docker does on v2),
     possible only once the process is in it, and before seccomp forbids unshare. On v1 Docker keeps
     the host's cgroup namespace, and so does cimg. A kernel without them is no error. */
  bool v2 = strcmp (cimg_cgroup_mode (), "v2") == 0;
  if (v2)
    {
      if (read (sock, &go, 1) != 1)
        _exit (1);
      if (unshare (CLONE_NEWCGROUP) < 0 && errno != EINVAL)
        {
          cimg_error_sys (&err, "unshare the cgroup namespace");
          child_fail (sock, &err);
        }
    }
  int rootfd = cimg_rootfs_mount (spec, &err);
  if (rootfd < 0 || cimg_rootfs_populate (spec, rootfd, &err) < 0)
    child_fail (sock, &err);
  /* Docker creates a missing working directory. */
  if (p->cwd && strcmp (p->cwd, "/") != 0)
    {
      int fd = cimg_openat_in_root (rootfd, p->cwd, O_PATH, 0);
      if (fd < 0 && errno == ENOENT && cimg_mkdir_p_at (rootfd, p->cwd + 1, 0755, NULL) < 0)
        {
          cimg_error_sys (&err, "create the working directory %s", p->cwd);
          child_fail (sock, &err);
        }
      if (fd >= 0)
        close (fd);
    }
  if (!p->stdin_open && !p->tty)
    {
      int nullfd = open ("/dev/null", O_RDONLY | O_CLOEXEC);
      if (nullfd < 0 || dup2 (nullfd, 0) < 0)
        {
          cimg_error_sys (&err, "open /dev/null");
          child_fail (sock, &err);
        }
      close (nullfd);
    }
  /* output: stdout and stderr are the write ends of cimg's pipes (dup2 clears their
     O_CLOEXEC; the originals go with the other fds before execve). */
  if (outfds && !p->tty && (dup2 (outfds[0], 1) < 0 || dup2 (outfds[1], 2) < 0))
    {
      cimg_error_sys (&err, "redirect the container's output");
      child_fail (sock, &err);
    }
  if (cimg_rootfs_pivot (rootfd, &err) < 0 || cimg_rootfs_finish (spec, &err) < 0)
    child_fail (sock, &err);
  close (rootfd);
  if (spec->hostname && sethostname (spec->hostname, strlen (spec->hostname)) < 0)
    {
      cimg_error_sys (&err, "sethostname");
      child_fail (sock, &err);
    }
  if (spec->network == CIMG_NET_PRIVATE && cimg_net_lo_up (&err) < 0)
    child_fail (sock, &err);
  for (size_t i = 0; i < p->n_rlimits; i++)
    {
      struct rlimit rl
          = { .rlim_cur = (rlim_t)p->rlimits[i].soft, .rlim_max = (rlim_t)p->rlimits[i].hard };
      if (setrlimit (p->rlimits[i].resource, &rl) < 0)
        {
          cimg_error_sys (&err, "setrlimit %d to %llu:%llu", p->rlimits[i].resource,
                          p->rlimits[i].soft, p->rlimits[i].hard);
          child_fail (sock, &err);
        }
    }
  /* A session of its own (as runc): the pty, if any, becomes its controlling terminal. */
  if (setsid () < 0)
    {
      cimg_error_sys (&err, "setsid");
      child_fail (sock, &err);
    }
  if (p->tty)
    {
      int master = cimg_pty_setup_child (p->uid, ws, &err);
      if (master < 0)
        child_fail (sock, &err);
      send_msg (sock, MSG_PTY, 0, NULL, master);
      close (master);
    }

  /* Without no-new-privileges the filter must be loaded while CAP_SYS_ADMIN is still held
     (the kernel's rule for unprivileged filters), so before the user switch and the drop of
     capabilities; Docker's profile allows every call that follows. With no-new-privileges it
     is loaded last, so that it confines as little of cimg's own setup as possible. */
  bool seccomp_late = spec->no_new_privileges;
  if (filter && !seccomp_late && cimg_seccomp_load (filter, &err) < 0)
    child_fail (sock, &err);
  if (switch_user (p, &err) < 0 || cimg_caps_apply (spec->caps, &err) < 0)
    child_fail (sock, &err);
  if (spec->no_new_privileges && prctl (PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
    {
      cimg_error_sys (&err, "PR_SET_NO_NEW_PRIVS");
      child_fail (sock, &err);
    }
  if (filter && seccomp_late && cimg_seccomp_load (filter, &err) < 0)
    child_fail (sock, &err);
  /* As the container's user, so that a directory it may not enter is an error. */
  if (chdir (p->cwd ? p->cwd : "/") < 0)
    {
      cimg_error_sys (&err, "chdir to cwd (\"%s\") set in config.json failed", p->cwd);
      child_fail (sock, &err);
    }
  /* Die with cimg (a foreground run has nobody else to reap or kill it). Set after the user
     switch, which clears it. */
  prctl (PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  /* cimg may have died before that (a build killed while its RUN step started): then no signal
     comes, and a "go" it sent may still wait in the socket. Nobody holds the socket's other end
     any more. (getppid () cannot tell: in a new PID namespace it is always 0.) */
  struct pollfd pf = { .fd = sock, .events = POLLRDHUP };
  if (poll (&pf, 1, 0) > 0 && (pf.revents & (POLLHUP | POLLRDHUP | POLLERR)))
    _exit (1);

  /* cimg's blocked signals and ignored dispositions must not leak into the container. */
  for (int sig = 1; sig < NSIG; sig++)
    if (sig != SIGKILL && sig != SIGSTOP)
      signal (sig, SIG_DFL);
  sigset_t none;
  sigemptyset (&none);
  sigprocmask (SIG_SETMASK, &none, NULL);

  /* Nothing of the container's own runs before it is in its cgroup. */
  if (!v2 && read (sock, &go, 1) != 1)
    _exit (1);
  close_fds_from_3 (sock);
  send_msg (sock, MSG_READY, 0, NULL, -1);
  char msg[1024];
  int code = exec_command (p, msg, sizeof msg);
  send_msg (sock, MSG_EXEC, code, msg, -1);
  _exit (code);
}

/* ---------------------------------------------------------------- cimg's side */

static int
recv_msg (int sock, struct msg *m, int *fd)
{
  struct iovec iov = { m, sizeof *m };
  union
  {
    char buf[CMSG_SPACE (sizeof (int))];
    struct cmsghdr align;
  } u;
  struct msghdr mh
      = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
  ssize_t n;
  /* ECONNRESET: the child exited with "go" unread in its queue; the kernel reports that (once)
     before the messages the child queued, which the next call returns. */
  do
    n = recvmsg (sock, &mh, MSG_CMSG_CLOEXEC);
  while (n < 0 && (errno == EINTR || errno == ECONNRESET));
  if (n <= 0)
    return (int)n;
  for (struct cmsghdr *c = CMSG_FIRSTHDR (&mh); c; c = CMSG_NXTHDR (&mh, c))
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
      memcpy (fd, CMSG_DATA (c), sizeof (int));
  m->text[sizeof m->text - 1] = '\0';
  return 1;
}

struct loop
{
  cimg_output_fn output; /* NULL: to cimg's fds */
  void *output_data;
  int out[2]; /* read ends of the stdout and stderr pipes (output), or -1 */
  pid_t pid;
  int sfd;
  int master;      /* pty master, or -1 */
  bool stdin_open; /* forward stdin into the pty */
  int status;
  bool exited;
};

static void
copy_out (int from, int to, bool *open, const struct loop *l)
{
  char buf[16384];
  for (;;)
    {
      ssize_t n = read (from, buf, sizeof buf);
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        {
          /* EIO: every slave fd is closed; EAGAIN: nothing more for now. */
          if (n == 0 || errno != EAGAIN)
            *open = false;
          return;
        }
      if (l->output)
        l->output (l->output_data, to, buf, (size_t)n);
      else if (cimg_write_all (to, buf, (size_t)n) < 0)
        {
          /* The reader went away: keep draining so that the container never blocks on a
             full pty. */
          continue;
        }
      if ((size_t)n < sizeof buf)
        return;
    }
}

static int
wait_loop (struct loop *l, cimg_error_t *err)
{
  bool master_open = l->master >= 0, in_open = l->master >= 0 && l->stdin_open;
  if (l->master >= 0)
    fcntl (l->master, F_SETFL, fcntl (l->master, F_GETFL) | O_NONBLOCK);
  bool pipe_open[2] = { l->out[0] >= 0, l->out[1] >= 0 };
  for (int k = 0; k < 2; k++)
    if (l->out[k] >= 0)
      fcntl (l->out[k], F_SETFL, fcntl (l->out[k], F_GETFL) | O_NONBLOCK);
  while (!l->exited || master_open || pipe_open[0] || pipe_open[1])
    {
      struct pollfd pf[5];
      int n = 0;
      pf[n++] = (struct pollfd){ .fd = l->sfd, .events = POLLIN };
      int mi = -1, ii = -1;
      if (master_open)
        mi = n, pf[n++] = (struct pollfd){ .fd = l->master, .events = POLLIN };
      if (in_open && !l->exited)
        ii = n, pf[n++] = (struct pollfd){ .fd = 0, .events = POLLIN };
      int oi[2] = { -1, -1 };
      for (int k = 0; k < 2; k++)
        if (pipe_open[k])
          oi[k] = n, pf[n++] = (struct pollfd){ .fd = l->out[k], .events = POLLIN };
      /* Once the process is gone, drain what the pty still holds and stop: a process of the
         container that kept the slave open dies with its PID namespace anyway. */
      int r = poll (pf, (nfds_t)n, l->exited ? 0 : -1);
      if (r < 0 && errno != EINTR)
        return cimg_error_sys (err, "poll");
      if (r <= 0)
        {
          if (l->exited)
            break;
          continue;
        }
      if (pf[0].revents & POLLIN)
        {
          struct signalfd_siginfo si;
          while (read (l->sfd, &si, sizeof si) == (ssize_t)sizeof si)
            {
              int sig = (int)si.ssi_signo;
              if (sig == SIGCHLD)
                {
                  int st;
                  pid_t w;
                  while ((w = waitpid (-1, &st, WNOHANG)) > 0)
                    if (w == l->pid)
                      l->status = st, l->exited = true;
                }
              else if (sig == SIGWINCH)
                {
                  if (l->master >= 0)
                    cimg_pty_copy_winsize (l->master);
                }
              else if (!l->exited)
                kill (l->pid, sig);
            }
        }
      if (mi >= 0 && pf[mi].revents & (POLLIN | POLLHUP | POLLERR))
        copy_out (l->master, 1, &master_open, l);
      for (int k = 0; k < 2; k++)
        if (oi[k] >= 0 && pf[oi[k]].revents & (POLLIN | POLLHUP | POLLERR))
          copy_out (l->out[k], k + 1, &pipe_open[k], l);
      if (ii >= 0 && pf[ii].revents & (POLLIN | POLLHUP | POLLERR))
        {
          char buf[4096];
          ssize_t k = read (0, buf, sizeof buf);
          if (k <= 0)
            in_open = false;
          else
            cimg_write_all (l->master, buf, (size_t)k);
        }
    }
  return 0;
}

static void
kill_and_reap (pid_t pid)
{
  kill (pid, SIGKILL);
  while (waitpid (pid, NULL, 0) < 0 && errno == EINTR)
    ;
}

int
cimg_runtime_run (const struct cimg_spec *spec, const struct cimg_run_hooks *hooks,
                  struct cimg_run_result *res, cimg_error_t *err)
{
  return cimg_runtime_run_captured (spec, hooks, NULL, NULL, res, err);
}

int
cimg_runtime_run_captured (const struct cimg_spec *spec, const struct cimg_run_hooks *hooks,
                           cimg_output_fn output, void *output_data, struct cimg_run_result *res,
                           cimg_error_t *err)
{
  memset (res, 0, sizeof *res);
  const struct cimg_spec_process *p = &spec->process;
  if (p->args == NULL || p->args[0] == NULL)
    return cimg_error_set (err, EINVAL, "no command specified");

  struct winsize ws = { 0 };
  if (p->tty)
    cimg_pty_caller_winsize (p->rows, p->cols, &ws);

  /* The profile is compiled (or read from the store's cache) here, before clone: the child
     inherits the program and only loads it, and a cache hit costs microseconds. */
  cleanup_seccomp_prog struct cimg_seccomp_prog *filter = NULL;
  if (spec->seccomp
      && cimg_seccomp_prepare_for (spec->root_dirfd, spec->seccomp_profile, spec->caps, &filter,
                                   err)
             < 0)
    return -1;

  struct cimg_cgroup *cg = cimg_cgroup_create (spec->id, &spec->limits, err);
  if (cg == NULL)
    return -1;
  /* Docker's device allow-list, before any process joins: a device node shipped in an image
     layer (or made with mknod) cannot be opened. */
  struct cimg_device_rule rules[spec->n_devices + 1];
  for (size_t i = 0; i < spec->n_devices; i++)
    rules[i] = (struct cimg_device_rule){ .type = spec->devices[i].type,
                                          .major = spec->devices[i].major,
                                          .minor = spec->devices[i].minor,
                                          .access = spec->devices[i].access };
  if (!spec->privileged && cimg_cgroup_set_devices (cg, rules, spec->n_devices, err) < 0)
    {
      cimg_error_t derr = { 0 };
      cimg_cgroup_destroy (cg, &derr);
      cimg_error_clear (&derr);
      cimg_cgroup_free (cg);
      return -1;
    }

  int ret = -1;
  pid_t pid = -1;
  int sv[2] = { -1, -1 };
  struct cimg_cgroup_join join = { .into_fd = -1 };
  cleanup_close int sfd = -1, master = -1, oldcwd = -1;
  /* output: [0] stdout, [1] stderr; each a pipe {read, write}. */
  int outp[2][2] = { { -1, -1 }, { -1, -1 } };
  bool capture = output && !p->tty;
  struct cimg_pty_raw raw = { .on = false };

  /* Signals are blocked before clone so that none is lost between clone and the loop; the
     child restores an empty mask before execve. */
  sigset_t mask, oldmask;
  sigemptyset (&mask);
  sigaddset (&mask, SIGCHLD);
  sigaddset (&mask, SIGWINCH);
  sigaddset (&mask, SIGPIPE);
  for (size_t i = 0; i < ARRAY_SIZE (forwarded); i++)
    sigaddset (&mask, forwarded[i]);
  sigprocmask (SIG_BLOCK, &mask, &oldmask);
  sigset_t sfd_mask = mask;
  sigdelset (&sfd_mask, SIGPIPE);
  sfd = signalfd (-1, &sfd_mask, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0)
    {
      cimg_error_sys (err, "signalfd");
      goto out;
    }
  if (socketpair (AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
    {
      cimg_error_sys (err, "socketpair");
      goto out;
    }
  if (capture && (pipe2 (outp[0], O_CLOEXEC) < 0 || pipe2 (outp[1], O_CLOEXEC) < 0))
    {
      cimg_error_sys (err, "pipe");
      goto out;
    }

  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC | SIGCHLD;
  if (spec->network == CIMG_NET_PRIVATE)
    flags |= CLONE_NEWNET;
  /* The store's directory becomes the cwd across clone: CLONE_NEWNS moves a process's root
     and cwd to the new namespace's copies of their mounts, but not its open fds, and overlay
     and bind mounts refuse paths that start from a mount of another namespace. So the child
     names everything relative to its cwd. cimg's own cwd is restored right after. */
  if (cimg_cgroup_join_prepare (cg, &join, err) < 0)
    goto out;
  oldcwd = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (oldcwd < 0 || fchdir (spec->root_dirfd) < 0)
    {
      cimg_error_sys (err, "chdir to the store");
      goto out;
    }
  /* clone with fork semantics (no new stack): the child gets a copy of this address space,
     as with fork, which keeps it simple and keeps ASAN's view of the stack valid. Raw, since
     glibc's clone() wants a separate stack; so no atfork handler runs: cimg is single-threaded
     here and the child never calls raise() or abort(). */
  /* clone3 (fork semantics too: no stack given) straight into the unified cgroup where there
     is one, so that cimg writes no pid anywhere; the plain clone and cimg_cgroup_add_pid where
     the kernel lacks it (before 5.7) or refuses the cgroup. */
  bool into = false;
  if (join.into_fd >= 0)
    {
      struct clone_args ca = { .flags = (flags & ~(unsigned long)CSIGNAL) | CLONE_INTO_CGROUP,
                               .exit_signal = SIGCHLD,
                               .cgroup = (uint64_t)join.into_fd };
      pid = (pid_t)syscall (SYS_clone3, &ca, sizeof ca);
      into = pid >= 0;
    }
  /* Without clone3 the unified cgroup (v2, hybrid) is still to join: cimg adds the pid below
     (the v1 hierarchies again, which is harmless). */
  bool add_pid = join.into_fd >= 0 && !into;
  if (!into)
    pid = (pid_t)syscall (SYS_clone, flags, NULL, NULL, NULL, NULL);
  if (pid < 0)
    {
      cimg_error_sys (err, "clone");
      goto out;
    }
  if (pid == 0)
    {
      close (sv[0]);
      int wfds[2] = { outp[0][1], outp[1][1] };
      child_main (spec, filter, &join, sv[1], &ws, capture ? wfds : NULL);
    }
  close (sv[1]);
  sv[1] = -1;
  for (int k = 0; k < 2; k++)
    if (outp[k][1] >= 0)
      {
        close (outp[k][1]);
        outp[k][1] = -1;
      }
  cimg_cgroup_join_clear (&join);
  if (fchdir (oldcwd) < 0)
    {
      cimg_error_sys (err, "restore the working directory");
      goto fail_child;
    }

  if (add_pid && cimg_cgroup_add_pid (cg, pid, err) < 0)
    goto fail_child;
  /* A child that failed its setup already (v1: it sets up before this) has closed its end:
     the write fails with EPIPE, and its error message is waiting to be read below. */
  if (send (sv[0], "g", 1, MSG_NOSIGNAL) != 1 && errno != EPIPE)
    {
      cimg_error_sys (err, "start the container");
      goto fail_child;
    }
  bool ready = false;
  for (;;)
    {
      struct msg m;
      int fd = -1;
      int r = recv_msg (sv[0], &m, &fd);
      if (r < 0)
        {
          cimg_error_sys (err, "read from the container");
          goto fail_child;
        }
      if (r == 0)
        {
          if (ready)
            break;
          cimg_error_set (err, EIO, "the container's process died during setup");
          goto fail_child;
        }
      if (m.type == MSG_PTY && fd >= 0)
        master = fd;
      else if (fd >= 0)
        close (fd);
      if (m.type == MSG_READY)
        ready = true;
      else if (m.type == MSG_ERROR)
        {
          cimg_error_set (err, m.code, "%s", m.text);
          goto fail_child;
        }
      else if (m.type == MSG_EXEC)
        {
          res->exec_error = m.code;
          res->exec_message = xstrdup (m.text);
          break;
        }
    }
  close (sv[0]);
  sv[0] = -1;

  if (!res->exec_error && hooks && hooks->started)
    {
      cleanup_strv char **dirs = cimg_cgroup_dirs (cg);
      if (hooks->started (hooks->data, pid, dirs, err) < 0)
        goto fail_child;
    }

  if (master >= 0)
    cimg_pty_raw_begin (&raw, p->stdin_open);
  struct loop l = { .output = output,
                    .output_data = output_data,
                    .out = { outp[0][0], outp[1][0] },
                    .pid = pid,
                    .sfd = sfd,
                    .master = master,
                    .stdin_open = p->stdin_open };
  if (wait_loop (&l, err) < 0)
    goto fail_child;
  if (!l.exited)
    {
      while (waitpid (pid, &l.status, 0) < 0 && errno == EINTR)
        ;
    }
  res->status = l.status;
  pid = -1;
  struct cimg_cgroup_stats st = { 0 };
  cimg_error_t serr = { 0 };
  if (cimg_cgroup_stats (cg, &st, &serr) == 0)
    res->oom_killed = st.oom_killed;
  cimg_error_clear (&serr);
  ret = 0;
  goto out;

fail_child:
  kill_and_reap (pid);
  pid = -1;
out:
  cimg_cgroup_join_clear (&join);
  cimg_pty_raw_end (&raw);
  /* cimg's cwd, should clone have failed after the chdir to the store (a no-op otherwise). */
  if (oldcwd >= 0 && fchdir (oldcwd) < 0 && ret == 0)
    ret = cimg_error_sys (err, "restore the working directory");
  if (sv[0] >= 0)
    close (sv[0]);
  if (sv[1] >= 0)
    close (sv[1]);
  for (int k = 0; k < 2; k++)
    for (int e = 0; e < 2; e++)
      if (outp[k][e] >= 0)
        close (outp[k][e]);
  {
    cimg_error_t derr = { 0 };
    if (cimg_cgroup_destroy (cg, &derr) < 0 && ret == 0)
      {
        /* The container ran; a cgroup that cannot be removed is still an error to report. */
        *err = derr;
        derr = (cimg_error_t){ 0 };
        ret = -1;
      }
    cimg_error_clear (&derr);
  }
  cimg_cgroup_free (cg);
  /* Drop any SIGCHLD/SIGWINCH still pending before unblocking, so that the default
     dispositions do not act on them late. */
  struct timespec zero = { 0, 0 };
  while (sigtimedwait (&mask, NULL, &zero) > 0)
    ;
  sigprocmask (SIG_SETMASK, &oldmask, NULL);
  return ret;
}

/* For exec (runtime/exec.c): the same last steps as the container's own process. */
int
cimg_child_exec_command (const struct cimg_spec_process *p, char *msg, size_t n)
{
  return exec_command (p, msg, n);
}

int
cimg_child_switch_user (const struct cimg_spec_process *p, cimg_error_t *err)
{
  return switch_user (p, err);
}
