/* Safe extraction of a layer tar into an overlay upper dir. The tar is untrusted: every name is
   cleaned, every parent is resolved inside the root, and the final component is acted on with
   *at() calls that never follow it. */
#include "store/store-internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#define WH_PREFIX ".wh."
#define WH_META_PREFIX ".wh..wh."
#define WH_OPAQUE ".wh..wh..opq"
#define XATTR_OPAQUE "trusted.overlay.opaque"

struct dir_time
{
  char *path; /* cleaned, "" for the root */
  struct timespec ts[2];
};

/* A plain file's last two syscalls, futimens and close, go to a thread of their own (the
   closer): the extraction thread is what a pull waits for, and those two were a fifth of its
   syscall time (ext4's setattr journal handle, the final fput). Nothing later in the layer
   depends on them: a file's times are not read back, and a directory's times do not change
   when a file in it is dated or closed. Errors are kept and reported at the end. */
/* Files handed over and not yet closed, at most: a pull runs a few layers at once, and their
   open fds must stay well under a 1024 RLIMIT_NOFILE. */
#define CLOSER_SLOTS 64
#define CLOSER_BATCH 16 /* the closer is woken for this many files at a time */

struct deferred
{
  int fd;
  struct timespec ts[2];
  char *name; /* for the error message */
};

struct closer
{
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  struct deferred q[CLOSER_SLOTS];
  size_t head, len;
  size_t busy; /* taken by the closer, not yet closed */
  bool idle;   /* waiting for work */
  bool stop;
  int err_no;     /* the first failure, 0 if none */
  char *err_name; /* its file */
};

struct apply_ctx
{
  struct archive *a;
  int rootfd;
  int64_t max_size;
  int64_t size;
  int64_t logical; /* sum of the files' sizes, holes of sparse files included */
  int64_t entries;
  struct dir_time *dirs;
  size_t n_dirs, cap_dirs;
  /* The last parent directory resolved (tar order puts siblings together): its cleaned path and
     fd, valid while entries only add names. */
  char *pdir;
  int pdfd;
  bool pvalid;
  gid_t pgid; /* the group a file created in pdfd gets (setgid directories pass theirs on) */
  uid_t euid;
  gid_t egid;
  mode_t umask; /* the process umask, 0777 when unknown (then every mode is set explicitly) */
  struct closer *closer; /* NULL: futimens and close are done in place */
};

static void *
closer_main (void *data)
{
  struct closer *k = data;
  struct deferred batch[CLOSER_SLOTS];
  pthread_mutex_lock (&k->mu);
  for (;;)
    {
      while (k->len == 0 || (k->len < CLOSER_BATCH && !k->stop))
        {
          if (k->stop && k->len == 0)
            {
              pthread_mutex_unlock (&k->mu);
              return NULL;
            }
          k->idle = true;
          pthread_cond_wait (&k->cv, &k->mu);
          k->idle = false;
        }
      size_t n = k->len;
      for (size_t i = 0; i < n; i++)
        batch[i] = k->q[(k->head + i) % CLOSER_SLOTS];
      k->head = (k->head + n) % CLOSER_SLOTS;
      k->len = 0;
      k->busy = n;
      pthread_mutex_unlock (&k->mu);
      for (size_t i = 0; i < n; i++)
        {
          int e = 0;
          if (futimens (batch[i].fd, batch[i].ts) < 0)
            e = errno;
          close (batch[i].fd);
          if (e != 0)
            {
              pthread_mutex_lock (&k->mu);
              if (k->err_no == 0)
                {
                  k->err_no = e;
                  k->err_name = batch[i].name;
                  batch[i].name = NULL;
                }
              pthread_mutex_unlock (&k->mu);
            }
          free (batch[i].name);
        }
      pthread_mutex_lock (&k->mu);
      k->busy = 0;
      /* The producer may be waiting for room. */
      pthread_cond_broadcast (&k->cv);
    }
}

/* Without a thread (it could not be started) the work is simply done in place. */
static void
closer_start (struct apply_ctx *c)
{
  struct closer *k = xzalloc (sizeof *k);
  pthread_mutex_init (&k->mu, NULL);
  pthread_cond_init (&k->cv, NULL);
  if (pthread_create (&k->thread, NULL, closer_main, k) != 0)
    {
      pthread_mutex_destroy (&k->mu);
      pthread_cond_destroy (&k->cv);
      free (k);
      return;
    }
  c->closer = k;
}

