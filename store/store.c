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

/* The index is a line format rather than JSON: `cimg images` reads it on every call, and
   jansson's lexer spends ~50 instructions a byte where splitting lines spends one or two
   (bench/store.sh). One record a line, fields separated by one space (no field can hold a
   space: IDs, digests and normalised references never do):
     cimg-index 1
     i <image id> <manifest digest> <created> <size> [<repo digest>...]
     t <full reference with tag> <image id>                                             */
#define INDEX_FILE "index"
#define INDEX_MAGIC "cimg-index 1"
#define INDEX_MAX (256 << 20)

int
cimg_index_read (struct cimg_store *s, char **buf, size_t *len, cimg_error_t *err)
{
  *buf = NULL;
  *len = 0;
  if (faccessat (s->dirfd, INDEX_FILE, F_OK, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT)
    return 0;
  if (cimg_read_file_at (s->dirfd, INDEX_FILE, INDEX_MAX, buf, len, err) < 0)
    return cimg_error_wrap (err, "store %s", s->root);
  size_t m = strlen (INDEX_MAGIC);
  if (*len < m + 1 || memcmp (*buf, INDEX_MAGIC "\n", m + 1) != 0)
    {
      free (*buf);
      *buf = NULL;
      return cimg_error_set (err, EINVAL, "store %s: %s: not a cimg index", s->root, INDEX_FILE);
    }
  return 0;
}

int
cimg_index_next (char **cursor, char **fields, size_t max, size_t *n)
{
  char *p = *cursor;
  while (*p == '\n')
    p++;
  if (*p == '\0')
    return 0;
  char *nl = strchr (p, '\n');
  *cursor = nl ? nl + 1 : p + strlen (p);
  if (nl)
    *nl = '\0';
  *n = 0;
  for (char *f = p; f && *n < max;)
    {
      char *sp = strchr (f, ' ');
      if (sp)
        *sp = '\0';
      fields[(*n)++] = f;
      f = sp ? sp + 1 : NULL;
    }
  return 1;
}

json_t *
cimg_index_load (struct cimg_store *s, cimg_error_t *err)
{
  cleanup_free char *buf = NULL;
  size_t len;
  if (cimg_index_read (s, &buf, &len, err) < 0)
    return NULL;
  json_t *images = json_object (), *tags = json_object ();
  json_t *j = json_pack ("{s:o, s:o}", "images", images, "tags", tags);
  if (buf == NULL)
    return j;
  char *cur = buf + strlen (INDEX_MAGIC) + 1, *f[64];
  size_t n, line = 1;
  while (cimg_index_next (&cur, f, ARRAY_SIZE (f), &n))
    {
      line++;
      if (strcmp (f[0], "i") == 0 && n >= 5 && cimg_digest_valid (f[1]))
        {
          json_t *digests = json_array ();
          for (size_t k = 5; k < n; k++)
            json_array_append_new (digests, json_string (f[k]));
          json_object_set_new (images, f[1],
                               json_pack ("{s:s, s:I, s:I, s:o}", "manifest", f[2], "created",
                                          (json_int_t)strtoll (f[3], NULL, 10), "size",
                                          (json_int_t)strtoll (f[4], NULL, 10), "digests",
                                          digests));
        }
      else if (strcmp (f[0], "t") == 0 && n == 3 && cimg_digest_valid (f[2]))
        json_object_set_new (tags, f[1], json_string (f[2]));
      else
        {
          json_decref (j);
          cimg_error_set (err, EINVAL, "store %s: %s: line %zu is malformed", s->root, INDEX_FILE,
                          line);
          return NULL;
        }
    }
  return j;
}

static char *
index_serialize (json_t *idx)
{
  size_t cap = 4096, len = 0;
  char *out = xmalloc (cap);
#define APPEND(...)                                                                                \
  do                                                                                               \
    {                                                                                              \
      int need_ = snprintf (out + len, cap - len, __VA_ARGS__);                                    \
      while ((size_t)need_ >= cap - len)                                                           \
        {                                                                                          \
          cap *= 2;                                                                                \
          out = xrealloc (out, cap);                                                               \
          need_ = snprintf (out + len, cap - len, __VA_ARGS__);                                    \
        }                                                                                          \
      len += (size_t)need_;                                                                        \
    }                                                                                              \
  while (0)
  APPEND ("%s\n", INDEX_MAGIC);
  const char *k;
  json_t *v;
  json_object_foreach (json_object_get (idx, "images"), k, v)
  {
    const char *m = cimg_json_str (v, "manifest");
    APPEND ("i %s %s %lld %lld", k, m && *m ? m : "-", (long long)cimg_json_int (v, "created"),
            (long long)cimg_json_int (v, "size"));
    size_t i;
    json_t *d;
    json_array_foreach (json_object_get (v, "digests"), i, d) APPEND (" %s", json_string_value (d));
    APPEND ("\n");
  }
  json_object_foreach (json_object_get (idx, "tags"), k, v)
      APPEND ("t %s %s\n", k, json_string_value (v));
#undef APPEND
  return out;
}

static int
index_update_locked (struct cimg_store *s, cimg_index_update_fn fn, void *data, cimg_error_t *err)
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
  cleanup_free char *text = index_serialize (idx);
  return cimg_write_file_atomic_at (s->dirfd, INDEX_FILE, text, strlen (text), 0644, err);
}

int
cimg_index_update (struct cimg_store *s, cimg_index_update_fn fn, void *data, cimg_error_t *err)
{
  /* The store lock (shared at least) before index.lock, in the order rmi takes them: gc and
     check (exclusive) sweep the root's *.tmp-* as debris, and would otherwise delete this
     update's temporary file between its write and its rename (a `tag` racing an `rmi` failed
     with "rename index: No such file or directory"). */
  bool took = s->lock_mode == 0;
  if (took && cimg_store_lock (s, CIMG_LOCK_SHARED, err) < 0)
    return -1;
  int rc = index_update_locked (s, fn, data, err);
  if (took)
    cimg_store_unlock (s);
  return rc;
}
