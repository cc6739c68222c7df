/* The summaries `ps` reads (the user.cimg.ps xattr of config.json and state.json,
   store/container.c): what cimg_container_list_brief returns is what the JSON records say, and
   a missing, damaged or stale summary is never believed. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "store/container.h"
#include "tests/unit/fixture.h"

struct fixture
{
  struct store_fixture st; /* first: store_teardown frees the whole */
  bool no_xattrs;
};

static int
setup (void **state)
{
  struct fixture *f = xzalloc (sizeof *f);
  f->st.s = temp_store_open (f->st.dir, sizeof f->st.dir);
  *state = f;
  /* Without user xattrs every record takes the JSON path: nothing here to test. */
  cleanup_free char *probe = xasprintf ("%s/probe", f->st.dir);
  cleanup_close int fd = open (probe, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0 || (fsetxattr (fd, "user.cimg.probe", "1", 1, 0) < 0 && errno == ENOTSUP))
    f->no_xattrs = true;
  return 0;
}

static struct cimg_container *
make (struct fixture *f, const char *name, json_t *args)
{
  cimg_error_t err = { 0 };
  cleanup_json json_t *cfg = json_pack (
      "{s:s, s:s, s:s, s:O, s:{s:s}}", "Image",
      "sha256:2222222222222222222222222222222222222222222222222222222222222222", "ImageName",
      "busybox:latest", "Path", "sh", "Args", args, "Config", "User", "nobody");
  struct cimg_container *c = cimg_container_create (f->st.s, NULL, name, cfg, &err);
  if (c == NULL)
    fail_msg ("create: %s", err.msg);
  return c;
}

static char *
record_file (struct fixture *f, const struct cimg_container *c, const char *file)
{
  return xasprintf ("%s/root/containers/%s/%s", f->st.dir, c->id, file);
}

/* The summary of path (NULL when none). */
static char *
summary_of (const char *path)
{
  char buf[8192];
  ssize_t r = lgetxattr (path, "user.cimg.ps", buf, sizeof buf - 1);
  if (r < 0)
    return NULL;
  buf[r] = '\0';
  return xstrdup (buf);
}

static void
set_summary_of (const char *path, const char *text)
{
  assert_int_equal (lsetxattr (path, "user.cimg.ps", text, strlen (text), 0), 0);
}

/* The records as cimg_container_list_brief returns them; *n_brief: how many came from a
   summary. */
static struct cimg_container **
list (struct fixture *f, size_t *n, size_t *n_brief)
{
  cimg_error_t err = { 0 };
  struct cimg_container **v = NULL;
  assert_int_equal (cimg_container_list_brief (f->st.s, &v, n, &err), 0);
  *n_brief = 0;
  for (size_t i = 0; i < *n; i++)
    *n_brief += v[i]->brief;
  return v;
}

/* Every field ps reads is the same in the brief record and in the full one. */
static void
assert_same_as_full (struct fixture *f, struct cimg_container *b)
{
  static const char *const ck[] = { "Name", "Image", "ImageName", "Created", "Path", "Args" };
  static const char *const sk[]
      = { "Status",     "Pid",       "PidStart",   "ExitCode",   "StartedAt",
          "FinishedAt", "OOMKilled", "Restarting", "MonitorPid", "MonitorStart" };
  cimg_error_t err = { 0 };
  cleanup_container struct cimg_container *full = cimg_container_find (f->st.s, b->id, &err);
  assert_non_null (full);
  for (size_t i = 0; i < ARRAY_SIZE (ck); i++)
    {
      json_t *x = json_object_get (b->config, ck[i]), *y = json_object_get (full->config, ck[i]);
      if (!(x == NULL ? y == NULL : json_equal (x, y)))
        fail_msg ("config %s differs", ck[i]);
    }
  for (size_t i = 0; i < ARRAY_SIZE (sk); i++)
    {
      json_t *x = json_object_get (b->state, sk[i]), *y = json_object_get (full->state, sk[i]);
      if (!(x == NULL ? y == NULL : json_equal (x, y)))
        fail_msg ("state %s differs", sk[i]);
    }
  assert_string_equal (cimg_container_status (b), cimg_container_status (full));
  assert_int_equal (cimg_container_exit_code (b), cimg_container_exit_code (full));
}

static void
write_file (const char *path, const char *text)
{
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_write_file_atomic_at (AT_FDCWD, path, text, strlen (text), 0644, &err), 0);
}

static char *
read_text (const char *path)
{
  cimg_error_t err = { 0 };
  char *out = NULL;
  size_t len = 0;
  if (cimg_read_file_at (AT_FDCWD, path, 1 << 20, &out, &len, &err) < 0)
    {
      cimg_error_clear (&err);
      return NULL;
    }
  return out;
}

