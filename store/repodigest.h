/* store: recording a repo digest ("NAME@sha256:…") on an image already in the store, as push
   does once the registry holds the image under NAME. */
#ifndef CIMG_STORE_REPODIGEST_H
#define CIMG_STORE_REPODIGEST_H

#include "store/store.h"

/* Add repo_digest to the RepoDigests of image id (no duplicate). ENOENT when the image is not
   (or no longer) in the store; EINVAL when repo_digest is not NAME@sha256:<64 hex>. */
int cimg_store_add_repo_digest (struct cimg_store *s, const char *id, const char *repo_digest,
                                cimg_error_t *err);

#endif
