/* The WWW-Authenticate challenge parser, and the other registry response headers cimg parses
   (Content-Range, Retry-After, an upload session's Range, token times, sizes). */
#include "registry/registry-internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = xstrndup ((const char *)data, size);
  struct reg_challenge c;
  memset (&c, 0, sizeof c);
  if (reg_challenge_parse (s, &c) == 0)
    reg_challenge_clear (&c);
  int64_t a, b, t;
  reg_parse_content_range (s, &a, &b, &t);
  reg_parse_retry_after (s);
  reg_parse_upload_range (s, 0, &a);
  reg_parse_upload_range (s, 1, &a);
  reg_parse_size (s, &a);
  reg_parse_rfc3339_ms (s, &a);
  reg_token_refresh_after_ms (300, s, 1700000000000);
  free (s);
  return 0;
}
