#include "store/image.h"
#include "store/store-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- records */

void
cimg_image_free (struct cimg_image *img)
{
  if (img == NULL)
    return;
  json_decref (img->config);
  json_decref (img->manifest);
  free (img->layers);
  cimg_strv_free (img->repo_tags);
  cimg_strv_free (img->repo_digests);
  free (img);
}

void
cimg_image_freep (struct cimg_image **img)
{
  cimg_image_free (*img);
  *img = NULL;
}

static char *
record_path (const char *id)
{
  return xasprintf ("images/%s/image.json", cimg_digest_hex (id));
}

static const char *
docker_layer_type (const char *mt)
{
  if (strcmp (mt, MT_OCI_LAYER_GZIP) == 0 || strcmp (mt, MT_DOCKER_LAYER_GZIP) == 0)
    return MT_DOCKER_LAYER_GZIP;
  if (strcmp (mt, MT_OCI_LAYER_TAR) == 0 || strcmp (mt, MT_DOCKER_LAYER_TAR) == 0)
    return MT_DOCKER_LAYER_TAR;
  return mt; /* zstd has no Docker media type: keep the OCI one */
}

static int64_t
config_created (json_t *config)
{
  int64_t t = 0;
  const char *c = cimg_json_str (config, "created");
  if (c == NULL || cimg_time_parse_rfc3339 (c, &t) < 0)
    return 0;
  return t;
}

static json_t *
generate_manifest (const char *config_digest, size_t config_len,
                   const struct cimg_image_layer *layers, size_t n)
{
  json_t *ls = json_array ();
  for (size_t i = 0; i < n; i++)
    json_array_append_new (
        ls, json_pack ("{s:s, s:I, s:s}", "mediaType", docker_layer_type (layers[i].media_type),
                       "size", (json_int_t)layers[i].blob_size, "digest", layers[i].digest));
  return json_pack ("{s:i, s:s, s:{s:s, s:I, s:s}, s:o}", "schemaVersion", 2, "mediaType",
                    MT_DOCKER_MANIFEST, "config", "mediaType", MT_DOCKER_CONFIG, "size",
                    (json_int_t)config_len, "digest", config_digest, "layers", ls);
}

/* ---------------------------------------------------------------- manifests of an image */

/* One image (one config) can come through several manifests: an OCI and a Docker one, gzip
   and zstd layers, a load and a pull. The record lists them all under "manifests" (oldest
   first), each with the references it was pulled or pushed as ("name:tag", "name@digest"),
   so that a push of a tag sends the manifest that tag came with, digest for digest. The
   top-level "manifest_digest" and "layers" stay those of the newest manifest: records written
   before "manifests" existed, and readers that know only those, keep working. */

/* The record's manifests (a new reference): "manifests", or for an older record the one its
   "manifest_digest" names. */
static json_t *
record_manifests (json_t *rec)
{
  json_t *ms = json_object_get (rec, "manifests");
  if (json_is_array (ms))
    return json_deep_copy (ms);
  json_t *out = json_array ();
  const char *md = rec ? cimg_json_str (rec, "manifest_digest") : NULL;
  if (md && cimg_digest_valid (md))
    json_array_append_new (out, json_pack ("{s:s, s:[]}", "digest", md, "refs"));
  return out;
}

static bool
refs_have (json_t *refs, const char *r)
{
  size_t i;
  json_t *v;
  json_array_foreach (refs, i, v) if (json_is_string (v)
                                      && strcmp (json_string_value (v), r) == 0) return true;
  return false;
}

/* Record that refs (NULL-terminated, NULL entries skipped) came with manifest digest: its
   entry is created (last) when missing, or moved last when newest is set. A tag names one
   manifest, so a tag is taken off every other entry. */
static void
manifests_add (json_t *ms, const char *digest, const char *const *refs, size_t nrefs, bool newest)
{
  json_t *entry = NULL;
  size_t i;
  json_t *v;
  json_array_foreach (ms, i, v) if (cimg_json_str (v, "digest")
                                    && strcmp (cimg_json_str (v, "digest"), digest) == 0)
  {
    entry = json_incref (v);
    if (newest)
      {
        json_array_remove (ms, i);
        json_array_append (ms, entry);
      }
    break;
  }
  if (entry == NULL)
    {
      entry = json_pack ("{s:s, s:[]}", "digest", digest, "refs");
      json_array_append (ms, entry);
    }
  json_t *mine = json_object_get (entry, "refs");
  if (!json_is_array (mine))
    {
      mine = json_array ();
      json_object_set_new (entry, "refs", mine);
    }
  for (size_t k = 0; k < nrefs; k++)
    {
      const char *r = refs[k];
      if (r == NULL || *r == '\0')
        continue;
      if (strchr (r, '@') == NULL)
        json_array_foreach (ms, i, v)
        {
          json_t *theirs = json_object_get (v, "refs");
          for (size_t j = json_array_size (theirs); v != entry && j-- > 0;)
            if (json_is_string (json_array_get (theirs, j))
                && strcmp (json_string_value (json_array_get (theirs, j)), r) == 0)
              json_array_remove (theirs, j);
        }
      if (!refs_have (mine, r))
        json_array_append_new (mine, json_string (r));
    }
  json_decref (entry);
}

/* The repository part of a reference: "name" of "name:tag" or "name@digest" (new string). */
static char *
ref_repo (const char *r)
{
  const char *at = strchr (r, '@');
  if (at)
    return xstrndup (r, (size_t)(at - r));
  const char *slash = strrchr (r, '/');
  const char *colon = strrchr (slash ? slash : r, ':');
  return colon ? xstrndup (r, (size_t)(colon - r)) : xstrdup (r);
}

/* The entry of ms that ref came with: the one listing ref itself, else the newest one listing
   a reference of the same repository; NULL when none does. */
