/* Packing a directory tree (typically an overlay upper dir) into a layer tar. The output must be
   a function of the tree alone, so that the same upper dir always gives the same diff_id: names
   are sorted, xattrs are sorted, and nothing volatile (atime, ctime, user and group names) is
   written. */
#include "store/store-internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <search.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#define WH_PREFIX ".wh."
#define WH_OPAQUE ".wh..wh..opq"
#define XATTR_OPAQUE "trusted.overlay.opaque"
#define PACK_BUFSIZE (64 * 1024)

struct link
{
  dev_t dev;
  ino_t ino;
  char *path;
};

struct pack_ctx
{
  struct archive *a;
  int flags;
  cimg_pack_write_fn fn;
  void *data;
  cimg_error_t *err;
  bool write_failed; /* fn set *err */
  bool discard;      /* packing failed: swallow what archive_write_free still writes */
  void *links;       /* tsearch tree of struct link, for files with st_nlink > 1 */
  char *buf;
};

static void
entry_freep (struct archive_entry **e)
{
  if (*e)
    archive_entry_free (*e);
}
#define cleanup_entry __attribute__ ((cleanup (entry_freep)))

static int
link_cmp (const void *pa, const void *pb)
{
  const struct link *a = pa, *b = pb;
  if (a->dev != b->dev)
    return a->dev < b->dev ? -1 : 1;
  if (a->ino != b->ino)
    return a->ino < b->ino ? -1 : 1;
  return 0;
}

static void
link_free (void *p)
{
  struct link *l = p;
  free (l->path);
  free (l);
}

static la_ssize_t
write_cb (struct archive *a, void *data, const void *buf, size_t len)
{
  struct pack_ctx *c = data;
  if (c->discard)
    return (la_ssize_t)len;
  if (c->write_failed)
    return -1;
  if (c->fn (c->data, buf, len, c->err) < 0)
    {
      c->write_failed = true;
      archive_set_error (a, EIO, "write failed");
      return -1;
    }
  return (la_ssize_t)len;
}

/* Turn a failed libarchive call into an error, unless the sink already said what went wrong. */
static int
archive_fail (struct pack_ctx *c, const char *path)
{
  if (c->write_failed)
    return -1;
  const char *msg = archive_error_string (c->a);
  int code = archive_errno (c->a);
  if (path == NULL)
    return cimg_error_set (c->err, code > 0 ? code : EIO, "write layer: %s",
                           msg ? msg : "archive error");
  return cimg_error_set (c->err, code > 0 ? code : EIO, "entry \"%s\": %s", path,
                         msg ? msg : "archive error");
}

static bool
skip_xattr (const char *name)
{
  return cimg_str_has_prefix (name, "trusted.overlay.")
         || cimg_str_has_prefix (name, "user.overlay.");
}

static int
strcmp_p (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

/* Add the xattrs of fd (or, with fd < 0, of path without following it) to e, sorted by name. */
static int
add_xattrs (struct archive_entry *e, int fd, const char *path, const char *entry_path,
            cimg_error_t *err)
{
  cleanup_free char *list = NULL;
  ssize_t n;
  for (;;)
    {
      n = fd >= 0 ? flistxattr (fd, NULL, 0) : llistxattr (path, NULL, 0);
      if (n < 0)
        {
          if (errno == ENOTSUP)
            return 0;
          return cimg_error_sys (err, "entry \"%s\": list xattrs", entry_path);
        }
      if (n == 0)
        return 0;
      free (list);
      list = xmalloc ((size_t)n);
      n = fd >= 0 ? flistxattr (fd, list, (size_t)n) : llistxattr (path, list, (size_t)n);
      if (n >= 0)
        break;
      if (errno != ERANGE)
        return cimg_error_sys (err, "entry \"%s\": list xattrs", entry_path);
    }

  size_t count = 0;
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen (list + i) + 1)
    count++;
  cleanup_free char **names = xmalloc ((count + 1) * sizeof (char *));
  count = 0;
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen (list + i) + 1)
    if (list[i] != '\0' && !skip_xattr (list + i))
      names[count++] = list + i;
  qsort (names, count, sizeof (char *), strcmp_p);

  for (size_t i = 0; i < count; i++)
    {
      cleanup_free char *value = NULL;
      ssize_t len;
      for (;;)
        {
          len = fd >= 0 ? fgetxattr (fd, names[i], NULL, 0) : lgetxattr (path, names[i], NULL, 0);
          if (len < 0)
            break;
          free (value);
          value = xmalloc ((size_t)len + 1);
          len = fd >= 0 ? fgetxattr (fd, names[i], value, (size_t)len)
                        : lgetxattr (path, names[i], value, (size_t)len);
          if (len >= 0 || errno != ERANGE)
            break;
        }
      if (len < 0)
        {
          /* Removed between list and get. */
          if (errno == ENODATA)
            continue;
          return cimg_error_sys (err, "entry \"%s\": read xattr %s", entry_path, names[i]);
        }
      archive_entry_xattr_add_entry (e, names[i], value, (size_t)len);
    }
  return 0;
}

