/* build: the executor (instructions → layers and config in the store) and its step cache. */
#ifndef CIMG_BUILD_EXEC_H
#define CIMG_BUILD_EXEC_H

#include <stdio.h>

#include "build/build.h"
#include "store/store.h"

struct cimg_build_opts
{
  const char *context;     /* the context directory */
  const char *dockerfile;  /* path of the Dockerfile (NULL: CONTEXT/Dockerfile) */
  char *const *build_args; /* "K=V" (NULL-terminated, may be NULL) */
  const char *target;      /* stage to stop at (NULL: the last) */
  bool no_cache;           /* ignore the step cache (results are still recorded) */
  bool pull;               /* pull FROM / COPY --from images even when the store has them */
  bool network_none;       /* RUN in its own network namespace (default: the host's) */
  const char *platform;    /* --platform: "os/arch[/variant]" (TARGET* ARGs); NULL: this machine */
  char *const *secrets;    /* --secret values: "id=X,src=FILE" (or "id=X,env=VAR"); may be NULL */
  bool allow_insecure;     /* --allow security.insecure: RUN --security=insecure is allowed */
  FILE *out;               /* step lines ("STEP 2/5: RUN make", " ---> CACHED"); NULL: none */
  int run_output_fd;       /* where RUN's stdout/stderr go; -1: the caller's */
};

/* Move the calling process into a private mount namespace. Call it before the store is opened
   (an overlay's upper and work dirs must be reached through mounts of the namespace that mounts
   it: fds opened before would name the old one's) and before any thread is started. */
int cimg_build_enter_mount_namespace (cimg_error_t *err);

/* Build the Dockerfile of o in the context o->context into a new image of the store s. The store
   lock is taken shared for the whole build. The caller must have called
   cimg_build_enter_mount_namespace first: read-only views of stages are mounted there.
   On success returns 0 and the image ID in id_out (nothing is tagged here: the caller tags).
   On failure returns -1 with err set ("Dockerfile:7: RUN exit 3: exit code 3"); *run_exit is
   then the exit code of a failed RUN (0 for any other failure). */
int cimg_build_run (struct cimg_store *s, const struct cimg_build_opts *o,
                    char id_out[CIMG_DIGEST_BUFSIZE], int *run_exit, cimg_error_t *err);

/* ---------------------------------------------------------------- ADD <url> (build/fetch.c) */

struct cimg_fetch_result
{
  char digest[CIMG_DIGEST_BUFSIZE]; /* sha256 of the body */
  int64_t size;
  int64_t mtime; /* Last-Modified (seconds since the epoch), -1 when the server sent none */
};

/* GET url (http or https, redirects followed) into a new file dirfd/name (mode 0600), hashing
   it. A status other than 2xx, a transfer error or a stall (CIMG_BUILD_STALL_SECONDS, 60) is an
   error that names the URL; the file is then removed. */
int cimg_build_fetch (const char *url, int dirfd, const char *name, struct cimg_fetch_result *res,
                      cimg_error_t *err);

/* ---------------------------------------------------------------- cache (build/cache.c) */

/* A step's cache key: sha256 over the parent state's key, the instruction after expansion, the
   build args in scope ("K=V") and the digest of the content it adds (COPY/ADD; NULL else). Each
   field is length-prefixed, so no two different inputs give the same byte stream. */
void cimg_build_cache_key (const char *parent, const char *instruction, char *const *args,
                           const char *content, char out[CIMG_DIGEST_BUFSIZE]);

/* The record of key (build-cache/<hex>): {"config": {...}, "layers": [{chain_id, diff_id,
   digest, media_type, blob_size, size}...]}, or NULL on a miss. A record whose layers are no longer
   in the store is a miss: gc may have removed them. */
json_t *cimg_build_cache_get (struct cimg_store *s, const char *key);
/* Record key → rec (atomically replaced). */
int cimg_build_cache_put (struct cimg_store *s, const char *key, json_t *rec, cimg_error_t *err);

#endif
