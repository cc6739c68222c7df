/* store: the content-addressed store of blobs, layers, images and tags. See docs/store.md. */
#ifndef CIMG_STORE_H
#define CIMG_STORE_H

#include "util/util.h"

/* ---------------------------------------------------------------- references */

/* A normalised image reference, as Docker's reference package gives it:
   "ubuntu" -> domain "docker.io", path "library/ubuntu", tag "latest". */
struct cimg_ref
{
  char *domain; /* "docker.io", "127.0.0.1:5000", "localhost" */
  char *path;   /* "library/ubuntu" */
  char *tag;    /* NULL when the reference has only a digest */
  char *digest; /* "sha256:…" or NULL */
};

/* Parse and normalise s. With no tag and no digest, the tag is "latest". On error returns NULL
   and sets err with a message that names the reference and the rule it breaks. */
struct cimg_ref *cimg_ref_parse (const char *s, cimg_error_t *err);
/* Like cimg_ref_parse, but adds no default tag. */
struct cimg_ref *cimg_ref_parse_name (const char *s, cimg_error_t *err);
/* Like cimg_ref_parse, for a name to tag an image with: a digest is refused, as Docker does,
   since a tag cannot make an image have a digest. */
struct cimg_ref *cimg_ref_parse_tag (const char *s, cimg_error_t *err);
void cimg_ref_free (struct cimg_ref *r);
void cimg_ref_freep (struct cimg_ref **r);
#define cleanup_ref __attribute__ ((cleanup (cimg_ref_freep)))
/* "docker.io/library/ubuntu" (newly allocated). */
char *cimg_ref_name (const struct cimg_ref *r);
/* "docker.io/library/ubuntu:latest", "…@sha256:…", or both (newly allocated). */
char *cimg_ref_string (const struct cimg_ref *r);
/* The short form Docker prints: "ubuntu", "user/app", "127.0.0.1:5000/x" (newly allocated). */
char *cimg_ref_familiar_name (const struct cimg_ref *r);
/* Familiar form of a full "name:tag" string as stored in the index (newly allocated). */
char *cimg_ref_familiar_string (const char *full);

/* ---------------------------------------------------------------- store */

struct cimg_store;

/* Open (creating it if missing) the store at root. Returns NULL and sets err on failure. */
struct cimg_store *cimg_store_open (const char *root, cimg_error_t *err);
void cimg_store_close (struct cimg_store *s);
void cimg_store_closep (struct cimg_store **s);
#define cleanup_store __attribute__ ((cleanup (cimg_store_closep)))
const char *cimg_store_root (struct cimg_store *s);
int cimg_store_dirfd (struct cimg_store *s);

/* Content writers (load, pull, import, build) hold the store lock shared for their whole run,
   so that gc and repair, which hold it exclusive, never delete what they are writing. */
enum
{
  CIMG_LOCK_SHARED = 1,
  CIMG_LOCK_EXCLUSIVE = 2
};
int cimg_store_lock (struct cimg_store *s, int mode, cimg_error_t *err);
void cimg_store_unlock (struct cimg_store *s);

/* ---------------------------------------------------------------- blobs */

struct cimg_blob_writer;

/* A writer that hashes as it writes into ingest/. expected_digest (may be NULL) and
   expected_size (-1 for unknown) are checked at commit. */
struct cimg_blob_writer *cimg_blob_writer_new (struct cimg_store *s, const char *expected_digest,
                                               int64_t expected_size, cimg_error_t *err);
int cimg_blob_writer_write (struct cimg_blob_writer *w, const void *buf, size_t len,
                            cimg_error_t *err);
/* Verify, fsync and rename into blobs/. Writes the digest into out (may be NULL). */
int cimg_blob_writer_commit (struct cimg_blob_writer *w, char out[CIMG_DIGEST_BUFSIZE],
                             cimg_error_t *err);
int64_t cimg_blob_writer_size (struct cimg_blob_writer *w);
/* Frees; an uncommitted writer's ingest file is removed. */
void cimg_blob_writer_free (struct cimg_blob_writer *w);

int cimg_store_put_blob (struct cimg_store *s, const void *buf, size_t len,
                         const char *expected_digest, char out[CIMG_DIGEST_BUFSIZE],
                         cimg_error_t *err);
bool cimg_store_has_blob (struct cimg_store *s, const char *digest);
/* Read a small blob (manifest, config) whole, verifying its digest. Refuses over max bytes. */
int cimg_store_read_blob (struct cimg_store *s, const char *digest, size_t max, char **out,
                          size_t *len, cimg_error_t *err);
/* O_RDONLY fd of a blob (not re-verified). */
int cimg_store_open_blob (struct cimg_store *s, const char *digest, cimg_error_t *err);
/* Size of a blob in bytes, or -1 if absent. */
int64_t cimg_store_blob_size (struct cimg_store *s, const char *digest);

