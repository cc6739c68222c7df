#include "store/store-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

static const char *const subdirs[]
    = { "blobs", "blobs/sha256", "ingest", "layers", "l", "images", "containers" };

struct cimg_store *
cimg_store_open (const char *root, cimg_error_t *err)
{
  if (root == NULL || *root == '\0')
    {
      cimg_error_set (err, EINVAL, "store root is empty");
      return NULL;
    }
  if (cimg_mkdir_p_at (AT_FDCWD, root, 0711, err) < 0)
    {
      cimg_error_wrap (err, "store %s", root);
      return NULL;
    }
  cleanup_close int dirfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0)
    {
      cimg_error_sys (err, "store %s", root);
      return NULL;
    }
  for (size_t i = 0; i < ARRAY_SIZE (subdirs); i++)
    if (mkdirat (dirfd, subdirs[i], 0700) < 0 && errno != EEXIST)
      {
        cimg_error_sys (err, "store %s: mkdir %s", root, subdirs[i]);
        return NULL;
      }
  int lockfd = openat (dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lockfd < 0)
    {
      cimg_error_sys (err, "store %s: lock", root);
      return NULL;
    }
  struct cimg_store *s = xzalloc (sizeof *s);
  s->root = xstrdup (root);
  s->dirfd = steal_fd (&dirfd);
  s->lockfd = lockfd;
  return s;
}

void
cimg_store_close (struct cimg_store *s)
{
  if (s == NULL)
    return;
  close (s->lockfd);
  close (s->dirfd);
  free (s->root);
  free (s);
}

void
cimg_store_closep (struct cimg_store **s)
{
  cimg_store_close (*s);
  *s = NULL;
}

const char *
cimg_store_root (struct cimg_store *s)
{
  return s->root;
}

int
cimg_store_dirfd (struct cimg_store *s)
{
  return s->dirfd;
}

int
cimg_store_lock (struct cimg_store *s, int mode, cimg_error_t *err)
{
  if (s->lock_mode == mode || s->lock_mode == CIMG_LOCK_EXCLUSIVE)
    return 0;
  int op = mode == CIMG_LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH;
  while (flock (s->lockfd, op) < 0)
    if (errno != EINTR)
      return cimg_error_sys (err, "lock store %s", s->root);
  s->lock_mode = mode;
  return 0;
}

void
cimg_store_unlock (struct cimg_store *s)
{
  if (s->lock_mode)
    flock (s->lockfd, LOCK_UN);
  s->lock_mode = 0;
}

char *
cimg_blob_path (const char *digest)
{
  return xasprintf ("blobs/sha256/%s", cimg_digest_hex (digest));
}

json_t *
cimg_index_load (struct cimg_store *s, cimg_error_t *err)
{
  json_t *j = NULL;
  struct stat st;
  if (fstatat (s->dirfd, "index.json", &st, 0) < 0 && errno == ENOENT)
    j = json_object ();
  else
    {
      /* The index holds a summary per image; 64 MiB is far beyond 10 000 images. */
      j = cimg_json_load_at (s->dirfd, "index.json", 64 << 20, err);
      if (j == NULL)
        return NULL;
    }
  if (!json_is_object (json_object_get (j, "images")))
    json_object_set_new (j, "images", json_object ());
  if (!json_is_object (json_object_get (j, "tags")))
    json_object_set_new (j, "tags", json_object ());
  return j;
}

int
cimg_index_update (struct cimg_store *s, cimg_index_update_fn fn, void *data, cimg_error_t *err)
{
  cleanup_close int fd = openat (s->dirfd, "index.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0)
    return cimg_error_sys (err, "lock index");
  while (flock (fd, LOCK_EX) < 0)
    if (errno != EINTR)
      return cimg_error_sys (err, "lock index");
  cleanup_json json_t *idx = cimg_index_load (s, err);
  if (idx == NULL)
    return -1;
  if (fn (idx, data, err) < 0)
    return -1;
  return cimg_json_save_at (s->dirfd, "index.json", idx, err);
}