static void
test_created_running_exited (void **state)
{
  struct fixture *f = *state;
  if (f->no_xattrs)
    skip ();
  cleanup_json json_t *args = json_pack ("[s, s]", "-c", "printf 'a\\\\b\\n'; echo \"x y\"");
  cleanup_container struct cimg_container *c = make (f, "one", args);
  cimg_error_t err = { 0 };
  size_t n, nb;

  /* Created: no state.json; the summary says so. */
  struct cimg_container **v = list (f, &n, &nb);
  assert_int_equal (n, 1);
  assert_int_equal (nb, 1);
  assert_string_equal (cimg_container_status (v[0]), "created");
  assert_string_equal (cimg_container_name (v[0]), "one");
  /* Only what ps shows: not the rest of the config. */
  assert_null (json_object_get (v[0]->config, "Config"));
  assert_same_as_full (f, v[0]);
  cimg_containers_free (v, n);

  /* Running (a live process of ours), then a dead PID: exited with 255, from the summary. */
  assert_int_equal (cimg_container_set_running (f->st.s, c, getpid (), &err), 0);
  v = list (f, &n, &nb);
  assert_int_equal (nb, 1);
  assert_string_equal (cimg_container_status (v[0]), "running");
  assert_int_equal (cimg_container_pid (v[0]), getpid ());
  assert_same_as_full (f, v[0]);
  cimg_containers_free (v, n);

  pid_t pid = fork ();
  if (pid == 0)
    _exit (0);
  waitpid (pid, NULL, 0);
  assert_int_equal (cimg_container_set_running (f->st.s, c, pid, &err), 0);
  v = list (f, &n, &nb);
  assert_int_equal (nb, 1);
  assert_string_equal (cimg_container_status (v[0]), "exited");
  assert_int_equal (cimg_container_exit_code (v[0]), 255);
  assert_same_as_full (f, v[0]);
  cimg_containers_free (v, n);

  assert_int_equal (cimg_container_set_exited (f->st.s, c, 7, true, &err), 0);
  cleanup_json json_t *fields = json_pack ("{s:b, s:i}", "Restarting", 1, "MonitorPid", 12345);
  assert_int_equal (cimg_container_update_state (f->st.s, c, fields, &err), 0);
  v = list (f, &n, &nb);
  assert_int_equal (nb, 1);
  assert_int_equal (cimg_container_exit_code (v[0]), 7);
  assert_true (json_is_true (json_object_get (v[0]->state, "Restarting")));
  assert_int_equal (cimg_json_int (v[0]->state, "MonitorPid"), 12345);
  /* The command, backslash and newline included, comes back as it was. */
  json_t *a = json_object_get (v[0]->config, "Args");
  assert_int_equal (json_array_size (a), 2);
  assert_string_equal (json_string_value (json_array_get (a, 1)),
                       "printf 'a\\\\b\\n'; echo \"x y\"");
  assert_same_as_full (f, v[0]);
  cimg_containers_free (v, n);
  assert_int_equal (cimg_container_remove (f->st.s, c, &err), 0);
}

/* A summary that is damaged in any way is not used; ps heals it. */
static void
test_damaged (void **state)
{
  struct fixture *f = *state;
  if (f->no_xattrs)
    skip ();
  cleanup_json json_t *args = json_pack ("[s]", "1000");
  cleanup_container struct cimg_container *c = make (f, "dmg", args);
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_container_set_exited (f->st.s, c, 3, false, &err), 0);
  const char *files[] = { "state.json", "config.json" };
  for (size_t k = 0; k < ARRAY_SIZE (files); k++)
    {
      cleanup_free char *path = record_file (f, c, files[k]);
      cleanup_free char *good = summary_of (path);
      assert_non_null (good);
      /* The same summary with one value changed (the checksum no longer fits); cut short;
         empty; garbage; another version; the other file's; removed. */
      cleanup_free char *changed = xstrdup (good);
      char *v = k == 0 ? strstr (changed, "s ExitCode i 3\n") : strstr (changed, "/dmg\n");
      assert_non_null (v);
      v[k == 0 ? 13 : 1] = k == 0 ? '9' : 'x';
      cleanup_free char *cut = xstrndup (good, strlen (good) / 2);
      cleanup_free char *other = xstrdup (good);
      other[8] = '2'; /* "cimg-ps 2" */
      cleanup_free char *otherpath = record_file (f, c, files[1 - k]);
      cleanup_free char *swapped = summary_of (otherpath);
      const char *bad[] = { changed, cut, "", "\x01\x02garbage\n\n\n", other, swapped, NULL };
      for (size_t i = 0; i < ARRAY_SIZE (bad); i++)
        {
          if (bad[i] == NULL)
            assert_int_equal (lremovexattr (path, "user.cimg.ps"), 0);
          else if (bad[i][0] == '\0')
            assert_int_equal (lsetxattr (path, "user.cimg.ps", "", 0, 0), 0);
          else
            set_summary_of (path, bad[i]);
          size_t n, nb;
          struct cimg_container **l = list (f, &n, &nb);
          assert_int_equal (n, 1);
          assert_int_equal (nb, 0);
          assert_int_equal (cimg_container_exit_code (l[0]), 3);
          assert_string_equal (cimg_container_status (l[0]), "exited");
          assert_string_equal (cimg_container_name (l[0]), "dmg");
          cimg_containers_free (l, n);
          /* Set again by that list, as it was. */
          cleanup_free char *healed = summary_of (path);
          assert_non_null (healed);
          assert_string_equal (healed, good);
          l = list (f, &n, &nb);
          assert_int_equal (nb, 1);
          cimg_containers_free (l, n);
        }
    }
  assert_int_equal (cimg_container_remove (f->st.s, c, &err), 0);
}

