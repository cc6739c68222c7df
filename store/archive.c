/* store: archives — docker import (a rootfs tar becomes a one-layer image), docker save (a tar
   holding docker-archive and an OCI layout at once) and docker load (either format back).
   Only the public store API is used: blob and layer writes go through the blob writer and the
   layer sink, so verification and safe extraction stay in one place. */
#include "store/image.h"
#include "store/layer-internal.h"
#include "store/store-internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>

#define COPY_CHUNK (1024 * 1024)
#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ANN_CONTAINERD_NAME "io.containerd.image.name"
#define ANN_REF_NAME "org.opencontainers.image.ref.name"
/* Nested indexes deeper than this are refused rather than followed (a cycle of indexes cannot
   exist between content-addressed blobs, but a long chain could still be made to cost a lot). */
#define MAX_INDEX_DEPTH 4

/* ---------------------------------------------------------------- common */

static void
archive_write_freep (struct archive **a)
{
  if (*a != NULL)
    archive_write_free (*a);
  *a = NULL;
}
#define cleanup_archive_write __attribute__ ((cleanup (archive_write_freep)))

static void
archive_entry_freep (struct archive_entry **e)
{
  if (*e != NULL)
    archive_entry_free (*e);
  *e = NULL;
}
#define cleanup_entry __attribute__ ((cleanup (archive_entry_freep)))

/* Content writers hold the store lock shared for their whole run (see store.h); a caller that
   already holds it keeps it, and only a lock taken here is released here. */
static int
lock_if_needed (struct cimg_store *s, bool *took, cimg_error_t *err)
{
  *took = false;
  if (s->lock_mode != 0)
    return 0;
  if (cimg_store_lock (s, CIMG_LOCK_SHARED, err) < 0)
    return -1;
  *took = true;
  return 0;
}

/* GOARCH of this machine, as image configs and platform descriptors spell it. */
static const char *
host_arch (void)
{
  static const struct
  {
    const char *machine, *arch;
  } map[] = {
    { "x86_64", "amd64" },  { "amd64", "amd64" },
    { "aarch64", "arm64" }, { "arm64", "arm64" },
    { "i386", "386" },      { "i486", "386" },
    { "i586", "386" },      { "i686", "386" },
    { "armv6l", "arm" },    { "armv7l", "arm" },
    { "armv8l", "arm" },    { "ppc64le", "ppc64le" },
    { "s390x", "s390x" },   { "riscv64", "riscv64" },
    { "mips64", "mips64" }, { "loongarch64", "loong64" },
  };
  struct utsname u;
  if (uname (&u) == 0)
    for (size_t i = 0; i < ARRAY_SIZE (map); i++)
      if (strcmp (u.machine, map[i].machine) == 0)
        return map[i].arch;
#if defined(__aarch64__)
  return "arm64";
#else
  return "amd64";
#endif
}

static void
now_rfc3339 (char *out, size_t n)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  cimg_time_rfc3339 ((int64_t)ts.tv_sec, ts.tv_nsec, out, n);
}

/* Dump JSON compactly, keys in insertion order (what Docker's encoder gives for its structs). */
static char *
json_bytes (json_t *j, size_t *len)
{
  char *s = json_dumps (j, JSON_COMPACT);
  if (s == NULL)
    abort (); /* jansson fails only on allocation here */
  *len = strlen (s);
  return s;
}

/* ================================================================ import */

/* Push the fd's bytes into the sink, decompressed by libarchive's filters (gzip, bzip2, xz,
   lzma, zstd — what docker import accepts; the sink's own inflater knows only gzip and zstd).
   The layer is therefore kept as its plain tar, whose digest is its diff_id, as Docker keeps an
   imported layer. */
static int
pump_decompressed (int fd, struct cimg_layer_sink *k, cimg_error_t *err)
{
  struct archive *a = archive_read_new ();
  if (a == NULL)
    abort ();
  archive_read_support_filter_gzip (a);
  archive_read_support_filter_bzip2 (a);
  archive_read_support_filter_xz (a);
  archive_read_support_filter_lzma (a);
  archive_read_support_filter_zstd (a);
  archive_read_support_format_raw (a);
  archive_read_support_format_empty (a);
  int rc = 0;
  struct archive_entry *e;
  cleanup_free char *buf = xmalloc (COPY_CHUNK);
  if (archive_read_open_fd (a, fd, 64 * 1024) < ARCHIVE_WARN)
    rc = cimg_error_set (err, EIO, "read input: %s", archive_error_string (a));
  else
    {
      int r = archive_read_next_header (a, &e);
      if (r == ARCHIVE_EOF)
        rc = cimg_error_set (err, EINVAL, "empty input");
      else if (r < ARCHIVE_WARN)
        rc = cimg_error_set (err, EIO, "read input: %s", archive_error_string (a));
      while (rc == 0)
        {
          la_ssize_t n = archive_read_data (a, buf, COPY_CHUNK);
          if (n == 0)
            break;
          if (n < 0)
            rc = cimg_error_set (err, EIO, "read input: %s", archive_error_string (a));
          else
            rc = cimg_layer_sink_write (k, buf, (size_t)n, err);
        }
    }
  archive_read_free (a);
  return rc;
}

static int
do_import (struct cimg_store *s, int fd, const char *tag, const char *message, json_t *container,
           char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  /* Everything that can be refused without reading the input is refused first. */
  if (tag != NULL)
    {
      cleanup_ref struct cimg_ref *r = cimg_ref_parse_tag (tag, err);
      if (r == NULL)
        return -1;
    }
  if (container != NULL && !json_is_object (container))
    return cimg_error_set (err, EINVAL, "import: the container config is not an object");
  cleanup_json json_t *cc = container ? json_deep_copy (container) : json_object ();
  /* Without a PATH the runtime's exec would find nothing; Docker's import gives the same
     default, and a PATH set by --change wins. */
  bool has_path = false;
  size_t i;
  json_t *v;
  json_array_foreach (json_object_get (cc, "Env"), i, v)
  {
    const char *e = json_string_value (v);
    if (e && cimg_str_has_prefix (e, "PATH="))
      has_path = true;
  }
  if (!has_path)
    {
      json_t *env = json_object_get (cc, "Env");
      if (!json_is_array (env))
        {
          env = json_array ();
          json_object_set_new (cc, "Env", env);
        }
      json_array_insert_new (env, 0, json_string (DEFAULT_PATH));
    }

  struct cimg_layer_sink *k = cimg_layer_sink_new (s, NULL, CIMG_SINK_KEEP_BLOB, err);
  if (k == NULL)
    return -1;
  struct cimg_layer_info info;
  int rc = pump_decompressed (fd, k, err);
  if (rc == 0)
    rc = cimg_layer_sink_finish (k, NULL, NULL, &info, err);
  cimg_layer_sink_free (k);
  if (rc < 0)
    return -1;

  char created[64];
  now_rfc3339 (created, sizeof created);
  cleanup_free char *comment
      = message && *message ? xstrdup (message) : xstrdup ("Imported from -");
  cleanup_json json_t *config = json_pack (
      "{s:s, s:O, s:s, s:[{s:s, s:s, s:s}], s:s, s:{s:s, s:[s]}}", "architecture", host_arch (),
      "config", cc, "created", created, "history", "created", created, "created_by", "", "comment",
      comment, "os", "linux", "rootfs", "type", "layers", "diff_ids", info.diff_id);
  if (config == NULL)
    return cimg_error_set (err, EINVAL, "import: cannot encode the image config");
  size_t clen;
  cleanup_free char *cbytes = json_bytes (config, &clen);

  struct cimg_image_layer layer;
  memset (&layer, 0, sizeof layer);
  memcpy (layer.chain_id, info.chain_id, sizeof layer.chain_id);
  memcpy (layer.diff_id, info.diff_id, sizeof layer.diff_id);
  memcpy (layer.digest, info.digest, sizeof layer.digest);
  /* The kept blob is the plain tar (see pump_decompressed); the generated manifest is Docker
     schema2, so its media type is Docker's. */
  snprintf (layer.media_type, sizeof layer.media_type, "%s", MT_DOCKER_LAYER_TAR);
  layer.blob_size = info.blob_size;
  layer.size = info.size;
  char id[CIMG_DIGEST_BUFSIZE];
  /* The image and its tag in one index update: a kill never leaves the image untagged. */
  cleanup_image_batch struct cimg_image_batch *batch = cimg_image_batch_new (s);
  if (cimg_image_batch_add (batch, cbytes, clen, NULL, 0, &layer, 1, NULL, NULL, id, err) < 0
      || (tag != NULL && cimg_image_batch_tag (batch, id, tag, err) < 0)
      || cimg_image_batch_commit (batch, err) < 0)
    return -1;
  if (id_out)
    memcpy (id_out, id, CIMG_DIGEST_BUFSIZE);
  return 0;
}