static json_t *
manifest_entry_for (json_t *ms, const char *ref)
{
  size_t i;
  json_t *v;
  json_array_foreach (ms, i, v) if (refs_have (json_object_get (v, "refs"), ref)) return v;
  cleanup_free char *repo = ref_repo (ref);
  for (i = json_array_size (ms); i-- > 0;)
    {
      json_t *refs = json_object_get (json_array_get (ms, i), "refs");
      size_t j;
      json_t *r;
      json_array_foreach (refs, j, r)
      {
        if (!json_is_string (r))
          continue;
        cleanup_free char *rr = ref_repo (json_string_value (r));
        if (strcmp (rr, repo) == 0)
          return json_array_get (ms, i);
      }
    }
  return NULL;
}

static json_t *
load_record_json (struct cimg_store *s, const char *id, cimg_error_t *err)
{
  if (!cimg_digest_valid (id))
    {
      cimg_error_set (err, EINVAL, "\"%s\" is not an image ID", id);
      return NULL;
    }
  cleanup_free char *path = record_path (id);
  return cimg_json_load_at (s->dirfd, path, 16 << 20, err);
}

int
cimg_store_image_manifest_for (struct cimg_store *s, const char *id, const char *ref,
                               char digest[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  cleanup_json json_t *rec = load_record_json (s, id, err);
  if (rec == NULL)
    return cimg_error_wrap (err, "image %s", id);
  cleanup_json json_t *ms = record_manifests (rec);
  json_t *e = ref ? manifest_entry_for (ms, ref) : NULL;
  const char *d = e ? cimg_json_str (e, "digest") : cimg_json_str (rec, "manifest_digest");
  if (d == NULL || !cimg_digest_valid (d))
    return cimg_error_set (err, ENOENT, "image %s: no manifest in its record", id);
  snprintf (digest, CIMG_DIGEST_BUFSIZE, "%s", d);
  return 0;
}

char *
cimg_store_image_repo_digest_for (struct cimg_store *s, const char *id, const char *tag)
{
  cimg_error_t err = { 0 };
  cleanup_json json_t *rec = load_record_json (s, id, &err);
  cimg_error_clear (&err);
  if (rec == NULL)
    return NULL;
  cleanup_json json_t *ms = record_manifests (rec);
  json_t *e = NULL;
  size_t i;
  json_t *v;
  json_array_foreach (ms, i, v) if (refs_have (json_object_get (v, "refs"), tag)) e = v;
  if (e == NULL)
    return NULL;
  cleanup_free char *repo = ref_repo (tag);
  json_array_foreach (json_object_get (e, "refs"), i, v)
  {
    const char *r = json_string_value (v);
    size_t n = strlen (repo);
    if (r && strncmp (r, repo, n) == 0 && r[n] == '@' && cimg_digest_valid (r + n + 1))
      return xstrdup (r + n + 1);
  }
  return NULL;
}

struct refs_data
{
  struct cimg_store *s;
  const char *id, *manifest_digest;
  const char *const *refs;
  size_t nrefs;
};

/* Under index.lock, as every read-modify-write of a record, so that two pulls or pushes of
   the same image never lose each other's manifests. */
static int
index_add_refs (json_t *idx, void *data, cimg_error_t *err)
{
  struct refs_data *d = data;
  if (json_object_get (json_object_get (idx, "images"), d->id) == NULL)
    return cimg_error_set (err, ENOENT, "image %s is not in the store", d->id);
  cleanup_json json_t *rec = load_record_json (d->s, d->id, err);
  if (rec == NULL)
    return cimg_error_wrap (err, "image %s", d->id);
  cleanup_json json_t *ms = record_manifests (rec);
  manifests_add (ms, d->manifest_digest, d->refs, d->nrefs, false);
  json_object_set (rec, "manifests", ms);
  cleanup_free char *path = record_path (d->id);
  return cimg_json_save_at (d->s->dirfd, path, rec, err);
}

int
cimg_store_image_add_manifest_refs (struct cimg_store *s, const char *id,
                                    const char *manifest_digest, const char *const *refs,
                                    size_t nrefs, cimg_error_t *err)
{
  if (!cimg_digest_valid (manifest_digest))
    return cimg_error_set (err, EINVAL, "\"%s\" is not a manifest digest", manifest_digest);
  for (size_t i = 0; i < nrefs; i++)
    if (refs[i] && strpbrk (refs[i], " \t\r\n\"\\") != NULL)
      return cimg_error_set (err, EINVAL, "\"%s\" is not a reference", refs[i]);
  struct refs_data d = { s, id, manifest_digest, refs, nrefs };
  return cimg_index_update (s, index_add_refs, &d, err);
}

/* ---------------------------------------------------------------- adding */

/* One image to record: everything is checked and its blobs are stored before the index is
   touched, so that a batch (a load of many images) either fails before its one index update or
   records them all in it. */
struct add_data
{
  char id[CIMG_DIGEST_BUFSIZE];
  json_t *summary;
  char *repo_digest;
  char *ref;
  json_t *rec;
};

static void
add_data_clear (struct add_data *d)
{
  json_decref (d->summary);
  json_decref (d->rec);
  free (d->repo_digest);
  free (d->ref);
  memset (d, 0, sizeof *d);
}

/* Write a record no reader can see yet (its image is not in the index), without syncing it. */
static int
write_unsynced (struct cimg_store *s, const char *path, json_t *rec, cimg_error_t *err)
{
  cleanup_free char *text = json_dumps (rec, JSON_COMPACT | JSON_SORT_KEYS);
  if (text == NULL)
    return cimg_error_set (err, ENOMEM, "encode %s", path);
  cleanup_close int fd
      = openat (s->dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 || cimg_write_all (fd, text, strlen (text)) < 0)
    return cimg_error_sys (err, "write %s/%s", s->root, path);
  return 0;
}

/* Write the image's record, merged with the one already there (the same image through another
   manifest), and its index entry. Runs under index.lock: see index_add_refs. need_sync: NULL to
   write the record durably at once, else the caller syncs the file system before the index
   names it, and *need_sync is set when that is needed. */
static int
index_add_one (struct cimg_store *s, json_t *idx, struct add_data *d, bool *need_sync,
               cimg_error_t *err)
{
  cimg_error_t lerr = { 0 };
  cleanup_free char *path = record_path (d->id);
  cleanup_json json_t *old_rec = NULL;
  /* A record the index does not name is debris of an interrupted write: nothing to keep. */
  if (json_object_get (json_object_get (idx, "images"), d->id)
      && faccessat (s->dirfd, path, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
    old_rec = cimg_json_load_at (s->dirfd, path, 16 << 20, &lerr);
  cimg_error_clear (&lerr);
  cleanup_json json_t *ms = record_manifests (old_rec);
  const char *refs[] = { d->ref, d->repo_digest };
  manifests_add (ms, cimg_json_str (d->rec, "manifest_digest"), refs, ARRAY_SIZE (refs), true);
  json_object_set (d->rec, "manifests", ms);
  /* The record of an image the index does not name yet is read by nobody until the index
     update that names it: a batch of many syncs them all at once before that update (one
     syncfs instead of two fsyncs per image). One the index names is replaced durably at once. */
  if (need_sync == NULL || json_object_get (json_object_get (idx, "images"), d->id) != NULL)
    {
      if (cimg_json_save_at (s->dirfd, path, d->rec, err) < 0)
        return -1;
    }
  else
    {
      if (write_unsynced (s, path, d->rec, err) < 0)
        return -1;
      *need_sync = true;
    }
  json_t *images = json_object_get (idx, "images");
  json_t *old = json_object_get (images, d->id);
  json_t *digests = old ? json_object_get (old, "digests") : NULL;
  digests = json_is_array (digests) ? json_incref (digests) : json_array ();
  if (d->repo_digest)
    {
      bool have = false;
      size_t i;
      json_t *v;
      json_array_foreach (digests, i, v) have
          |= strcmp (json_string_value (v), d->repo_digest) == 0;
      if (!have)
        json_array_append_new (digests, json_string (d->repo_digest));
    }
  json_object_set_new (d->summary, "digests", digests);
  json_object_set (images, d->id, d->summary);
  return 0;
}

/* Check an image whose layers are all in the store, store its config and manifest blobs and
   fill d (cleared by the caller) with its record and index summary. */
static int
prepare_image (struct cimg_store *s, const char *config_bytes, size_t config_len,
               const char *manifest_bytes, size_t manifest_len,
               const struct cimg_image_layer *layers, size_t n_layers, const char *repo_digest,
               const char *ref, struct add_data *d, cimg_error_t *err)
{
  if (config_len > CIMG_MAX_METADATA)
    return cimg_error_set (err, EFBIG, "image config is over the limit of %d bytes",
                           CIMG_MAX_METADATA);
  cleanup_json json_t *config = cimg_json_parse (config_bytes, config_len, err);
  if (config == NULL)
    return cimg_error_wrap (err, "image config");
  json_t *diff_ids = json_object_get (json_object_get (config, "rootfs"), "diff_ids");
  /* A config without layers may say so with null or nothing (a scratch image). */
  if (!(n_layers == 0 && (diff_ids == NULL || json_is_null (diff_ids)))
      && (!json_is_array (diff_ids) || json_array_size (diff_ids) != n_layers))
    return cimg_error_set (err, EINVAL,
                           "image config: rootfs.diff_ids lists %zu layers, the image has %zu",
                           json_is_array (diff_ids) ? json_array_size (diff_ids) : 0, n_layers);
  char chain[CIMG_DIGEST_BUFSIZE] = "";
  int64_t size = 0;
  json_t *jl = json_array ();
  cleanup_json json_t *jlayers = jl;
  for (size_t i = 0; i < n_layers; i++)
    {
      const char *want = json_string_value (json_array_get (diff_ids, i));
      if (want == NULL || strcmp (want, layers[i].diff_id) != 0)
        return cimg_error_set (err, EINVAL, "layer %zu: diff_id %s is not the config's %s", i + 1,
                               layers[i].diff_id, want ? want : "(none)");
      char next[CIMG_DIGEST_BUFSIZE];
      cimg_chain_id (chain, layers[i].diff_id, next);
      if (strcmp (next, layers[i].chain_id) != 0 || !cimg_store_has_layer (s, next))
        return cimg_error_set (err, ENOENT, "layer %zu (%s) is not in the store", i + 1, next);
      memcpy (chain, next, sizeof chain);
      size += layers[i].size;
      json_array_append_new (
          jl, json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I}", "chain_id", layers[i].chain_id,
                         "diff_id", layers[i].diff_id, "digest", layers[i].digest, "media_type",
                         layers[i].media_type, "blob_size", (json_int_t)layers[i].blob_size, "size",
                         (json_int_t)layers[i].size));
    }
  char id[CIMG_DIGEST_BUFSIZE], mdigest[CIMG_DIGEST_BUFSIZE];
  if (cimg_store_put_blob (s, config_bytes, config_len, NULL, id, err) < 0)
    return cimg_error_wrap (err, "image config");
  if (manifest_bytes)
    {
      if (manifest_len > CIMG_MAX_METADATA)
        return cimg_error_set (err, EFBIG, "manifest is over the limit of %d bytes",
                               CIMG_MAX_METADATA);
      if (cimg_store_put_blob (s, manifest_bytes, manifest_len, NULL, mdigest, err) < 0)
        return cimg_error_wrap (err, "manifest");
    }
  else
    {
      cleanup_json json_t *m = generate_manifest (id, config_len, layers, n_layers);
      cleanup_free char *mb = json_dumps (m, JSON_COMPACT);
      if (cimg_store_put_blob (s, mb, strlen (mb), NULL, mdigest, err) < 0)
        return cimg_error_wrap (err, "manifest");
    }

  int64_t created = config_created (config);
  cleanup_free char *dir = xasprintf ("images/%s", cimg_digest_hex (id));
  if (mkdirat (s->dirfd, dir, 0700) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "create %s", dir);
  memcpy (d->id, id, sizeof d->id);
  d->rec = json_pack ("{s:s, s:s, s:O, s:I, s:I}", "id", id, "manifest_digest", mdigest, "layers",
                      jlayers, "created", (json_int_t)created, "size", (json_int_t)size);
  d->summary = json_pack ("{s:s, s:I, s:I}", "manifest", mdigest, "created", (json_int_t)created,
                          "size", (json_int_t)size);
  d->repo_digest = repo_digest ? xstrdup (repo_digest) : NULL;
  d->ref = ref ? xstrdup (ref) : NULL;
  return 0;
}

static int batch_apply (struct cimg_image_batch *b, json_t *idx, cimg_error_t *err);

static int
index_add (json_t *idx, void *data, cimg_error_t *err)
{
  return batch_apply (data, idx, err);
}

int
cimg_store_add_image (struct cimg_store *s, const char *config_bytes, size_t config_len,
                      const char *manifest_bytes, size_t manifest_len,
                      const struct cimg_image_layer *layers, size_t n_layers,
                      const char *repo_digest, char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  return cimg_store_add_image_ref (s, config_bytes, config_len, manifest_bytes, manifest_len,
                                   layers, n_layers, repo_digest, NULL, NULL, id_out, err);
}

int
cimg_store_add_image_ref (struct cimg_store *s, const char *config_bytes, size_t config_len,
                          const char *manifest_bytes, size_t manifest_len,
                          const struct cimg_image_layer *layers, size_t n_layers,
                          const char *repo_digest, const char *ref, const char *tag,
                          char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (s);
  char id[CIMG_DIGEST_BUFSIZE];
  if (cimg_image_batch_add (b, config_bytes, config_len, manifest_bytes, manifest_len, layers,
                            n_layers, repo_digest, ref, id, err)
          < 0
      || (tag && cimg_image_batch_tag (b, id, tag, err) < 0)
      || cimg_image_batch_commit (b, err) < 0)
    return -1;
  if (id_out)
    memcpy (id_out, id, CIMG_DIGEST_BUFSIZE);
  return 0;
}

/* ---------------------------------------------------------------- batches */

struct batch_tag
{
  char id[CIMG_DIGEST_BUFSIZE];
  char *tag; /* full reference */
};

/* One name of an rmi, and what came of it. */
struct batch_rm
{
  char *name;
  int flags;
  char **report;
  cimg_error_t err;
  int rc;
};

struct cimg_image_batch
{
  struct cimg_store *s;
  struct add_data *add;
  size_t n_add;
  struct batch_tag *tag;
  size_t n_tag;
  struct batch_rm *rm;
  size_t n_rm;
  /* What the removals take out of the index: tags (a set) and images (IDs, in order). */
  json_t *untag;
  char **doomed;
};

struct cimg_image_batch *
cimg_image_batch_new (struct cimg_store *s)
{
  struct cimg_image_batch *b = xzalloc (sizeof *b);
  b->s = s;
  return b;
}

void
cimg_image_batch_free (struct cimg_image_batch *b)
{
  if (b == NULL)
    return;
  for (size_t i = 0; i < b->n_add; i++)
    add_data_clear (&b->add[i]);
  free (b->add);
  for (size_t i = 0; i < b->n_tag; i++)
    free (b->tag[i].tag);
  free (b->tag);
  for (size_t i = 0; i < b->n_rm; i++)
    {
      free (b->rm[i].name);
      cimg_strv_free (b->rm[i].report);
      cimg_error_clear (&b->rm[i].err);
    }
  free (b->rm);
  json_decref (b->untag);
  cimg_strv_free (b->doomed);
  free (b);
}

void
cimg_image_batch_freep (struct cimg_image_batch **b)
{
  cimg_image_batch_free (*b);
  *b = NULL;
}

int
cimg_image_batch_add (struct cimg_image_batch *b, const char *config_bytes, size_t config_len,
                      const char *manifest_bytes, size_t manifest_len,
                      const struct cimg_image_layer *layers, size_t n_layers,
                      const char *repo_digest, const char *ref, char id_out[CIMG_DIGEST_BUFSIZE],
                      cimg_error_t *err)
{
  struct add_data d = { 0 };
  if (prepare_image (b->s, config_bytes, config_len, manifest_bytes, manifest_len, layers, n_layers,
                     repo_digest, ref, &d, err)
      < 0)
    {
      add_data_clear (&d);
      return -1;
    }
  if (id_out)
    memcpy (id_out, d.id, CIMG_DIGEST_BUFSIZE);
  b->add = xrealloc (b->add, (b->n_add + 1) * sizeof *b->add);
  b->add[b->n_add++] = d;
  return 0;
}

/* A tag checked and normalised as cimg_store_tag does (new string), or NULL with err set. */
static char *
tag_name (const char *id, const char *tag, cimg_error_t *err)
{
  cleanup_ref struct cimg_ref *ref = cimg_ref_parse_tag (tag, err);
  if (ref == NULL)
    return NULL;
  if (!cimg_digest_valid (id))
    {
      cimg_error_set (err, EINVAL, "invalid image ID \"%s\"", id);
      return NULL;
    }
  return cimg_ref_string (ref);
}

int
cimg_image_batch_tag (struct cimg_image_batch *b, const char *id, const char *tag,
                      cimg_error_t *err)
{
  char *full = tag_name (id, tag, err);
  if (full == NULL)
    return -1;
  b->tag = xrealloc (b->tag, (b->n_tag + 1) * sizeof *b->tag);
  snprintf (b->tag[b->n_tag].id, sizeof b->tag[b->n_tag].id, "%s", id);
  b->tag[b->n_tag++].tag = full;
  return 0;
}

static void apply_removals (struct cimg_image_batch *b, json_t *idx);
static int resolve_removals (struct cimg_image_batch *b, cimg_error_t *err);
static int finish_removals (struct cimg_image_batch *b, cimg_error_t *err);

void
cimg_image_batch_remove (struct cimg_image_batch *b, const char *name, int flags)
{
  b->rm = xrealloc (b->rm, (b->n_rm + 1) * sizeof *b->rm);
  memset (&b->rm[b->n_rm], 0, sizeof b->rm[b->n_rm]);
  b->rm[b->n_rm].name = xstrdup (name);
  b->rm[b->n_rm++].flags = flags;
}

int
cimg_image_batch_removed (struct cimg_image_batch *b, size_t i, char *const **report,
                          cimg_error_t *err)
{
  if (report)
    *report = i < b->n_rm ? b->rm[i].report : NULL;
  if (i >= b->n_rm)
    return cimg_error_set (err, EINVAL, "no removal %zu in the batch", i);
  if (b->rm[i].rc < 0)
    {
      *err = b->rm[i].err;
      memset (&b->rm[i].err, 0, sizeof b->rm[i].err);
      b->rm[i].rc = 0;
      return -1;
    }
  return 0;
}

static int
batch_apply (struct cimg_image_batch *b, json_t *idx, cimg_error_t *err)
{
  /* Removals first: they were resolved against the index as it was (resolve_removals). */
  apply_removals (b, idx);
  /* In the order a caller doing one update per image would have made them: the images, then
     the tags, a later tag moving an earlier one. */
  /* One image (a pull, a build) keeps its two fsyncs: a syncfs would flush everything else
     written to the file system too. */
  bool need_sync = false;
  for (size_t i = 0; i < b->n_add; i++)
    if (index_add_one (b->s, idx, &b->add[i], b->n_add > 1 ? &need_sync : NULL, err) < 0)
      return -1;
  /* The new records (and their directories) reach the disk before the index names them. */
  if (need_sync && syncfs (b->s->dirfd) < 0)
    return cimg_error_sys (err, "sync %s", b->s->root);
  json_t *images = json_object_get (idx, "images"), *tags = json_object_get (idx, "tags");
  for (size_t i = 0; i < b->n_tag; i++)
    {
      if (json_object_get (images, b->tag[i].id) == NULL)
        return cimg_error_set (err, ENOENT, "No such image: %s", b->tag[i].id);
      json_object_set_new (tags, b->tag[i].tag, json_string (b->tag[i].id));
    }
  return 0;
}

int
cimg_image_batch_commit (struct cimg_image_batch *b, cimg_error_t *err)
{
  int rc = 0;
  bool took = false;
  if (b->n_rm > 0)
    {
      /* Exclusive from the resolution of the names to the gc: no other writer changes the index
         in between (every update holds the store lock, shared at least), so the removals
         resolved on one read of it are the ones applied, and no image is deleted while a `run`
         (shared) is recording a container of it. */
      took = b->s->lock_mode == 0;
      if (cimg_store_lock (b->s, CIMG_LOCK_EXCLUSIVE, err) < 0)
        return -1;
      rc = resolve_removals (b, err);
    }
  /* Only names that all failed: the index stays as it is, not even rewritten. */
  if (rc == 0 && (b->n_add > 0 || b->n_tag > 0 || b->untag != NULL || b->doomed != NULL))
    rc = cimg_index_update (b->s, index_add, b, err);
  if (rc < 0)
    /* Nothing was removed: no report may say otherwise. */
    for (size_t i = 0; i < b->n_rm; i++)
      {
        cimg_strv_free (b->rm[i].report);
        b->rm[i].report = NULL;
      }
  else if (b->doomed != NULL)
    rc = finish_removals (b, err);
  if (took)
    cimg_store_unlock (b->s);
  return rc;
}

/* ---------------------------------------------------------------- lookup */

static bool
is_hex (const char *s, size_t max)
{
  size_t n = strlen (s);
  if (n == 0 || n > max)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return true;
}

/* Resolve name to an image ID using the index. *by_tag is set to the full tag string when the
   name was a tag (for rmi). */
static int
resolve (json_t *idx, const char *name, char id[CIMG_DIGEST_BUFSIZE], char **by_tag,
         cimg_error_t *err)
{
  json_t *images = json_object_get (idx, "images");
  json_t *tags = json_object_get (idx, "tags");
  if (by_tag)
    *by_tag = NULL;
  const char *hex = name;
  if (cimg_str_has_prefix (name, "sha256:"))
    hex = name + 7;
  else
    {
      cimg_error_t perr = { 0 };
      cleanup_ref struct cimg_ref *ref = cimg_ref_parse (name, &perr);
      if (ref && ref->digest == NULL)
        {
          cleanup_free char *full = cimg_ref_string (ref);
          const char *v = cimg_json_str (tags, full);
          if (v && json_object_get (images, v))
            {
              snprintf (id, CIMG_DIGEST_BUFSIZE, "%s", v);
              if (by_tag)
                *by_tag = steal_pointer (&full);
              cimg_error_clear (&perr);
              return 0;
            }
        }
      else if (ref)
        {
          cleanup_free char *rn = cimg_ref_name (ref);
          cleanup_free char *want = xasprintf ("%s@%s", rn, ref->digest);
          const char *k;
          json_t *v;
          json_object_foreach (images, k, v)
          {
            json_t *ds = json_object_get (v, "digests");
            size_t i;
            json_t *d;
            json_array_foreach (ds, i, d) if (strcmp (json_string_value (d), want) == 0)
            {
              snprintf (id, CIMG_DIGEST_BUFSIZE, "%s", k);
              cimg_error_clear (&perr);
              return 0;
            }
          }
        }
      if (!is_hex (name, 64))
        {
          if (ref == NULL)
            {
              cimg_error_set (err, perr.code, "%s", perr.msg);
              cimg_error_clear (&perr);
              return -1;
            }
          cimg_error_clear (&perr);
          return cimg_error_set (err, ENOENT, "No such image: %s", name);
        }
      cimg_error_clear (&perr);
    }
  if (!is_hex (hex, 64))
    return cimg_error_set (err, ENOENT, "No such image: %s", name);
  const char *found = NULL;
  const char *k;
  json_t *v;
  size_t n = strlen (hex);
  json_object_foreach (images, k, v)
  {
    if (strncmp (k + 7, hex, n) != 0)
      continue;
    if (found)
      return cimg_error_set (err, EINVAL, "image ID prefix \"%s\" is ambiguous", name);
    found = k;
  }
  if (found == NULL)
    return cimg_error_set (err, ENOENT, "No such image: %s", name);
  snprintf (id, CIMG_DIGEST_BUFSIZE, "%s", found);
  return 0;
}

static char **
tags_of (json_t *idx, const char *id)
{
  char **out = NULL;
  const char *k;
  json_t *v;
  json_object_foreach (json_object_get (idx, "tags"), k,
                       v) if (strcmp (json_string_value (v), id) == 0) cimg_strv_append (&out, k);
  return out;
}

static char **
strv_from_json (json_t *arr)
{
  char **out = NULL;
  size_t i;
  json_t *v;
  json_array_foreach (arr, i, v) if (json_is_string (v))
      cimg_strv_append (&out, json_string_value (v));
  return out;
}

static struct cimg_image *
load_record (struct cimg_store *s, json_t *idx, const char *id, cimg_error_t *err)
{
  cleanup_free char *path = record_path (id);
  cleanup_json json_t *rec = cimg_json_load_at (s->dirfd, path, 16 << 20, err);
  if (rec == NULL)
    {
      cimg_error_wrap (err, "image %s", id);
      return NULL;
    }
  struct cimg_image *img = xzalloc (sizeof *img);
  snprintf (img->id, sizeof img->id, "%s", id);
  const char *md = cimg_json_str (rec, "manifest_digest");
  snprintf (img->manifest_digest, sizeof img->manifest_digest, "%s", md ? md : "");
  json_t *ls = json_object_get (rec, "layers");
  img->n_layers = json_array_size (ls);
  img->layers = xzalloc ((img->n_layers + 1) * sizeof *img->layers);
  for (size_t i = 0; i < img->n_layers; i++)
    {
      json_t *l = json_array_get (ls, i);
      struct cimg_image_layer *L = &img->layers[i];
      const char *c = cimg_json_str (l, "chain_id"), *d = cimg_json_str (l, "diff_id");
      const char *b = cimg_json_str (l, "digest"), *m = cimg_json_str (l, "media_type");
      if (!cimg_digest_valid (c) || !cimg_digest_valid (d))
        {
          cimg_image_free (img);
          cimg_error_set (err, EINVAL, "image %s: record has an invalid layer %zu", id, i + 1);
          return NULL;
        }
      snprintf (L->chain_id, sizeof L->chain_id, "%s", c);
      snprintf (L->diff_id, sizeof L->diff_id, "%s", d);
      snprintf (L->digest, sizeof L->digest, "%s", b ? b : "");
      snprintf (L->media_type, sizeof L->media_type, "%s", m ? m : MT_OCI_LAYER_TAR);
      L->blob_size = cimg_json_int (l, "blob_size");
      L->size = cimg_json_int (l, "size");
    }
  img->created = cimg_json_int (rec, "created");
  img->size = cimg_json_int (rec, "size");
  char *buf = NULL;
  size_t len = 0;
  if (cimg_store_read_blob (s, id, CIMG_MAX_METADATA, &buf, &len, err) < 0
      || (img->config = cimg_json_parse (buf, len, err)) == NULL)
    {
      free (buf);
      cimg_image_free (img);
      cimg_error_wrap (err, "image %s: config", id);
      return NULL;
    }
  free (buf);
  buf = NULL;
  if (cimg_digest_valid (img->manifest_digest)
      && cimg_store_read_blob (s, img->manifest_digest, CIMG_MAX_METADATA, &buf, &len, err) == 0)
    img->manifest = cimg_json_parse (buf, len, err);
  free (buf);
  cimg_error_clear (err);
  img->repo_tags = tags_of (idx, id);
  img->repo_digests = strv_from_json (
      json_object_get (json_object_get (json_object_get (idx, "images"), id), "digests"));
  return img;
}

struct cimg_image *
cimg_store_find_image (struct cimg_store *s, const char *name, cimg_error_t *err)
{
  cleanup_json json_t *idx = cimg_index_load (s, err);
  if (idx == NULL)
    return NULL;
  char id[CIMG_DIGEST_BUFSIZE];
  if (resolve (idx, name, id, NULL, err) < 0)
    return NULL;
  return load_record (s, idx, id, err);
}

int
cimg_store_tag (struct cimg_store *s, const char *id, const char *tag, cimg_error_t *err)
{
  cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (s);
  if (cimg_image_batch_tag (b, id, tag, err) < 0)
    return -1;
  return cimg_image_batch_commit (b, err);
}

/* ---------------------------------------------------------------- listing */

void
cimg_image_summaries_free (struct cimg_image_summary *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      cimg_strv_free (v[i].repo_tags);
      cimg_strv_free (v[i].repo_digests);
    }
  free (v);
}

