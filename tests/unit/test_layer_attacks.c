/* Hostile layers against the store's layer sink, the entry point pull, load, import and build
   use: every tar here is generated with libarchive's writer (or, where libarchive refuses to
   write the attack, by hand), pushed through cimg_layer_sink_write/finish into a fresh store
   that sits beside a canary tree, and each case asserts two things:
   - nothing outside the extraction root changed (the canary tree's snapshot, taken before, is
     the same after), and
   - the layer was either refused with a message that names the entry and the reason, with
     nothing left in the store, or extracted with every name contained in the layer (and then
     the case says where things landed).
   The cases port the attack classes of containerd's archive TestBreakouts (each named after
   the original; containerd's "already on disk" state becomes earlier entries of the same layer,
   since cimg unpacks every layer into its own empty directory) and libarchive's
   test_write_disk_secure*, then add the ones issue #7 lists. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "store/layer-internal.h"
#include "store/store-internal.h"
#include "tests/fuzz/tree-snapshot.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>
#include <zlib.h>
#include <zstd.h>

#define MTIME 1600000000

/* ---------------------------------------------------------------- tar generation */

struct membuf
{
  unsigned char *data;
  size_t len, cap;
};

static void
membuf_add (struct membuf *m, const void *p, size_t n)
{
  if (m->len + n > m->cap)
    {
      m->cap = (m->len + n) * 2 + 4096;
      m->data = xrealloc (m->data, m->cap);
    }
  memcpy (m->data + m->len, p, n);
  m->len += n;
}

static la_ssize_t
mem_write_cb (struct archive *a, void *data, const void *buf, size_t n)
{
  membuf_add (data, buf, n);
  return (la_ssize_t)n;
}

struct tarw
{
  struct archive *a;
  struct membuf m;
};

static void
tw_init (struct tarw *t)
{
  memset (t, 0, sizeof *t);
  t->a = archive_write_new ();
  assert_int_equal (archive_write_set_format_pax (t->a), ARCHIVE_OK);
  assert_int_equal (archive_write_open (t->a, &t->m, NULL, mem_write_cb, NULL), ARCHIVE_OK);
}

static void
tw_close (struct tarw *t)
{
  if (t->a == NULL)
    return;
  assert_int_equal (archive_write_close (t->a), ARCHIVE_OK);
  archive_write_free (t->a);
  t->a = NULL;
}

static void
tw_free (struct tarw *t)
{
  if (t->a)
    archive_write_free (t->a);
  free (t->m.data);
  memset (t, 0, sizeof *t);
}

static struct archive_entry *
ent (const char *name, mode_t type, mode_t perm)
{
  struct archive_entry *e = archive_entry_new ();
  archive_entry_copy_pathname (e, name);
  archive_entry_set_filetype (e, type);
  archive_entry_set_perm (e, perm);
  archive_entry_set_mtime (e, MTIME, 0);
  return e;
}

static void
tw_put (struct tarw *t, struct archive_entry *e, const void *data, size_t len)
{
  if (archive_entry_filetype (e) == AE_IFREG && archive_entry_hardlink (e) == NULL)
    archive_entry_set_size (e, (la_int64_t)len);
  if (archive_write_header (t->a, e) != ARCHIVE_OK)
    fail_msg ("write header %s: %s", archive_entry_pathname (e), archive_error_string (t->a));
  if (len > 0)
    assert_int_equal (archive_write_data (t->a, data, len), (la_ssize_t)len);
  archive_entry_free (e);
}

static void
tw_file (struct tarw *t, const char *name, const char *content)
{
  tw_put (t, ent (name, AE_IFREG, 0644), content, strlen (content));
}

static void
tw_dir (struct tarw *t, const char *name)
{
  tw_put (t, ent (name, AE_IFDIR, 0755), NULL, 0);
}

static void
tw_symlink (struct tarw *t, const char *name, const char *target)
{
  struct archive_entry *e = ent (name, AE_IFLNK, 0777);
  archive_entry_copy_symlink (e, target);
  tw_put (t, e, NULL, 0);
}

static void
tw_hardlink (struct tarw *t, const char *name, const char *target)
{
  struct archive_entry *e = ent (name, AE_IFREG, 0644);
  archive_entry_copy_hardlink (e, target);
  archive_entry_set_size (e, 0);
  tw_put (t, e, NULL, 0);
}

/* A ustar header written by hand, for what libarchive's writer will not produce. */
static void
raw_header (struct membuf *m, const char *name, char type, const char *link, size_t size)
{
  char h[512];
  memset (h, 0, sizeof h);
  memcpy (h, name, strnlen (name, 100));
  snprintf (h + 100, 8, "%07o", 0644);
  snprintf (h + 108, 8, "%07o", 0);
  snprintf (h + 116, 8, "%07o", 0);
  snprintf (h + 124, 12, "%011zo", size);
  snprintf (h + 136, 12, "%011o", MTIME);
  h[156] = type;
  if (link)
    memcpy (h + 157, link, strnlen (link, 100));
  memcpy (h + 257, "ustar", 6);
  memcpy (h + 263, "00", 2);
  memset (h + 148, ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof h; i++)
    sum += (unsigned char)h[i];
  snprintf (h + 148, 8, "%06o", sum);
  h[155] = ' ';
  membuf_add (m, h, sizeof h);
}

static void
raw_end (struct membuf *m)
{
  char z[1024];
  memset (z, 0, sizeof z);
  membuf_add (m, z, sizeof z);
}

static void
gzip_buf (const struct membuf *in, struct membuf *out)
{
  memset (out, 0, sizeof *out);
  z_stream z;
  memset (&z, 0, sizeof z);
  assert_int_equal (deflateInit2 (&z, 9, Z_DEFLATED, 16 + MAX_WBITS, 9, Z_DEFAULT_STRATEGY), Z_OK);
  out->cap = deflateBound (&z, in->len) + 64;
  out->data = xmalloc (out->cap);
  z.next_in = in->data;
  z.avail_in = (uInt)in->len;
  z.next_out = out->data;
  z.avail_out = (uInt)out->cap;
  assert_int_equal (deflate (&z, Z_FINISH), Z_STREAM_END);
  out->len = z.total_out;
  deflateEnd (&z);
}

static void
zstd_buf (const struct membuf *in, struct membuf *out)
{
  memset (out, 0, sizeof *out);
  out->cap = ZSTD_compressBound (in->len);
  out->data = xmalloc (out->cap);
  size_t n = ZSTD_compress (out->data, out->cap, in->data, in->len, 19);
  assert_false (ZSTD_isError (n));
  out->len = n;
}

/* ---------------------------------------------------------------- the store beside a canary */

struct env
{
  char base[64];
  int basefd;
  struct cimg_store *s;
  char *canary;   /* absolute host path of the canary directory */
  char *before;   /* snapshot of base (minus the store) before the case */
  char *config;   /* $CIMG_CONFIG for this case */
  int diffd;      /* the extracted layer's diff directory, after expect_contained */
  char *kept[16]; /* strings made for a case, freed with it */
  size_t n_kept;
};

/* s, freed at the end of the case. */
static const char *
keep (struct env *v, char *s)
{
  assert_true (v->n_kept < ARRAY_SIZE (v->kept));
  v->kept[v->n_kept++] = s;
  return s;
}

static const char *const snap_skip[] = { "store", "config.json", NULL };