int
cimg_store_import (struct cimg_store *s, int fd, const char *tag, const char *message,
                   json_t *config, char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  bool took;
  if (lock_if_needed (s, &took, err) < 0)
    return -1;
  int rc = do_import (s, fd, tag, message, config, id_out, err);
  if (took)
    cimg_store_unlock (s);
  return rc;
}

/* ================================================================ save */

/* The archive's bytes go through this callback rather than archive_write_open_fd so that a
   failed save can stop the output: libarchive's free would otherwise append the end-of-archive
   marker and turn a partial save into a tar that reads as complete. */
struct out
{
  int fd;
  bool discard;
};

static la_ssize_t
out_write (struct archive *a, void *data, const void *buf, size_t len)
{
  struct out *o = data;
  if (o->discard)
    return (la_ssize_t)len;
  if (cimg_write_all (o->fd, buf, len) < 0)
    {
      archive_set_error (a, errno, "write: %s", strerror (errno));
      return -1;
    }
  return (la_ssize_t)len;
}

struct save_image
{
  struct cimg_image *img;
  char **tags; /* full references, in the order given */
};

struct save_ctx
{
  struct cimg_store *s;
  struct archive *a;
  char **written;    /* digests of the blobs already in the tar */
  json_t *sizes;     /* layer diff_id -> size of its tar, for layers already written */
  json_t *manifests; /* manifest.json */
  json_t *index;     /* the OCI index's "manifests" */
  json_t *repos;     /* repositories */
};

static int
write_header (struct archive *a, const char *path, mode_t type, int64_t size, cimg_error_t *err)
{
  cleanup_entry struct archive_entry *e = archive_entry_new ();
  if (e == NULL)
    abort ();
  archive_entry_set_pathname (e, path);
  archive_entry_set_filetype (e, type);
  archive_entry_set_perm (e, type == AE_IFDIR ? 0755 : 0644);
  archive_entry_set_size (e, type == AE_IFREG ? size : 0);
  archive_entry_set_uid (e, 0);
  archive_entry_set_gid (e, 0);
  /* Fixed times: saving the same images twice gives the same bytes. */
  archive_entry_set_mtime (e, 0, 0);
  if (archive_write_header (a, e) != ARCHIVE_OK)
    return cimg_error_set (err, archive_errno (a) > 0 ? archive_errno (a) : EIO, "write %s: %s",
                           path, archive_error_string (a));
  return 0;
}

static int
write_data (struct archive *a, const char *path, const void *buf, size_t len, cimg_error_t *err)
{
  if (len > 0 && archive_write_data (a, buf, len) != (la_ssize_t)len)
    return cimg_error_set (err, archive_errno (a) > 0 ? archive_errno (a) : EIO, "write %s: %s",
                           path, archive_error_string (a));
  return 0;
}

static int
write_file (struct archive *a, const char *path, const void *buf, size_t len, cimg_error_t *err)
{
  if (write_header (a, path, AE_IFREG, (int64_t)len, err) < 0)
    return -1;
  return write_data (a, path, buf, len, err);
}

static int
write_json_file (struct archive *a, const char *path, json_t *j, cimg_error_t *err)
{
  size_t len;
  cleanup_free char *s = json_bytes (j, &len);
  return write_file (a, path, s, len, err);
}

static int
write_blob_mem (struct save_ctx *c, const char *digest, const void *buf, size_t len,
                cimg_error_t *err)
{
  if (cimg_strv_contains (c->written, digest))
    return 0;
  cleanup_free char *path = cimg_blob_path (digest);
  if (write_file (c->a, path, buf, len, err) < 0)
    return -1;
  cimg_strv_append (&c->written, digest);
  return 0;
}

/* An anonymous file in the store's ingest/ (same filesystem as the layers, not /tmp which may
   be a small tmpfs) that disappears with its last fd, whatever happens to this process. */
