/* Hostile layers against the store's layer sink, the entry point pull, load, import and build
   use: every tar here is generated with libarchive's writer (or, where libarchive refuses to
   write the attack, by hand), pushed through cimg_layer_sink_write/finish into a fresh store
   that sits beside a canary tree, and each case asserts two things:
   - nothing outside the extraction root changed (the canary tree's snapshot, taken before, is
     the same after), and
   - the layer was either refused with a message that names the entry and the reason and with
     the expected errno, leaving nothing in the store, or extracted with every name contained in
     the layer (and then the case says where things landed).
   Most cases are rows of one table (rows[]: each layer's entries and its expected outcome) that
   one loop (run_row) runs; the few that build their layers some other way (streamed, compressed,
   generated names, xattrs, a load) are functions of their own after it. The snapshot of the whole
   tree beside the store is what "nothing outside" means for every row: no list of paths that
   must not exist could be as strict.
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
#include "tests/unit/tar-helpers.h"

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
  char *kept[64]; /* strings made for a case, freed with it */
  size_t n_kept;
  const struct row *row; /* the table row the case runs, NULL for a case of its own */
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
  v->row = *state;
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

static const char *
errname (int code)
{
  const char *n = strerrorname_np (code);
  return n ? n : "none";
}

static void
refused_buf (struct env *v, const void *buf, size_t len, const char *want, int code)
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
  if (err.code != code)
    fail_msg ("error \"%s\": errno %d (%s), expected %d (%s)", err.msg, err.code,
              errname (err.code), code, errname (code));
  cimg_error_clear (&err);
  assert_outside_unchanged (v);
  /* Nothing of a refused layer stays in the store. */
  assert_int_equal (count_layers (v), layers);
}

