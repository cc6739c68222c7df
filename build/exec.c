/* The build executor: runs a parsed Dockerfile against the store. Each stage keeps a state (the
   whole image config and its layers); metadata instructions change the config, RUN runs a
   runtime container over the state's layers and packs its upper dir, COPY/ADD write their files
   into a temporary tree in overlay-upper form and pack it. Every step's result is recorded in
   the step cache (build/cache.c) under a key chained from the parent state's key.

   Temporary files live in <root>/tmp-build-<random>/, a name gc and check treat as debris, so a
   killed build leaves nothing they would not sweep. */

#include "build/build-exec.h"
#include "build/build-internal.h"
#include "build/change.h"
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
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
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
  char **args;  /* ARGs in scope: "K=V" (declared with a value) */
  bool cmd_set; /* this stage ran a CMD: a later ENTRYPOINT keeps it (Docker's cmdSet) */
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
  struct cimg_platform plat; /* FROM --platform, else the target platform */
  struct state st;
};

/* A --secret of the command line, read once at the start (secrets are small: at most 1 MiB, as
   BuildKit's 500 KiB limit with room to spare). */
struct secret
{
  char *id;
  char *data;
  size_t len;
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
  struct cimg_platform build_plat, target_plat;
  struct secret *secrets;
  size_t n_secrets;
  char *secret_salt; /* hex; keys secrets' digests so that a key reveals nothing of them */
  bool secret_fs;    /* <tmp>/secrets is a tmpfs of this process's mount namespace */
};

static int
parse_secrets (struct bctx *b, cimg_error_t *err)
{
  for (size_t i = 0; b->o->secrets && b->o->secrets[i]; i++)
    {
      cleanup_free char *copy = xstrdup (b->o->secrets[i]);
      cleanup_free char *id = NULL, *src = NULL, *env = NULL;
      for (char *save = NULL, *f = strtok_r (copy, ",", &save); f; f = strtok_r (NULL, ",", &save))
        {
          char *eq = strchr (f, '=');
          if (eq == NULL)
            return cimg_error_set (err, EINVAL, "--secret %s: %s is not key=value",
                                   b->o->secrets[i], f);
          *eq = '\0';
          char **slot = strcmp (f, "id") == 0                                 ? &id
                        : strcmp (f, "src") == 0 || strcmp (f, "source") == 0 ? &src
                        : strcmp (f, "env") == 0                              ? &env
                                                                              : NULL;
          if (strcmp (f, "type") == 0
              && (strcmp (eq + 1, "file") == 0 || strcmp (eq + 1, "env") == 0))
            continue;
          if (slot == NULL)
            return cimg_error_set (err, EINVAL, "--secret %s: unexpected key %s", b->o->secrets[i],
                                   f);
          free (*slot);
          *slot = xstrdup (eq + 1);
        }
      if (id == NULL || *id == '\0')
        return cimg_error_set (err, EINVAL, "--secret %s: no id", b->o->secrets[i]);
      struct secret sc = { .id = steal_pointer (&id) };
      if (src == NULL && env == NULL)
        env = xstrdup (sc.id);
      int rc = 0;
      if (src)
        {
          rc = cimg_read_file_at (AT_FDCWD, src, 1 << 20, &sc.data, &sc.len, err);
          if (rc < 0)
            cimg_error_wrap (err, "--secret id=%s", sc.id);
        }
      else if (getenv (env))
        {
          sc.data = xstrdup (getenv (env));
          sc.len = strlen (sc.data);
        }
      else
        rc = cimg_error_set (err, ENOENT, "--secret id=%s: environment variable %s is not set",
                             sc.id, env);
      b->secrets = xrealloc (b->secrets, (b->n_secrets + 1) * sizeof *b->secrets);
      b->secrets[b->n_secrets++] = sc;
      if (rc < 0)
        return -1;
    }
  return 0;
}

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

/* The ARGs Docker predefines: usable with --build-arg without being declared. */
static bool
is_proxy_arg (const char *name)
{
  static const char *const names[]
      = { "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY",
          "ftp_proxy",  "NO_PROXY",   "no_proxy",    "ALL_PROXY",   "all_proxy" };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    if (strcmp (name, names[i]) == 0)
      return true;
  return false;
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
  json_t *rootfs = cimg_json_object_field (st->config, "rootfs");
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
  out (b, " ---> CACHED\n");
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
   private mount namespace at <dir>/view. The empty dir <tmp>/empty is the bottom lower (and
   <tmp>/empty2 under it for zero layers), so a state of any depth makes a valid lower-only
   overlay. Returns an fd of the view's root. */
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
  /* A lower-only overlay needs two lowers: FROM scratch has no layer at all. */
  if (n == 0)
    sbuf_addf (&o, ":%s/%s/empty2", b->rootabs, b->tmp);
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
          char *c = build_clean_abs (r);
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
          char *c = build_clean_abs (nr);
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
  bool keep_owner; /* bind mounts: the source's owners (else 0:0 unless chown) */
  uid_t uid;
  gid_t gid;
  mode_t chmod;                      /* 0: keep the source's */
  struct cimg_dockerignore *exclude; /* --exclude patterns, relative to the source copied */
  size_t ex_skip;                    /* length of the source's own path + 1 in rel ("" → 0) */
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
      if (c->exclude && strlen (crel) > c->ex_skip)
        {
          const char *r = crel + c->ex_skip;
          if (cimg_dockerignore_excluded (c->exclude, r)
              && !(S_ISDIR (st.st_mode) && cimg_dockerignore_must_walk (c->exclude, r)))
            continue;
        }
      if (copy_node (c, cfd, &st, crel, dstdir, names[i], cdst, err) < 0)
        return -1;
    }
  return 0;
}

