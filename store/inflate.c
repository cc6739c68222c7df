#include "store/store-internal.h"

#include <errno.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>
#ifdef HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

#define OUT_CHUNK (256 * 1024)

/* Compressed input is gathered into runs of this size before it is decoded. igzip starts
   every call by decoding into its own 64 KiB window and copying that out, and ends it by
   saving the last 32 KiB of output as the next call's history; curl hands over 16 KiB at a
   time (~36 KiB of tar), so fed as it came almost every byte was decoded into the window
   and copied twice. zlib (updatewindow) and zstd (its window buffer) copy per call too. */
#define IN_BATCH (128 * 1024)
/* Output asked for per call when the consumer lends its own buffer (ring_space): large
   enough that one batch of typical layer data (2 – 4:1) is decoded in one call. */
#define OUT_LENT (1024 * 1024)

enum kind
{
  K_DETECT,
  K_PLAIN,
  K_GZIP,
  K_ZSTD
};

struct cimg_inflater
{
  cimg_inflate_out_fn out;
  cimg_inflate_space_fn space;
  void *data;
  enum kind kind;
  unsigned char head[4];
  size_t headlen;
  bool member_done; /* gzip: the last member ended exactly at the end of input so far */
  unsigned char *obuf;
  unsigned char *ibuf; /* IN_BATCH bytes: compressed input not decoded yet */
  size_t ilen;
#ifdef HAVE_ISAL
  struct inflate_state *isal;
#else
  z_stream *z;
#endif
  ZSTD_DStream *zd;
  size_t zret; /* last ZSTD_decompressStream result: 0 when a frame is complete */
};

struct cimg_inflater *
cimg_inflater_new (cimg_inflate_out_fn out, void *data)
{
  struct cimg_inflater *z = xzalloc (sizeof *z);
  z->out = out;
  z->data = data;
  z->obuf = xmalloc (OUT_CHUNK);
  return z;
}

void
cimg_inflater_set_space (struct cimg_inflater *z, cimg_inflate_space_fn space)
{
  z->space = space;
}

/* The buffer for the next piece of output, and its size. */
static unsigned char *
out_space (struct cimg_inflater *z, size_t *cap)
{
  *cap = OUT_LENT;
  unsigned char *p = z->space ? z->space (z->data, cap) : NULL;
  if (p == NULL)
    {
      *cap = OUT_CHUNK;
      return z->obuf;
    }
  return p;
}

const char *
cimg_inflater_kind (struct cimg_inflater *z)
{
  switch (z->kind)
    {
    case K_PLAIN:
      return "tar";
    case K_GZIP:
      return "gzip";
    case K_ZSTD:
      return "zstd";
    default:
      return NULL;
    }
}

static int
start (struct cimg_inflater *z, cimg_error_t *err)
{
  const unsigned char *h = z->head;
  if (z->headlen >= 2 && h[0] == 0x1f && h[1] == 0x8b)
    {
      z->kind = K_GZIP;
#ifdef HAVE_ISAL
      z->isal = xzalloc (sizeof *z->isal);
      isal_inflate_init (z->isal);
      z->isal->crc_flag = ISAL_GZIP;
#else
      z->z = xzalloc (sizeof *z->z);
      if (inflateInit2 (z->z, 16 + MAX_WBITS) != Z_OK)
        return cimg_error_set (err, ENOMEM, "gzip: cannot initialise");
#endif
    }
  else if (z->headlen >= 4 && h[0] == 0x28 && h[1] == 0xb5 && h[2] == 0x2f && h[3] == 0xfd)
    {
      z->kind = K_ZSTD;
      z->zd = ZSTD_createDStream ();
      if (z->zd == NULL)
        return cimg_error_set (err, ENOMEM, "zstd: cannot initialise");
      ZSTD_initDStream (z->zd);
    }
  else if (z->headlen >= 3 && h[0] == 'B' && h[1] == 'Z' && h[2] == 'h')
    return cimg_error_set (err, ENOTSUP,
                           "bzip2-compressed layers are not supported (use gzip, "
                           "zstd or a plain tar)");
  else if (z->headlen >= 4 && h[0] == 0xfd && h[1] == '7' && h[2] == 'z' && h[3] == 'X')
    return cimg_error_set (err, ENOTSUP,
                           "xz-compressed layers are not supported (use gzip, "
                           "zstd or a plain tar)");
  else
    z->kind = K_PLAIN;
  return 0;
}

#ifdef HAVE_ISAL
static int
gzip_write (struct cimg_inflater *z, const unsigned char *buf, size_t len, cimg_error_t *err)
{
  struct inflate_state *st = z->isal;
  st->next_in = (uint8_t *)buf;
  st->avail_in = (uint32_t)len;
  while (st->avail_in > 0)
    {
      if (st->block_state == ISAL_BLOCK_FINISH)
        {
          /* Concatenated gzip members form one stream (as gzip -d treats them). */
          uint8_t *next = st->next_in;
          uint32_t avail = st->avail_in;
          isal_inflate_reset (st);
          st->crc_flag = ISAL_GZIP;
          st->next_in = next;
          st->avail_in = avail;
        }
      size_t cap;
      unsigned char *dst = out_space (z, &cap);
      st->next_out = dst;
      st->avail_out = (uint32_t)cap;
      int r = isal_inflate (st);
      if (r != ISAL_DECOMP_OK)
        return cimg_error_set (err, EINVAL, "gzip: corrupt stream (igzip error %d)", r);
      size_t n = cap - st->avail_out;
      if (n && z->out (z->data, dst, n, err) < 0)
        return -1;
      if (n == 0 && st->avail_in > 0 && st->block_state != ISAL_BLOCK_FINISH)
        return cimg_error_set (err, EINVAL, "gzip: corrupt stream (no progress)");
    }
  z->member_done = st->block_state == ISAL_BLOCK_FINISH;
  return 0;
}
#else
static int
gzip_write (struct cimg_inflater *z, const unsigned char *buf, size_t len, cimg_error_t *err)
{
  z_stream *s = z->z;
  s->next_in = (Bytef *)buf;
  s->avail_in = (uInt)len;
  while (s->avail_in > 0)
    {
      size_t cap;
      unsigned char *dst = out_space (z, &cap);
      s->next_out = dst;
      s->avail_out = (uInt)cap;
      int r = inflate (s, Z_NO_FLUSH);
      if (r != Z_OK && r != Z_STREAM_END && r != Z_BUF_ERROR)
        return cimg_error_set (err, EINVAL, "gzip: corrupt stream (%s)", s->msg ? s->msg : "?");
      size_t n = cap - s->avail_out;
      if (n && z->out (z->data, dst, n, err) < 0)
        return -1;
      z->member_done = r == Z_STREAM_END;
      if (r == Z_STREAM_END)
        inflateReset (s);
    }
  return 0;
}
#endif

