/* Unit tests for store/inflate.c: what comes out is the stream's bytes whatever sizes the
   compressed input arrives in (it is gathered into batches of 128 KiB before it is decoded, so
   the sizes around a batch matter), into the inflater's own buffer or one lent by the consumer;
   a stream cut short, damaged, or whose consumer fails is refused, at a write or at the end,
   never taken as whole. The streams are made by zlib and libzstd, not by cimg. */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "store/store-internal.h"
#include "tests/unit/tar-helpers.h"

#define BATCH (128 * 1024) /* IN_BATCH in store/inflate.c */

struct out
{
  struct membuf m;
  bool lend;               /* lend a buffer of our own, as the layer sink lends its ring */
  unsigned char lent[777]; /* an odd size: the inflater must stop where it ends */
  size_t fail_after;       /* refuse the bytes once this many came (0: never) */
};

static int
collect (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  struct out *o = data;
  if (o->fail_after && o->m.len + len > o->fail_after)
    return cimg_error_set (err, EIO, "consumer: disk full");
  membuf_add (&o->m, buf, len);
  return 0;
}

static unsigned char *
lend (void *data, size_t *cap)
{
  struct out *o = data;
  if (!o->lend)
    return NULL;
  if (*cap > sizeof o->lent)
    *cap = sizeof o->lent;
  return o->lent;
}

/* Text with runs of noise: about 3:1, like a layer of /usr. */
static void
content (struct membuf *m, size_t len)
{
  memset (m, 0, sizeof *m);
  uint32_t x = 2463534242u;
  char line[96];
  while (m->len < len)
    {
      x ^= x << 13;
      x ^= x >> 17;
      x ^= x << 5;
      int n = snprintf (line, sizeof line, "line %zu: %08x %s\n", m->len, x,
                        (x & 3) ? "the same words again" : "");
      size_t take = len - m->len < (size_t)n ? len - m->len : (size_t)n;
      membuf_add (m, line, take);
    }
}

enum form
{
  F_PLAIN,
  F_GZIP,
  F_GZIP2, /* two gzip members, one after the other (gzip -d reads them as one stream) */
  F_ZSTD,
};
static const char *const form_name[] = { "tar", "gzip", "gzip, 2 members", "zstd" };

static void
pack (enum form f, const struct membuf *plain, struct membuf *packed)
{
  switch (f)
    {
    case F_PLAIN:
      memset (packed, 0, sizeof *packed);
      membuf_add (packed, plain->data, plain->len);
      return;
    case F_GZIP:
      gzip_buf (plain, packed);
      return;
    case F_GZIP2:
      {
        size_t cut = plain->len / 3;
        struct membuf a = { .data = plain->data, .len = cut };
        struct membuf b = { .data = plain->data + cut, .len = plain->len - cut };
        struct membuf ga, gb;
        gzip_buf (&a, &ga);
        gzip_buf (&b, &gb);
        memset (packed, 0, sizeof *packed);
        membuf_add (packed, ga.data, ga.len);
        membuf_add (packed, gb.data, gb.len);
        free (ga.data);
        free (gb.data);
        return;
      }
    case F_ZSTD:
      zstd_buf (plain, packed);
      return;
    }
}

/* Feeds `packed` in pieces of `chunk` bytes; 0 when every write and the finish succeeded. */
static int
run (const struct membuf *packed, size_t chunk, struct out *o, cimg_error_t *err)
{
  struct cimg_inflater *z = cimg_inflater_new (collect, o);
  cimg_inflater_set_space (z, lend);
  int rc = 0;
  for (size_t off = 0; rc == 0 && off < packed->len;)
    {
      size_t n = packed->len - off < chunk ? packed->len - off : chunk;
      rc = cimg_inflater_write (z, packed->data + off, n, err);
      off += n;
    }
  if (rc == 0)
    rc = cimg_inflater_finish (z, err);
  cimg_inflater_free (z);
  return rc;
}

static const size_t chunks[]
    = { 1000, 16384, BATCH - 1, BATCH, BATCH + 1, 3 * BATCH + 5, SIZE_MAX };

/* `in`, fed in every size of chunks[], is refused each time with an error that contains
   `want`; `what` says which case failed. */
static void
expect_refused (const struct membuf *in, size_t fail_after, const char *want, const char *what)
{
  for (size_t ci = 0; ci < ARRAY_SIZE (chunks); ci++)
    {
      struct out o = { .fail_after = fail_after };
      cimg_error_t err = { 0 };
      if (run (in, chunks[ci], &o, &err) == 0)
        fail_msg ("%s (chunk %zu): taken as whole", what, chunks[ci]);
      if (strstr (err.msg, want) == NULL)
        fail_msg ("%s (chunk %zu): \"%s\" does not say \"%s\"", what, chunks[ci], err.msg, want);
      free (o.m.data);
      cimg_error_clear (&err);
    }
}