static void
write_at (int dfd, const char *name, const char *content, mode_t mode)
{
  int fd = openat (dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  assert_true (fd >= 0);
  assert_int_equal (cimg_write_all (fd, content, strlen (content)), 0);
  assert_int_equal (fchmod (fd, mode), 0);
  close (fd);
}

static int
setup (void **state)
{
  struct env *v = xzalloc (sizeof *v);
  /* $TMPDIR picks the filesystem under test (the store's is the real one: /tmp by default). */
  const char *tmp = getenv ("TMPDIR");
  snprintf (v->base, sizeof v->base, "%s/cimg-attack-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  assert_non_null (mkdtemp (v->base));
  v->basefd = open (v->base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (v->basefd >= 0);
  v->diffd = -1;
  /* The victim: what a layer would love to reach outside its root. */
  assert_int_equal (mkdirat (v->basefd, "canary", 0755), 0);
  assert_int_equal (mkdirat (v->basefd, "canary/dir", 0700), 0);
  assert_int_equal (mkdirat (v->basefd, "canary/etc", 0755), 0);
  write_at (v->basefd, "canary/file", "canary", 0644);
  write_at (v->basefd, "canary/perm400", "...", 0400);
  write_at (v->basefd, "canary/dir/inner", "inner", 0600);
  write_at (v->basefd, "canary/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0644);
  write_at (v->basefd, "canary/etc/emptied", "notempty", 0644);
  write_at (v->basefd, "canary/etc/whitedout", "ahhhh whiteout", 0644);
  assert_int_equal (symlinkat ("file", v->basefd, "canary/link"), 0);
  write_at (v->basefd, "outside", "outside", 0644);
  v->canary = xasprintf ("%s/canary", v->base);
  v->config = xasprintf ("%s/config.json", v->base);
  /* Only this case's config is read: the machine's /etc/cimg/config.json must not decide. */
  setenv ("CIMG_CONFIG", v->config, 1);
  unsetenv ("CIMG_MAX_LAYER_SIZE");
  cimg_error_t err = { 0 };
  cleanup_free char *root = xasprintf ("%s/store", v->base);
  v->s = cimg_store_open (root, &err);
  if (v->s == NULL)
    fail_msg ("open store: %s", err.msg);
  v->before = tree_snapshot (v->basefd, snap_skip);
  *state = v;
  return 0;
}

static void
assert_outside_unchanged (struct env *v)
{
  cleanup_free char *after = tree_snapshot (v->basefd, snap_skip);
  if (strcmp (after, v->before) != 0)
    fail_msg ("the tree beside the store changed.\nbefore:\n%s\nafter:\n%s", v->before, after);
}

static int
teardown (void **state)
{
  struct env *v = *state;
  assert_outside_unchanged (v);
  if (v->diffd >= 0)
    close (v->diffd);
  cimg_store_close (v->s);
  cimg_error_t err = { 0 };
  close (v->basefd);
  cimg_rm_rf_at (AT_FDCWD, v->base, &err);
  cimg_error_clear (&err);
  unsetenv ("CIMG_CONFIG");
  free (v->canary);
  free (v->config);
  free (v->before);
  for (size_t i = 0; i < v->n_kept; i++)
    free (v->kept[i]);
  free (v);
  return 0;
}

static void
set_config (struct env *v, const char *json)
{
  write_at (AT_FDCWD, v->config, json, 0644);
}

/* Layers fed and how they ended, for the summary line (docs/security.md quotes it). */
static int n_refused, n_contained;

/* Push buf through a layer sink as pull does, in chunks of chunk bytes. */
static int
feed (struct env *v, const void *buf, size_t len, struct cimg_layer_info *info, cimg_error_t *err)
{
  struct cimg_layer_sink *k = cimg_layer_sink_new (v->s, NULL, 0, err);
  if (k == NULL)
    return -1;
  const size_t chunk = 64 * 1024;
  int rc = 0;
  for (size_t off = 0; rc == 0 && off < len; off += chunk)
    rc = cimg_layer_sink_write (k, (const char *)buf + off, len - off < chunk ? len - off : chunk,
                                err);
  if (rc == 0)
    rc = cimg_layer_sink_finish (k, NULL, NULL, info, err);
  cimg_layer_sink_free (k);
  return rc;
}

/* Entries in the store's layers/ and l/; fails on a temporary layer directory left behind. */
static size_t
count_layers (struct env *v)
{
  const char *dirs[] = { "store/layers", "store/l" };
  size_t n = 0;
  for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
    {
      cleanup_free char *path = xasprintf ("%s/%s", v->base, dirs[i]);
      DIR *d = opendir (path);
      if (d == NULL)
        continue;
      struct dirent *de;
      while ((de = readdir (d)) != NULL)
        {
          if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
            continue;
          if (strncmp (de->d_name, "tmp-", 4) == 0)
            fail_msg ("%s/%s left behind", dirs[i], de->d_name);
          n++;
        }
      closedir (d);
    }
  return n;
}

static void
contained_buf (struct env *v, const void *buf, size_t len)
{
  cimg_error_t err = { 0 };
  struct cimg_layer_info info;
  if (feed (v, buf, len, &info, &err) < 0)
    fail_msg ("layer refused, expected a contained extraction: %s", err.msg);
  n_contained++;
  assert_outside_unchanged (v);
  cleanup_free char *diff = cimg_store_layer_diff_path (info.chain_id);
  int sfd = cimg_store_dirfd (v->s);
  if (v->diffd >= 0)
    close (v->diffd);
  v->diffd = openat (sfd, diff, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (v->diffd >= 0);
}

/* The layer extracts; v->diffd is its diff directory. */
static void
expect_contained (struct env *v, struct tarw *t)
{
  tw_close (t);
  contained_buf (v, t->m.data, t->m.len);
  tw_free (t);
}

static void
refused_buf (struct env *v, const void *buf, size_t len, const char *want)
{
  cimg_error_t err = { 0 };
  struct cimg_layer_info info;
  size_t layers = count_layers (v);
  int rc = feed (v, buf, len, &info, &err);
  if (rc == 0)
    fail_msg ("layer extracted, expected a refusal with \"%s\"", want);
  n_refused++;
  assert_non_null (err.msg);
  if (strstr (err.msg, want) == NULL)
    fail_msg ("error \"%s\" does not say \"%s\"", err.msg, want);
  cimg_error_clear (&err);
  assert_outside_unchanged (v);
  /* Nothing of a refused layer stays in the store. */
  assert_int_equal (count_layers (v), layers);
}

/* The layer is refused with a message containing want. */
static void
expect_refused (struct env *v, struct tarw *t, const char *want)
{
  tw_close (t);
  refused_buf (v, t->m.data, t->m.len, want);
  tw_free (t);
}

/* ---------------------------------------------------------------- checks inside the layer */

static void
lstat_in (struct env *v, const char *name, struct stat *st)
{
  if (fstatat (v->diffd, name, st, AT_SYMLINK_NOFOLLOW) < 0)
    fail_msg ("%s: %s", name, strerror (errno));
}

static void
assert_content (struct env *v, const char *name, const char *want)
{
  char *got = NULL;
  cimg_error_t err = { 0 };
  if (cimg_read_file_at (v->diffd, name, 1 << 20, &got, NULL, &err) < 0)
    fail_msg ("%s: %s", name, err.msg);
  assert_string_equal (got, want);
  free (got);
}

static void
assert_type (struct env *v, const char *name, mode_t type)
{
  struct stat st;
  lstat_in (v, name, &st);
  if ((st.st_mode & S_IFMT) != type)
    fail_msg ("%s: type 0%o, expected 0%o", name, st.st_mode & S_IFMT, type);
}

static void
assert_absent (struct env *v, const char *name)
{
  struct stat st;
  if (fstatat (v->diffd, name, &st, AT_SYMLINK_NOFOLLOW) == 0)
    fail_msg ("%s exists", name);
}

static void
assert_same_inode (struct env *v, const char *a, const char *b, bool same)
{
  struct stat sa, sb;
  lstat_in (v, a, &sa);
  lstat_in (v, b, &sb);
  if ((sa.st_ino == sb.st_ino) != same)
    fail_msg ("%s and %s are %s", a, b, same ? "different files" : "the same file");
}

static void
assert_whiteout (struct env *v, const char *name)
{
  struct stat st;
  lstat_in (v, name, &st);
  assert_true (S_ISCHR (st.st_mode));
  assert_int_equal (st.st_rdev, makedev (0, 0));
}

static void
assert_link_target (struct env *v, const char *name, const char *want)
{
  char buf[4200];
  ssize_t n = readlinkat (v->diffd, name, buf, sizeof buf - 1);
  if (n < 0)
    fail_msg ("readlink %s: %s", name, strerror (errno));
  buf[n] = '\0';
  assert_string_equal (buf, want);
}

static ssize_t
xattr_in (struct env *v, const char *name, const char *xname)
{
  char buf[64];
  cleanup_free char *p = xasprintf ("/proc/self/fd/%d/%s", v->diffd, name);
  return lgetxattr (p, xname, buf, sizeof buf);
}

/* ================================================================ containerd TestBreakouts */

static void
co_symlink_absolute (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_symlink (&t, "localetc", "/etc");
  tw_file (&t, "/localetc/unbroken", "unbroken");
  expect_contained (v, &t);
  assert_content (v, "etc/unbroken", "unbroken");
}

/* The same link by the canary's host path: its target is not in the layer, so the write is
   refused instead of going to the host. */
static void
co_symlink_absolute_host (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_symlink (&t, "localetc", keep (v, xasprintf ("%s/etc", v->canary)));
  tw_file (&t, "/localetc/unbroken", "unbroken");
  expect_refused (v, &t, "entry \"/localetc/unbroken\": open parent directory: ");
}

static void
co_symlink_up_and_out (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_dir (&t, "dummy");
  tw_symlink (&t, "localetc", "/dummy/../etc");
  tw_file (&t, "/localetc/unbroken", "unbroken");
  expect_contained (v, &t);
  assert_content (v, "etc/unbroken", "unbroken");
}

/* Relative up and out far enough to reach the canary on the host: ".." stops at the root. */
static void
co_symlink_up_and_out_host (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "canary/etc");
  tw_symlink (&t, "localetc", "../../../../canary/etc");
  tw_file (&t, "localetc/passwd", "pwned");
  expect_contained (v, &t);
  assert_content (v, "canary/etc/passwd", "pwned");
}

static void
co_symlink_multiple_absolute (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_dir (&t, "dummy");
  tw_symlink (&t, "/dummy/etc", "/etc");
  tw_symlink (&t, "localetc", "/dummy/etc");
  tw_file (&t, "/dummy/etc/unbroken", "unbroken");
  expect_contained (v, &t);
  assert_content (v, "etc/unbroken", "unbroken");
  assert_type (v, "localetc", S_IFLNK);
}

static void
co_symlink_multiple_relative (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_dir (&t, "dummy");
  tw_symlink (&t, "/dummy/etc", "/etc");
  tw_symlink (&t, "localetc", "./dummy/etc");
  tw_file (&t, "/dummy/etc/unbroken", "unbroken");
  expect_contained (v, &t);
  assert_content (v, "etc/unbroken", "unbroken");
}

static void
co_symlink_empty_file (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "etc/emptied", "notempty");
  tw_symlink (&t, "localetc", "/etc");
  tw_file (&t, "/localetc/emptied", "");
  expect_contained (v, &t);
  assert_content (v, "etc/emptied", "");
}

/* Emptying the canary's file through a link to its host path. */
static void
co_symlink_empty_file_host (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_symlink (&t, "localetc", keep (v, xasprintf ("%s/etc", v->canary)));
  tw_file (&t, "localetc/emptied", "");
  expect_refused (v, &t, "entry \"localetc/emptied\": open parent directory: ");
}

static void
co_hardlink_relative (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_dir (&t, "breakouts");
  tw_symlink (&t, "breakouts/d1", "../../etc");
  tw_hardlink (&t, "breakouts/mypasswd", "/breakouts/d1/passwd");
  expect_contained (v, &t);
  assert_same_inode (v, "breakouts/mypasswd", "etc/passwd", true);
}

static void
co_hardlink_down_and_out (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_dir (&t, "breakouts");
  tw_dir (&t, "downandout");
  tw_symlink (&t, "breakouts/d1", "../downandout/../../etc");
  tw_hardlink (&t, "breakouts/mypasswd", "/breakouts/d1/passwd");
  expect_contained (v, &t);
  assert_same_inode (v, "breakouts/mypasswd", "etc/passwd", true);
}

static void
co_hardlink_absolute (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "localetc", "/etc");
  tw_hardlink (&t, "localpasswd", "/localetc/passwd");
  expect_contained (v, &t);
  assert_same_inode (v, "localpasswd", "etc/passwd", true);
}

/* A hardlink to the canary's passwd through a link to its host path. */
static void
co_hardlink_absolute_host (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_symlink (&t, "localetc", keep (v, xasprintf ("%s/etc", v->canary)));
  tw_hardlink (&t, "localpasswd", "/localetc/passwd");
  expect_refused (v, &t, "hardlink target \"/localetc/passwd\" is not in the layer");
}

static void
co_hardlink_relative_long (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "localetc", "../../../../../../../etc");
  tw_hardlink (&t, "localpasswd", "/localetc/passwd");
  expect_contained (v, &t);
  assert_same_inode (v, "localpasswd", "etc/passwd", true);
}

/* containerd cleans "upandout/../../../etc" lexically; the kernel (and so cimg, which resolves
   links as the kernel will in the container) needs "upandout" to exist: it does not, so the
   link dangles and the hardlink through it is refused. */
static void
co_hardlink_relative_up_and_out (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "localetc", "upandout/../../../etc");
  tw_hardlink (&t, "localpasswd", "/localetc/passwd");
  expect_refused (v, &t, "hardlink target \"/localetc/passwd\" is not in the layer");
}

