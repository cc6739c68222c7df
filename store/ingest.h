/* store: resumable downloads of one blob. See docs/registry.md ("Resuming a killed pull"). */
#ifndef CIMG_STORE_INGEST_H
#define CIMG_STORE_INGEST_H

#include "store/store.h"

/* A blob being downloaded into ingest/dl-<hex of its digest>: unlike cimg_blob_writer's
   random names, the name is the expected digest's, so that the next process to fetch the same
   blob finds the bytes a killed one left and asks the server only for the rest. */
struct cimg_ingest;

/* Open the download of digest (validated here) of size bytes, creating it or resuming it. The
   file is locked (flock) for this process; when another process holds it, a private file with
   a random name is used instead (no resume, no interference). A partial file longer than size
   is discarded. Returns NULL and sets err on failure. */
struct cimg_ingest *cimg_ingest_open (struct cimg_store *s, const char *digest, int64_t size,
                                      cimg_error_t *err);
/* Bytes already there. */
int64_t cimg_ingest_offset (struct cimg_ingest *g);
typedef int (*cimg_ingest_fn) (void *data, const void *buf, size_t len, cimg_error_t *err);
/* Read the bytes already there back in order, hashing them, and hand each chunk to fn (the
   caller's layer sink), so that a resumed download is verified whole. Call once, first. */
int cimg_ingest_replay (struct cimg_ingest *g, cimg_ingest_fn fn, void *data, cimg_error_t *err);
int cimg_ingest_write (struct cimg_ingest *g, const void *buf, size_t len, cimg_error_t *err);
/* Start over from byte 0 (the server ignored a Range). */
int cimg_ingest_reset (struct cimg_ingest *g, cimg_error_t *err);
/* Verify the digest and size, fsync, rename into blobs/. */
int cimg_ingest_commit (struct cimg_ingest *g, cimg_error_t *err);
/* Verify the digest and size and write out every byte taken, without committing: nothing is
   taken after it. */
int cimg_ingest_verify (struct cimg_ingest *g, cimg_error_t *err);
/* cimg_ingest_commit after cimg_ingest_verify and then a syncfs of fs_fd's file system (the
   layer's, store/layer-internal.h): when the download is on that file system its bytes are
   already durable and its own fsync is left out; otherwise (or fs_fd -1) it is fsynced. */
int cimg_ingest_commit_synced (struct cimg_ingest *g, int fs_fd, cimg_error_t *err);
/* Close. keep: leave an uncommitted file for a later resume; otherwise it is removed. */
void cimg_ingest_close (struct cimg_ingest *g, bool keep);

#endif
