/* A container's write layer read back: `cimg diff` and `cimg commit`. The upper dir is in
   overlay form (whiteout = char 0:0, opaque dir = trusted.overlay.opaque=y); what it changes is
   judged against a view of the image's merged layers that the caller mounted, so every
   question of "did the image have this" is answered by the kernel's own overlay rules. */
#include "store/container-fs.h"
#include "store/image.h"
#include "store/store-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <time.h>

#define XATTR_OPAQUE "trusted.overlay.opaque"
/* sha256 of 1024 zero bytes: an empty tar, Docker's DigestSHA256EmptyTar. */
#define EMPTY_TAR_DIFF_ID "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"

void
cimg_changes_free (struct cimg_change *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (v[i].path);
  free (v);
}

char **
cimg_container_placeholders (const struct cimg_container *c)
{
  static const char *const fixed[]
      = { "/proc", "/sys", "/dev", "/etc/hosts", "/etc/hostname", "/etc/resolv.conf" };
  char **v = NULL;
  for (size_t i = 0; i < ARRAY_SIZE (fixed); i++)
    cimg_strv_append (&v, fixed[i]);
  json_t *ms = json_object_get (json_object_get (c->config, "HostConfig"), "Mounts");
  size_t i;
  json_t *m;
  json_array_foreach (ms, i, m)
  {
    const char *d = cimg_json_str (m, "Destination");
    if (d == NULL || d[0] != '/')
      continue;
    /* "/data/" and "/data" name one mount point. */
    cleanup_free char *clean = xstrdup (d);
    size_t len = strlen (clean);
    while (len > 1 && clean[len - 1] == '/')
      clean[--len] = '\0';
    cimg_strv_append (&v, clean);
  }
  return v;
}

static bool
is_placeholder (char *const *ph, const char *path)
{
  return cimg_strv_contains (ph, path);
}

/* A directory the runtime may have made only to hold a placeholder ("/etc" for /etc/hosts). */
static bool
is_placeholder_parent (char *const *ph, const char *path)
{
  size_t len = strlen (path);
  for (size_t i = 0; ph && ph[i]; i++)
    if (strncmp (ph[i], path, len) == 0 && ph[i][len] == '/')
      return true;
  return false;
}

static bool
is_whiteout (const struct stat *st)
{
  return S_ISCHR (st->st_mode) && st->st_rdev == makedev (0, 0);
}

static bool
is_opaque (int fd)
{
  char v[2];
  ssize_t n = fgetxattr (fd, XATTR_OPAQUE, v, sizeof v);
  return n == 1 && v[0] == 'y';
}

static int
strcmp_p (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

/* The names in directory fd (not "." or ".."), sorted bytewise as Go sorts them. */
static int
sorted_names (int fd, char ***out, size_t *n, cimg_error_t *err)
{
  *out = NULL;
  *n = 0;
  int dup_fd = openat (fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dup_fd < 0)
    return cimg_error_sys (err, "open directory");
  cleanup_dir DIR *d = fdopendir (dup_fd);
  if (d == NULL)
    {
      close (dup_fd);
      return cimg_error_sys (err, "read directory");
    }
  cleanup_strv char **v = NULL;
  size_t count = 0;
  struct dirent *de;
  errno = 0;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
        {
          cimg_strv_append (&v, de->d_name);
          count++;
        }
      errno = 0;
    }
  if (errno != 0)
    return cimg_error_sys (err, "read directory");
  if (count > 0)
    qsort (v, count, sizeof *v, strcmp_p);
  *out = steal_pointer (&v);
  *n = count;
  return 0;
}

