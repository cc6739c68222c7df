/* Layer apply and pack. Tars are generated here with libarchive's writer, applied into a fresh
   root that sits beside a canary directory and a file ("outside") that no layer may reach. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/store-internal.h"
#include "tests/unit/tar-helpers.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#define T0 1500000000
#define T1 TAR_MTIME
#define T2 1700000000

/* ---------------------------------------------------------------- tars (see tar-helpers.h) */

static int
mem_pack_cb (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  membuf_add (data, buf, len);
  return 0;
}

/* ---------------------------------------------------------------- fixture */

struct fx
{
  char base[64];
  const char *base_rel; /* base without its leading "/" */
  int basefd;
  int rootfd;
};

static void
write_at (int dfd, const char *name, const char *content, mode_t mode)
{
  int fd = openat (dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  assert_true (fd >= 0);
  assert_int_equal (cimg_write_all (fd, content, strlen (content)), 0);
  close (fd);
}

/* Content of dfd/name (a relative path, not following a final symlink), or NULL. */
static char *
read_at (int dfd, const char *name)
{
  char *out = NULL;
  cimg_error_t err = { 0 };
  if (cimg_read_file_at (dfd, name, 1 << 20, &out, NULL, &err) < 0)
    {
      cimg_error_clear (&err);
      return NULL;
    }
  return out;
}

static void
assert_content (int dfd, const char *name, const char *want)
{
  cleanup_free char *got = read_at (dfd, name);
  if (got == NULL)
    fail_msg ("%s: cannot be read", name);
  assert_string_equal (got, want);
}

static void
lstat_at (int dfd, const char *name, struct stat *st)
{
  if (fstatat (dfd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
    fail_msg ("stat %s: %s", name, strerror (errno));
}

static bool
exists_at (int dfd, const char *name)
{
  struct stat st;
  return fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

static int
setup (void **state)
{
  struct fx *f = xzalloc (sizeof *f);
  strcpy (f->base, "/tmp/cimg-test-layer-XXXXXX");
  assert_non_null (mkdtemp (f->base));
  f->base_rel = f->base + 1;
  f->basefd = open (f->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (f->basefd >= 0);
  assert_int_equal (mkdirat (f->basefd, "root", 0755), 0);
  assert_int_equal (mkdirat (f->basefd, "canary", 0755), 0);
  write_at (f->basefd, "canary/file", "canary", 0644);
  write_at (f->basefd, "outside", "outside", 0644);
  f->rootfd = openat (f->basefd, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (f->rootfd >= 0);
  *state = f;
  return 0;
}

static int
teardown (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  close (f->rootfd);
  close (f->basefd);
  cimg_rm_rf_at (AT_FDCWD, f->base, &err);
  cimg_error_clear (&err);
  free (f);
  return 0;
}

/* Nothing beside the root changed: base holds only what the fixture made (and extra), the canary
   and the outside file are as they were. */
static void
assert_outside_intact (struct fx *f, const char *extra)
{
  DIR *d = opendir (f->base);
  assert_non_null (d);
  struct dirent *de;
  while ((de = readdir (d)))
    {
      const char *n = de->d_name;
      if (strcmp (n, ".") && strcmp (n, "..") && strcmp (n, "root") && strcmp (n, "canary")
          && strcmp (n, "outside") && (extra == NULL || strcmp (n, extra)))
        fail_msg ("unexpected %s/%s", f->base, n);
    }
  closedir (d);
  cleanup_free char *canary = xasprintf ("%s/canary", f->base);
  d = opendir (canary);
  assert_non_null (d);
  while ((de = readdir (d)))
    if (strcmp (de->d_name, ".") && strcmp (de->d_name, "..") && strcmp (de->d_name, "file"))
      fail_msg ("unexpected canary/%s", de->d_name);
  closedir (d);
  assert_content (f->basefd, "canary/file", "canary");
  assert_content (f->basefd, "outside", "outside");
  struct stat st;
  lstat_at (f->basefd, "outside", &st);
  assert_int_equal (st.st_nlink, 1);
}

static void
assert_err (int r, cimg_error_t *err, const char *want)
{
  assert_int_equal (r, -1);
  assert_non_null (err->msg);
  assert_string_equal (err->msg, want);
  cimg_error_clear (err);
}

static void
assert_err_contains (int r, cimg_error_t *err, const char *want)
{
  assert_int_equal (r, -1);
  assert_non_null (err->msg);
  if (strstr (err->msg, want) == NULL)
    fail_msg ("error \"%s\" does not contain \"%s\"", err->msg, want);
  cimg_error_clear (err);
}

static bool
trusted_xattrs_supported (int dfd)
{
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", dfd);
  if (setxattr (proc, "trusted.cimg-probe", "1", 1, 0) < 0)
    {
      if (errno == ENOTSUP)
        return false;
      fail_msg ("setxattr trusted.*: %s (the test needs root)", strerror (errno));
    }
  removexattr (proc, "trusted.cimg-probe");
  return true;
}

static ssize_t
xattr_at (int dfd, const char *name, const char *xname, char *buf, size_t size)
{
  cleanup_free char *p = xasprintf ("/proc/self/fd/%d/%s", dfd, name);
  return lgetxattr (p, xname, buf, size);
}

/* ---------------------------------------------------------------- apply */

static void
test_apply_basic (void **state)
{
  struct fx *f = *state;
  struct tarw t;
  struct archive_entry *e;
  cimg_error_t err = { 0 };
  struct cimg_apply_stats stats = { 0 };

  tw_init (&t);
  e = ent ("./", AE_IFDIR, 0751);
  archive_entry_set_mtime (e, T0, 0);
  tw_put (&t, e, NULL, 0);
  e = ent ("d/", AE_IFDIR, 0750);
  archive_entry_set_uid (e, 1000);
  archive_entry_set_gid (e, 1001);
  archive_entry_set_mtime (e, T0, 250);
  tw_put (&t, e, NULL, 0);
  e = ent ("d/f", AE_IFREG, 0640);
  archive_entry_set_uid (e, 2);
  archive_entry_set_gid (e, 3);
  archive_entry_set_mtime (e, T2, 500000000);
  tw_put (&t, e, "hello", 5);
  e = ent ("d/suid", AE_IFREG, 06755);
  archive_entry_set_uid (e, 1000);
  archive_entry_set_gid (e, 1000);
  tw_put (&t, e, "#!", 2);
  tw_symlink (&t, "d/link", "f");
  tw_symlink (&t, "abs", "/etc/passwd");
  tw_hardlink (&t, "d/hl", "d/f");
  tw_put (&t, ent ("fifo", AE_IFIFO, 0620), NULL, 0);
  e = ent ("null", AE_IFCHR, 0666);
  archive_entry_set_rdev (e, makedev (1, 3));
  tw_put (&t, e, NULL, 0);
  e = ent ("loop", AE_IFBLK, 0660);
  archive_entry_set_rdev (e, makedev (7, 0));
  archive_entry_set_gid (e, 6);
  tw_put (&t, e, NULL, 0);
  e = ent ("x", AE_IFREG, 0644);
  archive_entry_xattr_add_entry (e, "user.test", "v1", 2);
  archive_entry_xattr_add_entry (e, "trusted.cimg", "t", 1);
  tw_put (&t, e, "x", 1);
  tw_file (&t, "implicit/sub/file", 0600, "i");
  tw_dir (&t, "sticky", 01777);
  tw_close (&t);

  int r = apply_buf (t.m.data, t.m.len, f->rootfd, 0, &stats, &err);
  if (r < 0)
    fail_msg ("apply: %s", err.msg);
  assert_int_equal (stats.entries, 13);
  assert_int_equal (stats.size, 5 + 2 + 1 + 1);

  struct stat st;
  lstat_at (f->rootfd, ".", &st);
  assert_int_equal (st.st_mode & 07777, 0751);
  assert_int_equal (st.st_mtim.tv_sec, T0);

  lstat_at (f->rootfd, "d", &st);
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (st.st_mode & 07777, 0750);
  assert_int_equal (st.st_uid, 1000);
  assert_int_equal (st.st_gid, 1001);
  /* Set after its children were created. */
  assert_int_equal (st.st_mtim.tv_sec, T0);
  assert_int_equal (st.st_mtim.tv_nsec, 250);

  assert_content (f->rootfd, "d/f", "hello");
  struct stat fst;
  lstat_at (f->rootfd, "d/f", &fst);
  assert_int_equal (fst.st_mode, S_IFREG | 0640);
  assert_int_equal (fst.st_uid, 2);
  assert_int_equal (fst.st_gid, 3);
  assert_int_equal (fst.st_mtim.tv_sec, T2);
  assert_int_equal (fst.st_mtim.tv_nsec, 500000000);
  assert_int_equal (fst.st_nlink, 2);

  lstat_at (f->rootfd, "d/hl", &st);
  assert_int_equal (st.st_ino, fst.st_ino);

  lstat_at (f->rootfd, "d/suid", &st);
  assert_int_equal (st.st_mode, S_IFREG | 06755);
  assert_int_equal (st.st_uid, 1000);
  assert_content (f->rootfd, "d/suid", "#!");

  char buf[256];
  ssize_t n = readlinkat (f->rootfd, "d/link", buf, sizeof buf);
  assert_int_equal (n, 1);
  assert_memory_equal (buf, "f", 1);
  n = readlinkat (f->rootfd, "abs", buf, sizeof buf);
  assert_int_equal (n, strlen ("/etc/passwd"));
  assert_memory_equal (buf, "/etc/passwd", n);
  lstat_at (f->rootfd, "abs", &st);
  assert_int_equal (st.st_mtim.tv_sec, T1);

  lstat_at (f->rootfd, "fifo", &st);
  assert_int_equal (st.st_mode, S_IFIFO | 0620);
  lstat_at (f->rootfd, "null", &st);
  assert_int_equal (st.st_mode, S_IFCHR | 0666);
  assert_int_equal (st.st_rdev, makedev (1, 3));
  lstat_at (f->rootfd, "loop", &st);
  assert_int_equal (st.st_mode, S_IFBLK | 0660);
  assert_int_equal (st.st_rdev, makedev (7, 0));
  assert_int_equal (st.st_gid, 6);
  assert_int_equal (st.st_mtim.tv_sec, T1);

  n = xattr_at (f->rootfd, "x", "user.test", buf, sizeof buf);
  assert_int_equal (n, 2);
  assert_memory_equal (buf, "v1", 2);
  n = xattr_at (f->rootfd, "x", "trusted.cimg", buf, sizeof buf);
  assert_int_equal (n, 1);
  assert_memory_equal (buf, "t", 1);

  assert_content (f->rootfd, "implicit/sub/file", "i");
  lstat_at (f->rootfd, "implicit/sub", &st);
  assert_int_equal (st.st_mode, S_IFDIR | 0755);
  lstat_at (f->rootfd, "sticky", &st);
  assert_int_equal (st.st_mode, S_IFDIR | 01777);

  assert_outside_intact (f, NULL);
  tw_free (&t);
}

static void
test_apply_dotdot_refused (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  const char *names[] = { "../canary/file", "a/../../canary/file", "./../outside" };

  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      struct tarw t;
      tw_init (&t);
      tw_file (&t, names[i], 0644, "pwned");
      cleanup_free char *want = xasprintf ("entry \"%s\": path leaves the layer", names[i]);
      assert_err (apply_tw (&t, f->rootfd, &err), &err, want);
      tw_free (&t);
    }
  /* ".." that stays inside is only lexical. */
  struct tarw t;
  tw_init (&t);
  tw_file (&t, "a/../b", 0644, "b");
  assert_int_equal (apply_tw (&t, f->rootfd, &err), 0);
  assert_content (f->rootfd, "b", "b");
  assert_false (exists_at (f->rootfd, "a"));
  tw_free (&t);
  assert_outside_intact (f, NULL);
}

static void
test_apply_absolute_names (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct tarw t;

  tw_init (&t);
  tw_file (&t, "/etc/cimg-test", 0644, "abs");
  tw_file (&t, "//a//./b", 0644, "ab");
  tw_file (&t, "./c", 0644, "c");
  cleanup_free char *outside = xasprintf ("%s/outside", f->base);
  tw_file (&t, outside, 0644, "pwned");
  assert_int_equal (apply_tw (&t, f->rootfd, &err), 0);
  assert_content (f->rootfd, "etc/cimg-test", "abs");
  assert_content (f->rootfd, "a/b", "ab");
  assert_content (f->rootfd, "c", "c");
  assert_content (f->rootfd, outside + 1, "pwned");
  assert_false (exists_at (AT_FDCWD, "/etc/cimg-test"));
  assert_outside_intact (f, NULL);
  tw_free (&t);
}

static void
test_apply_symlink_escape (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct tarw t;
  const char *base_name = strrchr (f->base, '/') + 1;

  /* A link to the canary by its absolute host path, then a write through it: the link resolves
     to a (still) missing in-root directory, and the write is refused. */
  tw_init (&t);
  cleanup_free char *canary = xasprintf ("%s/canary", f->base);
  tw_symlink (&t, "abs", canary);
  tw_file (&t, "abs/file", 0644, "pwned3");
  assert_err_contains (apply_tw (&t, f->rootfd, &err), &err, "entry \"abs/file\": ");
  assert_outside_intact (f, NULL);
  tw_free (&t);

  /* A link to "/" then a write through it: the write lands at the same path inside. */
  tw_init (&t);
  tw_symlink (&t, "rootlink", "/");
  cleanup_free char *n1 = xasprintf ("rootlink/%s/canary/file", f->base_rel);
  tw_file (&t, n1, 0644, "pwned1");
  if (apply_tw (&t, f->rootfd, &err) < 0)
    fail_msg ("apply: %s", err.msg);
  cleanup_free char *in1 = xasprintf ("%s/canary/file", f->base_rel);
  assert_content (f->rootfd, in1, "pwned1");
  assert_outside_intact (f, NULL);
  tw_free (&t);

  /* A link to "../..": ".." stops at the root. */
  tw_init (&t);
  tw_symlink (&t, "up", "../..");
  cleanup_free char *n2 = xasprintf ("up/%s/canary/file", base_name);
  tw_file (&t, n2, 0644, "pwned2");
  if (apply_tw (&t, f->rootfd, &err) < 0)
    fail_msg ("apply: %s", err.msg);
  cleanup_free char *in2 = xasprintf ("%s/canary/file", base_name);
  assert_content (f->rootfd, in2, "pwned2");
  assert_outside_intact (f, NULL);
  tw_free (&t);

  /* The final component is never followed: a file over a symlink replaces the symlink. */
  tw_init (&t);
  cleanup_free char *cfile = xasprintf ("%s/canary/file", f->base);
  tw_symlink (&t, "lnk", cfile);
  tw_file (&t, "lnk", 0644, "pwned4");
  tw_symlink (&t, "lnk2", cfile);
  tw_put (&t, ent ("lnk2", AE_IFDIR, 0755), NULL, 0);
  assert_int_equal (apply_tw (&t, f->rootfd, &err), 0);
  struct stat st;
  lstat_at (f->rootfd, "lnk", &st);
  assert_true (S_ISREG (st.st_mode));
  assert_content (f->rootfd, "lnk", "pwned4");
  lstat_at (f->rootfd, "lnk2", &st);
  assert_true (S_ISDIR (st.st_mode));
  assert_outside_intact (f, NULL);
  tw_free (&t);

  /* Metadata of a symlink entry is applied to the link, never to its target. */
  tw_init (&t);
  struct archive_entry *e = ent ("lnk3", AE_IFLNK, 0777);
  archive_entry_copy_symlink (e, cfile);
  archive_entry_set_uid (e, 4242);
  archive_entry_set_mtime (e, T0, 0);
  tw_put (&t, e, NULL, 0);
  assert_int_equal (apply_tw (&t, f->rootfd, &err), 0);
  lstat_at (f->basefd, "canary/file", &st);
  assert_int_equal (st.st_uid, 0);
  assert_int_not_equal (st.st_mtim.tv_sec, T0);
  lstat_at (f->rootfd, "lnk3", &st);
  assert_int_equal (st.st_uid, 4242);
  assert_outside_intact (f, NULL);
  tw_free (&t);
}

static void
test_apply_dir_replaced_by_symlink (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct tarw t;

  tw_init (&t);
  tw_dir (&t, "canary", 0755);
  tw_dir (&t, "d", 0755);
  tw_file (&t, "d/x", 0644, "x");
  tw_symlink (&t, "d", "../canary");
  tw_file (&t, "d/file", 0644, "pwned");
  if (apply_tw (&t, f->rootfd, &err) < 0)
    fail_msg ("apply: %s", err.msg);
  struct stat st;
  lstat_at (f->rootfd, "d", &st);
  assert_true (S_ISLNK (st.st_mode));
  assert_content (f->rootfd, "canary/file", "pwned");
  assert_false (exists_at (f->rootfd, "canary/x"));
  assert_outside_intact (f, NULL);
  tw_free (&t);

  /* Same with an absolute link whose in-root target is missing: refused. */
  tw_init (&t);
  cleanup_free char *canary = xasprintf ("%s/canary", f->base);
  tw_dir (&t, "e", 0755);
  tw_symlink (&t, "e", canary);
  tw_file (&t, "e/file", 0644, "pwned");
  assert_err_contains (apply_tw (&t, f->rootfd, &err), &err, "entry \"e/file\": ");
  assert_outside_intact (f, NULL);
  tw_free (&t);
}

static void
test_apply_hardlink_outside (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct tarw t;

  tw_init (&t);
  tw_hardlink (&t, "hl", "../outside");
  assert_err (apply_tw (&t, f->rootfd, &err), &err,
              "entry \"hl\": hardlink target \"../outside\" leaves the layer");
  tw_free (&t);

  tw_init (&t);
  cleanup_free char *outside = xasprintf ("%s/outside", f->base);
  tw_hardlink (&t, "hl", outside);
  cleanup_free char *want
      = xasprintf ("entry \"hl\": hardlink target \"%s\" is not in the layer", outside);
  assert_err (apply_tw (&t, f->rootfd, &err), &err, want);
  tw_free (&t);

  /* Through an in-layer symlink to the host directory. */
  tw_init (&t);
  tw_symlink (&t, "s", f->base);
  tw_hardlink (&t, "hl", "s/outside");
  assert_err (apply_tw (&t, f->rootfd, &err), &err,
              "entry \"hl\": hardlink target \"s/outside\" is not in the layer");
  tw_free (&t);

  /* To a symlink that points outside: the link itself is linked, nothing is followed. */
  tw_init (&t);
  tw_symlink (&t, "s2", outside);
  tw_hardlink (&t, "hl2", "s2");
  assert_int_equal (apply_tw (&t, f->rootfd, &err), 0);
  struct stat a, b;
  lstat_at (f->rootfd, "s2", &a);
  lstat_at (f->rootfd, "hl2", &b);
  assert_true (S_ISLNK (b.st_mode));
  assert_int_equal (a.st_ino, b.st_ino);
  tw_free (&t);

  assert_outside_intact (f, NULL);
  assert_false (exists_at (f->rootfd, "hl"));
}

static void
test_apply_whiteouts (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_apply_stats stats = { 0 };
  struct tarw t;

  if (!trusted_xattrs_supported (f->rootfd))
    skip ();

  /* Whiteouts of names this layer does not have (the lower layers' files). */
  tw_init (&t);
  tw_dir (&t, "a", 0755);
  tw_file (&t, "a/kept", 0644, "kept");
  tw_file (&t, "a/.wh.f", 0644, "");
  tw_dir (&t, "b", 0755);
  tw_file (&t, "b/.wh.sub", 0644, "");
  tw_file (&t, "b/.wh.sub", 0644, "");
  tw_file (&t, ".wh.gone", 0644, "");
  tw_dir (&t, "o", 0755);
  tw_file (&t, "o/.wh..wh..opq", 0644, "");
  tw_file (&t, ".wh..wh.plnk", 0644, "");
  struct archive_entry *e = ent ("t", AE_IFDIR, 0755);
  archive_entry_xattr_add_entry (e, "trusted.overlay.opaque", "y", 1);
  archive_entry_xattr_add_entry (e, "trusted.overlay.redirect", "/x", 2);
  archive_entry_xattr_add_entry (e, "user.kept", "k", 1);
  tw_put (&t, e, NULL, 0);
  tw_close (&t);
  int r = apply_buf (t.m.data, t.m.len, f->rootfd, 0, &stats, &err);
  if (r < 0)
    fail_msg ("apply: %s", err.msg);
  assert_int_equal (stats.entries, 10);
  assert_content (f->rootfd, "a/kept", "kept");

  struct stat st;
  const char *wh[] = { "a/f", "b/sub", "gone" };
  for (size_t i = 0; i < ARRAY_SIZE (wh); i++)
    {
      lstat_at (f->rootfd, wh[i], &st);
      assert_true (S_ISCHR (st.st_mode));
      assert_int_equal (st.st_rdev, makedev (0, 0));
    }
  assert_false (exists_at (f->rootfd, "a/.wh.f"));
  assert_false (exists_at (f->rootfd, ".wh.gone"));
  assert_false (exists_at (f->rootfd, "plnk"));
  assert_false (exists_at (f->rootfd, ".wh..wh.plnk"));
  assert_false (exists_at (f->rootfd, "o/.wh..wh..opq"));

  char buf[16];
  ssize_t n = xattr_at (f->rootfd, "o", "trusted.overlay.opaque", buf, sizeof buf);
  assert_int_equal (n, 1);
  assert_int_equal (buf[0], 'y');
  n = xattr_at (f->rootfd, "t", "trusted.overlay.opaque", buf, sizeof buf);
  assert_int_equal (n, -1);
  assert_int_equal (errno, ENODATA);
  n = xattr_at (f->rootfd, "t", "trusted.overlay.redirect", buf, sizeof buf);
  assert_int_equal (n, -1);
  n = xattr_at (f->rootfd, "t", "user.kept", buf, sizeof buf);
  assert_int_equal (n, 1);
  /* Not marked by accident. */
  n = xattr_at (f->rootfd, "a", "trusted.overlay.opaque", buf, sizeof buf);
  assert_int_equal (n, -1);

  /* The opaque marker of a directory not in the tar creates it. */
  tw_free (&t);
  tw_init (&t);
  tw_file (&t, "new/dir/.wh..wh..opq", 0644, "");
  assert_int_equal (apply_tw (&t, f->rootfd, &err), 0);
  n = xattr_at (f->rootfd, "new/dir", "trusted.overlay.opaque", buf, sizeof buf);
  assert_int_equal (n, 1);
  tw_free (&t);
  assert_outside_intact (f, NULL);
}

static void
assert_whiteout_at (int dfd, const char *name)
{
  struct stat st;
  lstat_at (dfd, name, &st);
  if (!S_ISCHR (st.st_mode) || st.st_rdev != makedev (0, 0))
    fail_msg ("%s: not a whiteout (mode 0%o)", name, (unsigned)st.st_mode);
}

static void
assert_opaque (int dfd, const char *name, bool want)
{
  char buf[16];
  ssize_t n = xattr_at (dfd, name, "trusted.overlay.opaque", buf, sizeof buf);
  if (want && (n != 1 || buf[0] != 'y'))
    fail_msg ("%s: not opaque", name);
  if (!want && n >= 0)
    fail_msg ("%s: opaque", name);
}

/* OCI layer.md: "Whiteout files MUST only apply to resources in lower/parent layers. Files that
   are present in the same layer as a whiteout file can only be hidden by whiteout files in
   subsequent layers." Every entry of the layer stays, whatever the order; a directory of the
   layer that is also whited out hides the lower layers' directory (opaque). */
static void
test_apply_whiteout_same_layer (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_apply_stats stats = { 0 };
  struct tarw t;

  if (!trusted_xattrs_supported (f->rootfd))
    skip ();

  tw_init (&t);
  /* entry, then its whiteout */
  tw_file (&t, "keep", 0644, "k");
  tw_file (&t, ".wh.keep", 0644, "");
  tw_symlink (&t, "lnk", "keep");
  tw_file (&t, ".wh.lnk", 0644, "");
  tw_hardlink (&t, "hard", "keep");
  tw_file (&t, ".wh.hard", 0644, "");
  tw_dir (&t, "d", 0750);
  tw_file (&t, "d/in", 0644, "d-in");
  tw_file (&t, ".wh.d", 0644, "");
  /* a directory made only as the parent of an entry, then whited out */
  tw_file (&t, "implicit/deep/file", 0644, "deep");
  tw_file (&t, ".wh.implicit", 0644, "");
  /* whiteout, then the entry */
  tw_file (&t, ".wh.later", 0644, "");
  tw_file (&t, "later", 0600, "l");
  tw_file (&t, ".wh.e", 0644, "");
  tw_dir (&t, "e", 0711);
  tw_file (&t, "e/in", 0644, "e-in");
  /* whiteout, then an entry below it without the directory's own entry */
  tw_file (&t, ".wh.g", 0644, "");
  tw_file (&t, "g/in", 0644, "g-in");
  /* an opaque marker after entries of its directory, and more entries after it */
  tw_dir (&t, "o", 0755);
  tw_file (&t, "o/a", 0644, "o-a");
  tw_dir (&t, "o/sub", 0755);
  tw_file (&t, "o/sub/x", 0644, "o-sub-x");
  tw_file (&t, "o/.wh..wh..opq", 0644, "");
  tw_file (&t, "o/b", 0644, "o-b");
  /* a whiteout of a name the layer does not have is still made */
  tw_file (&t, ".wh.lower", 0644, "");
  tw_close (&t);
  int r = apply_buf (t.m.data, t.m.len, f->rootfd, 0, &stats, &err);
  if (r < 0)
    fail_msg ("apply: %s", err.msg);
  tw_free (&t);

  struct stat st, st2;
  assert_content (f->rootfd, "keep", "k");
  lstat_at (f->rootfd, "lnk", &st);
  assert_true (S_ISLNK (st.st_mode));
  lstat_at (f->rootfd, "keep", &st);
  lstat_at (f->rootfd, "hard", &st2);
  assert_int_equal (st.st_ino, st2.st_ino);
  assert_opaque (f->rootfd, "keep", false);

  lstat_at (f->rootfd, "d", &st);
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (st.st_mode & 07777, 0750);
  assert_content (f->rootfd, "d/in", "d-in");
  assert_opaque (f->rootfd, "d", true);
  assert_content (f->rootfd, "implicit/deep/file", "deep");
  assert_opaque (f->rootfd, "implicit", true);
  assert_opaque (f->rootfd, "implicit/deep", false);

  assert_content (f->rootfd, "later", "l");
  lstat_at (f->rootfd, "later", &st);
  assert_int_equal (st.st_mode & 07777, 0600);
  lstat_at (f->rootfd, "e", &st);
  assert_true (S_ISDIR (st.st_mode));
  assert_int_equal (st.st_mode & 07777, 0711);
  assert_content (f->rootfd, "e/in", "e-in");
  assert_opaque (f->rootfd, "e", true);
  lstat_at (f->rootfd, "g", &st);
  assert_true (S_ISDIR (st.st_mode));
  assert_content (f->rootfd, "g/in", "g-in");
  assert_opaque (f->rootfd, "g", true);

  assert_content (f->rootfd, "o/a", "o-a");
  assert_content (f->rootfd, "o/sub/x", "o-sub-x");
  assert_content (f->rootfd, "o/b", "o-b");
  assert_opaque (f->rootfd, "o", true);
  assert_opaque (f->rootfd, "o/sub", false);
  assert_false (exists_at (f->rootfd, "o/.wh..wh..opq"));

  assert_whiteout_at (f->rootfd, "lower");
  const char *markers[] = { ".wh.keep",  ".wh.lnk", ".wh.hard", ".wh.d",    ".wh.implicit",
                            ".wh.later", ".wh.e",   ".wh.g",    ".wh.lower" };
  for (size_t i = 0; i < ARRAY_SIZE (markers); i++)
    assert_false (exists_at (f->rootfd, markers[i]));
  /* Not made opaque by accident. */
  assert_opaque (f->rootfd, ".", false);
  assert_outside_intact (f, NULL);
}

static void
tw_owned (struct tarw *t, const char *name, mode_t type, mode_t perm, int64_t uid, int64_t gid,
          const char *content)
{
  struct archive_entry *e = ent (name, type, perm);
  archive_entry_set_uid (e, uid);
  archive_entry_set_gid (e, gid);
  tw_put (t, e, content, content ? strlen (content) : 0);
}

static void
assert_owner_mode (int dfd, const char *name, uid_t uid, gid_t gid, mode_t mode)
{
  struct stat st;
  lstat_at (dfd, name, &st);
  if (st.st_uid != uid || st.st_gid != gid || (st.st_mode & 07777) != mode)
    fail_msg ("%s: %u:%u 0%o, expected %u:%u 0%o", name, (unsigned)st.st_uid, (unsigned)st.st_gid,
              (unsigned)(st.st_mode & 07777), (unsigned)uid, (unsigned)gid, (unsigned)mode);
}

/* Files and directories are created with their final owner and mode where they can be, and
   the chown and chmod left out: what the kernel gives a new file (a setgid directory's group, the
   umask) must never make the result differ from what the tar says. */
static void
test_apply_owner_mode (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct tarw t;

  mode_t old = umask (027);
  tw_init (&t);
  tw_owned (&t, "plain", AE_IFREG, 0644, 0, 0, "p");
  tw_owned (&t, "open", AE_IFREG, 0666, 0, 0, "o");
  tw_owned (&t, "none", AE_IFREG, 0, 0, 0, "n");
  tw_owned (&t, "other", AE_IFREG, 0640, 1000, 1001, "x");
  tw_owned (&t, "suid", AE_IFREG, 04755, 0, 0, "s");
  tw_owned (&t, "sg", AE_IFDIR, 02775, 0, 7, NULL);
  tw_owned (&t, "sg/root-group", AE_IFREG, 0644, 0, 0, "r");
  tw_owned (&t, "sg/dir-group", AE_IFREG, 0644, 0, 7, "d");
  tw_owned (&t, "sg/sub/implicit", AE_IFREG, 0600, 0, 0, "i");
  /* Directories likewise: a setgid parent's group and setgid bit are not the tar's. */
  tw_owned (&t, "d750", AE_IFDIR, 0750, 0, 0, NULL);
  tw_owned (&t, "d755", AE_IFDIR, 0755, 0, 0, NULL);
  tw_owned (&t, "dother", AE_IFDIR, 0750, 1000, 1001, NULL);
  tw_owned (&t, "dsticky", AE_IFDIR, 01777, 0, 0, NULL);
  tw_owned (&t, "sg/d-root-group", AE_IFDIR, 0750, 0, 0, NULL);
  tw_owned (&t, "sg/d-dir-group", AE_IFDIR, 0750, 0, 7, NULL);
  tw_owned (&t, "sg/d-dir-group/f", AE_IFREG, 0644, 0, 0, "f");
  /* The root made setgid after a file of it: the next file's group is still the tar's. */
  tw_owned (&t, "./", AE_IFDIR, 02755, 0, 9, NULL);
  tw_owned (&t, "after-root", AE_IFREG, 0644, 0, 0, "a");
  int r = apply_tw (&t, f->rootfd, &err);
  umask (old);
  if (r < 0)
    fail_msg ("apply: %s", err.msg);
  tw_free (&t);

  assert_owner_mode (f->rootfd, "plain", 0, 0, 0644);
  assert_owner_mode (f->rootfd, "open", 0, 0, 0666);
  assert_owner_mode (f->rootfd, "none", 0, 0, 0);
  assert_owner_mode (f->rootfd, "other", 1000, 1001, 0640);
  assert_owner_mode (f->rootfd, "suid", 0, 0, 04755);
  assert_owner_mode (f->rootfd, "sg", 0, 7, 02775);
  assert_owner_mode (f->rootfd, "sg/root-group", 0, 0, 0644);
  assert_owner_mode (f->rootfd, "sg/dir-group", 0, 7, 0644);
  assert_owner_mode (f->rootfd, "sg/sub/implicit", 0, 0, 0600);
  assert_owner_mode (f->rootfd, "d750", 0, 0, 0750);
  assert_owner_mode (f->rootfd, "d755", 0, 0, 0755);
  assert_owner_mode (f->rootfd, "dother", 1000, 1001, 0750);
  assert_owner_mode (f->rootfd, "dsticky", 0, 0, 01777);
  assert_owner_mode (f->rootfd, "sg/d-root-group", 0, 0, 0750);
  assert_owner_mode (f->rootfd, "sg/d-dir-group", 0, 7, 0750);
  /* Its parent is not setgid (any more): the file keeps the tar's group. */
  assert_owner_mode (f->rootfd, "sg/d-dir-group/f", 0, 0, 0644);
  assert_owner_mode (f->rootfd, "after-root", 0, 0, 0644);
  assert_content (f->rootfd, "none", "n");
  assert_content (f->rootfd, "sg/dir-group", "d");
  assert_outside_intact (f, NULL);
}

static void
test_apply_bad_whiteouts (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  const char *names[] = { "x/.wh.", ".wh.", ".wh..", ".wh..." };

  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      struct tarw t;
      tw_init (&t);
      tw_file (&t, names[i], 0644, "");
      cleanup_free char *want = xasprintf ("entry \"%s\": invalid whiteout", names[i]);
      assert_err (apply_tw (&t, f->rootfd, &err), &err, want);
      tw_free (&t);
    }
  assert_false (exists_at (f->rootfd, "x/.wh."));
  assert_outside_intact (f, NULL);
}

static void
test_apply_max_size (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct cimg_apply_stats stats = { 0 };
  char big[2000];
  memset (big, 'a', sizeof big);

  struct tarw t;
  tw_init (&t);
  tw_put (&t, ent ("big", AE_IFREG, 0644), big, sizeof big);
  tw_close (&t);
  assert_err (apply_buf (t.m.data, t.m.len, f->rootfd, 1000, &stats, &err), &err,
              "entry \"big\": layer exceeds the size limit of 1000 bytes");
  tw_free (&t);

  /* Each file is under the limit, their sum is not. */
  tw_init (&t);
  tw_put (&t, ent ("b1", AE_IFREG, 0644), big, 600);
  tw_put (&t, ent ("b2", AE_IFREG, 0644), big, 600);
  tw_close (&t);
  assert_err (apply_buf (t.m.data, t.m.len, f->rootfd, 1000, &stats, &err), &err,
              "entry \"b2\": layer exceeds the size limit of 1000 bytes");
  tw_free (&t);

  /* Exactly the limit is fine. */
  tw_init (&t);
  tw_put (&t, ent ("b1", AE_IFREG, 0644), big, 600);
  tw_put (&t, ent ("b2", AE_IFREG, 0644), big, 400);
  tw_close (&t);
  assert_int_equal (apply_buf (t.m.data, t.m.len, f->rootfd, 1000, &stats, &err), 0);
  assert_int_equal (stats.size, 1000);
  assert_int_equal (stats.entries, 2);
  tw_free (&t);
}

static void
test_apply_duplicates (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct tarw t;

  tw_init (&t);
  tw_file (&t, "f", 0644, "one");
  tw_file (&t, "f", 0600, "two");
  tw_dir (&t, "g", 0755);
  tw_file (&t, "g/x", 0644, "x");
  tw_file (&t, "g", 0644, "g is a file");
  tw_file (&t, "h", 0644, "h was a file");
  tw_dir (&t, "h", 0700);
  tw_dir (&t, "k", 0700);
  tw_file (&t, "k/keep", 0644, "keep");
  struct archive_entry *e = ent ("k", AE_IFDIR, 0755);
  archive_entry_set_uid (e, 77);
  tw_put (&t, e, NULL, 0);
  tw_put (&t, ent ("p", AE_IFIFO, 0644), NULL, 0);
  tw_symlink (&t, "p", "target");
  assert_int_equal (apply_tw (&t, f->rootfd, &err), 0);

  struct stat st;
  assert_content (f->rootfd, "f", "two");
  lstat_at (f->rootfd, "f", &st);
  assert_int_equal (st.st_mode, S_IFREG | 0600);
  assert_content (f->rootfd, "g", "g is a file");
  lstat_at (f->rootfd, "h", &st);
  assert_int_equal (st.st_mode, S_IFDIR | 0700);
  lstat_at (f->rootfd, "k", &st);
  assert_int_equal (st.st_mode, S_IFDIR | 0755);
  assert_int_equal (st.st_uid, 77);
  assert_content (f->rootfd, "k/keep", "keep");
  lstat_at (f->rootfd, "p", &st);
  assert_true (S_ISLNK (st.st_mode));
  tw_free (&t);
}

static void
test_apply_sparse_and_fd (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  struct tarw t;

  /* A sparse entry: 4 bytes at 0, 4 bytes at 1 MiB - 4, holes elsewhere. */
  tw_init (&t);
  struct archive_entry *e = ent ("sparse", AE_IFREG, 0644);
  archive_entry_set_size (e, 1 << 20);
  archive_entry_sparse_add_entry (e, 0, 4);
  archive_entry_sparse_add_entry (e, (1 << 20) - 4, 4);
  assert_int_equal (archive_write_header (t.a, e), ARCHIVE_OK);
  char block[1 << 16];
  memset (block, 0, sizeof block);
  memcpy (block, "head", 4);
  for (int i = 0; i < 16; i++)
    {
      if (i == 15)
        memcpy (block + sizeof block - 4, "tail", 4);
      assert_int_equal (archive_write_data (t.a, block, sizeof block), (la_ssize_t)sizeof block);
      memset (block, 0, 4);
    }
  archive_entry_free (e);
  tw_file (&t, "plain", 0644, "plain");
  tw_close (&t);

  /* Through cimg_archive_read_fd, gzip-compressed, as the layer sink reads it. */
  struct archive *w = archive_write_new ();
  struct membuf gz = { 0 };
  archive_write_add_filter_gzip (w);
  archive_write_set_format_raw (w);
  assert_int_equal (archive_write_open (w, &gz, NULL, mem_write_cb, NULL), ARCHIVE_OK);
  struct archive_entry *raw = archive_entry_new ();
  archive_entry_set_filetype (raw, AE_IFREG);
  assert_int_equal (archive_write_header (w, raw), ARCHIVE_OK);
  assert_int_equal (archive_write_data (w, t.m.data, t.m.len), (la_ssize_t)t.m.len);
  archive_entry_free (raw);
  assert_int_equal (archive_write_close (w), ARCHIVE_OK);
  archive_write_free (w);
  assert_true (gz.len > 2 && gz.data[0] == 0x1f && gz.data[1] == 0x8b);

  int fd = openat (f->basefd, "layer.tar.gz", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  assert_true (fd >= 0);
  assert_int_equal (cimg_write_all (fd, gz.data, gz.len), 0);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  struct archive *a = cimg_archive_read_fd (fd, &err);
  if (a == NULL)
    fail_msg ("open: %s", err.msg);
  struct cimg_apply_stats stats = { 0 };
  int r = cimg_layer_apply (a, f->rootfd, NULL, &stats, &err);
  if (r < 0)
    fail_msg ("apply: %s", err.msg);
  cimg_archive_read_freep (&a);
  assert_null (a);
  close (fd);
  unlinkat (f->basefd, "layer.tar.gz", 0);

  struct stat st;
  lstat_at (f->rootfd, "sparse", &st);
  assert_int_equal (st.st_size, 1 << 20);
  assert_int_equal (stats.size, 8 + 5);
  int sfd = openat (f->rootfd, "sparse", O_RDONLY | O_CLOEXEC);
  char buf[4];
  assert_int_equal (pread (sfd, buf, 4, 0), 4);
  assert_memory_equal (buf, "head", 4);
  assert_int_equal (pread (sfd, buf, 4, (1 << 20) - 4), 4);
  assert_memory_equal (buf, "tail", 4);
  assert_int_equal (pread (sfd, buf, 4, 4096), 4);
  assert_memory_equal (buf, "\0\0\0\0", 4);
  close (sfd);
  assert_content (f->rootfd, "plain", "plain");
  free (gz.data);
  tw_free (&t);

  /* A truncated stream is an error, not a silent success. */
  tw_init (&t);
  tw_file (&t, "whole", 0644, "whole");
  tw_close (&t);
  assert_err_contains (apply_buf (t.m.data, 600, f->rootfd, 0, NULL, &err), &err,
                       "entry \"whole\": read content: ");
  tw_free (&t);
}

/* ---------------------------------------------------------------- pack */

/* An upper dir as overlay leaves it after a RUN step. */
static void
make_tree (int rootfd)
{
  struct timespec ts[2] = { { T1, 0 }, { T1, 123456789 } };
  assert_int_equal (mkdirat (rootfd, "dir", 0750), 0);
  write_at (rootfd, "dir/file", "content", 0640);
  int fd = openat (rootfd, "dir/file", O_RDONLY | O_CLOEXEC);
  assert_int_equal (fchown (fd, 1000, 1001), 0);
  assert_int_equal (fchmod (fd, 04750), 0);
  close (fd);
  assert_int_equal (linkat (rootfd, "dir/file", rootfd, "dir/hard", 0), 0);
  assert_int_equal (utimensat (rootfd, "dir/file", ts, 0), 0);
  assert_int_equal (symlinkat ("dir/file", rootfd, "sym"), 0);
  assert_int_equal (mknodat (rootfd, "fifo", S_IFIFO | 0600, 0), 0);
  assert_int_equal (mknodat (rootfd, "gone", S_IFCHR | 0, makedev (0, 0)), 0);
  assert_int_equal (mknodat (rootfd, "null", S_IFCHR | 0666, makedev (1, 3)), 0);
  assert_int_equal (mkdirat (rootfd, "opq", 0755), 0);
  write_at (rootfd, "opq/inner", "inner", 0644);
  write_at (rootfd, "x", "x", 0644);
  write_at (rootfd, "empty", "", 0600);
  cleanup_free char *opq = xasprintf ("/proc/self/fd/%d/opq", rootfd);
  assert_int_equal (setxattr (opq, "trusted.overlay.opaque", "y", 1, 0), 0);
  cleanup_free char *x = xasprintf ("/proc/self/fd/%d/x", rootfd);
  assert_int_equal (setxattr (x, "user.b", "2", 1, 0), 0);
  assert_int_equal (setxattr (x, "user.a", "1", 1, 0), 0);
  assert_int_equal (setxattr (x, "trusted.overlay.origin", "o", 1, 0), 0);
  assert_int_equal (utimensat (rootfd, "dir", ts, 0), 0);
}

static void
pack_to (int rootfd, int flags, struct membuf *m)
{
  cimg_error_t err = { 0 };
  memset (m, 0, sizeof *m);
  if (cimg_layer_pack (rootfd, flags, mem_pack_cb, m, &err) < 0)
    fail_msg ("pack: %s", err.msg);
}

struct listed
{
  char name[64];
  mode_t type;
  int64_t size;
  char hardlink[64];
  char xattrs[128]; /* "name=value;" … */
};

static size_t
list_tar (const struct membuf *m, struct listed *out, size_t max)
{
  struct archive *a = archive_read_new ();
  archive_read_support_format_tar (a);
  assert_int_equal (archive_read_open_memory (a, m->data, m->len), ARCHIVE_OK);
  struct archive_entry *e;
  size_t n = 0;
  int r;
  while ((r = archive_read_next_header (a, &e)) == ARCHIVE_OK)
    {
      assert_true (n < max);
      struct listed *l = &out[n++];
      memset (l, 0, sizeof *l);
      snprintf (l->name, sizeof l->name, "%s", archive_entry_pathname (e));
      l->type = archive_entry_filetype (e);
      l->size = archive_entry_size (e);
      if (archive_entry_hardlink (e))
        snprintf (l->hardlink, sizeof l->hardlink, "%s", archive_entry_hardlink (e));
      const char *xn;
      const void *xv;
      size_t xs;
      archive_entry_xattr_reset (e);
      while (archive_entry_xattr_next (e, &xn, &xv, &xs) == ARCHIVE_OK)
        {
          size_t used = strlen (l->xattrs);
          snprintf (l->xattrs + used, sizeof l->xattrs - used, "%s=%.*s;", xn, (int)xs,
                    (const char *)xv);
        }
      /* Nothing volatile or host-specific. */
      assert_false (archive_entry_atime_is_set (e));
      assert_false (archive_entry_ctime_is_set (e));
      assert_true (archive_entry_uname (e) == NULL || *archive_entry_uname (e) == '\0');
      assert_true (archive_entry_gname (e) == NULL || *archive_entry_gname (e) == '\0');
    }
  assert_int_equal (r, ARCHIVE_EOF);
  archive_read_free (a);
  return n;
}

static void
test_pack_overlay (void **state)
{
  struct fx *f = *state;
  if (!trusted_xattrs_supported (f->rootfd))
    skip ();
  make_tree (f->rootfd);

  struct membuf m;
  pack_to (f->rootfd, CIMG_PACK_OVERLAY, &m);
  struct listed l[32];
  size_t n = list_tar (&m, l, ARRAY_SIZE (l));
  const char *want[] = { "dir/", "dir/file", "dir/hard",         "empty",     "fifo", ".wh.gone",
                         "null", "opq/",     "opq/.wh..wh..opq", "opq/inner", "sym",  "x" };
  assert_int_equal (n, ARRAY_SIZE (want));
  for (size_t i = 0; i < n; i++)
    assert_string_equal (l[i].name, want[i]);
  assert_int_equal (l[0].type, AE_IFDIR);
  assert_int_equal (l[1].type, AE_IFREG);
  assert_int_equal (l[1].size, 7);
  assert_string_equal (l[2].hardlink, "dir/file");
  assert_int_equal (l[4].type, AE_IFIFO);
  assert_int_equal (l[5].type, AE_IFREG);
  assert_int_equal (l[5].size, 0);
  assert_int_equal (l[6].type, AE_IFCHR);
  assert_int_equal (l[8].type, AE_IFREG);
  assert_int_equal (l[8].size, 0);
  assert_int_equal (l[10].type, AE_IFLNK);
  /* Sorted, and overlay's own xattrs left out. */
  assert_string_equal (l[11].xattrs, "user.a=1;user.b=2;");
  for (size_t i = 0; i < n; i++)
    assert_null (strstr (l[i].xattrs, "trusted.overlay."));
  free (m.data);

  /* Without CIMG_PACK_OVERLAY the tree is taken as it is. */
  pack_to (f->rootfd, 0, &m);
  n = list_tar (&m, l, ARRAY_SIZE (l));
  assert_int_equal (n, ARRAY_SIZE (want) - 1);
  assert_string_equal (l[5].name, "gone");
  assert_int_equal (l[5].type, AE_IFCHR);
  assert_string_equal (l[7].name, "opq/");
  assert_string_equal (l[8].name, "opq/inner");
  free (m.data);
}

static void
test_pack_roundtrip (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  if (!trusted_xattrs_supported (f->rootfd))
    skip ();
  make_tree (f->rootfd);

  struct membuf m;
  pack_to (f->rootfd, CIMG_PACK_OVERLAY, &m);
  assert_int_equal (mkdirat (f->basefd, "copy", 0755), 0);
  int cfd = openat (f->basefd, "copy", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (cfd >= 0);
  if (apply_buf (m.data, m.len, cfd, 0, NULL, &err) < 0)
    fail_msg ("apply: %s", err.msg);

  const char *same[] = { "dir",  "dir/file", "dir/hard",  "empty", "fifo", "gone",
                         "null", "opq",      "opq/inner", "sym",   "x" };
  for (size_t i = 0; i < ARRAY_SIZE (same); i++)
    {
      struct stat a, b;
      lstat_at (f->rootfd, same[i], &a);
      lstat_at (cfd, same[i], &b);
      if (a.st_mode != b.st_mode || a.st_uid != b.st_uid || a.st_gid != b.st_gid
          || a.st_rdev != b.st_rdev || a.st_size != b.st_size || a.st_nlink != b.st_nlink)
        fail_msg ("%s differs: mode 0%o/0%o uid %d/%d size %lld/%lld nlink %d/%d", same[i],
                  a.st_mode, b.st_mode, a.st_uid, b.st_uid, (long long)a.st_size,
                  (long long)b.st_size, (int)a.st_nlink, (int)b.st_nlink);
      /* Layers carry whole seconds. */
      if (!S_ISLNK (a.st_mode) && (a.st_mtim.tv_sec != b.st_mtim.tv_sec || b.st_mtim.tv_nsec != 0))
        fail_msg ("%s: mtime differs", same[i]);
    }
  assert_content (cfd, "dir/file", "content");
  assert_content (cfd, "opq/inner", "inner");
  struct stat a, b;
  lstat_at (cfd, "dir/file", &a);
  lstat_at (cfd, "dir/hard", &b);
  assert_int_equal (a.st_ino, b.st_ino);
  assert_int_equal (a.st_mode, S_IFREG | 04750);
  lstat_at (cfd, "gone", &a);
  assert_true (S_ISCHR (a.st_mode));
  assert_int_equal (a.st_rdev, 0);
  char buf[64];
  ssize_t n = readlinkat (cfd, "sym", buf, sizeof buf);
  assert_int_equal (n, 8);
  assert_memory_equal (buf, "dir/file", 8);
  n = xattr_at (cfd, "opq", "trusted.overlay.opaque", buf, sizeof buf);
  assert_int_equal (n, 1);
  assert_int_equal (buf[0], 'y');
  n = xattr_at (cfd, "x", "user.a", buf, sizeof buf);
  assert_int_equal (n, 1);
  assert_int_equal (buf[0], '1');
  n = xattr_at (cfd, "x", "trusted.overlay.origin", buf, sizeof buf);
  assert_int_equal (n, -1);
  assert_false (exists_at (cfd, ".wh.gone"));
  assert_false (exists_at (cfd, "opq/.wh..wh..opq"));

  /* And the copy packs to the same bytes. */
  struct membuf m2;
  pack_to (cfd, CIMG_PACK_OVERLAY, &m2);
  assert_int_equal (m2.len, m.len);
  assert_memory_equal (m2.data, m.data, m.len);
  close (cfd);
  free (m.data);
  free (m2.data);
  assert_outside_intact (f, "copy");
}

static void
test_pack_deterministic (void **state)
{
  struct fx *f = *state;
  if (!trusted_xattrs_supported (f->rootfd))
    skip ();
  make_tree (f->rootfd);

  struct membuf m1, m2;
  pack_to (f->rootfd, CIMG_PACK_OVERLAY, &m1);
  /* atime and ctime move; the bytes must not. */
  struct timespec ts[2] = { { T2, 0 }, { 0, UTIME_OMIT } };
  assert_int_equal (utimensat (f->rootfd, "dir/file", ts, AT_SYMLINK_NOFOLLOW), 0);
  assert_int_equal (fchmodat (f->rootfd, "x", 0644, 0), 0);
  pack_to (f->rootfd, CIMG_PACK_OVERLAY, &m2);
  assert_int_equal (m1.len, m2.len);
  assert_memory_equal (m1.data, m2.data, m1.len);
  free (m2.data);

  /* In another process too (nothing derived from the pid). */
  int p[2];
  assert_int_equal (pipe (p), 0);
  pid_t pid = fork ();
  assert_true (pid >= 0);
  if (pid == 0)
    {
      struct membuf c = { 0 };
      cimg_error_t err = { 0 };
      close (p[0]);
      if (cimg_layer_pack (f->rootfd, CIMG_PACK_OVERLAY, mem_pack_cb, &c, &err) < 0)
        _exit (1);
      _exit (cimg_write_all (p[1], c.data, c.len) < 0 ? 1 : 0);
    }
  close (p[1]);
  memset (&m2, 0, sizeof m2);
  char buf[4096];
  ssize_t n;
  while ((n = read (p[0], buf, sizeof buf)) > 0)
    membuf_add (&m2, buf, (size_t)n);
  close (p[0]);
  int status;
  assert_int_equal (waitpid (pid, &status, 0), pid);
  assert_true (WIFEXITED (status) && WEXITSTATUS (status) == 0);
  assert_int_equal (m1.len, m2.len);
  assert_memory_equal (m1.data, m2.data, m1.len);

  /* A content change does change the bytes. */
  write_at (f->rootfd, "x", "y", 0644);
  free (m2.data);
  pack_to (f->rootfd, CIMG_PACK_OVERLAY, &m2);
  assert_true (m1.len != m2.len || memcmp (m1.data, m2.data, m1.len) != 0);
  free (m1.data);
  free (m2.data);
}

static size_t
count_occurrences (const struct membuf *m, const char *needle)
{
  size_t n = 0, len = strlen (needle);
  const unsigned char *p = m->data, *end = m->data + m->len;
  while ((p = memmem (p, (size_t)(end - p), needle, len)) != NULL)
    {
      n++;
      p += len;
    }
  return n;
}

static void
test_pack_names (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  char long_name[201];
  memset (long_name, 'n', sizeof long_name - 1);
  long_name[sizeof long_name - 1] = '\0';

  write_at (f->rootfd, "F\xc5\x91", "utf8", 0644);
  write_at (f->rootfd,
            "f\xff"
            "bad",
            "latin1", 0644);
  write_at (f->rootfd, long_name, "long", 0644);
  assert_int_equal (symlinkat ("F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny", f->rootfd, "l"), 0);

  struct membuf m;
  pack_to (f->rootfd, 0, &m);
  /* Valid UTF-8 is written as such whatever the locale; only the invalid name is binary. */
  assert_int_equal (count_occurrences (&m, "hdrcharset=BINARY"), 1);
  assert_int_equal (count_occurrences (&m, "path=F\xc5\x91\n"), 1);

  assert_int_equal (mkdirat (f->basefd, "copy", 0755), 0);
  int cfd = openat (f->basefd, "copy", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (cfd >= 0);
  if (apply_buf (m.data, m.len, cfd, 0, NULL, &err) < 0)
    fail_msg ("apply: %s", err.msg);
  assert_content (cfd, "F\xc5\x91", "utf8");
  assert_content (cfd,
                  "f\xff"
                  "bad",
                  "latin1");
  assert_content (cfd, long_name, "long");
  char buf[64];
  ssize_t n = readlinkat (cfd, "l", buf, sizeof buf);
  assert_int_equal (n, 17);
  assert_memory_equal (buf, "F\xc5\x91tan\xc3\xbas\xc3\xadtv\xc3\xa1ny", 17);
  close (cfd);
  free (m.data);
  assert_outside_intact (f, "copy");
}

static int
fail_writer (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  int *calls = data;
  (*calls)++;
  return cimg_error_set (err, ENOSPC, "sink full");
}

static void
test_pack_sink_error (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  int calls = 0;
  char big[20000];
  memset (big, 'z', sizeof big);
  int fd = openat (f->rootfd, "big", O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  assert_int_equal (cimg_write_all (fd, big, sizeof big), 0);
  close (fd);
  assert_int_equal (cimg_layer_pack (f->rootfd, 0, fail_writer, &calls, &err), -1);
  assert_non_null (err.msg);
  assert_string_equal (err.msg, "sink full");
  assert_int_equal (calls, 1);
  cimg_error_clear (&err);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_apply_basic, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_dotdot_refused, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_absolute_names, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_symlink_escape, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_dir_replaced_by_symlink, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_hardlink_outside, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_whiteouts, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_whiteout_same_layer, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_owner_mode, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_bad_whiteouts, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_max_size, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_duplicates, setup, teardown),
    cmocka_unit_test_setup_teardown (test_apply_sparse_and_fd, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pack_overlay, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pack_roundtrip, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pack_deterministic, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pack_names, setup, teardown),
    cmocka_unit_test_setup_teardown (test_pack_sink_error, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
