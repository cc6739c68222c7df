/* cimg_cgroup_freeze (runtime/cgroup.c), which commit --pause uses: a process in the cgroup
   stops making progress while frozen and goes on after the thaw, through the v1 freezer and
   through cgroup v2's cgroup.freeze (the hybrid machine's unified mount, forced). Needs root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/confine-internal.h"
#include "runtime/confine.h"
#include "tests/unit/fixture.h"

struct fixture
{
  char id[64];
  const char *mode; /* forced cgroup mode, NULL: the machine's */
  volatile unsigned long *counter;
  pid_t kid;
};

static int seq;

static void
sleep_ms (long ms)
{
  struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
  nanosleep (&ts, NULL);
}

static int
setup (void **state, const char *mode)
{
  struct fixture *f = xzalloc (sizeof *f);
  snprintf (f->id, sizeof f->id, "cimgfreeze-%d-%d", (int)getpid (), seq++);
  f->mode = mode;
  f->counter
      = mmap (NULL, sizeof *f->counter, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (f->counter == MAP_FAILED)
    return -1;
  *state = f;
  return 0;
}

static int
setup_default (void **state)
{
  return setup (state, NULL);
}

static int
setup_v1 (void **state)
{
  return setup (state, "v1");
}

static int
setup_v2 (void **state)
{
  return setup (state, "v2");
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  int r = test_cgroup_destroy (f->id, f->mode);
  if (f->kid > 0)
    {
      kill (f->kid, SIGKILL);
      waitpid (f->kid, NULL, 0);
    }
  munmap ((void *)f->counter, sizeof *f->counter);
  free (f);
  return r;
}

/* True once *counter is above v, polled for up to ms milliseconds. */
static bool
counter_above (struct fixture *f, unsigned long v, long ms)
{
  for (long i = 0; i < ms; i++)
    {
      if (*f->counter > v)
        return true;
      sleep_ms (1);
    }
  return *f->counter > v;
}

static void
test_freeze_thaw (void **state)
{
  struct fixture *f = *state;
  if (geteuid () != 0)
    skip ();
  cimg_cgroup_force_mode_for_tests (f->mode);
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = cimg_cgroup_create (f->id, NULL, &err);
  if (cg == NULL)
    {
      if (f->mode && strcmp (f->mode, "v2") == 0 && strcmp (cimg_cgroup_mode (), "v1") == 0)
        skip (); /* no unified mount to force */
      fail_msg ("create: %s", err.msg);
    }
  /* An empty cgroup freezes at once. */
  if (cimg_cgroup_freeze (cg, true, &err) < 0)
    fail_msg ("freeze (empty): %s", err.msg);
  if (cimg_cgroup_freeze (cg, false, &err) < 0)
    fail_msg ("thaw (empty): %s", err.msg);

  int go[2];
  assert_int_equal (pipe (go), 0);
  f->kid = fork ();
  assert_true (f->kid >= 0);
  if (f->kid == 0)
    {
      char c;
      close (go[1]);
      if (read (go[0], &c, 1) != 1)
        _exit (1);
      for (;;)
        {
          (*f->counter)++;
          sleep_ms (1);
        }
    }
  close (go[0]);
  if (cimg_cgroup_add_pid (cg, f->kid, &err) < 0)
    fail_msg ("add_pid: %s", err.msg);
  assert_int_equal (write (go[1], "g", 1), 1);
  close (go[1]);
  assert_true (counter_above (f, 0, 5000));

  if (cimg_cgroup_freeze (cg, true, &err) < 0)
    fail_msg ("freeze: %s", err.msg);
  unsigned long at = *f->counter;
  sleep_ms (300);
  assert_int_equal (*f->counter, at); /* not one step while frozen */
  /* Freezing again is no error. */
  if (cimg_cgroup_freeze (cg, true, &err) < 0)
    fail_msg ("freeze again: %s", err.msg);

  if (cimg_cgroup_freeze (cg, false, &err) < 0)
    fail_msg ("thaw: %s", err.msg);
  assert_true (counter_above (f, at, 5000));
  cimg_cgroup_free (cg);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    { "freeze_thaw (the machine's layout)", test_freeze_thaw, setup_default, teardown, NULL },
    { "freeze_thaw (v1 freezer)", test_freeze_thaw, setup_v1, teardown, NULL },
    { "freeze_thaw (v2 cgroup.freeze)", test_freeze_thaw, setup_v2, teardown, NULL },
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