/* Docker refuses a hardlink name that climbs out (containerd clamps it): so does cimg. */
static void
co_hardlink_direct_relative (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_hardlink (&t, "localpasswd", "../../../../../etc/passwd");
  expect_refused (v, &t,
                  "entry \"localpasswd\": hardlink target \"../../../../../etc/passwd\" leaves "
                  "the layer");
}

static void
co_hardlink_direct_absolute (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_hardlink (&t, "localpasswd", "/etc/passwd");
  expect_contained (v, &t);
  assert_same_inode (v, "localpasswd", "etc/passwd", true);
}

/* A hardlink by the canary's absolute host path names the same path inside the layer. */
static void
co_hardlink_direct_absolute_host (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  cleanup_free char *target = xasprintf ("%s/etc/passwd", v->canary);
  tw_hardlink (&t, "localpasswd", target);
  cleanup_free char *want = xasprintf ("hardlink target \"%s\" is not in the layer", target);
  expect_refused (v, &t, want);
}

static void
co_symlink_parent_directory (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "..", "/etc/");
  tw_hardlink (&t, "localpasswd", "/etc/passwd");
  expect_refused (v, &t, "entry \"..\": path leaves the layer");
}

/* libarchive will not write a nameless entry: the header is made by hand. */
static void
co_symlink_empty_filename (void **state)
{
  struct env *v = *state;
  struct membuf m = { 0 };
  raw_header (&m, "etc/", '5', NULL, 0);
  raw_header (&m, "", '2', "/etc/", 0);
  raw_end (&m);
  refused_buf (v, m.data, m.len, "entry 2: no name");
  free (m.data);
}

