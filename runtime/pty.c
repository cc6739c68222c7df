/* runtime/pty.c: see pty.h. */
#include "runtime/pty.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#ifndef TIOCGPTPEER
#define TIOCGPTPEER _IO ('T', 0x41)
#endif

int
cimg_pty_setup_child (uid_t uid, const struct winsize *ws, cimg_error_t *err)
{
  /* The container's devpts, never the host's: a pty of the host's devpts would not exist in
     the container's /dev/pts. */
  cleanup_close int master = open ("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (master < 0)
    return cimg_error_sys (err, "open /dev/pts/ptmx in the container");
  int unlock = 0;
  if (ioctl (master, TIOCSPTLCK, &unlock) < 0)
    return cimg_error_sys (err, "unlock the pty");
  /* TIOCGPTPEER (4.13) opens the slave from the master, without a path lookup that a file of
     the container could redirect; the name is the fallback. */
  int slave = ioctl (master, TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (slave < 0)
    {
      int n;
      char name[64];
      if (ioctl (master, TIOCGPTN, &n) < 0)
        return cimg_error_sys (err, "pty number");
      snprintf (name, sizeof name, "/dev/pts/%d", n);
      slave = open (name, O_RDWR | O_NOCTTY | O_CLOEXEC);
      if (slave < 0)
        return cimg_error_sys (err, "open %s", name);
    }
  int r = 0;
  if (ws->ws_row && ws->ws_col)
    ioctl (slave, TIOCSWINSZ, ws);
  if (fchown (slave, uid, (gid_t)-1) < 0)
    r = cimg_error_sys (err, "chown the pty");
  else if (ioctl (slave, TIOCSCTTY, 0) < 0)
    r = cimg_error_sys (err, "set the controlling terminal");
  /* The slave may itself be one of 0-2 when the caller had those closed: it stays, without
     O_CLOEXEC, as dup2 would have made it. */
  for (int fd = 0; fd < 3 && r == 0; fd++)
    if ((slave == fd ? fcntl (fd, F_SETFD, 0) : dup2 (slave, fd)) < 0)
      r = cimg_error_sys (err, "dup2 the pty");
  if (slave > 2 || r < 0)
    close (slave);
  if (r < 0)
    return -1;
  return steal_fd (&master);
}

void
cimg_pty_caller_winsize (unsigned rows, unsigned cols, struct winsize *ws)
{
  memset (ws, 0, sizeof *ws);
  if (ioctl (0, TIOCGWINSZ, ws) < 0 && ioctl (1, TIOCGWINSZ, ws) < 0)
    memset (ws, 0, sizeof *ws);
  if (rows && cols)
    {
      ws->ws_row = (unsigned short)rows;
      ws->ws_col = (unsigned short)cols;
    }
}

void
cimg_pty_copy_winsize (int master)
{
  struct winsize ws;
  if (ioctl (0, TIOCGWINSZ, &ws) == 0 || ioctl (1, TIOCGWINSZ, &ws) == 0)
    ioctl (master, TIOCSWINSZ, &ws);
}

void
cimg_pty_raw_begin (struct cimg_pty_raw *r, bool stdin_open)
{
  r->on = false;
  if (!stdin_open || !isatty (0) || tcgetattr (0, &r->saved) < 0)
    return;
  struct termios t = r->saved;
  cfmakeraw (&t);
  r->on = tcsetattr (0, TCSANOW, &t) == 0;
}

void
cimg_pty_raw_end (struct cimg_pty_raw *r)
{
  if (r->on)
    tcsetattr (0, TCSANOW, &r->saved);
  r->on = false;
}
