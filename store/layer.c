#include "store/layer-internal.h"
#include "store/store-internal.h"

#include <archive.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>

/* Bytes between the producer (curl, a file reader) and the extraction thread. Big enough that a
   burst of network data never waits on a small file's metadata syscalls. */
#define RING_SIZE (4 * 1024 * 1024)
#define READ_CHUNK (256 * 1024)
/* Uncompressed bytes between two background syncs of the layer's file system (see flusher). */
#define FLUSH_EVERY ((int64_t)32 << 20)

struct cimg_layer_sink
{
  struct cimg_store *s;
  char parent[CIMG_DIGEST_BUFSIZE];
  int flags;
  struct cimg_blob_writer *blob;
  struct cimg_sha256 *h_comp, *h_diff;
  bool comp_verified; /* the caller verifies the compressed digest (no h_comp) */
  bool synced;        /* finish ran syncfs (diffd's file system) */
  int64_t comp_size;
  struct cimg_inflater *inflater;
  char *tmpname; /* "layers/tmp-<random>" */
  int diffd;     /* tmpname/diff */

  pthread_t thread;
  bool thread_started;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  unsigned char *ring;
  size_t rpos, rlen;
  size_t lent; /* bytes at rpos handed to libarchive by the last ring_read, still counted in rlen */
  bool eof;    /* the producer has no more bytes */
  size_t room_min;            /* cimg_layer_sink_has_room: wake when this much is free */
  void (*room_wake) (void *); /* … by calling this */
  void *room_arg;
  bool worker_end;  /* the worker stopped reading (done or failed) */
  bool tail_hashed; /* the producer hashed what the worker left in the ring, and hashes on */
  int worker_rc;
  cimg_error_t worker_err;
  struct cimg_apply_stats stats;
  bool finished;
  int64_t max_size;   /* max-layer-size; 0: none */
  int64_t plain_size; /* uncompressed bytes seen */

  pthread_t flusher;
  bool flusher_started;
  pthread_mutex_t fmu;
  pthread_cond_t fcv;
  bool flush_req, flush_stop;
  int64_t flush_at; /* plain_size at which the next background sync is asked for */
};

/* A decompression bomb (a few MB of gzip or zstd that inflate to terabytes of zeros, in files or
   in padding after the end of the archive) would fill the store's filesystem or keep a pull
   busy for hours; no real layer comes near this default. */
#define DEFAULT_MAX_LAYER_SIZE ((int64_t)64 << 30)

/* "123", "64k", "64M", "1G", "2TiB", "512kb" (binary units); 0 means no limit. */
static int
parse_size (const char *v, int64_t *out)
{
  char *end;
  errno = 0;
  if (!(*v >= '0' && *v <= '9'))
    return -1;
  unsigned long long n = strtoull (v, &end, 10);
  if (errno)
    return -1;
  int shift = 0;
  switch (*end)
    {
    case 'k':
    case 'K':
      shift = 10;
      break;
    case 'm':
    case 'M':
      shift = 20;
      break;
    case 'g':
    case 'G':
      shift = 30;
      break;
    case 't':
    case 'T':
      shift = 40;
      break;
    case '\0':
      break;
    default:
      return -1;
    }
  if (*end)
    end++;
  if (shift && (*end == 'i' || *end == 'I'))
    end++;
  if (*end == 'b' || *end == 'B')
    end++;
  if (*end != '\0' || n > (unsigned long long)(INT64_MAX >> shift))
    return -1;
  *out = (int64_t)(n << shift);
  return 0;
}

/* Sets *limit when the config file at path exists and has max-layer-size. */
static int
limit_from_file (const char *path, int64_t *limit, cimg_error_t *err)
{
  if (access (path, F_OK) < 0 && errno == ENOENT)
    return 0;
  cleanup_json json_t *j = cimg_json_load_at (AT_FDCWD, path, 1 << 20, err);
  if (j == NULL)
    return cimg_error_wrap (err, "%s", path);
  json_t *v = json_object_get (j, "max-layer-size");
  if (v == NULL)
    return 0;
  int64_t n = -1;
  if (json_is_integer (v))
    n = json_integer_value (v);
  else if (!json_is_string (v) || parse_size (json_string_value (v), &n) < 0)
    n = -1;
  if (n < 0)
    return cimg_error_set (err, EINVAL,
                           "%s: \"max-layer-size\" must be a byte count such as 68719476736 or "
                           "\"64G\" (0: no limit)",
                           path);
  *limit = n;
  return 0;
}

