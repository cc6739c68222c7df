/* store internals shared between the store's own files and its unit tests. */
#ifndef CIMG_STORE_INTERNAL_H
#define CIMG_STORE_INTERNAL_H

#include "store/store.h"

struct archive;

/* Media types. */
#define MT_DOCKER_MANIFEST "application/vnd.docker.distribution.manifest.v2+json"
#define MT_DOCKER_LIST "application/vnd.docker.distribution.manifest.list.v2+json"
#define MT_DOCKER_CONFIG "application/vnd.docker.container.image.v1+json"
#define MT_DOCKER_LAYER_GZIP "application/vnd.docker.image.rootfs.diff.tar.gzip"
#define MT_DOCKER_LAYER_TAR "application/vnd.docker.image.rootfs.diff.tar"
#define MT_OCI_MANIFEST "application/vnd.oci.image.manifest.v1+json"
#define MT_OCI_INDEX "application/vnd.oci.image.index.v1+json"
#define MT_OCI_CONFIG "application/vnd.oci.image.config.v1+json"
#define MT_OCI_LAYER_TAR "application/vnd.oci.image.layer.v1.tar"
#define MT_OCI_LAYER_GZIP "application/vnd.oci.image.layer.v1.tar+gzip"
#define MT_OCI_LAYER_ZSTD "application/vnd.oci.image.layer.v1.tar+zstd"

/* Manifests and configs larger than this are refused. */
#define CIMG_MAX_METADATA (4 * 1024 * 1024)

/* ---------------------------------------------------------------- layer apply */

struct cimg_apply_opts
{
  /* Refuse a layer whose entries add up to more than this many bytes of file content
     (decompression bombs). 0: no limit. */
  int64_t max_size;
};

struct cimg_apply_stats
{
  int64_t size;    /* bytes of regular file content written */
  int64_t entries; /* entries applied */
};

/* Apply every entry of the tar archive a (opened for reading by the caller, any format
   libarchive reads) inside the directory rootfd, as an overlay upper dir:
   - names are cleaned; a name that would leave the root ("../x") is refused;
   - parents are resolved inside rootfd (symlinks in the layer cannot lead out of it);
   - the final component is never followed: an existing file, link or directory of another
     type in its place is replaced;
   - hardlinks must point at an entry inside the layer;
   - OCI whiteouts become overlay whiteouts: ".wh.NAME" -> char device 0:0 NAME,
     ".wh..wh..opq" -> xattr trusted.overlay.opaque=y on the directory; other ".wh..wh."
     names (aufs metadata) are skipped; a bare ".wh." is refused;
   - ownership, then mode (so setuid/setgid survive chown), xattrs (never trusted.overlay.*),
     mtimes (directories' last), device nodes and fifos.
   On error, returns -1 with err naming the entry ("entry \"../etc/passwd\": path leaves the
   layer"); the caller removes the partial directory. */
int cimg_layer_apply (struct archive *a, int rootfd, const struct cimg_apply_opts *opts,
                      struct cimg_apply_stats *stats, cimg_error_t *err);

/* ---------------------------------------------------------------- layer pack */

/* Receives the tar bytes. Returns 0, or -1 with err set to stop packing. */
typedef int (*cimg_pack_write_fn) (void *data, const void *buf, size_t len, cimg_error_t *err);

enum
{
  /* rootfd is an overlay upper dir: char 0:0 devices become ".wh.NAME" entries and
     trusted.overlay.opaque=y directories get a ".wh..wh..opq" entry. */
  CIMG_PACK_OVERLAY = 1 << 0,
};

/* Pack the tree under rootfd as a PAX tar (entries sorted by name, so the same tree gives the
   same bytes; ownership, modes, mtimes, xattrs except trusted.overlay.*, hardlinks within the
   tree, device nodes, fifos). Symlinks are stored, never followed. */
int cimg_layer_pack (int rootfd, int flags, cimg_pack_write_fn fn, void *data, cimg_error_t *err);

/* ---------------------------------------------------------------- misc */

/* Open a read archive over fd that accepts tar (any variant) with any compression filter. */
struct archive *cimg_archive_read_fd (int fd, cimg_error_t *err);
void cimg_archive_read_freep (struct archive **a);
#define cleanup_archive_read __attribute__ ((cleanup (cimg_archive_read_freep)))

/* ---------------------------------------------------------------- the store object */

struct cimg_store
{
  char *root;
  int dirfd;
  int lockfd;
  int lock_mode; /* 0, CIMG_LOCK_SHARED or CIMG_LOCK_EXCLUSIVE */
};

/* The index (tags and image summaries) is read-modify-written under index.lock, held exclusive
   for the few milliseconds of one update; readers read index.json without a lock since it is
   only ever replaced by rename. */
json_t *cimg_index_load (struct cimg_store *s, cimg_error_t *err);
/* The raw index text (NULL when the store has none yet), for readers that must be fast. */
int cimg_index_read (struct cimg_store *s, char **buf, size_t *len, cimg_error_t *err);
/* Split the next line at *cursor into at most max space-separated fields (in place); returns 0
   at the end. Lines of the raw text after its first (magic) line. */
int cimg_index_next (char **cursor, char **fields, size_t max, size_t *n);
typedef int (*cimg_index_update_fn) (json_t *index, void *data, cimg_error_t *err);
int cimg_index_update (struct cimg_store *s, cimg_index_update_fn fn, void *data,
                       cimg_error_t *err);

/* Decompression of a layer stream (gzip through ISA-L where present, else zlib; zstd; plain),
   detected from its first bytes. */
struct cimg_inflater;
typedef int (*cimg_inflate_out_fn) (void *data, const void *buf, size_t len, cimg_error_t *err);
struct cimg_inflater *cimg_inflater_new (cimg_inflate_out_fn out, void *data);
/* Optional: where the inflater writes its output, a buffer of at most *cap bytes (shrink *cap to
   what it holds, at least 1) that out() is then called with — a consumer with a buffer of its own
   takes the bytes without a copy. NULL: the inflater's own buffer this time. */
typedef unsigned char *(*cimg_inflate_space_fn) (void *data, size_t *cap);
void cimg_inflater_set_space (struct cimg_inflater *z, cimg_inflate_space_fn space);
int cimg_inflater_write (struct cimg_inflater *z, const void *buf, size_t len, cimg_error_t *err);
/* End of input: errors if the compressed stream was truncated. */
int cimg_inflater_finish (struct cimg_inflater *z, cimg_error_t *err);
/* "gzip", "zstd", "tar" once detected, else NULL. */
const char *cimg_inflater_kind (struct cimg_inflater *z);
void cimg_inflater_free (struct cimg_inflater *z);

/* Path helpers: "blobs/sha256/<hex>". digest must be valid. */
char *cimg_blob_path (const char *digest);

#endif
