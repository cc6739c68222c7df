#include "util/util.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#define OPENSSL_SUPPRESS_DEPRECATED 1
#include <openssl/sha.h>

struct cimg_sha256
{
  SHA256_CTX c;
};

struct cimg_sha256 *
cimg_sha256_new (void)
{
  struct cimg_sha256 *h = xzalloc (sizeof *h);
  SHA256_Init (&h->c);
  return h;
}

void
cimg_sha256_update (struct cimg_sha256 *h, const void *buf, size_t len)
{
  SHA256_Update (&h->c, buf, len);
}

static void
to_hex (const unsigned char *md, size_t n, char *out)
{
  static const char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < n; i++)
    {
      out[2 * i] = hex[md[i] >> 4];
      out[2 * i + 1] = hex[md[i] & 15];
    }
  out[2 * n] = '\0';
}

void
cimg_sha256_final (struct cimg_sha256 *h, char out[CIMG_DIGEST_BUFSIZE])
{
  unsigned char md[32];
  SHA256_Final (md, &h->c);
  memcpy (out, "sha256:", 7);
  to_hex (md, 32, out + 7);
}

void
cimg_sha256_reset (struct cimg_sha256 *h)
{
  SHA256_Init (&h->c);
}

void
cimg_sha256_free (struct cimg_sha256 *h)
{
  if (h == NULL)
    return;
  free (h);
}

void
cimg_sha256_freep (struct cimg_sha256 **h)
{
  cimg_sha256_free (*h);
  *h = NULL;
}

void
cimg_sha256_buf (const void *buf, size_t len, char out[CIMG_DIGEST_BUFSIZE])
{
  unsigned char md[32];
  SHA256_CTX c;
  SHA256_Init (&c);
  SHA256_Update (&c, buf, len);
  SHA256_Final (md, &c);
  memcpy (out, "sha256:", 7);
  to_hex (md, 32, out + 7);
}

bool
cimg_hex64_valid (const char *s)
{
  size_t i;
  for (i = 0; i < 64; i++)
    if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
      return false;
  return s[64] == '\0';
}

bool
cimg_digest_valid (const char *s)
{
  return s != NULL && strncmp (s, "sha256:", 7) == 0 && cimg_hex64_valid (s + 7);
}

const char *
cimg_digest_hex (const char *s)
{
  return s + 7;
}

void
cimg_random_hex64 (char out[65])
{
  unsigned char b[32];
  size_t got = 0;
  while (got < sizeof b)
    {
      ssize_t n = getrandom (b + got, sizeof b - got, 0);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          abort ();
        }
      got += (size_t)n;
    }
  to_hex (b, 32, out);
}
