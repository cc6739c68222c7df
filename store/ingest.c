/* Resumable blob downloads: ingest/dl-<hex>, named by the digest they must end up with. */
#include "store/ingest.h"
#include "store/store-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>

/* curl hands a body over 16 KiB at a time: written as it comes, a 100 MB layer was 6 000
   write(2) calls. The bytes are gathered first; what a kill loses of them is only the tail of a
   prefix, which the next pull downloads again. */
#define WBUF_SIZE (256 * 1024)

struct cimg_ingest
{
  struct cimg_store *s;
  char digest[CIMG_DIGEST_BUFSIZE];
  int64_t size;
  char *name; /* "ingest/dl-<hex>" or "ingest/dl-<hex>.<random>" */
  int fd;
  int64_t offset; /* bytes taken, the buffered ones included */
  struct cimg_sha256 *h;
  bool replayed, committed, verified;
  unsigned char *wbuf; /* bytes taken but not yet written */
  size_t wlen;
};

static int
flush_buf (struct cimg_ingest *g, cimg_error_t *err)
{
  if (g->wlen == 0)
    return 0;
  size_t n = g->wlen;
  g->wlen = 0;
  if (cimg_write_all (g->fd, g->wbuf, n) < 0)
    return cimg_error_sys (err, "write %s/%s", g->s->root, g->name);
  return 0;
}

