/* The build executor: runs a parsed Dockerfile against the store. Each stage keeps a state (the
   whole image config and its layers); metadata instructions change the config, RUN runs a
   runtime container over the state's layers and packs its upper dir, COPY/ADD write their files
   into a temporary tree in overlay-upper form and pack it. Every step's result is recorded in
   the step cache (build/cache.c) under a key chained from the parent state's key.

   Temporary files live in <root>/tmp-build-<random>/, a name gc and check treat as debris, so a
   killed build leaves nothing they would not sweep. */

#include "build/build-exec.h"
#include "build/build-internal.h"
#include "registry/registry.h"
#include "runtime/runtime.h"
#include "runtime/user.h"
#include "store/container.h"
#include "store/store-internal.h"

#include <archive.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <time.h>

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define NOP "/bin/sh -c #(nop) "

/* ---------------------------------------------------------------- state */

struct state
{
  json_t *config; /* the whole image config */
  struct cimg_image_layer *layers;
  size_t n_layers;
  char key[CIMG_DIGEST_BUFSIZE];
  char **args; /* ARGs in scope: "K=V" (declared with a value) */
  bool done;
};

static void
state_clear (struct state *st)
{
  json_decref (st->config);
  free (st->layers);
  cimg_strv_free (st->args);
  memset (st, 0, sizeof *st);
}

struct stage
{
  size_t first, end;
  char *base;
  char *name;
  bool needed;
  struct state st;
};

struct bctx
{
  struct cimg_store *s;
  const struct cimg_build_opts *o;
  const struct cimg_dockerfile *df;
  int ctxfd;
  struct cimg_dockerignore *di;
  char *rootabs; /* absolute store root */
  char tmp[80];  /* "tmp-build-<hex>" */
  int tmpfd;
  unsigned seq;
  char **meta;     /* ARGs before the first FROM, with values */
  char **consumed; /* build args that some ARG declared */
  struct stage *stages;
  size_t nst;
  int step, nsteps;
  int run_exit;
};

static void out (struct bctx *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static void
out (struct bctx *b, const char *fmt, ...)
{
  if (b->o->out == NULL)
    return;
  va_list ap;
  va_start (ap, fmt);
  vfprintf (b->o->out, fmt, ap);
  va_end (ap);
  fflush (b->o->out);
}

static const char *
env_get (char *const *env, const char *name)
{
  size_t n = strlen (name);
  const char *v = NULL;
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp (env[i], name, n) == 0 && env[i][n] == '=')
      v = env[i] + n + 1;
  return v;
}

static void
env_set (char ***env, const char *k, const char *v)
{
  cleanup_free char *kv = xasprintf ("%s=%s", k, v);
  size_t n = strlen (k);
  for (size_t i = 0; *env && (*env)[i]; i++)
    if (strncmp ((*env)[i], k, n) == 0 && (*env)[i][n] == '=')
      {
        free ((*env)[i]);
        (*env)[i] = steal_pointer (&kv);
        return;
      }
  cimg_strv_append (env, kv);
}

static json_t *
cfg_obj (struct state *st)
{
  json_t *c = json_object_get (st->config, "config");
  if (!json_is_object (c))
    {
      c = json_object ();
      json_object_set_new (st->config, "config", c);
    }
  return c;
}

static json_t *
obj_field (json_t *obj, const char *key)
{
  json_t *o = json_object_get (obj, key);
  if (!json_is_object (o))
    {
      o = json_object ();
      json_object_set_new (obj, key, o);
    }
  return o;
}

/* The environment words are expanded in: the ARGs in scope, then the config's Env (ENV wins
   over ARG, as Docker). */
static char **
expand_env (struct state *st)
{
  char **env = NULL;
  cimg_strv_append (&env, "");
  free (env[0]);
  env[0] = NULL;
  for (size_t i = 0; st->args && st->args[i]; i++)
    cimg_strv_append (&env, st->args[i]);
  size_t i;
  json_t *e;
  json_array_foreach (json_object_get (cfg_obj (st), "Env"), i, e) if (json_is_string (e))
      cimg_strv_append (&env, json_string_value (e));
  return env;
}

static void
now_rfc3339 (char *buf, size_t n)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  cimg_time_rfc3339 (ts.tv_sec, ts.tv_nsec, buf, n);
}

static void
add_history (struct state *st, const char *created_by, bool empty)
{
  char now[64];
  now_rfc3339 (now, sizeof now);
  json_t *h = json_object_get (st->config, "history");
  if (!json_is_array (h))
    {
      h = json_array ();
      json_object_set_new (st->config, "history", h);
    }
  json_t *e = json_pack ("{s:s, s:s}", "created", now, "created_by", created_by);
  if (empty)
    json_object_set_new (e, "empty_layer", json_true ());
  json_array_append_new (h, e);
  json_object_set_new (st->config, "created", json_string (now));
}

static void
add_layer (struct state *st, const struct cimg_layer_info *info)
{
  st->layers = xrealloc (st->layers, (st->n_layers + 1) * sizeof *st->layers);
  struct cimg_image_layer *l = &st->layers[st->n_layers++];
  memset (l, 0, sizeof *l);
  memcpy (l->chain_id, info->chain_id, sizeof l->chain_id);
  memcpy (l->diff_id, info->diff_id, sizeof l->diff_id);
  memcpy (l->digest, info->digest, sizeof l->digest);
  /* The kept blob is the plain tar (see pack_into_layer): Docker's media type for it. */
  snprintf (l->media_type, sizeof l->media_type, "%s", MT_DOCKER_LAYER_TAR);
  l->blob_size = info->blob_size;
  l->size = info->size;
  json_t *rootfs = obj_field (st->config, "rootfs");
  json_object_set_new (rootfs, "type", json_string ("layers"));
  json_t *d = json_object_get (rootfs, "diff_ids");
  if (!json_is_array (d))
    {
      d = json_array ();
      json_object_set_new (rootfs, "diff_ids", d);
    }
  json_array_append_new (d, json_string (info->diff_id));
}

/* ---------------------------------------------------------------- cache records */

static json_t *
state_record (struct state *st)
{
  json_t *layers = json_array ();
  for (size_t i = 0; i < st->n_layers; i++)
    {
      struct cimg_image_layer *l = &st->layers[i];
      json_array_append_new (
          layers, json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I}", "chain_id", l->chain_id, "diff_id",
                             l->diff_id, "digest", l->digest, "media_type", l->media_type,
                             "blob_size", (json_int_t)l->blob_size, "size", (json_int_t)l->size));
    }
  return json_pack ("{s:O, s:o}", "config", st->config, "layers", layers);
}

static void
state_from_record (struct state *st, json_t *rec)
{
  json_decref (st->config);
  st->config = json_deep_copy (json_object_get (rec, "config"));
  json_t *layers = json_object_get (rec, "layers");
  free (st->layers);
  st->n_layers = json_array_size (layers);
  st->layers = xzalloc ((st->n_layers + 1) * sizeof *st->layers);
  size_t i;
  json_t *l;
  json_array_foreach (layers, i, l)
  {
    struct cimg_image_layer *d = &st->layers[i];
    snprintf (d->chain_id, sizeof d->chain_id, "%s", cimg_json_str (l, "chain_id"));
    snprintf (d->diff_id, sizeof d->diff_id, "%s", cimg_json_str (l, "diff_id"));
    snprintf (d->digest, sizeof d->digest, "%s", cimg_json_str (l, "digest") ?: "");
    snprintf (d->media_type, sizeof d->media_type, "%s", cimg_json_str (l, "media_type") ?: "");
    d->blob_size = cimg_json_int (l, "blob_size");
    d->size = cimg_json_int (l, "size");
  }
}

/* Look key up (unless --no-cache): on a hit the state becomes the record's. */
static bool
cache_hit (struct bctx *b, struct state *st, const char *key)
{
  if (b->o->no_cache)
    return false;
  cleanup_json json_t *rec = cimg_build_cache_get (b->s, key);
  if (rec == NULL)
    return false;
  state_from_record (st, rec);
  snprintf (st->key, sizeof st->key, "%s", key);
  out (b, " ---> Using cache\n");
  return true;
}

static int
cache_store (struct bctx *b, struct state *st, const char *key, cimg_error_t *err)
{
  snprintf (st->key, sizeof st->key, "%s", key);
  cleanup_json json_t *rec = state_record (st);
  return cimg_build_cache_put (b->s, key, rec, err);
}

/* ---------------------------------------------------------------- layers */

static int
sink_write (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  return cimg_layer_sink_write (data, buf, len, err);
}

/* Pack the tree under dirfd (overlay upper form) into a new layer on top of st. The blob is kept
   as the plain tar: no compression CPU on the build's critical path, its digest is its diff_id,
   and save/push can use it as is (Docker's legacy builder stores layers uncompressed too). */
static int
pack_into_layer (struct bctx *b, struct state *st, int dirfd, cimg_error_t *err)
{
  const char *parent = st->n_layers ? st->layers[st->n_layers - 1].chain_id : NULL;
  struct cimg_layer_sink *k = cimg_layer_sink_new (b->s, parent, CIMG_SINK_KEEP_BLOB, err);
  if (k == NULL)
    return -1;
  struct cimg_layer_info info;
  int rc = cimg_layer_pack (dirfd, CIMG_PACK_OVERLAY, sink_write, k, err);
  if (rc == 0)
    rc = cimg_layer_sink_finish (k, NULL, NULL, &info, err);
  cimg_layer_sink_free (k);
  if (rc < 0)
    return -1;
  add_layer (st, &info);
  return 0;
}

static bool
dir_empty (int dirfd)
{
  int fd = openat (dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return false;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return false;
    }
  struct dirent *e;
  bool empty = true;
  while ((e = readdir (d)))
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, ".."))
      {
        empty = false;
        break;
      }
  closedir (d);
  return empty;
}

/* A fresh work directory under the build's temp dir: "tmp-build-X/<n>". */
static char *
new_workdir (struct bctx *b, cimg_error_t *err)
{
  char *name = xasprintf ("%s/%u", b->tmp, ++b->seq);
  if (mkdirat (cimg_store_dirfd (b->s), name, 0700) < 0)
    {
      cimg_error_sys (err, "mkdir %s", name);
      free (name);
      return NULL;
    }
  return name;
}

