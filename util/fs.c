#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <linux/openat2.h>

#ifndef SYS_openat2
#define SYS_openat2 437
#endif

#define MAX_SYMLINKS 40

/* Set once openat2 proves missing (ENOSYS, or EPERM from a seccomp filter that predates it). */
static int openat2_missing;

static int
walk_in_root (int rootfd, const char *path, int flags, mode_t mode)
{
  /* The userspace equivalent of RESOLVE_IN_ROOT: every component is opened with O_NOFOLLOW
     relative to the directory reached so far, symlinks are expanded by hand with absolute
     targets restarting at rootfd, and ".." never climbs above rootfd. */
  size_t cap = 16, depth = 0;
  int *stack = xmalloc (cap * sizeof (int));
  int nlinks = 0, ret = -1, saved;
  cleanup_free char *rest = xstrdup (path);

  stack[0] = -1; /* depth 0 is rootfd itself, owned by the caller */
  for (;;)
    {
      char *p = rest;
      while (*p == '/')
        p++;
      if (*p == '\0')
        {
          /* The path ended on a directory (or was empty): reopen it with the caller's flags. */
          int cur = depth ? stack[depth] : rootfd;
          ret = openat (cur, ".", flags | O_CLOEXEC, mode);
          goto out;
        }
      char *slash = strchr (p, '/');
      bool last = true;
      if (slash)
        {
          char *q = slash;
          while (*q == '/')
            q++;
          last = *q == '\0';
          *slash = '\0';
        }
      char *comp = p;
      char *next = slash ? slash + 1 : p + strlen (p);
      int cur = depth ? stack[depth] : rootfd;

      if (strcmp (comp, ".") == 0 || strcmp (comp, "..") == 0)
        {
          if (comp[1] == '.' && depth > 0)
            close (stack[depth--]);
          memmove (rest, next, strlen (next) + 1);
          continue;
        }
      if (last && (flags & O_NOFOLLOW))
        {
          ret = openat (cur, comp, flags | O_CLOEXEC, mode);
          goto out;
        }
      int fd = openat (cur, comp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0)
        {
          if (last && errno == ENOENT && (flags & O_CREAT))
            ret = openat (cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
          goto out;
        }
      struct stat st;
      if (fstat (fd, &st) < 0)
        {
          saved = errno;
          close (fd);
          errno = saved;
          goto out;
        }
      if (S_ISLNK (st.st_mode))
        {
          char target[PATH_MAX];
          ssize_t n = readlinkat (fd, "", target, sizeof target - 1);
          close (fd);
          if (n < 0)
            goto out;
          target[n] = '\0';
          if (++nlinks > MAX_SYMLINKS)
            {
              errno = ELOOP;
              goto out;
            }
          if (target[0] == '/')
            while (depth > 0)
              close (stack[depth--]);
          char *nrest = xasprintf ("%s/%s", target, next);
          free (rest);
          rest = nrest;
          continue;
        }
      if (last)
        {
          close (fd);
          ret = openat (cur, comp, flags | O_NOFOLLOW | O_CLOEXEC, mode);
          goto out;
        }
      if (!S_ISDIR (st.st_mode))
        {
          close (fd);
          errno = ENOTDIR;
          goto out;
        }
      if (++depth >= cap)
        {
          cap *= 2;
          stack = xrealloc (stack, cap * sizeof (int));
        }
      stack[depth] = fd;
      memmove (rest, next, strlen (next) + 1);
    }
out:
  saved = errno;
  while (depth > 0)
    close (stack[depth--]);
  free (stack);
  errno = saved;
  return ret;
}

int
cimg_openat_in_root (int dirfd, const char *path, int flags, mode_t mode)
{
  if (!__atomic_load_n (&openat2_missing, __ATOMIC_RELAXED))
    {
      struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0,
        .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
      };
      for (int tries = 0; tries < 16; tries++)
        {
          long r = syscall (SYS_openat2, dirfd, path, &how, sizeof how);
          if (r >= 0)
            return (int)r;
          /* EAGAIN: a concurrent rename raced the lookup; the kernel asks us to retry. */
          if (errno == EAGAIN)
            continue;
          if (errno == ENOSYS || errno == EPERM)
            break;
          return -1;
        }
      if (errno != EAGAIN)
        __atomic_store_n (&openat2_missing, 1, __ATOMIC_RELAXED);
    }
  return walk_in_root (dirfd, path, flags, mode);
}

void
cimg_openat2_disable (void)
{
  __atomic_store_n (&openat2_missing, 1, __ATOMIC_RELAXED);
}

int
cimg_open_parent_in_root (int dirfd, const char *path, char **base, char **to_free)
{
  char *copy = xstrdup (path);
  size_t n = strlen (copy);
  while (n > 0 && copy[n - 1] == '/')
    copy[--n] = '\0';
  char *slash = strrchr (copy, '/');
  const char *parent = ".";
  if (slash)
    {
      *slash = '\0';
      *base = slash + 1;
      parent = copy[0] ? copy : "/";
    }
  else
    *base = copy;
  if (**base == '\0')
    {
      free (copy);
      *base = NULL;
      *to_free = NULL;
      errno = EINVAL;
      return -1;
    }
  int fd = cimg_openat_in_root (dirfd, parent, O_PATH | O_DIRECTORY, 0);
  if (fd < 0)
    {
      int saved = errno;
      free (copy);
      *base = NULL;
      *to_free = NULL;
      errno = saved;
      return -1;
    }
  *to_free = copy;
  return fd;
}