int
cimg_layer_max_size (int64_t *out, cimg_error_t *err)
{
  int64_t limit = DEFAULT_MAX_LAYER_SIZE;
  const char *env = getenv ("CIMG_MAX_LAYER_SIZE");
  if (env && *env)
    {
      if (parse_size (env, &limit) < 0)
        return cimg_error_set (
            err, EINVAL, "CIMG_MAX_LAYER_SIZE=%s: not a byte count such as 64G (0: no limit)", env);
      *out = limit;
      return 0;
    }
  /* The files registry/config.c reads, in the same order (a later one overrides). */
  const char *only = getenv ("CIMG_CONFIG");
  if (only && *only)
    {
      if (limit_from_file (only, &limit, err) < 0)
        return -1;
    }
  else
    {
      if (limit_from_file ("/etc/cimg/config.json", &limit, err) < 0)
        return -1;
      const char *home = getenv ("HOME");
      if (home && *home)
        {
          cleanup_free char *p = xasprintf ("%s/.config/cimg/config.json", home);
          if (limit_from_file (p, &limit, err) < 0)
            return -1;
        }
    }
  *out = limit;
  return 0;
}

/* The waker asked for by cimg_layer_sink_has_room, taken (once) if it is due; call it
   unlocked. */
static void (*take_waker (struct cimg_layer_sink *k, void **arg)) (void *)
{
  if (k->room_wake == NULL || (RING_SIZE - k->rlen < k->room_min && !k->worker_end))
    return NULL;
  void (*wake) (void *) = k->room_wake;
  *arg = k->room_arg;
  k->room_wake = NULL;
  return wake;
}

/* libarchive reads the ring in place: a read callback's buffer need only stay valid until the
   next call, so the bytes handed over are released then (no copy of every tar byte on the
   extraction thread, which is the one a pull waits for). */
static ssize_t
ring_read (struct archive *a, void *data, const void **buf)
{
  struct cimg_layer_sink *k = data;
  (void)a;
  /* The diff_id is hashed here, as the bytes are released, rather than by the producer: the
     producer (the download loop, which also hashes the compressed stream and inflates it) is
     the stage a pull waits for, and this thread idles waiting for it. The producer never
     writes into [rpos, rpos + rlen), so the bytes are read unlocked. */
  if (k->lent > 0)
    cimg_sha256_update (k->h_diff, k->ring + k->rpos, k->lent);
  pthread_mutex_lock (&k->mu);
  if (k->lent > 0)
    {
      k->rpos = (k->rpos + k->lent) % RING_SIZE;
      k->rlen -= k->lent;
      k->lent = 0;
      pthread_cond_broadcast (&k->cv);
      void *arg = NULL;
      void (*wake) (void *) = take_waker (k, &arg);
      if (wake)
        {
          pthread_mutex_unlock (&k->mu);
          wake (arg);
          pthread_mutex_lock (&k->mu);
        }
    }
  while (k->rlen == 0 && !k->eof)
    pthread_cond_wait (&k->cv, &k->mu);
  size_t n = RING_SIZE - k->rpos; /* contiguous up to the end of the ring */
  if (n > k->rlen)
    n = k->rlen;
  if (n > READ_CHUNK)
    n = READ_CHUNK;
  k->lent = n;
  *buf = k->ring + k->rpos;
  pthread_mutex_unlock (&k->mu);
  return (ssize_t)n;
}

