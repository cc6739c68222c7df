/* The Dockerfile parser (instructions, continuations, heredocs, JSON forms, directives) and the
   --dry-run plan, which expands FROM lines and stage names. */
#include "build/build.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  cimg_error_t err = { 0 };
  struct cimg_dockerfile *df = cimg_build_parse ("Dockerfile", (const char *)data, size, &err);
  if (df == NULL)
    {
      cimg_error_clear (&err);
      return 0;
    }
  char *plan = NULL;
  if (cimg_build_plan (df, NULL, NULL, &plan, &err) == 0)
    free (plan);
  cimg_error_clear (&err);
  char *const args[] = { "A=1", "B", "VERSION=${A:-x}", NULL };
  if (cimg_build_plan (df, args, "build", &plan, &err) == 0)
    free (plan);
  cimg_error_clear (&err);
  cimg_dockerfile_free (df);
  return 0;
}