static void
co_symlink_parent_relative (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "localetc/sub/..", "/etc/");
  tw_hardlink (&t, "/localetc/localpasswd", "/etc/passwd");
  expect_contained (v, &t);
  assert_type (v, "localetc", S_IFLNK);
  assert_same_inode (v, "etc/localpasswd", "etc/passwd", true);
}

static void
co_symlink_slash_ended (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_dir (&t, "localetc/");
  tw_hardlink (&t, "/localetc/localpasswd", "/etc/passwd");
  expect_contained (v, &t);
  assert_same_inode (v, "localetc/localpasswd", "etc/passwd", true);
}

static void
co_symlink_override_directory (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_dir (&t, "localetc");
  tw_symlink (&t, "localetc", "/etc");
  tw_hardlink (&t, "/localetc/localpasswd", "/etc/passwd");
  expect_contained (v, &t);
  assert_type (v, "localetc", S_IFLNK);
  assert_same_inode (v, "etc/localpasswd", "etc/passwd", true);
}

static void
co_symlink_override_directory_relative (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_dir (&t, "localetc");
  tw_file (&t, "localetc/old", "old");
  tw_symlink (&t, "localetc", "../../etc");
  tw_hardlink (&t, "/localetc/localpasswd", "/etc/passwd");
  expect_contained (v, &t);
  assert_same_inode (v, "etc/localpasswd", "etc/passwd", true);
  assert_absent (v, "etc/old");
}

static void
co_directory_override_symlink (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "localetc", "/etc");
  tw_dir (&t, "/localetc/");
  tw_hardlink (&t, "/localetc/localpasswd", "/etc/passwd");
  expect_contained (v, &t);
  assert_type (v, "localetc", S_IFDIR);
  assert_same_inode (v, "localetc/localpasswd", "etc/passwd", true);
}

static void
co_directory_override_symlink_and_hardlink (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "localetc", "etc");
  tw_hardlink (&t, "/localetc/localpasswd", "/etc/passwd");
  tw_dir (&t, "/localetc/");
  tw_file (&t, "/localetc/localpasswd", "different");
  expect_contained (v, &t);
  assert_same_inode (v, "localetc/localpasswd", "etc/passwd", false);
  assert_content (v, "etc/passwd", "inside");
  assert_content (v, "localetc/localpasswd", "different");
}

static void
co_whiteout_root_parent (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_file (&t, ".wh...", "");
  expect_refused (v, &t, "entry \".wh...\": invalid whiteout");
}

static void
co_whiteout_parent (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "etc/.wh...", "");
  expect_refused (v, &t, "entry \"etc/.wh...\": invalid whiteout");
}

static void
co_whiteout_root (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_file (&t, ".wh..", "");
  expect_refused (v, &t, "entry \".wh..\": invalid whiteout");
}

static void
co_whiteout_current_directory (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "etc/.wh..", "");
  expect_refused (v, &t, "entry \"etc/.wh..\": invalid whiteout");
}

/* A whiteout of a symlink never acts on its target. The links are this layer's own entries,
   which a whiteout of the same layer does not remove (OCI layer.md: whiteouts apply to the lower
   layers only); a whiteout of a name only the lower layers have is still made. */
static void
co_whiteout_symlink (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "all users");
  tw_symlink (&t, "localetc", "/etc");
  tw_symlink (&t, "hostetc", keep (v, xasprintf ("%s/etc", v->canary)));
  tw_file (&t, ".wh.localetc", "");
  tw_file (&t, ".wh.hostetc", "");
  tw_file (&t, ".wh.lowerlink", "");
  expect_contained (v, &t);
  assert_content (v, "etc/passwd", "all users");
  assert_type (v, "localetc", S_IFLNK);
  assert_type (v, "hostetc", S_IFLNK);
  assert_whiteout (v, "lowerlink");
}

static void
co_whiteout_symlink_path (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "all users");
  tw_file (&t, "/etc/whitedout", "ahhhh whiteout");
  tw_symlink (&t, "localetc", "/etc");
  tw_file (&t, "localetc/.wh.whitedout", "");
  tw_file (&t, "localetc/.wh.lower", "");
  expect_contained (v, &t);
  assert_content (v, "etc/passwd", "all users");
  /* The layer's own file stays; the lower layers' etc/lower is whited out through the link. */
  assert_content (v, "etc/whitedout", "ahhhh whiteout");
  assert_whiteout (v, "etc/lower");
}

/* The canary's etc/whitedout by its host path, absolute and relative. */
static void
co_whiteout_symlink_path_host (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_symlink (&t, "localetc", keep (v, xasprintf ("%s/etc", v->canary)));
  tw_file (&t, "localetc/.wh.whitedout", "");
  expect_refused (v, &t, "entry \"localetc/.wh.whitedout\": open parent directory: ");
  tw_init (&t);
  tw_symlink (&t, "localetc", "../../../../canary/etc");
  tw_file (&t, "localetc/.wh.whitedout", "");
  expect_refused (v, &t, "entry \"localetc/.wh.whitedout\": open parent directory: ");
}

static void
co_whiteout_directory_name (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "all users");
  tw_file (&t, ".wh.etc/somefile", "non-empty");
  expect_contained (v, &t);
  assert_content (v, "etc/passwd", "all users");
  assert_content (v, ".wh.etc/somefile", "non-empty");
}

/* containerd makes this a no-op; cimg refuses a whiteout under a dangling link. */
static void
co_whiteout_dead_symlink_parent (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "all users");
  tw_symlink (&t, "localetc", "/dne");
  tw_file (&t, "localetc/.wh.etc", "");
  expect_refused (v, &t, "entry \"localetc/.wh.etc\": open parent directory: ");
}

static void
co_whiteout_relative_path (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "all users");
  tw_symlink (&t, "localetc", "/dne");
  tw_file (&t, "dne/../.wh.etc", "");
  tw_file (&t, "dne/../.wh.lower", "");
  expect_contained (v, &t);
  /* The layer's own etc stays, opaque over the lower layers' etc that the whiteout removes. */
  assert_content (v, "etc/passwd", "all users");
  assert_int_equal (xattr_in (v, "etc", "trusted.overlay.opaque"), 1);
  assert_whiteout (v, "lower");
  assert_type (v, "localetc", S_IFLNK);
}

/* A hardlink to a symlink links the symlink itself, whatever it points at and whenever the
   target appears. */
static void
co_hardlink_symlink_before_create_target (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_symlink (&t, "localpasswd", "/etc/passwd");
  tw_hardlink (&t, "localpasswd-dup", "localpasswd");
  tw_file (&t, "/etc/passwd", "after");
  expect_contained (v, &t);
  assert_type (v, "localpasswd-dup", S_IFLNK);
  assert_same_inode (v, "localpasswd-dup", "localpasswd", true);
  assert_content (v, "etc/passwd", "after");
}

static void
co_hardlink_symlink_relative (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "passwdlink", "../../../../../etc/passwd");
  tw_hardlink (&t, "localpasswd", "/passwdlink");
  expect_contained (v, &t);
  assert_same_inode (v, "localpasswd", "passwdlink", true);
  assert_link_target (v, "localpasswd", "../../../../../etc/passwd");
}

static void
co_hardlink_symlink_absolute (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "/etc/passwd", "inside");
  tw_symlink (&t, "passwdlink", "/etc/passwd");
  tw_hardlink (&t, "localpasswd", "/passwdlink");
  expect_contained (v, &t);
  assert_same_inode (v, "localpasswd", "passwdlink", true);
  assert_link_target (v, "localpasswd", "/etc/passwd");
}

/* A symlink named by a host path, pointing at a 0400 host file, then a hardlink to it with
   another mode: the host file keeps its mode (the snapshot checks it). */