static void *
worker (void *data)
{
  struct cimg_layer_sink *k = data;
  struct archive *a = archive_read_new ();
  archive_read_support_format_tar (a);
  archive_read_support_format_empty (a);
  int rc;
  if (archive_read_open (a, k, NULL, ring_read, NULL) != ARCHIVE_OK)
    rc = cimg_error_set (&k->worker_err, EINVAL, "not a tar archive: %s", archive_error_string (a));
  else
    {
      /* The same cap on the sum of file sizes: sparse entries declare sizes that no tar byte
         pays for. */
      struct cimg_apply_opts opts = { .max_size = k->max_size };
      rc = cimg_layer_apply (a, k->diffd, &opts, &k->stats, &k->worker_err);
      if (rc < 0 && k->worker_err.code == EFBIG && k->worker_err.msg)
        {
          /* Say which setting to change. */
          cleanup_free char *msg = xstrdup (k->worker_err.msg);
          cimg_error_set (&k->worker_err, EFBIG, "%s (max-layer-size in the cimg config)", msg);
        }
    }
  archive_read_free (a);
  pthread_mutex_lock (&k->mu);
  k->worker_rc = rc;
  k->worker_end = true;
  pthread_cond_broadcast (&k->cv);
  void *arg = NULL;
  void (*wake) (void *) = take_waker (k, &arg);
  pthread_mutex_unlock (&k->mu);
  /* The feeder sees the end (or the failure) at its next write. */
  if (wake)
    wake (arg);
  return NULL;
}

bool
cimg_layer_sink_has_room (struct cimg_layer_sink *k, size_t min, void (*wake) (void *), void *arg)
{
  if (!k->thread_started)
    return true;
  pthread_mutex_lock (&k->mu);
  bool room = k->worker_end || RING_SIZE - k->rlen >= min;
  if (!room && wake)
    {
      k->room_min = min;
      k->room_wake = wake;
      k->room_arg = arg;
    }
  pthread_mutex_unlock (&k->mu);
  return room;
}

/* Nothing reaches the disk on its own while a layer is written: the kernel starts writing dirty
   pages back only at 10 % of memory or after 30 s, so the sync before the commit used to write
   the whole layer (and its blob) while the pull waited. Syncing the file system in the
   background every FLUSH_EVERY bytes lets the disk work while the tar is still being inflated
   and unpacked; the sync before the commit then has only the tail left. Durability does not
   rest on these syncs: cimg_layer_sink_finish still syncs before the rename. */
static void *
flusher (void *data)
{
  struct cimg_layer_sink *k = data;
  pthread_mutex_lock (&k->fmu);
  for (;;)
    {
      while (!k->flush_req && !k->flush_stop)
        pthread_cond_wait (&k->fcv, &k->fmu);
      if (k->flush_stop)
        break;
      k->flush_req = false;
      pthread_mutex_unlock (&k->fmu);
      /* Best effort: an error here shows again in the final sync, which reports it. */
      (void)syncfs (k->diffd);
      pthread_mutex_lock (&k->fmu);
    }
  pthread_mutex_unlock (&k->fmu);
  return NULL;
}

static void
stop_flusher (struct cimg_layer_sink *k)
{
  if (!k->flusher_started)
    return;
  pthread_mutex_lock (&k->fmu);
  k->flush_stop = true;
  pthread_cond_signal (&k->fcv);
  pthread_mutex_unlock (&k->fmu);
  pthread_join (k->flusher, NULL);
  k->flusher_started = false;
}

/* Once the worker has stopped, the bytes it left in the ring (handed to libarchive or not) are
   hashed by the producer, which then hashes what it is given directly. */
static void
hash_tail (struct cimg_layer_sink *k)
{
  if (k->tail_hashed)
    return;
  k->tail_hashed = true;
  size_t first = RING_SIZE - k->rpos;
  if (first > k->rlen)
    first = k->rlen;
  cimg_sha256_update (k->h_diff, k->ring + k->rpos, first);
  cimg_sha256_update (k->h_diff, k->ring, k->rlen - first);
  k->rpos = k->rlen = k->lent = 0;
}

static int
worker_error (struct cimg_layer_sink *k, cimg_error_t *err)
{
  cimg_error_set (err, k->worker_err.code, "%s",
                  k->worker_err.msg ? k->worker_err.msg : "extraction failed");
  return -1;
}

