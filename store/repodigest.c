/* Repo digests recorded after the fact (push). The index holds them on the image's "i" line,
   so this is one index update: the image record and its blobs are not touched. */
#include "store/repodigest.h"
#include "store/store-internal.h"

#include <errno.h>
#include <string.h>

struct repodigest_data
{
  const char *id, *repo_digest;
};

static int
index_add_repo_digest (json_t *idx, void *data, cimg_error_t *err)
{
  struct repodigest_data *d = data;
  json_t *img = json_object_get (json_object_get (idx, "images"), d->id);
  if (img == NULL)
    return cimg_error_set (err, ENOENT, "image %s is not in the store", d->id);
  json_t *digests = json_object_get (img, "digests");
  if (!json_is_array (digests))
    {
      digests = json_array ();
      json_object_set_new (img, "digests", digests);
    }
  size_t i;
  json_t *v;
  json_array_foreach (digests, i, v)
  {
    if (json_is_string (v) && strcmp (json_string_value (v), d->repo_digest) == 0)
      return 0;
  }
  json_array_append_new (digests, json_string (d->repo_digest));
  return 0;
}

int
cimg_store_add_repo_digest (struct cimg_store *s, const char *id, const char *repo_digest,
                            cimg_error_t *err)
{
  /* The index is one record a line, fields split at spaces: a name with a space or a line
     break would corrupt it, so the form is checked here rather than trusted. */
  const char *at = repo_digest ? strrchr (repo_digest, '@') : NULL;
  if (at == NULL || at == repo_digest || !cimg_digest_valid (at + 1)
      || strpbrk (repo_digest, " \t\r\n") != NULL)
    return cimg_error_set (err, EINVAL, "\"%s\" is not a repo digest (NAME@sha256:…)",
                           repo_digest ? repo_digest : "");
  if (!cimg_digest_valid (id))
    return cimg_error_set (err, EINVAL, "\"%s\" is not an image ID", id);
  struct repodigest_data d = { id, repo_digest };
  return cimg_index_update (s, index_add_repo_digest, &d, err);
}
