/* Container records (store/container.h) and the runtime's exit codes: what needs no root. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runtime/runtime.h"
#include "store/container.h"
#include "tests/unit/fixture.h"

struct fixture
{
  char dir[64];
  struct cimg_store *s;
};

static int
setup (void **state)
{
  struct fixture *f = xzalloc (sizeof *f);
  f->s = temp_store_open (f->dir, sizeof f->dir);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fixture *f = *state;
  temp_store_remove (f->s, f->dir);
  free (f);
  return 0;
}

static struct cimg_container *
make (struct fixture *f, const char *id, const char *name)
{
  cimg_error_t err = { 0 };
  cleanup_json json_t *cfg
      = json_pack ("{s:s, s:s, s:s, s:[]}", "Image",
                   "sha256:"
                   "1111111111111111111111111111111111111111111111111111111111111111",
                   "ImageName", "busybox", "Path", "true", "Args");
  struct cimg_container *c = cimg_container_create (f->s, id, name, cfg, &err);
  if (c == NULL)
    fail_msg ("create: %s", err.msg);
  return c;
}

static void
test_create_find (void **state)
{
  struct fixture *f = *state;
  const char *a = "abc0000000000000000000000000000000000000000000000000000000000001";
  const char *b = "abc0000000000000000000000000000000000000000000000000000000000002";
  cleanup_container struct cimg_container *ca = make (f, a, "first");
  cleanup_container struct cimg_container *cb = make (f, b, NULL);
  assert_string_equal (cimg_container_name (ca), "first");
  assert_string_equal (cimg_json_str (ca->config, "Name"), "/first");
  assert_non_null (cimg_json_str (ca->config, "Created"));
  /* A random two-word name. */
  const char *nb = cimg_container_name (cb);
  assert_non_null (strchr (nb, '_'));
  assert_string_equal (cimg_container_status (ca), "created");

  cimg_error_t err = { 0 };
  /* Full ID, name, "/name", unique prefix. */
  struct cimg_container *x = cimg_container_find (f->s, a, &err);
  assert_non_null (x);
  assert_string_equal (x->id, a);
  cimg_container_free (x);
  x = cimg_container_find (f->s, "first", &err);
  assert_non_null (x);
  assert_string_equal (x->id, a);
  cimg_container_free (x);
  x = cimg_container_find (f->s, "/first", &err);
  assert_non_null (x);
  cimg_container_free (x);
  x = cimg_container_find (
      f->s, "abc00000000000000000000000000000000000000000000000000000000000002" + 1, &err);
  assert_null (x); /* "bc0…" matches nothing */
  assert_non_null (strstr (err.msg, "No such container"));
  cimg_error_clear (&err);
  x = cimg_container_find (f->s, "abc000000000000000000000000000000000000000000000000000000000000",
                           &err);
  assert_null (x);
  assert_non_null (strstr (err.msg, "multiple IDs found with provided prefix"));
  cimg_error_clear (&err);
  x = cimg_container_find (f->s, "abc0000000000000000000000000000000000000000000000000000000000000",
                           &err);
  assert_null (x);
  cimg_error_clear (&err);
  x = cimg_container_find (f->s, nb, &err);
  assert_non_null (x);
  assert_string_equal (x->id, b);
  cimg_container_free (x);

  /* Names are unique; invalid names refused. */
  cleanup_json json_t *cfg = json_object ();
  assert_null (cimg_container_create (f->s, NULL, "first", cfg, &err));
  assert_non_null (strstr (err.msg, "is already in use"));
  cimg_error_clear (&err);
  assert_null (cimg_container_create (f->s, NULL, "x", cfg, &err));
  assert_non_null (strstr (err.msg, "Invalid container name"));
  cimg_error_clear (&err);
  assert_null (cimg_container_create (f->s, "nothex", NULL, cfg, &err));
  cimg_error_clear (&err);

  /* The image is in use while the record exists. */
  cleanup_strv char **in_use = cimg_store_images_in_use (f->s);
  assert_int_equal (cimg_strv_len (in_use), 1);

  struct cimg_container **v = NULL;
  size_t n = 0;
  assert_int_equal (cimg_container_list (f->s, &v, &n, &err), 0);
  assert_int_equal (n, 2);
  cimg_containers_free (v, n);

  assert_int_equal (cimg_container_remove (f->s, ca, &err), 0);
  assert_int_equal (cimg_container_remove (f->s, cb, &err), 0);
  assert_null (cimg_container_find (f->s, "first", &err));
  cimg_error_clear (&err);
  cleanup_strv char **none = cimg_store_images_in_use (f->s);
  assert_int_equal (cimg_strv_len (none), 0);
}

static void
test_state (void **state)
{
  struct fixture *f = *state;
  cleanup_container struct cimg_container *c = make (f, NULL, "st");
  cimg_error_t err = { 0 };
  /* A live process of ours: running. */
  assert_int_equal (cimg_container_set_running (f->s, c, getpid (), &err), 0);
  assert_string_equal (cimg_container_status (c), "running");
  assert_int_equal (cimg_container_pid (c), getpid ());
  /* Reread from disk. */
  cleanup_container struct cimg_container *c2 = cimg_container_find (f->s, "st", &err);
  assert_non_null (c2);
  assert_string_equal (cimg_container_status (c2), "running");

  /* A dead PID: reported exited (255), not running. */
  pid_t pid = fork ();
  if (pid == 0)
    _exit (0);
  waitpid (pid, NULL, 0);
  assert_int_equal (cimg_container_set_running (f->s, c, pid, &err), 0);
  assert_string_equal (cimg_container_status (c), "exited");
  assert_int_equal (cimg_container_pid (c), 0);
  assert_int_equal (cimg_container_exit_code (c), 255);

  assert_int_equal (cimg_container_set_exited (f->s, c, 3, true, &err), 0);
  assert_int_equal (cimg_container_reload (f->s, c, &err), 0);
  assert_string_equal (cimg_container_status (c), "exited");
  assert_int_equal (cimg_container_exit_code (c), 3);
  assert_true (json_is_true (json_object_get (c->state, "OOMKilled")));
  assert_int_equal (cimg_container_remove (f->s, c, &err), 0);
}