/* The inflater writes straight into the ring's free space, which push_plain then only
   publishes: one copy of every tar byte less on the producer. Only the producer adds bytes, so
   the free space stays where it is until then; NULL once the worker has stopped. */
static unsigned char *
ring_space (void *data, size_t *cap)
{
  struct cimg_layer_sink *k = data;
  unsigned char *p = NULL;
  pthread_mutex_lock (&k->mu);
  while (k->rlen == RING_SIZE && !k->worker_end)
    pthread_cond_wait (&k->cv, &k->mu);
  if (!k->worker_end)
    {
      size_t wpos = (k->rpos + k->rlen) % RING_SIZE;
      size_t n = RING_SIZE - wpos; /* contiguous up to the end of the ring */
      if (n > RING_SIZE - k->rlen)
        n = RING_SIZE - k->rlen;
      if (n < *cap)
        *cap = n;
      p = k->ring + wpos;
    }
  pthread_mutex_unlock (&k->mu);
  return p;
}

/* Uncompressed tar bytes, handed to the extraction thread (which hashes them for the diff_id):
   published in place when the inflater wrote them into the ring (ring_space), else copied. */
static int
push_plain (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  struct cimg_layer_sink *k = data;
  const unsigned char *p = buf;
  if (k->max_size > 0 && (int64_t)len > k->max_size - k->plain_size)
    return cimg_error_set (err, EFBIG,
                           "layer exceeds the size limit of %lld bytes (max-layer-size in the "
                           "cimg config)",
                           (long long)k->max_size);
  k->plain_size += (int64_t)len;
  if (k->flusher_started && k->plain_size >= k->flush_at)
    {
      k->flush_at = k->plain_size + FLUSH_EVERY;
      pthread_mutex_lock (&k->fmu);
      k->flush_req = true;
      pthread_cond_signal (&k->fcv);
      pthread_mutex_unlock (&k->fmu);
    }
  pthread_mutex_lock (&k->mu);
  while (len > 0)
    {
      while (k->rlen == RING_SIZE && !k->worker_end)
        pthread_cond_wait (&k->cv, &k->mu);
      if (k->worker_end)
        {
          /* The worker has read the end-of-archive marker (the rest is padding that still
             counts for the diff_id) or has failed. */
          bool failed = k->worker_rc < 0;
          pthread_mutex_unlock (&k->mu);
          if (failed)
            return worker_error (k, err);
          hash_tail (k);
          cimg_sha256_update (k->h_diff, p, len);
          return 0;
        }
      size_t wpos = (k->rpos + k->rlen) % RING_SIZE;
      size_t chunk = RING_SIZE - wpos; /* contiguous up to the end of the ring */
      if (chunk > RING_SIZE - k->rlen)
        chunk = RING_SIZE - k->rlen;
      if (chunk > len)
        chunk = len;
      if (p != k->ring + wpos)
        {
          /* The worker reads only [rpos, rpos + rlen): the free part is the producer's. */
          pthread_mutex_unlock (&k->mu);
          memcpy (k->ring + wpos, p, chunk);
          pthread_mutex_lock (&k->mu);
        }
      k->rlen += chunk;
      p += chunk;
      len -= chunk;
      pthread_cond_broadcast (&k->cv);
    }
  pthread_mutex_unlock (&k->mu);
  return 0;
}