static void
co_hardlink_symlink_chmod (void **state)
{
  struct env *v = *state;
  struct tarw t;
  cleanup_free char *p = xasprintf ("%s/perm400", v->canary);
  cleanup_free char *ep = xasprintf ("%s/also-exists-outside-root", v->base);
  tw_init (&t);
  tw_symlink (&t, ep, p);
  struct archive_entry *e = ent ("sketchylink", AE_IFREG, 0777);
  archive_entry_copy_hardlink (e, ep);
  archive_entry_set_size (e, 0);
  tw_put (&t, e, NULL, 0);
  e = ent (p, AE_IFLNK, 0777);
  archive_entry_copy_symlink (e, p);
  archive_entry_set_uid (e, 4242);
  tw_put (&t, e, NULL, 0);
  expect_contained (v, &t);
  assert_type (v, ep + 1, S_IFLNK);
  assert_same_inode (v, "sketchylink", ep + 1, true);
  struct stat st;
  lstat_in (v, p + 1, &st);
  assert_int_equal (st.st_uid, 4242);
}

/* Dangling links: written through (refused), hardlinked (the link itself), replaced by a file
   and by a directory (the link goes), as a hardlink's path (refused). */
static void
co_dead_links (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_symlink (&t, "dead", "/nonexistent/dir");
  tw_file (&t, "dead/f", "x");
  expect_refused (v, &t, "entry \"dead/f\": open parent directory: ");
  tw_init (&t);
  tw_symlink (&t, "dead", "/nonexistent/dir");
  tw_hardlink (&t, "dead2", "dead/f");
  expect_refused (v, &t, "entry \"dead2\": hardlink target \"dead/f\" is not in the layer");
  tw_init (&t);
  tw_symlink (&t, "dead", "/nonexistent/file");
  tw_hardlink (&t, "dead-hl", "dead");
  tw_symlink (&t, "dead-f", "../../../../canary/none");
  tw_file (&t, "dead-f", "f");
  tw_symlink (&t, "dead-d", keep (v, xasprintf ("%s/none", v->canary)));
  tw_dir (&t, "dead-d");
  tw_file (&t, "dead-d/inner", "inner");
  expect_contained (v, &t);
  assert_same_inode (v, "dead", "dead-hl", true);
  assert_type (v, "dead-hl", S_IFLNK);
  assert_content (v, "dead-f", "f");
  assert_content (v, "dead-d/inner", "inner");
}

/* ================================================================ libarchive secure extraction */

static void
la_write_through_in_layer_link (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "dir");
  tw_symlink (&t, "link_to_dir", "dir");
  tw_file (&t, "link_to_dir/filea", "a");
  expect_contained (v, &t);
  assert_content (v, "dir/filea", "a");
  assert_type (v, "link_to_dir", S_IFLNK);
}

static void
la_link_replaced_by_dir (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "dir");
  tw_symlink (&t, "link_to_dir2", "dir");
  tw_dir (&t, "link_to_dir2");
  tw_file (&t, "link_to_dir2/filec", "c");
  expect_contained (v, &t);
  assert_type (v, "link_to_dir2", S_IFDIR);
  assert_content (v, "link_to_dir2/filec", "c");
  assert_absent (v, "dir/filec");
}

static void
la_absolute_names (void **state)
{
  struct env *v = *state;
  struct tarw t;
  cleanup_free char *name = xasprintf ("%s/file", v->canary);
  tw_init (&t);
  tw_file (&t, name, "pwned");
  tw_file (&t, "/outside", "pwned");
  expect_contained (v, &t);
  assert_content (v, name + 1, "pwned");
  assert_content (v, "outside", "pwned");
}

static void
la_dotdot_names (void **state)
{
  struct env *v = *state;
  const char *names[] = { "../../../../canary/file", "a/../../outside", "./..", "a/b/../../../x" };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      struct tarw t;
      tw_init (&t);
      tw_file (&t, "first", "first");
      tw_file (&t, names[i], "pwned");
      cleanup_free char *want = xasprintf ("entry \"%s\": path leaves the layer", names[i]);
      expect_refused (v, &t, want);
    }
}

/* test_write_disk_secure744: a link deep down that climbs back up many levels, then a write
   through it. */
static void
la_deep_link_climbs (void **state)
{
  struct env *v = *state;
  struct tarw t;
  char dir[256] = "";
  char up[512] = "";
  for (int i = 0; i < 20; i++)
    {
      strcat (dir, i ? "/d" : "d");
      strcat (up, "../");
    }
  strcat (up, "../../../..");
  tw_init (&t);
  tw_dir (&t, dir);
  cleanup_free char *link = xasprintf ("%s/up", dir);
  tw_symlink (&t, link, up);
  cleanup_free char *through = xasprintf ("%s/up/canary/file", dir);
  tw_dir (&t, "canary");
  tw_file (&t, through, "pwned");
  expect_contained (v, &t);
  assert_content (v, "canary/file", "pwned");
}

/* test_write_disk_secure746: hardlinks with ".." and through a link to a host directory. */
static void
la_hardlink_dotdot_and_host_dir (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "a");
  tw_hardlink (&t, "hl", "a/../../outside");
  expect_refused (v, &t, "entry \"hl\": hardlink target \"a/../../outside\" leaves the layer");
  tw_init (&t);
  tw_symlink (&t, "s", v->base);
  tw_hardlink (&t, "hl", "s/outside");
  expect_refused (v, &t, "entry \"hl\": hardlink target \"s/outside\" is not in the layer");
  tw_init (&t);
  tw_symlink (&t, "s", "../../../..");
  tw_hardlink (&t, "hl", "s/canary/file");
  expect_refused (v, &t, "entry \"hl\": hardlink target \"s/canary/file\" is not in the layer");
}

/* ================================================================ issue #7 additions */

/* Duplicates: the last entry wins, and replacing never writes through the old one. */
static void
x_duplicate_entries (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_file (&t, "a", "A");
  tw_hardlink (&t, "b", "a");
  tw_file (&t, "b", "B"); /* must not change a, which b was a hardlink of */
  tw_symlink (&t, "c", keep (v, xasprintf ("%s/file", v->canary)));
  tw_file (&t, "c", "C"); /* must not write through the old link */
  tw_dir (&t, "d");
  tw_file (&t, "d/x", "x");
  tw_symlink (&t, "d", v->canary); /* the directory and its content go */
  tw_file (&t, "e", "E");
  tw_hardlink (&t, "e", "e"); /* a hardlink to itself is the file itself */
  tw_file (&t, "f", "1");
  tw_file (&t, "f", "2");
  tw_file (&t, "f", "3");
  tw_dir (&t, "g");
  tw_dir (&t, "g");
  tw_file (&t, "g/kept", "kept"); /* a second directory entry merges */
  tw_dir (&t, "g");
  expect_contained (v, &t);
  assert_content (v, "a", "A");
  assert_content (v, "b", "B");
  assert_same_inode (v, "a", "b", false);
  assert_type (v, "c", S_IFREG);
  assert_content (v, "c", "C");
  assert_type (v, "d", S_IFLNK);
  assert_content (v, "e", "E");
  assert_content (v, "f", "3");
  assert_content (v, "g/kept", "kept");
}

static void
x_bare_whiteout (void **state)
{
  struct env *v = *state;
  const char *names[] = { ".wh.", "dir/.wh.", "/.wh." };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    {
      struct tarw t;
      tw_init (&t);
      tw_dir (&t, "dir");
      tw_file (&t, "dir/x", "x");
      tw_file (&t, names[i], "");
      cleanup_free char *want = xasprintf ("entry \"%s\": invalid whiteout", names[i]);
      expect_refused (v, &t, want);
    }
}

/* An opaque marker after entries of its own directory hides only the layers below: what this
   layer put there, before or after the marker, stays. */
