/* store: a container's write layer as Docker's diff and commit see it. The caller hands in the
   upper dir and a view of the image's layers below it (an overlay of the lowers, mounted by the
   caller); nothing here mounts or knows the runtime. See docs/runtime.md, "Container
   filesystem commands". */
#ifndef CIMG_STORE_CONTAINER_FS_H
#define CIMG_STORE_CONTAINER_FS_H

#include "store/container.h"

/* One line of `cimg diff`: kind 'A', 'C' or 'D' and an absolute path. */
struct cimg_change
{
  char kind;
  char *path;
};
void cimg_changes_free (struct cimg_change *v, size_t n);

/* The paths the runtime creates in the write layer only as mount points (/proc, /sys, /dev,
   /etc/hosts, /etc/hostname, /etc/resolv.conf and the destinations of the container's mounts),
   newly allocated. Docker keeps these in an "init" layer below the write layer; here they are
   recognised instead (absent from the image and empty) and left out of diff and commit. */
char **cimg_container_placeholders (const struct cimg_container *c);

/* The changes of the write layer upperfd over the image's merged layers lowerfd (-1 when the
   image has no layer), in Docker's order (a pre-order walk, names sorted bytewise): whiteouts
   are D; an opaque directory is C when the image had a directory there (else A), and the image's
   entries it hides that the write layer does not bring back are D; a directory the image had is
   C only when something below it changed or its mode or owner did. */
int cimg_container_changes (int upperfd, int lowerfd, char *const *placeholders,
                            struct cimg_change **out, size_t *n, cimg_error_t *err);

/* What commit records beside the layer. */
struct cimg_commit_opts
{
  const char *container_id;
  json_t *config;         /* the new image's "config" object (borrowed) */
  const char *created_by; /* history: the container's command */
  const char *comment;    /* -m, may be NULL */
  const char *author;     /* -a, may be NULL */
  const char *tag;        /* REPO[:TAG], may be NULL */
};

/* Commit the write layer upperfd (overlay form) of a container of image base as a new image:
   a copy of the upper dir made of hard links (in a temp directory "commit.tmp-*" under
   ctrdirfd, removed again) without the placeholders is packed with ".wh." whiteouts through
   the layer sink; an empty change adds no layer (history "empty_layer", as Docker). The image
   is recorded only once its layer is complete, then tagged. Returns 0 and the ID in id_out,
   or -1 with err set, leaving no image. */
int cimg_container_commit (struct cimg_store *s, const struct cimg_image *base, int upperfd,
                           int lowerfd, int ctrdirfd, char *const *placeholders,
                           const struct cimg_commit_opts *o, char id_out[CIMG_DIGEST_BUFSIZE],
                           cimg_error_t *err);

#endif