static void
drop_workdir (struct bctx *b, const char *name)
{
  cimg_error_t e = { 0 };
  cimg_rm_rf_at (cimg_store_dirfd (b->s), name, &e);
  cimg_error_clear (&e);
}

/* A read-only overlay of the layers (the merged view of a state), mounted in this process's
   private mount namespace at <dir>/view. The empty dir <tmp>/empty is the bottom lower, so even
   zero or one layer make a valid lower-only overlay. Returns an fd of the view's root. */
static int
mount_view (struct bctx *b, const struct cimg_image_layer *layers, size_t n, const char *dir,
            cimg_error_t *err)
{
  struct sbuf o = { 0 };
  sbuf_adds (&o, "lowerdir=");
  for (size_t i = n; i-- > 0;)
    {
      cleanup_free char *link = cimg_store_layer_link (b->s, layers[i].chain_id, err);
      if (link == NULL)
        {
          free (o.p);
          return -1;
        }
      sbuf_addf (&o, "%s/%s:", b->rootabs, link);
    }
  sbuf_addf (&o, "%s/%s/empty", b->rootabs, b->tmp);
  cleanup_free char *opts = sbuf_steal (&o);
  cleanup_free char *target = xasprintf ("%s/%s/view", b->rootabs, dir);
  if (mkdir (target, 0700) < 0)
    return cimg_error_sys (err, "mkdir %s", target);
  if (mount ("overlay", target, "overlay", MS_RDONLY, opts) < 0)
    return cimg_error_sys (err, "mount a view of the stage");
  int fd = open (target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    {
      cimg_error_sys (err, "open %s", target);
      umount2 (target, MNT_DETACH);
    }
  return fd;
}

static void
umount_view (struct bctx *b, const char *dir)
{
  cleanup_free char *target = xasprintf ("%s/%s/view", b->rootabs, dir);
  umount2 (target, MNT_DETACH);
}

/* ---------------------------------------------------------------- users */

static int
read_state_file (struct bctx *b, struct state *st, const char *path, char **outp, cimg_error_t *err)
{
  *outp = NULL;
  int *fds = xzalloc ((st->n_layers + 1) * sizeof (int));
  size_t n = 0;
  int rc = 0;
  for (size_t i = st->n_layers; i-- > 0;)
    {
      cleanup_free char *p = cimg_store_layer_diff_path (st->layers[i].chain_id);
      int fd = openat (cimg_store_dirfd (b->s), p, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        {
          rc = cimg_error_sys (err, "layer %s", st->layers[i].chain_id);
          break;
        }
      fds[n++] = fd;
    }
  if (rc == 0 && cimg_layers_read_file (fds, n, path, 4 << 20, outp, err) < 0)
    rc = -1;
  for (size_t i = 0; i < n; i++)
    close (fds[i]);
  free (fds);
  return rc;
}

/* "user[:group]" → IDs, as runc: names must exist in the stage's /etc/passwd and /etc/group,
   numbers need not. */
static int
resolve_user (struct bctx *b, struct state *st, const char *spec, uid_t *uid, gid_t *gid,
              cimg_error_t *err)
{
  cleanup_free char *passwd = NULL, *group = NULL;
  if (read_state_file (b, st, "/etc/passwd", &passwd, err) < 0
      || read_state_file (b, st, "/etc/group", &group, err) < 0)
    return -1;
  struct cimg_user u = { 0 };
  int rc = cimg_user_resolve (spec, passwd, group, NULL, &u, err);
  *uid = u.uid;
  *gid = u.gid;
  cimg_user_clear (&u);
  return rc;
}

/* ---------------------------------------------------------------- paths */

/* Clean an absolute path: no ".", "..", "//"; ".." stops at "/". Newly allocated. */
static char *
clean_abs (const char *p)
{
  char **parts = NULL;
  cleanup_free char *copy = xstrdup (p);
  char *save = NULL;
  for (char *t = strtok_r (copy, "/", &save); t; t = strtok_r (NULL, "/", &save))
    {
      if (strcmp (t, ".") == 0)
        continue;
      if (strcmp (t, "..") == 0)
        {
          size_t n = cimg_strv_len (parts);
          if (n)
            {
              free (parts[n - 1]);
              parts[n - 1] = NULL;
            }
          continue;
        }
      cimg_strv_append (&parts, t);
    }
  struct sbuf s = { 0 };
  for (size_t i = 0; parts && parts[i]; i++)
    sbuf_addf (&s, "/%s", parts[i]);
  cimg_strv_free (parts);
  if (s.n == 0)
    sbuf_addc (&s, '/');
  return sbuf_steal (&s);
}

/* Resolve the symlinks among the directories of path (absolute, clean) inside the view, as the
   kernel would inside the container; the last component is kept as is. */
static char *
resolve_parents (int viewfd, const char *path)
{
  cleanup_free char *cur = xstrdup ("");
  cleanup_free char *rest = xstrdup (path);
  int loops = 0;
  for (;;)
    {
      char *p = rest;
      while (*p == '/')
        p++;
      char *sl = strchr (p, '/');
      if (sl == NULL)
        {
          char *r = xasprintf ("%s/%s", cur, p);
          char *c = clean_abs (r);
          free (r);
          return c;
        }
      cleanup_free char *comp = xstrndup (p, (size_t)(sl - p));
      cleanup_free char *next = xasprintf ("%s/%s", cur, comp);
      char target[4096];
      ssize_t n = -1;
      if (loops < 40)
        {
          cleanup_free char *to_free = NULL;
          char *base = NULL;
          cleanup_close int pfd = cimg_open_parent_in_root (viewfd, next, &base, &to_free);
          if (pfd >= 0)
            n = readlinkat (pfd, base, target, sizeof target - 1);
        }
      if (n > 0)
        {
          target[n] = '\0';
          loops++;
          char *nr = target[0] == '/' ? xasprintf ("%s%s", target, sl)
                                      : xasprintf ("%s/%s%s", cur, target, sl);
          char *c = clean_abs (nr);
          free (nr);
          free (rest);
          rest = c;
          free (cur);
          cur = xstrdup ("");
          continue;
        }
      free (cur);
      cur = steal_pointer (&next);
      char *nr = xstrdup (sl);
      free (rest);
      rest = nr;
    }
}

/* ---------------------------------------------------------------- copying */

struct copy_ctx
{
  struct bctx *b;
  struct cimg_sha256 *h; /* hash mode: digest of names, types, modes, owners, contents */
  bool use_ignore;       /* sources come from the context: .dockerignore applies */
  bool chown;
  uid_t uid;
  gid_t gid;
  mode_t chmod; /* 0: keep the source's */
};

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

static void
hash_str (struct cimg_sha256 *h, const char *s)
{
  cimg_sha256_update (h, s, strlen (s) + 1);
}

static mode_t
mode_of (struct copy_ctx *c, const struct stat *st)
{
  if (c->chmod && !S_ISLNK (st->st_mode))
    return c->chmod;
  return st->st_mode & 07777;
}

static int copy_node (struct copy_ctx *c, int fd, const struct stat *st, const char *rel,
                      int dstdir, const char *dstname, const char *dstrel, cimg_error_t *err);

/* The entries of the directory fd (sorted, so the hash does not depend on readdir order),
   copied into dstdir (or only hashed when dstdir < 0). */
static int
copy_children (struct copy_ctx *c, int fd, const char *rel, int dstdir, const char *dstrel,
               cimg_error_t *err)
{
  int dfd = openat (fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return cimg_error_sys (err, "open %s", rel);
  cleanup_dir DIR *d = fdopendir (dfd);
  if (d == NULL)
    {
      close (dfd);
      return cimg_error_sys (err, "open %s", rel);
    }
  cleanup_strv char **names = NULL;
  struct dirent *e;
  while ((e = readdir (d)))
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, ".."))
      cimg_strv_append (&names, e->d_name);
  size_t n = cimg_strv_len (names);
  if (n > 1)
    qsort (names, n, sizeof *names, cmp_str);
  for (size_t i = 0; i < n; i++)
    {
      cleanup_free char *crel = *rel ? xasprintf ("%s/%s", rel, names[i]) : xstrdup (names[i]);
      cleanup_free char *cdst = xasprintf ("%s/%s", dstrel, names[i]);
      cleanup_close int cfd = openat (dfd, names[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
      if (cfd < 0)
        return cimg_error_sys (err, "open %s", crel);
      struct stat st;
      if (fstatat (cfd, "", &st, AT_EMPTY_PATH) < 0)
        return cimg_error_sys (err, "stat %s", crel);
      if (c->use_ignore && c->b->di && cimg_dockerignore_excluded (c->b->di, crel)
          && !cimg_dockerignore_always_kept (crel, NULL)
          && !(S_ISDIR (st.st_mode) && cimg_dockerignore_must_walk (c->b->di, crel)))
        continue;
      if (copy_node (c, cfd, &st, crel, dstdir, names[i], cdst, err) < 0)
        return -1;
    }
  return 0;
}

static int
set_meta (struct copy_ctx *c, int dstdir, const char *name, const struct stat *st,
          cimg_error_t *err)
{
  uid_t u = c->chown ? c->uid : 0;
  gid_t g = c->chown ? c->gid : 0;
  if (fchownat (dstdir, name, u, g, AT_SYMLINK_NOFOLLOW) < 0)
    return cimg_error_sys (err, "chown %s", name);
  if (!S_ISLNK (st->st_mode) && fchmodat (dstdir, name, mode_of (c, st), 0) < 0)
    return cimg_error_sys (err, "chmod %s", name);
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  if (utimensat (dstdir, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return cimg_error_sys (err, "utimes %s", name);
  return 0;
}

static int
copy_node (struct copy_ctx *c, int fd, const struct stat *st, const char *rel, int dstdir,
           const char *dstname, const char *dstrel, cimg_error_t *err)
{
  if (c->h)
    {
      char meta[96];
      snprintf (meta, sizeof meta, "%o %u %u %lld",
                (unsigned)(st->st_mode & S_IFMT) | mode_of (c, st), c->chown ? (unsigned)c->uid : 0,
                c->chown ? (unsigned)c->gid : 0,
                S_ISREG (st->st_mode) ? (long long)st->st_size : 0LL);
      hash_str (c->h, dstrel);
      hash_str (c->h, meta);
    }
  if (S_ISDIR (st->st_mode))
    {
      if (dstdir >= 0 && mkdirat (dstdir, dstname, 0700) < 0 && errno != EEXIST)
        return cimg_error_sys (err, "mkdir %s", dstrel);
      cleanup_close int sub = -1;
      if (dstdir >= 0)
        {
          sub = openat (dstdir, dstname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (sub < 0)
            return cimg_error_sys (err, "open %s", dstrel);
        }
      if (copy_children (c, fd, rel, sub, dstrel, err) < 0)
        return -1;
      return dstdir >= 0 ? set_meta (c, dstdir, dstname, st, err) : 0;
    }
  if (S_ISLNK (st->st_mode))
    {
      char target[4096];
      ssize_t n = readlinkat (fd, "", target, sizeof target - 1);
      if (n < 0)
        return cimg_error_sys (err, "readlink %s", rel);
      target[n] = '\0';
      if (c->h)
        hash_str (c->h, target);
      if (dstdir < 0)
        return 0;
      unlinkat (dstdir, dstname, 0);
      if (symlinkat (target, dstdir, dstname) < 0)
        return cimg_error_sys (err, "symlink %s", dstrel);
      return set_meta (c, dstdir, dstname, st, err);
    }
  if (!S_ISREG (st->st_mode))
    return 0; /* devices, fifos and sockets of a context are not copied */
  char proc[64];
  snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
  cleanup_close int in = open (proc, O_RDONLY | O_CLOEXEC);
  if (in < 0)
    return cimg_error_sys (err, "open %s", rel);
  cleanup_close int o = -1;
  if (dstdir >= 0)
    {
      unlinkat (dstdir, dstname, 0);
      o = openat (dstdir, dstname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (o < 0)
        return cimg_error_sys (err, "create %s", dstrel);
    }
  cleanup_free char *buf = xmalloc (1 << 17);
  for (;;)
    {
      ssize_t n = read (in, buf, 1 << 17);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return cimg_error_sys (err, "read %s", rel);
      if (n == 0)
        break;
      if (c->h)
        cimg_sha256_update (c->h, buf, (size_t)n);
      if (o >= 0 && cimg_write_all (o, buf, (size_t)n) < 0)
        return cimg_error_sys (err, "write %s", dstrel);
    }
  return dstdir >= 0 ? set_meta (c, dstdir, dstname, st, err) : 0;
}

static bool
has_glob (const char *s)
{
  return strpbrk (s, "*?[") != NULL;
}

/* Expand a source pattern (clean, relative to the source root) to the paths it names,
   component by component: a component with wildcards is matched against the directory's
   entries (Go's filepath.Match: '*' never matches '/'). */
static int
glob_sources (struct copy_ctx *c, int rootfd, const char *pattern, char ***outv, cimg_error_t *err)
{
  cleanup_strv char **cur = NULL;
  cimg_strv_append (&cur, "");
  cleanup_free char *copy = xstrdup (pattern);
  char *save = NULL;
  for (char *comp = strtok_r (copy, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    {
      if (strcmp (comp, ".") == 0)
        continue;
      cleanup_strv char **next = NULL;
      for (size_t i = 0; cur && cur[i]; i++)
        {
          if (!has_glob (comp))
            {
              cleanup_free char *p = *cur[i] ? xasprintf ("%s/%s", cur[i], comp) : xstrdup (comp);
              cimg_strv_append (&next, p);
              continue;
            }
          cleanup_close int dfd
              = cimg_openat_in_root (rootfd, *cur[i] ? cur[i] : ".", O_RDONLY | O_DIRECTORY, 0);
          if (dfd < 0)
            continue;
          DIR *d = fdopendir (dfd);
          if (d == NULL)
            continue;
          dfd = -1;
          cleanup_strv char **names = NULL;
          struct dirent *e;
          while ((e = readdir (d)))
            if (strcmp (e->d_name, ".") && strcmp (e->d_name, "..")
                && fnmatch (comp, e->d_name, 0) == 0)
              cimg_strv_append (&names, e->d_name);
          closedir (d);
          size_t n = cimg_strv_len (names);
          if (n > 1)
            qsort (names, n, sizeof *names, cmp_str);
          for (size_t k = 0; k < n; k++)
            {
              cleanup_free char *p
                  = *cur[i] ? xasprintf ("%s/%s", cur[i], names[k]) : xstrdup (names[k]);
              cimg_strv_append (&next, p);
            }
        }
      cimg_strv_free (cur);
      cur = steal_pointer (&next);
      if (cur == NULL)
        break;
    }
  char **res = NULL;
  for (size_t i = 0; cur && cur[i]; i++)
    {
      const char *p = *cur[i] ? cur[i] : ".";
      if (c->use_ignore && c->b->di && strcmp (p, ".") != 0
          && cimg_dockerignore_excluded (c->b->di, p) && !cimg_dockerignore_must_walk (c->b->di, p))
        continue;
      int fd = cimg_openat_in_root (rootfd, p, O_PATH, 0);
      if (fd < 0)
        continue;
      close (fd);
      cimg_strv_append (&res, p);
    }
  (void)err;
  *outv = res;
  return 0;
}

static bool
is_archive (int fd)
{
  unsigned char m[512];
  ssize_t n = pread (fd, m, sizeof m, 0);
  if (n < 6)
    return false;
  if (m[0] == 0x1f && m[1] == 0x8b)
    return true;
  if (m[0] == 'B' && m[1] == 'Z' && m[2] == 'h')
    return true;
  if (memcmp (m,
              "\xfd"
              "7zXZ\0",
              6)
      == 0)
    return true;
  return n >= 262 && memcmp (m + 257, "ustar", 5) == 0;
}

/* ---------------------------------------------------------------- instructions */

static char *
join_args (char *const *v, bool json)
{
  if (json)
    {
      cleanup_json json_t *a = json_array ();
      for (size_t i = 0; v && v[i]; i++)
        json_array_append_new (a, json_string (v[i]));
      return json_dumps (a, JSON_COMPACT);
    }
  struct sbuf s = { 0 };
  for (size_t i = 0; v && v[i]; i++)
    sbuf_addf (&s, "%s%s", i ? " " : "", v[i]);
  return sbuf_steal (&s);
}

static char *
upper_name (const char *n)
{
  char *u = xstrdup (n);
  for (char *p = u; *p; p++)
    *p = (char)toupper ((unsigned char)*p);
  return u;
}

static const char *
flag_value (const struct cimg_instruction *in, const char *name)
{
  size_t n = strlen (name);
  for (size_t i = 0; in->flags[i]; i++)
    if (strncmp (in->flags[i], "--", 2) == 0 && strncmp (in->flags[i] + 2, name, n) == 0
        && in->flags[i][2 + n] == '=')
      return in->flags[i] + 3 + n;
  return NULL;
}

static json_t *
strv_json (char *const *v)
{
  json_t *a = json_array ();
  for (size_t i = 0; v && v[i]; i++)
    json_array_append_new (a, json_string (v[i]));
  return a;
}

static char **
json_strv (json_t *a)
{
  char **v = xzalloc (sizeof (char *));
  size_t i;
  json_t *e;
  json_array_foreach (a, i, e) if (json_is_string (e)) cimg_strv_append (&v, json_string_value (e));
  return v;
}

/* The command of RUN/CMD/ENTRYPOINT: exec form as is, shell form through SHELL. */
static char **
command_of (struct state *st, const struct cimg_instruction *in)
{
  if (in->json)
    {
      char **v = xzalloc (sizeof (char *));
      for (size_t i = 0; in->args[i]; i++)
        cimg_strv_append (&v, in->args[i]);
      return v;
    }
  json_t *sh = json_object_get (cfg_obj (st), "Shell");
  char **v = json_array_size (sh) ? json_strv (sh) : NULL;
  if (v == NULL)
    {
      cimg_strv_append (&v, "/bin/sh");
      cimg_strv_append (&v, "-c");
    }
  cimg_strv_append (&v, in->args[0] ? in->args[0] : "");
  return v;
}

/* "80", "80/udp", "8000-8010/tcp"; the protocol defaults to tcp. */
static char *
port_key (const char *p)
{
  const char *s = p;
  size_t digits = strspn (s, "0123456789");
  if (digits == 0 || digits > 5)
    return NULL;
  s += digits;
  if (*s == '-')
    {
      size_t d2 = strspn (s + 1, "0123456789");
      if (d2 == 0 || d2 > 5)
        return NULL;
      s += 1 + d2;
    }
  size_t numlen = (size_t)(s - p);
  if (*s == '\0')
    return xasprintf ("%.*s/tcp", (int)numlen, p);
  if (*s != '/')
    return NULL;
  cleanup_free char *proto = xstrdup (s + 1);
  for (char *c = proto; *c; c++)
    *c = (char)tolower ((unsigned char)*c);
  if (strcmp (proto, "tcp") && strcmp (proto, "udp") && strcmp (proto, "sctp"))
    return NULL;
  return xasprintf ("%.*s/%s", (int)numlen, p, proto);
}

#define FAIL(...)                                                                                  \
  (cimg_error_set (err, EINVAL, __VA_ARGS__), cimg_error_wrap (err, "%s:%d", b->df->name, in->line))

/* Metadata instructions: change the config, add an empty-layer history entry. desc is what the
   history and the cache key see. */
static int
exec_meta (struct bctx *b, struct state *st, const struct cimg_instruction *in, char **env_in,
           char **desc, cimg_error_t *err)
{
  /* A copy: later pairs of one ENV see the earlier ones. */
  cleanup_strv char **env = NULL;
  for (size_t i = 0; env_in && env_in[i]; i++)
    cimg_strv_append (&env, env_in[i]);
  json_t *cc = cfg_obj (st);
  const char *n = in->name;
  struct sbuf d = { 0 };
  cleanup_free char *upper = upper_name (n);
  sbuf_addf (&d, "%s", upper);
  if (strcmp (n, "env") == 0 || strcmp (n, "label") == 0)
    {
      bool label = n[0] == 'l';
      for (size_t i = 0; in->args[i] && in->args[i + 1]; i += 2)
        {
          cleanup_free char *k = NULL, *v = NULL;
          if (cimg_build_expand_word (in->args[i], b->df->escape, env, &k, err) < 0
              || cimg_build_expand_word (in->args[i + 1], b->df->escape, env, &v, err) < 0)
            {
              free (d.p);
              return cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
            }
          sbuf_addf (&d, " %s=%s", k, v);
          if (label)
            json_object_set_new (obj_field (cc, "Labels"), k, json_string (v));
          else
            {
              char **e2 = json_strv (json_object_get (cc, "Env"));
              env_set (&e2, k, v);
              json_object_set_new (cc, "Env", strv_json (e2));
              cimg_strv_free (e2);
              /* later pairs of the same ENV see this one */
              env_set (&env, k, v);
            }
        }
    }
  else if (strcmp (n, "cmd") == 0 || strcmp (n, "entrypoint") == 0)
    {
      cleanup_strv char **cmd = command_of (st, in);
      json_object_set_new (cc, n[0] == 'c' ? "Cmd" : "Entrypoint", strv_json (cmd));
      cleanup_free char *j = join_args (cmd, true);
      sbuf_addf (&d, " %s", j);
      /* Docker: ENTRYPOINT resets a Cmd inherited from the base. */
      if (n[0] == 'e')
        json_object_set_new (cc, "Cmd", json_null ());
    }
  else if (strcmp (n, "shell") == 0)
    {
      json_object_set_new (cc, "Shell", strv_json (in->args));
      cleanup_free char *j = join_args (in->args, true);
      sbuf_addf (&d, " %s", j);
    }
  else if (strcmp (n, "workdir") == 0 || strcmp (n, "user") == 0 || strcmp (n, "stopsignal") == 0)
    {
      cleanup_free char *v = NULL;
      if (cimg_build_expand_word (in->args[0], b->df->escape, env, &v, err) < 0)
        {
          free (d.p);
          return cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
        }
      if (n[0] == 'w')
        {
          const char *prev = cimg_json_str (cc, "WorkingDir");
          cleanup_free char *raw
              = v[0] == '/' ? xstrdup (v) : xasprintf ("%s/%s", prev && *prev ? prev : "", v);
          cleanup_free char *wd = clean_abs (raw);
          json_object_set_new (cc, "WorkingDir", json_string (wd));
          free (d.p);
          d = (struct sbuf){ 0 };
          /* the legacy builder writes one blank here, two elsewhere */
          sbuf_addf (&d, "\001WORKDIR %s", wd);
        }
      else
        {
          json_object_set_new (cc, n[0] == 'u' ? "User" : "StopSignal", json_string (v));
          sbuf_addf (&d, " %s", v);
        }
    }
  else if (strcmp (n, "expose") == 0 || strcmp (n, "volume") == 0)
    {
      bool expose = n[0] == 'e';
      for (size_t i = 0; in->args[i]; i++)
        {
          cleanup_strv char **w = NULL;
          if (cimg_build_expand_words (in->args[i], b->df->escape, env, &w, err) < 0)
            {
              free (d.p);
              return cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
            }
          for (size_t k = 0; w[k]; k++)
            {
              cleanup_free char *key = expose ? port_key (w[k]) : xstrdup (w[k]);
              if (key == NULL || *key == '\0')
                {
                  free (d.p);
                  return FAIL ("%s: invalid %s \"%s\"", upper, expose ? "port" : "path", w[k]);
                }
              json_object_set_new (obj_field (cc, expose ? "ExposedPorts" : "Volumes"), key,
                                   json_object ());
              sbuf_addf (&d, " %s", key);
            }
        }
    }
  else if (strcmp (n, "maintainer") == 0)
    {
      json_object_set_new (st->config, "author", json_string (in->args[0]));
      sbuf_addf (&d, " %s", in->args[0]);
    }
  else if (strcmp (n, "onbuild") == 0)
    {
      json_t *ob = json_object_get (cc, "OnBuild");
      if (!json_is_array (ob))
        {
          ob = json_array ();
          json_object_set_new (cc, "OnBuild", ob);
        }
      const char *t = in->sub && in->sub->original ? in->sub->original : in->text;
      json_array_append_new (ob, json_string (t));
      sbuf_addf (&d, " %s", t);
    }
  else if (strcmp (n, "healthcheck") == 0)
    {
      if (in->flags[0])
        {
          free (d.p);
          return FAIL ("HEALTHCHECK options are not supported yet");
        }
      json_t *test = json_array ();
      if (strcasecmp (in->args[0], "NONE") == 0)
        json_array_append_new (test, json_string ("NONE"));
      else if (in->json)
        {
          json_array_append_new (test, json_string ("CMD"));
          for (size_t i = 1; in->args[i]; i++)
            json_array_append_new (test, json_string (in->args[i]));
        }
      else
        {
          json_array_append_new (test, json_string ("CMD-SHELL"));
          json_array_append_new (test, json_string (in->args[1] ? in->args[1] : ""));
        }
      cleanup_free char *j = json_dumps (test, JSON_COMPACT);
      sbuf_addf (&d, " %s", j);
      json_object_set_new (cc, "Healthcheck", json_pack ("{s:o}", "Test", test));
    }
  else
    {
      free (d.p);
      return FAIL ("unknown instruction: %s", upper);
    }
  *desc = sbuf_steal (&d);
  return 0;
}

static char *
history_text (const char *desc)
{
  if (desc[0] == '\001')
    return xasprintf (NOP "%s", desc + 1);
  return xasprintf (NOP " %s", desc);
}

/* The state a --from= names: an earlier stage (built if not yet) or an image. */
static int build_stage (struct bctx *b, size_t i, cimg_error_t *err);

static long
stage_ref (struct bctx *b, size_t before, const char *ref)
{
  for (size_t i = 0; i < before && i < b->nst; i++)
    if (b->stages[i].name && strcasecmp (b->stages[i].name, ref) == 0)
      return (long)i;
  char *end;
  errno = 0;
  long n = strtol (ref, &end, 10);
  if (*ref && *end == '\0' && errno == 0 && n >= 0 && (size_t)n < before)
    return n;
  return -1;
}

static int
state_from_image (struct bctx *b, struct state *st, const char *name, cimg_error_t *err)
{
  cleanup_image struct cimg_image *img = cimg_store_find_image (b->s, name, err);
  if (img == NULL)
    return -1;
  st->config = json_deep_copy (img->config);
  json_object_del (st->config, "container");
  json_object_del (st->config, "container_config");
  json_object_del (st->config, "docker_version");
  st->n_layers = img->n_layers;
  st->layers = xzalloc ((img->n_layers + 1) * sizeof *st->layers);
  memcpy (st->layers, img->layers, img->n_layers * sizeof *st->layers);
  snprintf (st->key, sizeof st->key, "%s", img->id);
  return 0;
}

/* Make the directories of dirpath (absolute, clean) in the tree treefd, those the image has
   (in the view) with the image's owner, mode and mtime, so that a layer does not change them;
   new ones 0755, owned by uid:gid with chown, else root. Returns an fd of the last one. */
static int
make_parents (int viewfd, int treefd, const char *dirpath, bool chown, uid_t uid, gid_t gid,
              cimg_error_t *err)
{
  int cur = fcntl (treefd, F_DUPFD_CLOEXEC, 3);
  if (cur < 0)
    return cimg_error_sys (err, "dup");
  cleanup_free char *sofar = xstrdup ("");
  cleanup_free char *dcopy = xstrdup (dirpath);
  char *save = NULL;
  for (char *comp = strtok_r (dcopy, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    {
      char *np = xasprintf ("%s/%s", sofar, comp);
      free (sofar);
      sofar = np;
      struct stat ist;
      cleanup_close int ifd = cimg_openat_in_root (viewfd, sofar, O_PATH, 0);
      bool in_image = ifd >= 0 && fstat (ifd, &ist) == 0 && S_ISDIR (ist.st_mode);
      int rc = 0;
      if (mkdirat (cur, comp, 0755) < 0 && errno != EEXIST)
        rc = cimg_error_sys (err, "mkdir %s", sofar);
      else if (in_image)
        {
          struct timespec ts[2] = { ist.st_atim, ist.st_mtim };
          if (fchownat (cur, comp, ist.st_uid, ist.st_gid, AT_SYMLINK_NOFOLLOW) < 0
              || fchmodat (cur, comp, ist.st_mode & 07777, 0) < 0
              || utimensat (cur, comp, ts, AT_SYMLINK_NOFOLLOW) < 0)
            rc = cimg_error_sys (err, "%s", sofar);
        }
      else if (chown && fchownat (cur, comp, uid, gid, AT_SYMLINK_NOFOLLOW) < 0)
        rc = cimg_error_sys (err, "chown %s", sofar);
      int nx = rc < 0 ? -1 : openat (cur, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (rc == 0 && nx < 0)
        cimg_error_sys (err, "open %s", sofar);
      close (cur);
      cur = nx;
      if (cur < 0)
        return -1;
    }
  return cur;
}

/* An image for FROM or COPY --from: from the store, pulled when missing (always with --pull),
   as Docker does. */
static int
state_from_image_or_pull (struct bctx *b, struct state *st, const char *name, cimg_error_t *err)
{
  if (!b->o->pull && state_from_image (b, st, name, err) == 0)
    return 0;
  cimg_error_clear (err);
  out (b, "Pulling %s\n", name);
  struct cimg_pull_opts po = { 0 };
  struct cimg_pull_result pr;
  if (cimg_registry_pull (b->s, name, &po, &pr, err) < 0)
    return -1;
  cimg_pull_result_clear (&pr);
  return state_from_image (b, st, name, err);
}

/* WORKDIR: a directory the image lacks is created, as a layer of its own. */
static int
ensure_workdir (struct bctx *b, struct state *st, bool *added, cimg_error_t *err)
{
  *added = false;
  const char *wdir = cimg_json_str (cfg_obj (st), "WorkingDir");
  if (wdir == NULL || strcmp (wdir, "/") == 0)
    return 0;
  cleanup_free char *wd = new_workdir (b, err);
  if (wd == NULL)
    return -1;
  int rc = -1;
  cleanup_close int viewfd = mount_view (b, st->layers, st->n_layers, wd, err);
  if (viewfd < 0)
    goto out;
  {
    cleanup_free char *path = resolve_parents (viewfd, wdir);
    struct stat sst;
    cleanup_close int dfd = cimg_openat_in_root (viewfd, path, O_PATH, 0);
    if (dfd >= 0 && fstat (dfd, &sst) == 0 && S_ISDIR (sst.st_mode))
      {
        rc = 0;
        goto out;
      }
    cleanup_free char *tree = xasprintf ("%s/tree", wd);
    cleanup_close int treefd = -1;
    if (mkdirat (cimg_store_dirfd (b->s), tree, 0755) < 0
        || (treefd = openat (cimg_store_dirfd (b->s), tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC))
               < 0)
      {
        cimg_error_sys (err, "%s", tree);
        goto out;
      }
    int last = make_parents (viewfd, treefd, path, false, 0, 0, err);
    if (last < 0)
      goto out;
    close (last);
    umount_view (b, wd);
    if (pack_into_layer (b, st, treefd, err) < 0)
      goto out;
    *added = true;
    rc = 0;
  }
out:
  umount_view (b, wd);
  drop_workdir (b, wd);
  return rc;
}

static int
exec_copy (struct bctx *b, struct state *st, size_t stage, const struct cimg_instruction *in,
           char **env, char **args_scope, cimg_error_t *err)
{
  bool add = in->name[0] == 'a';
  cleanup_free char *upper = upper_name (in->name);
  size_t nargs = cimg_strv_len (in->args);
  if (in->n_heredocs && flag_value (in, "from"))
    return FAIL ("%s --from with a heredoc source", upper);
  if (nargs < 2)
    return FAIL ("%s requires at least two arguments", upper);
  const char *from = flag_value (in, "from");
  const char *chown = flag_value (in, "chown");
  const char *chmod_s = flag_value (in, "chmod");
  struct copy_ctx c = { .b = b };
  if (chmod_s)
    {
      char *end;
      unsigned long m = strtoul (chmod_s, &end, 8);
      if (*chmod_s == '\0' || *end || m > 07777)
        return FAIL ("invalid --chmod=%s: only octal modes are supported", chmod_s);
      c.chmod = (mode_t)m;
    }
  /* The source root: the context, or the view of another stage or image. */
  cleanup_free char *wd = new_workdir (b, err);
  if (wd == NULL)
    return -1;
  int rc = -1;
  int srcfd = -1;
  bool src_view = false, dst_view = false, src_heredoc = false;
  int viewfd = -1;
  struct state other = { 0 };
  cleanup_free char *src_dir = NULL;
  cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
  cleanup_strv char **srcs = NULL, **matches_all = NULL;
  cleanup_free char *dest = NULL, *instr = NULL;
  cleanup_free char *tree = NULL;
  cleanup_close int treefd = -1;
  char content[CIMG_DIGEST_BUFSIZE], key[CIMG_DIGEST_BUFSIZE];
  const char *src_key = "context";
  if (from)
    {
      cleanup_free char *f = NULL;
      if (cimg_build_expand_word (from, b->df->escape, env, &f, err) < 0)
        goto out;
      long ref = stage_ref (b, stage, f);
      struct state *os;
      if (ref >= 0)
        {
          if (build_stage (b, (size_t)ref, err) < 0)
            goto out;
          os = &b->stages[ref].st;
        }
      else
        {
          if (state_from_image_or_pull (b, &other, f, err) < 0)
            {
              cimg_error_wrap (err, "%s:%d: %s --from=%s", b->df->name, in->line, upper, f);
              goto out;
            }
          os = &other;
        }
      src_key = os->key;
      src_dir = new_workdir (b, err);
      if (src_dir == NULL)
        goto out;
      srcfd = mount_view (b, os->layers, os->n_layers, src_dir, err);
      if (srcfd < 0)
        goto out;
      src_view = true;
    }
  else if (in->n_heredocs)
    {
      /* COPY <<EOF /path: each body becomes a file (mode 0644) of a directory standing in for
         the context. Bodies are copied as written (no expansion yet). */
      src_dir = new_workdir (b, err);
      if (src_dir == NULL)
        goto out;
      srcfd = openat (cimg_store_dirfd (b->s), src_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (srcfd < 0)
        {
          cimg_error_sys (err, "open %s", src_dir);
          goto out;
        }
      src_heredoc = true;
      src_key = "heredoc";
      for (size_t i = 0; i < in->n_heredocs; i++)
        {
          const struct cimg_heredoc *hd = &in->heredocs[i];
          if (strchr (hd->name, '/') || strcmp (hd->name, ".") == 0 || strcmp (hd->name, "..") == 0
              || hd->name[0] == '\0')
            {
              FAIL ("%s: bad heredoc name \"%s\"", upper, hd->name);
              goto out;
            }
          int fd = openat (srcfd, hd->name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                           0644);
          if (fd < 0 || cimg_write_all (fd, hd->content, strlen (hd->content)) < 0
              || fchmod (fd, 0644) < 0)
            {
              cimg_error_sys (err, "heredoc %s", hd->name);
              if (fd >= 0)
                close (fd);
              goto out;
            }
          close (fd);
        }
    }
  else
    {
      srcfd = b->ctxfd;
      c.use_ignore = true;
    }
  if (chown)
    {
      cleanup_free char *cx = NULL;
      if (cimg_build_expand_word (chown, b->df->escape, env, &cx, err) < 0
          || resolve_user (b, st, cx, &c.uid, &c.gid, err) < 0)
        {
          cimg_error_wrap (err, "%s:%d: %s --chown", b->df->name, in->line, upper);
          goto out;
        }
      c.chown = true;
    }
  /* Expand sources and destination. */
  for (size_t i = 0; i < nargs; i++)
    {
      cleanup_free char *x = NULL;
      if (cimg_build_expand_word (in->args[i], b->df->escape, env, &x, err) < 0)
        {
          cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
          goto out;
        }
      if (i + 1 == nargs)
        dest = steal_pointer (&x);
      else if (in->n_heredocs && cimg_str_has_prefix (in->args[i], "<<"))
        {
          /* "<<EOF", "<<-EOF", "<<\"EOF\"": the heredoc's name */
          const char *n = in->args[i] + 2;
          if (*n == '-')
            n++;
          cleanup_free char *name = xstrdup (n);
          size_t k = 0;
          for (const char *p = n; *p; p++)
            if (*p != '"' && *p != '\'')
              name[k++] = *p;
          name[k] = '\0';
          cimg_strv_append (&srcs, name);
        }
      else if (in->n_heredocs)
        {
          FAIL ("%s: heredoc and context sources in one instruction are not supported yet", upper);
          goto out;
        }
      else
        cimg_strv_append (&srcs, x);
    }
  for (size_t i = 0; srcs[i]; i++)
    {
      if (add
          && (cimg_str_has_prefix (srcs[i], "http://")
              || cimg_str_has_prefix (srcs[i], "https://")))
        {
          FAIL ("ADD %s: URL sources are not supported yet", srcs[i]);
          goto out;
        }
      cleanup_free char *abs = xasprintf ("/%s", srcs[i]);
      cleanup_free char *clean = clean_abs (abs);
      cleanup_strv char **m = NULL;
      glob_sources (&c, srcfd, clean[1] ? clean + 1 : ".", &m, err);
      if (m == NULL)
        {
          cimg_error_set (err, ENOENT, "%s:%d: %s %s: no such file or directory%s", b->df->name,
                          in->line, upper, srcs[i], from ? "" : " in the build context");
          goto out;
        }
      for (size_t k = 0; m[k]; k++)
        cimg_strv_append (&matches_all, m[k]);
    }
  /* The destination, in the stage's rootfs: relative to WORKDIR; a directory when it ends in
     "/", when there are several sources, or when it is a directory in the image. */
  {
    const char *wdir = cimg_json_str (cfg_obj (st), "WorkingDir");
    cleanup_free char *raw
        = dest[0] == '/' ? xstrdup (dest) : xasprintf ("%s/%s", wdir && *wdir ? wdir : "", dest);
    bool trailing = cimg_str_has_suffix (dest, "/") || strcmp (dest, ".") == 0
                    || cimg_str_has_suffix (dest, "/.");
    viewfd = mount_view (b, st->layers, st->n_layers, wd, err);
    if (viewfd < 0)
      goto out;
    dst_view = true;
    cleanup_free char *cl = clean_abs (raw);
    free (dest);
    dest = resolve_parents (viewfd, cl);
    struct stat dst_st;
    bool exists_dir = false;
    {
      cleanup_close int dfd = cimg_openat_in_root (viewfd, dest, O_PATH, 0);
      exists_dir = dfd >= 0 && fstat (dfd, &dst_st) == 0 && S_ISDIR (dst_st.st_mode);
    }
    bool dest_dir
        = trailing || cimg_strv_len (matches_all) > 1 || exists_dir || strcmp (dest, "/") == 0;
    /* A directory source copies its contents into dest, which is then a directory. */
    for (size_t i = 0; matches_all[i] && !dest_dir; i++)
      {
        struct stat sst;
        cleanup_close int fd = cimg_openat_in_root (srcfd, matches_all[i], O_PATH, 0);
        dest_dir = fd >= 0 && fstat (fd, &sst) == 0 && S_ISDIR (sst.st_mode);
      }
    /* The key: the parent, the instruction, the args in scope, the sources' content. */
    cimg_sha256_update (h, src_key, strlen (src_key) + 1);
    c.h = h;
    for (size_t i = 0; matches_all[i]; i++)
      {
        cleanup_close int fd = cimg_openat_in_root (srcfd, matches_all[i], O_PATH, 0);
        struct stat sst;
        if (fd < 0 || fstatat (fd, "", &sst, AT_EMPTY_PATH) < 0)
          {
            cimg_error_sys (err, "%s:%d: %s %s", b->df->name, in->line, upper, matches_all[i]);
            goto out;
          }
        const char *base = strrchr (matches_all[i], '/');
        base = base ? base + 1 : matches_all[i];
        cleanup_free char *drel = xasprintf ("%zu %s", i, base);
        if (copy_node (&c, fd, &sst, matches_all[i], -1, base, drel, err) < 0)
          {
            cimg_error_wrap (err, "%s:%d: %s", b->df->name, in->line, upper);
            goto out;
          }
      }
    c.h = NULL;
    cimg_sha256_final (h, content);
    instr
        = xasprintf ("%s %s%s%s%s%s%s%s -> %s%s", upper, from ? "--from=" : "", from ? src_key : "",
                     chown ? " --chown=" : "", chown ? chown : "", chmod_s ? " --chmod=" : "",
                     chmod_s ? chmod_s : "", "", dest, dest_dir ? "/" : "");
    cimg_build_cache_key (st->key, instr, args_scope, content, key);
    if (cache_hit (b, st, key))
      {
        rc = 0;
        goto out;
      }
    /* Build the tree: the destination's parents as the image has them (so the layer does not
       change their modes or owners), then the files. */
    tree = xasprintf ("%s/tree", wd);
    if (mkdirat (cimg_store_dirfd (b->s), tree, 0755) < 0)
      {
        cimg_error_sys (err, "mkdir %s", tree);
        goto out;
      }
    treefd = openat (cimg_store_dirfd (b->s), tree, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (treefd < 0)
      {
        cimg_error_sys (err, "open %s", tree);
        goto out;
      }
    cleanup_free char *dirpath = NULL;
    if (dest_dir)
      dirpath = xstrdup (dest);
    else
      {
        dirpath = xstrdup (dest);
        *strrchr (dirpath, '/') = '\0';
        if (*dirpath == '\0')
          {
            free (dirpath);
            dirpath = xstrdup ("/");
          }
      }
    int cur = make_parents (viewfd, treefd, dirpath, c.chown, c.uid, c.gid, err);
    if (cur < 0)
      goto out;
    const char *fbase = dest_dir ? NULL : strrchr (dest, '/') + 1;
    for (size_t i = 0; matches_all[i] && rc < 0; i++)
      {
        cleanup_close int fd = cimg_openat_in_root (srcfd, matches_all[i], O_PATH, 0);
        struct stat sst;
        if (fd < 0 || fstatat (fd, "", &sst, AT_EMPTY_PATH) < 0)
          {
            cimg_error_sys (err, "%s %s", upper, matches_all[i]);
            break;
          }
        const char *base = strrchr (matches_all[i], '/');
        base = base ? base + 1 : matches_all[i];
        int r;
        if (S_ISDIR (sst.st_mode))
          r = copy_children (&c, fd, strcmp (matches_all[i], ".") ? matches_all[i] : "", cur, dest,
                             err);
        else if (add && !from && S_ISREG (sst.st_mode) && ({
                   char proc[64];
                   snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
                   cleanup_close int afd = open (proc, O_RDONLY | O_CLOEXEC);
                   afd >= 0 && is_archive (afd);
                 }))
          {
            char proc[64];
            snprintf (proc, sizeof proc, "/proc/self/fd/%d", fd);
            cleanup_close int afd = open (proc, O_RDONLY | O_CLOEXEC);
            cleanup_archive_read struct archive *a = cimg_archive_read_fd (afd, err);
            struct cimg_apply_stats ast = { 0 };
            struct cimg_apply_opts ao = { 0 };
            r = a ? cimg_layer_apply (a, cur, &ao, &ast, err) : -1;
            if (r < 0)
              cimg_error_wrap (err, "ADD %s: unpack", matches_all[i]);
          }
        else
          r = copy_node (&c, fd, &sst, matches_all[i], cur, fbase ? fbase : base, dest, err);
        if (r < 0)
          {
            cimg_error_wrap (err, "%s:%d: %s", b->df->name, in->line, upper);
            break;
          }
        if (matches_all[i + 1] == NULL)
          rc = 0;
      }
    close (cur);
    if (rc < 0)
      goto out;
    rc = -1;
  }
  /* The views go before packing: nothing else needs them. */
  if (dst_view)
    umount_view (b, wd);
  dst_view = false;
  if (pack_into_layer (b, st, treefd, err) < 0)
    goto out;
  {
    cleanup_free char *hist = xasprintf (NOP "%s %s:%s in %s ", upper, from ? "from" : "file",
                                         cimg_digest_hex (content), dest);
    add_history (st, hist, false);
  }
  rc = cache_store (b, st, key, err);
out:
  if (dst_view)
    umount_view (b, wd);
  if (viewfd >= 0)
    close (viewfd);
  if (src_view)
    {
      close (srcfd);
      umount_view (b, src_dir);
    }
  if (src_heredoc)
    close (srcfd);
  if (src_dir)
    drop_workdir (b, src_dir);
  drop_workdir (b, wd);
  state_clear (&other);
  return rc;
}

struct run_out
{
  int fd; /* -1: stream 1 to fd 1, stream 2 to fd 2 */
  char tail[2048];
  size_t n;
};

static void
on_output (void *data, int stream, const char *buf, size_t len)
{
  struct run_out *r = data;
  (void)cimg_write_all (r->fd >= 0 ? r->fd : (stream == 2 ? 2 : 1), buf, len);
  if (len >= sizeof r->tail)
    {
      memcpy (r->tail, buf + len - sizeof r->tail, sizeof r->tail);
      r->n = sizeof r->tail;
      return;
    }
  if (r->n + len > sizeof r->tail)
    {
      size_t drop = r->n + len - sizeof r->tail;
      memmove (r->tail, r->tail + drop, r->n - drop);
      r->n -= drop;
    }
  memcpy (r->tail + r->n, buf, len);
  r->n += len;
}

/* The last max lines of the output, each on its own line after " > ", or "". */
static char *
last_lines (const struct run_out *r, int max)
{
  size_t end = r->n;
  while (end > 0 && r->tail[end - 1] == '\n')
    end--;
  size_t start = end;
  int lines = 0;
  while (start > 0 && lines < max)
    {
      start--;
      if (r->tail[start] == '\n' && ++lines == max)
        {
          start++;
          break;
        }
    }
  if (end == 0)
    return xstrdup ("");
  struct sbuf s = { 0 };
  sbuf_adds (&s, "; its last output:");
  for (size_t i = start; i < end;)
    {
      size_t k = i;
      while (k < end && r->tail[k] != '\n')
        k++;
      sbuf_adds (&s, "\n > ");
      sbuf_addn (&s, r->tail + i, k - i);
      i = k + 1;
    }
  return sbuf_steal (&s);
}

static int
exec_run (struct bctx *b, struct state *st, const struct cimg_instruction *in, char **args_scope,
          cimg_error_t *err)
{
  for (size_t i = 0; in->flags[i]; i++)
    return FAIL ("RUN %s is not supported yet", in->flags[i]);
  cleanup_strv char **cmd = NULL;
  if (in->n_heredocs)
    {
      /* "RUN <<EOF" alone: the body is the script, run by the shell (as BuildKit does); a
         heredoc fed to another command's stdin is not supported yet. */
      const char *t = in->args[0] ? in->args[0] : "";
      while (isspace ((unsigned char)*t))
        t++;
      size_t n = strcspn (t, " \t\n");
      bool alone = in->n_heredocs == 1 && !in->json && cimg_str_has_prefix (t, "<<")
                   && t[n + strspn (t + n, " \t\n")] == '\0';
      if (!alone)
        return FAIL ("RUN with a heredoc other than \"RUN <<EOF\" alone is not supported yet");
      json_t *sh = json_object_get (cfg_obj (st), "Shell");
      cmd = json_array_size (sh) ? json_strv (sh) : NULL;
      if (cmd == NULL)
        {
          cimg_strv_append (&cmd, "/bin/sh");
          cimg_strv_append (&cmd, "-c");
        }
      cimg_strv_append (&cmd, in->heredocs[0].content);
    }
  else
    cmd = command_of (st, in);
  cleanup_free char *shown = join_args (cmd, in->json);
  cleanup_free char *instr = xasprintf ("RUN %s%s", in->json ? "json " : "", shown);
  char key[CIMG_DIGEST_BUFSIZE];
  cimg_build_cache_key (st->key, instr, args_scope, NULL, key);
  if (cache_hit (b, st, key))
    return 0;

  json_t *cc = cfg_obj (st);
  uid_t uid;
  gid_t gid;
  if (resolve_user (b, st, cimg_json_str (cc, "User"), &uid, &gid, err) < 0)
    return cimg_error_wrap (err, "%s:%d: RUN", b->df->name, in->line);
  /* Env: the config's, then the build args in scope that it does not set; PATH if none. */
  cleanup_strv char **env = json_strv (json_object_get (cc, "Env"));
  for (size_t i = 0; args_scope && args_scope[i]; i++)
    {
      cleanup_free char *k = xstrndup (args_scope[i], strcspn (args_scope[i], "="));
      if (env_get (env, k) == NULL)
        cimg_strv_append (&env, args_scope[i]);
    }
  if (env_get (env, "PATH") == NULL)
    cimg_strv_append (&env, DEFAULT_PATH);
  const char *wdir = cimg_json_str (cc, "WorkingDir");

  cleanup_free char *wd = new_workdir (b, err);
  if (wd == NULL)
    return -1;
  int rc = -1;
  cleanup_strv char **lowers = NULL;
  for (size_t i = st->n_layers; i-- > 0;)
    {
      char *link = cimg_store_layer_link (b->s, st->layers[i].chain_id, err);
      if (link == NULL)
        goto out;
      cimg_strv_append (&lowers, link);
      free (link);
    }
  {
    /* The bottom lower holds the mount points the runtime needs (/proc, /sys, /dev, /etc/hosts,
       /etc/resolv.conf), so that it never creates them in the upper dir: they would end up in
       the layer (Docker's init layer does the same). */
    cleanup_free char *init = xasprintf ("%s/init", b->tmp);
    cimg_strv_append (&lowers, init);
  }
  cleanup_free char *upper = xasprintf ("%s/upper", wd);
  cleanup_free char *work = xasprintf ("%s/work", wd);
  cleanup_free char *merged = xasprintf ("%s/merged", wd);
  int dfd = cimg_store_dirfd (b->s);
  if (mkdirat (dfd, upper, 0755) < 0 || mkdirat (dfd, work, 0700) < 0
      || mkdirat (dfd, merged, 0755) < 0)
    {
      cimg_error_sys (err, "mkdir %s", wd);
      goto out;
    }
  char id[65];
  cimg_random_hex64 (id);
  cleanup_strv char **caps = cimg_caps_default ();
  gid_t groups[1] = { gid };
  struct cimg_spec_mount mounts[2];
  size_t nm = 0;
  if (!b->o->network_none)
    {
      if (access ("/etc/resolv.conf", R_OK) == 0)
        mounts[nm++] = (struct cimg_spec_mount){ .source = "/etc/resolv.conf",
                                                 .destination = "/etc/resolv.conf" };
      if (access ("/etc/hosts", R_OK) == 0)
        mounts[nm++]
            = (struct cimg_spec_mount){ .source = "/etc/hosts", .destination = "/etc/hosts" };
    }
  char hostname[16];
  snprintf (hostname, sizeof hostname, "%.12s", id);
  struct cimg_spec spec = {
    .id = id,
    .root_dirfd = dfd,
    .lowers = lowers,
    .upper = upper,
    .work = work,
    .merged = merged,
    .hostname = hostname,
    .network = b->o->network_none ? CIMG_NET_PRIVATE : CIMG_NET_HOST,
    .mounts = mounts,
    .n_mounts = nm,
    .process = { .args = cmd,
                 .env = env,
                 .cwd = wdir && *wdir ? wdir : "/",
                 .uid = uid,
                 .gid = gid,
                 .groups = groups,
                 .n_groups = 1 },
    .caps = caps,
    .seccomp = true,
  };
  struct cimg_run_result res = { 0 };
  /* RUN's output is streamed as it comes (to the caller's fd, -q: /dev/null), and its tail is
     kept for the error message of a failed step. */
  struct run_out ro = { .fd = b->o->run_output_fd };
  fflush (stdout);
  fflush (stderr);
  int r = cimg_runtime_run_captured (&spec, NULL, on_output, &ro, &res, err);
  if (r < 0)
    {
      cimg_error_wrap (err, "%s:%d: RUN %s", b->df->name, in->line, shown);
      goto out;
    }
  if (res.exec_error)
    {
      b->run_exit = res.exec_error;
      cimg_error_set (err, EINVAL, "%s:%d: RUN %s: %s", b->df->name, in->line, shown,
                      res.exec_message ? res.exec_message : "cannot execute");
      cimg_run_result_clear (&res);
      goto out;
    }
  int code = cimg_runtime_exit_code (res.status);
  cimg_run_result_clear (&res);
  if (code != 0)
    {
      b->run_exit = code;
      cleanup_free char *last = last_lines (&ro, 5);
      cimg_error_set (err, EINVAL, "%s:%d: RUN %s: exit code %d%s", b->df->name, in->line, shown,
                      code, last);
      goto out;
    }
  {
    cleanup_close int ufd = openat (dfd, upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (ufd < 0)
      {
        cimg_error_sys (err, "open %s", upper);
        goto out;
      }
    cleanup_free char *hist = in->json ? xasprintf (NOP " RUN %s", shown) : xstrdup (shown);
    if (dir_empty (ufd))
      add_history (st, hist, true);
    else
      {
        if (pack_into_layer (b, st, ufd, err) < 0)
          {
            cimg_error_wrap (err, "%s:%d: RUN", b->df->name, in->line);
            goto out;
          }
        add_history (st, hist, false);
      }
  }
  rc = cache_store (b, st, key, err);
out:
  drop_workdir (b, wd);
  return rc;
}

/* ARG in a stage: each name gets the --build-arg value, else its default, else the value of the
   ARG of that name before the first FROM. */
static int
exec_arg (struct bctx *b, struct state *st, const struct cimg_instruction *in, char **env,
          cimg_error_t *err)
{
  for (size_t k = 0; in->args[k]; k++)
    {
      const char *w = in->args[k];
      const char *eq = strchr (w, '=');
      cleanup_free char *name = eq ? xstrndup (w, (size_t)(eq - w)) : xstrdup (w);
      cleanup_free char *value = NULL;
      if (eq && cimg_build_expand_word (eq + 1, b->df->escape, env, &value, err) < 0)
        return cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
      if (!eq && env_get (b->meta, name))
        value = xstrdup (env_get (b->meta, name));
      const char *given = env_get (b->o->build_args, name);
      if (given)
        {
          free (value);
          value = xstrdup (given);
          if (!cimg_strv_contains (b->consumed, name))
            cimg_strv_append (&b->consumed, name);
        }
      if (value)
        env_set (&st->args, name, value);
    }
  return 0;
}

static int
build_stage (struct bctx *b, size_t si, cimg_error_t *err)
{
  struct stage *sg = &b->stages[si];
  if (sg->st.done)
    return 0;
  struct state *st = &sg->st;
  const struct cimg_instruction *in = &b->df->instrs[sg->first];
  b->step++;
  out (b, "STEP %d/%d: FROM %s%s%s\n", b->step, b->nsteps, sg->base, sg->name ? " AS " : "",
       sg->name ? sg->name : "");
  long ref = stage_ref (b, si, sg->base);
  if (ref >= 0)
    {
      if (build_stage (b, (size_t)ref, err) < 0)
        return -1;
      struct state *o = &b->stages[ref].st;
      st->config = json_deep_copy (o->config);
      st->n_layers = o->n_layers;
      st->layers = xzalloc ((o->n_layers + 1) * sizeof *st->layers);
      memcpy (st->layers, o->layers, o->n_layers * sizeof *st->layers);
      snprintf (st->key, sizeof st->key, "%s", o->key);
    }
  else if (strcmp (sg->base, "scratch") == 0)
    {
      struct utsname u;
      const char *arch = "amd64";
      if (uname (&u) == 0 && strcmp (u.machine, "aarch64") == 0)
        arch = "arm64";
      st->config = json_pack ("{s:s, s:s, s:{}, s:{s:s, s:[]}, s:[]}", "architecture", arch, "os",
                              "linux", "config", "rootfs", "type", "layers", "diff_ids", "history");
      snprintf (st->key, sizeof st->key, "%s", "scratch");
      cimg_build_cache_key ("scratch", arch, NULL, NULL, st->key);
    }
  else if (state_from_image_or_pull (b, st, sg->base, err) < 0)
    return cimg_error_wrap (err, "%s:%d: FROM %s", b->df->name, in->line, sg->base);
  out (b, " ---> %.12s\n", cimg_digest_hex (st->key));

  for (size_t i = sg->first + 1; i < sg->end; i++)
    {
      in = &b->df->instrs[i];
      b->step++;
      {
        cleanup_free char *up = upper_name (in->name);
        out (b, "STEP %d/%d: %s %s\n", b->step, b->nsteps, up, in->text ? in->text : "");
      }
      cleanup_strv char **env = expand_env (st);
      int r;
      if (strcmp (in->name, "arg") == 0)
        {
          r = exec_arg (b, st, in, env, err);
          /* ARG changes no config; its effect reaches the keys of the steps after it. */
          if (r == 0)
            {
              cleanup_free char *t = xasprintf ("ARG %s", in->text);
              char key[CIMG_DIGEST_BUFSIZE];
              cimg_build_cache_key (st->key, t, st->args, NULL, key);
              snprintf (st->key, sizeof st->key, "%s", key);
            }
        }
      else if (strcmp (in->name, "run") == 0)
        r = exec_run (b, st, in, st->args, err);
      else if (strcmp (in->name, "copy") == 0 || strcmp (in->name, "add") == 0)
        r = exec_copy (b, st, si, in, env, st->args, err);
      else if (strcmp (in->name, "from") == 0)
        r = FAIL ("unexpected FROM");
      else
        {
          cleanup_free char *desc = NULL;
          json_t *saved = json_deep_copy (st->config);
          r = exec_meta (b, st, in, env, &desc, err);
          if (r == 0)
            {
              char key[CIMG_DIGEST_BUFSIZE];
              cleanup_free char *k = desc[0] == '\001' ? xstrdup (desc + 1) : xstrdup (desc);
              cimg_build_cache_key (st->key, k, st->args, NULL, key);
              /* The config change is recomputed, but the cached state (with its timestamps)
                 is reused so that a rebuild gives the same image ID. */
              json_t *changed = st->config;
              st->config = saved;
              saved = NULL;
              if (cache_hit (b, st, key))
                json_decref (changed);
              else
                {
                  json_decref (st->config);
                  st->config = changed;
                  cleanup_free char *hist = history_text (desc);
                  bool added = false;
                  if (strcmp (in->name, "workdir") == 0 && ensure_workdir (b, st, &added, err) < 0)
                    {
                      cimg_error_wrap (err, "%s:%d: WORKDIR", b->df->name, in->line);
                      return -1;
                    }
                  add_history (st, hist, !added);
                  r = cache_store (b, st, key, err);
                }
            }
          json_decref (saved);
        }
      if (r < 0)
        return -1;
      out (b, " ---> %.12s\n", cimg_digest_hex (st->key));
    }
  st->done = true;
  return 0;
}

/* ---------------------------------------------------------------- the build */

static int
setup_stages (struct bctx *b, cimg_error_t *err)
{
  const struct cimg_dockerfile *df = b->df;
  size_t nmeta = 0;
  while (nmeta < df->n_instrs && strcmp (df->instrs[nmeta].name, "from") != 0)
    {
      if (strcmp (df->instrs[nmeta].name, "arg") != 0)
        return cimg_error_set (err, EINVAL,
                               "%s:%d: no build stage in current context (%s before FROM)",
                               df->name, df->instrs[nmeta].line, df->instrs[nmeta].name);
      nmeta++;
    }
  if (nmeta == df->n_instrs)
    return cimg_error_set (err, EINVAL, "%s: no build stage in current context", df->name);
  for (size_t i = 0; i < nmeta; i++)
    for (size_t k = 0; df->instrs[i].args[k]; k++)
      {
        const char *w = df->instrs[i].args[k];
        const char *eq = strchr (w, '=');
        cleanup_free char *name = eq ? xstrndup (w, (size_t)(eq - w)) : xstrdup (w);
        cleanup_free char *value = NULL;
        if (eq && cimg_build_expand_word (eq + 1, df->escape, b->meta, &value, err) < 0)
          return cimg_error_wrap (err, "%s:%d", df->name, df->instrs[i].line);
        const char *given = env_get (b->o->build_args, name);
        if (given)
          {
            free (value);
            value = xstrdup (given);
            if (!cimg_strv_contains (b->consumed, name))
              cimg_strv_append (&b->consumed, name);
          }
        if (value)
          env_set (&b->meta, name, value);
      }
  b->stages = xzalloc ((df->n_instrs + 1) * sizeof *b->stages);
  for (size_t i = nmeta; i < df->n_instrs; i++)
    {
      if (strcmp (df->instrs[i].name, "from") != 0)
        continue;
      if (b->nst > 0)
        b->stages[b->nst - 1].end = i;
      struct stage *cur = &b->stages[b->nst++];
      cur->first = i;
      cur->end = df->n_instrs;
      if (cimg_build_expand_word (df->instrs[i].args[0], df->escape, b->meta, &cur->base, err) < 0)
        return cimg_error_wrap (err, "%s:%d", df->name, df->instrs[i].line);
      if (cur->base[0] == '\0')
        return cimg_error_set (err, EINVAL, "%s:%d: base name (%s) should not be blank", df->name,
                               df->instrs[i].line, df->instrs[i].args[0]);
      if (df->instrs[i].args[1])
        cur->name = xstrdup (df->instrs[i].args[2]);
      for (size_t f = 0; df->instrs[i].flags[f]; f++)
        if (!cimg_str_has_prefix (df->instrs[i].flags[f], "--platform="))
          return cimg_error_set (err, EINVAL, "%s:%d: unknown flag %s", df->name,
                                 df->instrs[i].line, df->instrs[i].flags[f]);
    }
  return 0;
}

/* Which stages the target needs (as build/plan.c decides it for --dry-run). */
static void
mark_needed (struct bctx *b, size_t i)
{
  if (b->stages[i].needed)
    return;
  b->stages[i].needed = true;
  long dep = stage_ref (b, i, b->stages[i].base);
  if (dep >= 0)
    mark_needed (b, (size_t)dep);
  for (size_t k = b->stages[i].first; k < b->stages[i].end; k++)
    {
      const char *f = flag_value (&b->df->instrs[k], "from");
      if (f == NULL)
        continue;
      cleanup_free char *x = NULL;
      cimg_error_t e = { 0 };
      if (cimg_build_expand_word (f, b->df->escape, b->meta, &x, &e) < 0)
        {
          cimg_error_clear (&e);
          x = xstrdup (f);
        }
      dep = stage_ref (b, i, x);
      if (dep >= 0)
        mark_needed (b, (size_t)dep);
    }
}

static int
commit_state (struct bctx *b, struct state *st, char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  if (json_object_get (st->config, "created") == NULL)
    {
      char now[64];
      now_rfc3339 (now, sizeof now);
      json_object_set_new (st->config, "created", json_string (now));
    }
  cleanup_free char *bytes = json_dumps (st->config, JSON_COMPACT | JSON_SORT_KEYS);
  if (bytes == NULL)
    return cimg_error_set (err, EINVAL, "cannot encode the image config");
  /* A fully cached build gives an image the store already has: nothing to write (the index
     rewrite and its fsyncs are most of a cached build's time). */
  char digest[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (bytes, strlen (bytes), digest);
  {
    cimg_error_t e = { 0 };
    cleanup_image struct cimg_image *have = cimg_store_find_image (b->s, digest, &e);
    cimg_error_clear (&e);
    if (have && strcmp (have->id, digest) == 0)
      {
        memcpy (id_out, digest, CIMG_DIGEST_BUFSIZE);
        return 0;
      }
  }
  return cimg_store_add_image (b->s, bytes, strlen (bytes), NULL, 0, st->layers, st->n_layers, NULL,
                               id_out, err);
}

static int
do_build (struct bctx *b, char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  if (setup_stages (b, err) < 0)
    return -1;
  size_t t = b->nst - 1;
  if (b->o->target && *b->o->target)
    {
      long r = -1;
      for (size_t i = 0; i < b->nst; i++)
        if (b->stages[i].name && strcasecmp (b->stages[i].name, b->o->target) == 0)
          r = (long)i;
      if (r < 0)
        return cimg_error_set (err, ENOENT, "target stage \"%s\" could not be found", b->o->target);
      t = (size_t)r;
    }
  mark_needed (b, t);
  for (size_t i = 0; i <= t; i++)
    if (b->stages[i].needed)
      b->nsteps += (int)(b->stages[i].end - b->stages[i].first);
  int rc = 0;
  for (size_t i = 0; i <= t && rc == 0; i++)
    if (b->stages[i].needed && build_stage (b, i, err) < 0)
      rc = -1;
  /* Every other stage reached (and, after a failure, the failed one as far as it got) is kept
     as an untagged image, as the legacy builder keeps its intermediate images: its layers are
     then referenced, so check does not call them debris and gc keeps them (and the cache hits)
     until the images are pruned. */
  for (size_t i = 0; i <= t; i++)
    {
      struct state *o = &b->stages[i].st;
      if ((i == t && rc == 0) || o->config == NULL || o->n_layers == 0)
        continue;
      char id[CIMG_DIGEST_BUFSIZE];
      cimg_error_t e = { 0 };
      commit_state (b, o, id, &e);
      cimg_error_clear (&e);
    }
  if (rc < 0)
    return -1;
  /* As Docker: a --build-arg no ARG declared is reported, not an error. */
  struct sbuf un = { 0 };
  for (size_t i = 0; b->o->build_args && b->o->build_args[i]; i++)
    {
      cleanup_free char *k = xstrndup (b->o->build_args[i], strcspn (b->o->build_args[i], "="));
      if (!cimg_strv_contains (b->consumed, k))
        sbuf_addf (&un, "%s%s", un.n ? " " : "", k);
    }
  if (un.n)
    out (b, "[Warning] One or more build-args [%s] were not consumed\n", un.p);
  free (un.p);
  return commit_state (b, &b->stages[t].st, id_out, err);
}

static int
make_tmp (struct bctx *b, cimg_error_t *err)
{
  char hex[65];
  cimg_random_hex64 (hex);
  snprintf (b->tmp, sizeof b->tmp, "tmp-build-%.16s", hex);
  int dfd = cimg_store_dirfd (b->s);
  if (mkdirat (dfd, b->tmp, 0700) < 0)
    return cimg_error_sys (err, "mkdir %s", b->tmp);
  static const char *const dirs[]
      = { "empty", "init", "init/proc", "init/sys", "init/dev", "init/etc" };
  for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
    {
      cleanup_free char *p = xasprintf ("%s/%s", b->tmp, dirs[i]);
      if (mkdirat (dfd, p, 0755) < 0)
        return cimg_error_sys (err, "mkdir %s", p);
    }
  static const char *const files[] = { "init/etc/hosts", "init/etc/resolv.conf" };
  for (size_t i = 0; i < ARRAY_SIZE (files); i++)
    {
      cleanup_free char *p = xasprintf ("%s/%s", b->tmp, files[i]);
      int fd = openat (dfd, p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0)
        return cimg_error_sys (err, "create %s", p);
      close (fd);
    }
  return 0;
}

int
cimg_build_enter_mount_namespace (cimg_error_t *err)
{
  /* Views of stages are overlay mounts: in a private mount namespace of this process they can
     never leak into the host's, and go when it exits however it exits. unshare must come before
     any thread is started (the layer sink's), as CLONE_NEWNS implies CLONE_FS. */
  if (unshare (CLONE_NEWNS) < 0 || mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return cimg_error_sys (err, "private mount namespace");
  return 0;
}

int
cimg_build_run (struct cimg_store *s, const struct cimg_build_opts *o,
                char id_out[CIMG_DIGEST_BUFSIZE], int *run_exit, cimg_error_t *err)
{
  *run_exit = 0;
  struct bctx b = { .s = s, .o = o, .ctxfd = -1, .tmpfd = -1 };
  int rc = -1;
  cleanup_dockerfile struct cimg_dockerfile *df = NULL;
  cleanup_free char *dfpath
      = o->dockerfile ? xstrdup (o->dockerfile) : xasprintf ("%s/Dockerfile", o->context);
  b.ctxfd = open (o->context, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (b.ctxfd < 0)
    return cimg_error_sys (err, "context %s", o->context);
  {
    cleanup_free char *text = NULL;
    size_t len;
    if (cimg_read_file_at (AT_FDCWD, dfpath, 16 << 20, &text, &len, err) < 0)
      goto early;
    const char *slash = strrchr (dfpath, '/');
    df = cimg_build_parse (slash ? slash + 1 : dfpath, text, len, err);
    if (df == NULL)
      goto early;
    b.df = df;
    cleanup_free char *ign = NULL;
    size_t ilen;
    cimg_error_t e = { 0 };
    if (cimg_read_file_at (b.ctxfd, ".dockerignore", 1 << 20, &ign, &ilen, &e) == 0)
      {
        b.di = cimg_dockerignore_parse (ign, ilen, err);
        if (b.di == NULL)
          {
            cimg_error_wrap (err, ".dockerignore");
            goto early;
          }
      }
    cimg_error_clear (&e);
  }
  b.rootabs = realpath (cimg_store_root (s), NULL);
  if (b.rootabs == NULL)
    {
      cimg_error_sys (err, "%s", cimg_store_root (s));
      goto early;
    }
  if (cimg_store_lock (s, CIMG_LOCK_SHARED, err) < 0)
    goto early;
  if (make_tmp (&b, err) == 0)
    rc = do_build (&b, id_out, err);
  if (b.tmp[0])
    drop_workdir (&b, b.tmp);
  *run_exit = b.run_exit;
  cimg_store_unlock (s);
early:
  for (size_t i = 0; i < b.nst; i++)
    {
      free (b.stages[i].base);
      free (b.stages[i].name);
      state_clear (&b.stages[i].st);
    }
  free (b.stages);
  cimg_strv_free (b.meta);
  cimg_strv_free (b.consumed);
  cimg_dockerignore_free (b.di);
  free (b.rootabs);
  if (b.ctxfd >= 0)
    close (b.ctxfd);
  return rc;
}
