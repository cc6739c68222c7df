/* Image references. Beyond not crashing: what parses prints as a reference that parses again to
   the same thing, and the familiar form of a full name parses to that same name. */
#include "store/store.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

static bool
is_image_id (const char *s)
{
  size_t n = strlen (s);
  return n == 64 && strspn (s, "0123456789abcdef") == n;
}

static void
check_roundtrip (const struct cimg_ref *r)
{
  char *s = cimg_ref_string (r);
  char *name = cimg_ref_name (r);
  char *familiar = cimg_ref_familiar_name (r);
  cimg_error_t err = { 0 };
  struct cimg_ref *again = cimg_ref_parse (s, &err);
  if (again == NULL)
    {
      fprintf (stderr, "\"%s\" does not parse again: %s\n", s, err.msg);
      abort ();
    }
  char *s2 = cimg_ref_string (again);
  if (strcmp (s, s2) != 0)
    {
      fprintf (stderr, "\"%s\" parses again as \"%s\"\n", s, s2);
      abort ();
    }
  /* Docker refuses a whole reference that is 64 lower-case hex digits (it would be an image
     ID), yet accepts that name with a tag: "<64 hex>:t" parses, its familiar name does not. */
  if (!is_image_id (familiar))
    {
      struct cimg_ref *fam = cimg_ref_parse_name (familiar, &err);
      if (fam == NULL)
        {
          fprintf (stderr, "familiar name \"%s\" of \"%s\" does not parse: %s\n", familiar, s,
                   err.msg);
          abort ();
        }
      char *fam_name = cimg_ref_name (fam);
      if (strcmp (fam_name, name) != 0)
        {
          fprintf (stderr, "familiar name \"%s\" of \"%s\" names \"%s\"\n", familiar, name,
                   fam_name);
          abort ();
        }
      if (r->tag)
        {
          char *full = xasprintf ("%s:%s", name, r->tag);
          free (cimg_ref_familiar_string (full));
          free (full);
        }
      free (fam_name);
      cimg_ref_free (fam);
    }
  cimg_error_clear (&err);
  free (s2);
  cimg_ref_free (again);
  free (familiar);
  free (name);
  free (s);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *s = xstrndup ((const char *)data, size);
  cimg_error_t err = { 0 };
  struct cimg_ref *r = cimg_ref_parse (s, &err);
  if (r)
    {
      check_roundtrip (r);
      cimg_ref_free (r);
    }
  cimg_error_clear (&err);
  r = cimg_ref_parse_name (s, &err);
  if (r)
    {
      free (cimg_ref_familiar_name (r));
      cimg_ref_free (r);
    }
  cimg_error_clear (&err);
  free (cimg_ref_familiar_string (s));
  free (s);
  return 0;
}