static int
set_meta (struct copy_ctx *c, int dstdir, const char *name, const struct stat *st,
          cimg_error_t *err)
{
  uid_t u = c->chown ? c->uid : c->keep_owner ? st->st_uid : 0;
  gid_t g = c->chown ? c->gid : c->keep_owner ? st->st_gid : 0;
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
                (unsigned)(st->st_mode & S_IFMT) | mode_of (c, st),
                c->chown        ? (unsigned)c->uid
                : c->keep_owner ? (unsigned)st->st_uid
                                : 0,
                c->chown        ? (unsigned)c->gid
                : c->keep_owner ? (unsigned)st->st_gid
                                : 0,
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

/* The entry names of the directory rel (relative to rootfd) that match the filepath.Match
   pattern comp, sorted; NULL when none or when rel is no directory. After a wildcard,
   BuildKit's walk (filepath.Walk, which never follows a symlink to a directory) only enters
   real directories: nofollow says so. */
static char **
match_entries (int rootfd, const char *rel, const char *comp, bool nofollow)
{
  int flags = O_RDONLY | O_DIRECTORY | (nofollow ? O_NOFOLLOW : 0);
  cleanup_close int dfd = cimg_openat_in_root (rootfd, *rel ? rel : ".", flags, 0);
  if (dfd < 0)
    return NULL;
  DIR *d = fdopendir (dfd);
  if (d == NULL)
    return NULL;
  dfd = -1;
  char **names = NULL;
  struct dirent *e;
  while ((e = readdir (d)))
    if (strcmp (e->d_name, ".") && strcmp (e->d_name, "..")
        && (comp == NULL || fnmatch (comp, e->d_name, 0) == 0))
      cimg_strv_append (&names, e->d_name);
  closedir (d);
  size_t n = cimg_strv_len (names);
  if (n > 1)
    qsort (names, n, sizeof *names, cmp_str);
  return names;
}

/* A match is dropped when .dockerignore excludes it (unless it is the Dockerfile or the
   .dockerignore, which a build always has, or an exception re-includes something below it) or
   when it does not exist. */
static void
keep_match (struct copy_ctx *c, int rootfd, const char *p, char ***res)
{
  if (c->use_ignore && c->b->di && strcmp (p, ".") != 0 && cimg_dockerignore_excluded (c->b->di, p)
      && !cimg_dockerignore_always_kept (p, NULL) && !cimg_dockerignore_must_walk (c->b->di, p))
    return;
  int fd = cimg_openat_in_root (rootfd, p, O_PATH, 0);
  if (fd < 0)
    return;
  close (fd);
  cimg_strv_append (res, p);
}

/* Expand a source pattern (clean, relative to the source root) to the paths it names, as
   BuildKit's copy (fsutil ResolveWildcards) does: the components before the first wildcard
   are a path (symlinks followed inside the root); the rest is matched with Go's
   filepath.Match against every path of a walk below it, component by component since '*'
   never matches '/'. So "**" is "*" twice: one component, never "any depth". */
static int
glob_sources (struct copy_ctx *c, int rootfd, const char *pattern, char ***outv, cimg_error_t *err)
{
  cleanup_strv char **cur = NULL;
  cimg_strv_append (&cur, "");
  cleanup_free char *copy = xstrdup (pattern);
  char *save = NULL;
  bool wild = false; /* a wildcard component came before: enter real directories only */
  for (char *comp = strtok_r (copy, "/", &save); comp; comp = strtok_r (NULL, "/", &save))
    {
      if (strcmp (comp, ".") == 0)
        continue;
      cleanup_strv char **next = NULL;
      for (size_t i = 0; cur && cur[i]; i++)
        {
          if (!has_glob (comp) && !wild)
            {
              cleanup_free char *p = *cur[i] ? xasprintf ("%s/%s", cur[i], comp) : xstrdup (comp);
              cimg_strv_append (&next, p);
              continue;
            }
          cleanup_strv char **names = NULL;
          if (has_glob (comp))
            names = match_entries (rootfd, cur[i], comp, wild && *cur[i]);
          else
            {
              /* a literal component after a wildcard: cur[i] must be a real directory */
              int flags = O_RDONLY | O_DIRECTORY | (*cur[i] ? O_NOFOLLOW : 0);
              int dfd = cimg_openat_in_root (rootfd, *cur[i] ? cur[i] : ".", flags, 0);
              if (dfd < 0)
                continue;
              close (dfd);
              cimg_strv_append (&names, comp);
            }
          for (size_t k = 0; names && names[k]; k++)
            {
              cleanup_free char *p
                  = *cur[i] ? xasprintf ("%s/%s", cur[i], names[k]) : xstrdup (names[k]);
              cimg_strv_append (&next, p);
            }
        }
      if (has_glob (comp))
        wild = true;
      cimg_strv_free (cur);
      cur = steal_pointer (&next);
      if (cur == NULL)
        break;
    }
  char **res = NULL;
  for (size_t i = 0; cur && cur[i]; i++)
    keep_match (c, rootfd, *cur[i] ? cur[i] : ".", &res);
  (void)err;
  *outv = res;
  return 0;
}

static void
walk_matches (struct copy_ctx *c, int rootfd, const char *dir, const struct cimg_dockerignore *pat,
              char ***res)
{
  cleanup_strv char **names = match_entries (rootfd, dir, NULL, *dir != '\0');
  for (size_t k = 0; names && names[k]; k++)
    {
      cleanup_free char *p = *dir ? xasprintf ("%s/%s", dir, names[k]) : xstrdup (names[k]);
      if (cimg_dockerignore_excluded (pat, p))
        keep_match (c, rootfd, p, res);
      else
        walk_matches (c, rootfd, p, pat, res);
    }
}

/* COPY --parents: BuildKit hands the source to the copy as an include pattern (moby's
   patternmatcher, the .dockerignore syntax) matched while walking the whole source, so there
   "**" spans any number of directories ("**" / "*.txt" finds every .txt). A matched directory
   is taken whole. */
static int
walk_sources (struct copy_ctx *c, int rootfd, const char *pattern, char ***outv, cimg_error_t *err)
{
  char *pv[] = { (char *)pattern, NULL };
  cleanup_dockerignore struct cimg_dockerignore *pat = cimg_dockerignore_new (pv, err);
  if (pat == NULL)
    return -1;
  /* the components before the first wildcard are a path, as in glob_sources */
  cleanup_free char *start = xstrdup (pattern);
  char *w = strpbrk (start, "*?[");
  if (w)
    {
      while (w > start && w[-1] != '/')
        w--;
      *(w > start ? w - 1 : w) = '\0';
    }
  char **res = NULL;
  if (*start && cimg_dockerignore_excluded (pat, start))
    keep_match (c, rootfd, start, &res);
  else
    walk_matches (c, rootfd, start, pat, &res);
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

/* A boolean flag: "--link" or "--link=true". */
static bool
bool_flag (const struct cimg_instruction *in, const char *name)
{
  size_t n = strlen (name);
  for (size_t i = 0; in->flags[i]; i++)
    if (strncmp (in->flags[i], "--", 2) == 0 && strncmp (in->flags[i] + 2, name, n) == 0)
      {
        const char *r = in->flags[i] + 2 + n;
        if (*r == '\0' || strcasecmp (r, "=true") == 0)
          return true;
      }
  return false;
}

static bool
is_url (const char *s)
{
  return cimg_str_has_prefix (s, "http://") || cimg_str_has_prefix (s, "https://");
}

/* The file name ADD gives a download: the last component of the URL's path, percent-decoded
   (query and fragment dropped), or "" when the path has none. */
static char *
url_file_name (const char *url)
{
  const char *p = strstr (url, "://");
  p = p ? p + 3 : url;
  p += strcspn (p, "/?#");
  size_t n = strcspn (p, "?#");
  cleanup_free char *path = xstrndup (p, n);
  while (*path && path[strlen (path) - 1] == '/')
    path[strlen (path) - 1] = '\0';
  const char *sl = strrchr (path, '/');
  const char *last = sl ? sl + 1 : path;
  char *o = xmalloc (strlen (last) + 1);
  size_t k = 0;
  for (const char *c = last; *c; c++)
    {
      if (c[0] == '%' && isxdigit ((unsigned char)c[1]) && isxdigit ((unsigned char)c[2]))
        {
          char hx[3] = { c[1], c[2], 0 };
          char ch = (char)strtol (hx, NULL, 16);
          if (ch == '/' || ch == '\0')
            ch = '_';
          o[k++] = ch;
          c += 2;
        }
      else
        o[k++] = *c;
    }
  o[k] = '\0';
  return o;
}

#define FAIL(...)                                                                                  \
  (cimg_error_set (err, EINVAL, __VA_ARGS__), cimg_error_wrap (err, "%s:%d", b->df->name, in->line))

/* Metadata instructions: change the config, add an empty-layer history entry. desc is what the
   history and the cache key see. */
static int
exec_meta (struct bctx *b, struct state *st, const struct cimg_instruction *in, char **env_in,
           char **desc, cimg_error_t *err)
{
  if (strcmp (in->name, "maintainer") == 0)
    {
      json_object_set_new (st->config, "author", json_string (in->args[0]));
      *desc = xasprintf ("MAINTAINER %s", in->args[0]);
      return 0;
    }
  /* A copy: later pairs of one ENV see the earlier ones. */
  struct cimg_meta_ctx m = { .escape = b->df->escape, .env = NULL, .cmd_set = st->cmd_set };
  for (size_t i = 0; env_in && env_in[i]; i++)
    cimg_strv_append (&m.env, env_in[i]);
  int rc = cimg_build_apply_meta (cfg_obj (st), in, &m, desc, err);
  cimg_strv_free (m.env);
  if (rc < 0)
    return cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
  st->cmd_set = m.cmd_set;
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
state_from_image_or_pull (struct bctx *b, struct state *st, const char *name,
                          const struct cimg_platform *plat, cimg_error_t *err)
{
  if (!b->o->pull && state_from_image (b, st, name, err) == 0)
    return 0;
  cimg_error_clear (err);
  out (b, "Pulling %s\n", name);
  cleanup_free char *ps = plat ? cimg_build_platform_string (plat) : NULL;
  struct cimg_pull_opts po = { .platform = ps };
  struct cimg_pull_result pr;
  if (cimg_registry_pull (b->s, name, &po, &pr, err) < 0)
    return -1;
  cimg_pull_result_clear (&pr);
  return state_from_image (b, st, name, err);
}

/* An image whose os/arch/variant differ from the stage's platform is refused rather than run (a
   RUN of it would fail, or run another architecture's binaries through binfmt): Docker's legacy
   builder refuses it too. With --pull the matching image is pulled instead. */
static int
check_platform (struct state *st, const struct cimg_platform *p, cimg_error_t *err)
{
  const char *os = cimg_json_str (st->config, "os");
  const char *arch = cimg_json_str (st->config, "architecture");
  const char *var = cimg_json_str (st->config, "variant");
  if (os == NULL || arch == NULL)
    return 0;
  struct cimg_platform have;
  cleanup_free char *hs
      = var && *var ? xasprintf ("%s/%s/%s", os, arch, var) : xasprintf ("%s/%s", os, arch);
  cimg_error_t e = { 0 };
  if (cimg_build_platform_parse (hs, &have, &e) < 0)
    {
      cimg_error_clear (&e);
      return 0;
    }
  /* An image without a variant matches any variant of its architecture. */
  if (strcmp (have.os, p->os) == 0 && strcmp (have.arch, p->arch) == 0
      && (!var || !*var || strcmp (have.variant, p->variant) == 0))
    return 0;
  cleanup_free char *want = cimg_build_platform_string (p);
  return cimg_error_set (err, EINVAL,
                         "the image's platform (%s) does not match the specified platform (%s)", hs,
                         want);
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
  cleanup_free char *upper = build_upper_name (in->name);
  size_t nargs = cimg_strv_len (in->args);
  if (nargs < 2)
    return FAIL ("%s requires at least two arguments", upper);
  const char *from = cimg_build_flag_value (in, "from");
  const char *chown = cimg_build_flag_value (in, "chown");
  const char *chmod_s = cimg_build_flag_value (in, "chmod");
  struct copy_ctx c = { .b = b };
  if (chmod_s)
    {
      char *end;
      unsigned long m = strtoul (chmod_s, &end, 8);
      if (*chmod_s == '\0' || *end || m > 07777)
        return FAIL ("invalid --chmod=%s: only octal modes are supported", chmod_s);
      c.chmod = (mode_t)m;
    }
  /* --link gives the same layer here (every COPY layer is independent of the files below it
     already); --parents keeps the sources' paths; --exclude (repeatable) drops what matches. */
  bool parents = bool_flag (in, "parents");
  const char *checksum = cimg_build_flag_value (in, "checksum");
  if (bool_flag (in, "unpack"))
    return FAIL ("ADD --unpack is not supported");
  cleanup_strv char **excludes = NULL, **xargs = NULL;
  for (size_t i = 0; in->flags[i]; i++)
    if (cimg_str_has_prefix (in->flags[i], "--exclude="))
      {
        cleanup_free char *x = NULL;
        if (cimg_build_expand_word (in->flags[i] + 10, b->df->escape, env, &x, err) < 0)
          return cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
        cimg_strv_append (&excludes, x);
      }
  cleanup_dockerignore struct cimg_dockerignore *exclude = NULL;
  if (excludes)
    {
      exclude = cimg_dockerignore_new (excludes, err);
      if (exclude == NULL)
        return cimg_error_wrap (err, "%s:%d: %s --exclude", b->df->name, in->line, upper);
      c.exclude = exclude;
    }
  size_t n_urls = 0;
  for (size_t i = 0; i < nargs; i++)
    {
      char *x = NULL;
      if (cimg_build_expand_word (in->args[i], b->df->escape, env, &x, err) < 0)
        return cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
      cimg_strv_append (&xargs, x);
      if (i + 1 < nargs && is_url (x))
        n_urls++;
      free (x);
    }
  if (checksum)
    {
      cleanup_free char *cs = NULL;
      if (cimg_build_expand_word (checksum, b->df->escape, env, &cs, err) < 0)
        return cimg_error_wrap (err, "%s:%d", b->df->name, in->line);
      if (!cimg_digest_valid (cs))
        return FAIL ("ADD --checksum=%s: want sha256:<64 hex digits>", cs);
      if (nargs != 2)
        return FAIL ("checksum can't be specified for multiple sources");
      if (n_urls != 1)
        return FAIL ("checksum can't be specified for non-HTTP sources");
    }
  if (n_urls && !add)
    return FAIL ("COPY: source can't be a URL (use ADD)");
  if (n_urls && (from || in->n_heredocs || n_urls != nargs - 1))
    return FAIL ("ADD: URL sources cannot be mixed with other sources");
  cleanup_free char *url_key = NULL;
  /* The source root: the context, or the view of another stage or image. */
  cleanup_free char *wd = new_workdir (b, err);
  if (wd == NULL)
    return -1;
  int rc = -1;
  int srcfd = -1, hdfd = -1; /* the source root; the heredocs' directory */
  int *mroot = NULL;         /* per match: the root it is read from */
  bool *mctx = NULL;         /* per match: read from the context (.dockerignore, unpacking) */
  bool *src_hd = xzalloc ((nargs + 1) * sizeof *src_hd);
  bool src_view = false, dst_view = false, src_heredoc = false;
  int viewfd = -1;
  struct state other = { 0 };
  cleanup_free char *src_dir = NULL, *hd_dir = NULL;
  cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
  cleanup_strv char **srcs = NULL, **matches_all = NULL, **prel = NULL;
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
      /* BuildKit reads a number as a stage index, never as an image name. */
      size_t sign = f[0] == '+' || f[0] == '-';
      if (ref < 0 && f[sign] && strspn (f + sign, "0123456789") == strlen (f + sign))
        {
          long n = strtol (f, NULL, 10);
          if (n >= 0 && (size_t)n < b->nst)
            FAIL ("%s --from=%s: a stage can copy only from a stage before it", upper, f);
          else
            FAIL ("%s --from=%s: invalid stage index %s", upper, f, f);
          goto out;
        }
      struct state *os;
      if (ref >= 0)
        {
          if (build_stage (b, (size_t)ref, err) < 0)
            goto out;
          os = &b->stages[ref].st;
        }
      else
        {
          if (state_from_image_or_pull (b, &other, f, &b->target_plat, err) < 0)
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
  else if (n_urls)
    {
      /* ADD <url>: each download becomes a file (mode 0600, mtime from Last-Modified) of a
         directory standing in for the context; it is never unpacked. It is fetched on every
         build (as Docker's builders do) and its digest is part of the key, so a changed body
         is a miss and an unchanged one a hit. */
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
      src_key = "url";
      struct sbuf uk = { 0 };
      for (size_t i = 0; i + 1 < nargs; i++)
        {
          /* BuildKit's name for a URL without a path: "__unnamed__". */
          cleanup_free char *name = url_file_name (xargs[i]);
          if (*name == '\0' || strcmp (name, ".") == 0 || strcmp (name, "..") == 0)
            {
              free (name);
              name = xstrdup ("__unnamed__");
            }
          for (size_t k = 0; k < i; k++)
            if (strcmp (xargs[k], name) == 0)
              {
                free (uk.p);
                FAIL ("ADD %s: two URLs give the file name %s", xargs[i], name);
                goto out;
              }
          out (b, "Downloading %s\n", xargs[i]);
          struct cimg_fetch_result fr;
          if (cimg_build_fetch (xargs[i], srcfd, name, &fr, err) < 0)
            {
              free (uk.p);
              cimg_error_wrap (err, "%s:%d: ADD", b->df->name, in->line);
              goto out;
            }
          if (checksum)
            {
              cleanup_free char *cs = NULL;
              cimg_build_expand_word (checksum, b->df->escape, env, &cs, err);
              if (cs == NULL || strcmp (cs, fr.digest) != 0)
                {
                  free (uk.p);
                  FAIL ("ADD %s: checksum mismatch: expected %s, got %s", xargs[i],
                        cs ? cs : checksum, fr.digest);
                  goto out;
                }
            }
          struct timespec ts[2];
          clock_gettime (CLOCK_REALTIME, &ts[0]);
          ts[1] = ts[0];
          if (fr.mtime >= 0)
            {
              ts[0].tv_sec = ts[1].tv_sec = (time_t)fr.mtime;
              ts[0].tv_nsec = ts[1].tv_nsec = 0;
            }
          if (utimensat (srcfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
            {
              free (uk.p);
              cimg_error_sys (err, "utimes %s", name);
              goto out;
            }
          /* The layer holds the Last-Modified mtime: a changed one is a changed result. */
          sbuf_addf (&uk, " %s mtime=%lld", xargs[i], (long long)fr.mtime);
          free (xargs[i]);
          xargs[i] = steal_pointer (&name);
        }
      url_key = sbuf_steal (&uk);
    }
  else
    {
      srcfd = b->ctxfd;
      c.use_ignore = true;
    }
  if (in->n_heredocs)
    {
      /* COPY <<EOF /path: each body becomes a file (mode 0644) of a directory of its own; other
         sources come from the context, or from the --from stage or image (BuildKit writes a
         heredoc from its text whatever --from says). A body is expanded as BuildKit does
         unless its delimiter was quoted. */
      hd_dir = new_workdir (b, err);
      if (hd_dir == NULL)
        goto out;
      hdfd = openat (cimg_store_dirfd (b->s), hd_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (hdfd < 0)
        {
          cimg_error_sys (err, "open %s", hd_dir);
          goto out;
        }
      if (!from)
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
          cleanup_free char *body = NULL;
          if (hd->expand && cimg_build_expand_heredoc (hd->content, env, &body, err) < 0)
            {
              cimg_error_wrap (err, "%s:%d: %s <<%s", b->df->name, in->line, upper, hd->name);
              goto out;
            }
          const char *text = body ? body : hd->content;
          int fd = openat (hdfd, hd->name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                           0644);
          if (fd < 0 || cimg_write_all (fd, text, strlen (text)) < 0 || fchmod (fd, 0644) < 0)
            {
              cimg_error_sys (err, "heredoc %s", hd->name);
              if (fd >= 0)
                close (fd);
              goto out;
            }
          close (fd);
        }
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
  /* Sources and destination (expanded above). */
  for (size_t i = 0; i < nargs; i++)
    {
      cleanup_free char *x = xstrdup (xargs[i]);
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
          src_hd[cimg_strv_len (srcs)] = true;
          cimg_strv_append (&srcs, name);
        }
      else
        cimg_strv_append (&srcs, x);
    }
  for (size_t i = 0; srcs[i]; i++)
    {
      cleanup_free char *abs = xasprintf ("/%s", srcs[i]);
      cleanup_free char *clean = build_clean_abs (abs);
      /* --parents: "a/./b/c" keeps "b/c" (the part after the "/./" pivot), "a/b/c" all of it. */
      size_t pivot = 0;
      if (parents)
        {
          const char *pv = strstr (srcs[i], "/./");
          if (pv && pv != srcs[i])
            {
              cleanup_free char *pa = xasprintf ("/%.*s", (int)(pv - srcs[i]), srcs[i]);
              cleanup_free char *pc = build_clean_abs (pa);
              pivot = strcmp (pc, "/") == 0 ? 0 : strlen (pc);
            }
        }
      cleanup_strv char **m = NULL;
      int root = src_hd[i] ? hdfd : srcfd;
      c.use_ignore = root == b->ctxfd;
      if (src_hd[i])
        cimg_strv_append (&m, srcs[i]); /* a heredoc's name is no pattern */
      else
        {
          const char *pat = clean[1] ? clean + 1 : ".";
          if (parents && strstr (pat, "**"))
            {
              if (walk_sources (&c, root, pat, &m, err) < 0)
                {
                  cimg_error_wrap (err, "%s:%d: %s %s", b->df->name, in->line, upper, srcs[i]);
                  goto out;
                }
            }
          else
            glob_sources (&c, root, pat, &m, err);
        }
      if (m == NULL)
        {
          cimg_error_set (err, ENOENT, "%s:%d: %s %s: no such file or directory%s", b->df->name,
                          in->line, upper, srcs[i], from ? "" : " in the build context");
          goto out;
        }
      for (size_t k = 0; m[k]; k++)
        {
          /* --exclude also drops a source the pattern names itself (by its path or name). */
          const char *bn = strrchr (m[k], '/');
          bn = bn ? bn + 1 : m[k];
          if (exclude && strcmp (m[k], ".") != 0
              && (cimg_dockerignore_excluded (exclude, m[k])
                  || cimg_dockerignore_excluded (exclude, bn)))
            continue;
          size_t nm = cimg_strv_len (matches_all);
          mroot = xrealloc (mroot, (nm + 1) * sizeof *mroot);
          mctx = xrealloc (mctx, (nm + 1) * sizeof *mctx);
          mroot[nm] = root;
          mctx[nm] = root == b->ctxfd;
          cimg_strv_append (&matches_all, m[k]);
          const char *keep = strcmp (m[k], ".") == 0 ? "" : m[k];
          if (pivot && strlen (keep) >= pivot)
            keep += pivot;
          cimg_strv_append (&prel, keep);
        }
    }
  if (matches_all == NULL)
    {
      FAIL ("%s: every source is excluded", upper);
      goto out;
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
    cleanup_free char *cl = build_clean_abs (raw);
    free (dest);
    dest = resolve_parents (viewfd, cl);
    struct stat dst_st;
    bool exists_dir = false;
    {
      cleanup_close int dfd = cimg_openat_in_root (viewfd, dest, O_PATH, 0);
      exists_dir = dfd >= 0 && fstat (dfd, &dst_st) == 0 && S_ISDIR (dst_st.st_mode);
    }
    bool dest_dir = trailing || cimg_strv_len (matches_all) > 1 || exists_dir
                    || strcmp (dest, "/") == 0 || parents;
    /* A directory source copies its contents into dest, which is then a directory. */
    for (size_t i = 0; matches_all[i] && !dest_dir; i++)
      {
        struct stat sst;
        cleanup_close int fd = cimg_openat_in_root (mroot[i], matches_all[i], O_PATH, 0);
        dest_dir = fd >= 0 && fstat (fd, &sst) == 0 && S_ISDIR (sst.st_mode);
      }
    /* The key: the parent, the instruction, the args in scope, the sources' content. */
    cimg_sha256_update (h, src_key, strlen (src_key) + 1);
    c.h = h;
    for (size_t i = 0; matches_all[i]; i++)
      {
        cleanup_close int fd = cimg_openat_in_root (mroot[i], matches_all[i], O_PATH, 0);
        struct stat sst;
        if (fd < 0 || fstatat (fd, "", &sst, AT_EMPTY_PATH) < 0)
          {
            cimg_error_sys (err, "%s:%d: %s %s", b->df->name, in->line, upper, matches_all[i]);
            goto out;
          }
        c.use_ignore = mctx[i];
        const char *base = strrchr (matches_all[i], '/');
        base = base ? base + 1 : matches_all[i];
        cleanup_free char *drel = xasprintf ("%zu %s", i, parents ? prel[i] : base);
        c.ex_skip = *matches_all[i] ? strlen (matches_all[i]) + 1 : 0;
        if (copy_node (&c, fd, &sst, matches_all[i], -1, base, drel, err) < 0)
          {
            cimg_error_wrap (err, "%s:%d: %s", b->df->name, in->line, upper);
            goto out;
          }
      }
    c.h = NULL;
    cimg_sha256_final (h, content);
    struct sbuf xs = { 0 };
    for (size_t i = 0; excludes && excludes[i]; i++)
      sbuf_addf (&xs, " --exclude=%s", excludes[i]);
    if (parents)
      sbuf_adds (&xs, " --parents");
    if (url_key)
      sbuf_addf (&xs, " --url%s", url_key);
    cleanup_free char *xtext = sbuf_steal (&xs);
    instr
        = xasprintf ("%s %s%s%s%s%s%s%s -> %s%s", upper, from ? "--from=" : "", from ? src_key : "",
                     chown ? " --chown=" : "", chown ? chown : "", chmod_s ? " --chmod=" : "",
                     chmod_s ? chmod_s : "", xtext, dest, dest_dir ? "/" : "");
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
        cleanup_close int fd = cimg_openat_in_root (mroot[i], matches_all[i], O_PATH, 0);
        struct stat sst;
        if (fd < 0 || fstatat (fd, "", &sst, AT_EMPTY_PATH) < 0)
          {
            cimg_error_sys (err, "%s %s", upper, matches_all[i]);
            break;
          }
        c.use_ignore = mctx[i];
        const char *base = strrchr (matches_all[i], '/');
        base = base ? base + 1 : matches_all[i];
        int r;
        const char *crel = strcmp (matches_all[i], ".") ? matches_all[i] : "";
        c.ex_skip = *crel ? strlen (crel) + 1 : 0;
        cleanup_close int pdir = -1;
        cleanup_free char *pdest = NULL;
        if (parents && *prel[i])
          {
            /* --parents: the source's own path below dest (its directories made as new ones). */
            cleanup_free char *sub = xstrdup (prel[i]);
            if (!S_ISDIR (sst.st_mode))
              {
                char *sl = strrchr (sub, '/');
                if (sl)
                  *sl = '\0';
                else
                  *sub = '\0';
              }
            pdest
                = *sub ? xasprintf ("%s/%s", strcmp (dest, "/") ? dest : "", sub) : xstrdup (dest);
            pdir = make_parents (viewfd, treefd, pdest, c.chown, c.uid, c.gid, err);
            if (pdir < 0)
              break;
          }
        int into = pdir >= 0 ? pdir : cur;
        const char *intodest = pdest ? pdest : dest;
        if (S_ISDIR (sst.st_mode))
          r = copy_children (&c, fd, crel, into, intodest, err);
        else if (add && mctx[i] && S_ISREG (sst.st_mode) && ({
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
          r = copy_node (&c, fd, &sst, matches_all[i], into, fbase ? fbase : base, intodest, err);
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
  if (hdfd >= 0)
    close (hdfd);
  free (mroot);
  free (mctx);
  free (src_hd);
  if (src_dir)
    drop_workdir (b, src_dir);
  if (hd_dir)
    drop_workdir (b, hd_dir);
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

/* ---------------------------------------------------------------- RUN --mount */

struct run_mount
{
  struct cimg_build_mount m;
  char *dest;         /* absolute, clean, symlinks among its parents resolved in the stage */
  char *host;         /* what is mounted: an absolute host path ("tmpfs" for tmpfs) */
  char *data;         /* tmpfs options */
  bool file;          /* the mount point is a file (secret, bind of a file) */
  int lockfd;         /* cache: the flock held during the RUN */
  long from_stage;    /* bind from=: a stage index, or -1 */
  struct state other; /* bind from= an image */
  const struct secret *secret;
};

static void
run_mounts_free (struct run_mount *rm, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      cimg_build_mount_clear (&rm[i].m);
      free (rm[i].dest);
      free (rm[i].host);
      free (rm[i].data);
      if (rm[i].lockfd >= 0)
        close (rm[i].lockfd);
      state_clear (&rm[i].other);
    }
  free (rm);
}

/* The salt of the secrets' digests in the cache keys: 32 random bytes kept in the store
   (build-cache/secret-salt, mode 0600), so that a key (whose prefix the output shows) cannot be
   checked against guesses of a secret by anyone who cannot read the store. */
static int
secret_salt (struct bctx *b, cimg_error_t *err)
{
  if (b->secret_salt)
    return 0;
  int dfd = cimg_store_dirfd (b->s);
  if (mkdirat (dfd, "build-cache", 0700) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "mkdir build-cache");
  size_t len;
  cimg_error_t e = { 0 };
  if (cimg_read_file_at (dfd, "build-cache/secret-salt", 4096, &b->secret_salt, &len, &e) == 0
      && len == 64)
    return 0;
  cimg_error_clear (&e);
  free (b->secret_salt);
  char hex[65];
  cimg_random_hex64 (hex);
  int fd = openat (dfd, "build-cache/secret-salt", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0)
    {
      int r = cimg_write_all (fd, hex, 64);
      if (r == 0)
        r = fsync (fd);
      close (fd);
      if (r < 0)
        {
          unlinkat (dfd, "build-cache/secret-salt", 0);
          return cimg_error_sys (err, "write build-cache/secret-salt");
        }
    }
  else if (errno != EEXIST)
    return cimg_error_sys (err, "create build-cache/secret-salt");
  /* Another build may have written it first: whatever is there now is the salt. */
  if (cimg_read_file_at (dfd, "build-cache/secret-salt", 4096, &b->secret_salt, &len, err) < 0)
    return -1;
  if (len != 64)
    return cimg_error_set (err, EINVAL, "build-cache/secret-salt: bad length");
  return 0;
}

/* Secrets are written only to a tmpfs of the build's private mount namespace (never to the
   store's disk), which goes with the build process however it ends. */
static int
secret_fs (struct bctx *b, cimg_error_t *err)
{
  if (b->secret_fs)
    return 0;
  size_t total = 0;
  for (size_t i = 0; i < b->n_secrets; i++)
    total += b->secrets[i].len + 4096;
  cleanup_free char *dir = xasprintf ("%s/%s/secrets", b->rootabs, b->tmp);
  if (mkdir (dir, 0700) < 0)
    return cimg_error_sys (err, "mkdir %s", dir);
  char opts[64];
  snprintf (opts, sizeof opts, "mode=0700,size=%zu", total + (64 << 10));
  if (mount ("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, opts) < 0)
    return cimg_error_sys (err, "mount a tmpfs for secrets");
  b->secret_fs = true;
  return 0;
}

static const struct secret *
find_secret (struct bctx *b, const char *id)
{
  for (size_t i = 0; i < b->n_secrets; i++)
    if (strcmp (b->secrets[i].id, id) == 0)
      return &b->secrets[i];
  return NULL;
}

/* A directory (or a file) node at dest in the stubs tree, whose parents are those of the view,
   so that the mount point exists in a lower layer and never in the RUN's upper dir: the layer
   then holds nothing of the mount (BuildKit removes its stubs after the run for the same
   reason). */
static int
make_stub (int viewfd, int stubfd, const char *dest, bool file, cimg_error_t *err)
{
  if (strcmp (dest, "/") == 0)
    return 0;
  {
    cleanup_close int have = cimg_openat_in_root (viewfd, dest, O_PATH, 0);
    if (have >= 0)
      return 0;
  }
  cleanup_free char *dir = xstrdup (dest);
  char *slash = strrchr (dir, '/');
  const char *base = dest + (slash - dir) + 1;
  *slash = '\0';
  cleanup_close int pfd = make_parents (viewfd, stubfd, *dir ? dir : "/", false, 0, 0, err);
  if (pfd < 0)
    return -1;
  if (file)
    {
      int fd = openat (pfd, base, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (fd < 0)
        return cimg_error_sys (err, "stub %s", dest);
      close (fd);
    }
  else if (mkdirat (pfd, base, 0755) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "stub %s", dest);
  return 0;
}

/* Parse RUN's flags: --mount (repeatable), --network, --security. */
static int
run_flags (struct bctx *b, struct state *st, size_t si, const struct cimg_instruction *in,
           char **env, struct run_mount **out_rm, size_t *out_n, enum cimg_netmode *net,
           bool *insecure, struct sbuf *keytext, cimg_error_t *err)
{
  struct run_mount *rm = NULL;
  size_t n = 0;
  *net = b->o->network_none ? CIMG_NET_PRIVATE : CIMG_NET_HOST;
  *insecure = false;
  const char *wdir = cimg_json_str (cfg_obj (st), "WorkingDir");
  for (size_t i = 0; in->flags[i]; i++)
    {
      const char *f = in->flags[i];
      cleanup_free char *v = NULL;
      const char *eq = strchr (f, '=');
      if (eq && cimg_build_expand_word (eq + 1, b->df->escape, env, &v, err) < 0)
        goto fail;
      if (cimg_str_has_prefix (f, "--network="))
        {
          if (strcmp (v, "none") == 0)
            *net = CIMG_NET_PRIVATE;
          else if (strcmp (v, "host") == 0)
            *net = CIMG_NET_HOST;
          else if (strcmp (v, "default") != 0)
            {
              FAIL ("RUN --network=%s: unsupported network mode (none, host, default)", v);
              goto fail;
            }
        }
      else if (cimg_str_has_prefix (f, "--security="))
        {
          if (strcmp (v, "insecure") == 0)
            {
              if (!b->o->allow_insecure)
                {
                  FAIL ("RUN --security=insecure is not allowed: pass --allow security.insecure "
                        "to cimg build");
                  goto fail;
                }
              *insecure = true;
              sbuf_adds (keytext, " --security=insecure");
            }
          else if (strcmp (v, "sandbox") != 0)
            {
              FAIL ("RUN --security=%s: unsupported (sandbox, insecure)", v);
              goto fail;
            }
        }
      else if (cimg_str_has_prefix (f, "--mount="))
        {
          rm = xrealloc (rm, (n + 1) * sizeof *rm);
          struct run_mount *r = &rm[n];
          memset (r, 0, sizeof *r);
          r->lockfd = -1;
          r->from_stage = -1;
          if (cimg_build_mount_parse (v, &r->m, err) < 0)
            {
              cimg_error_wrap (err, "%s:%d: RUN --mount=%s", b->df->name, in->line, v);
              goto fail;
            }
          n++;
          struct cimg_build_mount *m = &r->m;
          if (m->target)
            {
              cleanup_free char *raw
                  = m->target[0] == '/' ? xstrdup (m->target)
                                        : xasprintf ("%s/%s", wdir && *wdir ? wdir : "", m->target);
              r->dest = build_clean_abs (raw);
              if (strcmp (r->dest, "/") == 0)
                {
                  FAIL ("RUN --mount=%s: cannot mount over /", v);
                  goto fail;
                }
            }
          static const char *const tn[] = { "bind", "cache", "tmpfs", "secret" };
          sbuf_addf (keytext, " --mount=type=%s,target=%s,ro=%d", tn[m->type],
                     r->dest ? r->dest : "", m->readonly);
          switch (m->type)
            {
            case CIMG_BUILD_MOUNT_BIND:
              {
                /* The content of what is bound is part of the key: from the context, a digest
                   of its files; from a stage or image, that state's key. */
                const char *src = m->source && *m->source ? m->source : ".";
                cleanup_free char *abs = xasprintf ("/%s", src);
                cleanup_free char *cl = build_clean_abs (abs);
                sbuf_addf (keytext, ",source=%s", cl);
                if (m->from)
                  {
                    long ref = stage_ref (b, si, m->from);
                    if (ref >= 0)
                      {
                        if (build_stage (b, (size_t)ref, err) < 0)
                          goto fail;
                        r->from_stage = ref;
                        sbuf_addf (keytext, ",from=%s", b->stages[ref].st.key);
                      }
                    else
                      {
                        if (state_from_image_or_pull (b, &r->other, m->from, &b->target_plat, err)
                            < 0)
                          {
                            cimg_error_wrap (err, "%s:%d: RUN --mount from=%s", b->df->name,
                                             in->line, m->from);
                            goto fail;
                          }
                        sbuf_addf (keytext, ",from=%s", r->other.key);
                      }
                    break;
                  }
                cleanup_close int fd
                    = cimg_openat_in_root (b->ctxfd, cl[1] ? cl + 1 : ".", O_PATH, 0);
                struct stat sst;
                if (fd < 0 || fstatat (fd, "", &sst, AT_EMPTY_PATH) < 0)
                  {
                    cimg_error_sys (err, "%s:%d: RUN --mount source %s (in the build context)",
                                    b->df->name, in->line, src);
                    goto fail;
                  }
                r->file = !S_ISDIR (sst.st_mode);
                cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
                struct copy_ctx c = { .b = b, .h = h, .use_ignore = true, .keep_owner = true };
                if (copy_node (&c, fd, &sst, cl[1] ? cl + 1 : "", -1, "src", "src", err) < 0)
                  {
                    cimg_error_wrap (err, "%s:%d: RUN --mount source %s", b->df->name, in->line,
                                     src);
                    goto fail;
                  }
                char d[CIMG_DIGEST_BUFSIZE];
                cimg_sha256_final (h, d);
                sbuf_addf (keytext, ",content=%s", d);
                break;
              }
            case CIMG_BUILD_MOUNT_CACHE:
              /* Not its content: a cache mount is a cache, the step must give the same result
                 with it empty (BuildKit keys it the same way). */
              sbuf_addf (keytext, ",id=%s,sharing=%d,mode=%o,uid=%u,gid=%u", m->id, m->sharing,
                         m->mode, m->uid, m->gid);
              break;
            case CIMG_BUILD_MOUNT_TMPFS:
              sbuf_addf (keytext, ",size=%lld", m->size);
              break;
            case CIMG_BUILD_MOUNT_SECRET:
              {
                r->file = true;
                r->secret = find_secret (b, m->id);
                if (r->secret == NULL && m->required)
                  {
                    FAIL ("RUN --mount=%s: secret %s not found (give it with --secret "
                          "id=%s,src=FILE)",
                          v, m->id, m->id);
                    goto fail;
                  }
                sbuf_addf (keytext, ",id=%s,env=%s,mode=%o,uid=%u,gid=%u", m->id,
                           m->env ? m->env : "", m->mode, m->uid, m->gid);
                if (r->secret)
                  {
                    /* Salted, never the plain text nor a bare digest of it. */
                    if (secret_salt (b, err) < 0)
                      goto fail;
                    cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
                    cimg_sha256_update (h, b->secret_salt, strlen (b->secret_salt));
                    cimg_sha256_update (h, r->secret->data, r->secret->len);
                    char d[CIMG_DIGEST_BUFSIZE];
                    cimg_sha256_final (h, d);
                    sbuf_addf (keytext, ",salted=%s", d);
                  }
                else
                  sbuf_adds (keytext, ",absent");
                break;
              }
            }
        }
      else
        {
          FAIL ("RUN %s is not supported", f);
          goto fail;
        }
    }
  /* The network a RUN gets can change its result (as in BuildKit's key): a build with
     --network none does not reuse a step that ran with the host's network. */
  if (*net == CIMG_NET_PRIVATE)
    sbuf_adds (keytext, " --network=none");
  *out_rm = rm;
  *out_n = n;
  return 0;
fail:
  run_mounts_free (rm, n);
  return -1;
}

/* Make what each mount shows, in the build's temp dir wd (or the store, for cache mounts), and
   the stubs tree of the mount points. */
static int
prepare_mounts (struct bctx *b, struct state *st, const char *wd, struct run_mount *rm, size_t n,
                const struct cimg_instruction *in, cimg_error_t *err)
{
  int dfd = cimg_store_dirfd (b->s);
  for (size_t i = 0; i < n; i++)
    {
      struct run_mount *r = &rm[i];
      struct cimg_build_mount *m = &r->m;
      switch (m->type)
        {
        case CIMG_BUILD_MOUNT_BIND:
          {
            /* A copy of the source: the RUN cannot change the context or a stage through it,
               and the writes of rw land in the copy, thrown away with it. */
            cleanup_free char *dir = xasprintf ("%s/bind%zu", wd, i);
            if (mkdirat (dfd, dir, 0755) < 0)
              return cimg_error_sys (err, "mkdir %s", dir);
            cleanup_close int dirfd = openat (dfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dirfd < 0)
              return cimg_error_sys (err, "open %s", dir);
            const char *src = m->source && *m->source ? m->source : ".";
            cleanup_free char *abs = xasprintf ("/%s", src);
            cleanup_free char *cl = build_clean_abs (abs);
            int rootfd = b->ctxfd;
            cleanup_free char *vdir = NULL;
            cleanup_close int viewfd = -1;
            if (m->from)
              {
                struct state *os = r->from_stage >= 0 ? &b->stages[r->from_stage].st : &r->other;
                vdir = new_workdir (b, err);
                if (vdir == NULL)
                  return -1;
                viewfd = mount_view (b, os->layers, os->n_layers, vdir, err);
                if (viewfd < 0)
                  {
                    drop_workdir (b, vdir);
                    return -1;
                  }
                rootfd = viewfd;
              }
            int rc = 0;
            {
              cleanup_close int fd = cimg_openat_in_root (rootfd, cl[1] ? cl + 1 : ".", O_PATH, 0);
              struct stat sst;
              if (fd < 0 || fstatat (fd, "", &sst, AT_EMPTY_PATH) < 0)
                rc = cimg_error_sys (err, "%s:%d: RUN --mount source %s%s%s", b->df->name, in->line,
                                     src, m->from ? " from " : "", m->from ? m->from : "");
              else
                {
                  r->file = !S_ISDIR (sst.st_mode);
                  struct copy_ctx c = { .b = b, .use_ignore = !m->from, .keep_owner = true };
                  rc = copy_node (&c, fd, &sst, cl[1] ? cl + 1 : "", dirfd, "src", "src", err);
                }
            }
            if (vdir)
              {
                close (viewfd);
                viewfd = -1;
                umount_view (b, vdir);
                drop_workdir (b, vdir);
              }
            if (rc < 0)
              return -1;
            r->host = xasprintf ("%s/%s/src", b->rootabs, dir);
            break;
          }
        case CIMG_BUILD_MOUNT_CACHE:
          {
            if (mkdirat (dfd, "build-cache-mounts", 0700) < 0 && errno != EEXIST)
              return cimg_error_sys (err, "mkdir build-cache-mounts");
            char d[CIMG_DIGEST_BUFSIZE];
            cimg_sha256_buf (m->id, strlen (m->id), d);
            cleanup_free char *name = xasprintf ("build-cache-mounts/%s", cimg_digest_hex (d));
            cleanup_free char *lock = xasprintf ("%s.lock", name);
            r->lockfd = openat (dfd, lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
            if (r->lockfd < 0)
              return cimg_error_sys (err, "open %s", lock);
            int op = m->sharing == CIMG_BUILD_SHARING_SHARED   ? LOCK_SH
                     : m->sharing == CIMG_BUILD_SHARING_LOCKED ? LOCK_EX
                                                               : LOCK_EX | LOCK_NB;
            if (flock (r->lockfd, op) < 0)
              {
                if (errno != EWOULDBLOCK)
                  return cimg_error_sys (err, "lock %s", lock);
                /* private, and in use: this RUN gets an empty cache of its own. */
                close (r->lockfd);
                r->lockfd = -1;
                free (name);
                name = xasprintf ("%s/cache%zu", wd, i);
              }
            if (mkdirat (dfd, name, 0700) == 0)
              {
                /* uid, gid and mode apply when the cache is made, as BuildKit's. */
                if (fchownat (dfd, name, m->uid, m->gid, 0) < 0
                    || fchmodat (dfd, name, m->mode, 0) < 0)
                  return cimg_error_sys (err, "cache mount %s", m->id);
              }
            else if (errno != EEXIST)
              return cimg_error_sys (err, "mkdir %s", name);
            r->host = xasprintf ("%s/%s", b->rootabs, name);
            break;
          }
        case CIMG_BUILD_MOUNT_TMPFS:
          r->host = xstrdup ("tmpfs");
          r->data = m->size ? xasprintf ("mode=755,size=%lld", m->size) : xstrdup ("mode=755");
          break;
        case CIMG_BUILD_MOUNT_SECRET:
          {
            if (r->secret == NULL || r->dest == NULL)
              break; /* not given and not required: not mounted, as BuildKit; or env only */
            if (secret_fs (b, err) < 0)
              return -1;
            char rnd[65];
            cimg_random_hex64 (rnd);
            cleanup_free char *f = xasprintf ("%s/secrets/%.32s", b->tmp, rnd);
            int fd = openat (dfd, f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
            if (fd < 0)
              return cimg_error_sys (err, "create %s", f);
            int w = cimg_write_all (fd, r->secret->data, r->secret->len);
            if (w == 0 && (fchown (fd, m->uid, m->gid) < 0 || fchmod (fd, m->mode) < 0))
              w = -1;
            close (fd);
            if (w < 0)
              return cimg_error_sys (err, "secret %s", m->id);
            r->host = xasprintf ("%s/%s", b->rootabs, f);
            break;
          }
        }
    }
  /* The stubs: one tree for every mount point the stage lacks. */
  cleanup_free char *stubs = xasprintf ("%s/stubs", wd);
  if (mkdirat (dfd, stubs, 0755) < 0)
    return cimg_error_sys (err, "mkdir %s", stubs);
  cleanup_free char *vdir = new_workdir (b, err);
  if (vdir == NULL)
    return -1;
  int rc = 0;
  cleanup_close int viewfd = mount_view (b, st->layers, st->n_layers, vdir, err);
  if (viewfd < 0)
    rc = -1;
  cleanup_close int stubfd = rc < 0 ? -1 : openat (dfd, stubs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (rc == 0 && stubfd < 0)
    rc = cimg_error_sys (err, "open %s", stubs);
  for (size_t i = 0; i < n && rc == 0; i++)
    {
      if (rm[i].host == NULL)
        continue;
      char *resolved = resolve_parents (viewfd, rm[i].dest);
      free (rm[i].dest);
      rm[i].dest = resolved;
      rc = make_stub (viewfd, stubfd, rm[i].dest, rm[i].file, err);
    }
  if (viewfd >= 0)
    {
      close (viewfd);
      viewfd = -1;
      umount_view (b, vdir);
    }
  drop_workdir (b, vdir);
  return rc;
}

static int
exec_run (struct bctx *b, struct state *st, size_t si, const struct cimg_instruction *in,
          char **env_exp, char **args_scope, cimg_error_t *err)
{
  struct run_mount *rm = NULL;
  size_t nrm = 0;
  enum cimg_netmode net;
  bool insecure;
  struct sbuf keytext = { 0 };
  if (run_flags (b, st, si, in, env_exp, &rm, &nrm, &net, &insecure, &keytext, err) < 0)
    {
      free (keytext.p);
      return -1;
    }
  cleanup_free char *flagtext = sbuf_steal (&keytext);
  cleanup_strv char **cmd = NULL;
  const struct cimg_heredoc *script = NULL; /* a "#!" heredoc run as a file */
  if (in->n_heredocs)
    {
      if (in->json)
        {
          run_mounts_free (rm, nrm);
          return FAIL ("RUN: a heredoc needs the shell form");
        }
      /* As BuildKit: "RUN <<EOF" alone runs the body as the shell's script (or, when it starts
         with "#!", as an executable file of its own); otherwise the line and the bodies, each
         followed by its delimiter, are the shell's script, so the shell itself feeds them to
         the commands. */
      const char *t = in->args[0] ? in->args[0] : "";
      while (isspace ((unsigned char)*t))
        t++;
      size_t n = strcspn (t, " \t\n");
      bool alone = in->n_heredocs == 1 && cimg_str_has_prefix (t, "<<")
                   && t[n + strspn (t + n, " \t\n")] == '\0';
      if (alone && cimg_str_has_prefix (in->heredocs[0].content, "#!"))
        {
          script = &in->heredocs[0];
          cleanup_free char *p = xasprintf ("/dev/pipes/%s", script->name);
          cimg_strv_append (&cmd, p);
        }
      else
        {
          json_t *sh = json_object_get (cfg_obj (st), "Shell");
          cmd = json_array_size (sh) ? cimg_json_to_strv (sh) : NULL;
          if (cmd == NULL)
            {
              cimg_strv_append (&cmd, "/bin/sh");
              cimg_strv_append (&cmd, "-c");
            }
          if (alone)
            cimg_strv_append (&cmd, in->heredocs[0].content);
          else
            {
              struct sbuf sc = { 0 };
              sbuf_adds (&sc, in->args[0] ? in->args[0] : "");
              for (size_t i = 0; i < in->n_heredocs; i++)
                sbuf_addf (&sc, "\n%s%s", in->heredocs[i].content, in->heredocs[i].name);
              cleanup_free char *s = sbuf_steal (&sc);
              cimg_strv_append (&cmd, s);
            }
        }
    }
  else
    cmd = build_command_of (cfg_obj (st), in);
  cleanup_free char *shown = build_join_args (cmd, in->json);
  cleanup_free char *instr = xasprintf ("RUN%s %s%s%s%s", flagtext, in->json ? "json " : "", shown,
                                        script ? "\n" : "", script ? script->content : "");
  char key[CIMG_DIGEST_BUFSIZE];
  cimg_build_cache_key (st->key, instr, args_scope, NULL, key);
  if (cache_hit (b, st, key))
    {
      run_mounts_free (rm, nrm);
      return 0;
    }

  json_t *cc = cfg_obj (st);
  uid_t uid;
  gid_t gid;
  if (resolve_user (b, st, cimg_json_str (cc, "User"), &uid, &gid, err) < 0)
    {
      run_mounts_free (rm, nrm);
      return cimg_error_wrap (err, "%s:%d: RUN", b->df->name, in->line);
    }
  /* Env: the config's, then the build args in scope that it does not set; PATH if none. */
  cleanup_strv char **env = cimg_json_to_strv (json_object_get (cc, "Env"));
  for (size_t i = 0; args_scope && args_scope[i]; i++)
    {
      cleanup_free char *k = xstrndup (args_scope[i], strcspn (args_scope[i], "="));
      if (env_get (env, k) == NULL)
        cimg_strv_append (&env, args_scope[i]);
    }
  /* Docker's predefined proxy ARGs reach RUN from --build-arg without an ARG line. As both of
     Docker's builders, they are kept out of the step key and the history: a proxy is a way to
     reach the network, not an input of the result, and it may hold credentials. */
  for (size_t i = 0; b->o->build_args && b->o->build_args[i]; i++)
    {
      cleanup_free char *k = xstrndup (b->o->build_args[i], strcspn (b->o->build_args[i], "="));
      if (is_proxy_arg (k) && strchr (b->o->build_args[i], '=') && env_get (env, k) == NULL)
        cimg_strv_append (&env, b->o->build_args[i]);
    }
  if (env_get (env, "PATH") == NULL)
    cimg_strv_append (&env, DEFAULT_PATH);
  for (size_t i = 0; i < nrm; i++)
    if (rm[i].m.type == CIMG_BUILD_MOUNT_SECRET && rm[i].m.env && rm[i].secret)
      {
        cleanup_free char *val = xstrndup (rm[i].secret->data, rm[i].secret->len);
        build_env_set (&env, rm[i].m.env, val);
        explicit_bzero (val, strlen (val));
      }
  const char *wdir = cimg_json_str (cc, "WorkingDir");

  cleanup_free char *wd = new_workdir (b, err);
  if (wd == NULL)
    {
      run_mounts_free (rm, nrm);
      return -1;
    }
  int rc = -1;
  cleanup_strv char **lowers = NULL;
  /* Declared before the first goto: the cleanups run at out: on every path. */
  cleanup_free char *upper = xasprintf ("%s/upper", wd);
  cleanup_free char *work = xasprintf ("%s/work", wd);
  cleanup_free char *merged = xasprintf ("%s/merged", wd);
  cleanup_free char *script_host = NULL, *script_dest = NULL;
  cleanup_strv char **caps = NULL;
  struct cimg_spec_mount *mounts = xzalloc ((nrm + 3) * sizeof *mounts);
  size_t nm = 0;
  int dfd = cimg_store_dirfd (b->s);
  if (nrm)
    {
      if (prepare_mounts (b, st, wd, rm, nrm, in, err) < 0)
        {
          cimg_error_wrap (err, "%s:%d: RUN --mount", b->df->name, in->line);
          goto out;
        }
      cleanup_free char *stubs = xasprintf ("%s/stubs", wd);
      cimg_strv_append (&lowers, stubs);
    }
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
  if (mkdirat (dfd, upper, 0755) < 0 || mkdirat (dfd, work, 0700) < 0
      || mkdirat (dfd, merged, 0755) < 0)
    {
      cimg_error_sys (err, "mkdir %s", wd);
      goto out;
    }
  char id[65];
  cimg_random_hex64 (id);
  char *all[] = { "ALL", NULL };
  caps = insecure ? cimg_caps_resolve (all, NULL, err) : cimg_caps_default ();
  if (caps == NULL)
    goto out;
  gid_t groups[1] = { gid };
  if (net == CIMG_NET_HOST)
    {
      if (access ("/etc/resolv.conf", R_OK) == 0)
        mounts[nm++] = (struct cimg_spec_mount){ .source = "/etc/resolv.conf",
                                                 .destination = "/etc/resolv.conf" };
      if (access ("/etc/hosts", R_OK) == 0)
        mounts[nm++]
            = (struct cimg_spec_mount){ .source = "/etc/hosts", .destination = "/etc/hosts" };
    }
  if (script)
    {
      /* /dev is the container's own tmpfs: the script's mount point never reaches the layer. */
      cleanup_free char *f = xasprintf ("%s/script", wd);
      int fd = openat (dfd, f, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755);
      if (fd < 0 || cimg_write_all (fd, script->content, strlen (script->content)) < 0
          || fchmod (fd, 0755) < 0)
        {
          cimg_error_sys (err, "%s:%d: RUN heredoc %s", b->df->name, in->line, script->name);
          if (fd >= 0)
            close (fd);
          goto out;
        }
      close (fd);
      script_host = xasprintf ("%s/%s", b->rootabs, f);
      script_dest = xasprintf ("/dev/pipes/%s", script->name);
      mounts[nm++] = (struct cimg_spec_mount){ .source = script_host,
                                               .destination = script_dest,
                                               .flags = MS_RDONLY };
    }
  for (size_t i = 0; i < nrm; i++)
    if (rm[i].host)
      mounts[nm++] = (struct cimg_spec_mount){
        .source = rm[i].host,
        .destination = rm[i].dest,
        .type = rm[i].m.type == CIMG_BUILD_MOUNT_TMPFS ? "tmpfs" : NULL,
        .flags = (rm[i].m.readonly || rm[i].m.type == CIMG_BUILD_MOUNT_SECRET ? MS_RDONLY : 0)
                 | (rm[i].m.type == CIMG_BUILD_MOUNT_TMPFS ? MS_NOSUID | MS_NODEV : 0),
        .data = rm[i].data,
      };
  char hostname[16];
  snprintf (hostname, sizeof hostname, "%.12s", id);
  char *none[] = { NULL };
  struct cimg_spec spec = {
    .id = id,
    .root_dirfd = dfd,
    .lowers = lowers,
    .upper = upper,
    .work = work,
    .merged = merged,
    .hostname = hostname,
    .network = net,
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
    .seccomp = !insecure,
    .privileged = insecure,
    .masked_paths = insecure ? none : NULL,
    .readonly_paths = insecure ? none : NULL,
  };
  struct cimg_run_result res = { 0 };
  /* RUN's output is streamed as it comes (to the caller's fd, -q: /dev/null), and its tail is
     kept for the error message of a failed step. */
  struct run_out ro = { .fd = b->o->run_output_fd };
  fflush (stdout);
  fflush (stderr);
  /* Noted before the runtime makes cgroup cimg/<id>, forgotten once it has destroyed it: a
     build killed in between leaves the cgroup, and `system check` finds it from the note. */
  if (cimg_store_note_step (b->s, id, err) < 0)
    {
      cimg_error_wrap (err, "%s:%d: RUN %s", b->df->name, in->line, shown);
      goto out;
    }
  int r = cimg_runtime_run_captured (&spec, NULL, on_output, &ro, &res, err);
  {
    /* Should the teardown have failed to remove the cgroup, the note stays for check. */
    cimg_error_t cgerr = { 0 };
    struct cimg_cgroup *cg = cimg_cgroup_open (id, &cgerr);
    if (cg == NULL)
      cimg_store_forget_step (b->s, id);
    cimg_cgroup_free (cg);
    cimg_error_clear (&cgerr);
  }
  /* Secrets live only for the run. */
  for (size_t i = 0; i < nrm; i++)
    if (rm[i].m.type == CIMG_BUILD_MOUNT_SECRET && rm[i].host)
      unlink (rm[i].host);
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
  free (mounts);
  run_mounts_free (rm, nrm);
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
        build_env_set (&st->args, name, value);
    }
  return 0;
}

/* One instruction of a stage (or an ONBUILD trigger) on st. */
static int
exec_instruction (struct bctx *b, struct state *st, size_t si, const struct cimg_instruction *in,
                  cimg_error_t *err)
{
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
    r = exec_run (b, st, si, in, env, st->args, err);
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
  return 0;
}

/* ONBUILD: the triggers of the base image run right after FROM, in order, as instructions of
   the Dockerfile; they are then cleared from the config, so a further child does not run them
   again (Docker's behaviour). Errors name the FROM line and the trigger. */
static int
run_onbuild (struct bctx *b, struct state *st, size_t si, const struct cimg_instruction *from,
             cimg_error_t *err)
{
  json_t *cc = cfg_obj (st);
  json_t *ob = json_object_get (cc, "OnBuild");
  if (json_array_size (ob) == 0)
    return 0;
  json_incref (ob);
  json_object_set_new (cc, "OnBuild", json_null ());
  struct sbuf text = { 0 };
  size_t i;
  json_t *t;
  json_array_foreach (ob, i, t) if (json_is_string (t))
      sbuf_addf (&text, "%s\n", json_string_value (t));
  json_decref (ob);
  cleanup_free char *name = xasprintf ("%s:%d: ONBUILD trigger", b->df->name, from->line);
  cleanup_free char *tx = sbuf_steal (&text);
  cleanup_dockerfile struct cimg_dockerfile *tdf = cimg_build_parse (name, tx, strlen (tx), err);
  if (tdf == NULL)
    return -1;
  out (b, "# Executing %zu build trigger%s\n", tdf->n_instrs, tdf->n_instrs == 1 ? "" : "s");
  const struct cimg_dockerfile *saved = b->df;
  b->df = tdf;
  int rc = 0;
  for (size_t k = 0; k < tdf->n_instrs && rc == 0; k++)
    {
      const struct cimg_instruction *in = &tdf->instrs[k];
      if (strcmp (in->name, "from") == 0 || strcmp (in->name, "onbuild") == 0
          || strcmp (in->name, "maintainer") == 0)
        {
          cleanup_free char *up = build_upper_name (in->name);
          rc = FAIL ("%s isn't allowed as an ONBUILD trigger", up);
          break;
        }
      cleanup_free char *up = build_upper_name (in->name);
      out (b, "STEP %d/%d: %s %s (ONBUILD)\n", b->step, b->nsteps, up, in->text ? in->text : "");
      rc = exec_instruction (b, st, si, in, err);
    }
  b->df = saved;
  return rc;
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
      const char *arch = sg->plat.arch;
      st->config
          = json_pack ("{s:s, s:s, s:{}, s:{s:s, s:[]}, s:[]}", "architecture", arch, "os",
                       sg->plat.os, "config", "rootfs", "type", "layers", "diff_ids", "history");
      if (sg->plat.variant[0])
        json_object_set_new (st->config, "variant", json_string (sg->plat.variant));
      cleanup_free char *pl = cimg_build_platform_string (&sg->plat);
      cimg_build_cache_key ("scratch", strcmp (pl, "linux/amd64") == 0 ? arch : pl, NULL, NULL,
                            st->key);
    }
  else if (state_from_image_or_pull (b, st, sg->base, &sg->plat, err) < 0
           || check_platform (st, &sg->plat, err) < 0)
    return cimg_error_wrap (err, "%s:%d: FROM %s", b->df->name, in->line, sg->base);
  out (b, " ---> %.12s\n", cimg_digest_hex (st->key));

  if (ref < 0 && strcmp (sg->base, "scratch") != 0 && run_onbuild (b, st, si, in, err) < 0)
    return -1;
  for (size_t i = sg->first + 1; i < sg->end; i++)
    {
      in = &b->df->instrs[i];
      b->step++;
      {
        cleanup_free char *up = build_upper_name (in->name);
        out (b, "STEP %d/%d: %s %s\n", b->step, b->nsteps, up, in->text ? in->text : "");
      }
      if (exec_instruction (b, st, si, in, err) < 0)
        return -1;
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
  /* BuildKit's predefined platform ARGs: in scope for FROM lines, and in a stage after a bare
     "ARG TARGETARCH". */
  cimg_strv_free (b->meta);
  b->meta = cimg_build_platform_args (&b->build_plat, &b->target_plat);
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
          build_env_set (&b->meta, name, value);
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
      cur->plat = b->target_plat;
      for (size_t f = 0; df->instrs[i].flags[f]; f++)
        {
          const char *fl = df->instrs[i].flags[f];
          if (!cimg_str_has_prefix (fl, "--platform="))
            return cimg_error_set (err, EINVAL, "%s:%d: unknown flag %s", df->name,
                                   df->instrs[i].line, fl);
          cleanup_free char *pv = NULL;
          if (cimg_build_expand_word (fl + 11, df->escape, b->meta, &pv, err) < 0
              || cimg_build_platform_parse (pv, &cur->plat, err) < 0)
            return cimg_error_wrap (err, "%s:%d: FROM --platform", df->name, df->instrs[i].line);
        }
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
      /* RUN --mount=…,from=stage needs that stage too. */
      for (size_t f = 0; b->df->instrs[k].flags[f]; f++)
        {
          struct cimg_build_mount m;
          cimg_error_t e = { 0 };
          if (!cimg_str_has_prefix (b->df->instrs[k].flags[f], "--mount=")
              || cimg_build_mount_parse (b->df->instrs[k].flags[f] + 8, &m, &e) < 0)
            {
              cimg_error_clear (&e);
              continue;
            }
          dep = m.from ? stage_ref (b, i, m.from) : -1;
          cimg_build_mount_clear (&m);
          if (dep >= 0)
            mark_needed (b, (size_t)dep);
        }
      const char *f = cimg_build_flag_value (&b->df->instrs[k], "from");
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
      if (!cimg_strv_contains (b->consumed, k) && !is_proxy_arg (k))
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
      = { "empty", "empty2", "init", "init/proc", "init/sys", "init/dev", "init/etc" };
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
    /* BuildKit parses HEALTHCHECK's options with the Dockerfile: a bad one fails the build
       before any step runs. */
    for (size_t i = 0; i < df->n_instrs; i++)
      if (strcmp (df->instrs[i].name, "healthcheck") == 0)
        {
          json_t *hc = cimg_build_healthcheck (&df->instrs[i], err);
          if (hc == NULL)
            {
              cimg_error_wrap (err, "%s:%d", df->name, df->instrs[i].line);
              goto early;
            }
          json_decref (hc);
        }
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
  cimg_build_platform_host (&b.build_plat);
  b.target_plat = b.build_plat;
  if (o->platform && cimg_build_platform_parse (o->platform, &b.target_plat, err) < 0)
    goto early;
  if (parse_secrets (&b, err) < 0)
    goto early;
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
  if (b.secret_fs)
    {
      cleanup_free char *dir = xasprintf ("%s/%s/secrets", b.rootabs, b.tmp);
      umount2 (dir, MNT_DETACH);
    }
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
  for (size_t i = 0; i < b.n_secrets; i++)
    {
      free (b.secrets[i].id);
      if (b.secrets[i].data)
        explicit_bzero (b.secrets[i].data, b.secrets[i].len);
      free (b.secrets[i].data);
    }
  free (b.secrets);
  free (b.secret_salt);
  cimg_dockerignore_free (b.di);
  free (b.rootabs);
  if (b.ctxfd >= 0)
    close (b.ctxfd);
  return rc;
}
