/* Tar writers shared by the layer tests (test_layer.c, test_layer_attacks.c, test_pull_sync.c):
   tars made in memory with libarchive's writer, ustar headers made by hand for what that writer
   refuses to write, and gzip/zstd of a buffer. Include after <cmocka.h> and
   "store/store-internal.h". Static inline: each test program uses a different subset. */
#ifndef CIMG_TESTS_TAR_HELPERS_H
#define CIMG_TESTS_TAR_HELPERS_H

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

/* Every entry's mtime: fixed, so that equal layers are equal bytes. */
#define TAR_MTIME 1600000000

struct membuf
{
  unsigned char *data;
  size_t len, cap;
};

static inline void
membuf_add (struct membuf *m, const void *p, size_t n)
{
  if (n == 0)
    return; /* p may be NULL then, which memcpy does not allow */
  if (m->len + n > m->cap)
    {
      m->cap = (m->len + n) * 2 + 4096;
      m->data = xrealloc (m->data, m->cap);
    }
  memcpy (m->data + m->len, p, n);
  m->len += n;
}

/* A whole buffer compressed in one gzip member or one zstd frame. */
static inline void
gzip_buf (const struct membuf *in, struct membuf *out)
{
  memset (out, 0, sizeof *out);
  z_stream z;
  memset (&z, 0, sizeof z);
  assert_int_equal (deflateInit2 (&z, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  out->cap = deflateBound (&z, in->len) + 64;
  out->data = xmalloc (out->cap);
  z.next_in = in->data;
  z.avail_in = (uInt)in->len;
  z.next_out = out->data;
  z.avail_out = (uInt)out->cap;
  assert_int_equal (deflate (&z, Z_FINISH), Z_STREAM_END);
  out->len = z.total_out;
  deflateEnd (&z);
}

static inline void
zstd_buf (const struct membuf *in, struct membuf *out)
{
  memset (out, 0, sizeof *out);
  out->cap = ZSTD_compressBound (in->len);
  out->data = xmalloc (out->cap);
  size_t n = ZSTD_compress (out->data, out->cap, in->data, in->len, 3);
  assert_false (ZSTD_isError (n));
  out->len = n;
}

static inline la_ssize_t
mem_write_cb (struct archive *a, void *data, const void *buf, size_t n)
{
  membuf_add (data, buf, n);
  return (la_ssize_t)n;
}

struct tarw
{
  struct archive *a;
  struct membuf m;
};

static inline void
tw_init (struct tarw *t)
{
  memset (t, 0, sizeof *t);
  t->a = archive_write_new ();
  assert_non_null (t->a);
  /* Full pax, so that sub-second mtimes and long names are always carried. */
  assert_int_equal (archive_write_set_format_pax (t->a), ARCHIVE_OK);
  assert_int_equal (archive_write_open (t->a, &t->m, NULL, mem_write_cb, NULL), ARCHIVE_OK);
}

/* Ends the archive; t->m then holds the whole tar. Idempotent. */
static inline void
tw_close (struct tarw *t)
{
  if (t->a == NULL)
    return;
  assert_int_equal (archive_write_close (t->a), ARCHIVE_OK);
  archive_write_free (t->a);
  t->a = NULL;
}

static inline void
tw_free (struct tarw *t)
{
  if (t->a)
    archive_write_free (t->a);
  free (t->m.data);
  memset (t, 0, sizeof *t);
}

static inline struct archive_entry *
ent (const char *name, mode_t type, mode_t perm)
{
  struct archive_entry *e = archive_entry_new ();
  archive_entry_copy_pathname (e, name);
  archive_entry_set_filetype (e, type);
  archive_entry_set_perm (e, perm);
  archive_entry_set_mtime (e, TAR_MTIME, 0);
  return e;
}

/* Writes e (freeing it) with data as its content. */
static inline void
tw_put (struct tarw *t, struct archive_entry *e, const void *data, size_t len)
{
  if (archive_entry_filetype (e) == AE_IFREG && archive_entry_hardlink (e) == NULL)
    archive_entry_set_size (e, (la_int64_t)len);
  if (archive_write_header (t->a, e) != ARCHIVE_OK)
    fail_msg ("write header %s: %s", archive_entry_pathname (e), archive_error_string (t->a));
  if (len > 0)
    assert_int_equal (archive_write_data (t->a, data, len), (la_ssize_t)len);
  archive_entry_free (e);
}

/* cimg_layer_apply of an in-memory tar into rootfd (max_size 0: no limit). */
static inline int
apply_buf (const void *buf, size_t len, int rootfd, int64_t max_size,
           struct cimg_apply_stats *stats, cimg_error_t *err)
{
  struct archive *a = archive_read_new ();
  archive_read_support_format_tar (a);
  assert_int_equal (archive_read_open_memory (a, buf, len), ARCHIVE_OK);
  struct cimg_apply_opts opts = { .max_size = max_size };
  int r = cimg_layer_apply (a, rootfd, &opts, stats, err);
  archive_read_free (a);
  return r;
}

/* The same for t, ended first if it is not yet. */
static inline int
apply_tw (struct tarw *t, int rootfd, cimg_error_t *err)
{
  if (t->a)
    tw_close (t);
  return apply_buf (t->m.data, t->m.len, rootfd, 0, NULL, err);
}

static inline void
tw_file (struct tarw *t, const char *name, mode_t perm, const char *content)
{
  tw_put (t, ent (name, AE_IFREG, perm), content, strlen (content));
}

static inline void
tw_dir (struct tarw *t, const char *name, mode_t perm)
{
  tw_put (t, ent (name, AE_IFDIR, perm), NULL, 0);
}

static inline void
tw_symlink (struct tarw *t, const char *name, const char *target)
{
  struct archive_entry *e = ent (name, AE_IFLNK, 0777);
  archive_entry_copy_symlink (e, target);
  tw_put (t, e, NULL, 0);
}

static inline void
tw_hardlink (struct tarw *t, const char *name, const char *target)
{
  struct archive_entry *e = ent (name, AE_IFREG, 0644);
  archive_entry_copy_hardlink (e, target);
  archive_entry_set_size (e, 0);
  tw_put (t, e, NULL, 0);
}

/* Fills in the checksum of a 512-byte header made by hand and appends it to m. */
static inline void
raw_header_add (struct membuf *m, char h[512])
{
  memset (h + 148, ' ', 8);
  unsigned sum = 0;
  for (size_t i = 0; i < 512; i++)
    sum += (unsigned char)h[i];
  snprintf (h + 148, 8, "%06o", sum);
  h[155] = ' ';
  membuf_add (m, h, 512);
}

/* A ustar header written by hand (type '0' file, '2' symlink, '5' directory…), for what
   libarchive's writer will not produce, such as an entry without a name. */
static inline void
raw_header (struct membuf *m, const char *name, char type, const char *link, size_t size)
{
  char h[512];
  memset (h, 0, sizeof h);
  memcpy (h, name, strnlen (name, 100));
  snprintf (h + 100, 8, "%07o", 0644);
  snprintf (h + 108, 8, "%07o", 0);
  snprintf (h + 116, 8, "%07o", 0);
  snprintf (h + 124, 12, "%011zo", size);
  snprintf (h + 136, 12, "%011o", TAR_MTIME);
  h[156] = type;
  if (link)
    memcpy (h + 157, link, strnlen (link, 100));
  memcpy (h + 257, "ustar", 6);
  memcpy (h + 263, "00", 2);
  raw_header_add (m, h);
}

/* The two zero blocks that end a tar. */
static inline void
raw_end (struct membuf *m)
{
  char z[1024];
  memset (z, 0, sizeof z);
  membuf_add (m, z, sizeof z);
}

#endif