/* The layer is refused with a message containing want and errno code. */
static void
expect_refused (struct env *v, struct tarw *t, const char *want, int code)
{
  tw_close (t);
  refused_buf (v, t->m.data, t->m.len, want, code);
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

/* ---------------------------------------------------------------- the table of hostile layers */

/* In entry names, link targets, expected messages and checked paths, "@C" stands for the canary
   directory's absolute host path and "@B" for the base directory's (the store's parent). */
struct entry
{
  char kind; /* 'f' file, 'd' directory, 's' symlink, 'h' hardlink, 'c'/'b' device; in a raw
                layer, the ustar type flag */
  const char *name;
  const char *arg; /* a file's content, a link's target */
  mode_t perm;     /* 0: 0644 for files and hardlinks, 0755 directories, 0600 devices */
  unsigned uid;
  unsigned long maj, min;
};

#define F(n, c)                                                                                    \
  {                                                                                                \
    .kind = 'f', .name = (n), .arg = (c)                                                           \
  }
#define D(n)                                                                                       \
  {                                                                                                \
    .kind = 'd', .name = (n)                                                                       \
  }
#define S(n, target)                                                                               \
  {                                                                                                \
    .kind = 's', .name = (n), .arg = (target)                                                      \
  }
#define H(n, target)                                                                               \
  {                                                                                                \
    .kind = 'h', .name = (n), .arg = (target)                                                      \
  }
#define CHR(n, ma, mi)                                                                             \
  {                                                                                                \
    .kind = 'c', .name = (n), .maj = (ma), .min = (mi)                                             \
  }
#define BLK(n, ma, mi)                                                                             \
  {                                                                                                \
    .kind = 'b', .name = (n), .maj = (ma), .min = (mi)                                             \
  }

enum check_kind
{
  C_CONTENT = 1, /* path holds arg */
  C_TYPE,        /* path (not followed) is of type n (S_IFLNK…) */
  C_ABSENT,
  C_SAME,      /* path and arg are one inode */
  C_DIFFERENT, /* path and arg are two inodes */
  C_WHITEOUT,  /* path is a 0:0 character device */
  C_LINK,      /* path is a symlink to arg */
  C_OPAQUE,    /* path has trusted.overlay.opaque (n = 1) or not (n = 0) */
  C_UID,
  C_RDEV, /* path's device number is n:n2 */
};

struct check
{
  enum check_kind kind;
  const char *path, *arg;
  unsigned long n, n2;
};

#define CONTENT(p, want)                                                                           \
  {                                                                                                \
    C_CONTENT, (p), (want), 0, 0                                                                   \
  }
#define TYPE(p, t)                                                                                 \
  {                                                                                                \
    C_TYPE, (p), NULL, (t), 0                                                                      \
  }
#define ABSENT(p)                                                                                  \
  {                                                                                                \
    C_ABSENT, (p), NULL, 0, 0                                                                      \
  }
#define SAME(a, b)                                                                                 \
  {                                                                                                \
    C_SAME, (a), (b), 0, 0                                                                         \
  }
#define DIFFERENT(a, b)                                                                            \
  {                                                                                                \
    C_DIFFERENT, (a), (b), 0, 0                                                                    \
  }
#define WHITEOUT(p)                                                                                \
  {                                                                                                \
    C_WHITEOUT, (p), NULL, 0, 0                                                                    \
  }
#define LINK(p, target)                                                                            \
  {                                                                                                \
    C_LINK, (p), (target), 0, 0                                                                    \
  }
#define OPAQUE(p, yes)                                                                             \
  {                                                                                                \
    C_OPAQUE, (p), NULL, (yes), 0                                                                  \
  }
#define UID(p, u)                                                                                  \
  {                                                                                                \
    C_UID, (p), NULL, (u), 0                                                                       \
  }
#define RDEV(p, ma, mi)                                                                            \
  {                                                                                                \
    C_RDEV, (p), NULL, (ma), (mi)                                                                  \
  }

/* One layer fed to the sink and its outcome: refused with a message that contains refused and
   errno code, or extracted (refused == NULL) with every check true inside it. Either way the tree
   beside the store must be unchanged, and a refused layer leaves nothing in the store. */
struct layer
{
  bool raw; /* entries are hand-made ustar headers */
  struct entry e[20];
  const char *refused;
  int code;
  struct check c[10];
};

/* A case: its layers, fed one after the other into the same store. */
struct row
{
  const char *name;
  struct layer l[6];
};

static const struct row rows[] = {
  /* ============================================================ containerd TestBreakouts */
  { "co_symlink_absolute",
    { { .e = { D ("etc"), S ("localetc", "/etc"), F ("/localetc/unbroken", "unbroken") },
        .c = { CONTENT ("etc/unbroken", "unbroken") } } } },
  /* The same link by the canary's host path: its target is not in the layer, so the write is
     refused instead of going to the host. */
  { "co_symlink_absolute_host",
    { { .e = { S ("localetc", "@C/etc"), F ("/localetc/unbroken", "unbroken") },
        .refused = "entry \"/localetc/unbroken\": open parent directory: ",
        .code = ENOENT } } },
  { "co_symlink_up_and_out",
    { { .e = { D ("etc"), D ("dummy"), S ("localetc", "/dummy/../etc"),
               F ("/localetc/unbroken", "unbroken") },
        .c = { CONTENT ("etc/unbroken", "unbroken") } } } },
  /* Relative up and out far enough to reach the canary on the host: ".." stops at the root. */
  { "co_symlink_up_and_out_host",
    { { .e = { D ("canary/etc"), S ("localetc", "../../../../canary/etc"),
               F ("localetc/passwd", "pwned") },
        .c = { CONTENT ("canary/etc/passwd", "pwned") } } } },
  { "co_symlink_multiple_absolute",
    { { .e = { D ("etc"), D ("dummy"), S ("/dummy/etc", "/etc"), S ("localetc", "/dummy/etc"),
               F ("/dummy/etc/unbroken", "unbroken") },
        .c = { CONTENT ("etc/unbroken", "unbroken"), TYPE ("localetc", S_IFLNK) } } } },
  { "co_symlink_multiple_relative",
    { { .e = { D ("etc"), D ("dummy"), S ("/dummy/etc", "/etc"), S ("localetc", "./dummy/etc"),
               F ("/dummy/etc/unbroken", "unbroken") },
        .c = { CONTENT ("etc/unbroken", "unbroken") } } } },
  { "co_symlink_empty_file",
    { { .e = { D ("etc"), F ("etc/emptied", "notempty"), S ("localetc", "/etc"),
               F ("/localetc/emptied", "") },
        .c = { CONTENT ("etc/emptied", "") } } } },
  /* Emptying the canary's file through a link to its host path. */
  { "co_symlink_empty_file_host",
    { { .e = { S ("localetc", "@C/etc"), F ("localetc/emptied", "") },
        .refused = "entry \"localetc/emptied\": open parent directory: ",
        .code = ENOENT } } },
  { "co_hardlink_relative",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), D ("breakouts"),
               S ("breakouts/d1", "../../etc"), H ("breakouts/mypasswd", "/breakouts/d1/passwd") },
        .c = { SAME ("breakouts/mypasswd", "etc/passwd") } } } },
  { "co_hardlink_down_and_out",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), D ("breakouts"), D ("downandout"),
               S ("breakouts/d1", "../downandout/../../etc"),
               H ("breakouts/mypasswd", "/breakouts/d1/passwd") },
        .c = { SAME ("breakouts/mypasswd", "etc/passwd") } } } },
  { "co_hardlink_absolute",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), S ("localetc", "/etc"),
               H ("localpasswd", "/localetc/passwd") },
        .c = { SAME ("localpasswd", "etc/passwd") } } } },
  /* A hardlink to the canary's passwd through a link to its host path. */
  { "co_hardlink_absolute_host",
    { { .e = { S ("localetc", "@C/etc"), H ("localpasswd", "/localetc/passwd") },
        .refused = "hardlink target \"/localetc/passwd\" is not in the layer",
        .code = ENOENT } } },
  { "co_hardlink_relative_long",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), S ("localetc", "../../../../../../../etc"),
               H ("localpasswd", "/localetc/passwd") },
        .c = { SAME ("localpasswd", "etc/passwd") } } } },
  /* containerd cleans "upandout/../../../etc" lexically; the kernel (and so cimg, which
     resolves links as the kernel will in the container) needs "upandout" to exist: it does
     not, so the link dangles and the hardlink through it is refused. */
  { "co_hardlink_relative_up_and_out",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), S ("localetc", "upandout/../../../etc"),
               H ("localpasswd", "/localetc/passwd") },
        .refused = "hardlink target \"/localetc/passwd\" is not in the layer",
        .code = ENOENT } } },
  /* Docker refuses a hardlink name that climbs out (containerd clamps it): so does cimg. */
  { "co_hardlink_direct_relative",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"),
               H ("localpasswd", "../../../../../etc/passwd") },
        .refused = "entry \"localpasswd\": hardlink target \"../../../../../etc/passwd\" leaves "
                   "the layer",
        .code = EINVAL } } },
  { "co_hardlink_direct_absolute",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), H ("localpasswd", "/etc/passwd") },
        .c = { SAME ("localpasswd", "etc/passwd") } } } },
  /* A hardlink by the canary's absolute host path names the same path inside the layer. */
  { "co_hardlink_direct_absolute_host",
    { { .e = { H ("localpasswd", "@C/etc/passwd") },
        .refused = "hardlink target \"@C/etc/passwd\" is not in the layer",
        .code = ENOENT } } },
  { "co_symlink_parent_directory",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), S ("..", "/etc/"),
               H ("localpasswd", "/etc/passwd") },
        .refused = "entry \"..\": path leaves the layer",
        .code = EINVAL } } },
  /* libarchive will not write a nameless entry: the headers are made by hand. */
  { "co_symlink_empty_filename",
    { { .raw = true,
        .e = { { .kind = '5', .name = "etc/" }, { .kind = '2', .name = "", .arg = "/etc/" } },
        .refused = "entry 2: no name",
        .code = EINVAL } } },
  { "co_symlink_parent_relative",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), S ("localetc/sub/..", "/etc/"),
               H ("/localetc/localpasswd", "/etc/passwd") },
        .c = { TYPE ("localetc", S_IFLNK), SAME ("etc/localpasswd", "etc/passwd") } } } },
  { "co_symlink_slash_ended",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), D ("localetc/"),
               H ("/localetc/localpasswd", "/etc/passwd") },
        .c = { SAME ("localetc/localpasswd", "etc/passwd") } } } },
  { "co_symlink_override_directory",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), D ("localetc"), S ("localetc", "/etc"),
               H ("/localetc/localpasswd", "/etc/passwd") },
        .c = { TYPE ("localetc", S_IFLNK), SAME ("etc/localpasswd", "etc/passwd") } } } },
  { "co_symlink_override_directory_relative",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), D ("localetc"), F ("localetc/old", "old"),
               S ("localetc", "../../etc"), H ("/localetc/localpasswd", "/etc/passwd") },
        .c = { SAME ("etc/localpasswd", "etc/passwd"), ABSENT ("etc/old") } } } },
  { "co_directory_override_symlink",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), S ("localetc", "/etc"), D ("/localetc/"),
               H ("/localetc/localpasswd", "/etc/passwd") },
        .c = { TYPE ("localetc", S_IFDIR), SAME ("localetc/localpasswd", "etc/passwd") } } } },
  { "co_directory_override_symlink_and_hardlink",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), S ("localetc", "etc"),
               H ("/localetc/localpasswd", "/etc/passwd"), D ("/localetc/"),
               F ("/localetc/localpasswd", "different") },
        .c = { DIFFERENT ("localetc/localpasswd", "etc/passwd"), CONTENT ("etc/passwd", "inside"),
               CONTENT ("localetc/localpasswd", "different") } } } },
  { "co_whiteout_root_parent",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), F (".wh...", "") },
        .refused = "entry \".wh...\": invalid whiteout",
        .code = EINVAL } } },
  { "co_whiteout_parent",
    { { .e = { D ("etc"), F ("etc/.wh...", "") },
        .refused = "entry \"etc/.wh...\": invalid whiteout",
        .code = EINVAL } } },
  { "co_whiteout_root",
    { { .e = { F (".wh..", "") },
        .refused = "entry \".wh..\": invalid whiteout",
        .code = EINVAL } } },
  { "co_whiteout_current_directory",
    { { .e = { D ("etc"), F ("etc/.wh..", "") },
        .refused = "entry \"etc/.wh..\": invalid whiteout",
        .code = EINVAL } } },
  /* A whiteout of a symlink never acts on its target. The links are this layer's own entries,
     which a whiteout of the same layer does not remove (OCI layer.md: whiteouts apply to the
     lower layers only); a whiteout of a name only the lower layers have is still made. */
  { "co_whiteout_symlink",
    { { .e = { D ("etc"), F ("/etc/passwd", "all users"), S ("localetc", "/etc"),
               S ("hostetc", "@C/etc"), F (".wh.localetc", ""), F (".wh.hostetc", ""),
               F (".wh.lowerlink", "") },
        .c = { CONTENT ("etc/passwd", "all users"), TYPE ("localetc", S_IFLNK),
               TYPE ("hostetc", S_IFLNK), WHITEOUT ("lowerlink") } } } },
  /* The layer's own file stays; the lower layers' etc/lower is whited out through the link. */
  { "co_whiteout_symlink_path",
    { { .e = { D ("etc"), F ("/etc/passwd", "all users"), F ("/etc/whitedout", "ahhhh whiteout"),
               S ("localetc", "/etc"), F ("localetc/.wh.whitedout", ""),
               F ("localetc/.wh.lower", "") },
        .c = { CONTENT ("etc/passwd", "all users"), CONTENT ("etc/whitedout", "ahhhh whiteout"),
               WHITEOUT ("etc/lower") } } } },
  /* The canary's etc/whitedout by its host path, absolute and relative. */
  { "co_whiteout_symlink_path_host",
    { { .e = { S ("localetc", "@C/etc"), F ("localetc/.wh.whitedout", "") },
        .refused = "entry \"localetc/.wh.whitedout\": open parent directory: ",
        .code = ENOENT },
      { .e = { S ("localetc", "../../../../canary/etc"), F ("localetc/.wh.whitedout", "") },
        .refused = "entry \"localetc/.wh.whitedout\": open parent directory: ",
        .code = ENOENT } } },
  { "co_whiteout_directory_name",
    { { .e = { D ("etc"), F ("/etc/passwd", "all users"), F (".wh.etc/somefile", "non-empty") },
        .c
        = { CONTENT ("etc/passwd", "all users"), CONTENT (".wh.etc/somefile", "non-empty") } } } },
  /* containerd makes this a no-op; cimg refuses a whiteout under a dangling link. */
  { "co_whiteout_dead_symlink_parent",
    { { .e = { D ("etc"), F ("/etc/passwd", "all users"), S ("localetc", "/dne"),
               F ("localetc/.wh.etc", "") },
        .refused = "entry \"localetc/.wh.etc\": open parent directory: ",
        .code = ENOENT } } },
  /* The layer's own etc stays, opaque over the lower layers' etc that the whiteout removes. */
  { "co_whiteout_relative_path",
    { { .e = { D ("etc"), F ("/etc/passwd", "all users"), S ("localetc", "/dne"),
               F ("dne/../.wh.etc", ""), F ("dne/../.wh.lower", "") },
        .c = { CONTENT ("etc/passwd", "all users"), OPAQUE ("etc", 1), WHITEOUT ("lower"),
               TYPE ("localetc", S_IFLNK) } } } },
  /* A hardlink to a symlink links the symlink itself, whatever it points at and whenever the
     target appears. */
  { "co_hardlink_symlink_before_create_target",
    { { .e = { D ("etc"), S ("localpasswd", "/etc/passwd"), H ("localpasswd-dup", "localpasswd"),
               F ("/etc/passwd", "after") },
        .c = { TYPE ("localpasswd-dup", S_IFLNK), SAME ("localpasswd-dup", "localpasswd"),
               CONTENT ("etc/passwd", "after") } } } },
  { "co_hardlink_symlink_relative",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"),
               S ("passwdlink", "../../../../../etc/passwd"), H ("localpasswd", "/passwdlink") },
        .c = { SAME ("localpasswd", "passwdlink"),
               LINK ("localpasswd", "../../../../../etc/passwd") } } } },
  { "co_hardlink_symlink_absolute",
    { { .e = { D ("etc"), F ("/etc/passwd", "inside"), S ("passwdlink", "/etc/passwd"),
               H ("localpasswd", "/passwdlink") },
        .c = { SAME ("localpasswd", "passwdlink"), LINK ("localpasswd", "/etc/passwd") } } } },
  /* A symlink named by a host path, pointing at a 0400 host file, then a hardlink to it with
     another mode: the host file keeps its mode (the snapshot checks it). */
  { "co_hardlink_symlink_chmod",
    { { .e = { S ("@B/also-exists-outside-root", "@C/perm400"),
               { .kind = 'h',
                 .name = "sketchylink",
                 .arg = "@B/also-exists-outside-root",
                 .perm = 0777 },
               { .kind = 's', .name = "@C/perm400", .arg = "@C/perm400", .uid = 4242 } },
        .c
        = { TYPE ("@B/also-exists-outside-root", S_IFLNK),
            SAME ("sketchylink", "@B/also-exists-outside-root"), UID ("@C/perm400", 4242) } } } },
  /* Dangling links: written through (refused), hardlinked (the link itself), replaced by a
     file and by a directory (the link goes), as a hardlink's path (refused). */
  { "co_dead_links",
    { { .e = { S ("dead", "/nonexistent/dir"), F ("dead/f", "x") },
        .refused = "entry \"dead/f\": open parent directory: ",
        .code = ENOENT },
      { .e = { S ("dead", "/nonexistent/dir"), H ("dead2", "dead/f") },
        .refused = "entry \"dead2\": hardlink target \"dead/f\" is not in the layer",
        .code = ENOENT },
      { .e = { S ("dead", "/nonexistent/file"), H ("dead-hl", "dead"),
               S ("dead-f", "../../../../canary/none"), F ("dead-f", "f"), S ("dead-d", "@C/none"),
               D ("dead-d"), F ("dead-d/inner", "inner") },
        .c = { SAME ("dead", "dead-hl"), TYPE ("dead-hl", S_IFLNK), CONTENT ("dead-f", "f"),
               CONTENT ("dead-d/inner", "inner") } } } },

  /* ============================================================ libarchive secure extraction */
  { "la_write_through_in_layer_link",
    { { .e = { D ("dir"), S ("link_to_dir", "dir"), F ("link_to_dir/filea", "a") },
        .c = { CONTENT ("dir/filea", "a"), TYPE ("link_to_dir", S_IFLNK) } } } },
  { "la_link_replaced_by_dir",
    { { .e = { D ("dir"), S ("link_to_dir2", "dir"), D ("link_to_dir2"),
               F ("link_to_dir2/filec", "c") },
        .c = { TYPE ("link_to_dir2", S_IFDIR), CONTENT ("link_to_dir2/filec", "c"),
               ABSENT ("dir/filec") } } } },
  { "la_absolute_names",
    { { .e = { F ("@C/file", "pwned"), F ("/outside", "pwned") },
        .c = { CONTENT ("@C/file", "pwned"), CONTENT ("outside", "pwned") } } } },
  { "la_dotdot_names",
    { { .e = { F ("first", "first"), F ("../../../../canary/file", "pwned") },
        .refused = "entry \"../../../../canary/file\": path leaves the layer",
        .code = EINVAL },
      { .e = { F ("first", "first"), F ("a/../../outside", "pwned") },
        .refused = "entry \"a/../../outside\": path leaves the layer",
        .code = EINVAL },
      { .e = { F ("first", "first"), F ("./..", "pwned") },
        .refused = "entry \"./..\": path leaves the layer",
        .code = EINVAL },
      { .e = { F ("first", "first"), F ("a/b/../../../x", "pwned") },
        .refused = "entry \"a/b/../../../x\": path leaves the layer",
        .code = EINVAL } } },
  /* test_write_disk_secure744: a link 20 directories down that climbs back up 24 levels, then
     a write through it. */
  { "la_deep_link_climbs",
    { { .e
        = { D ("d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d"),
            S ("d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/up",
               "../../../../../../../../../../../../../../../../../../../../../../../.."),
            D ("canary"), F ("d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/d/up/canary/file", "pwned") },
        .c = { CONTENT ("canary/file", "pwned") } } } },
  /* test_write_disk_secure746: hardlinks with ".." and through a link to a host directory. */
  { "la_hardlink_dotdot_and_host_dir",
    { { .e = { D ("a"), H ("hl", "a/../../outside") },
        .refused = "entry \"hl\": hardlink target \"a/../../outside\" leaves the layer",
        .code = EINVAL },
      { .e = { S ("s", "@B"), H ("hl", "s/outside") },
        .refused = "entry \"hl\": hardlink target \"s/outside\" is not in the layer",
        .code = ENOENT },
      { .e = { S ("s", "../../../.."), H ("hl", "s/canary/file") },
        .refused = "entry \"hl\": hardlink target \"s/canary/file\" is not in the layer",
        .code = ENOENT } } },

  /* ============================================================ issue #7 additions */
  /* Duplicates: the last entry wins, and replacing never writes through the old one. */
  { "x_duplicate_entries",
    { { .e = { F ("a", "A"), H ("b", "a"),
               F ("b", "B"),                     /* must not change a, which b was a hardlink of */
               S ("c", "@C/file"), F ("c", "C"), /* must not write through the old link */
               D ("d"), F ("d/x", "x"), S ("d", "@C"), /* the directory and its content go */
               F ("e", "E"), H ("e", "e"),             /* a hardlink to itself is the file itself */
               F ("f", "1"), F ("f", "2"), F ("f", "3"), D ("g"), D ("g"),
               F ("g/kept", "kept"), /* a second directory entry merges */
               D ("g") },
        .c = { CONTENT ("a", "A"), CONTENT ("b", "B"), DIFFERENT ("a", "b"), TYPE ("c", S_IFREG),
               CONTENT ("c", "C"), TYPE ("d", S_IFLNK), CONTENT ("e", "E"), CONTENT ("f", "3"),
               CONTENT ("g/kept", "kept") } } } },
  { "x_bare_whiteout",
    { { .e = { D ("dir"), F ("dir/x", "x"), F (".wh.", "") },
        .refused = "entry \".wh.\": invalid whiteout",
        .code = EINVAL },
      { .e = { D ("dir"), F ("dir/x", "x"), F ("dir/.wh.", "") },
        .refused = "entry \"dir/.wh.\": invalid whiteout",
        .code = EINVAL },
      { .e = { D ("dir"), F ("dir/x", "x"), F ("/.wh.", "") },
        .refused = "entry \"/.wh.\": invalid whiteout",
        .code = EINVAL } } },
  /* An opaque marker after entries of its own directory hides only the layers below: what this
     layer put there, before or after the marker, stays. */
  { "x_opaque_after_entries",
    { { .e = { D ("d"), F ("d/before", "before"), D ("d/sub"), F ("d/sub/deep", "deep"),
               F ("d/.wh..wh..opq", ""), F ("d/after", "after") },
        .c = { CONTENT ("d/before", "before"), CONTENT ("d/sub/deep", "deep"),
               CONTENT ("d/after", "after"), ABSENT ("d/.wh..wh..opq"), OPAQUE ("d", 1),
               OPAQUE ("d/sub", 0) } } } },
  /* An opaque marker through a link to a host directory never marks it. */
  { "x_opaque_through_host_link",
    { { .e = { S ("d", "@C"), F ("d/.wh..wh..opq", "") },
        .refused = "entry \"d/.wh..wh..opq\": open directory: ",
        .code = ENOENT } } },
  /* The layer's root itself as a symlink, hardlink or file. */
  { "x_root_becomes_link",
    { { .e = { S ("./", "@C"), F ("file", "pwned") },
        .refused = "entry \"./\": the layer root can only be a directory",
        .code = EINVAL },
      { .e = { S ("/", "@C"), F ("file", "pwned") },
        .refused = "entry \"/\": the layer root can only be a directory",
        .code = EINVAL },
      { .e = { S (".", "@C"), F ("file", "pwned") },
        .refused = "entry \".\": the layer root can only be a directory",
        .code = EINVAL },
      { .e = { F ("x", "x"), H ("./", "x") },
        .refused = "entry \"./\": the layer root can only be a directory",
        .code = EINVAL },
      { .e = { F (".", "a file") },
        .refused = "entry \".\": the layer root can only be a directory",
        .code = EINVAL } } },
  /* A top directory turned into a link to "/", to a host directory by absolute and relative
     path, then written through, whited out through and hardlinked through. */
  { "x_top_dir_becomes_link",
    { { .e = { D ("etc"), F ("etc/passwd", "old"), S ("etc", "/"), F ("etc/passwd", "new"),
               S ("usr", "../../.."), F ("usr/bin-sh", "sh") },
        .c = { TYPE ("etc", S_IFLNK), CONTENT ("passwd", "new"), CONTENT ("bin-sh", "sh") } },
      { .e = { S ("usr", "/usr"), F ("usr/bin/sh", "pwned") },
        .refused = "entry \"usr/bin/sh\": open parent directory: ",
        .code = ELOOP },
      { .e = { S ("bin", "@C"), F ("bin/.wh.file", "") },
        .refused = "entry \"bin/.wh.file\": open parent directory: ",
        .code = ENOENT },
      { .e = { S ("lib", "../../../../canary"), D ("lib/dir") },
        .refused = "entry \"lib/dir/\": open parent directory: ",
        .code = ENOENT } } },
  /* Device numbers the kernel cannot hold are refused; the largest it has are fine. */
  { "x_device_numbers_out_of_range",
    { { .e = { CHR ("dev", 4096, 0) },
        .refused = "entry \"dev\": device number 4096:0 out of range",
        .code = ERANGE },
      { .e = { BLK ("dev", 1, 1UL << 20) },
        .refused = "entry \"dev\": device number 1:1048576 out of range",
        .code = ERANGE },
      { .e = { CHR ("dev", 0x7fffffff, 3) },
        .refused = "entry \"dev\": device number 2147483647:3 out of range",
        .code = ERANGE },
      { .e = { BLK ("dev", 4097, 1) },
        .refused = "entry \"dev\": device number 4097:1 out of range",
        .code = ERANGE },
      { .e = { CHR ("dev", 4095, (1UL << 20) - 1) },
        .c = { RDEV ("dev", 4095, (1UL << 20) - 1) } } } },
};

