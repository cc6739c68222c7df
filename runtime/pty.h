/* runtime/pty.h: the pty of `run -t` and `exec -t`, one implementation for spawn.c and exec.c:
   the child's side (a pty of the container's own devpts as its controlling terminal) and
   cimg's (the caller's terminal in raw mode, its window size relayed). Internal to runtime/. */
#ifndef CIMG_RUNTIME_PTY_H
#define CIMG_RUNTIME_PTY_H

#include <stdbool.h>
#include <sys/ioctl.h>
#include <sys/types.h>
#include <termios.h>

#include "util/util.h"

/* In the container's process, in its mount namespace (after pivot_root or setns), already the
   leader of a session of its own: open a pty of the container's devpts (/dev/pts/ptmx, so that
   its slave is a /dev/pts/N that exists inside and `tty` can name), give the slave to uid, set
   its window size to *ws unless that is 0x0, make it the controlling terminal and fds 0-2.
   Returns the master (O_CLOEXEC), which the caller hands to cimg and closes; -1 with err set. */
int cimg_pty_setup_child (uid_t uid, const struct winsize *ws, cimg_error_t *err);

/* The caller's window size (of fd 0, else fd 1); 0x0 when neither is a terminal. rows and cols,
   when both are set (--tty-size, an attach's resize), win over the terminal's. */
void cimg_pty_caller_winsize (unsigned rows, unsigned cols, struct winsize *ws);

/* After SIGWINCH: the caller's window size onto master; the kernel then sends SIGWINCH to the
   pty's foreground process group in the container. */
void cimg_pty_copy_winsize (int master);

/* The caller's terminal (fd 0) in raw mode while its input goes into the pty: keys like ^C
   reach the container's process as bytes, and its pty echoes. */
struct cimg_pty_raw
{
  struct termios saved;
  bool on;
};

/* Raw mode when stdin_open and fd 0 is a terminal; r->on says whether it was set. */
void cimg_pty_raw_begin (struct cimg_pty_raw *r, bool stdin_open);
/* Restore the terminal if cimg_pty_raw_begin changed it. */
void cimg_pty_raw_end (struct cimg_pty_raw *r);

#endif
