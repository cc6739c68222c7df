#include "store/store-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>

/* What the images in the index keep alive: sets (JSON objects, hashed), since gc runs after
   every rmi and prune and lists made it quadratic in the number of images. */
struct live
{
  json_t *chains; /* chain IDs */
  json_t *blobs;  /* digests */
};

static void
live_free (struct live *l)
{
  json_decref (l->chains);
  json_decref (l->blobs);
  l->chains = l->blobs = NULL;
}

static void
add_unique (json_t **set, const char *s)
{
  if (*set == NULL)
    *set = json_object ();
  if (s && *s)
    json_object_set_new (*set, s, json_true ());
}

static bool
set_has (json_t *set, const char *s)
{
  return set != NULL && s != NULL && json_object_get (set, s) != NULL;
}

/* Adds what image id references. Returns -1 with err describing the first missing or broken
   part (the image is then broken: its references are still counted as live). */
static int
collect_image (struct cimg_store *s, const char *id, struct live *l, bool verify, cimg_error_t *err)
{
  add_unique (&l->blobs, id);
  cleanup_free char *path = xasprintf ("images/%s/image.json", cimg_digest_hex (id));
  cleanup_json json_t *rec = cimg_json_load_at (s->dirfd, path, 16 << 20, err);
  if (rec == NULL)
    return cimg_error_wrap (err, "image %s: record", id);
  add_unique (&l->blobs, cimg_json_str (rec, "manifest_digest"));
  /* Every manifest the image is known through (store/image.h) keeps itself and its layer
     blobs: a push of the tag that came with it needs them. The newest one's layers are in the
     record; the others' are read from the manifests themselves. */
  size_t mi;
  json_t *mv;
  json_array_foreach (json_object_get (rec, "manifests"), mi, mv)
  {
    const char *md = cimg_json_str (mv, "digest");
    if (md == NULL || !cimg_digest_valid (md) || set_has (l->blobs, md))
      continue;
    add_unique (&l->blobs, md);
    cleanup_free char *mb = NULL;
    size_t mlen;
    cimg_error_t merr = { 0 };
    if (cimg_store_read_blob (s, md, CIMG_MAX_METADATA, &mb, &mlen, &merr) < 0)
      {
        cimg_error_clear (&merr);
        continue;
      }
    cleanup_json json_t *m = cimg_json_parse (mb, mlen, &merr);
    cimg_error_clear (&merr);
    size_t li;
    json_t *lv;
    json_array_foreach (json_object_get (m, "layers"), li, lv)
    {
      const char *ld = cimg_json_str (lv, "digest");
      if (ld && cimg_digest_valid (ld))
        add_unique (&l->blobs, ld);
    }
  }
  int rc = 0;
  size_t i;
  json_t *v;
  json_array_foreach (json_object_get (rec, "layers"), i, v)
  {
    const char *c = cimg_json_str (v, "chain_id");
    add_unique (&l->chains, c);
    add_unique (&l->blobs, cimg_json_str (v, "digest"));
    if (verify && rc == 0 && !cimg_store_has_layer (s, c))
      rc = cimg_error_set (err, ENOENT, "image %s: layer %zu (%s) is missing", id, i + 1,
                           c ? c : "?");
  }
  if (verify && rc == 0)
    {
      cleanup_free char *buf = NULL;
      size_t len;
      if (cimg_store_read_blob (s, id, CIMG_MAX_METADATA, &buf, &len, err) < 0)
        return cimg_error_wrap (err, "image %s: config", id);
    }
  return rc;
}

static bool
is_debris_name (const char *name)
{
  return strstr (name, ".tmp-") != NULL || cimg_str_has_prefix (name, "tmp-");
}

struct problems
{
  struct cimg_check_problem *v;
  size_t n;
};