static int
by_created_desc (const void *a, const void *b)
{
  const struct cimg_image_summary *x = a, *y = b;
  if (x->created != y->created)
    return x->created < y->created ? 1 : -1;
  return strcmp (x->id, y->id);
}

static int
by_id (const void *a, const void *b)
{
  return strcmp (((const struct cimg_image_summary *)a)->id,
                 ((const struct cimg_image_summary *)b)->id);
}

int
cimg_store_list_images (struct cimg_store *s, struct cimg_image_summary **out, size_t *n,
                        cimg_error_t *err)
{
  /* Straight from the raw index, without building JSON: this is `cimg images`' whole cost. */
  cleanup_free char *buf = NULL;
  size_t len;
  if (cimg_index_read (s, &buf, &len, err) < 0)
    return -1;
  size_t cap = 16, i = 0;
  struct cimg_image_summary *v = xzalloc (cap * sizeof *v);
  char *cur = buf ? strchr (buf, '\n') + 1 : NULL, *f[64];
  size_t nf;
  /* Images come before tags in the index, so every tag finds its image already listed. */
  bool sorted = false;
  while (cur && cimg_index_next (&cur, f, ARRAY_SIZE (f), &nf))
    {
      if (f[0][0] == 'i' && nf >= 5 && cimg_digest_valid (f[1]))
        {
          if (i + 1 >= cap)
            {
              cap *= 2;
              v = xrealloc (v, cap * sizeof *v);
            }
          memset (&v[i], 0, sizeof v[i]);
          snprintf (v[i].id, sizeof v[i].id, "%s", f[1]);
          snprintf (v[i].manifest_digest, sizeof v[i].manifest_digest, "%s", f[2]);
          v[i].created = strtoll (f[3], NULL, 10);
          v[i].size = strtoll (f[4], NULL, 10);
          for (size_t k = 5; k < nf; k++)
            cimg_strv_append (&v[i].repo_digests, f[k]);
          i++;
        }
      else if (f[0][0] == 't' && nf == 3)
        {
          if (!sorted)
            {
              qsort (v, i, sizeof *v, by_id);
              sorted = true;
            }
          struct cimg_image_summary key;
          snprintf (key.id, sizeof key.id, "%s", f[2]);
          struct cimg_image_summary *im = bsearch (&key, v, i, sizeof *v, by_id);
          if (im)
            cimg_strv_append (&im->repo_tags, f[1]);
        }
    }
  qsort (v, i, sizeof *v, by_created_desc);
  *out = v;
  *n = i;
  return 0;
}

