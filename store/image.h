/* store: the manifests of an image. One image (one config digest) can be known through several
   manifests (OCI and Docker, gzip and zstd layers, a load and a pull); the record keeps each
   with the references it came as, so that push sends the one a tag was pulled with. See
   docs/store.md ("Manifests of an image"). */
#ifndef CIMG_STORE_IMAGE_H
#define CIMG_STORE_IMAGE_H

#include "store/store.h"

/* cimg_store_add_image, remembering that the manifest came as ref (a full "name:tag" or
   "name@digest", may be NULL) and as repo_digest. The image's other manifests stay; this one
   becomes the record's top-level (newest) manifest. With tag (may be NULL), the image is tagged
   in the same index update: a kill never leaves it there untagged, and the index is rewritten
   once, not twice. */
int cimg_store_add_image_ref (struct cimg_store *s, const char *config_bytes, size_t config_len,
                              const char *manifest_bytes, size_t manifest_len,
                              const struct cimg_image_layer *layers, size_t n_layers,
                              const char *repo_digest, const char *ref, const char *tag,
                              char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err);

/* Many images and tags recorded in one index update (a load of an archive): each _add checks
   the image and stores its blobs at once, each _tag checks the tag; _commit writes every record
   and replaces the index once, so that a kill leaves the old index or the new one, whatever
   the number of images, and the cost is one index rewrite instead of one per image and tag.
   Images are applied before tags, each in the order given (a later tag moves an earlier one).
   id_out (may be NULL) gets the image ID at _add. */
struct cimg_image_batch;
struct cimg_image_batch *cimg_image_batch_new (struct cimg_store *s);
void cimg_image_batch_free (struct cimg_image_batch *b);
void cimg_image_batch_freep (struct cimg_image_batch **b);
#define cleanup_image_batch __attribute__ ((cleanup (cimg_image_batch_freep)))
int cimg_image_batch_add (struct cimg_image_batch *b, const char *config_bytes, size_t config_len,
                          const char *manifest_bytes, size_t manifest_len,
                          const struct cimg_image_layer *layers, size_t n_layers,
                          const char *repo_digest, const char *ref,
                          char id_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err);
int cimg_image_batch_tag (struct cimg_image_batch *b, const char *id, const char *tag,
                          cimg_error_t *err);
/* `rmi name` (flags: CIMG_RMI_*) in the batch's index update, with docker rmi's semantics for
   each name (see cimg_store_remove_image), the names taken in the order given, each against the
   index as the ones before left it (`rmi a:1 a:2` of one image's two tags untags a:1, then
   deletes the image with its last tag). A name that cannot be removed (no such image, a
   conflict) fails alone: the others are still removed. Removals are resolved and applied
   before the batch's images and tags, under the store's exclusive lock; the records of deleted
   images are removed and one gc runs after the index update. */
void cimg_image_batch_remove (struct cimg_image_batch *b, const char *name, int flags);
/* After _commit: the outcome of the i-th _remove. *report (may be NULL; owned by the batch,
   valid until it is freed) gets its "Untagged: …" and "Deleted: …" lines, NULL when nothing
   was removed. Returns 0, or -1 with err set (moved to the caller) when that name failed. */
int cimg_image_batch_removed (struct cimg_image_batch *b, size_t i, char *const **report,
                              cimg_error_t *err);
/* Returns 0, or -1 with err set. When the index update itself fails nothing was removed (every
   report is empty); a failure after it (removing a record, gc) leaves the reports of what the
   new index no longer holds. */
int cimg_image_batch_commit (struct cimg_image_batch *b, cimg_error_t *err);

/* The manifest of image id that ref (a full reference, may be NULL) came with: the one that
   lists ref, else the newest that lists a reference of ref's repository, else the newest. */
int cimg_store_image_manifest_for (struct cimg_store *s, const char *id, const char *ref,
                                   char digest[CIMG_DIGEST_BUFSIZE], cimg_error_t *err);

/* Record that manifest_digest of image id is also known as refs (push: the tag it went to and
   its repo digest). A tag moves off the image's other manifests. ENOENT when the image is not
   in the store. */
int cimg_store_image_add_manifest_refs (struct cimg_store *s, const char *id,
                                        const char *manifest_digest, const char *const *refs,
                                        size_t nrefs, cimg_error_t *err);

/* The digest of the repo digest recorded with tag's manifest ("sha256:…", newly allocated), or
   NULL when none is. tag: a full "name:tag". */
char *cimg_store_image_repo_digest_for (struct cimg_store *s, const char *id, const char *tag);

#endif