static int
open_locked (struct cimg_store *s, const char *name, int *fd_out, cimg_error_t *err)
{
  int fd = openat (s->dirfd, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return cimg_error_sys (err, "open %s/%s", s->root, name);
  if (flock (fd, LOCK_EX | LOCK_NB) < 0)
    {
      int saved = errno;
      close (fd);
      errno = saved;
      return errno == EWOULDBLOCK ? 1 : cimg_error_sys (err, "lock %s/%s", s->root, name);
    }
  *fd_out = fd;
  return 0;
}

struct cimg_ingest *
cimg_ingest_open (struct cimg_store *s, const char *digest, int64_t size, cimg_error_t *err)
{
  if (!cimg_digest_valid (digest))
    {
      cimg_error_set (err, EINVAL, "invalid digest \"%s\"", digest ? digest : "");
      return NULL;
    }
  if (mkdirat (s->dirfd, "ingest", 0700) < 0 && errno != EEXIST)
    {
      cimg_error_sys (err, "create %s/ingest", s->root);
      return NULL;
    }
  struct cimg_ingest *g = xzalloc (sizeof *g);
  g->s = s;
  g->fd = -1;
  g->size = size;
  snprintf (g->digest, sizeof g->digest, "%s", digest);
  g->h = cimg_sha256_new ();
  g->name = xasprintf ("ingest/dl-%s", cimg_digest_hex (digest));
  int r = open_locked (s, g->name, &g->fd, err);
  if (r == 1)
    {
      /* Another pull is fetching the same blob: ours goes to a private file. */
      char hex[65];
      cimg_random_hex64 (hex);
      free (g->name);
      g->name = xasprintf ("ingest/dl-%s.%.16s", cimg_digest_hex (digest), hex);
      r = open_locked (s, g->name, &g->fd, err);
    }
  if (r != 0)
    {
      if (r == 1)
        cimg_error_set (err, EBUSY, "%s/%s is locked", s->root, g->name);
      cimg_ingest_close (g, false);
      return NULL;
    }
  struct stat st;
  if (fstat (g->fd, &st) < 0 || !S_ISREG (st.st_mode))
    {
      cimg_error_sys (err, "stat %s/%s", s->root, g->name);
      cimg_ingest_close (g, false);
      return NULL;
    }
  g->offset = st.st_size;
  if (size >= 0 && g->offset > size && cimg_ingest_reset (g, err) < 0)
    {
      cimg_ingest_close (g, false);
      return NULL;
    }
  if (lseek (g->fd, g->offset, SEEK_SET) < 0)
    {
      cimg_error_sys (err, "seek %s/%s", s->root, g->name);
      cimg_ingest_close (g, false);
      return NULL;
    }
  return g;
}

int64_t
cimg_ingest_offset (struct cimg_ingest *g)
{
  return g->offset;
}

int
cimg_ingest_replay (struct cimg_ingest *g, cimg_ingest_fn fn, void *data, cimg_error_t *err)
{
  if (g->replayed)
    return 0;
  g->replayed = true;
  size_t cap = 256 * 1024;
  cleanup_free unsigned char *buf = xmalloc (cap);
  int64_t off = 0;
  while (off < g->offset)
    {
      size_t want = (size_t)(g->offset - off < (int64_t)cap ? g->offset - off : (int64_t)cap);
      ssize_t n = pread (g->fd, buf, want, off);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return cimg_error_sys (err, "read %s/%s", g->s->root, g->name);
      if (n == 0)
        break;
      cimg_sha256_update (g->h, buf, (size_t)n);
      if (fn && fn (data, buf, (size_t)n, err) < 0)
        return -1;
      off += n;
    }
  if (off != g->offset)
    return cimg_error_set (err, EIO, "%s/%s shrank while being read", g->s->root, g->name);
  return 0;
}

int
cimg_ingest_write (struct cimg_ingest *g, const void *buf, size_t len, cimg_error_t *err)
{
  if (!g->replayed && cimg_ingest_replay (g, NULL, NULL, err) < 0)
    return -1;
  if (g->wlen + len > WBUF_SIZE && flush_buf (g, err) < 0)
    return -1;
  if (len >= WBUF_SIZE)
    {
      if (cimg_write_all (g->fd, buf, len) < 0)
        return cimg_error_sys (err, "write %s/%s", g->s->root, g->name);
    }
  else
    {
      if (g->wbuf == NULL)
        g->wbuf = xmalloc (WBUF_SIZE);
      memcpy (g->wbuf + g->wlen, buf, len);
      g->wlen += len;
    }
  cimg_sha256_update (g->h, buf, len);
  g->offset += (int64_t)len;
  return 0;
}

int
cimg_ingest_reset (struct cimg_ingest *g, cimg_error_t *err)
{
  g->wlen = 0;
  if (ftruncate (g->fd, 0) < 0 || lseek (g->fd, 0, SEEK_SET) < 0)
    return cimg_error_sys (err, "truncate %s/%s", g->s->root, g->name);
  g->offset = 0;
  g->replayed = true;
  cimg_sha256_reset (g->h);
  return 0;
}

int
cimg_ingest_verify (struct cimg_ingest *g, cimg_error_t *err)
{
  if (g->verified)
    return 0;
  if (!g->replayed && cimg_ingest_replay (g, NULL, NULL, err) < 0)
    return -1;
  char got[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_final (g->h, got);
  if (strcmp (got, g->digest) != 0)
    return cimg_error_set (err, EINVAL, "digest mismatch (got %s, expected %s)", got, g->digest);
  if (g->size >= 0 && g->offset != g->size)
    return cimg_error_set (err, EINVAL, "size mismatch (got %" PRId64 ", expected %" PRId64 ")",
                           g->offset, g->size);
  if (flush_buf (g, err) < 0)
    return -1;
  g->verified = true;
  return 0;
}

static int
commit (struct cimg_ingest *g, bool synced, cimg_error_t *err)
{
  if (cimg_ingest_verify (g, err) < 0)
    return -1;
  /* The bytes are durable before the name says they are the blob. */
  if (!synced && fsync (g->fd) < 0)
    return cimg_error_sys (err, "fsync %s/%s", g->s->root, g->name);
  if (mkdirat (g->s->dirfd, "blobs", 0700) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "create %s/blobs", g->s->root);
  if (mkdirat (g->s->dirfd, "blobs/sha256", 0700) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "create %s/blobs/sha256", g->s->root);
  cleanup_free char *path = cimg_blob_path (g->digest);
  if (renameat (g->s->dirfd, g->name, g->s->dirfd, path) < 0)
    return cimg_error_sys (err, "commit %s", path);
  g->committed = true;
  if (cimg_fsync_dir_at (g->s->dirfd, "blobs/sha256") < 0)
    return cimg_error_sys (err, "fsync %s/blobs/sha256", g->s->root);
  return 0;
}

int
cimg_ingest_commit (struct cimg_ingest *g, cimg_error_t *err)
{
  return commit (g, false, err);
}

int
cimg_ingest_commit_synced (struct cimg_ingest *g, int fs_fd, cimg_error_t *err)
{
  /* A syncfs covers only its own file system: the download may sit on another one (a store
     whose ingest/ is a mount of its own). */
  struct stat a, b;
  bool synced = g->verified && fs_fd >= 0 && fstat (fs_fd, &a) == 0 && fstat (g->fd, &b) == 0
                && a.st_dev == b.st_dev;
  return commit (g, synced, err);
}

void
cimg_ingest_close (struct cimg_ingest *g, bool keep)
{
  if (g == NULL)
    return;
  if (keep && g->fd >= 0)
    {
      /* Best effort: what is not written is downloaded again. */
      cimg_error_t err = { 0 };
      flush_buf (g, &err);
      cimg_error_clear (&err);
    }
  if (!g->committed && !keep && g->fd >= 0)
    unlinkat (g->s->dirfd, g->name, 0);
  if (g->fd >= 0)
    close (g->fd);
  cimg_sha256_free (g->h);
  free (g->wbuf);
  free (g->name);
  free (g);
}
