/* Layer apply through the layer sink, as pull and load feed it: format detection, gzip/zstd
   inflation, the tar reader and the safe extraction, into a fresh store beside the canary. The
   input goes in uneven chunks so that headers and blocks straddle writes. */
#include "tests/fuzz/fuzz-common.h"

#include <stdint.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_env_init ();
  uint8_t *fixed = fuzz_fix_tar_checksums (data, size);
  data = fixed;
  struct cimg_store *s = fuzz_store_open ();
  cimg_error_t err = { 0 };
  struct cimg_layer_sink *k = cimg_layer_sink_new (s, NULL, 0, &err);
  if (k == NULL)
    {
      fprintf (stderr, "layer sink: %s\n", err.msg);
      abort ();
    }
  int rc = 0;
  size_t off = 0, chunk = 1;
  while (rc == 0 && off < size)
    {
      size_t n = size - off < chunk ? size - off : chunk;
      rc = cimg_layer_sink_write (k, data + off, n, &err);
      off += n;
      chunk = chunk * 7 % 4093 + 1;
    }
  struct cimg_layer_info info;
  if (rc == 0)
    rc = cimg_layer_sink_finish (k, NULL, NULL, &info, &err);
  fuzz_note ("layer", rc, &err);
  cimg_layer_sink_free (k);
  fuzz_store_done (s);
  free (fixed);
  return 0;
}