static struct archive_entry *
new_entry (const char *path, const struct stat *st)
{
  struct archive_entry *e = archive_entry_new ();
  if (e == NULL)
    abort ();
  archive_entry_copy_pathname (e, path);
  archive_entry_set_filetype (e, st->st_mode & S_IFMT);
  archive_entry_set_perm (e, st->st_mode & 07777);
  archive_entry_set_uid (e, st->st_uid);
  archive_entry_set_gid (e, st->st_gid);
  /* Whole seconds, as Docker writes layers: pax_restricted would otherwise keep the fraction
     only for entries that need an extended header anyway. */
  archive_entry_set_mtime (e, st->st_mtim.tv_sec, 0);
  return e;
}

/* An empty root-owned regular entry: the tar form of a whiteout. */
static int
write_marker (struct pack_ctx *c, const char *path, const struct stat *st)
{
  cleanup_entry struct archive_entry *e = archive_entry_new ();
  if (e == NULL)
    abort ();
  archive_entry_copy_pathname (e, path);
  archive_entry_set_filetype (e, AE_IFREG);
  archive_entry_set_perm (e, 0);
  archive_entry_set_size (e, 0);
  archive_entry_set_mtime (e, st->st_mtim.tv_sec, 0);
  if (archive_write_header (c->a, e) < ARCHIVE_WARN)
    return archive_fail (c, path);
  return 0;
}

static int
write_file_data (struct pack_ctx *c, int fd, int64_t size, const char *path)
{
  int64_t done = 0;
  while (done < size)
    {
      size_t want = size - done < PACK_BUFSIZE ? (size_t)(size - done) : PACK_BUFSIZE;
      ssize_t n = read (fd, c->buf, want);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return cimg_error_sys (c->err, "entry \"%s\": read", path);
        }
      /* Shrunk while we read: libarchive pads the entry to its declared size. */
      if (n == 0)
        break;
      if (archive_write_data (c->a, c->buf, (size_t)n) < 0)
        return archive_fail (c, path);
      done += n;
    }
  return 0;
}

/* If st (nlink > 1) was seen before, point e at the first path and return true. */
static bool
check_hardlink (struct pack_ctx *c, struct archive_entry *e, const struct stat *st,
                const char *path)
{
  if (st->st_nlink <= 1)
    return false;
  struct link key = { .dev = st->st_dev, .ino = st->st_ino };
  struct link **found = tfind (&key, &c->links, link_cmp);
  if (found)
    {
      archive_entry_copy_hardlink (e, (*found)->path);
      archive_entry_set_size (e, 0);
      return true;
    }
  struct link *l = xmalloc (sizeof *l);
  *l = key;
  l->path = xstrdup (path);
  if (tsearch (l, &c->links, link_cmp) == NULL)
    abort ();
  return false;
}

static int pack_children (struct pack_ctx *c, int dfd, const char *prefix);

