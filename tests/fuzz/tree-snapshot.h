/* A text snapshot of a directory tree, to prove that an extraction changed nothing outside its
   root: compare the snapshot of a canary tree taken before with the one taken after. Header-only
   so that the unit tests and the fuzz harnesses share it. */
#ifndef CIMG_TREE_SNAPSHOT_H
#define CIMG_TREE_SNAPSHOT_H

#include "util/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

struct snap_buf
{
  char *data;
  size_t len, cap;
};

static void
snap_add (struct snap_buf *b, const char *s)
{
  size_t n = strlen (s);
  if (b->len + n + 1 > b->cap)
    {
      b->cap = (b->len + n + 1) * 2 + 256;
      b->data = xrealloc (b->data, b->cap);
    }
  memcpy (b->data + b->len, s, n + 1);
  b->len += n;
}

static int
snap_cmp (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

/* One line for dfd/name: every field an attack could change (type, mode, owner, size, links,
   mtime, device, link target, content digest, xattr names and values). */
static void
snap_entry (struct snap_buf *b, int dfd, const char *name, const char *rel, struct stat *st)
{
  char line[512];
  snprintf (line, sizeof line,
            "%s mode=0%o uid=%u gid=%u size=%lld nlink=%lu mtime=%lld.%09ld rdev=%u:%u", rel,
            (unsigned)st->st_mode, (unsigned)st->st_uid, (unsigned)st->st_gid,
            (long long)st->st_size, (unsigned long)st->st_nlink, (long long)st->st_mtim.tv_sec,
            st->st_mtim.tv_nsec, major (st->st_rdev), minor (st->st_rdev));
  snap_add (b, line);
  if (S_ISLNK (st->st_mode))
    {
      char target[4097];
      ssize_t n = readlinkat (dfd, name, target, sizeof target - 1);
      target[n < 0 ? 0 : n] = '\0';
      snap_add (b, " -> ");
      snap_add (b, target);
    }
  else if (S_ISREG (st->st_mode))
    {
      int fd = openat (dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      struct cimg_sha256 *h = cimg_sha256_new ();
      char buf[65536];
      ssize_t n;
      while (fd >= 0 && (n = read (fd, buf, sizeof buf)) > 0)
        cimg_sha256_update (h, buf, (size_t)n);
      if (fd >= 0)
        close (fd);
      char digest[CIMG_DIGEST_BUFSIZE];
      cimg_sha256_final (h, digest);
      cimg_sha256_free (h);
      snap_add (b, " ");
      snap_add (b, fd >= 0 ? digest : "unreadable");
    }
  char proc[4200];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d/%s", dfd, name);
  char names[4096];
  ssize_t n = llistxattr (proc, names, sizeof names);
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen (names + i) + 1)
    {
      char value[256];
      ssize_t vn = lgetxattr (proc, names + i, value, sizeof value - 1);
      value[vn < 0 ? 0 : vn] = '\0';
      snap_add (b, " xattr:");
      snap_add (b, names + i);
      snap_add (b, "=");
      snap_add (b, value);
    }
  snap_add (b, "\n");
}

static void
snap_dir (struct snap_buf *b, int dfd, const char *rel, const char *const *skip)
{
  int fd = openat (dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  DIR *d = fd >= 0 ? fdopendir (fd) : NULL;
  if (d == NULL)
    {
      if (fd >= 0)
        close (fd);
      snap_add (b, rel);
      snap_add (b, " unreadable directory\n");
      return;
    }
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      bool skipped = false;
      for (size_t i = 0; skip && skip[i] && *rel == '\0'; i++)
        skipped |= strcmp (de->d_name, skip[i]) == 0;
      if (skipped)
        continue;
      if (n == cap)
        {
          cap = cap ? cap * 2 : 16;
          names = xrealloc (names, cap * sizeof *names);
        }
      names[n++] = xstrdup (de->d_name);
    }
  qsort (names, n, sizeof *names, snap_cmp);
  for (size_t i = 0; i < n; i++)
    {
      char *sub = *rel ? xasprintf ("%s/%s", rel, names[i]) : xstrdup (names[i]);
      struct stat st;
      if (fstatat (dirfd (d), names[i], &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          snap_add (b, sub);
          snap_add (b, " vanished\n");
        }
      else
        {
          snap_entry (b, dirfd (d), names[i], sub, &st);
          if (S_ISDIR (st.st_mode))
            {
              int cfd
                  = openat (dirfd (d), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
              if (cfd >= 0)
                {
                  snap_dir (b, cfd, sub, skip);
                  close (cfd);
                }
            }
        }
      free (sub);
      free (names[i]);
    }
  free (names);
  closedir (d);
}

/* The snapshot of the tree at dfd (newly allocated text, one line per entry, the top directory
   itself first), leaving out the top-level names in skip (NULL-terminated, may be NULL). */
static char *
tree_snapshot (int dfd, const char *const *skip)
{
  struct snap_buf b = { 0 };
  struct stat st;
  if (fstat (dfd, &st) == 0)
    {
      /* The top directory's own mtime moves whenever a skipped entry is created or removed. */
      char line[128];
      snprintf (line, sizeof line, ". mode=0%o uid=%u gid=%u\n", (unsigned)st.st_mode,
                (unsigned)st.st_uid, (unsigned)st.st_gid);
      snap_add (&b, line);
    }
  snap_dir (&b, dfd, "", skip);
  if (b.data == NULL)
    b.data = xstrdup ("");
  return b.data;
}

#endif
