/* Fixtures shared by the unit tests: a store in a fresh temporary directory, and the end of a
   test cgroup. Include after <cmocka.h>. Static inline: each test program uses a different
   subset. */
#ifndef CIMG_TESTS_FIXTURE_H
#define CIMG_TESTS_FIXTURE_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>

#include "runtime/confine-internal.h"
#include "runtime/confine.h"
#include "store/store.h"
#include "util/util.h"

/* Makes a directory /tmp/cimg-PROGRAM-XXXXXX into dir (size bytes) and opens a store at
   dir/root: the directory is the test's to put other things beside the store. Fails the test
   on error. */
static inline struct cimg_store *
temp_store_open (char *dir, size_t size)
{
  extern char *program_invocation_short_name;
  snprintf (dir, size, "/tmp/cimg-%s-XXXXXX", program_invocation_short_name);
  if (mkdtemp (dir) == NULL)
    fail_msg ("mkdtemp %s: %s", dir, strerror (errno));
  cimg_error_t err = { 0 };
  cleanup_free char *root = xasprintf ("%s/root", dir);
  struct cimg_store *s = cimg_store_open (root, &err);
  if (s == NULL)
    fail_msg ("open store %s: %s", root, err.msg);
  return s;
}

/* Closes s (may be NULL) and removes dir with everything in it. */
static inline void
temp_store_remove (struct cimg_store *s, const char *dir)
{
  cimg_store_close (s);
  cimg_error_t err = { 0 };
  if (cimg_rm_rf_at (AT_FDCWD, dir, &err) < 0)
    fprintf (stderr, "teardown: %s\n", err.msg);
  cimg_error_clear (&err);
}

/* The fixture of a test that needs a store and nothing else; a test that needs more makes it the
   first member of its own fixture, which store_teardown then frees as a whole (a pointer to a
   struct is a pointer to its first member). */
struct store_fixture
{
  char dir[64];
  struct cimg_store *s;
};

static inline int
store_setup (void **state)
{
  struct store_fixture *f = xzalloc (sizeof *f);
  f->s = temp_store_open (f->dir, sizeof f->dir);
  *state = f;
  return 0;
}

static inline int
store_teardown (void **state)
{
  struct store_fixture *f = *state;
  temp_store_remove (f->s, f->dir);
  free (f);
  return 0;
}

/* Destroys the test cgroup id (killing what is left in it) under the backend mode forced at
   its creation (NULL: the machine's); returns what destroy returned, 0 when there was none. */
static inline int
test_cgroup_destroy (const char *id, const char *mode)
{
  cimg_cgroup_force_mode_for_tests (mode);
  cimg_error_t err = { 0 };
  struct cimg_cgroup *cg = cimg_cgroup_open (id, &err);
  int r = 0;
  if (cg != NULL)
    {
      /* A v1 task acts on SIGKILL only once thawed: destroy thaws as it kills. */
      r = cimg_cgroup_destroy (cg, &err);
      if (r < 0)
        fprintf (stderr, "teardown: %s\n", err.msg);
      cimg_cgroup_free (cg);
    }
  cimg_error_clear (&err);
  cimg_cgroup_force_mode_for_tests (NULL);
  return r;
}

#endif