static void problem (struct problems *p, bool debris, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
problem (struct problems *p, bool debris, const char *fmt, ...)
{
  if (p == NULL)
    return;
  va_list ap;
  va_start (ap, fmt);
  char *what = NULL;
  if (vasprintf (&what, fmt, ap) < 0)
    abort ();
  va_end (ap);
  p->v = xrealloc (p->v, (p->n + 1) * sizeof *p->v);
  p->v[p->n].what = what;
  p->v[p->n].debris = debris;
  p->n++;
}

static DIR *
open_dir (struct cimg_store *s, const char *name)
{
  int fd = openat (s->dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  DIR *d = fdopendir (fd);
  if (d == NULL)
    close (fd);
  return d;
}

/* Remove (when fix) dir/name and count it. */
static int
drop (struct cimg_store *s, const char *dir, const char *name, bool fix, struct cimg_gc_report *r,
      cimg_error_t *err)
{
  if (!fix)
    return 0;
  cleanup_free char *p = xasprintf ("%s/%s", dir, name);
  int64_t bytes = cimg_disk_usage_at (s->dirfd, p);
  /* Renamed out of the way first: a removal cut short (a kill) leaves a name that is debris by
     its form, never a half-deleted layer or record under its real name, which check would
     take for a damaged one. */
  if (!is_debris_name (name))
    {
      char *tmp = xasprintf ("%s/%s.tmp-rm-%ld", dir, name, (long)getpid ());
      if (renameat (s->dirfd, p, s->dirfd, tmp) == 0)
        {
          free (p);
          p = tmp;
        }
      else
        {
          free (tmp);
          if (errno == ENOENT)
            return 0;
        }
    }
  if (cimg_rm_rf_at (s->dirfd, p, err) < 0)
    return -1;
  if (r)
    r->bytes += bytes;
  return 0;
}

/* What a sweep keeps: reason () returns NULL for an entry of dir that stays, else why it goes,
   and the report counter it counts in. */
struct sweep_ctx
{
  struct cimg_store *s;
  json_t *idx;
  struct live *l;
  struct cimg_gc_report *r;
  size_t scratch; /* the counter when there is no report to count in */
};

static const char *
reason (struct sweep_ctx *c, const char *dir, const char *name, size_t **counter)
{
  size_t *scratch = &c->scratch;
  size_t *debris = c->r ? &c->r->debris : scratch;
  char d[CIMG_DIGEST_BUFSIZE];
  snprintf (d, sizeof d, "sha256:%.64s", name);
  bool hex = cimg_hex64_valid (name);
  *counter = debris;
  if (strcmp (dir, "ingest") == 0)
    return "partial download or write";
  if (strcmp (dir, "layers") == 0)
    {
      if (!hex)
        return "unfinished layer";
      *counter = c->r ? &c->r->layers : scratch;
      return set_has (c->l->chains, d) ? NULL : "layer no image uses";
    }
  if (strcmp (dir, "l") == 0)
    {
      cleanup_free char *p = xasprintf ("l/%s/.", name);
      struct stat st;
      bool ok = fstatat (c->s->dirfd, p, &st, 0) == 0 && S_ISDIR (st.st_mode);
      return ok ? NULL : "link to a missing layer";
    }
  if (strcmp (dir, "blobs/sha256") == 0)
    {
      *counter = c->r ? &c->r->blobs : scratch;
      return hex && set_has (c->l->blobs, d) ? NULL : "blob no image uses";
    }
  if (strcmp (dir, "containers") == 0)
    {
      /* config.json is written last at creation and removed first by rm: without it, a
         record is a create or rm cut short (both run under the store lock check takes). */
      if (is_debris_name (name))
        return "unfinished removal";
      cleanup_free char *p = xasprintf ("containers/%s/config.json", name);
      struct stat st;
      if (!hex || fstatat (c->s->dirfd, p, &st, AT_SYMLINK_NOFOLLOW) == 0)
        return NULL;
      return "container record cut short (no config.json)";
    }
  if (strcmp (dir, "images") == 0)
    return hex && json_object_get (json_object_get (c->idx, "images"), d)
               ? NULL
               : "image record not in the index";
  /* the store root, and build-cache/ (build/cache.c: its records are written atomically by a
     build, which holds the store lock) */
  return is_debris_name (name) ? "unfinished write" : NULL;
}

/* Inside each record's directory, what a writer cut short left: in containers/<id>/ the
   scratch directories of commit (commit.tmp-*) — only directories, because a detached
   container's monitor writes state.json atomically (state.json.tmp-*) without the store lock,
   so a temporary file there may belong to a live write; in images/<id>/ the temporary file of
   an atomic image.json write (every writer of an image record holds the store lock). Check
   holds the exclusive one. */
static int
sweep_records (struct cimg_store *s, const char *top, bool dirs_only, bool fix, struct problems *pr,
               cimg_error_t *err)
{
  cleanup_dir DIR *d = open_dir (s, top);
  struct dirent *e;
  while (d && (e = readdir (d)))
    {
      if (!cimg_hex64_valid (e->d_name))
        continue;
      cleanup_free char *dir = xasprintf ("%s/%s", top, e->d_name);
      cleanup_dir DIR *cd = open_dir (s, dir);
      struct dirent *ce;
      while (cd && (ce = readdir (cd)))
        {
          struct stat st;
          if (!is_debris_name (ce->d_name)
              || fstatat (dirfd (cd), ce->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0
              || (dirs_only && !S_ISDIR (st.st_mode)))
            continue;
          problem (pr, true, "%s/%s: unfinished write", dir, ce->d_name);
          if (fix && cimg_rm_rf_at (dirfd (cd), ce->d_name, err) < 0)
            return -1;
        }
    }
  return 0;
}

/* The sweep shared by gc and check: everything the live set does not reach is removed (fix)
   and reported as debris (problems). */
static int
sweep (struct cimg_store *s, json_t *idx, struct live *l, bool fix, struct problems *pr,
       struct cimg_gc_report *r, cimg_error_t *err)
{
  static const char *const dirs[]
      = { "ingest", "layers", "l", "blobs/sha256", "images", "containers", "build-cache", "." };
  struct sweep_ctx c = { s, idx, l, r, 0 };
  char own_suffix[48];
  snprintf (own_suffix, sizeof own_suffix, ".tmp-rm-%ld", (long)getpid ());
  for (size_t i = 0; i < ARRAY_SIZE (dirs); i++)
    {
      cleanup_dir DIR *d = open_dir (s, dirs[i]);
      struct dirent *e;
      while (d && (e = readdir (d)))
        {
          if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
            continue;
          /* What drop () of this sweep renamed may come again in readdir: gone already. */
          if (cimg_str_has_suffix (e->d_name, own_suffix))
            continue;
          size_t *counter;
          const char *why = reason (&c, dirs[i], e->d_name, &counter);
          if (why == NULL)
            continue;
          if (i + 1 == ARRAY_SIZE (dirs))
            problem (pr, true, "%s: %s", e->d_name, why);
          else
            problem (pr, true, "%s/%s: %s", dirs[i], e->d_name, why);
          (*counter)++;
          if (drop (s, dirs[i], e->d_name, fix, r, err) < 0)
            return -1;
        }
    }
  return 0;
}

/* Mounts under the store that no container of it owns: a build's or a container's view
   that a killed process left in this mount namespace (builds mount in a private one, so this is
   rare). They go first: a sweep must never descend into a mount (a bind mount of a host
   directory). Mount points are octal-escaped in mountinfo (\040 for a blank). */
static int
sweep_mounts (struct cimg_store *s, bool fix, struct problems *pr, cimg_error_t *err)
{
  cleanup_free char *root = realpath (s->root, NULL);
  cleanup_fclose FILE *f = root ? fopen ("/proc/self/mountinfo", "re") : NULL;
  if (f == NULL)
    return 0;
  cleanup_free char *line = NULL;
  size_t cap = 0, rl = strlen (root);
  cleanup_strv char **victims = NULL;
  while (getline (&line, &cap, f) > 0)
    {
      /* id parent major:minor root mountpoint … */
      char *save = NULL, *tok = strtok_r (line, " ", &save);
      for (int i = 0; i < 4 && tok; i++)
        tok = strtok_r (NULL, " ", &save);
      if (tok == NULL)
        continue;
      char *mp = tok, *o = tok;
      for (char *q = tok; *q;)
        if (q[0] == '\\' && q[1] >= '0' && q[1] <= '3' && q[2] >= '0' && q[2] <= '7' && q[3] >= '0'
            && q[3] <= '7')
          {
            *o++ = (char)((q[1] - '0') * 64 + (q[2] - '0') * 8 + (q[3] - '0'));
            q += 4;
          }
        else
          *o++ = *q++;
      *o = '\0';
      if (strncmp (mp, root, rl) != 0 || mp[rl] != '/')
        continue;
      const char *rel = mp + rl + 1;
      /* A container's own mounts (containers/<id>/…) are its business while its record is
         there. */
      char id[65];
      snprintf (id, sizeof id, "%.64s", cimg_str_has_prefix (rel, "containers/") ? rel + 11 : "");
      if (cimg_hex64_valid (id) && (rel[11 + 64] == '/' || rel[11 + 64] == '\0'))
        {
          cleanup_free char *cfg = xasprintf ("containers/%s", id);
          if (faccessat (s->dirfd, cfg, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
            continue;
        }
      if (!cimg_strv_contains (victims, mp))
        cimg_strv_append (&victims, mp);
    }
  /* Deepest first: a mount on top of another goes before it. */
  size_t n = cimg_strv_len (victims);
  for (size_t i = n; i-- > 0;)
    {
      problem (pr, true, "mount %s: no container of this store uses it", victims[i]);
      if (fix && umount2 (victims[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return cimg_error_sys (err, "unmount %s", victims[i]);
    }
  return 0;
}

int
cimg_store_gc (struct cimg_store *s, struct cimg_gc_report *r, cimg_error_t *err)
{
  if (cimg_store_lock (s, CIMG_LOCK_EXCLUSIVE, err) < 0)
    return -1;
  memset (r, 0, sizeof *r);
  cleanup_json json_t *idx = cimg_index_load (s, err);
  if (idx == NULL)
    return -1;
  struct live l = { 0 };
  const char *k;
  json_t *v;
  json_object_foreach (json_object_get (idx, "images"), k, v)
  {
    cimg_error_t ierr = { 0 };
    /* A broken image still keeps what it references: gc never turns one problem into more. */
    collect_image (s, k, &l, false, &ierr);
    cimg_error_clear (&ierr);
  }
  int rc = sweep_mounts (s, true, NULL, err);
  if (rc == 0)
    rc = sweep (s, idx, &l, true, NULL, r, err);
  live_free (&l);
  return rc;
}

struct drop_data
{
  char **ids;
  char **tags;
};

static int
index_drop (json_t *idx, void *data, cimg_error_t *err)
{
  struct drop_data *d = data;
  (void)err;
  for (size_t i = 0; d->ids && d->ids[i]; i++)
    json_object_del (json_object_get (idx, "images"), d->ids[i]);
  for (size_t i = 0; d->tags && d->tags[i]; i++)
    json_object_del (json_object_get (idx, "tags"), d->tags[i]);
  return 0;
}

int
cimg_store_check (struct cimg_store *s, bool repair, struct cimg_check_problem **out, size_t *n,
                  cimg_error_t *err)
{
  /* Exclusive even without --repair: a writer's partial files would otherwise be reported
     as debris while it is still writing them. */
  if (cimg_store_lock (s, CIMG_LOCK_EXCLUSIVE, err) < 0)
    return -1;
  struct problems pr = { 0 };
  cleanup_json json_t *idx = cimg_index_load (s, err);
  if (idx == NULL)
    return -1;
  int rc = 0;
  struct dirent *e;

  /* 1. Blobs whose bytes no longer match their name. */
  {
    cleanup_dir DIR *d = open_dir (s, "blobs/sha256");
    while (d && (e = readdir (d)))
      {
        if (!cimg_hex64_valid (e->d_name))
          continue;
        char want[CIMG_DIGEST_BUFSIZE], got[CIMG_DIGEST_BUFSIZE];
        snprintf (want, sizeof want, "sha256:%.64s", e->d_name);
        cleanup_close int fd = cimg_store_open_blob (s, want, err);
        if (fd < 0)
          {
            rc = -1;
            goto out;
          }
        cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
        char buf[65536];
        ssize_t r;
        while ((r = read (fd, buf, sizeof buf)) > 0)
          cimg_sha256_update (h, buf, (size_t)r);
        if (r < 0)
          {
            rc = cimg_error_sys (err, "read blob %s", want);
            goto out;
          }
        cimg_sha256_final (h, got);
        if (strcmp (got, want) == 0)
          continue;
        problem (&pr, false, "blob %s: content does not match its digest (got %s)", want, got);
        if (repair && drop (s, "blobs/sha256", e->d_name, true, NULL, err) < 0)
          {
            rc = -1;
            goto out;
          }
      }
  }

  /* 2. Layers whose record is missing or does not match their name. */
  {
    cleanup_dir DIR *d = open_dir (s, "layers");
    while (d && (e = readdir (d)))
      {
        if (!cimg_hex64_valid (e->d_name))
          continue;
        char chain[CIMG_DIGEST_BUFSIZE];
        snprintf (chain, sizeof chain, "sha256:%.64s", e->d_name);
        struct cimg_layer_info li;
        cimg_error_t lerr = { 0 };
        bool bad = cimg_store_layer_info (s, chain, &li, &lerr) < 0;
        if (!bad)
          {
            struct stat st;
            cleanup_free char *diff = cimg_store_layer_diff_path (chain);
            bad = fstatat (s->dirfd, diff, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR (st.st_mode);
            if (bad)
              cimg_error_set (&lerr, ENOENT, "layer %s: diff directory missing", chain);
          }
        if (bad)
          {
            problem (&pr, false, "%s", lerr.msg);
            if (repair && drop (s, "layers", e->d_name, true, NULL, err) < 0)
              rc = -1;
          }
        cimg_error_clear (&lerr);
        if (rc < 0)
          goto out;
      }
  }

  /* 3. Images: every part present and sound; tags point at images that exist. */
  {
    struct drop_data dd = { 0 };
    json_t *images = json_object_get (idx, "images");
    const char *k;
    json_t *v;
    json_object_foreach (images, k, v)
    {
      struct live tmp = { 0 };
      cimg_error_t ierr = { 0 };
      if (!cimg_digest_valid (k) || collect_image (s, k, &tmp, true, &ierr) < 0)
        {
          problem (&pr, false, "%s", ierr.msg ? ierr.msg : "invalid image ID in the index");
          cimg_strv_append (&dd.ids, k);
        }
      cimg_error_clear (&ierr);
      live_free (&tmp);
    }
    json_object_foreach (json_object_get (idx, "tags"), k, v)
    {
      const char *id = json_string_value (v);
      if (id && json_object_get (images, id) && !cimg_strv_contains (dd.ids, id))
        continue;
      problem (&pr, false, "tag %s: points at a missing or broken image", k);
      cimg_strv_append (&dd.tags, k);
    }
    if (repair && (dd.ids || dd.tags))
      rc = cimg_index_update (s, index_drop, &dd, err);
    cimg_strv_free (dd.ids);
    cimg_strv_free (dd.tags);
    if (rc < 0)
      goto out;
  }

  /* 4. Debris: mounts first, then what no (remaining) image reaches. */
  if ((rc = sweep_mounts (s, repair, &pr, err)) < 0)
    goto out;
  {
    json_decref (idx);
    idx = cimg_index_load (s, err);
    if (idx == NULL)
      {
        rc = -1;
        goto out;
      }
    struct live l = { 0 };
    const char *k;
    json_t *v;
    json_object_foreach (json_object_get (idx, "images"), k, v)
    {
      cimg_error_t ierr = { 0 };
      collect_image (s, k, &l, false, &ierr);
      cimg_error_clear (&ierr);
    }
    rc = sweep (s, idx, &l, repair, &pr, NULL, err);
    if (rc == 0)
      rc = sweep_records (s, "containers", true, repair, &pr, err);
    if (rc == 0)
      rc = sweep_records (s, "images", false, repair, &pr, err);
    live_free (&l);
  }
out:
  if (rc < 0)
    {
      cimg_check_problems_free (pr.v, pr.n);
      return -1;
    }
  *out = pr.v;
  *n = pr.n;
  return 0;
}

void
cimg_check_problems_free (struct cimg_check_problem *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    free (v[i].what);
  free (v);
}

int
cimg_store_df (struct cimg_store *s, struct cimg_df *df, cimg_error_t *err)
{
  memset (df, 0, sizeof *df);
  cleanup_json json_t *idx = cimg_index_load (s, err);
  if (idx == NULL)
    return -1;
  cleanup_strv char **in_use = cimg_store_images_in_use (s);
  cleanup_json json_t *all_chains = json_object (), *active_chains = json_object ();
  const char *k;
  json_t *v;
  json_object_foreach (json_object_get (idx, "images"), k, v)
  {
    df->images++;
    bool active = cimg_strv_contains (in_use, k);
    if (active)
      df->images_active++;
    struct live l = { 0 };
    cimg_error_t ierr = { 0 };
    collect_image (s, k, &l, false, &ierr);
    cimg_error_clear (&ierr);
    const char *c;
    json_t *cv;
    json_object_foreach (l.chains, c, cv)
    {
      add_unique (&all_chains, c);
      if (active)
        add_unique (&active_chains, c);
    }
    live_free (&l);
  }
  /* Shared layers count once, as in docker system df. */
  const char *chain;
  json_object_foreach (all_chains, chain, v)
  {
    struct cimg_layer_info li;
    cimg_error_t lerr = { 0 };
    if (cimg_store_layer_info (s, chain, &li, &lerr) == 0)
      {
        df->images_size += li.size;
        if (!set_has (active_chains, chain))
          df->images_reclaimable += li.size;
      }
    cimg_error_clear (&lerr);
  }
  cleanup_dir DIR *d = open_dir (s, "containers");
  struct dirent *e;
  while (d && (e = readdir (d)))
    {
      if (!cimg_hex64_valid (e->d_name))
        continue;
      df->containers++;
      cleanup_free char *up = xasprintf ("containers/%s/upper", e->d_name);
      int64_t sz = cimg_disk_usage_at (s->dirfd, up);
      df->containers_size += sz;
      df->containers_reclaimable += sz;
    }
  return 0;
}

/* ---------------------------------------------------------------- RUN steps' cgroups */

/* A build notes each RUN step's container ID here before the runtime makes its cgroup, and
   forgets it once the step's cgroup is destroyed: a note that is still there while no build
   runs (the caller holds the store lock exclusive) names a step of a build that was killed.
   Nothing needs to reach the disk: cgroups do not outlive a reboot either. */
#define STEPS_DIR "run-steps"

int
cimg_store_note_step (struct cimg_store *s, const char *id, cimg_error_t *err)
{
  if (!cimg_hex64_valid (id))
    return cimg_error_set (err, EINVAL, "\"%s\" is not a container ID", id);
  if (mkdirat (s->dirfd, STEPS_DIR, 0700) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "create %s/%s", s->root, STEPS_DIR);
  cleanup_free char *p = xasprintf (STEPS_DIR "/%s", id);
  int fd = openat (s->dirfd, p, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0)
    return cimg_error_sys (err, "create %s/%s", s->root, p);
  close (fd);
  return 0;
}

void
cimg_store_forget_step (struct cimg_store *s, const char *id)
{
  if (!cimg_hex64_valid (id))
    return;
  cleanup_free char *p = xasprintf (STEPS_DIR "/%s", id);
  unlinkat (s->dirfd, p, 0);
}

char **
cimg_store_noted_steps (struct cimg_store *s)
{
  char **out = NULL;
  cleanup_dir DIR *d = open_dir (s, STEPS_DIR);
  struct dirent *e;
  while (d && (e = readdir (d)))
    if (cimg_hex64_valid (e->d_name))
      cimg_strv_append (&out, e->d_name);
  return out;
}

char **
cimg_store_container_ids (struct cimg_store *s)
{
  char **out = NULL;
  cleanup_dir DIR *d = open_dir (s, "containers");
  struct dirent *e;
  while (d && (e = readdir (d)))
    if (cimg_hex64_valid (e->d_name))
      cimg_strv_append (&out, e->d_name);
  return out;
}
