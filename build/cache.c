/* The build step cache: build-cache/<key hex> in the store root holds the state after a step
   (the whole image config and its layers). A record only points at layers; gc does not know
   about it, so every hit is checked against the store and a record whose layers or blobs are
   gone is a miss, never trusted. */
#include "build/build-exec.h"
#include "store/store-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#define CACHE_DIR "build-cache"

static void
field (struct cimg_sha256 *h, const char *tag, const char *s)
{
  char pre[48];
  size_t n = s ? strlen (s) : 0;
  /* tag + length, so "ab"+"c" and "a"+"bc" never collide; NULL differs from "". */
  int m = snprintf (pre, sizeof pre, "%s %zd:", tag, s ? (ssize_t)n : (ssize_t)-1);
  cimg_sha256_update (h, pre, (size_t)m);
  if (s)
    cimg_sha256_update (h, s, n);
  cimg_sha256_update (h, "\n", 1);
}

void
cimg_build_cache_key (const char *parent, const char *instruction, char *const *args,
                      const char *content, char out[CIMG_DIGEST_BUFSIZE])
{
  cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
  field (h, "cimg-build-cache-v1", "");
  field (h, "parent", parent);
  field (h, "instruction", instruction);
  for (size_t i = 0; args && args[i]; i++)
    field (h, "arg", args[i]);
  field (h, "content", content);
  cimg_sha256_final (h, out);
}

static bool
layer_ok (struct cimg_store *s, json_t *l)
{
  const char *chain = cimg_json_str (l, "chain_id");
  const char *diff = cimg_json_str (l, "diff_id");
  const char *digest = cimg_json_str (l, "digest");
  if (chain == NULL || !cimg_digest_valid (chain) || diff == NULL || !cimg_digest_valid (diff))
    return false;
  /* The layer itself must be there; its compressed blob need not: a pulled base whose layer
     the store already had carries the registry's digest without the blob, and the store takes
     such images as they are (save writes the layer's tar; gc and check accept them). */
  return cimg_store_has_layer (s, chain)
         && (digest == NULL || *digest == '\0' || cimg_digest_valid (digest));
}

json_t *
cimg_build_cache_get (struct cimg_store *s, const char *key)
{
  if (!cimg_digest_valid (key))
    return NULL;
  cleanup_free char *path = xasprintf (CACHE_DIR "/%s", cimg_digest_hex (key));
  cimg_error_t e = { 0 };
  cleanup_json json_t *rec = cimg_json_load_at (cimg_store_dirfd (s), path, 64 << 20, &e);
  cimg_error_clear (&e);
  if (rec == NULL)
    return NULL;
  json_t *config = json_object_get (rec, "config");
  json_t *layers = json_object_get (rec, "layers");
  json_t *diff_ids = json_object_get (json_object_get (config, "rootfs"), "diff_ids");
  if (!json_is_object (config) || !json_is_array (layers) || !json_is_array (diff_ids)
      || json_array_size (diff_ids) != json_array_size (layers))
    return NULL;
  size_t i;
  json_t *l;
  json_array_foreach (layers, i, l)
  {
    if (!layer_ok (s, l))
      return NULL;
    /* The config must describe exactly these layers. */
    if (!json_is_string (json_array_get (diff_ids, i))
        || strcmp (json_string_value (json_array_get (diff_ids, i)), cimg_json_str (l, "diff_id"))
               != 0)
      return NULL;
  }
  return steal_pointer (&rec);
}

int
cimg_build_cache_put (struct cimg_store *s, const char *key, json_t *rec, cimg_error_t *err)
{
  if (!cimg_digest_valid (key))
    return cimg_error_set (err, EINVAL, "bad cache key %s", key);
  if (mkdirat (cimg_store_dirfd (s), CACHE_DIR, 0700) < 0 && errno != EEXIST)
    return cimg_error_sys (err, "mkdir %s/" CACHE_DIR, cimg_store_root (s));
  cleanup_free char *path = xasprintf (CACHE_DIR "/%s", cimg_digest_hex (key));
  return cimg_json_save_at (cimg_store_dirfd (s), path, rec, err);
}