/* ---------------------------------------------------------------- containers */

char **
cimg_store_images_in_use (struct cimg_store *s)
{
  char **out = NULL;
  int fd = openat (s->dirfd, "containers", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return NULL;
  cleanup_dir DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return NULL;
    }
  struct dirent *e;
  while ((e = readdir (d)))
    {
      if (!cimg_hex64_valid (e->d_name))
        continue;
      cleanup_free char *p = xasprintf ("%s/config.json", e->d_name);
      cimg_error_t err = { 0 };
      cleanup_json json_t *c = cimg_json_load_at (fd, p, 16 << 20, &err);
      cimg_error_clear (&err);
      const char *img = c ? cimg_json_str (c, "Image") : NULL;
      if (img && cimg_digest_valid (img) && !cimg_strv_contains (out, img))
        cimg_strv_append (&out, img);
    }
  return out;
}

/* ---------------------------------------------------------------- removal */

/* What one index update removes: tags, and images with every tag that names them. */
struct untag_data
{
  char *const *tags;
  char *const *ids;
};

static int
index_remove (json_t *idx, void *data, cimg_error_t *err)
{
  struct untag_data *d = data;
  json_t *tags = json_object_get (idx, "tags");
  (void)err;
  for (size_t i = 0; d->tags && d->tags[i]; i++)
    json_object_del (tags, d->tags[i]);
  if (d->ids == NULL)
    return 0;
  /* One pass over the tags whatever the number of images: a set of the doomed IDs. */
  cleanup_json json_t *doomed = json_object ();
  for (size_t i = 0; d->ids[i]; i++)
    json_object_set_new (doomed, d->ids[i], json_true ());
  const char *k;
  json_t *v;
  void *tmp;
  json_object_foreach_safe (tags, tmp, k, v) if (json_object_get (doomed, json_string_value (v)))
      json_object_del (tags, k);
  for (size_t i = 0; d->ids[i]; i++)
    json_object_del (json_object_get (idx, "images"), d->ids[i]);
  return 0;
}