/* A state.json replaced by something that does not know of summaries (an older cimg, a hand
   edit) has none: the JSON is read. Every state change replaces the summary with the state. */
static void
test_stale (void **state)
{
  struct fixture *f = *state;
  if (f->no_xattrs)
    skip ();
  cleanup_json json_t *args = json_pack ("[]");
  cleanup_container struct cimg_container *c = make (f, "stale", args);
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_container_set_running (f->st.s, c, getpid (), &err), 0);
  cleanup_free char *stp = record_file (f, c, "state.json");
  cleanup_free char *before = summary_of (stp);
  assert_non_null (strstr (before, "s Status s running\n"));

  cleanup_free char *st = read_text (stp);
  assert_non_null (strstr (st, "\"ExitCode\":0"));
  strstr (st, "\"ExitCode\":0")[11] = '4';
  char *run = strstr (st, "\"Status\":\"running\"");
  assert_non_null (run);
  memcpy (run, "\"Status\":\"exited\" ", 18);
  write_file (stp, st);
  /* Hold the container's lock so that list cannot set the summary again. */
  cleanup_close int lk = cimg_container_lock (f->st.s, c, &err);
  assert_true (lk >= 0);
  size_t n, nb;
  struct cimg_container **v = list (f, &n, &nb);
  assert_int_equal (nb, 0);
  assert_string_equal (cimg_container_status (v[0]), "exited");
  assert_int_equal (cimg_container_exit_code (v[0]), 4);
  cimg_containers_free (v, n);
  assert_null (summary_of (stp));
  close (steal_fd (&lk));
  v = list (f, &n, &nb);
  assert_int_equal (nb, 0);
  cimg_containers_free (v, n);
  v = list (f, &n, &nb);
  assert_int_equal (nb, 1);
  assert_int_equal (cimg_container_exit_code (v[0]), 4);
  assert_same_as_full (f, v[0]);
  cimg_containers_free (v, n);

  /* A state change (another process's, as a monitor's) replaces it with the state. */
  cleanup_container struct cimg_container *other = cimg_container_find (f->st.s, "stale", &err);
  assert_non_null (other);
  assert_int_equal (cimg_container_set_exited (f->st.s, other, 6, false, &err), 0);
  v = list (f, &n, &nb);
  assert_int_equal (nb, 1);
  assert_int_equal (cimg_container_exit_code (v[0]), 6);
  cimg_containers_free (v, n);

  /* state.json removed behind the summary's back: "created", as the JSON path says. */
  assert_int_equal (unlink (stp), 0);
  v = list (f, &n, &nb);
  assert_int_equal (nb, 1);
  assert_string_equal (cimg_container_status (v[0]), "created");
  assert_same_as_full (f, v[0]);
  cimg_containers_free (v, n);
  assert_int_equal (cimg_container_remove (f->st.s, c, &err), 0);
}

/* A record whose config.json is gone (rm cut short) is not listed, whatever state.json
   says; a record whose fields a summary cannot hold is read from its JSON, the same. */
