/* docker load: a docker-archive or OCI-layout tar (plain or compressed), with its manifest.json,
   index.json, configs and layers, loaded into a fresh store beside the canary. */
#include "tests/fuzz/fuzz-common.h"

#include <stdint.h>
#include <sys/mman.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  fuzz_env_init ();
  uint8_t *fixed = fuzz_fix_tar_checksums (data, size);
  int fd = memfd_create ("cimg-fuzz-archive", MFD_CLOEXEC);
  if (fd < 0 || cimg_write_all (fd, fixed, size) < 0 || lseek (fd, 0, SEEK_SET) < 0)
    abort ();
  free (fixed);
  struct cimg_store *s = fuzz_store_open ();
  cimg_error_t err = { 0 };
  char **report = NULL;
  int rc = cimg_store_load (s, fd, &report, &err);
  cimg_strv_free (report);
  fuzz_note ("load", rc, &err);
  close (fd);
  fuzz_store_done (s);
  return 0;
}