static void
report_line (char ***report, const char *what, const char *s)
{
  if (report == NULL)
    return;
  cleanup_free char *line = xasprintf ("%s: %s", what, s);
  cimg_strv_append (report, line);
}

/* Untag and delete the images ids in one index update, then remove their records. */
static int
delete_images (struct cimg_store *s, json_t *idx, char *const *ids, char ***report,
               cimg_error_t *err)
{
  if (ids == NULL || ids[0] == NULL)
    return 0;
  /* Each image's tags, from one pass over the index's tags. */
  cleanup_json json_t *tags_by_id = json_object ();
  {
    const char *k;
    json_t *v;
    json_object_foreach (json_object_get (idx, "tags"), k, v)
    {
      const char *id = json_string_value (v);
      if (id == NULL)
        continue;
      json_t *a = json_object_get (tags_by_id, id);
      if (a == NULL)
        json_object_set_new (tags_by_id, id, a = json_array ());
      json_array_append_new (a, json_string (k));
    }
  }
  struct untag_data d = { NULL, ids };
  if (cimg_index_update (s, index_remove, &d, err) < 0)
    return -1;
  for (size_t n = 0; ids[n]; n++)
    {
      size_t i;
      json_t *t;
      json_array_foreach (json_object_get (tags_by_id, ids[n]), i, t)
      {
        cleanup_free char *f = cimg_ref_familiar_string (json_string_value (t));
        report_line (report, "Untagged", f);
      }
      cleanup_free char *dir = xasprintf ("images/%s", cimg_digest_hex (ids[n]));
      if (cimg_rm_rf_at (s->dirfd, dir, err) < 0)
        return -1;
      report_line (report, "Deleted", ids[n]);
    }
  return 0;
}