static void
test_same_bytes_however_fed (void **state)
{
  (void)state;
  static const size_t sizes[] = { 0, 100, 700 * 1000 };
  for (size_t si = 0; si < ARRAY_SIZE (sizes); si++)
    for (enum form f = F_PLAIN; f <= F_ZSTD; f++)
      {
        struct membuf plain, packed;
        content (&plain, sizes[si]);
        pack (f, &plain, &packed);
        for (size_t ci = 0; ci < ARRAY_SIZE (chunks); ci++)
          for (int lent = 0; lent < 2; lent++)
            {
              struct out o = { .lend = lent };
              cimg_error_t err = { 0 };
              if (run (&packed, chunks[ci], &o, &err) < 0)
                fail_msg ("%s of %zu bytes, chunk %zu: %s", form_name[f], sizes[si], chunks[ci],
                          err.msg);
              if (o.m.len != plain.len || (plain.len && memcmp (o.m.data, plain.data, plain.len)))
                fail_msg ("%s of %zu bytes, chunk %zu, %s buffer: %zu bytes out, not the same",
                          form_name[f], sizes[si], chunks[ci], lent ? "lent" : "own", o.m.len);
              free (o.m.data);
            }
        free (plain.data);
        free (packed.data);
      }
  /* Byte by byte once: the magic number itself split over writes. */
  struct membuf plain, packed;
  content (&plain, 5000);
  pack (F_GZIP2, &plain, &packed);
  struct out o = { 0 };
  cimg_error_t err = { 0 };
  assert_int_equal (run (&packed, 1, &o, &err), 0);
  assert_int_equal (o.m.len, plain.len);
  assert_memory_equal (o.m.data, plain.data, plain.len);
  free (o.m.data);
  free (plain.data);
  free (packed.data);
}

static void
test_cut_short_is_refused (void **state)
{
  (void)state;
  struct membuf plain;
  content (&plain, 300 * 1000);
  for (enum form f = F_GZIP; f <= F_ZSTD; f++)
    {
      struct membuf packed;
      pack (f, &plain, &packed);
      /* Without its last bytes (gzip: part of the CRC and size trailer; zstd: of the last block),
         and without its second half. */
      size_t cuts[] = { packed.len - 3, packed.len / 2 };
      for (size_t ki = 0; ki < ARRAY_SIZE (cuts); ki++)
        {
          struct membuf part = { .data = packed.data, .len = cuts[ki] };
          char what[96];
          snprintf (what, sizeof what, "%s cut to %zu of %zu bytes", form_name[f], cuts[ki],
                    packed.len);
          expect_refused (&part, 0, "truncated", what);
        }
      free (packed.data);
    }
  free (plain.data);
}

/* gzip carries a CRC of what it inflates to: bytes changed inside the compressed data give
   wrong codes or codes that decode to other bytes, and either way the stream is refused. (A
   zstd frame without a checksum has no such guard; the blob's digest is what protects it.) */
static void
test_damaged_gzip_is_refused (void **state)
{
  (void)state;
  struct membuf plain;
  content (&plain, 300 * 1000);
  for (enum form f = F_GZIP; f <= F_GZIP2; f++)
    {
      struct membuf packed;
      pack (f, &plain, &packed);
      for (size_t at = packed.len / 5; at < packed.len - 16; at += packed.len / 5)
        {
          struct membuf bad = { 0 };
          membuf_add (&bad, packed.data, packed.len);
          for (size_t i = 0; i < 8; i++)
            bad.data[at + i] ^= 0x5a;
          char what[96];
          snprintf (what, sizeof what, "%s damaged at %zu of %zu", form_name[f], at, packed.len);
          expect_refused (&bad, 0, "gzip: corrupt stream", what);
          free (bad.data);
        }
      free (packed.data);
    }
  free (plain.data);
}

/* The consumer's error reaches the caller: from a write, or from the finish that decodes the
   last batch. */
static void
test_consumer_error_is_returned (void **state)
{
  (void)state;
  struct membuf plain;
  content (&plain, 700 * 1000);
  static const size_t fail_at[] = { 10, 600 * 1000 };
  for (enum form f = F_PLAIN; f <= F_ZSTD; f++)
    {
      struct membuf packed;
      pack (f, &plain, &packed);
      for (size_t ai = 0; ai < ARRAY_SIZE (fail_at); ai++)
        {
          char what[96];
          snprintf (what, sizeof what, "%s, the consumer failing after %zu bytes", form_name[f],
                    fail_at[ai]);
          expect_refused (&packed, fail_at[ai], "consumer: disk full", what);
        }
      free (packed.data);
    }
  free (plain.data);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test (test_same_bytes_however_fed),
    cmocka_unit_test (test_cut_short_is_refused),
    cmocka_unit_test (test_damaged_gzip_is_refused),
    cmocka_unit_test (test_consumer_error_is_returned),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