/* s with "@C" and "@B" replaced (see struct entry), kept with the case. */
static const char *
expand (struct env *v, const char *s)
{
  if (s == NULL || strchr (s, '@') == NULL)
    return s;
  struct membuf m = { 0 };
  for (const char *p = s; *p; p++)
    if (p[0] == '@' && (p[1] == 'C' || p[1] == 'B'))
      {
        const char *with = p[1] == 'C' ? v->canary : v->base;
        membuf_add (&m, with, strlen (with));
        p++;
      }
    else
      membuf_add (&m, p, 1);
  membuf_add (&m, "", 1);
  return keep (v, (char *)m.data);
}

/* A checked path, relative to the layer's diff directory. */
static const char *
in_layer (struct env *v, const char *path)
{
  const char *p = expand (v, path);
  while (*p == '/')
    p++;
  return p;
}

static void
write_layer (struct env *v, const struct layer *l, struct membuf *out)
{
  if (l->raw)
    {
      memset (out, 0, sizeof *out);
      for (const struct entry *e = l->e; e->kind; e++)
        raw_header (out, expand (v, e->name), e->kind, expand (v, e->arg), 0);
      raw_end (out);
      return;
    }
  struct tarw t;
  tw_init (&t);
  for (const struct entry *e = l->e; e->kind; e++)
    {
      const char *name = expand (v, e->name), *arg = expand (v, e->arg);
      mode_t type = AE_IFREG, perm = 0644;
      switch (e->kind)
        {
        case 'd':
          type = AE_IFDIR, perm = 0755;
          break;
        case 's':
          type = AE_IFLNK, perm = 0777;
          break;
        case 'c':
        case 'b':
          type = e->kind == 'c' ? AE_IFCHR : AE_IFBLK, perm = 0600;
          break;
        }
      struct archive_entry *ae = ent (name, type, e->perm ? e->perm : perm);
      if (e->kind == 's')
        archive_entry_copy_symlink (ae, arg);
      if (e->kind == 'h')
        {
          archive_entry_copy_hardlink (ae, arg);
          archive_entry_set_size (ae, 0);
        }
      if (e->kind == 'c' || e->kind == 'b')
        {
          archive_entry_set_rdevmajor (ae, e->maj);
          archive_entry_set_rdevminor (ae, e->min);
        }
      if (e->uid)
        archive_entry_set_uid (ae, e->uid);
      const char *content = e->kind == 'f' ? arg : NULL;
      tw_put (&t, ae, content, content ? strlen (content) : 0);
    }
  tw_close (&t);
  *out = t.m;
}