/* The cgroup directories the runtime hands to a start land in the container's state (as
   CgroupPaths, read back from disk); a start without them drops an earlier run's, and another
   container's start does not take them. */
static void
test_cgroup_paths (void **state)
{
  struct fixture *f = *state;
  cleanup_container struct cimg_container *c = make (f, NULL, "cg");
  cleanup_container struct cimg_container *other = make (f, NULL, "cg2");
  cimg_error_t err = { 0 };
  cleanup_free char *d1 = xasprintf ("/sys/fs/cgroup/memory/cimg/%s", c->id);
  cleanup_free char *d2 = xasprintf ("/sys/fs/cgroup/unified/cimg/%s", c->id);
  char *const dirs[] = { d1, d2, NULL };
  assert_int_equal (cimg_container_set_running_in (f->s, c, getpid (), dirs, &err), 0);
  cleanup_container struct cimg_container *r = cimg_container_find (f->s, "cg", &err);
  assert_non_null (r);
  json_t *kept = json_object_get (r->state, "CgroupPaths");
  assert_int_equal (json_array_size (kept), 2);
  assert_string_equal (json_string_value (json_array_get (kept, 0)), d1);
  assert_string_equal (json_string_value (json_array_get (kept, 1)), d2);
  assert_int_equal (cimg_container_set_running (f->s, other, getpid (), &err), 0);
  assert_null (json_object_get (other->state, "CgroupPaths"));
  /* An exit keeps them (exec is refused then anyway); the next start without them drops them. */
  assert_int_equal (cimg_container_set_exited (f->s, c, 0, false, &err), 0);
  assert_int_equal (cimg_container_reload (f->s, c, &err), 0);
  assert_int_equal (json_array_size (json_object_get (c->state, "CgroupPaths")), 2);
  assert_int_equal (cimg_container_set_running (f->s, c, getpid (), &err), 0);
  assert_int_equal (cimg_container_reload (f->s, c, &err), 0);
  assert_null (json_object_get (c->state, "CgroupPaths"));
  assert_string_equal (cimg_container_status (c), "running");
}

static void
test_layers_read_file (void **state)
{
  struct fixture *f = *state;
  cleanup_free char *top = xasprintf ("%s/top", f->dir), *low = xasprintf ("%s/low", f->dir);
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_mkdir_p_at (AT_FDCWD, top, 0755, &err), 0);
  assert_int_equal (cimg_mkdir_p_at (AT_FDCWD, low, 0755, &err), 0);
  int lfd = open (low, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int tfd = open (top, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (lfd >= 0 && tfd >= 0);
  mkdirat (lfd, "etc", 0755);
  mkdirat (tfd, "etc", 0755);
  assert_int_equal (cimg_write_file_atomic_at (lfd, "etc/passwd", "low\n", 4, 0644, &err), 0);
  assert_int_equal (cimg_write_file_atomic_at (lfd, "etc/group", "lowg\n", 5, 0644, &err), 0);
  assert_int_equal (cimg_write_file_atomic_at (tfd, "etc/passwd", "top\n", 4, 0644, &err), 0);
  /* An absolute symlink in a layer resolves inside it, never to the host's file. */
  assert_int_equal (symlinkat ("/etc/passwd", tfd, "etc/shadow"), 0);
  int fds[] = { tfd, lfd };
  char *out = NULL;
  assert_int_equal (cimg_layers_read_file (fds, 2, "/etc/passwd", 1024, &out, &err), 0);
  assert_string_equal (out, "top\n");
  free (out);
  assert_int_equal (cimg_layers_read_file (fds, 2, "/etc/group", 1024, &out, &err), 0);
  assert_string_equal (out, "lowg\n");
  free (out);
  assert_int_equal (cimg_layers_read_file (fds, 2, "/etc/shadow", 1024, &out, &err), 0);
  assert_string_equal (out, "top\n");
  free (out);
  assert_int_equal (cimg_layers_read_file (fds, 2, "/etc/nothing", 1024, &out, &err), 1);
  assert_null (out);
  /* A whiteout (char 0:0) in the top layer hides the lower file (needs CAP_MKNOD). */
  if (mknodat (tfd, "etc/group", S_IFCHR | 0, 0) == 0)
    {
      assert_int_equal (cimg_layers_read_file (fds, 2, "/etc/group", 1024, &out, &err), 1);
      assert_null (out);
    }
  close (tfd);
  close (lfd);
}

static void
test_exit_codes (void **state)
{
  (void)state;
  assert_int_equal (cimg_runtime_exit_code (3 << 8), 3);
  assert_int_equal (cimg_runtime_exit_code (SIGKILL), 137);
  assert_int_equal (cimg_runtime_exit_code (SIGINT), 130);
  assert_int_equal (cimg_runtime_exit_code (0), 0);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_create_find, setup, teardown),
    cmocka_unit_test_setup_teardown (test_state, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cgroup_paths, setup, teardown),
    cmocka_unit_test_setup_teardown (test_layers_read_file, setup, teardown),
    cmocka_unit_test (test_exit_codes),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
