/* Manifests, indexes and image configs as a registry or an archive hands them over: the media
   type guess, the index platform choice, the manifest parser, and the store's recording of a
   config (rootfs.diff_ids, created) for an image without layers. */
#include "registry/registry-internal.h"
#include "tests/fuzz/fuzz-common.h"

#include <stdint.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_env_init ();
  cimg_error_t err = { 0 };
  json_t *j = cimg_json_parse ((const char *)data, size, &err);
  cimg_error_clear (&err);
  if (j == NULL)
    return 0;
  const char *mt = reg_manifest_media_type (j);
  (void)reg_media_type_is_index (mt);
  (void)reg_media_type_is_manifest (mt);
  const char *platforms[] = { NULL, "linux/arm64", "linux/arm/v7", "windows/amd64" };
  for (size_t i = 0; i < ARRAY_SIZE (platforms); i++)
    {
      struct reg_platform p;
      struct reg_descriptor d;
      if (reg_platform_parse (platforms[i], &p, &err) == 0)
        reg_index_choose (j, &p, &d, &err);
      cimg_error_clear (&err);
    }
  struct reg_manifest m;
  memset (&m, 0, sizeof m);
  if (reg_manifest_parse (j, &m, &err) == 0)
    reg_manifest_clear (&m);
  cimg_error_clear (&err);
  json_decref (j);

  struct cimg_store *s = fuzz_store_open ();
  char id[CIMG_DIGEST_BUFSIZE];
  int rc = cimg_store_add_image (s, (const char *)data, size, NULL, 0, NULL, 0, NULL, id, &err);
  fuzz_note ("add image", rc, &err);
  fuzz_store_done (s);
  return 0;
}