struct cimg_layer_sink *
cimg_layer_sink_new (struct cimg_store *s, const char *parent_chain_id, int flags,
                     cimg_error_t *err)
{
  if (parent_chain_id && *parent_chain_id && !cimg_digest_valid (parent_chain_id))
    {
      cimg_error_set (err, EINVAL, "invalid parent chain ID \"%s\"", parent_chain_id);
      return NULL;
    }
  int64_t max_size = 0;
  if (cimg_layer_max_size (&max_size, err) < 0)
    return NULL;
  struct cimg_layer_sink *k = xzalloc (sizeof *k);
  k->s = s;
  k->diffd = -1;
  k->max_size = max_size;
  snprintf (k->parent, sizeof k->parent, "%s", parent_chain_id ? parent_chain_id : "");
  k->flags = flags;
  k->h_comp = cimg_sha256_new ();
  k->h_diff = cimg_sha256_new ();
  k->inflater = cimg_inflater_new (push_plain, k);
  cimg_inflater_set_space (k->inflater, ring_space);
  pthread_mutex_init (&k->mu, NULL);
  pthread_cond_init (&k->cv, NULL);
  pthread_mutex_init (&k->fmu, NULL);
  pthread_cond_init (&k->fcv, NULL);
  k->flush_at = FLUSH_EVERY;
  char hex[65];
  cimg_random_hex64 (hex);
  k->tmpname = xasprintf ("layers/tmp-%.24s", hex);
  cleanup_free char *diff = xasprintf ("%s/diff", k->tmpname);
  if (mkdirat (s->dirfd, k->tmpname, 0700) < 0 || mkdirat (s->dirfd, diff, 0755) < 0)
    {
      cimg_error_sys (err, "create %s/%s", s->root, k->tmpname);
      goto fail;
    }
  k->diffd = openat (s->dirfd, diff, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (k->diffd < 0)
    {
      cimg_error_sys (err, "open %s/%s", s->root, diff);
      goto fail;
    }
  if (flags & CIMG_SINK_KEEP_BLOB)
    {
      k->blob = cimg_blob_writer_new (s, NULL, -1, err);
      if (k->blob == NULL)
        goto fail;
    }
  k->ring = xmalloc (RING_SIZE);
  if (pthread_create (&k->thread, NULL, worker, k) != 0)
    {
      cimg_error_sys (err, "start extraction thread");
      goto fail;
    }
  k->thread_started = true;
  /* Without it the layer is only synced at the end, as before: not a reason to fail. */
  k->flusher_started = pthread_create (&k->flusher, NULL, flusher, k) == 0;
  return k;
fail:
  cimg_layer_sink_free (k);
  return NULL;
}

void
cimg_layer_sink_digest_verified (struct cimg_layer_sink *k)
{
  k->comp_verified = true;
}

int
cimg_layer_sink_synced_fd (struct cimg_layer_sink *k)
{
  return k->synced ? k->diffd : -1;
}

int
cimg_layer_sink_write (struct cimg_layer_sink *k, const void *buf, size_t len, cimg_error_t *err)
{
  if (!k->comp_verified)
    cimg_sha256_update (k->h_comp, buf, len);
  k->comp_size += (int64_t)len;
  if (k->blob && cimg_blob_writer_write (k->blob, buf, len, err) < 0)
    return -1;
  return cimg_inflater_write (k->inflater, buf, len, err);
}

static void
stop_worker (struct cimg_layer_sink *k)
{
  if (!k->thread_started)
    return;
  pthread_mutex_lock (&k->mu);
  k->eof = true;
  pthread_cond_broadcast (&k->cv);
  pthread_mutex_unlock (&k->mu);
  pthread_join (k->thread, NULL);
  k->thread_started = false;
}

static const char *
media_type_of (const char *kind)
{
  if (kind && strcmp (kind, "gzip") == 0)
    return MT_OCI_LAYER_GZIP;
  if (kind && strcmp (kind, "zstd") == 0)
    return MT_OCI_LAYER_ZSTD;
  return MT_OCI_LAYER_TAR;
}

/* layer.json goes into the layer's temporary directory, which nobody reads: it needs neither a
   rename of its own nor an fsync, the syncfs before the directory's rename covers it. */
static int
write_layer_json (struct cimg_layer_sink *k, const struct cimg_layer_info *info, const char *link,
                  cimg_error_t *err)
{
  cleanup_json json_t *j = json_pack (
      "{s:s, s:s, s:s, s:[s], s:s, s:I, s:I, s:s}", "chain_id", info->chain_id, "diff_id",
      info->diff_id, "parent", k->parent, "digests", info->digest, "media_type", info->media_type,
      "blob_size", (json_int_t)info->blob_size, "size", (json_int_t)info->size, "link", link);
  cleanup_free char *text = json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS);
  if (text == NULL)
    return cimg_error_set (err, ENOMEM, "encode layer.json");
  cleanup_free char *path = xasprintf ("%s/layer.json", k->tmpname);
  cleanup_close int fd
      = openat (k->s->dirfd, path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 || cimg_write_all (fd, text, strlen (text)) < 0)
    return cimg_error_sys (err, "write %s/%s", k->s->root, path);
  return 0;
}