static int
pack_one (struct pack_ctx *c, int dfd, const char *name, const char *prefix)
{
  cleanup_free char *path = xasprintf ("%s%s", prefix, name);
  struct stat st;
  char proc[64];

  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return cimg_error_sys (c->err, "entry \"%s\": stat", path);

  if (S_ISDIR (st.st_mode))
    {
      cleanup_close int fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return cimg_error_sys (c->err, "entry \"%s\": open", path);
      if (fstat (fd, &st) < 0)
        return cimg_error_sys (c->err, "entry \"%s\": stat", path);
      cleanup_free char *dpath = xasprintf ("%s/", path);
      cleanup_entry struct archive_entry *e = new_entry (dpath, &st);
      if (add_xattrs (e, fd, NULL, dpath, c->err) < 0)
        return -1;
      if (archive_write_header (c->a, e) < ARCHIVE_WARN)
        return archive_fail (c, dpath);
      if (c->flags & CIMG_PACK_OVERLAY)
        {
          char v[2];
          ssize_t n = fgetxattr (fd, XATTR_OPAQUE, v, sizeof v);
          if (n == 1 && v[0] == 'y')
            {
              cleanup_free char *opq = xasprintf ("%s%s", dpath, WH_OPAQUE);
              if (write_marker (c, opq, &st) < 0)
                return -1;
            }
        }
      return pack_children (c, fd, dpath);
    }

  if (S_ISSOCK (st.st_mode))
    return 0; /* tar has no sockets; they are runtime debris. */

  /* Overlay whiteouts may share one inode (the kernel links a single whiteout since 5.8): they
     are never hardlinks of each other. */
  if ((c->flags & CIMG_PACK_OVERLAY) && S_ISCHR (st.st_mode) && st.st_rdev == makedev (0, 0))
    {
      cleanup_free char *wh = xasprintf ("%s%s%s", prefix, WH_PREFIX, name);
      return write_marker (c, wh, &st);
    }

  cleanup_close int fd = -1;
  if (S_ISREG (st.st_mode))
    {
      /* O_NONBLOCK: a running container may swap the file for a fifo after the stat, and
         opening that must not hang the commit (the inode check below then refuses it). */
      fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
      if (fd < 0)
        return cimg_error_sys (c->err, "entry \"%s\": open", path);
      struct stat fst;
      if (fstat (fd, &fst) < 0)
        return cimg_error_sys (c->err, "entry \"%s\": stat", path);
      if (fst.st_ino != st.st_ino || fst.st_dev != st.st_dev)
        return cimg_error_set (c->err, EAGAIN, "entry \"%s\": changed while packing", path);
      st = fst;
    }

  cleanup_entry struct archive_entry *e = new_entry (path, &st);
  bool is_link = check_hardlink (c, e, &st, path);
  if (!is_link)
    {
      if (S_ISREG (st.st_mode))
        {
          archive_entry_set_size (e, st.st_size);
          if (add_xattrs (e, fd, NULL, path, c->err) < 0)
            return -1;
        }
      else if (S_ISLNK (st.st_mode))
        {
          /* xattrs on symlinks are left out: user.* cannot exist there and the rest is
             security labelling that belongs to the host. */
          size_t cap = (size_t)st.st_size + 1;
          cleanup_free char *target = xmalloc (cap + 1);
          ssize_t n = readlinkat (dfd, name, target, cap);
          if (n < 0)
            return cimg_error_sys (c->err, "entry \"%s\": readlink", path);
          if ((size_t)n >= cap)
            return cimg_error_set (c->err, EAGAIN, "entry \"%s\": changed while packing", path);
          target[n] = '\0';
          archive_entry_copy_symlink (e, target);
        }
      else
        {
          if (S_ISCHR (st.st_mode) || S_ISBLK (st.st_mode))
            archive_entry_set_rdev (e, st.st_rdev);
          /* Device nodes and fifos cannot be opened safely; the /proc link names the directory
             and llistxattr does not follow the last component. */
          snprintf (proc, sizeof proc, "/proc/self/fd/%d", dfd);
          cleanup_free char *ppath = xasprintf ("%s/%s", proc, name);
          if (add_xattrs (e, -1, ppath, path, c->err) < 0)
            return -1;
        }
    }

  if (archive_write_header (c->a, e) < ARCHIVE_WARN)
    return archive_fail (c, path);
  if (!is_link && S_ISREG (st.st_mode) && write_file_data (c, fd, st.st_size, path) < 0)
    return -1;
  return 0;
}