/* Untag tag (a full reference) in idx on behalf of r. */
static void
untag_one (struct cimg_image_batch *b, json_t *idx, const char *tag, struct batch_rm *r)
{
  json_object_del (json_object_get (idx, "tags"), tag);
  if (b->untag == NULL)
    b->untag = json_object ();
  json_object_set_new (b->untag, tag, json_true ());
  cleanup_free char *f = cimg_ref_familiar_string (tag);
  report_line (&r->report, "Untagged", f);
}

/* docker rmi of one name, on idx in memory (the batch's view of the index so far): a tag of an
   image with other tags is untagged; an image named by ID with several tags needs -f; an
   image a container uses is refused, or with -f only untagged; else the image goes with all
   its tags. What is taken out is recorded in b (untag, doomed) for the index update. */
static int
remove_one (struct cimg_image_batch *b, json_t *idx, char **in_use, struct batch_rm *r)
{
  cimg_error_t *err = &r->err;
  char id[CIMG_DIGEST_BUFSIZE];
  cleanup_free char *tag = NULL;
  if (resolve (idx, r->name, id, &tag, err) < 0)
    return -1;
  cleanup_strv char **tags = tags_of (idx, id);
  size_t ntags = cimg_strv_len (tags);
  bool force = r->flags & CIMG_RMI_FORCE;
  char shortid[13];
  snprintf (shortid, sizeof shortid, "%.12s", cimg_digest_hex (id));

  if (tag && ntags > 1)
    {
      untag_one (b, idx, tag, r);
      return 0;
    }
  if (!tag && ntags > 1 && !force)
    return cimg_error_set (err, EBUSY,
                           "conflict: unable to delete %s (must be forced) - image is "
                           "referenced in multiple repositories",
                           shortid);
  if (cimg_strv_contains (in_use, id))
    {
      if (!force)
        return cimg_error_set (err, EBUSY,
                               "conflict: unable to remove image %s - a container is using it "
                               "(remove the container first, or use -f to untag only)",
                               shortid);
      /* As Docker: -f on an image in use removes its tags but keeps the image. */
      for (size_t i = 0; i < ntags; i++)
        untag_one (b, idx, tags[i], r);
      return 0;
    }
  for (size_t i = 0; i < ntags; i++)
    untag_one (b, idx, tags[i], r);
  json_object_del (json_object_get (idx, "images"), id);
  cimg_strv_append (&b->doomed, id);
  report_line (&r->report, "Deleted", id);
  return 0;
}