int
cimg_mkdir_p_at (int dirfd, const char *path, mode_t mode, cimg_error_t *err)
{
  cleanup_free char *p = xstrdup (path);
  for (char *s = p + 1; *s; s++)
    {
      if (*s != '/')
        continue;
      *s = '\0';
      if (mkdirat (dirfd, p, mode) < 0 && errno != EEXIST)
        return cimg_error_sys (err, "mkdir %s", p);
      *s = '/';
    }
  if (mkdirat (dirfd, p, mode) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "mkdir %s", p);
  return 0;
}

static int
rm_rf_fd (int dirfd, const char *name, dev_t dev, cimg_error_t *err)
{
  struct stat st;
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : cimg_error_sys (err, "remove %s", name);
  if (!S_ISDIR (st.st_mode))
    {
      if (unlinkat (dirfd, name, 0) < 0 && errno != ENOENT)
        return cimg_error_sys (err, "remove %s", name);
      return 0;
    }
  if (dev != 0 && st.st_dev != dev)
    {
      errno = EBUSY;
      return cimg_error_sys (err, "remove %s: a filesystem is mounted there", name);
    }
  int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : cimg_error_sys (err, "remove %s", name);
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return cimg_error_sys (err, "remove %s", name);
    }
  int ret = 0;
  struct dirent *e;
  while ((e = readdir (d)))
    {
      if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
        continue;
      if (rm_rf_fd (fd, e->d_name, st.st_dev, err) < 0)
        {
          ret = -1;
          break;
        }
    }
  closedir (d);
  if (ret < 0)
    return cimg_error_wrap (err, "%s", name);
  if (unlinkat (dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
    return cimg_error_sys (err, "remove %s", name);
  return 0;
}

int
cimg_rm_rf_at (int dirfd, const char *name, cimg_error_t *err)
{
  return rm_rf_fd (dirfd, name, 0, err);
}

int
cimg_write_all (int fd, const void *buf, size_t len)
{
  const char *p = buf;
  while (len > 0)
    {
      ssize_t n = write (fd, p, len);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return -1;
        }
      p += n;
      len -= (size_t)n;
    }
  return 0;
}

int
cimg_fsync_dir_at (int dirfd, const char *name)
{
  int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return -1;
  int r = fsync (fd);
  int saved = errno;
  close (fd);
  errno = saved;
  return r;
}

int
cimg_write_file_atomic_at (int dirfd, const char *name, const void *data, size_t len, mode_t mode,
                           cimg_error_t *err)
{
  char hex[65];
  cimg_random_hex64 (hex);
  cleanup_free char *tmp = xasprintf ("%s.tmp-%.12s", name, hex);
  cleanup_close int fd
      = openat (dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0)
    return cimg_error_sys (err, "write %s", name);
  if (cimg_write_all (fd, data, len) < 0 || fsync (fd) < 0)
    {
      cimg_error_sys (err, "write %s", name);
      unlinkat (dirfd, tmp, 0);
      return -1;
    }
  if (renameat (dirfd, tmp, dirfd, name) < 0)
    {
      cimg_error_sys (err, "rename %s", name);
      unlinkat (dirfd, tmp, 0);
      return -1;
    }
  /* The rename is durable only once the directory that holds it is. */
  cleanup_free char *dir = xstrdup (name);
  char *slash = strrchr (dir, '/');
  if (slash)
    *slash = '\0';
  if (cimg_fsync_dir_at (dirfd, slash ? dir : ".") < 0)
    return cimg_error_sys (err, "fsync directory of %s", name);
  return 0;
}

int
cimg_read_file_at (int dirfd, const char *name, size_t max, char **out, size_t *len,
                   cimg_error_t *err)
{
  cleanup_close int fd = openat (dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "open %s", name);
  struct stat st;
  if (fstat (fd, &st) < 0)
    return cimg_error_sys (err, "stat %s", name);
  if (!S_ISREG (st.st_mode))
    return cimg_error_set (err, EINVAL, "%s: not a regular file", name);
  if ((uint64_t)st.st_size > max)
    return cimg_error_set (err, EFBIG, "%s: %lld bytes, over the limit of %zu", name,
                           (long long)st.st_size, max);
  size_t cap = (size_t)st.st_size + 1, n = 0;
  cleanup_free char *buf = xmalloc (cap);
  for (;;)
    {
      if (n + 1 >= cap)
        {
          if (cap > max + 1)
            return cimg_error_set (err, EFBIG, "%s: over the limit of %zu bytes", name, max);
          cap *= 2;
          buf = xrealloc (buf, cap);
        }
      ssize_t r = read (fd, buf + n, cap - n - 1);
      if (r < 0)
        {
          if (errno == EINTR)
            continue;
          return cimg_error_sys (err, "read %s", name);
        }
      if (r == 0)
        break;
      n += (size_t)r;
    }
  if (n > max)
    return cimg_error_set (err, EFBIG, "%s: over the limit of %zu bytes", name, max);
  buf[n] = '\0';
  if (len)
    *len = n;
  *out = steal_pointer (&buf);
  return 0;
}

static int64_t
du_fd (int dirfd, const char *name)
{
  struct stat st;
  if (fstatat (dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return 0;
  if (!S_ISDIR (st.st_mode))
    return S_ISREG (st.st_mode) || S_ISLNK (st.st_mode) ? st.st_size : 0;
  int fd = openat (dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return 0;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return 0;
    }
  int64_t total = 0;
  struct dirent *e;
  while ((e = readdir (d)))
    if (strcmp (e->d_name, ".") != 0 && strcmp (e->d_name, "..") != 0)
      total += du_fd (fd, e->d_name);
  closedir (d);
  return total;
}

int64_t
cimg_disk_usage_at (int dirfd, const char *name)
{
  return du_fd (dirfd, name);
}