static void
run_check (struct env *v, const struct check *c)
{
  const char *p = in_layer (v, c->path);
  struct stat st;
  switch (c->kind)
    {
    case C_CONTENT:
      assert_content (v, p, c->arg);
      break;
    case C_TYPE:
      assert_type (v, p, (mode_t)c->n);
      break;
    case C_ABSENT:
      assert_absent (v, p);
      break;
    case C_SAME:
    case C_DIFFERENT:
      assert_same_inode (v, p, in_layer (v, c->arg), c->kind == C_SAME);
      break;
    case C_WHITEOUT:
      assert_whiteout (v, p);
      break;
    case C_LINK:
      assert_link_target (v, p, c->arg);
      break;
    case C_OPAQUE:
      assert_int_equal (xattr_in (v, p, "trusted.overlay.opaque"), c->n ? 1 : -1);
      break;
    case C_UID:
      lstat_in (v, p, &st);
      assert_int_equal (st.st_uid, c->n);
      break;
    case C_RDEV:
      lstat_in (v, p, &st);
      assert_int_equal (major (st.st_rdev), c->n);
      assert_int_equal (minor (st.st_rdev), c->n2);
      break;
    }
}

/* The one loop every row of the table runs through. */
static void
run_row (void **state)
{
  struct env *v = *state;
  for (const struct layer *l = v->row->l; l < v->row->l + ARRAY_SIZE (v->row->l) && l->e[0].kind;
       l++)
    {
      struct membuf m;
      write_layer (v, l, &m);
      if (l->refused)
        {
          /* A refusal and checks of what was extracted cannot both be meant. */
          assert_int_equal (l->c[0].kind, 0);
          refused_buf (v, m.data, m.len, expand (v, l->refused), l->code);
        }
      else
        {
          contained_buf (v, m.data, m.len);
          for (const struct check *c = l->c; c < l->c + ARRAY_SIZE (l->c) && c->kind; c++)
            run_check (v, c);
        }
      free (m.data);
    }
}