/* Every name of the batch, in order, against one read of the index (under the store's
   exclusive lock): per name a report or an error, and in b the tags and images to take out. */
static int
resolve_removals (struct cimg_image_batch *b, cimg_error_t *err)
{
  cleanup_json json_t *idx = cimg_index_load (b->s, err);
  if (idx == NULL)
    return -1;
  cleanup_strv char **in_use = cimg_store_images_in_use (b->s);
  for (size_t i = 0; i < b->n_rm; i++)
    b->rm[i].rc = remove_one (b, idx, in_use, &b->rm[i]);
  return 0;
}

/* In the index update: the tags and images resolve_removals took out, and (nothing else can
   have changed the index in between, but a tag must never outlive its image) any tag still
   naming a deleted image. */
static void
apply_removals (struct cimg_image_batch *b, json_t *idx)
{
  json_t *tags = json_object_get (idx, "tags"), *images = json_object_get (idx, "images");
  const char *k;
  json_t *v;
  void *tmp;
  json_object_foreach (b->untag, k, v) json_object_del (tags, k);
  if (b->doomed == NULL)
    return;
  cleanup_json json_t *doomed = json_object ();
  for (size_t i = 0; b->doomed[i]; i++)
    {
      json_object_del (images, b->doomed[i]);
      json_object_set_new (doomed, b->doomed[i], json_true ());
    }
  json_object_foreach_safe (tags, tmp, k, v) if (json_object_get (doomed, json_string_value (v)))
      json_object_del (tags, k);
}

