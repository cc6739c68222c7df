/* cimg attach, and the attached half of cimg start -a/-i: a client of the monitor's
   attach.sock (runtime/monitor.h has the protocol). The container's output comes as frames of
   stdout and stderr; the caller's stdin goes back as plain bytes. See docs/runtime.md. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "runtime/monitor.h"
#include "runtime/runtime.h"
#include "store/container.h"

/* Docker's default detach keys: ctrl-p ctrl-q. */
static const unsigned char detach_keys[] = { 0x10, 0x11 };

/* The window size of the caller's terminal onto the container's pty. Its slave is the
   container's fds 0-2 (/proc/PID/fd/N reopens that very pty, whatever devpts it is on); the
   kernel sends SIGWINCH to its foreground process group. */
static void
resize_container_tty (pid_t pid)
{
  struct winsize ws;
  if (pid <= 0 || (ioctl (0, TIOCGWINSZ, &ws) < 0 && ioctl (1, TIOCGWINSZ, &ws) < 0))
    return;
  for (int k = 0; k < 3; k++)
    {
      char p[64];
      snprintf (p, sizeof p, "/proc/%d/fd/%d", (int)pid, k);
      int fd = open (p, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
      if (fd < 0)
        continue;
      bool ok = isatty (fd) && ioctl (fd, TIOCSWINSZ, &ws) == 0;
      close (fd);
      if (ok)
        return;
    }
}

/* Write every complete frame of buf[0..*len) to stdout/stderr; keep the rest. */
static void
drain_frames (char *buf, size_t *len)
{
  size_t off = 0;
  while (*len - off >= CIMG_ATTACH_HEADER)
    {
      const unsigned char *h = (const unsigned char *)buf + off;
      size_t n = (size_t)h[4] << 24 | (size_t)h[5] << 16 | (size_t)h[6] << 8 | h[7];
      if (*len - off < CIMG_ATTACH_HEADER + n)
        break;
      int to = h[0] == 2 ? 2 : 1;
      /* A reader that went away (a closed pipe) must not end the attach early. */
      if (cimg_write_all (to, buf + off + CIMG_ATTACH_HEADER, n) < 0)
        (void)0;
      off += CIMG_ATTACH_HEADER + n;
    }
  memmove (buf, buf + off, *len - off);
  *len -= off;
}

int
cli_attach_io (int sock, pid_t pid, bool tty, bool send_stdin, bool sig_proxy, bool *detached)
{
  *detached = false;
  struct termios saved;
  bool raw = false;
  if (tty && send_stdin && isatty (0) && tcgetattr (0, &saved) == 0)
    {
      struct termios t = saved;
      cfmakeraw (&t);
      raw = tcsetattr (0, TCSANOW, &t) == 0;
    }
  if (tty)
    resize_container_tty (pid);
  static const int proxied[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };
  sigset_t mask, old;
  sigemptyset (&mask);
  sigaddset (&mask, SIGWINCH);
  sigaddset (&mask, SIGPIPE);
  if (sig_proxy && !tty)
    for (size_t i = 0; i < ARRAY_SIZE (proxied); i++)
      sigaddset (&mask, proxied[i]);
  sigprocmask (SIG_BLOCK, &mask, &old);
  int sfd = signalfd (-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  size_t cap = 65536 + CIMG_ATTACH_HEADER, len = 0;
  cleanup_free char *buf = xmalloc (cap);
  bool in_open = send_stdin;
  size_t held = 0; /* bytes of the detach sequence seen so far */
  int rc = 0;
  for (;;)
    {
      struct pollfd pf[3] = { { .fd = sock, .events = POLLIN },
                              { .fd = sfd, .events = POLLIN },
                              { .fd = in_open ? 0 : -1, .events = POLLIN } };
      if (poll (pf, 3, -1) < 0)
        {
          if (errno == EINTR)
            continue;
          rc = -1;
          break;
        }
      if (pf[1].revents & POLLIN)
        {
          struct signalfd_siginfo si;
          while (read (sfd, &si, sizeof si) == (ssize_t)sizeof si)
            {
              if (si.ssi_signo == SIGWINCH)
                {
                  if (tty)
                    resize_container_tty (pid);
                }
              else if (si.ssi_signo != SIGPIPE && pid > 0)
                kill (pid, (int)si.ssi_signo);
            }
        }
      if (pf[2].revents & (POLLIN | POLLHUP | POLLERR))
        {
          unsigned char in[4096], out[4096 + sizeof detach_keys];
          ssize_t n = read (0, in, sizeof in);
          if (n <= 0)
            {
              in_open = false;
              shutdown (sock, SHUT_WR);
            }
          else
            {
              size_t o = 0;
              for (ssize_t i = 0; i < n; i++)
                {
                  if (tty && in[i] == detach_keys[held])
                    {
                      if (++held == sizeof detach_keys)
                        {
                          *detached = true;
                          break;
                        }
                      continue;
                    }
                  /* Not the sequence after all: what was held back goes too. */
                  for (size_t k = 0; k < held; k++)
                    out[o++] = detach_keys[k];
                  held = 0;
                  if (tty && in[i] == detach_keys[0])
                    {
                      held = 1;
                      continue;
                    }
                  out[o++] = in[i];
                }
              if (o && cimg_write_all (sock, out, o) < 0)
                in_open = false;
              if (*detached)
                break;
            }
        }
      if (pf[0].revents & (POLLIN | POLLHUP | POLLERR))
        {
          if (cap - len < 16384)
            buf = xrealloc (buf, cap *= 2);
          ssize_t n = read (sock, buf + len, cap - len);
          if (n < 0 && errno == EINTR)
            continue;
          if (n <= 0)
            break;
          len += (size_t)n;
          drain_frames (buf, &len);
        }
    }
  if (sfd >= 0)
    close (sfd);
  struct timespec zero = { 0, 0 };
  while (sigtimedwait (&mask, NULL, &zero) > 0)
    ;
  sigprocmask (SIG_SETMASK, &old, NULL);
  if (raw)
    tcsetattr (0, TCSANOW, &saved);
  return rc;
}

/* The exit code of the run that pid was, once the monitor recorded it: it writes the state
   before it hangs up, so this is at once unless the monitor died (then the record says exited
   too, as soon as the process is gone). A restart policy may have started it again already:
   ExitCode is still the last exit's. */
int
cli_attached_exit_code (struct cimg_store *s, struct cimg_container *ctr, pid_t pid)
{
  for (int i = 0; i < 500; i++)
    {
      cimg_error_t e = { 0 };
      if (cimg_container_reload (s, ctr, &e) < 0)
        {
          cimg_error_clear (&e);
          return EXIT_FAIL;
        }
      pid_t now = cimg_container_pid (ctr);
      if (now <= 0 || now != pid)
        return cimg_container_exit_code (ctr);
      struct timespec ts = { 0, 10 * 1000000L };
      nanosleep (&ts, NULL);
    }
  return cimg_container_exit_code (ctr);
}

int
cmd_attach (struct cli *c, int argc, char **argv)
{
  enum
  {
    O_NO_STDIN = 0x100,
    O_SIG_PROXY,
    O_DETACH_KEYS,
  };
  static const struct option longopts[]
      = { { "no-stdin", no_argument, NULL, O_NO_STDIN },
          { "sig-proxy", optional_argument, NULL, O_SIG_PROXY },
          { "detach-keys", required_argument, NULL, O_DETACH_KEYS },
          { 0 } };
  bool no_stdin = false, sig_proxy = true;
  int r;
  while ((r = cli_getopt (c, argc, argv, "", longopts)) != -1)
    switch (r)
      {
      case O_NO_STDIN:
        no_stdin = true;
        break;
      case O_SIG_PROXY:
        if (optarg == NULL || strcmp (optarg, "true") == 0)
          sig_proxy = true;
        else if (strcmp (optarg, "false") == 0)
          sig_proxy = false;
        else
          return cli_usage_error (c, "invalid argument \"%s\" for \"--sig-proxy\" flag", optarg);
        break;
      case O_DETACH_KEYS:
        if (strcmp (optarg, "ctrl-p,ctrl-q") != 0)
          return cli_usage_error (c, "--detach-keys: only the default ctrl-p,ctrl-q");
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (optind + 1 != argc)
    return cli_usage_error (c, "\"%s\" requires exactly 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = NULL;
  cleanup_container struct cimg_container *ctr = NULL;
  int rc = cli_one_container (c, argv[optind], 0, &s, &ctr);
  if (rc != 0)
    return rc;
  cimg_error_t err = { 0 };
  pid_t pid = cimg_container_pid (ctr);
  if (pid <= 0)
    {
      fprintf (stderr, "cimg: You cannot attach to a stopped container, start it first\n");
      return EXIT_FAIL;
    }
  cleanup_close int sock = cimg_monitor_attach (s, ctr, &err);
  if (sock < 0)
    return cli_fail (&err);
  json_t *cfg = json_object_get (ctr->config, "Config");
  bool tty = json_is_true (json_object_get (cfg, "Tty"));
  bool open_stdin = json_is_true (json_object_get (cfg, "OpenStdin"));
  bool detached;
  if (cli_attach_io (sock, pid, tty, open_stdin && !no_stdin, sig_proxy, &detached) < 0)
    {
      cimg_error_sys (&err, "attach to %s", argv[optind]);
      return cli_fail (&err);
    }
  if (detached)
    return 0;
  return cli_attached_exit_code (s, ctr, pid);
}