/* ================================================================ cases of their own */

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
  tw_file (&t, deep, 0644, "deep");
  expect_refused (v, &t, "File name too long", ENAMETOOLONG);
  tw_init (&t);
  tw_file (&t, component, 0644, "long");
  expect_refused (v, &t, "File name too long", ENAMETOOLONG);
  tw_init (&t);
  tw_symlink (&t, "l", target);
  expect_refused (v, &t, "entry \"l\": create symlink: File name too long", ENAMETOOLONG);
  tw_init (&t);
  tw_hardlink (&t, "h", target);
  expect_refused (v, &t, "File name too long", ENAMETOOLONG);

  /* Deep but within PATH_MAX: extracted. */
  cleanup_free char *ok = repeat ("d/", 1000, "f");
  tw_init (&t);
  tw_file (&t, ok, 0644, "ok");
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
  refused_buf (v, gz.data, gz.len, want, EFBIG);
  refused_buf (v, zs.data, zs.len, want, EFBIG);
  refused_buf (v, padded_gz.data, padded_gz.len, want, EFBIG);
  /* The environment overrides the files (tests, one-off pulls). */
  setenv ("CIMG_MAX_LAYER_SIZE", "20MiB", 1);
  refused_buf (v, gz.data, gz.len, "the size limit of 20971520 bytes", EFBIG);
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