static int
zstd_write (struct cimg_inflater *z, const unsigned char *buf, size_t len, cimg_error_t *err)
{
  ZSTD_inBuffer in = { buf, len, 0 };
  while (in.pos < in.size)
    {
      size_t cap;
      unsigned char *dst = out_space (z, &cap);
      ZSTD_outBuffer out = { dst, cap, 0 };
      size_t r = ZSTD_decompressStream (z->zd, &out, &in);
      if (ZSTD_isError (r))
        return cimg_error_set (err, EINVAL, "zstd: corrupt stream (%s)", ZSTD_getErrorName (r));
      z->zret = r;
      if (out.pos && z->out (z->data, dst, out.pos, err) < 0)
        return -1;
    }
  return 0;
}

static int
dispatch (struct cimg_inflater *z, const unsigned char *buf, size_t len, cimg_error_t *err)
{
  switch (z->kind)
    {
    case K_GZIP:
      return gzip_write (z, buf, len, err);
    case K_ZSTD:
      return zstd_write (z, buf, len, err);
    default:
      return z->out (z->data, buf, len, err);
    }
}

/* zlib and igzip count input in 32 bits: feed them at most a GiB at a time. */
static int
feed (struct cimg_inflater *z, const unsigned char *p, size_t len, cimg_error_t *err)
{
  while (len > 0)
    {
      size_t n = len < ((size_t)1 << 30) ? len : (size_t)1 << 30;
      if (dispatch (z, p, n, err) < 0)
        return -1;
      p += n;
      len -= n;
    }
  return 0;
}

static int
flush_batch (struct cimg_inflater *z, cimg_error_t *err)
{
  size_t n = z->ilen;
  z->ilen = 0;
  return n ? dispatch (z, z->ibuf, n, err) : 0;
}

/* Appends to dst (holding *have of cap bytes) what fits of the len bytes at *p, and moves past
   them. */
static void
gather (unsigned char *dst, size_t *have, size_t cap, const unsigned char **p, size_t *len)
{
  size_t take = cap - *have;
  if (take > *len)
    take = *len;
  if (take > 0)
    memcpy (dst + *have, *p, take);
  *have += take;
  *p += take;
  *len -= take;
}

/* Compressed bytes go through IN_BATCH (a tar is handed on as it comes: nothing to gain). */
static int
take_in (struct cimg_inflater *z, const unsigned char *p, size_t len, cimg_error_t *err)
{
  if (z->kind == K_PLAIN)
    return feed (z, p, len, err);
  while (len > 0)
    {
      if (z->ilen == 0 && len >= IN_BATCH)
        return feed (z, p, len, err);
      if (z->ibuf == NULL)
        z->ibuf = xmalloc (IN_BATCH);
      gather (z->ibuf, &z->ilen, IN_BATCH, &p, &len);
      if (z->ilen == IN_BATCH && flush_batch (z, err) < 0)
        return -1;
    }
  return 0;
}

int
cimg_inflater_write (struct cimg_inflater *z, const void *buf, size_t len, cimg_error_t *err)
{
  const unsigned char *p = buf;
  if (z->kind == K_DETECT)
    {
      /* Hold back the first bytes until the magic number can be read. */
      gather (z->head, &z->headlen, sizeof z->head, &p, &len);
      if (z->headlen < sizeof z->head)
        return 0;
      if (start (z, err) < 0)
        return -1;
      if (take_in (z, z->head, z->headlen, err) < 0)
        return -1;
    }
  return take_in (z, p, len, err);
}

int
cimg_inflater_finish (struct cimg_inflater *z, cimg_error_t *err)
{
  if (z->kind == K_DETECT)
    {
      if (start (z, err) < 0)
        return -1;
      if (take_in (z, z->head, z->headlen, err) < 0)
        return -1;
    }
  if (flush_batch (z, err) < 0)
    return -1;
  if (z->kind == K_GZIP && !z->member_done)
    return cimg_error_set (err, EINVAL, "gzip: unexpected end of stream (truncated)");
  if (z->kind == K_ZSTD && z->zret != 0)
    return cimg_error_set (err, EINVAL, "zstd: unexpected end of stream (truncated)");
  return 0;
}

void
cimg_inflater_free (struct cimg_inflater *z)
{
  if (z == NULL)
    return;
  free (z->ibuf);
#ifdef HAVE_ISAL
  free (z->isal);
#else
  if (z->z)
    inflateEnd (z->z);
  free (z->z);
#endif
  if (z->zd)
    ZSTD_freeDStream (z->zd);
  free (z->obuf);
  free (z);
}