static bool
dir_is_empty (int dfd, const char *name)
{
  int fd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return false;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return false;
    }
  bool empty = true;
  struct dirent *de;
  while (empty && (de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      empty = false;
  closedir (d);
  return empty;
}

/* A mount point the runtime made: one of the placeholder paths, absent from the image, and
   empty (a regular file of 0 bytes or a directory without entries). */
static bool
skip_placeholder (char *const *ph, const char *path, int ufd, const char *name,
                  const struct stat *st, bool in_lower)
{
  if (in_lower || !is_placeholder (ph, path))
    return false;
  if (S_ISREG (st->st_mode))
    return st->st_size == 0;
  if (S_ISDIR (st->st_mode))
    return dir_is_empty (ufd, name);
  return false;
}

/* lstat of name in the lower view's directory lfd (-1: the image has nothing here). */
static bool
lower_stat (int lfd, const char *name, struct stat *st)
{
  if (lfd < 0)
    return false;
  return fstatat (lfd, name, st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* ---------------------------------------------------------------- diff */

struct diff_ctx
{
  char *const *ph;
  struct cimg_change *v;
  size_t n, cap;
  cimg_error_t *err;
};

static void
emit_at (struct diff_ctx *c, size_t pos, char kind, const char *path)
{
  if (c->n == c->cap)
    {
      c->cap = c->cap ? c->cap * 2 : 64;
      c->v = xrealloc (c->v, c->cap * sizeof *c->v);
    }
  memmove (&c->v[pos + 1], &c->v[pos], (c->n - pos) * sizeof *c->v);
  c->v[pos] = (struct cimg_change){ .kind = kind, .path = xstrdup (path) };
  c->n++;
}

static void
emit (struct diff_ctx *c, char kind, const char *path)
{
  emit_at (c, c->n, kind, path);
}

/* Walk directory ufd of the write layer at path ("" for the root). lfd is the image's
   directory at the same path, or -1; hidden: the image's entries here are hidden (an opaque
   directory here or above), so those the write layer lacks are reported deleted. */
static int
diff_dir (struct diff_ctx *c, int ufd, int lfd, const char *path, bool hidden)
{
  cleanup_strv char **names = NULL;
  size_t n = 0;
  if (sorted_names (ufd, &names, &n, c->err) < 0)
    return cimg_error_wrap (c->err, "%s", *path ? path : "/");
  cleanup_strv char **gone = NULL;
  size_t ngone = 0;
  if (hidden && lfd >= 0)
    {
      cleanup_strv char **lnames = NULL;
      size_t ln = 0;
      if (sorted_names (lfd, &lnames, &ln, c->err) < 0)
        return cimg_error_wrap (c->err, "%s (image)", *path ? path : "/");
      for (size_t i = 0; i < ln; i++)
        if (n == 0 || bsearch (&lnames[i], names, n, sizeof *names, strcmp_p) == NULL)
          {
            cimg_strv_append (&gone, lnames[i]);
            ngone++;
          }
    }

  size_t i = 0, g = 0;
  while (i < n || g < ngone)
    {
      if (g < ngone && (i >= n || strcmp (gone[g], names[i]) < 0))
        {
          cleanup_free char *p = xasprintf ("%s/%s", path, gone[g++]);
          emit (c, 'D', p);
          continue;
        }
      const char *name = names[i++];
      cleanup_free char *p = xasprintf ("%s/%s", path, name);
      struct stat st, lst;
      if (fstatat (ufd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          if (errno == ENOENT)
            continue; /* removed while we read (a running container) */
          return cimg_error_sys (c->err, "%s", p);
        }
      if (is_whiteout (&st))
        {
          emit (c, 'D', p);
          continue;
        }
      bool in_lower = lower_stat (lfd, name, &lst);
      if (skip_placeholder (c->ph, p, ufd, name, &st, in_lower))
        continue;
      if (!S_ISDIR (st.st_mode))
        {
          emit (c, in_lower ? 'C' : 'A', p);
          continue;
        }
      cleanup_close int cfd = openat (ufd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0)
        {
          if (errno == ENOENT)
            continue;
          return cimg_error_sys (c->err, "%s", p);
        }
      bool opaque = is_opaque (cfd);
      bool lower_dir = in_lower && S_ISDIR (lst.st_mode);
      cleanup_close int clfd = -1;
      if (lower_dir)
        {
          clfd = openat (lfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (clfd < 0)
            return cimg_error_sys (c->err, "%s (image)", p);
        }
      size_t pos = c->n;
      if (diff_dir (c, cfd, clfd, p, hidden || opaque) < 0)
        return -1;
      bool below = c->n > pos;
      if (!in_lower)
        {
          /* A directory the runtime made only for placeholders is not a change either. */
          if (below || !is_placeholder_parent (c->ph, p))
            emit_at (c, pos, 'A', p);
        }
      else if (!lower_dir || below || opaque || hidden || st.st_mode != lst.st_mode
               || st.st_uid != lst.st_uid || st.st_gid != lst.st_gid)
        emit_at (c, pos, 'C', p);
    }
  return 0;
}

int
cimg_container_changes (int upperfd, int lowerfd, char *const *placeholders,
                        struct cimg_change **out, size_t *n, cimg_error_t *err)
{
  struct diff_ctx c = { .ph = placeholders, .err = err };
  if (diff_dir (&c, upperfd, lowerfd, "", false) < 0)
    {
      cimg_changes_free (c.v, c.n);
      return -1;
    }
  *out = c.v;
  *n = c.n;
  return 0;
}

/* ---------------------------------------------------------------- commit */

/* Copy the xattrs of fd (a directory of the upper dir) to dfd, trusted.overlay.opaque
   included: the packer reads it back as ".wh..wh..opq". */
static int
copy_xattrs (int fd, int dfd, const char *path, cimg_error_t *err)
{
  ssize_t n = flistxattr (fd, NULL, 0);
  if (n <= 0)
    return n < 0 && errno != ENOTSUP ? cimg_error_sys (err, "%s: list xattrs", path) : 0;
  cleanup_free char *list = xmalloc ((size_t)n);
  n = flistxattr (fd, list, (size_t)n);
  if (n < 0)
    return cimg_error_sys (err, "%s: list xattrs", path);
  for (ssize_t i = 0; i < n; i += (ssize_t)strlen (list + i) + 1)
    {
      const char *name = list + i;
      if (cimg_str_has_prefix (name, "trusted.overlay.") && strcmp (name, XATTR_OPAQUE) != 0)
        continue;
      ssize_t len = fgetxattr (fd, name, NULL, 0);
      if (len < 0)
        continue;
      cleanup_free char *val = xmalloc ((size_t)len + 1);
      len = fgetxattr (fd, name, val, (size_t)len);
      if (len < 0)
        continue;
      if (fsetxattr (dfd, name, val, (size_t)len, 0) < 0)
        return cimg_error_sys (err, "%s: set xattr %s", path, name);
    }
  return 0;
}

/* Mirror directory ufd of the upper dir into dfd: subdirectories made anew (owner, mode, xattrs,
   times), everything else hard-linked, placeholders left out. *count: entries made. */
static int
shadow_dir (int ufd, int lfd, const char *path, char *const *ph, int dfd, size_t *count,
            cimg_error_t *err)
{
  cleanup_strv char **names = NULL;
  size_t n = 0;
  if (sorted_names (ufd, &names, &n, err) < 0)
    return cimg_error_wrap (err, "%s", *path ? path : "/");
  for (size_t i = 0; i < n; i++)
    {
      const char *name = names[i];
      cleanup_free char *p = xasprintf ("%s/%s", path, name);
      struct stat st, lst;
      if (fstatat (ufd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        {
          if (errno == ENOENT)
            continue;
          return cimg_error_sys (err, "%s", p);
        }
      bool in_lower = lower_stat (lfd, name, &lst);
      if (!is_whiteout (&st) && skip_placeholder (ph, p, ufd, name, &st, in_lower))
        continue;
      if (!S_ISDIR (st.st_mode))
        {
          if (S_ISSOCK (st.st_mode))
            continue;
          if (linkat (ufd, name, dfd, name, 0) < 0)
            {
              if (errno == ENOENT)
                continue;
              return cimg_error_sys (err, "%s: link", p);
            }
          (*count)++;
          continue;
        }
      cleanup_close int cfd = openat (ufd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0)
        return cimg_error_sys (err, "%s", p);
      if (mkdirat (dfd, name, 0700) < 0)
        return cimg_error_sys (err, "%s: mkdir", p);
      cleanup_close int cdfd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (cdfd < 0)
        return cimg_error_sys (err, "%s: open", p);
      /* Below an opaque directory the image has nothing: what is there is all new. */
      bool opaque = is_opaque (cfd);
      cleanup_close int clfd = -1;
      if (in_lower && S_ISDIR (lst.st_mode) && !opaque)
        clfd = openat (lfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      size_t sub = 0;
      if (shadow_dir (cfd, clfd, p, ph, cdfd, &sub, err) < 0)
        return -1;
      /* Left out, as diff leaves them out: a directory the runtime made only for placeholders,
         and one the image has that was copied up (the runtime's mount points inside it touch
         its mtime) with nothing committed below it and its mode and owner unchanged. */
      bool lower_dir = in_lower && S_ISDIR (lst.st_mode);
      if (sub == 0 && !opaque
          && ((!in_lower && is_placeholder_parent (ph, p))
              || (lower_dir && st.st_mode == lst.st_mode && st.st_uid == lst.st_uid
                  && st.st_gid == lst.st_gid)))
        {
          if (unlinkat (dfd, name, AT_REMOVEDIR) < 0)
            return cimg_error_sys (err, "%s: rmdir", p);
          continue;
        }
      if (copy_xattrs (cfd, cdfd, p, err) < 0)
        return -1;
      if (fchown (cdfd, st.st_uid, st.st_gid) < 0 || fchmod (cdfd, st.st_mode & 07777) < 0)
        return cimg_error_sys (err, "%s: chown/chmod", p);
      struct timespec ts[2] = { st.st_atim, st.st_mtim };
      if (futimens (cdfd, ts) < 0)
        return cimg_error_sys (err, "%s: set times", p);
      (*count)++;
    }
  return 0;
}

static int
sink_write (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  return cimg_layer_sink_write (data, buf, len, err);
}

static void
now_rfc3339 (char *buf, size_t n)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  cimg_time_rfc3339 (ts.tv_sec, ts.tv_nsec, buf, n);
}

static int
do_commit (struct cimg_store *s, const struct cimg_image *base, int upperfd, int lowerfd,
           int ctrdirfd, char *const *ph, const struct cimg_commit_opts *o,
           char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  char hex[65];
  cimg_random_hex64 (hex);
  char tmp[64];
  snprintf (tmp, sizeof tmp, "commit.tmp-%.16s", hex);
  if (mkdirat (ctrdirfd, tmp, 0700) < 0)
    return cimg_error_sys (err, "mkdir %s", tmp);
  int rc = -1;
  struct cimg_layer_info info;
  bool empty = true;
  {
    cleanup_close int tfd = openat (ctrdirfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    size_t count = 0;
    if (tfd < 0)
      cimg_error_sys (err, "open %s", tmp);
    else if (shadow_dir (upperfd, lowerfd, "", ph, tfd, &count, err) == 0)
      {
        empty = count == 0;
        if (empty)
          rc = 0;
        else
          {
            const char *parent = base->n_layers ? base->layers[base->n_layers - 1].chain_id : NULL;
            struct cimg_layer_sink *k = cimg_layer_sink_new (s, parent, CIMG_SINK_KEEP_BLOB, err);
            if (k != NULL)
              {
                rc = cimg_layer_pack (tfd, CIMG_PACK_OVERLAY, sink_write, k, err);
                if (rc == 0)
                  rc = cimg_layer_sink_finish (k, NULL, NULL, &info, err);
                cimg_layer_sink_free (k);
              }
          }
      }
  }
  {
    cimg_error_t e = { 0 };
    cimg_rm_rf_at (ctrdirfd, tmp, &e);
    cimg_error_clear (&e);
  }
  if (rc < 0)
    return cimg_error_wrap (err, "write layer");
  if (!empty && strcmp (info.diff_id, EMPTY_TAR_DIFF_ID) == 0)
    empty = true;

  char now[64];
  now_rfc3339 (now, sizeof now);
  cleanup_json json_t *cfg = json_deep_copy (base->config);
  if (!json_is_object (cfg))
    return cimg_error_set (err, EINVAL, "image %s has no config", base->id);
  json_object_set (cfg, "config", o->config);
  json_object_set_new (cfg, "container", json_string (o->container_id));
  json_object_set_new (cfg, "created", json_string (now));
  if (o->author && *o->author)
    json_object_set_new (cfg, "author", json_string (o->author));
  json_t *h = json_object_get (cfg, "history");
  if (!json_is_array (h))
    {
      h = json_array ();
      json_object_set_new (cfg, "history", h);
    }
  json_t *he = json_pack ("{s:s, s:s}", "created", now, "created_by", o->created_by ?: "");
  if (o->author && *o->author)
    json_object_set_new (he, "author", json_string (o->author));
  if (o->comment && *o->comment)
    json_object_set_new (he, "comment", json_string (o->comment));
  if (empty)
    json_object_set_new (he, "empty_layer", json_true ());
  json_array_append_new (h, he);

  size_t nl = base->n_layers + (empty ? 0 : 1);
  cleanup_free struct cimg_image_layer *layers = xzalloc ((nl + 1) * sizeof *layers);
  if (base->n_layers)
    memcpy (layers, base->layers, base->n_layers * sizeof *layers);
  if (!empty)
    {
      struct cimg_image_layer *l = &layers[base->n_layers];
      memcpy (l->chain_id, info.chain_id, sizeof l->chain_id);
      memcpy (l->diff_id, info.diff_id, sizeof l->diff_id);
      memcpy (l->digest, info.digest, sizeof l->digest);
      /* The kept blob is the plain tar, as the builder keeps RUN layers. */
      snprintf (l->media_type, sizeof l->media_type, "%s", MT_DOCKER_LAYER_TAR);
      l->blob_size = info.blob_size;
      l->size = info.size;
      json_t *rootfs = json_object_get (cfg, "rootfs");
      if (!json_is_object (rootfs))
        {
          rootfs = json_object ();
          json_object_set_new (cfg, "rootfs", rootfs);
        }
      json_object_set_new (rootfs, "type", json_string ("layers"));
      json_t *d = json_object_get (rootfs, "diff_ids");
      if (!json_is_array (d))
        {
          d = json_array ();
          json_object_set_new (rootfs, "diff_ids", d);
        }
      json_array_append_new (d, json_string (info.diff_id));
    }
  cleanup_free char *bytes = json_dumps (cfg, JSON_COMPACT);
  if (bytes == NULL)
    return cimg_error_set (err, EINVAL, "cannot encode the image config");
  char id[CIMG_DIGEST_BUFSIZE];
  if (cimg_store_add_image_ref (s, bytes, strlen (bytes), NULL, 0, layers, nl, NULL, NULL, o->tag,
                                id, err)
      < 0)
    return -1;
  memcpy (id_out, id, CIMG_DIGEST_BUFSIZE);
  return 0;
}

int
cimg_container_commit (struct cimg_store *s, const struct cimg_image *base, int upperfd,
                       int lowerfd, int ctrdirfd, char *const *placeholders,
                       const struct cimg_commit_opts *o, char id_out[CIMG_DIGEST_BUFSIZE],
                       cimg_error_t *err)
{
  if (o->tag)
    {
      cleanup_ref struct cimg_ref *r = cimg_ref_parse (o->tag, err);
      if (r == NULL)
        return -1;
      if (r->digest != NULL)
        return cimg_error_set (err, EINVAL, "tag \"%s\": a digest reference cannot be a tag",
                               o->tag);
    }
  /* Held shared for the whole commit, as every content writer (see store.h): gc must not take
     the new layer away before the image that references it is recorded. */
  bool took = false;
  if (s->lock_mode == 0)
    {
      if (cimg_store_lock (s, CIMG_LOCK_SHARED, err) < 0)
        return -1;
      took = true;
    }
  int rc = do_commit (s, base, upperfd, lowerfd, ctrdirfd, placeholders, o, id_out, err);
  if (took)
    cimg_store_unlock (s);
  return rc;
}