/* After the index update: the records of the deleted images (debris now: a kill here leaves
   them to the next gc or check --repair), then one gc for all of them. */
static int
finish_removals (struct cimg_image_batch *b, cimg_error_t *err)
{
  for (size_t i = 0; b->doomed[i]; i++)
    {
      bool readded = false;
      for (size_t k = 0; k < b->n_add && !readded; k++)
        readded = strcmp (b->add[k].id, b->doomed[i]) == 0;
      if (readded)
        continue;
      cleanup_free char *dir = xasprintf ("images/%s", cimg_digest_hex (b->doomed[i]));
      if (cimg_rm_rf_at (b->s->dirfd, dir, err) < 0)
        return cimg_error_wrap (err, "image %s", b->doomed[i]);
    }
  struct cimg_gc_report gr;
  return cimg_store_gc (b->s, &gr, err);
}

int
cimg_store_remove_image (struct cimg_store *s, const char *name, int flags, char ***report,
                         cimg_error_t *err)
{
  cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (s);
  cimg_image_batch_remove (b, name, flags);
  int rc = cimg_image_batch_commit (b, err);
  char *const *lines = NULL;
  cimg_error_t nerr = { 0 };
  int nrc = cimg_image_batch_removed (b, 0, &lines, &nerr);
  for (size_t i = 0; report && lines && lines[i]; i++)
    cimg_strv_append (report, lines[i]);
  if (nrc < 0)
    {
      /* The name's own error says more than what followed it. */
      if (rc < 0)
        cimg_error_clear (err);
      *err = nerr;
      return -1;
    }
  return rc;
}

int
cimg_store_prune_images (struct cimg_store *s, bool all, char ***report, int64_t *reclaimed,
                         cimg_error_t *err)
{
  if (cimg_store_lock (s, CIMG_LOCK_EXCLUSIVE, err) < 0)
    return -1;
  cleanup_json json_t *idx = cimg_index_load (s, err);
  if (idx == NULL)
    return -1;
  cleanup_strv char **in_use = cimg_store_images_in_use (s);
  /* Sets, not lists: one pass over the index whatever the number of images (tags_of per image
     made a prune O(images × tags)). */
  cleanup_json json_t *busy = json_object (), *tagged = json_object ();
  for (size_t i = 0; in_use && in_use[i]; i++)
    json_object_set_new (busy, in_use[i], json_true ());
  const char *k;
  json_t *v;
  json_object_foreach (json_object_get (idx, "tags"), k, v)
  {
    if (json_is_string (v))
      json_object_set_new (tagged, json_string_value (v), json_true ());
  }
  cleanup_strv char **victims = NULL;
  size_t nv = 0;
  json_object_foreach (json_object_get (idx, "images"), k, v)
  {
    if (json_object_get (busy, k) || (!all && json_object_get (tagged, k)))
      continue;
    victims = xrealloc (victims, (nv + 2) * sizeof *victims);
    victims[nv++] = xstrdup (k);
    victims[nv] = NULL;
  }
  if (delete_images (s, idx, victims, report, err) < 0)
    return -1;
  struct cimg_gc_report gr = { 0 };
  if (cimg_store_gc (s, &gr, err) < 0)
    return -1;
  if (reclaimed)
    *reclaimed = gr.bytes;
  return 0;
}