static void
x_opaque_after_entries (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "d");
  tw_file (&t, "d/before", "before");
  tw_dir (&t, "d/sub");
  tw_file (&t, "d/sub/deep", "deep");
  tw_file (&t, "d/.wh..wh..opq", "");
  tw_file (&t, "d/after", "after");
  expect_contained (v, &t);
  assert_content (v, "d/before", "before");
  assert_content (v, "d/sub/deep", "deep");
  assert_content (v, "d/after", "after");
  assert_absent (v, "d/.wh..wh..opq");
  assert_int_equal (xattr_in (v, "d", "trusted.overlay.opaque"), 1);
  assert_int_equal (xattr_in (v, "d/sub", "trusted.overlay.opaque"), -1);
}

/* An opaque marker through a link to a host directory never marks it. */
static void
x_opaque_through_host_link (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_symlink (&t, "d", v->canary);
  tw_file (&t, "d/.wh..wh..opq", "");
  expect_refused (v, &t, "entry \"d/.wh..wh..opq\": open directory: ");
}

/* The layer's root itself as a symlink, hardlink or file. */
static void
x_root_becomes_link (void **state)
{
  struct env *v = *state;
  const char *roots[] = { "./", "/", "." };
  for (size_t i = 0; i < ARRAY_SIZE (roots); i++)
    {
      struct tarw t;
      tw_init (&t);
      tw_symlink (&t, roots[i], v->canary);
      tw_file (&t, "file", "pwned");
      cleanup_free char *want
          = xasprintf ("entry \"%s\": the layer root can only be a directory", roots[i]);
      expect_refused (v, &t, want);
    }
  struct tarw t;
  tw_init (&t);
  tw_file (&t, "x", "x");
  tw_hardlink (&t, "./", "x");
  expect_refused (v, &t, "entry \"./\": the layer root can only be a directory");
  tw_init (&t);
  tw_file (&t, ".", "a file");
  expect_refused (v, &t, "entry \".\": the layer root can only be a directory");
}

/* A top directory turned into a link to "/", to a host directory by absolute and relative
   path, then written through, whited out through and hardlinked through. */
static void
x_top_dir_becomes_link (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_dir (&t, "etc");
  tw_file (&t, "etc/passwd", "old");
  tw_symlink (&t, "etc", "/");
  tw_file (&t, "etc/passwd", "new");
  tw_symlink (&t, "usr", "../../..");
  tw_file (&t, "usr/bin-sh", "sh");
  expect_contained (v, &t);
  assert_type (v, "etc", S_IFLNK);
  assert_content (v, "passwd", "new");
  assert_content (v, "bin-sh", "sh");

  tw_init (&t);
  tw_symlink (&t, "usr", "/usr");
  tw_file (&t, "usr/bin/sh", "pwned");
  expect_refused (v, &t, "entry \"usr/bin/sh\": open parent directory: ");
  tw_init (&t);
  tw_symlink (&t, "bin", v->canary);
  tw_file (&t, "bin/.wh.file", "");
  expect_refused (v, &t, "entry \"bin/.wh.file\": open parent directory: ");
  tw_init (&t);
  tw_symlink (&t, "lib", "../../../../canary");
  tw_dir (&t, "lib/dir");
  expect_refused (v, &t, "entry \"lib/dir/\": open parent directory: ");
}

/* Overlay's own metadata never comes from a tar's xattrs, on any kind of entry. */
static void
x_overlay_xattrs (void **state)
{
  struct env *v = *state;
  const char *names[]
      = { "trusted.overlay.opaque",        "trusted.overlay.redirect", "trusted.overlay.origin",
          "trusted.overlay.metacopy",      "trusted.overlay.whiteout", "trusted.overlay.upper",
          "trusted.overlay.impure",        "trusted.overlay.nlink",    "user.overlay.opaque",
          "trusted.overlay.overlay.opaque" };
  const char *paths[] = { "./", "dir", "file", "link", "fifo" };
  const mode_t types[] = { AE_IFDIR, AE_IFDIR, AE_IFREG, AE_IFLNK, AE_IFIFO };
  struct tarw t;
  tw_init (&t);
  for (size_t p = 0; p < ARRAY_SIZE (paths); p++)
    {
      struct archive_entry *e = ent (paths[p], types[p], 0755);
      if (types[p] == AE_IFLNK)
        archive_entry_copy_symlink (e, "file");
      for (size_t i = 0; i < ARRAY_SIZE (names); i++)
        archive_entry_xattr_add_entry (e, names[i], "y", 1);
      archive_entry_xattr_add_entry (e, "trusted.cimg-kept", "k", 1);
      tw_put (&t, e, NULL, 0);
    }
  expect_contained (v, &t);
  const char *in[] = { ".", "dir", "file", "link", "fifo" };
  for (size_t p = 0; p < ARRAY_SIZE (in); p++)
    {
      for (size_t i = 0; i < ARRAY_SIZE (names); i++)
        if (xattr_in (v, in[p], names[i]) >= 0)
          fail_msg ("%s has %s", in[p], names[i]);
      if (p < 3)
        assert_int_equal (xattr_in (v, in[p], "trusted.cimg-kept"), 1);
    }
}

static void
x_device_numbers_out_of_range (void **state)
{
  struct env *v = *state;
  const struct
  {
    unsigned long maj, min;
  } devs[] = { { 4096, 0 }, { 1, 1UL << 20 }, { 0x7fffffff, 3 }, { 4097, 1 } };
  for (size_t i = 0; i < ARRAY_SIZE (devs); i++)
    {
      struct tarw t;
      tw_init (&t);
      struct archive_entry *e = ent ("dev", i % 2 ? AE_IFBLK : AE_IFCHR, 0600);
      archive_entry_set_rdevmajor (e, devs[i].maj);
      archive_entry_set_rdevminor (e, devs[i].min);
      tw_put (&t, e, NULL, 0);
      cleanup_free char *want = xasprintf ("entry \"dev\": device number %lu:%lu out of range",
                                           devs[i].maj, devs[i].min);
      expect_refused (v, &t, want);
    }
  /* The largest numbers the kernel has are fine. */
  struct tarw t;
  tw_init (&t);
  struct archive_entry *e = ent ("dev", AE_IFCHR, 0600);
  archive_entry_set_rdevmajor (e, 4095);
  archive_entry_set_rdevminor (e, (1UL << 20) - 1);
  tw_put (&t, e, NULL, 0);
  expect_contained (v, &t);
  struct stat st;
  lstat_in (v, "dev", &st);
  assert_int_equal (major (st.st_rdev), 4095);
  assert_int_equal (minor (st.st_rdev), (1UL << 20) - 1);
}

static char *
repeat (const char *s, size_t n, const char *tail)
{
  size_t len = strlen (s);
  char *out = xmalloc (len * n + strlen (tail) + 1);
  for (size_t i = 0; i < n; i++)
    memcpy (out + i * len, s, len);
  strcpy (out + len * n, tail);
  return out;
}

static void
x_names_longer_than_path_max (void **state)
{
  struct env *v = *state;
  cleanup_free char *deep = repeat ("abcdefg/", 600, "f"); /* 4801 bytes */
  cleanup_free char *component = repeat ("n", 300, "");
  cleanup_free char *target = repeat ("t/", 2500, "x");
  struct tarw t;

  tw_init (&t);
  tw_file (&t, deep, "deep");
  expect_refused (v, &t, "File name too long");
  tw_init (&t);
  tw_file (&t, component, "long");
  expect_refused (v, &t, "File name too long");
  tw_init (&t);
  tw_symlink (&t, "l", target);
  expect_refused (v, &t, "entry \"l\": create symlink: File name too long");
  tw_init (&t);
  tw_hardlink (&t, "h", target);
  expect_refused (v, &t, "File name too long");

  /* Deep but within PATH_MAX: extracted. */
  cleanup_free char *ok = repeat ("d/", 1000, "f");
  tw_init (&t);
  tw_file (&t, ok, "ok");
  expect_contained (v, &t);
  assert_content (v, ok, "ok");
}