static void
test_not_listed_and_unsummarised (void **state)
{
  struct fixture *f = *state;
  if (f->no_xattrs)
    skip ();
  cleanup_json json_t *args = json_pack ("[]");
  cleanup_container struct cimg_container *c = make (f, "half", args);
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_container_set_running (f->st.s, c, getpid (), &err), 0);
  cleanup_free char *cp = record_file (f, c, "config.json");
  cleanup_free char *sp = record_file (f, c, "state.json");
  cleanup_free char *ssum = summary_of (sp);
  assert_non_null (ssum);
  assert_int_equal (unlink (cp), 0);
  size_t n, nb;
  struct cimg_container **v = list (f, &n, &nb);
  assert_int_equal (n, 0);
  cimg_containers_free (v, n);
  assert_int_equal (cimg_container_remove (f->st.s, c, &err), 0);

  /* Args with a number in it; a command too long for an xattr: no summary, and the record is
     still listed, in full. */
  cleanup_json json_t *odd = json_pack ("[s, i]", "x", 5);
  cleanup_container struct cimg_container *o = make (f, "odd", odd);
  cleanup_free char *ocp = record_file (f, o, "config.json");
  assert_null (summary_of (ocp));
  char *huge = xmalloc (5001);
  memset (huge, 'y', 5000);
  huge[5000] = '\0';
  cleanup_json json_t *big = json_pack ("[s]", huge);
  free (huge);
  cleanup_container struct cimg_container *g = make (f, "big", big);
  cleanup_free char *gcp = record_file (f, g, "config.json");
  assert_null (summary_of (gcp));
  v = list (f, &n, &nb);
  assert_int_equal (n, 2);
  assert_int_equal (nb, 0);
  for (size_t i = 0; i < n; i++)
    if (strcmp (cimg_container_name (v[i]), "odd") == 0)
      assert_int_equal (json_array_size (json_object_get (v[i]->config, "Args")), 2);
    else
      assert_int_equal (
          strlen (json_string_value (json_array_get (json_object_get (v[i]->config, "Args"), 0))),
          5000);
  cimg_containers_free (v, n);
  assert_int_equal (cimg_container_remove (f->st.s, o, &err), 0);
  assert_int_equal (cimg_container_remove (f->st.s, g, &err), 0);
}

/* A running record's process is checked, from a summary as from the JSON: by its pidfs inode
   where the kernel has pidfs, else by its start time; a live PID that is another process's
   is not the container's. */
static void
test_pid_identity (void **state)
{
  struct fixture *f = *state;
  if (f->no_xattrs)
    skip ();
  cleanup_json json_t *args = json_pack ("[]");
  cleanup_container struct cimg_container *c = make (f, "who", args);
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_container_set_running (f->st.s, c, getpid (), &err), 0);
  int64_t ino = cimg_json_int (c->state, "PidIno");
  assert_true (ino >= 0);
  cleanup_json json_t *wrong_ino = json_pack ("{s:I}", "PidIno", (json_int_t)(ino + 1));
  cleanup_json json_t *wrong_start = json_pack ("{s:I, s:I}", "PidIno", (json_int_t)0, "PidStart",
                                                (json_int_t)(cimg_pid_start_time (getpid ()) + 1));
  json_t *cases[] = { NULL, ino > 0 ? wrong_ino : NULL, wrong_start };
  const char *want[] = { "running", "exited", "exited" };
  for (size_t i = 0; i < ARRAY_SIZE (cases); i++)
    {
      if (i > 0 && cases[i] == NULL)
        continue; /* no pidfs here */
      if (cases[i])
        assert_int_equal (cimg_container_update_state (f->st.s, c, cases[i], &err), 0);
      size_t n, nb;
      struct cimg_container **v = list (f, &n, &nb);
      assert_int_equal (nb, 1);
      assert_string_equal (cimg_container_status (v[0]), want[i]);
      assert_same_as_full (f, v[0]);
      cimg_containers_free (v, n);
    }
  /* A new run records its own (0 where there is no pidfs) over the old one. */
  assert_int_equal (cimg_container_set_running (f->st.s, c, getpid (), &err), 0);
  assert_int_equal (cimg_json_int (c->state, "PidIno"), ino);
  assert_string_equal (cimg_container_status (c), "running");
  assert_int_equal (cimg_container_remove (f->st.s, c, &err), 0);
}

/* Newest first, as cimg_container_list. */
static void
test_order (void **state)
{
  struct fixture *f = *state;
  if (f->no_xattrs)
    skip ();
  cleanup_json json_t *args = json_pack ("[]");
  const char *names[] = { "first", "second", "third" };
  struct cimg_container *c[3];
  for (size_t i = 0; i < 3; i++)
    c[i] = make (f, names[i], args);
  size_t n, nb;
  struct cimg_container **v = list (f, &n, &nb);
  assert_int_equal (n, 3);
  assert_int_equal (nb, 3);
  for (size_t i = 0; i < 3; i++)
    assert_string_equal (cimg_container_name (v[i]), names[2 - i]);
  cimg_containers_free (v, n);
  cimg_error_t err = { 0 };
  for (size_t i = 0; i < 3; i++)
    {
      assert_int_equal (cimg_container_remove (f->st.s, c[i], &err), 0);
      cimg_container_free (c[i]);
    }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_created_running_exited, setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_damaged, setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_stale, setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_not_listed_and_unsummarised, setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_pid_identity, setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_order, setup, store_teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
