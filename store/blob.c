#include "store/store-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

struct cimg_blob_writer
{
  struct cimg_store *s;
  int fd;
  char *ingest; /* "ingest/blob-<random>" */
  struct cimg_sha256 *h;
  int64_t size;
  char *expected;
  int64_t expected_size;
  bool committed;
};

struct cimg_blob_writer *
cimg_blob_writer_new (struct cimg_store *s, const char *expected_digest, int64_t expected_size,
                      cimg_error_t *err)
{
  if (expected_digest && !cimg_digest_valid (expected_digest))
    {
      cimg_error_set (err, EINVAL, "invalid digest \"%s\"", expected_digest);
      return NULL;
    }
  char hex[65];
  cimg_random_hex64 (hex);
  cleanup_free char *name = xasprintf ("ingest/blob-%.24s", hex);
  int fd = openat (s->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      cimg_error_sys (err, "create %s/%s", s->root, name);
      return NULL;
    }
  struct cimg_blob_writer *w = xzalloc (sizeof *w);
  w->s = s;
  w->fd = fd;
  w->ingest = steal_pointer (&name);
  w->h = cimg_sha256_new ();
  w->expected = expected_digest ? xstrdup (expected_digest) : NULL;
  w->expected_size = expected_size;
  return w;
}

int
cimg_blob_writer_write (struct cimg_blob_writer *w, const void *buf, size_t len, cimg_error_t *err)
{
  if (cimg_write_all (w->fd, buf, len) < 0)
    return cimg_error_sys (err, "write %s/%s", w->s->root, w->ingest);
  cimg_sha256_update (w->h, buf, len);
  w->size += (int64_t)len;
  if (w->expected_size >= 0 && w->size > w->expected_size)
    return cimg_error_set (err, EINVAL, "size mismatch (more than the %lld bytes expected)",
                           (long long)w->expected_size);
  return 0;
}

int64_t
cimg_blob_writer_size (struct cimg_blob_writer *w)
{
  return w->size;
}

int
cimg_blob_writer_commit (struct cimg_blob_writer *w, char out[CIMG_DIGEST_BUFSIZE],
                         cimg_error_t *err)
{
  char digest[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_final (w->h, digest);
  if (w->expected && strcmp (digest, w->expected) != 0)
    return cimg_error_set (err, EINVAL, "digest mismatch (got %s, expected %s)", digest,
                           w->expected);
  if (w->expected_size >= 0 && w->size != w->expected_size)
    return cimg_error_set (err, EINVAL, "size mismatch (got %lld bytes, expected %lld)",
                           (long long)w->size, (long long)w->expected_size);
  if (fsync (w->fd) < 0)
    return cimg_error_sys (err, "fsync %s/%s", w->s->root, w->ingest);
  cleanup_free char *path = cimg_blob_path (digest);
  /* Content-addressed: if a concurrent writer got there first, its bytes are ours. */
  if (renameat (w->s->dirfd, w->ingest, w->s->dirfd, path) < 0)
    return cimg_error_sys (err, "store blob %s", digest);
  w->committed = true;
  if (cimg_fsync_dir_at (w->s->dirfd, "blobs/sha256") < 0)
    return cimg_error_sys (err, "fsync %s/blobs/sha256", w->s->root);
  if (out)
    memcpy (out, digest, CIMG_DIGEST_BUFSIZE);
  return 0;
}

void
cimg_blob_writer_free (struct cimg_blob_writer *w)
{
  if (w == NULL)
    return;
  close (w->fd);
  if (!w->committed)
    unlinkat (w->s->dirfd, w->ingest, 0);
  cimg_sha256_free (w->h);
  free (w->ingest);
  free (w->expected);
  free (w);
}

int
cimg_store_put_blob (struct cimg_store *s, const void *buf, size_t len, const char *expected_digest,
                     char out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  char digest[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (buf, len, digest);
  if (expected_digest && strcmp (digest, expected_digest) != 0)
    return cimg_error_set (err, EINVAL, "digest mismatch (got %s, expected %s)", digest,
                           expected_digest);
  if (out)
    memcpy (out, digest, CIMG_DIGEST_BUFSIZE);
  if (cimg_store_has_blob (s, digest))
    return 0;
  struct cimg_blob_writer *w = cimg_blob_writer_new (s, digest, (int64_t)len, err);
  if (w == NULL)
    return -1;
  int r = cimg_blob_writer_write (w, buf, len, err);
  if (r == 0)
    r = cimg_blob_writer_commit (w, NULL, err);
  cimg_blob_writer_free (w);
  return r;
}

bool
cimg_store_has_blob (struct cimg_store *s, const char *digest)
{
  if (!cimg_digest_valid (digest))
    return false;
  cleanup_free char *path = cimg_blob_path (digest);
  return faccessat (s->dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

int64_t
cimg_store_blob_size (struct cimg_store *s, const char *digest)
{
  if (!cimg_digest_valid (digest))
    return -1;
  cleanup_free char *path = cimg_blob_path (digest);
  struct stat st;
  if (fstatat (s->dirfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return -1;
  return st.st_size;
}

int
cimg_store_read_blob (struct cimg_store *s, const char *digest, size_t max, char **out, size_t *len,
                      cimg_error_t *err)
{
  if (!cimg_digest_valid (digest))
    return cimg_error_set (err, EINVAL, "invalid digest \"%s\"", digest);
  cleanup_free char *path = cimg_blob_path (digest);
  cleanup_free char *buf = NULL;
  size_t n = 0;
  if (cimg_read_file_at (s->dirfd, path, max, &buf, &n, err) < 0)
    return cimg_error_wrap (err, "blob %s", digest);
  char got[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (buf, n, got);
  if (strcmp (got, digest) != 0)
    return cimg_error_set (err, EIO, "blob %s: content does not match its digest (got %s)", digest,
                           got);
  *out = steal_pointer (&buf);
  if (len)
    *len = n;
  return 0;
}

int
cimg_store_open_blob (struct cimg_store *s, const char *digest, cimg_error_t *err)
{
  if (!cimg_digest_valid (digest))
    return cimg_error_set (err, EINVAL, "invalid digest \"%s\"", digest);
  cleanup_free char *path = cimg_blob_path (digest);
  int fd = openat (s->dirfd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "blob %s", digest);
  return fd;
}