static int
open_temp (struct cimg_store *s, cimg_error_t *err)
{
  int dirfd = cimg_store_dirfd (s);
  int fd = openat (dirfd, "ingest", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd >= 0)
    return fd;
  if (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL)
    return cimg_error_sys (err, "create temporary file in %s/ingest", cimg_store_root (s));
  /* No O_TMPFILE on this filesystem: a named file, unlinked at once. */
  char hex[65];
  cimg_random_hex64 (hex);
  cleanup_free char *name = xasprintf ("ingest/save-%.24s", hex);
  fd = openat (dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return cimg_error_sys (err, "create %s/%s", cimg_store_root (s), name);
  unlinkat (dirfd, name, 0);
  return fd;
}

/* The uncompressed tar of one layer, written as blobs/sha256/<diff_id>: the same file is the
   docker-archive layer (whose digest must be the diff_id) and the OCI layer. */
static int
write_layer (struct save_ctx *c, const char *chain_id, const char *want, int64_t *size,
             cimg_error_t *err)
{
  json_t *known = json_object_get (c->sizes, want);
  if (json_is_integer (known))
    {
      *size = json_integer_value (known);
      return 0;
    }
  cleanup_close int fd = open_temp (c->s, err);
  if (fd < 0)
    return -1;
  char diff_id[CIMG_DIGEST_BUFSIZE];
  if (cimg_store_layer_tar (c->s, chain_id, fd, diff_id, err) < 0)
    return -1;
  if (strcmp (diff_id, want) != 0)
    return cimg_error_set (err, EIO, "layer %s: its tar has digest %s, not the diff_id %s",
                           chain_id, diff_id, want);
  struct stat st;
  if (fstat (fd, &st) < 0 || lseek (fd, 0, SEEK_SET) < 0)
    return cimg_error_sys (err, "layer %s: temporary file", chain_id);
  *size = st.st_size;
  cleanup_free char *path = cimg_blob_path (diff_id);
  if (write_header (c->a, path, AE_IFREG, st.st_size, err) < 0)
    return -1;
  cleanup_free char *buf = xmalloc (COPY_CHUNK);
  int64_t left = st.st_size;
  while (left > 0)
    {
      ssize_t n = read (fd, buf, left < COPY_CHUNK ? (size_t)left : COPY_CHUNK);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return cimg_error_sys (err, "layer %s: read temporary file", chain_id);
      if (n == 0)
        return cimg_error_set (err, EIO, "layer %s: temporary file shrank", chain_id);
      if (write_data (c->a, path, buf, (size_t)n, err) < 0)
        return -1;
      left -= n;
    }
  cimg_strv_append (&c->written, diff_id);
  json_object_set_new (c->sizes, diff_id, json_integer (st.st_size));
  return 0;
}

static int
save_one (struct save_ctx *c, struct save_image *si, cimg_error_t *err)
{
  struct cimg_image *img = si->img;
  cleanup_free char *config = NULL;
  size_t clen = 0;
  if (cimg_store_read_blob (c->s, img->id, CIMG_MAX_METADATA, &config, &clen, err) < 0)
    return -1;
  cleanup_json json_t *cj = cimg_json_parse (config, clen, err);
  if (cj == NULL)
    return cimg_error_wrap (err, "config %s", img->id);
  json_t *diff_ids = json_object_get (json_object_get (cj, "rootfs"), "diff_ids");
  size_t nd = json_is_array (diff_ids) ? json_array_size (diff_ids) : 0;
  if (nd != img->n_layers)
    return cimg_error_set (err, EIO, "config %s lists %zu diff_ids, the image record %zu layers",
                           img->id, nd, img->n_layers);
  if (write_blob_mem (c, img->id, config, clen, err) < 0)
    return -1;

  cleanup_json json_t *layers = json_array ();
  cleanup_json json_t *paths = json_array ();
  for (size_t i = 0; i < img->n_layers; i++)
    {
      const char *d = json_string_value (json_array_get (diff_ids, i));
      if (d == NULL || !cimg_digest_valid (d) || strcmp (d, img->layers[i].diff_id) != 0)
        return cimg_error_set (err, EIO, "image %s: layer %zu: config and record disagree", img->id,
                               i + 1);
      int64_t size = 0;
      if (write_layer (c, img->layers[i].chain_id, d, &size, err) < 0)
        return cimg_error_wrap (err, "layer %zu (%s)", i + 1, d);
      json_array_append_new (layers, json_pack ("{s:s, s:s, s:I}", "mediaType", MT_OCI_LAYER_TAR,
                                                "digest", d, "size", (json_int_t)size));
      cleanup_free char *path = cimg_blob_path (d);
      json_array_append_new (paths, json_string (path));
    }

  cleanup_json json_t *manifest
      = json_pack ("{s:i, s:s, s:{s:s, s:s, s:I}, s:O}", "schemaVersion", 2, "mediaType",
                   MT_OCI_MANIFEST, "config", "mediaType", MT_OCI_CONFIG, "digest", img->id, "size",
                   (json_int_t)clen, "layers", layers);
  size_t mlen;
  cleanup_free char *mbytes = json_bytes (manifest, &mlen);
  char mdigest[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (mbytes, mlen, mdigest);
  if (write_blob_mem (c, mdigest, mbytes, mlen, err) < 0)
    return -1;

  cleanup_json json_t *familiar = json_array ();
  for (size_t t = 0; si->tags && si->tags[t]; t++)
    {
      cleanup_ref struct cimg_ref *r = cimg_ref_parse (si->tags[t], err);
      if (r == NULL || r->tag == NULL)
        return cimg_error_wrap (err, "image %s: tag", img->id);
      cleanup_free char *fs = cimg_ref_familiar_string (si->tags[t]);
      cleanup_free char *fname = cimg_ref_familiar_name (r);
      json_array_append_new (familiar, json_string (fs));
      json_object_set_new (cimg_json_object_field (c->repos, fname), r->tag,
                           json_string (cimg_digest_hex (img->id)));
      json_array_append_new (
          c->index, json_pack ("{s:s, s:s, s:I, s:{s:s, s:s}}", "mediaType", MT_OCI_MANIFEST,
                               "digest", mdigest, "size", (json_int_t)mlen, "annotations",
                               ANN_CONTAINERD_NAME, si->tags[t], ANN_REF_NAME, r->tag));
    }
  if (json_array_size (familiar) == 0)
    json_array_append_new (c->index, json_pack ("{s:s, s:s, s:I}", "mediaType", MT_OCI_MANIFEST,
                                                "digest", mdigest, "size", (json_int_t)mlen));
  cleanup_free char *cpath = cimg_blob_path (img->id);
  /* Docker writes null for an image saved without a tag. */
  json_array_append_new (c->manifests,
                         json_pack ("{s:s, s:O, s:O}", "Config", cpath, "RepoTags",
                                    json_array_size (familiar) ? familiar : json_null (), "Layers",
                                    paths));
  return 0;
}

/* The tags `docker save NAME` includes: NAME:TAG gives that tag, a bare repository name gives
   all of the image's tags in that repository, an ID or a digest reference gives none. */
static void
tags_for_name (const char *name, const struct cimg_image *img, char ***tags)
{
  cleanup_ref struct cimg_ref *r = cimg_ref_parse_name (name, NULL);
  if (r == NULL || r->digest != NULL)
    return;
  if (r->tag != NULL)
    {
      cleanup_free char *full = cimg_ref_string (r);
      if (cimg_strv_contains (img->repo_tags, full) && !cimg_strv_contains (*tags, full))
        cimg_strv_append (tags, full);
      return;
    }
  cleanup_free char *rname = cimg_ref_name (r);
  for (size_t i = 0; img->repo_tags && img->repo_tags[i]; i++)
    {
      cleanup_ref struct cimg_ref *t = cimg_ref_parse_name (img->repo_tags[i], NULL);
      if (t == NULL)
        continue;
      cleanup_free char *tname = cimg_ref_name (t);
      if (strcmp (tname, rname) == 0 && !cimg_strv_contains (*tags, img->repo_tags[i]))
        cimg_strv_append (tags, img->repo_tags[i]);
    }
}

static void
save_images_free (struct save_image *v, size_t n)
{
  for (size_t i = 0; i < n; i++)
    {
      cimg_image_free (v[i].img);
      cimg_strv_free (v[i].tags);
    }
  free (v);
}

static int
do_save (struct cimg_store *s, char *const *names, struct archive *a, cimg_error_t *err)
{
  struct save_image *imgs = NULL;
  size_t n = 0;
  int rc = -1;
  struct save_ctx c = { .s = s, .a = a };
  c.manifests = json_array ();
  c.index = json_array ();
  c.repos = json_object ();
  c.sizes = json_object ();
  json_t *index = NULL, *layout = NULL;

  for (size_t i = 0; names[i]; i++)
    {
      struct cimg_image *img = cimg_store_find_image (s, names[i], err);
      if (img == NULL)
        goto out;
      size_t j;
      for (j = 0; j < n; j++)
        if (strcmp (imgs[j].img->id, img->id) == 0)
          break;
      if (j == n)
        {
          imgs = xrealloc (imgs, (n + 1) * sizeof *imgs);
          imgs[n].img = img;
          imgs[n].tags = NULL;
          n++;
        }
      else
        cimg_image_free (img);
      tags_for_name (names[i], imgs[j].img, &imgs[j].tags);
    }

  if (write_header (a, "blobs/", AE_IFDIR, 0, err) < 0
      || write_header (a, "blobs/sha256/", AE_IFDIR, 0, err) < 0)
    goto out;
  for (size_t i = 0; i < n; i++)
    if (save_one (&c, &imgs[i], err) < 0)
      {
        cimg_error_wrap (err, "image %s", imgs[i].img->id);
        goto out;
      }
  index = json_pack ("{s:i, s:s, s:O}", "schemaVersion", 2, "mediaType", MT_OCI_INDEX, "manifests",
                     c.index);
  layout = json_pack ("{s:s}", "imageLayoutVersion", "1.0.0");
  if (write_json_file (a, "index.json", index, err) < 0
      || write_json_file (a, "manifest.json", c.manifests, err) < 0
      || write_json_file (a, "oci-layout", layout, err) < 0
      || write_json_file (a, "repositories", c.repos, err) < 0)
    goto out;
  if (archive_write_close (a) != ARCHIVE_OK)
    {
      cimg_error_set (err, archive_errno (a) > 0 ? archive_errno (a) : EIO, "write archive: %s",
                      archive_error_string (a));
      goto out;
    }
  rc = 0;
out:
  save_images_free (imgs, n);
  cimg_strv_free (c.written);
  json_decref (c.manifests);
  json_decref (c.index);
  json_decref (c.repos);
  json_decref (c.sizes);
  json_decref (index);
  json_decref (layout);
  return rc;
}

int
cimg_store_save (struct cimg_store *s, char *const *names, int fd, cimg_error_t *err)
{
  if (names == NULL || names[0] == NULL)
    return cimg_error_set (err, EINVAL, "save: no image named");
  struct out o = { .fd = fd, .discard = false };
  cleanup_archive_write struct archive *a = archive_write_new ();
  if (a == NULL)
    abort ();
  archive_write_set_format_pax_restricted (a);
  /* No padding of the last block: the output may be a pipe into another tool, and 10 KiB of
     zeros after the end-of-archive marker help no reader. */
  archive_write_set_bytes_in_last_block (a, 1);
  if (archive_write_open (a, &o, NULL, out_write, NULL) != ARCHIVE_OK)
    return cimg_error_set (err, EIO, "save: %s", archive_error_string (a));
  bool took;
  if (lock_if_needed (s, &took, err) < 0)
    {
      o.discard = true;
      return -1;
    }
  int rc = do_save (s, names, a, err);
  if (took)
    cimg_store_unlock (s);
  if (rc < 0)
    o.discard = true;
  return rc;
}

/* ================================================================ load */

/* The archive is read once, front to back (it may be a pipe), and its entries come in any
   order: Docker 25+ writes blobs/ before manifest.json, skopeo writes the manifest last. So
   every regular entry is first staged, hashed on the way, into a private directory
   ingest/load-<random>/<hex> — not into blobs/ — and the images are resolved once the stream
   has ended. Staging outside blobs/ is what makes "leave nothing unreferenced behind" correct:
   a blob committed to blobs/ and deleted again later could, in between, have been found by a
   concurrent pull (which skips blobs it already has) and so be lost to it; a staging
   directory belongs to this load alone, is removed whatever happens, and a killed load leaves
   only ingest/ debris that the next check --repair removes. Only what an image references
   reaches blobs/: layers through the layer sink (CIMG_SINK_KEEP_BLOB, so that save and push
   find the bytes), config and manifest through cimg_store_add_image. The price is one extra
   copy of each layer's compressed bytes. Every regular entry is staged, not only
   blobs/sha256/<hex>, <x>/layer.tar and *.json, because docker-archive writers name their
   files freely (docker: <id>/layer.tar, skopeo: <hex>.tar, go-containerregistry:
   <hex>.tar.gz and a config named sha256:<hex>): only the manifest says what matters. */

struct staged
{
  char *name; /* cleaned entry name */
  char *link; /* for a symlink or hardlink entry: the cleaned name it points at */
  char digest[CIMG_DIGEST_BUFSIZE];
  int64_t size;
};

struct load_layer
{
  char blob[CIMG_DIGEST_BUFSIZE]; /* digest of the staged layer file */
  bool verify_blob;               /* an OCI descriptor names it: check it again at finish */
  int64_t size;
  char media_type[96];
};

struct load_image
{
  char config_digest[CIMG_DIGEST_BUFSIZE];
  char *config;
  size_t config_len;
  char *manifest; /* the archive's manifest (OCI layout), or NULL: one is generated */
  size_t manifest_len;
  char **diff_ids;
  size_t n_layers;
  struct load_layer *layers;
  char **tags; /* full references */
  char id[CIMG_DIGEST_BUFSIZE];
};

struct load_ctx
{
  struct cimg_store *s;
  char *stage; /* "ingest/load-<random>" */
  int stagefd;
  struct staged *st;
  size_t n_st;
  json_t *st_index; /* name -> index in st: an archive of thousands of images has thousands of
                       entries, and a search per entry made staging quadratic */
  struct load_image *img;
  size_t n_img;
  json_t *img_index; /* config digest -> index in img, for the same reason */
  const char *arch;
};

static void
load_ctx_clear (struct load_ctx *c)
{
  if (c->stagefd >= 0)
    close (c->stagefd);
  c->stagefd = -1;
  if (c->stage)
    {
      cimg_error_t e = { 0 };
      cimg_rm_rf_at (cimg_store_dirfd (c->s), c->stage, &e);
      cimg_error_clear (&e);
      free (c->stage);
      c->stage = NULL;
    }
  for (size_t i = 0; i < c->n_st; i++)
    {
      free (c->st[i].name);
      free (c->st[i].link);
    }
  free (c->st);
  json_decref (c->st_index);
  json_decref (c->img_index);
  for (size_t i = 0; i < c->n_img; i++)
    {
      struct load_image *im = &c->img[i];
      free (im->config);
      free (im->manifest);
      cimg_strv_free (im->diff_ids);
      free (im->layers);
      cimg_strv_free (im->tags);
    }
  free (c->img);
}

/* An archive path as the path it denotes inside the archive ("./a//b/../c" -> "a/c"), dir
   being the directory a relative symlink target starts from. NULL for a name that would leave
   the archive's root or names the root itself. */
static char *
clean_name (const char *dir, const char *name)
{
  cleanup_free char *full = (dir != NULL && *dir != '\0' && name[0] != '/')
                                ? xasprintf ("%s/%s", dir, name)
                                : xstrdup (name);
  cleanup_free char *out = xmalloc (strlen (full) + 1);
  size_t len = 0;
  char *save = NULL;
  for (char *c = strtok_r (full, "/", &save); c != NULL; c = strtok_r (NULL, "/", &save))
    {
      if (strcmp (c, ".") == 0)
        continue;
      if (strcmp (c, "..") == 0)
        {
          if (len == 0)
            return NULL;
          char *slash = memrchr (out, '/', len);
          len = slash ? (size_t)(slash - out) : 0;
          continue;
        }
      if (len > 0)
        out[len++] = '/';
      size_t cl = strlen (c);
      memcpy (out + len, c, cl);
      len += cl;
    }
  if (len == 0)
    return NULL;
  out[len] = '\0';
  return steal_pointer (&out);
}

static bool
is_metadata_name (const char *name)
{
  return strcmp (name, "manifest.json") == 0 || strcmp (name, "index.json") == 0
         || strcmp (name, "oci-layout") == 0 || strcmp (name, "repositories") == 0;
}

/* The digest a name of the form blobs/sha256/<64 hex> promises, else false. */
static bool
blob_name_digest (const char *name, char out[CIMG_DIGEST_BUFSIZE])
{
  if (!cimg_str_has_prefix (name, "blobs/sha256/"))
    return false;
  const char *hex = name + strlen ("blobs/sha256/");
  if (!cimg_hex64_valid (hex))
    return false;
  snprintf (out, CIMG_DIGEST_BUFSIZE, "sha256:%s", hex);
  return true;
}

static struct staged *
find_staged (struct load_ctx *c, const char *name)
{
  json_t *i = c->st_index ? json_object_get (c->st_index, name) : NULL;
  return i ? &c->st[json_integer_value (i)] : NULL;
}

static struct staged *
add_staged (struct load_ctx *c, const char *name)
{
  /* A later entry of the same name replaces the earlier one, as extracting the tar would. */
  struct staged *st = find_staged (c, name);
  if (st != NULL)
    {
      free (st->link);
      st->link = NULL;
      return st;
    }
  if (c->st_index == NULL)
    c->st_index = json_object ();
  json_object_set_new_nocheck (c->st_index, name, json_integer ((json_int_t)c->n_st));
  c->st = xrealloc (c->st, (c->n_st + 1) * sizeof *c->st);
  st = &c->st[c->n_st++];
  memset (st, 0, sizeof *st);
  st->name = xstrdup (name);
  return st;
}

/* The staged file an archive path names, following links: Docker before 25 saves a layer that
   two images share once and links the second <id>/layer.tar to the first. */
static const struct staged *
lookup (struct load_ctx *c, const char *name)
{
  const char *cur = name;
  for (int hops = 0; hops < 16; hops++)
    {
      const struct staged *st = find_staged (c, cur);
      if (st == NULL || st->link == NULL)
        return st;
      cur = st->link;
    }
  return NULL;
}

static int
stage_entry (struct load_ctx *c, struct archive *a, const char *name, int64_t declared,
             cimg_error_t *err)
{
  bool meta = is_metadata_name (name);
  if (meta && declared > CIMG_MAX_METADATA)
    return cimg_error_set (err, EFBIG, "entry \"%s\": larger than %d bytes", name,
                           CIMG_MAX_METADATA);
  /* An entry larger than a layer may be cannot be a layer or its blob; without a cap a sparse
     entry (its holes cost no archive bytes) would be staged as terabytes of zeros. */
  int64_t max = 0;
  if (!meta && cimg_layer_max_size (&max, err) < 0)
    return -1;
  if (max > 0 && declared > max)
    return cimg_error_set (err, EFBIG,
                           "entry \"%s\": larger than the limit of %lld bytes (max-layer-size "
                           "in the cimg config)",
                           name, (long long)max);
  cleanup_close int fd
      = openat (c->stagefd, "partial", O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return cimg_error_sys (err, "create %s/%s/partial", cimg_store_root (c->s), c->stage);
  cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
  cleanup_free char *buf = xmalloc (COPY_CHUNK);
  int64_t size = 0;
  for (;;)
    {
      /* archive_read_data (not _block) so that sparse entries come with their holes filled. */
      la_ssize_t n = archive_read_data (a, buf, COPY_CHUNK);
      if (n == 0)
        break;
      if (n < 0)
        return cimg_error_set (err, EIO, "entry \"%s\": %s", name, archive_error_string (a));
      size += n;
      if (max > 0 && size > max)
        return cimg_error_set (err, EFBIG,
                               "entry \"%s\": larger than the limit of %lld bytes "
                               "(max-layer-size in the cimg config)",
                               name, (long long)max);
      if (meta && size > CIMG_MAX_METADATA)
        return cimg_error_set (err, EFBIG, "entry \"%s\": larger than %d bytes", name,
                               CIMG_MAX_METADATA);
      cimg_sha256_update (h, buf, (size_t)n);
      if (cimg_write_all (fd, buf, (size_t)n) < 0)
        return cimg_error_sys (err, "entry \"%s\": stage", name);
    }
  char digest[CIMG_DIGEST_BUFSIZE], want[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_final (h, digest);
  if (blob_name_digest (name, want) && strcmp (want, digest) != 0)
    return cimg_error_set (err, EINVAL, "entry \"%s\": digest mismatch (got %s)", name, digest);
  if (renameat (c->stagefd, "partial", c->stagefd, cimg_digest_hex (digest)) < 0)
    return cimg_error_sys (err, "entry \"%s\": stage", name);
  struct staged *st = add_staged (c, name);
  memcpy (st->digest, digest, sizeof st->digest);
  st->size = size;
  return 0;
}

static int
read_archive (struct load_ctx *c, int fd, cimg_error_t *err)
{
  cleanup_archive_read struct archive *a = cimg_archive_read_fd (fd, err);
  if (a == NULL)
    return cimg_error_wrap (err, "read archive");
  for (;;)
    {
      struct archive_entry *e;
      int r = archive_read_next_header (a, &e);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        return cimg_error_set (err, EIO, "read archive: %s", archive_error_string (a));
      const char *raw = archive_entry_pathname (e);
      if (raw == NULL)
        continue;
      /* Nothing is extracted; a name outside the root simply names nothing we look up. */
      cleanup_free char *name = clean_name (NULL, raw);
      if (name == NULL)
        continue;
      const char *hardlink = archive_entry_hardlink (e);
      mode_t type = archive_entry_filetype (e);
      if (hardlink != NULL || type == AE_IFLNK)
        {
          cleanup_free char *dir = xstrdup (name);
          char *slash = strrchr (dir, '/');
          if (slash)
            *slash = '\0';
          else
            dir[0] = '\0';
          char *target
              = hardlink
                    ? clean_name (NULL, hardlink)
                    : clean_name (dir, archive_entry_symlink (e) ? archive_entry_symlink (e) : "");
          if (target == NULL)
            continue;
          struct staged *st = add_staged (c, name);
          st->link = target;
          continue;
        }
      if (type != AE_IFREG)
        continue;
      if (stage_entry (c, a, name, archive_entry_size_is_set (e) ? archive_entry_size (e) : 0, err)
          < 0)
        return -1;
    }
  return 0;
}

/* Read a staged metadata file (manifest, config, index) whole. */
static int
read_staged (struct load_ctx *c, const struct staged *st, const char *what, char **out, size_t *len,
             cimg_error_t *err)
{
  if (st->size > CIMG_MAX_METADATA)
    return cimg_error_set (err, EFBIG, "%s: larger than %d bytes", what, CIMG_MAX_METADATA);
  if (cimg_read_file_at (c->stagefd, cimg_digest_hex (st->digest), CIMG_MAX_METADATA, out, len, err)
      < 0)
    return cimg_error_wrap (err, "%s", what);
  return 0;
}

static json_t *
parse_json_any (const char *buf, size_t len, const char *what, cimg_error_t *err)
{
  json_error_t je;
  json_t *j = json_loadb (buf, len, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL)
    cimg_error_set (err, EINVAL, "%s: invalid JSON at line %d column %d: %s", what, je.line,
                    je.column, je.text);
  return j;
}

static json_t *
read_staged_json (struct load_ctx *c, const struct staged *st, const char *what, char **bytes,
                  size_t *blen, cimg_error_t *err)
{
  cleanup_free char *buf = NULL;
  size_t len = 0;
  if (read_staged (c, st, what, &buf, &len, err) < 0)
    return NULL;
  json_t *j = parse_json_any (buf, len, what, err);
  if (j != NULL && bytes != NULL)
    {
      *bytes = steal_pointer (&buf);
      *blen = len;
    }
  return j;
}

/* The config's rootfs.diff_ids, validated. */
static int
config_diff_ids (const char *bytes, size_t len, const char *what, char ***out, cimg_error_t *err)
{
  cleanup_json json_t *j = cimg_json_parse (bytes, len, err);
  if (j == NULL)
    return cimg_error_wrap (err, "%s", what);
  json_t *rootfs = json_object_get (j, "rootfs");
  const char *type = cimg_json_str (rootfs, "type");
  if (type == NULL || strcmp (type, "layers") != 0)
    return cimg_error_set (err, EINVAL, "%s: rootfs.type is not \"layers\"", what);
  json_t *ids = json_object_get (rootfs, "diff_ids");
  if (!json_is_array (ids) && !json_is_null (ids) && ids != NULL)
    return cimg_error_set (err, EINVAL, "%s: rootfs.diff_ids is not an array", what);
  cleanup_strv char **v = xzalloc (sizeof (char *));
  size_t i;
  json_t *d;
  json_array_foreach (ids, i, d)
  {
    const char *s = json_string_value (d);
    if (s == NULL || !cimg_digest_valid (s))
      return cimg_error_set (err, EINVAL, "%s: rootfs.diff_ids[%zu] is not a sha256 digest", what,
                             i);
    cimg_strv_append (&v, s);
  }
  *out = steal_pointer (&v);
  return 0;
}

static void
sniff_media_type (struct load_ctx *c, struct load_layer *l)
{
  unsigned char head[4] = { 0 };
  cleanup_close int fd = openat (c->stagefd, cimg_digest_hex (l->blob), O_RDONLY | O_CLOEXEC);
  ssize_t n = fd >= 0 ? pread (fd, head, sizeof head, 0) : -1;
  const char *mt = MT_DOCKER_LAYER_TAR;
  if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b)
    mt = MT_DOCKER_LAYER_GZIP;
  else if (n == 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd)
    mt = MT_OCI_LAYER_ZSTD;
  snprintf (l->media_type, sizeof l->media_type, "%s", mt);
}

static int
add_tag (char ***tags, const char *s, const char *what, cimg_error_t *err)
{
  cleanup_ref struct cimg_ref *r = cimg_ref_parse_tag (s, err);
  if (r == NULL)
    return cimg_error_wrap (err, "%s", what);
  cleanup_free char *full = cimg_ref_string (r);
  if (!cimg_strv_contains (*tags, full))
    cimg_strv_append (tags, full);
  return 0;
}

/* Add an image to the plan, or merge its tags into the same image met before (Docker 25 lists
   an image in both manifest.json and index.json; an index may name one manifest per tag). */
static struct load_image *
plan_image (struct load_ctx *c, const char *config_digest, bool *fresh)
{
  json_t *i = c->img_index ? json_object_get (c->img_index, config_digest) : NULL;
  if (i != NULL)
    {
      *fresh = false;
      return &c->img[json_integer_value (i)];
    }
  if (c->img_index == NULL)
    c->img_index = json_object ();
  json_object_set_new_nocheck (c->img_index, config_digest, json_integer ((json_int_t)c->n_img));
  c->img = xrealloc (c->img, (c->n_img + 1) * sizeof *c->img);
  struct load_image *im = &c->img[c->n_img++];
  memset (im, 0, sizeof *im);
  snprintf (im->config_digest, sizeof im->config_digest, "%s", config_digest);
  *fresh = true;
  return im;
}

static int
resolve_docker (struct load_ctx *c, const struct staged *mst, cimg_error_t *err)
{
  cleanup_json json_t *m = read_staged_json (c, mst, "manifest.json", NULL, NULL, err);
  if (m == NULL)
    return -1;
  if (!json_is_array (m))
    return cimg_error_set (err, EINVAL, "manifest.json: not an array");
  size_t i;
  json_t *item;
  json_array_foreach (m, i, item)
  {
    cleanup_free char *what = xasprintf ("manifest.json[%zu]", i);
    const char *cpath = cimg_json_str (item, "Config");
    json_t *layers = json_object_get (item, "Layers");
    json_t *tags = json_object_get (item, "RepoTags");
    if (cpath == NULL || !json_is_array (layers))
      return cimg_error_set (err, EINVAL, "%s: no Config or Layers", what);
    cleanup_free char *cname = clean_name (NULL, cpath);
    const struct staged *cst = cname ? lookup (c, cname) : NULL;
    if (cst == NULL)
      return cimg_error_set (err, ENOENT, "%s: config \"%s\": not in the archive", what, cpath);
    cleanup_free char *cwhat = xasprintf ("config \"%s\"", cpath);
    cleanup_free char *config = NULL;
    size_t clen = 0;
    if (read_staged (c, cst, cwhat, &config, &clen, err) < 0)
      return -1;
    cleanup_strv char **diff_ids = NULL;
    if (config_diff_ids (config, clen, cwhat, &diff_ids, err) < 0)
      return -1;
    size_t nd = cimg_strv_len (diff_ids);
    if (json_array_size (layers) != nd)
      return cimg_error_set (err, EINVAL, "%s: %zu layers, but the config lists %zu diff_ids", what,
                             json_array_size (layers), nd);
    bool fresh;
    struct load_image *im = plan_image (c, cst->digest, &fresh);
    if (!json_is_null (tags) && tags != NULL && !json_is_array (tags))
      return cimg_error_set (err, EINVAL, "%s: RepoTags is not an array", what);
    size_t t;
    json_t *tv;
    json_array_foreach (tags, t, tv)
    {
      if (!json_is_string (tv))
        return cimg_error_set (err, EINVAL, "%s: RepoTags[%zu] is not a string", what, t);
      if (add_tag (&im->tags, json_string_value (tv), what, err) < 0)
        return -1;
    }
    if (!fresh)
      continue;
    im->config = steal_pointer (&config);
    im->config_len = clen;
    im->diff_ids = steal_pointer (&diff_ids);
    im->n_layers = nd;
    im->layers = xzalloc ((nd ? nd : 1) * sizeof *im->layers);
    for (size_t l = 0; l < nd; l++)
      {
        const char *lpath = json_string_value (json_array_get (layers, l));
        if (lpath == NULL)
          return cimg_error_set (err, EINVAL, "%s: Layers[%zu] is not a string", what, l);
        cleanup_free char *lname = clean_name (NULL, lpath);
        const struct staged *lst = lname ? lookup (c, lname) : NULL;
        if (lst == NULL)
          return cimg_error_set (err, ENOENT, "layer %zu (\"%s\"): not in the archive", l + 1,
                                 lpath);
        struct load_layer *ll = &im->layers[l];
        memcpy (ll->blob, lst->digest, sizeof ll->blob);
        ll->size = lst->size;
        sniff_media_type (c, ll);
      }
  }
  return 0;
}

static bool
is_layer_media_type (const char *mt)
{
  static const char *const ok[] = {
    MT_OCI_LAYER_TAR,
    MT_OCI_LAYER_GZIP,
    MT_OCI_LAYER_ZSTD,
    MT_DOCKER_LAYER_TAR,
    MT_DOCKER_LAYER_GZIP,
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
  };
  for (size_t i = 0; i < ARRAY_SIZE (ok); i++)
    if (strcmp (mt, ok[i]) == 0)
      return true;
  return false;
}

/* The staged blob a descriptor points at: a valid digest, present under blobs/sha256/, of the
   size the descriptor gives. */
static const struct staged *
descriptor_blob (struct load_ctx *c, json_t *desc, const char *what, cimg_error_t *err)
{
  const char *digest = cimg_json_str (desc, "digest");
  if (digest == NULL || !cimg_digest_valid (digest))
    {
      cimg_error_set (err, EINVAL, "%s: invalid digest \"%s\"", what, digest ? digest : "");
      return NULL;
    }
  cleanup_free char *path = cimg_blob_path (digest);
  const struct staged *st = lookup (c, path);
  if (st == NULL)
    {
      cimg_error_set (err, ENOENT, "%s (%s): blob not in the archive", what, digest);
      return NULL;
    }
  json_t *size = json_object_get (desc, "size");
  if (json_is_integer (size) && json_integer_value (size) != st->size)
    {
      cimg_error_set (err, EINVAL, "%s (%s): size mismatch (got %lld, expected %lld)", what, digest,
                      (long long)st->size, (long long)json_integer_value (size));
      return NULL;
    }
  return st;
}

/* Tags of an OCI index entry: io.containerd.image.name holds a full name; the OCI ref.name is
   usually a bare tag ("latest"), which names no repository, so it tags only when it is itself
   a full reference (older containerd wrote those). */
static int
oci_tags (json_t *desc, char ***tags, const char *what, cimg_error_t *err)
{
  json_t *ann = json_object_get (desc, "annotations");
  const char *full = cimg_json_str (ann, ANN_CONTAINERD_NAME);
  const char *ref = cimg_json_str (ann, ANN_REF_NAME);
  if (full != NULL && *full != '\0')
    {
      cleanup_ref struct cimg_ref *r = cimg_ref_parse (full, err);
      if (r == NULL)
        return cimg_error_wrap (err, "%s: annotation %s", what, ANN_CONTAINERD_NAME);
      if (r->tag == NULL)
        return 0; /* name@digest: nothing to tag */
      return add_tag (tags, full, what, err);
    }
  if (ref != NULL && (strchr (ref, '/') != NULL || strchr (ref, ':') != NULL))
    {
      cleanup_ref struct cimg_ref *r = cimg_ref_parse (ref, err);
      if (r == NULL)
        return cimg_error_wrap (err, "%s: annotation %s", what, ANN_REF_NAME);
      if (r->tag == NULL)
        return 0;
      return add_tag (tags, ref, what, err);
    }
  return 0;
}

static int
resolve_manifest (struct load_ctx *c, json_t *desc, json_t *names_from, const char *what,
                  cimg_error_t *err)
{
  const struct staged *mst = descriptor_blob (c, desc, what, err);
  if (mst == NULL)
    return -1;
  cleanup_free char *mwhat = xasprintf ("manifest %s", mst->digest);
  cleanup_free char *mbytes = NULL;
  size_t mlen = 0;
  cleanup_json json_t *m = read_staged_json (c, mst, mwhat, &mbytes, &mlen, err);
  if (m == NULL)
    return -1;
  if (!json_is_object (m) || cimg_json_int (m, "schemaVersion") != 2)
    return cimg_error_set (err, EINVAL, "%s: not a schema 2 image manifest", mwhat);
  const char *mt = cimg_json_str (m, "mediaType");
  if (mt != NULL && strcmp (mt, MT_OCI_MANIFEST) != 0 && strcmp (mt, MT_DOCKER_MANIFEST) != 0)
    return cimg_error_set (err, EINVAL, "%s: unsupported media type \"%s\"", mwhat, mt);

  json_t *cdesc = json_object_get (m, "config");
  const char *cmt = cimg_json_str (cdesc, "mediaType");
  if (cmt == NULL || (strcmp (cmt, MT_OCI_CONFIG) != 0 && strcmp (cmt, MT_DOCKER_CONFIG) != 0))
    return cimg_error_set (err, EINVAL, "%s: unsupported config media type \"%s\"", mwhat,
                           cmt ? cmt : "");
  cleanup_free char *cwhat = xasprintf ("%s: config", mwhat);
  const struct staged *cst = descriptor_blob (c, cdesc, cwhat, err);
  if (cst == NULL)
    return -1;
  cleanup_free char *config = NULL;
  size_t clen = 0;
  if (read_staged (c, cst, cwhat, &config, &clen, err) < 0)
    return -1;
  cleanup_strv char **diff_ids = NULL;
  if (config_diff_ids (config, clen, cwhat, &diff_ids, err) < 0)
    return -1;
  json_t *layers = json_object_get (m, "layers");
  size_t nd = cimg_strv_len (diff_ids);
  if (!json_is_array (layers) || json_array_size (layers) != nd)
    return cimg_error_set (err, EINVAL, "%s: %zu layers, but the config lists %zu diff_ids", mwhat,
                           json_array_size (layers), nd);

  bool fresh;
  struct load_image *im = plan_image (c, cst->digest, &fresh);
  if (oci_tags (names_from, &im->tags, what, err) < 0)
    return -1;
  if (!fresh)
    return 0;
  im->config = steal_pointer (&config);
  im->config_len = clen;
  im->manifest = steal_pointer (&mbytes);
  im->manifest_len = mlen;
  im->diff_ids = steal_pointer (&diff_ids);
  im->n_layers = nd;
  im->layers = xzalloc ((nd ? nd : 1) * sizeof *im->layers);
  for (size_t l = 0; l < nd; l++)
    {
      json_t *ld = json_array_get (layers, l);
      const char *lmt = cimg_json_str (ld, "mediaType");
      cleanup_free char *lwhat = xasprintf ("%s: layer %zu", mwhat, l + 1);
      if (lmt == NULL || !is_layer_media_type (lmt))
        return cimg_error_set (err, EINVAL, "%s: unsupported media type \"%s\"", lwhat,
                               lmt ? lmt : "");
      const struct staged *lst = descriptor_blob (c, ld, lwhat, err);
      if (lst == NULL)
        return -1;
      struct load_layer *ll = &im->layers[l];
      memcpy (ll->blob, lst->digest, sizeof ll->blob);
      ll->verify_blob = true;
      ll->size = lst->size;
      snprintf (ll->media_type, sizeof ll->media_type, "%s", lmt);
    }
  return 0;
}

static bool
platform_matches (struct load_ctx *c, json_t *desc)
{
  json_t *ann = json_object_get (desc, "annotations");
  const char *rt = cimg_json_str (ann, "vnd.docker.reference.type");
  if (rt != NULL && strcmp (rt, "attestation-manifest") == 0)
    return false;
  json_t *p = json_object_get (desc, "platform");
  if (!json_is_object (p))
    return true;
  const char *os = cimg_json_str (p, "os");
  const char *arch = cimg_json_str (p, "architecture");
  return (os == NULL || strcmp (os, "linux") == 0) && (arch == NULL || strcmp (arch, c->arch) == 0);
}

static bool
is_index_media_type (const char *mt)
{
  return strcmp (mt, MT_OCI_INDEX) == 0 || strcmp (mt, MT_DOCKER_LIST) == 0;
}

/* Walk an OCI index: every top-level image manifest for this platform is loaded; from a nested
   index (a multi-platform image) only this platform's manifest, named by the entry that points
   at the nested index. */
static int
resolve_index (struct load_ctx *c, json_t *index, const char *where, json_t *names_from, int depth,
               size_t *found, cimg_error_t *err)
{
  json_t *manifests = json_object_get (index, "manifests");
  if (!json_is_array (manifests))
    return cimg_error_set (err, EINVAL, "%s: no manifests array", where);
  size_t start = *found;
  size_t i;
  json_t *desc;
  json_array_foreach (manifests, i, desc)
  {
    cleanup_free char *what = xasprintf ("%s: manifests[%zu]", where, i);
    const char *mt = cimg_json_str (desc, "mediaType");
    if (mt == NULL)
      return cimg_error_set (err, EINVAL, "%s: no mediaType", what);
    if (!platform_matches (c, desc))
      continue;
    json_t *names = names_from ? names_from : desc;
    if (is_index_media_type (mt))
      {
        if (depth >= MAX_INDEX_DEPTH)
          return cimg_error_set (err, EINVAL, "%s: indexes nested too deep", what);
        const struct staged *ist = descriptor_blob (c, desc, what, err);
        if (ist == NULL)
          return -1;
        cleanup_free char *iwhat = xasprintf ("index %s", ist->digest);
        cleanup_json json_t *child = read_staged_json (c, ist, iwhat, NULL, NULL, err);
        if (child == NULL)
          return -1;
        if (!json_is_object (child))
          return cimg_error_set (err, EINVAL, "%s: not an object", iwhat);
        size_t before = *found;
        if (resolve_index (c, child, iwhat, names, depth + 1, found, err) < 0)
          return -1;
        if (*found == before)
          return cimg_error_set (err, ENOENT, "%s: no image for linux/%s", iwhat, c->arch);
      }
    else if (strcmp (mt, MT_OCI_MANIFEST) == 0 || strcmp (mt, MT_DOCKER_MANIFEST) == 0)
      {
        if (resolve_manifest (c, desc, names, what, err) < 0)
          return -1;
        (*found)++;
      }
    else
      return cimg_error_set (err, EINVAL, "%s: unsupported media type \"%s\"", what, mt);
    if (depth > 0 && *found > start)
      break; /* one platform's manifest from a nested index */
  }
  return 0;
}

static int
resolve_oci (struct load_ctx *c, const struct staged *ist, cimg_error_t *err)
{
  const struct staged *lst = lookup (c, "oci-layout");
  if (lst == NULL)
    return cimg_error_set (err, EINVAL, "index.json without oci-layout: not an OCI layout");
  cleanup_json json_t *layout = read_staged_json (c, lst, "oci-layout", NULL, NULL, err);
  if (layout == NULL)
    return -1;
  const char *ver = cimg_json_str (layout, "imageLayoutVersion");
  if (ver == NULL || !cimg_str_has_prefix (ver, "1."))
    return cimg_error_set (err, EINVAL, "oci-layout: unsupported imageLayoutVersion \"%s\"",
                           ver ? ver : "");
  cleanup_json json_t *index = read_staged_json (c, ist, "index.json", NULL, NULL, err);
  if (index == NULL)
    return -1;
  if (!json_is_object (index))
    return cimg_error_set (err, EINVAL, "index.json: not an object");
  size_t found = 0;
  if (resolve_index (c, index, "index.json", NULL, 0, &found, err) < 0)
    return -1;
  if (found == 0)
    return cimg_error_set (err, ENOENT, "index.json: no image for linux/%s", c->arch);
  return 0;
}

/* Unpack one image's layers in order, each on its parent. */
static int
load_layers (struct load_ctx *c, struct load_image *im, struct cimg_image_layer *out,
             cimg_error_t *err)
{
  char parent[CIMG_DIGEST_BUFSIZE] = "";
  cleanup_free char *buf = xmalloc (COPY_CHUNK);
  for (size_t i = 0; i < im->n_layers; i++)
    {
      struct load_layer *l = &im->layers[i];
      struct cimg_image_layer *o = &out[i];
      memset (o, 0, sizeof *o);
      cimg_chain_id (parent, im->diff_ids[i], o->chain_id);
      struct cimg_layer_info info;
      memset (&info, 0, sizeof info);
      cimg_error_t ignored = { 0 };
      /* A layer already stored is not unpacked again, provided the blob the image names is
         kept too (else save and push of this image would lack it). */
      bool have = cimg_store_has_layer (c->s, o->chain_id) && cimg_store_has_blob (c->s, l->blob)
                  && cimg_store_layer_info (c->s, o->chain_id, &info, &ignored) == 0;
      cimg_error_clear (&ignored);
      if (!have)
        {
          cleanup_close int fd
              = openat (c->stagefd, cimg_digest_hex (l->blob), O_RDONLY | O_CLOEXEC);
          if (fd < 0)
            return cimg_error_sys (err, "layer %zu (%s): open staged file", i + 1, l->blob);
          struct cimg_layer_sink *k = cimg_layer_sink_new (c->s, parent, CIMG_SINK_KEEP_BLOB, err);
          if (k == NULL)
            return cimg_error_wrap (err, "layer %zu (%s)", i + 1, l->blob);
          int rc = 0;
          for (;;)
            {
              ssize_t n = read (fd, buf, COPY_CHUNK);
              if (n < 0 && errno == EINTR)
                continue;
              if (n < 0)
                {
                  rc = cimg_error_sys (err, "read staged file");
                  break;
                }
              if (n == 0)
                break;
              if ((rc = cimg_layer_sink_write (k, buf, (size_t)n, err)) < 0)
                break;
            }
          /* The staged bytes were hashed on their way in; the sink hashes them again, so
             what is kept is exactly what was verified. */
          if (rc == 0)
            rc = cimg_layer_sink_finish (k, l->blob, im->diff_ids[i], &info, err);
          cimg_layer_sink_free (k);
          if (rc < 0)
            return cimg_error_wrap (err, "layer %zu (%s)", i + 1, l->blob);
          if (strcmp (info.chain_id, o->chain_id) != 0)
            return cimg_error_set (err, EIO, "layer %zu (%s): chain ID %s, expected %s", i + 1,
                                   l->blob, info.chain_id, o->chain_id);
        }
      memcpy (o->diff_id, im->diff_ids[i], sizeof o->diff_id);
      memcpy (o->digest, l->blob, sizeof o->digest);
      snprintf (o->media_type, sizeof o->media_type, "%s", l->media_type);
      o->blob_size = l->size;
      o->size = info.size;
      memcpy (parent, o->chain_id, sizeof parent);
    }
  return 0;
}

static int
do_load (struct load_ctx *c, int fd, char ***report, cimg_error_t *err)
{
  char hex[65];
  cimg_random_hex64 (hex);
  c->stage = xasprintf ("ingest/load-%.24s", hex);
  int dirfd = cimg_store_dirfd (c->s);
  if (mkdirat (dirfd, c->stage, 0700) < 0)
    {
      int e = errno;
      free (c->stage);
      c->stage = NULL;
      errno = e;
      return cimg_error_sys (err, "create %s/ingest/load-%.24s", cimg_store_root (c->s), hex);
    }
  c->stagefd = openat (dirfd, c->stage, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (c->stagefd < 0)
    return cimg_error_sys (err, "open %s/%s", cimg_store_root (c->s), c->stage);

  if (read_archive (c, fd, err) < 0)
    return -1;

  /* Docker's own loader reads manifest.json when there is one (Docker 25+ writes both); an
     archive without it is read as an OCI layout. */
  const struct staged *mst = lookup (c, "manifest.json");
  const struct staged *ist = lookup (c, "index.json");
  if (mst != NULL)
    {
      if (resolve_docker (c, mst, err) < 0)
        return -1;
    }
  else if (ist != NULL)
    {
      if (resolve_oci (c, ist, err) < 0)
        return -1;
    }
  else if (lookup (c, "repositories") != NULL)
    return cimg_error_set (err, EINVAL,
                           "legacy archive (repositories without manifest.json): not supported");
  else
    return cimg_error_set (err, EINVAL,
                           "not a docker-archive or OCI layout (no manifest.json or index.json)");

  /* All layers of all images first, then the image records and the tags in one index update:
     a failure anywhere, or a kill, leaves the index as it was (layers already unpacked are
     complete and verified, records and blobs no index names are debris; gc and check take
     them). One update for the whole archive, not one per image and tag: each update rewrites
     the whole index, which made a load of K images into a store of N cost O(K·(N+K)). */
  cleanup_image_batch struct cimg_image_batch *batch = cimg_image_batch_new (c->s);
  for (size_t i = 0; i < c->n_img; i++)
    {
      struct load_image *im = &c->img[i];
      cleanup_free struct cimg_image_layer *layers
          = xzalloc ((im->n_layers ? im->n_layers : 1) * sizeof *layers);
      if (load_layers (c, im, layers, err) < 0)
        {
          if (c->n_img > 1)
            cimg_error_wrap (err, "image %s", im->config_digest);
          return -1;
        }
      if (cimg_image_batch_add (batch, im->config, im->config_len, im->manifest, im->manifest_len,
                                layers, im->n_layers, NULL, NULL, im->id, err)
          < 0)
        return cimg_error_wrap (err, "image %s", im->config_digest);
    }
  for (size_t i = 0; i < c->n_img; i++)
    for (size_t t = 0; c->img[i].tags && c->img[i].tags[t]; t++)
      if (cimg_image_batch_tag (batch, c->img[i].id, c->img[i].tags[t], err) < 0)
        return -1;
  if (cimg_image_batch_commit (batch, err) < 0)
    return -1;
  for (size_t i = 0; report && i < c->n_img; i++)
    {
      struct load_image *im = &c->img[i];
      if (im->tags == NULL || im->tags[0] == NULL)
        {
          cleanup_free char *line = xasprintf ("Loaded image ID: %s", im->id);
          cimg_strv_append (report, line);
        }
      for (size_t t = 0; im->tags && im->tags[t]; t++)
        {
          cleanup_free char *fam = cimg_ref_familiar_string (im->tags[t]);
          cleanup_free char *line = xasprintf ("Loaded image: %s", fam);
          cimg_strv_append (report, line);
        }
    }
  return 0;
}

int
cimg_store_load (struct cimg_store *s, int fd, char ***report, cimg_error_t *err)
{
  bool took;
  if (lock_if_needed (s, &took, err) < 0)
    return -1;
  struct load_ctx c = { .s = s, .stagefd = -1, .arch = host_arch () };
  int rc = do_load (&c, fd, report, err);
  load_ctx_clear (&c);
  if (took)
    cimg_store_unlock (s);
  return rc;
}