struct stream
{
  struct cimg_layer_sink *k;
  cimg_error_t *err;
  int rc;
};

static la_ssize_t
sink_write_cb (struct archive *a, void *data, const void *buf, size_t n)
{
  struct stream *s = data;
  if (s->rc == 0)
    s->rc = cimg_layer_sink_write (s->k, buf, n, s->err);
  return (la_ssize_t)n;
}

/* 100 000 entries, streamed into the sink as they are written. */
static void
x_hundred_thousand_entries (void **state)
{
  struct env *v = *state;
  cimg_error_t err = { 0 };
  struct stream s = { cimg_layer_sink_new (v->s, NULL, 0, &err), &err, 0 };
  assert_non_null (s.k);
  struct archive *a = archive_write_new ();
  assert_int_equal (archive_write_set_format_ustar (a), ARCHIVE_OK);
  assert_int_equal (archive_write_set_bytes_per_block (a, 64 * 1024), ARCHIVE_OK);
  assert_int_equal (archive_write_open (a, &s, NULL, sink_write_cb, NULL), ARCHIVE_OK);
  struct timespec t0, t1;
  clock_gettime (CLOCK_MONOTONIC, &t0);
  const int dirs = 100, per = 1000;
  char name[64];
  for (int d = 0; d < dirs; d++)
    {
      snprintf (name, sizeof name, "d%03d", d);
      struct archive_entry *e = ent (name, AE_IFDIR, 0755);
      assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
      archive_entry_free (e);
      for (int i = 0; i < per; i++)
        {
          snprintf (name, sizeof name, "d%03d/f%04d", d, i);
          e = ent (name, AE_IFREG, 0644);
          archive_entry_set_size (e, 1);
          assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
          assert_int_equal (archive_write_data (a, "x", 1), 1);
          archive_entry_free (e);
        }
    }
  assert_int_equal (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);
  if (s.rc < 0)
    fail_msg ("write: %s", err.msg);
  struct cimg_layer_info info;
  if (cimg_layer_sink_finish (s.k, NULL, NULL, &info, &err) < 0)
    fail_msg ("finish: %s", err.msg);
  cimg_layer_sink_free (s.k);
  n_contained++;
  clock_gettime (CLOCK_MONOTONIC, &t1);
  print_message ("100 000-entry layer: %.1f s\n",
                 (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
  assert_int_equal (info.size, dirs * per);
  cleanup_free char *diff = cimg_store_layer_diff_path (info.chain_id);
  v->diffd = openat (cimg_store_dirfd (v->s), diff, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (v->diffd >= 0);
  assert_content (v, "d000/f0000", "x");
  assert_content (v, "d099/f0999", "x");
  assert_outside_unchanged (v);
}

/* A tar of one file of n zero bytes, then pad zero bytes after its end. */
static void
zero_layer (struct membuf *out, size_t n, size_t pad)
{
  struct tarw t;
  tw_init (&t);
  struct archive_entry *e = ent ("zeros", AE_IFREG, 0644);
  archive_entry_set_size (e, (la_int64_t)n);
  assert_int_equal (archive_write_header (t.a, e), ARCHIVE_OK);
  archive_entry_free (e);
  static const char zeros[65536];
  for (size_t done = 0; done < n; done += sizeof zeros)
    {
      size_t c = n - done < sizeof zeros ? n - done : sizeof zeros;
      assert_int_equal (archive_write_data (t.a, zeros, c), (la_ssize_t)c);
    }
  tw_close (&t);
  for (size_t done = 0; done < pad; done += sizeof zeros)
    membuf_add (&t.m, zeros, pad - done < sizeof zeros ? pad - done : sizeof zeros);
  *out = t.m;
}

#define MiB (1024 * 1024)

/* 24 MiB of zeros in a few KiB of gzip or zstd against a 16 MiB max-layer-size; the same layer
   is fine under the default limit. */
static void
x_decompression_bomb (void **state)
{
  struct env *v = *state;
  struct membuf plain, gz, zs, padded, padded_gz;
  zero_layer (&plain, 24 * MiB, 0);
  gzip_buf (&plain, &gz);
  zstd_buf (&plain, &zs);
  assert_true (gz.len < 64 * 1024 && zs.len < 64 * 1024);
  /* A small file, then the bomb in the padding after the end of the archive. */
  zero_layer (&padded, 10, 24 * MiB);
  gzip_buf (&padded, &padded_gz);

  set_config (v, "{\"max-layer-size\": \"16M\"}");
  const char *want = "exceeds the size limit of 16777216 bytes (max-layer-size in the cimg config)";
  refused_buf (v, gz.data, gz.len, want);
  refused_buf (v, zs.data, zs.len, want);
  refused_buf (v, padded_gz.data, padded_gz.len, want);
  /* The environment overrides the files (tests, one-off pulls). */
  setenv ("CIMG_MAX_LAYER_SIZE", "20MiB", 1);
  refused_buf (v, gz.data, gz.len, "the size limit of 20971520 bytes");
  unsetenv ("CIMG_MAX_LAYER_SIZE");

  set_config (v, "{}");
  contained_buf (v, gz.data, gz.len);
  struct stat st;
  lstat_in (v, "zeros", &st);
  assert_int_equal (st.st_size, 24 * MiB);
  free (plain.data);
  free (gz.data);
  free (zs.data);
  free (padded.data);
  free (padded_gz.data);
}

/* A 12-byte numeric tar field in GNU's base-256 form (for values octal cannot hold). */
static void
base256 (char *field, uint64_t v)
{
  memset (field, 0, 12);
  field[0] = (char)0x80;
  for (int i = 11; i >= 4; i--, v >>= 8)
    field[i] = (char)(v & 0xff);
}

/* An old-GNU sparse entry ('S') that declares a terabyte with four bytes of data at its end: no
   tar byte pays for the holes, the limit counts them anyway (the default limit is enough).
   libarchive's writer only writes sparse files it is given all the bytes of: made by hand. */
/* An old-GNU sparse entry ('S') named name that declares size bytes with four bytes of data at
   its end. */
static void
gnu_sparse_entry (struct membuf *m, const char *name, uint64_t size)
{
  char h[512];
  memset (h, 0, sizeof h);
  strcpy (h, name);
  snprintf (h + 100, 8, "%07o", 0644);
  snprintf (h + 108, 8, "%07o", 0);
  snprintf (h + 116, 8, "%07o", 0);
  snprintf (h + 124, 12, "%011o", 4);
  snprintf (h + 136, 12, "%011o", MTIME);
  h[156] = 'S';
  memcpy (h + 257, "ustar  ", 8); /* the old GNU magic and version */
  base256 (h + 386, size - 4);    /* sparse[0].offset */
  snprintf (h + 398, 12, "%011o", 4);
  base256 (h + 483, size); /* realsize */
  memset (h + 148, ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < sizeof h; i++)
    sum += (unsigned char)h[i];
  snprintf (h + 148, 8, "%06o", sum);
  h[155] = ' ';
  membuf_add (m, h, sizeof h);
  char data[512];
  memset (data, 0, sizeof data);
  memcpy (data, "tail", 4);
  membuf_add (m, data, sizeof data);
}

static void
x_sparse_bomb (void **state)
{
  struct env *v = *state;
  const uint64_t tib = (uint64_t)1 << 40;
  struct membuf m = { 0 };
  gnu_sparse_entry (&m, "sparse", tib);
  raw_end (&m);
  refused_buf (v, m.data, m.len,
               "entry \"sparse\": layer exceeds the size limit of 68719476736 bytes "
               "(max-layer-size in the cimg config)");
  /* Under no limit at all it extracts, as a sparse file. */
  setenv ("CIMG_MAX_LAYER_SIZE", "0", 1);
  contained_buf (v, m.data, m.len);
  unsetenv ("CIMG_MAX_LAYER_SIZE");
  struct stat st;
  lstat_in (v, "sparse", &st);
  assert_int_equal (st.st_size, tib);
  assert_true (st.st_blocks < 1024);
  free (m.data);
}

/* The same terabyte as the layer of a docker-archive for `cimg load`, which stages every entry
   before it reads the manifest: refused before a byte of it is written. */
static void
x_load_sparse_bomb (void **state)
{
  struct env *v = *state;
  struct membuf m = { 0 };
  const char manifest[] = "[{\"Config\": \"c.json\", \"Layers\": [\"l.tar\"]}]";
  raw_header (&m, "manifest.json", '0', NULL, strlen (manifest));
  char block[512];
  memset (block, 0, sizeof block);
  memcpy (block, manifest, strlen (manifest));
  membuf_add (&m, block, sizeof block);
  gnu_sparse_entry (&m, "l.tar", (uint64_t)1 << 40);
  raw_end (&m);
  int fd = memfd_create ("archive", MFD_CLOEXEC);
  assert_true (fd >= 0);
  assert_int_equal (cimg_write_all (fd, m.data, m.len), 0);
  assert_int_equal (lseek (fd, 0, SEEK_SET), 0);
  cimg_error_t err = { 0 };
  char **report = NULL;
  assert_int_equal (cimg_store_load (v->s, fd, &report, &err), -1);
  cimg_strv_free (report);
  close (fd);
  if (strstr (err.msg, "entry \"l.tar\": larger than the limit of 68719476736 bytes "
                       "(max-layer-size in the cimg config)")
      == NULL)
    fail_msg ("unexpected error: %s", err.msg);
  n_refused++;
  cimg_error_clear (&err);
  assert_int_equal (count_layers (v), 0);
  free (m.data);
}

static void
x_bad_limit_setting (void **state)
{
  struct env *v = *state;
  cimg_error_t err = { 0 };
  set_config (v, "{\"max-layer-size\": \"lots\"}");
  assert_null (cimg_layer_sink_new (v->s, NULL, 0, &err));
  cleanup_free char *want = xasprintf ("%s: \"max-layer-size\" must be a byte count", v->config);
  assert_non_null (strstr (err.msg, want));
  cimg_error_clear (&err);
  set_config (v, "{\"max-layer-size\": -1}");
  assert_null (cimg_layer_sink_new (v->s, NULL, 0, &err));
  cimg_error_clear (&err);
  set_config (v, "{\"max-layer-size\": 0}");
  int64_t n = -1;
  assert_int_equal (cimg_layer_max_size (&n, &err), 0);
  assert_int_equal (n, 0);
  set_config (v, "{\"max-layer-size\": \"2TiB\"}");
  assert_int_equal (cimg_layer_max_size (&n, &err), 0);
  assert_int_equal (n, (int64_t)2 << 40);
  setenv ("CIMG_MAX_LAYER_SIZE", "12x", 1);
  assert_int_equal (cimg_layer_max_size (&n, &err), -1);
  assert_string_equal (err.msg, "CIMG_MAX_LAYER_SIZE=12x: not a byte count such as 64G (0: no "
                                "limit)");
  cimg_error_clear (&err);
  unsetenv ("CIMG_MAX_LAYER_SIZE");
  assert_int_equal (count_layers (v), 0);
}

/* Truncated and foreign streams. */
static void
x_truncated_and_foreign (void **state)
{
  struct env *v = *state;
  struct tarw t;
  tw_init (&t);
  tw_file (&t, "whole", "whole");
  tw_close (&t);
  refused_buf (v, t.m.data, 700, "entry \"whole\": read content: ");
  tw_free (&t);

  struct membuf plain, gz;
  zero_layer (&plain, 100000, 0);
  gzip_buf (&plain, &gz);
  refused_buf (v, gz.data, gz.len / 2, "gzip: unexpected end of stream (truncated)");
  free (plain.data);
  free (gz.data);
  const char junk[] = "this is not a tar archive at all, not even close; just text.";
  char block[2048];
  for (size_t i = 0; i < sizeof block; i++)
    block[i] = junk[i % (sizeof junk - 1)];
  refused_buf (v, block, sizeof block, "not a tar archive: ");
}

#define CASE(f) cmocka_unit_test_setup_teardown (f, setup, teardown)

int
main (void)
{
  const struct CMUnitTest tests[] = {
    CASE (co_symlink_absolute),
    CASE (co_symlink_absolute_host),
    CASE (co_symlink_up_and_out),
    CASE (co_symlink_up_and_out_host),
    CASE (co_symlink_multiple_absolute),
    CASE (co_symlink_multiple_relative),
    CASE (co_symlink_empty_file),
    CASE (co_symlink_empty_file_host),
    CASE (co_hardlink_relative),
    CASE (co_hardlink_down_and_out),
    CASE (co_hardlink_absolute),
    CASE (co_hardlink_absolute_host),
    CASE (co_hardlink_relative_long),
    CASE (co_hardlink_relative_up_and_out),
    CASE (co_hardlink_direct_relative),
    CASE (co_hardlink_direct_absolute),
    CASE (co_hardlink_direct_absolute_host),
    CASE (co_symlink_parent_directory),
    CASE (co_symlink_empty_filename),
    CASE (co_symlink_parent_relative),
    CASE (co_symlink_slash_ended),
    CASE (co_symlink_override_directory),
    CASE (co_symlink_override_directory_relative),
    CASE (co_directory_override_symlink),
    CASE (co_directory_override_symlink_and_hardlink),
    CASE (co_whiteout_root_parent),
    CASE (co_whiteout_parent),
    CASE (co_whiteout_root),
    CASE (co_whiteout_current_directory),
    CASE (co_whiteout_symlink),
    CASE (co_whiteout_symlink_path),
    CASE (co_whiteout_symlink_path_host),
    CASE (co_whiteout_directory_name),
    CASE (co_whiteout_dead_symlink_parent),
    CASE (co_whiteout_relative_path),
    CASE (co_hardlink_symlink_before_create_target),
    CASE (co_hardlink_symlink_relative),
    CASE (co_hardlink_symlink_absolute),
    CASE (co_hardlink_symlink_chmod),
    CASE (co_dead_links),
    CASE (la_write_through_in_layer_link),
    CASE (la_link_replaced_by_dir),
    CASE (la_absolute_names),
    CASE (la_dotdot_names),
    CASE (la_deep_link_climbs),
    CASE (la_hardlink_dotdot_and_host_dir),
    CASE (x_duplicate_entries),
    CASE (x_bare_whiteout),
    CASE (x_opaque_after_entries),
    CASE (x_opaque_through_host_link),
    CASE (x_root_becomes_link),
    CASE (x_top_dir_becomes_link),
    CASE (x_overlay_xattrs),
    CASE (x_device_numbers_out_of_range),
    CASE (x_names_longer_than_path_max),
    CASE (x_hundred_thousand_entries),
    CASE (x_decompression_bomb),
    CASE (x_sparse_bomb),
    CASE (x_load_sparse_bomb),
    CASE (x_bad_limit_setting),
    CASE (x_truncated_and_foreign),
  };
  int failed = cmocka_run_group_tests (tests, NULL, NULL);
  print_message ("%zu cases, %d hostile layers: %d refused, %d extracted inside their root\n",
                 ARRAY_SIZE (tests), n_refused + n_contained, n_refused, n_contained);
  return failed;
}