/* ---------------------------------------------------------------- layers */

struct cimg_layer_info
{
  char chain_id[CIMG_DIGEST_BUFSIZE];
  char diff_id[CIMG_DIGEST_BUFSIZE];
  char digest[CIMG_DIGEST_BUFSIZE]; /* compressed blob digest as received ("" if not kept) */
  char media_type[96];              /* of the blob as received */
  int64_t blob_size;                /* compressed size */
  int64_t size;                     /* unpacked size (bytes of file content) */
};

/* The layer sink: every producer of layer bytes (pull, load, import, build) pushes the bytes of
   one layer as it has them — compressed (gzip, zstd) or plain tar, detected from the first
   bytes — and the sink hashes both streams, inflates, and unpacks on a worker thread into a
   temporary layer directory, which finish() verifies and renames into place. */
struct cimg_layer_sink;

enum
{
  CIMG_SINK_KEEP_BLOB = 1 << 0, /* also store the bytes as received in blobs/ */
};

/* parent_chain_id: the chain ID of the layer below ("" or NULL for a base layer). */
struct cimg_layer_sink *cimg_layer_sink_new (struct cimg_store *s, const char *parent_chain_id,
                                             int flags, cimg_error_t *err);
int cimg_layer_sink_write (struct cimg_layer_sink *k, const void *buf, size_t len,
                           cimg_error_t *err);
/* End of input. expected_digest / expected_diff_id may be NULL (not checked). On success the
   layer is in the store and *info describes it. On failure nothing of it remains. */
int cimg_layer_sink_finish (struct cimg_layer_sink *k, const char *expected_digest,
                            const char *expected_diff_id, struct cimg_layer_info *info,
                            cimg_error_t *err);
/* Abort (if not finished) and free. */
void cimg_layer_sink_free (struct cimg_layer_sink *k);

/* chain ID of (parent, diff_id); parent may be NULL or "" for a base layer. */
void cimg_chain_id (const char *parent_chain_id, const char *diff_id,
                    char out[CIMG_DIGEST_BUFSIZE]);
bool cimg_store_has_layer (struct cimg_store *s, const char *chain_id);
/* Reads layers/<chain>/layer.json into info. */
int cimg_store_layer_info (struct cimg_store *s, const char *chain_id, struct cimg_layer_info *info,
                           cimg_error_t *err);
/* Path of a layer's diff directory, relative to the store root ("layers/<hex>/diff"). */
char *cimg_store_layer_diff_path (const char *chain_id);
/* The layer's short link name under l/ (newly allocated), for overlay lowerdir stacks. */
char *cimg_store_layer_link (struct cimg_store *s, const char *chain_id, cimg_error_t *err);

/* Write a layer as an uncompressed tar into fd (for save/push without a kept blob). Sets diff_id.
 */
int cimg_store_layer_tar (struct cimg_store *s, const char *chain_id, int fd,
                          char diff_id[CIMG_DIGEST_BUFSIZE], cimg_error_t *err);

/* ---------------------------------------------------------------- images */

struct cimg_image_layer
{
  char chain_id[CIMG_DIGEST_BUFSIZE];
  char diff_id[CIMG_DIGEST_BUFSIZE];
  char digest[CIMG_DIGEST_BUFSIZE]; /* blob as in the manifest */
  char media_type[96];
  int64_t blob_size;
  int64_t size;
};

/* An image record: images/<config-hex>/image.json, plus its tags from the index. */
struct cimg_image
{
  char id[CIMG_DIGEST_BUFSIZE];              /* = config digest */
  char manifest_digest[CIMG_DIGEST_BUFSIZE]; /* of the manifest in blobs/ */
  json_t *config;                            /* parsed config blob */
  json_t *manifest;                          /* parsed manifest blob */
  size_t n_layers;
  struct cimg_image_layer *layers;
  char **repo_tags;    /* full references "docker.io/library/x:tag" */
  char **repo_digests; /* "docker.io/library/x@sha256:…" */
  int64_t created;     /* config "created", seconds since the epoch (0 if absent) */
  int64_t size;        /* sum of layer sizes */
};
void cimg_image_free (struct cimg_image *img);
void cimg_image_freep (struct cimg_image **img);
#define cleanup_image __attribute__ ((cleanup (cimg_image_freep)))

/* Record an image whose layers are all in the store: writes the manifest (if not NULL, else
   one is generated from the layers' blobs: Docker schema2) and config blobs, the image record
   and its index entry. Tags are applied afterwards with cimg_store_tag. Returns the image ID
   in id_out. manifest_bytes may be NULL. repo_digest (may be NULL) is added to RepoDigests. */