/* Set fd's times and close it, now or on the closer thread (which takes fd). */
static int
date_and_close (struct apply_ctx *c, int fd, const struct timespec ts[2], const char *name,
                cimg_error_t *err)
{
  struct closer *k = c->closer;
  if (k == NULL)
    {
      int r = futimens (fd, ts);
      int saved = errno;
      close (fd);
      errno = saved;
      return r < 0 ? cimg_error_sys (err, "set times") : 0;
    }
  pthread_mutex_lock (&k->mu);
  while (k->len + k->busy >= CLOSER_SLOTS)
    pthread_cond_wait (&k->cv, &k->mu);
  struct deferred *d = &k->q[(k->head + k->len) % CLOSER_SLOTS];
  d->fd = fd;
  d->ts[0] = ts[0];
  d->ts[1] = ts[1];
  d->name = xstrdup (name);
  k->len++;
  if (k->idle && k->len >= CLOSER_BATCH)
    pthread_cond_broadcast (&k->cv);
  pthread_mutex_unlock (&k->mu);
  return 0;
}

/* Wait for every deferred file; returns -1 with err set if one failed (unless err is already
   set by an earlier failure, which is the one reported). */
static int
closer_finish (struct apply_ctx *c, bool failed, cimg_error_t *err)
{
  struct closer *k = c->closer;
  if (k == NULL)
    return 0;
  c->closer = NULL;
  pthread_mutex_lock (&k->mu);
  k->stop = true;
  pthread_cond_broadcast (&k->cv);
  pthread_mutex_unlock (&k->mu);
  pthread_join (k->thread, NULL);
  int rc = 0;
  if (k->err_no != 0 && !failed)
    {
      errno = k->err_no;
      rc = cimg_error_sys (err, "entry \"%s\": set times", k->err_name);
    }
  free (k->err_name);
  pthread_mutex_destroy (&k->mu);
  pthread_cond_destroy (&k->cv);
  free (k);
  return rc;
}

static const char *
archive_msg (struct archive *a)
{
  const char *s = archive_error_string (a);
  return s ? s : "unknown error";
}

static int
archive_code (struct archive *a)
{
  int e = archive_errno (a);
  return e > 0 ? e : EIO;
}

/* Lexically clean name into a relative path with no empty, "." or ".." components ("" is the
   root). Returns -1 when a ".." would climb above the root. Lexical ".." is safe because the
   result is then resolved inside the root anyway: it only decides which in-root path is meant. */
static int
clean_name (const char *name, char **out)
{
  char *buf = xmalloc (strlen (name) + 1);
  size_t len = 0;
  const char *p = name;

  while (*p)
    {
      while (*p == '/')
        p++;
      if (*p == '\0')
        break;
      const char *end = strchrnul (p, '/');
      size_t n = (size_t)(end - p);
      if (n == 1 && p[0] == '.')
        ;
      else if (n == 2 && p[0] == '.' && p[1] == '.')
        {
          if (len == 0)
            {
              free (buf);
              return -1;
            }
          while (len > 0 && buf[len - 1] != '/')
            len--;
          if (len > 0)
            len--;
        }
      else
        {
          if (len > 0)
            buf[len++] = '/';
          memcpy (buf + len, p, n);
          len += n;
        }
      p = end;
    }
  buf[len] = '\0';
  *out = buf;
  return 0;
}

static bool
is_whiteout (const struct stat *st)
{
  return S_ISCHR (st->st_mode) && st->st_rdev == makedev (0, 0);
}

/* Replace the whiteout dfd/name, made by an earlier entry of this layer, with an opaque
   directory: the layer removes the lower layers' name and puts a directory of its own there,
   whose lower contents must stay hidden. Returns the new directory's fd. */
static int
whiteout_to_opaque_dir (int dfd, const char *name)
{
  if (unlinkat (dfd, name, 0) < 0 || mkdirat (dfd, name, 0700) < 0)
    return -1;
  int fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return -1;
  if (fchmod (fd, 0755) < 0 || fsetxattr (fd, XATTR_OPAQUE, "y", 1, 0) < 0)
    {
      int saved = errno;
      close (fd);
      errno = saved;
      return -1;
    }
  return fd;
}

/* Open the directory dir (cleaned; "" is the root) inside rootfd, creating missing components
   with mode 0755 as mkdir -p would: layers often leave out their parents' entries. Below the
   first missing component it walks down one name at a time, entering what it just created with
   O_NOFOLLOW, so that a deep new path costs O(depth) and not O(depth²) (a layer of deep new
   paths would otherwise keep the kernel resolving for hours). Only a symlink met on the way
   makes the path so far be resolved again from the root, as the container will see it. A
   whiteout on the way (".wh.d" then "d/f" in one layer) becomes an opaque directory: the
   whiteout only removes the lower layers' d, and this layer's d/f is kept (OCI layer.md). */