/* An old-GNU sparse entry ('S') named name that declares size bytes with four bytes of data at
   its end: no tar byte pays for the holes. libarchive's writer only writes sparse files it is
   given all the bytes of: made by hand. */
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
  snprintf (h + 136, 12, "%011o", TAR_MTIME);
  h[156] = 'S';
  memcpy (h + 257, "ustar  ", 8); /* the old GNU magic and version */
  base256 (h + 386, size - 4);    /* sparse[0].offset */
  snprintf (h + 398, 12, "%011o", 4);
  base256 (h + 483, size); /* realsize */
  raw_header_add (m, h);
  char data[512];
  memset (data, 0, sizeof data);
  memcpy (data, "tail", 4);
  membuf_add (m, data, sizeof data);
}

/* A terabyte of holes: the limit counts them anyway (the default limit is enough). */
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
               "(max-layer-size in the cimg config)",
               EFBIG);
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
  tw_file (&t, "whole", 0644, "whole");
  tw_close (&t);
  refused_buf (v, t.m.data, 700, "entry \"whole\": read content: ", EIO);
  tw_free (&t);

  struct membuf plain, gz;
  zero_layer (&plain, 100000, 0);
  gzip_buf (&plain, &gz);
  refused_buf (v, gz.data, gz.len / 2, "gzip: unexpected end of stream (truncated)", EINVAL);
  free (plain.data);
  free (gz.data);
  const char junk[] = "this is not a tar archive at all, not even close; just text.";
  char block[2048];
  for (size_t i = 0; i < sizeof block; i++)
    block[i] = junk[i % (sizeof junk - 1)];
  refused_buf (v, block, sizeof block, "not a tar archive: ", EINVAL);
}

