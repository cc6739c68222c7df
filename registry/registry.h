/* registry: Docker Registry HTTP API v2 / OCI distribution client. See docs/registry.md. */
#ifndef CIMG_REGISTRY_H
#define CIMG_REGISTRY_H

#include "store/store.h"

struct cimg_pull_opts
{
  const char *platform;           /* "os/arch[/variant]", NULL for this machine's */
  int max_concurrent;             /* layers downloaded at once; <= 0 for the default (3) */
  struct cimg_progress *progress; /* may be NULL */
};

struct cimg_pull_result
{
  char id[CIMG_DIGEST_BUFSIZE];     /* image ID (config digest) */
  char digest[CIMG_DIGEST_BUFSIZE]; /* digest of what the reference resolved to (index or
                                       manifest), as "Digest:" prints it */
  char *name;                       /* full reference pulled: "127.0.0.1:5000/x:1" (owned) */
  bool downloaded;                  /* false when the image was already there ("up to date") */
};
void cimg_pull_result_clear (struct cimg_pull_result *r);

/* Pull ref into the store and tag it (a digest reference records a repo digest instead).
   Holds the store lock shared for the whole pull. On failure nothing is tagged, err names the
   reference and, for a layer, the layer and what differed. */
int cimg_registry_pull (struct cimg_store *s, const char *ref, const struct cimg_pull_opts *opts,
                        struct cimg_pull_result *res, cimg_error_t *err);

/* Push the image named src to dst (dst NULL: to src's own name). Blobs the registry has are
   skipped, blobs in another repository of the same registry are mounted, then the manifest is
   put byte for byte as stored. At most max_concurrent layers go up at once (<= 0: 5, as
   Docker's max-concurrent-uploads). digest_out (may be NULL) receives the manifest digest. */
int cimg_registry_push (struct cimg_store *s, const char *src, const char *dst, int max_concurrent,
                        struct cimg_progress *progress, char digest_out[CIMG_DIGEST_BUFSIZE],
                        cimg_error_t *err);

/* The registry host a login/logout argument names ("docker.io" for NULL or a Docker Hub
   alias; newly allocated). */
char *cimg_registry_server_name (const char *server);

/* Check user/password against server's /v2/ (basic or token flow), then store them in
   ~/.docker/config.json (mode 600, replaced atomically). */
int cimg_registry_login (const char *server, const char *user, const char *password,
                         cimg_error_t *err);
/* Look up the stored credentials of server (NULL user when there are none). */
int cimg_registry_credentials (const char *server, char **user, char **password, cimg_error_t *err);
/* Remove server's credentials from ~/.docker/config.json. *found says whether there were any. */
int cimg_registry_logout (const char *server, bool *found, cimg_error_t *err);

#endif