static int
pack_children (struct pack_ctx *c, int dfd, const char *prefix)
{
  cleanup_strv char **names = NULL;
  size_t n = 0;
  {
    int dup_fd = fcntl (dfd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0)
      return cimg_error_sys (c->err, "entry \"%s\": read directory", *prefix ? prefix : "/");
    cleanup_dir DIR *d = fdopendir (dup_fd);
    if (d == NULL)
      {
        close (dup_fd);
        return cimg_error_sys (c->err, "entry \"%s\": read directory", *prefix ? prefix : "/");
      }
    struct dirent *de;
    errno = 0;
    while ((de = readdir (d)) != NULL)
      {
        if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
          continue;
        cimg_strv_append (&names, de->d_name);
        n++;
        errno = 0;
      }
    if (errno != 0)
      return cimg_error_sys (c->err, "entry \"%s\": read directory", *prefix ? prefix : "/");
  }
  if (n > 0)
    qsort (names, n, sizeof (char *), strcmp_p);
  for (size_t i = 0; i < n; i++)
    if (pack_one (c, dfd, names[i], prefix) < 0)
      return -1;
  return 0;
}

int
cimg_layer_pack (int rootfd, int flags, cimg_pack_write_fn fn, void *data, cimg_error_t *err)
{
  struct pack_ctx c = {
    .flags = flags,
    .fn = fn,
    .data = data,
    .err = err,
  };
  int ret = -1;

  cleanup_close int fd = openat (rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "open the tree to pack");

  /* libarchive converts names from the current locale to the UTF-8 of pax records; under the C
     locale every non-ASCII name would fail that and be written as hdrcharset=BINARY, so the
     bytes would depend on the caller's locale. Under C.UTF-8 valid UTF-8 names are written as
     they are and only invalid ones fall back to BINARY (with ARCHIVE_WARN, which is fine). The
     locale is per thread and libarchive keeps its converters for the archive's lifetime, so it
     stays in force until the archive is freed. */
  locale_t utf8 = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
  locale_t saved_locale = utf8 != (locale_t)0 ? uselocale (utf8) : (locale_t)0;

  c.a = archive_write_new ();
  if (c.a == NULL)
    abort ();
  c.buf = xmalloc (PACK_BUFSIZE);
  archive_write_set_format_pax_restricted (c.a);
  /* Only the SCHILY.xattr records Go's archive/tar and GNU tar read; libarchive would add a
     LIBARCHIVE.xattr copy of each. */
  if (archive_write_set_format_option (c.a, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK)
    {
      archive_fail (&c, NULL);
      goto out;
    }
  /* No padding to a 10 KiB record after the end-of-archive blocks: bytes nobody reads. */
  archive_write_set_bytes_in_last_block (c.a, 1);
  if (archive_write_open (c.a, &c, NULL, write_cb, NULL) != ARCHIVE_OK)
    {
      archive_fail (&c, NULL);
      goto out;
    }
  if (pack_children (&c, fd, "") < 0)
    goto out;
  if (archive_write_close (c.a) != ARCHIVE_OK)
    {
      archive_fail (&c, NULL);
      goto out;
    }
  ret = 0;

out:
  /* After a failure the end of archive that archive_write_free still writes must not reach fn.
     archive_write_fail would stop it too, but then libarchive 3.6 leaks its output buffers. */
  c.discard = true;
  archive_write_free (c.a);
  if (utf8 != (locale_t)0)
    {
      uselocale (saved_locale);
      freelocale (utf8);
    }
  tdestroy (c.links, link_free);
  free (c.buf);
  return ret;
}