#define CASE(f) cmocka_unit_test_setup_teardown (f, setup, teardown)

int
main (void)
{
  const struct CMUnitTest own[] = {
    CASE (x_overlay_xattrs),
    CASE (x_names_longer_than_path_max),
    CASE (x_hundred_thousand_entries),
    CASE (x_decompression_bomb),
    CASE (x_sparse_bomb),
    CASE (x_load_sparse_bomb),
    CASE (x_bad_limit_setting),
    CASE (x_truncated_and_foreign),
  };
  struct CMUnitTest tests[ARRAY_SIZE (rows) + ARRAY_SIZE (own)];
  for (size_t i = 0; i < ARRAY_SIZE (rows); i++)
    tests[i] = (struct CMUnitTest){ .name = rows[i].name,
                                    .test_func = run_row,
                                    .setup_func = setup,
                                    .teardown_func = teardown,
                                    .initial_state = (void *)&rows[i] };
  memcpy (tests + ARRAY_SIZE (rows), own, sizeof own);
  int failed
      = _cmocka_run_group_tests ("test_layer_attacks", tests, ARRAY_SIZE (tests), NULL, NULL);
  print_message ("%zu cases, %d hostile layers: %d refused, %d extracted inside their root\n",
                 ARRAY_SIZE (tests), n_refused + n_contained, n_refused, n_contained);
  return failed;
}