static int
open_dir_in_root (int rootfd, const char *dir)
{
  /* The common case: the directory is there (siblings of one directory). */
  int fd = cimg_openat_in_root (rootfd, *dir ? dir : ".", O_RDONLY | O_DIRECTORY, 0);
  if (fd >= 0 || (errno != ENOENT && errno != ENOTDIR) || *dir == '\0')
    return fd;

  int cur = openat (rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cur < 0)
    return -1;
  const char *p = dir;
  while (*p)
    {
      const char *end = strchrnul (p, '/');
      cleanup_free char *name = xstrndup (p, (size_t)(end - p));
      int next = openat (cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (next < 0 && errno == ENOENT)
        {
          if (mkdirat (cur, name, 0700) < 0)
            next = -1;
          else
            {
              next = openat (cur, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
              /* mkdirat's mode is cut by the process umask; these directories must not depend
                 on it. */
              if (next >= 0 && fchmod (next, 0755) < 0)
                {
                  int saved = errno;
                  close (next);
                  errno = saved;
                  next = -1;
                }
            }
        }
      else if (next < 0 && (errno == ELOOP || errno == ENOTDIR))
        {
          struct stat st;
          if (errno == ENOTDIR && fstatat (cur, name, &st, AT_SYMLINK_NOFOLLOW) == 0
              && is_whiteout (&st))
            next = whiteout_to_opaque_dir (cur, name);
          else
            {
              /* A symlink (or not a directory at all): resolve the path so far from the root,
                 which follows an in-layer link as the container will and refuses the rest
                 with the right errno. */
              cleanup_free char *prefix = xstrndup (dir, (size_t)(end - dir));
              next = cimg_openat_in_root (rootfd, prefix, O_RDONLY | O_DIRECTORY, 0);
            }
        }
      int saved = errno;
      close (cur);
      errno = saved;
      if (next < 0)
        return -1;
      cur = next;
      p = *end ? end + 1 : end;
    }
  return cur;
}

/* The fd of the directory dir (cleaned; "" is the root), borrowed from the context: it stays
   open until the next call. Consecutive entries of one directory (the tar's order) share one
   resolution. Reusing it is sound while the entries in between only add names: a resolution
   that succeeded looked up existing names only, and a new name changes none of them. Anything
   that removes or replaces a name clears pvalid, and the next entry resolves from the root
   again. The fd is of a directory inside the root whatever happens to its path later: nothing
   here moves a directory. */
static int
parent_fd (struct apply_ctx *c, const char *dir)
{
  if (c->pvalid && strcmp (c->pdir, dir) == 0)
    return c->pdfd;
  int fd = open_dir_in_root (c->rootfd, dir);
  if (fd < 0)
    return -1;
  struct stat st;
  if (fstat (fd, &st) < 0)
    {
      int saved = errno;
      close (fd);
      errno = saved;
      return -1;
    }
  if (c->pdfd >= 0)
    close (c->pdfd);
  free (c->pdir);
  c->pdir = xstrdup (dir);
  c->pdfd = fd;
  c->pgid = (st.st_mode & S_ISGID) ? st.st_gid : c->egid;
  c->pvalid = true;
  return fd;
}

/* Make fd, the directory dir just created or entered, the cached parent (it takes fd). */
static void
set_parent (struct apply_ctx *c, const char *dir, int fd, const struct stat *st)
{
  if (c->pdfd >= 0)
    close (c->pdfd);
  free (c->pdir);
  c->pdir = xstrdup (dir);
  c->pdfd = fd;
  c->pgid = (st->st_mode & S_ISGID) ? st->st_gid : c->egid;
  c->pvalid = true;
}

/* Remove whatever is at dfd/base so that something of another kind can take its place. st, when
   given, is what is there (already looked at by the caller). */
static int
remove_existing (struct apply_ctx *c, int dfd, const char *base, const struct stat *st,
                 cimg_error_t *err)
{
  struct stat buf;
  if (st == NULL)
    {
      if (fstatat (dfd, base, &buf, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : cimg_error_sys (err, "stat existing entry");
      st = &buf;
    }
  c->pvalid = false;
  if (S_ISDIR (st->st_mode))
    return cimg_rm_rf_at (dfd, base, err);
  if (unlinkat (dfd, base, 0) < 0 && errno != ENOENT)
    return cimg_error_sys (err, "remove existing entry");
  return 0;
}

static void
entry_times (struct archive_entry *e, struct timespec ts[2])
{
  if (archive_entry_mtime_is_set (e))
    {
      ts[1].tv_sec = archive_entry_mtime (e);
      ts[1].tv_nsec = archive_entry_mtime_nsec (e);
    }
  else
    {
      ts[1].tv_sec = 0;
      ts[1].tv_nsec = UTIME_OMIT;
    }
  if (archive_entry_atime_is_set (e))
    {
      ts[0].tv_sec = archive_entry_atime (e);
      ts[0].tv_nsec = archive_entry_atime_nsec (e);
    }
  else
    ts[0] = ts[1];
  for (int i = 0; i < 2; i++)
    if (ts[i].tv_nsec != UTIME_OMIT && (ts[i].tv_nsec < 0 || ts[i].tv_nsec > 999999999))
      ts[i].tv_nsec = 0;
}

static int
entry_owner (struct archive_entry *e, uid_t *uid, gid_t *gid, cimg_error_t *err)
{
  int64_t u = archive_entry_uid (e), g = archive_entry_gid (e);
  /* (uid_t) -1 means "unchanged" to chown: never let a tar ask for it. */
  if (u < 0 || u >= (int64_t)UINT32_MAX || g < 0 || g >= (int64_t)UINT32_MAX)
    return cimg_error_set (err, EINVAL, "invalid owner %lld:%lld", (long long)u, (long long)g);
  *uid = (uid_t)u;
  *gid = (gid_t)g;
  return 0;
}

/* Overlay's own metadata (opaque, redirect, origin, …) must come only from whiteouts we
   translate, never straight from a tar: it would change what the merged view shows. user.overlay.*
   is the same metadata on mounts with the userxattr option. */
static bool
skip_xattr (const char *name)
{
  return cimg_str_has_prefix (name, "trusted.overlay.")
         || cimg_str_has_prefix (name, "user.overlay.");
}

/* Set the entry's xattrs on fd, or (fd < 0) on path without following it. ENOTSUP and EPERM are
   ignored as Docker does: not every filesystem stores every namespace (user.* is refused on
   symlinks and device nodes). */
static int
apply_xattrs (struct archive_entry *e, int fd, const char *path, cimg_error_t *err)
{
  const char *name;
  const void *value;
  size_t size;

  archive_entry_xattr_reset (e);
  while (archive_entry_xattr_next (e, &name, &value, &size) == ARCHIVE_OK)
    {
      if (name == NULL || *name == '\0' || skip_xattr (name))
        continue;
      int r
          = fd >= 0 ? fsetxattr (fd, name, value, size, 0) : lsetxattr (path, name, value, size, 0);
      if (r < 0 && errno != ENOTSUP && errno != EPERM)
        return cimg_error_sys (err, "set xattr %s", name);
    }
  return 0;
}

/* Ownership, then mode (chown clears setuid/setgid), then xattrs (chown also drops
   security.capability), all through fd. Times are set by the callers: a file's when it is
   closed, a directory's at the end. have_uid, have_gid and have_mode are what fd has now, when
   known ((uid_t)-1, (gid_t)-1 and -1 when not): the chown and chmod that would change nothing
   are left out (two syscalls of a handful per file or directory). */
static int
apply_meta_fd (struct archive_entry *e, int fd, uid_t have_uid, gid_t have_gid, int have_mode,
               cimg_error_t *err)
{
  uid_t uid = 0;
  gid_t gid = 0;
  if (entry_owner (e, &uid, &gid, err) < 0)
    return -1;
  mode_t perm = archive_entry_perm (e) & 07777;
  /* entry_owner never gives (uid_t)-1, so an unknown owner is never taken as this one. */
  bool owned = uid == have_uid && gid == have_gid;
  if (!owned && fchown (fd, uid, gid) < 0)
    return cimg_error_sys (err, "chown");
  if ((!owned || have_mode != (int)perm) && fchmod (fd, perm) < 0)
    return cimg_error_sys (err, "chmod");
  if (apply_xattrs (e, fd, NULL, err) < 0)
    return -1;
  return 0;
}

/* The same for entries that cannot be opened for I/O (symlinks, device nodes, fifos): all by name
   in dfd without following, except chmod, which goes through an O_PATH fd's /proc link because
   fchmodat cannot refuse to follow on every kernel. */
static int
apply_meta_path (struct archive_entry *e, int dfd, const char *base, bool is_link,
                 cimg_error_t *err)
{
  uid_t uid = 0;
  gid_t gid = 0;
  char proc[64];

  if (entry_owner (e, &uid, &gid, err) < 0)
    return -1;
  if (fchownat (dfd, base, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
    return cimg_error_sys (err, "chown");
  if (!is_link)
    {
      cleanup_close int pfd = openat (dfd, base, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (pfd < 0)
        return cimg_error_sys (err, "open");
      snprintf (proc, sizeof proc, "/proc/self/fd/%d", pfd);
      if (fchmodat (AT_FDCWD, proc, archive_entry_perm (e) & 07777, 0) < 0)
        return cimg_error_sys (err, "chmod");
    }
  /* lsetxattr does not follow base; the /proc link resolves to dfd itself. */
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", dfd);
  cleanup_free char *path = xasprintf ("%s/%s", proc, base);
  if (apply_xattrs (e, -1, path, err) < 0)
    return -1;
  struct timespec ts[2];
  entry_times (e, ts);
  if (utimensat (dfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return cimg_error_sys (err, "set times");
  return 0;
}

static int
pwrite_all (int fd, const char *buf, size_t len, off_t off)
{
  while (len > 0)
    {
      ssize_t n = pwrite (fd, buf, len, off);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      buf += n;
      len -= (size_t)n;
      off += n;
    }
  return 0;
}

static int
too_big (struct apply_ctx *c, cimg_error_t *err)
{
  return cimg_error_set (err, EFBIG, "layer exceeds the size limit of %lld bytes",
                         (long long)c->max_size);
}

static int
write_content (struct apply_ctx *c, struct archive_entry *e, int fd, cimg_error_t *err)
{
  int64_t end = 0;
  int64_t size = archive_entry_size_is_set (e) ? archive_entry_size (e) : 0;
  if (size < 0)
    return cimg_error_set (err, EINVAL, "invalid size %lld", (long long)size);
  /* A sparse entry costs no tar bytes for its holes, but a file that size is what every later
     reader (pack, save, a container) sees. */
  if (c->max_size > 0 && size > c->max_size - c->logical)
    return too_big (c, err);
  for (;;)
    {
      const void *buf;
      size_t len;
      la_int64_t off;
      int r = archive_read_data_block (c->a, &buf, &len, &off);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        return cimg_error_set (err, archive_code (c->a), "read content: %s", archive_msg (c->a));
      if (off < 0 || off > INT64_MAX - (int64_t)len)
        return cimg_error_set (err, EINVAL, "invalid content offset %lld", (long long)off);
      if (c->max_size > 0
          && ((int64_t)len > c->max_size - c->size
              || off + (int64_t)len > c->max_size - c->logical))
        return too_big (c, err);
      /* Sparse entries come as blocks at increasing offsets; pwrite leaves the holes. */
      if (len > 0 && pwrite_all (fd, buf, len, off) < 0)
        return cimg_error_sys (err, "write");
      c->size += (int64_t)len;
      if (off + (int64_t)len > end)
        end = off + (int64_t)len;
    }
  /* A sparse file may end in a hole that no data block reaches. */
  if (size > end && ftruncate (fd, size) < 0)
    return cimg_error_sys (err, "truncate");
  c->logical += size > end ? size : end;
  return 0;
}

static void
remember_dir (struct apply_ctx *c, const char *path, struct archive_entry *e)
{
  if (c->n_dirs == c->cap_dirs)
    {
      c->cap_dirs = c->cap_dirs ? c->cap_dirs * 2 : 64;
      c->dirs = xrealloc (c->dirs, c->cap_dirs * sizeof *c->dirs);
    }
  struct dir_time *d = &c->dirs[c->n_dirs++];
  d->path = xstrdup (path);
  entry_times (e, d->ts);
}

/* Whiteouts apply to the lower layers only (OCI layer.md): what this layer itself has, before or
   after the whiteout, is kept. Everything under the root is this layer's (each layer is unpacked
   into an empty directory), so a whiteout of a name that is there changes nothing of it, except
   that a directory becomes opaque: the lower layers' directory of that name is removed, and its
   contents must not show through this layer's. An opaque marker likewise hides only the lower
   layers' contents of its directory, never this layer's. */
static int
apply_whiteout (struct apply_ctx *c, struct archive_entry *e, const char *dir, const char *base,
                cimg_error_t *err)
{
  if (strcmp (base, WH_OPAQUE) == 0)
    {
      int dfd = parent_fd (c, dir);
      if (dfd < 0)
        return cimg_error_sys (err, "open directory");
      if (fsetxattr (dfd, XATTR_OPAQUE, "y", 1, 0) < 0)
        return cimg_error_sys (err, "mark directory opaque");
      return 0;
    }
  const char *victim = base + strlen (WH_PREFIX);
  if (*victim == '\0' || strcmp (victim, ".") == 0 || strcmp (victim, "..") == 0)
    return cimg_error_set (err, EINVAL, "invalid whiteout");

  int dfd = parent_fd (c, dir);
  if (dfd < 0)
    return cimg_error_sys (err, "open parent directory");
  struct stat st;
  if (fstatat (dfd, victim, &st, AT_SYMLINK_NOFOLLOW) == 0)
    {
      if (!S_ISDIR (st.st_mode))
        return 0;
      cleanup_close int fd = openat (dfd, victim, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        return cimg_error_sys (err, "open directory");
      if (fsetxattr (fd, XATTR_OPAQUE, "y", 1, 0) < 0)
        return cimg_error_sys (err, "mark directory opaque");
      return 0;
    }
  if (errno != ENOENT)
    return cimg_error_sys (err, "stat existing entry");
  if (mknodat (dfd, victim, S_IFCHR | 0, makedev (0, 0)) < 0)
    return cimg_error_sys (err, "create whiteout");
  /* The entry's time, so that packing the result again gives the same bytes. */
  struct timespec ts[2];
  entry_times (e, ts);
  if (utimensat (dfd, victim, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return cimg_error_sys (err, "set times");
  return 0;
}

static int
apply_hardlink (struct apply_ctx *c, int dfd, const char *base, const char *target_name,
                cimg_error_t *err)
{
  cleanup_free char *target = NULL;
  if (clean_name (target_name, &target) < 0 || *target == '\0')
    return cimg_error_set (err, EINVAL, "hardlink target \"%s\" leaves the layer", target_name);

  cleanup_close int tfd = cimg_openat_in_root (c->rootfd, target, O_PATH | O_NOFOLLOW, 0);
  if (tfd < 0)
    {
      if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
        return cimg_error_set (err, ENOENT, "hardlink target \"%s\" is not in the layer",
                               target_name);
      return cimg_error_sys (err, "open hardlink target \"%s\"", target_name);
    }
  struct stat tst, st;
  if (fstat (tfd, &tst) < 0)
    return cimg_error_sys (err, "stat hardlink target \"%s\"", target_name);
  if (S_ISDIR (tst.st_mode))
    return cimg_error_set (err, EPERM, "hardlink target \"%s\" is a directory", target_name);

  /* Created first, the name looked at only when it is taken: in a fresh layer it never is. */
  for (int attempt = 0;; attempt++)
    {
      int r = linkat (tfd, "", dfd, base, AT_EMPTY_PATH);
      /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (before Linux 6.10); the /proc link of the
         same fd does not, and AT_SYMLINK_FOLLOW on it reaches the inode we hold, even a
         symlink. */
      if (r < 0 && (errno == ENOENT || errno == EPERM))
        {
          char proc[64];
          snprintf (proc, sizeof proc, "/proc/self/fd/%d", tfd);
          r = linkat (AT_FDCWD, proc, dfd, base, AT_SYMLINK_FOLLOW);
        }
      if (r == 0)
        return 0;
      if (errno != EEXIST || attempt > 0)
        return cimg_error_sys (err, "create hardlink to \"%s\"", target_name);
      if (fstatat (dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return cimg_error_sys (err, "stat existing entry");
      if (st.st_dev == tst.st_dev && st.st_ino == tst.st_ino)
        return 0;
      if (remove_existing (c, dfd, base, &st, err) < 0)
        return -1;
    }
}

static int
apply_root (struct apply_ctx *c, struct archive_entry *e, cimg_error_t *err)
{
  if (archive_entry_filetype (e) != AE_IFDIR || archive_entry_hardlink (e) != NULL)
    return cimg_error_set (err, EINVAL, "the layer root can only be a directory");
  cleanup_close int fd = openat (c->rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "open the layer root");
  /* The root's group and setgid bit may change, which the cached parent's pgid may not miss. */
  c->pvalid = false;
  if (apply_meta_fd (e, fd, (uid_t)-1, (gid_t)-1, -1, err) < 0)
    return -1;
  remember_dir (c, "", e);
  return 0;
}

/* Create a regular file and write its content. Created first and the name looked at only when
   it is taken (never in a fresh layer), with its final mode when the umask lets it, so that a
   plain file costs open, write, futimens and close. */
static int
apply_regular (struct apply_ctx *c, struct archive_entry *e, int dfd, const char *base,
               cimg_error_t *err)
{
  mode_t perm = archive_entry_perm (e) & 07777;
  /* Content before ownership and mode: writing would clear setuid and capabilities, so those
     files start private and get their mode afterwards. */
  bool exact = (perm & 07000) == 0 && (perm & c->umask) == 0;
  mode_t mode = exact ? perm : 0600;
  cleanup_close int fd = -1;
  for (int attempt = 0;; attempt++)
    {
      fd = openat (dfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
      if (fd >= 0)
        break;
      if (errno != EEXIST || attempt > 0)
        return cimg_error_sys (err, "create file");
      if (remove_existing (c, dfd, base, NULL, err) < 0)
        return -1;
    }
  if (write_content (c, e, fd, err) < 0)
    return -1;
  if (apply_meta_fd (e, fd, c->euid, c->pgid, exact ? (int)perm : -1, err) < 0)
    return -1;
  struct timespec ts[2];
  entry_times (e, ts);
  return date_and_close (c, steal_fd (&fd), ts, archive_entry_pathname (e), err);
}

/* Create a directory, or merge into the one there. A new one is made with its final mode when
   the umask lets it, and its owner and mode are changed only when they differ from the tar's. */
static int
apply_dir (struct apply_ctx *c, struct archive_entry *e, int dfd, const char *path,
           const char *base, cimg_error_t *err)
{
  uid_t uid = 0;
  gid_t gid = 0;
  if (entry_owner (e, &uid, &gid, err) < 0)
    return -1;
  mode_t perm = archive_entry_perm (e) & 07777;
  bool exact = (perm & 07000) == 0 && (perm & c->umask) == 0;
  bool opaque = false;
  if (mkdirat (dfd, base, exact ? perm : 0700) < 0)
    {
      if (errno != EEXIST)
        return cimg_error_sys (err, "create directory");
      struct stat st;
      if (fstatat (dfd, base, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return cimg_error_sys (err, "stat existing entry");
      /* A directory over a directory merges: what is inside stays, the metadata changes. */
      if (!S_ISDIR (st.st_mode))
        {
          /* Over this layer's own whiteout: the lower layers' directory is gone, so this one
             hides what they had (OCI layer.md: a whiteout applies to lower layers only). */
          opaque = is_whiteout (&st);
          if (remove_existing (c, dfd, base, &st, err) < 0)
            return -1;
          if (mkdirat (dfd, base, 0700) < 0)
            return cimg_error_sys (err, "create directory");
        }
    }
  cleanup_close int fd = openat (dfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "open directory");
  /* What it has, whether made here (a setgid parent passes on its group and setgid bit) or
     there before. */
  struct stat st;
  if (fstat (fd, &st) < 0)
    return cimg_error_sys (err, "stat directory");
  if (apply_meta_fd (e, fd, st.st_uid, st.st_gid, (int)(st.st_mode & 07777), err) < 0)
    return -1;
  if (opaque && fsetxattr (fd, XATTR_OPAQUE, "y", 1, 0) < 0)
    return cimg_error_sys (err, "mark directory opaque");
  remember_dir (c, path, e);
  /* Its entries usually come next: it is their parent, already resolved (base was entered
     without following anything, in the directory path's parent), unless a name was removed
     on the way. */
  if (c->pvalid)
    {
      st.st_uid = uid;
      st.st_gid = gid;
      st.st_mode = S_IFDIR | perm;
      set_parent (c, path, steal_fd (&fd), &st);
    }
  return 0;
}

static int
apply_entry (struct apply_ctx *c, struct archive_entry *e, const char *name, cimg_error_t *err)
{
  cleanup_free char *path = NULL;
  if (clean_name (name, &path) < 0)
    return cimg_error_set (err, EINVAL, "path leaves the layer");
  char *slash = strrchr (path, '/');
  const char *base = path;
  const char *dir = "";
  if (slash)
    {
      *slash = '\0';
      dir = path;
      base = slash + 1;
    }

  if (cimg_str_has_prefix (base, WH_PREFIX))
    {
      /* Other ".wh..wh." names are aufs bookkeeping (plinks, …) with no overlay meaning. */
      if (strcmp (base, WH_OPAQUE) != 0 && cimg_str_has_prefix (base, WH_META_PREFIX))
        return 0;
      if (apply_whiteout (c, e, dir, base, err) < 0)
        return -1;
      c->entries++;
      return 0;
    }
  if (*path == '\0')
    {
      if (apply_root (c, e, err) < 0)
        return -1;
      c->entries++;
      return 0;
    }

  int dfd = parent_fd (c, dir);
  if (dfd < 0)
    return cimg_error_sys (err, "open parent directory");

  const char *link = archive_entry_hardlink (e);
  if (link != NULL)
    {
      if (apply_hardlink (c, dfd, base, link, err) < 0)
        return -1;
      c->entries++;
      return 0;
    }

  mode_t type = archive_entry_filetype (e);
  switch (type)
    {
    case AE_IFDIR:
      {
        /* The whole path again (dir and base were cut out of it). */
        if (slash)
          *slash = '/';
        if (apply_dir (c, e, dfd, path, base, err) < 0)
          return -1;
        break;
      }
    case AE_IFREG:
      if (apply_regular (c, e, dfd, base, err) < 0)
        return -1;
      break;
    case AE_IFLNK:
      {
        const char *target = archive_entry_symlink (e);
        if (target == NULL || *target == '\0')
          return cimg_error_set (err, EINVAL, "symlink without a target");
        if (symlinkat (target, dfd, base) < 0)
          {
            if (errno != EEXIST)
              return cimg_error_sys (err, "create symlink");
            if (remove_existing (c, dfd, base, NULL, err) < 0)
              return -1;
            if (symlinkat (target, dfd, base) < 0)
              return cimg_error_sys (err, "create symlink");
          }
        if (apply_meta_path (e, dfd, base, true, err) < 0)
          return -1;
        break;
      }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO:
      {
        dev_t rdev = 0;
        if (type != AE_IFIFO)
          {
            /* The kernel's dev_t has a 12-bit major and a 20-bit minor: anything wider would
               be cut to another device than the one the layer names. */
            unsigned long maj = archive_entry_rdevmajor (e), min = archive_entry_rdevminor (e);
            if (maj >= (1UL << 12) || min >= (1UL << 20))
              return cimg_error_set (err, ERANGE, "device number %lu:%lu out of range", maj, min);
            rdev = makedev (maj, min);
          }
        if (mknodat (dfd, base, type | 0600, rdev) < 0)
          {
            if (errno != EEXIST)
              return cimg_error_sys (err, "create %s", type == AE_IFIFO ? "fifo" : "device node");
            if (remove_existing (c, dfd, base, NULL, err) < 0)
              return -1;
            if (mknodat (dfd, base, type | 0600, rdev) < 0)
              return cimg_error_sys (err, "create %s", type == AE_IFIFO ? "fifo" : "device node");
          }
        if (apply_meta_path (e, dfd, base, false, err) < 0)
          return -1;
        break;
      }
    default:
      return cimg_error_set (err, EINVAL, "unsupported file type 0%o", (unsigned)type);
    }
  c->entries++;
  return 0;
}

/* Directories' times go last: creating anything inside a directory changes its mtime. */
static int
apply_dir_times (struct apply_ctx *c, cimg_error_t *err)
{
  for (size_t i = 0; i < c->n_dirs; i++)
    {
      struct dir_time *d = &c->dirs[i];
      cleanup_close int fd = cimg_openat_in_root (c->rootfd, *d->path ? d->path : ".",
                                                  O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
      if (fd < 0)
        {
          /* A later entry removed or replaced it: nothing left to date. */
          if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP)
            continue;
          return cimg_error_sys (err, "directory \"%s\": open", d->path);
        }
      if (futimens (fd, d->ts) < 0)
        return cimg_error_sys (err, "directory \"%s\": set times", d->path);
    }
  return 0;
}

/* umask(2) can only be read by changing it, which would race other threads' file creation. */
static mode_t
process_umask (void)
{
  mode_t mask = 0777;
  FILE *f = fopen ("/proc/self/status", "re");
  if (f == NULL)
    return mask;
  char line[256];
  unsigned int v;
  while (fgets (line, sizeof line, f))
    if (sscanf (line, "Umask: %o", &v) == 1)
      {
        mask = (mode_t)v & 0777;
        break;
      }
  fclose (f);
  return mask;
}

int
cimg_layer_apply (struct archive *a, int rootfd, const struct cimg_apply_opts *opts,
                  struct cimg_apply_stats *stats, cimg_error_t *err)
{
  struct apply_ctx c = {
    .a = a,
    .rootfd = rootfd,
    .max_size = opts ? opts->max_size : 0,
    .pdfd = -1,
    .euid = geteuid (),
    .egid = getegid (),
    .umask = process_umask (),
  };
  int ret = -1;
  closer_start (&c);

  for (;;)
    {
      struct archive_entry *e;
      int r = archive_read_next_header (a, &e);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        {
          cimg_error_set (err, archive_code (a), "read layer: %s", archive_msg (a));
          goto out;
        }
      const char *name = archive_entry_pathname (e);
      if (name == NULL || *name == '\0')
        {
          cimg_error_set (err, EINVAL, "entry %lld: no name", (long long)c.entries + 1);
          goto out;
        }
      if (apply_entry (&c, e, name, err) < 0)
        {
          cimg_error_wrap (err, "entry \"%s\"", name);
          goto out;
        }
    }
  if (closer_finish (&c, false, err) < 0)
    goto out;
  if (apply_dir_times (&c, err) < 0)
    goto out;
  ret = 0;

out:
  closer_finish (&c, true, err);
  if (stats)
    {
      stats->size = c.size;
      stats->entries = c.entries;
    }
  for (size_t i = 0; i < c.n_dirs; i++)
    free (c.dirs[i].path);
  free (c.dirs);
  if (c.pdfd >= 0)
    close (c.pdfd);
  free (c.pdir);
  return ret;
}

struct archive *
cimg_archive_read_fd (int fd, cimg_error_t *err)
{
  struct archive *a = archive_read_new ();
  if (a == NULL)
    abort ();
  archive_read_support_filter_all (a);
  /* The tar reader covers ustar, pax, GNU and v7 variants; nothing else is a layer. */
  archive_read_support_format_tar (a);
  if (archive_read_open_fd (a, fd, 64 * 1024) != ARCHIVE_OK)
    {
      cimg_error_set (err, archive_code (a), "open archive: %s", archive_msg (a));
      archive_read_free (a);
      return NULL;
    }
  return a;
}

void
cimg_archive_read_freep (struct archive **a)
{
  if (*a != NULL)
    archive_read_free (*a);
  *a = NULL;
}