/* Add digest to the list of compressed forms an existing layer is known by (best effort: the
   layer is usable without it; only save/push of that form would need to repack). */
static void
add_known_digest (struct cimg_store *s, const char *chain_id, const char *digest)
{
  cleanup_free char *path = xasprintf ("layers/%s/layer.json", cimg_digest_hex (chain_id));
  cimg_error_t err = { 0 };
  cleanup_json json_t *j = cimg_json_load_at (s->dirfd, path, 1 << 20, &err);
  cimg_error_clear (&err);
  if (j == NULL)
    return;
  json_t *arr = json_object_get (j, "digests");
  if (!json_is_array (arr))
    return;
  size_t i;
  json_t *v;
  json_array_foreach (arr, i, v) if (json_is_string (v)
                                     && strcmp (json_string_value (v), digest) == 0) return;
  json_array_append_new (arr, json_string (digest));
  cimg_json_save_at (s->dirfd, path, j, &err);
  cimg_error_clear (&err);
}

int
cimg_layer_sink_finish (struct cimg_layer_sink *k, const char *expected_digest,
                        const char *expected_diff_id, struct cimg_layer_info *info,
                        cimg_error_t *err)
{
  struct cimg_layer_info li;
  memset (&li, 0, sizeof li);
  if (cimg_inflater_finish (k->inflater, err) < 0)
    return -1;
  stop_worker (k);
  stop_flusher (k);
  if (k->worker_rc < 0)
    return worker_error (k, err);
  hash_tail (k);
  if (k->comp_verified)
    {
      if (expected_digest == NULL || !cimg_digest_valid (expected_digest))
        return cimg_error_set (err, EINVAL, "no verified digest for the layer");
      snprintf (li.digest, sizeof li.digest, "%s", expected_digest);
    }
  else
    cimg_sha256_final (k->h_comp, li.digest);
  cimg_sha256_final (k->h_diff, li.diff_id);
  if (expected_digest && strcmp (expected_digest, li.digest) != 0)
    return cimg_error_set (err, EINVAL, "digest mismatch (got %s, expected %s)", li.digest,
                           expected_digest);
  if (expected_diff_id && strcmp (expected_diff_id, li.diff_id) != 0)
    return cimg_error_set (err, EINVAL, "diff_id mismatch (got %s, expected %s)", li.diff_id,
                           expected_diff_id);
  cimg_chain_id (k->parent, li.diff_id, li.chain_id);
  snprintf (li.media_type, sizeof li.media_type, "%s",
            media_type_of (cimg_inflater_kind (k->inflater)));
  li.blob_size = k->comp_size;
  li.size = k->stats.size;
  if (k->blob && cimg_blob_writer_commit (k->blob, NULL, err) < 0)
    return -1;

  const char *hex = cimg_digest_hex (li.chain_id);
  cleanup_free char *final = xasprintf ("layers/%s", hex);
  if (cimg_store_has_layer (k->s, li.chain_id))
    {
      /* Same chain ID: the same content is already stored (by us earlier or a concurrent
         writer); this copy is dropped. */
      add_known_digest (k->s, li.chain_id, li.digest);
    }
  else
    {
      char rnd[65];
      cimg_random_hex64 (rnd);
      char link[27];
      snprintf (link, sizeof link, "%.26s", rnd);
      /* layer.json and the l/ link before the sync, so that one syncfs makes the files, the
         record and the link durable (a crash leaves at most a dangling link, which gc and
         `system check` remove). */
      if (write_layer_json (k, &li, link, err) < 0)
        return -1;
      cleanup_free char *lpath = xasprintf ("l/%s", link);
      cleanup_free char *target = xasprintf ("../layers/%s/diff", hex);
      if (symlinkat (target, k->s->dirfd, lpath) < 0)
        return cimg_error_sys (err, "link %s", lpath);
      /* The data must be on disk before the rename makes the layer visible. */
      if (syncfs (k->diffd) < 0)
        {
          int saved = errno;
          unlinkat (k->s->dirfd, lpath, 0);
          errno = saved;
          return cimg_error_sys (err, "sync layer");
        }
      k->synced = true;
      if (renameat (k->s->dirfd, k->tmpname, k->s->dirfd, final) < 0)
        {
          int saved = errno;
          unlinkat (k->s->dirfd, lpath, 0);
          errno = saved;
          /* Lost a race with a concurrent writer of the same layer: theirs is as good. */
          if (errno != EEXIST && errno != ENOTEMPTY)
            return cimg_error_sys (err, "commit layer %s", li.chain_id);
        }
      else if (cimg_fsync_dir_at (k->s->dirfd, "layers") < 0)
        return cimg_error_sys (err, "fsync layers");
    }
  k->finished = true;
  if (info)
    *info = li;
  return 0;
}