int cimg_store_add_image (struct cimg_store *s, const char *config_bytes, size_t config_len,
                          const char *manifest_bytes, size_t manifest_len,
                          const struct cimg_image_layer *layers, size_t n_layers,
                          const char *repo_digest, char id_out[CIMG_DIGEST_BUFSIZE],
                          cimg_error_t *err);

/* Find an image by name[:tag], name@digest, full ID, "sha256:" ID or unique ID prefix. */
struct cimg_image *cimg_store_find_image (struct cimg_store *s, const char *name,
                                          cimg_error_t *err);
/* Point tag (a reference string, normalised here) at image id. */
int cimg_store_tag (struct cimg_store *s, const char *id, const char *tag, cimg_error_t *err);

/* A summary of every image, from the index only (fast: no per-image file is read). */
struct cimg_image_summary
{
  char id[CIMG_DIGEST_BUFSIZE];
  char manifest_digest[CIMG_DIGEST_BUFSIZE];
  int64_t created;
  int64_t size;
  char **repo_tags;
  char **repo_digests;
};
int cimg_store_list_images (struct cimg_store *s, struct cimg_image_summary **out, size_t *n,
                            cimg_error_t *err);
void cimg_image_summaries_free (struct cimg_image_summary *v, size_t n);

enum
{
  CIMG_RMI_FORCE = 1 << 0,
};
/* docker rmi semantics for one argument: a tag is untagged; the image is deleted when no tag
   is left (or when named by ID with one tag, or -f) and no container uses it. Appends
   "Untagged: …" and "Deleted: …" lines to *report. */
int cimg_store_remove_image (struct cimg_store *s, const char *name, int flags, char ***report,
                             cimg_error_t *err);

/* IDs of images used by containers (containers/<id>/config.json "Image"). */
char **cimg_store_images_in_use (struct cimg_store *s);

/* ---------------------------------------------------------------- maintenance */

struct cimg_gc_report
{
  size_t blobs, layers, debris;
  int64_t bytes;
};
/* Remove blobs and layers no image references, and debris. Takes the lock exclusive. */
int cimg_store_gc (struct cimg_store *s, struct cimg_gc_report *r, cimg_error_t *err);
/* Remove dangling images (no tag, not in use); appends "Deleted: …" lines. */
int cimg_store_prune_images (struct cimg_store *s, bool all, char ***report, int64_t *reclaimed,
                             cimg_error_t *err);

/* A problem found by cimg_store_check: what and whether --repair fixes it by deleting. */
struct cimg_check_problem
{
  char *what;
  bool debris; /* only removable leftovers of an interrupted write */
};
int cimg_store_check (struct cimg_store *s, bool repair, struct cimg_check_problem **out, size_t *n,
                      cimg_error_t *err);
void cimg_check_problems_free (struct cimg_check_problem *v, size_t n);

/* RUN steps' cgroups, which the store cannot see (runtime/) but system check must find when a
   build was killed: a build notes a step's container ID before its cgroup exists and forgets it
   once the cgroup is gone. Under the exclusive lock, every noted step is a dead build's. */
int cimg_store_note_step (struct cimg_store *s, const char *id, cimg_error_t *err);
void cimg_store_forget_step (struct cimg_store *s, const char *id);
/* The noted steps' IDs (NULL when none; the caller's strv). */
char **cimg_store_noted_steps (struct cimg_store *s);
/* The IDs of the store's container records (NULL when none; the caller's strv). */
char **cimg_store_container_ids (struct cimg_store *s);

struct cimg_df
{
  size_t images, images_active;
  int64_t images_size, images_reclaimable;
  size_t containers, containers_active;
  int64_t containers_size, containers_reclaimable;
};
int cimg_store_df (struct cimg_store *s, struct cimg_df *df, cimg_error_t *err);

/* ---------------------------------------------------------------- archives */

/* docker import: a root filesystem tar (plain or compressed) becomes a one-layer image. config
   (may be NULL: empty) is its container config ("config" of the image config), --change lines
   already applied by the caller (cimg_config_apply_changes, build/change.h); a default PATH is
   added to its Env when it sets none. */
int cimg_store_import (struct cimg_store *s, int fd, const char *tag, const char *message,
                       json_t *config, char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err);
/* docker save: writes a tar to fd holding docker-archive (manifest.json, repositories) and an
   OCI layout (oci-layout, index.json, blobs/sha256/…) for the named images. */
int cimg_store_save (struct cimg_store *s, char *const *names, int fd, cimg_error_t *err);
/* docker load: reads a docker-archive or OCI layout tar (plain or compressed) from fd; appends
   "Loaded image: …" / "Loaded image ID: …" lines to *report. */
int cimg_store_load (struct cimg_store *s, int fd, char ***report, cimg_error_t *err);

#endif