void
cimg_layer_sink_free (struct cimg_layer_sink *k)
{
  if (k == NULL)
    return;
  stop_worker (k);
  stop_flusher (k);
  if (k->diffd >= 0)
    close (k->diffd);
  /* Whatever did not become a layer (failure, or a duplicate of one already stored) goes. */
  cimg_error_t err = { 0 };
  if (faccessat (k->s->dirfd, k->tmpname, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
    cimg_rm_rf_at (k->s->dirfd, k->tmpname, &err);
  cimg_error_clear (&err);
  cimg_error_clear (&k->worker_err);
  cimg_blob_writer_free (k->blob);
  cimg_inflater_free (k->inflater);
  cimg_sha256_free (k->h_comp);
  cimg_sha256_free (k->h_diff);
  pthread_mutex_destroy (&k->mu);
  pthread_cond_destroy (&k->cv);
  pthread_mutex_destroy (&k->fmu);
  pthread_cond_destroy (&k->fcv);
  free (k->ring);
  free (k->tmpname);
  free (k);
}

void
cimg_chain_id (const char *parent_chain_id, const char *diff_id, char out[CIMG_DIGEST_BUFSIZE])
{
  if (parent_chain_id == NULL || *parent_chain_id == '\0')
    {
      memcpy (out, diff_id, CIMG_DIGEST_BUFSIZE);
      return;
    }
  cleanup_free char *s = xasprintf ("%s %s", parent_chain_id, diff_id);
  cimg_sha256_buf (s, strlen (s), out);
}

bool
cimg_store_has_layer (struct cimg_store *s, const char *chain_id)
{
  if (!cimg_digest_valid (chain_id))
    return false;
  cleanup_free char *path = xasprintf ("layers/%s/layer.json", cimg_digest_hex (chain_id));
  return faccessat (s->dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

static json_t *
load_layer_json (struct cimg_store *s, const char *chain_id, cimg_error_t *err)
{
  if (!cimg_digest_valid (chain_id))
    {
      cimg_error_set (err, EINVAL, "invalid chain ID \"%s\"", chain_id);
      return NULL;
    }
  cleanup_free char *path = xasprintf ("layers/%s/layer.json", cimg_digest_hex (chain_id));
  json_t *j = cimg_json_load_at (s->dirfd, path, 1 << 20, err);
  if (j == NULL)
    cimg_error_wrap (err, "layer %s", chain_id);
  return j;
}

int
cimg_store_layer_info (struct cimg_store *s, const char *chain_id, struct cimg_layer_info *info,
                       cimg_error_t *err)
{
  cleanup_json json_t *j = load_layer_json (s, chain_id, err);
  if (j == NULL)
    return -1;
  memset (info, 0, sizeof *info);
  const char *diff = cimg_json_str (j, "diff_id");
  if (!cimg_digest_valid (diff))
    return cimg_error_set (err, EINVAL, "layer %s: invalid layer.json", chain_id);
  snprintf (info->chain_id, sizeof info->chain_id, "%s", chain_id);
  snprintf (info->diff_id, sizeof info->diff_id, "%s", diff);
  json_t *d = json_array_get (json_object_get (j, "digests"), 0);
  if (json_is_string (d) && cimg_digest_valid (json_string_value (d)))
    snprintf (info->digest, sizeof info->digest, "%s", json_string_value (d));
  const char *mt = cimg_json_str (j, "media_type");
  snprintf (info->media_type, sizeof info->media_type, "%s", mt ? mt : MT_OCI_LAYER_TAR);
  info->blob_size = cimg_json_int (j, "blob_size");
  info->size = cimg_json_int (j, "size");
  return 0;
}

char *
cimg_store_layer_diff_path (const char *chain_id)
{
  return xasprintf ("layers/%s/diff", cimg_digest_hex (chain_id));
}

char *
cimg_store_layer_link (struct cimg_store *s, const char *chain_id, cimg_error_t *err)
{
  cleanup_json json_t *j = load_layer_json (s, chain_id, err);
  if (j == NULL)
    return NULL;
  const char *link = cimg_json_str (j, "link");
  if (link == NULL || strlen (link) != 26 || strchr (link, '/') || strchr (link, '.'))
    {
      cimg_error_set (err, EINVAL, "layer %s: invalid link", chain_id);
      return NULL;
    }
  return xasprintf ("l/%s", link);
}

struct tar_out
{
  int fd;
  struct cimg_sha256 *h;
};

static int
tar_out (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  struct tar_out *t = data;
  cimg_sha256_update (t->h, buf, len);
  if (cimg_write_all (t->fd, buf, len) < 0)
    return cimg_error_sys (err, "write layer tar");
  return 0;
}

int
cimg_store_layer_tar (struct cimg_store *s, const char *chain_id, int fd,
                      char diff_id[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  /* The original uncompressed bytes are what the image's diff_ids name, so they are recreated
     from a kept blob; repacking the directory would give other bytes (and another diff_id). */
  cleanup_json json_t *j = load_layer_json (s, chain_id, err);
  if (j == NULL)
    return -1;
  const char *want = cimg_json_str (j, "diff_id");
  json_t *digests = json_object_get (j, "digests");
  size_t i;
  json_t *v;
  json_array_foreach (digests, i, v)
  {
    const char *d = json_string_value (v);
    if (d == NULL || !cimg_store_has_blob (s, d))
      continue;
    cleanup_close int bfd = cimg_store_open_blob (s, d, err);
    if (bfd < 0)
      return -1;
    if (lseek (fd, 0, SEEK_SET) < 0 || ftruncate (fd, 0) < 0)
      {
        /* A pipe cannot be rewound; only a seekable fd gets a second try. */
        if (i > 0)
          return cimg_error_sys (err, "layer %s: rewind output", chain_id);
      }
    cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
    struct tar_out t = { fd, h };
    struct cimg_inflater *z = cimg_inflater_new (tar_out, &t);
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read (bfd, buf, sizeof buf)) != 0)
      {
        if (n < 0)
          {
            if (errno == EINTR)
              continue;
            rc = cimg_error_sys (err, "read blob %s", d);
            break;
          }
        if ((rc = cimg_inflater_write (z, buf, (size_t)n, err)) < 0)
          break;
      }
    if (rc == 0)
      rc = cimg_inflater_finish (z, err);
    cimg_inflater_free (z);
    if (rc < 0)
      return cimg_error_wrap (err, "layer %s: blob %s", chain_id, d);
    cimg_sha256_final (h, diff_id);
    if (want && strcmp (diff_id, want) != 0)
      return cimg_error_set (err, EIO, "layer %s: blob %s unpacks to %s, not its diff_id %s",
                             chain_id, d, diff_id, want);
    return 0;
  }
  return cimg_error_set (err, ENOENT, "layer %s: no compressed blob of it is kept in the store",
                         chain_id);
}
