/* cimg push: blobs (skipped when present, mounted when in a sibling repository, else uploaded
   monolithically), then the manifest exactly as stored, so that its digest stays. */
#include "registry/registry-internal.h"
#include "store/store-internal.h"

#include <errno.h>
#include <string.h>

/* Location of an upload session: absolute, or relative to the endpoint. */
static char *
absolute (struct reg_client *c, const char *loc)
{
  if (cimg_str_has_prefix (loc, "http://") || cimg_str_has_prefix (loc, "https://"))
    return xstrdup (loc);
  const char *host = strstr (c->endpoint, "://");
  host = host ? host + 3 : c->endpoint;
  size_t n = (size_t)(host - c->endpoint) + strcspn (host, "/");
  return xasprintf ("%.*s%s%s", (int)n, c->endpoint, loc[0] == '/' ? "" : "/", loc);
}

struct upload
{
  int fd;
  int64_t off, size;
  struct cimg_progress *p;
  const char *id;
  int64_t last; /* bytes at the last progress update */
};

static size_t
upload_read (char *buf, size_t size, size_t nmemb, void *data)
{
  struct upload *u = data;
  size_t want = size * nmemb;
  if ((int64_t)want > u->size - u->off)
    want = (size_t)(u->size - u->off);
  if (want == 0)
    return 0;
  ssize_t r;
  do
    r = pread (u->fd, buf, want, u->off);
  while (r < 0 && errno == EINTR);
  if (r <= 0)
    return CURL_READFUNC_ABORT;
  u->off += r;
  /* A progress line per 1% (the TTY bar), not per read. */
  if (u->p && (u->off - u->last) * 100 >= u->size)
    {
      u->last = u->off;
      cimg_progress_update (u->p, u->id, "Pushing", u->off, u->size);
    }
  return (size_t)r;
}

static size_t
discard_body (char *ptr, size_t size, size_t nmemb, void *data)
{
  (void)ptr, (void)data;
  return size * nmemb;
}

static size_t
upload_header (char *ptr, size_t size, size_t nmemb, void *data)
{
  reg_take_headers (data, ptr, size * nmemb);
  return size * nmemb;
}

/* PUT the blob file to url (an upload session with ?digest=). One attempt. */
static int
put_blob (struct reg_client *c, const char *url, int fd, int64_t size, struct cimg_progress *p,
          const char *id, long *status, cimg_error_t *err)
{
  CURL *e = c->easy;
  curl_easy_reset (e);
  reg_client_setup_easy (c, e);
  struct upload u = { fd, 0, size, p, id, 0 };
  struct reg_response r = { 0 };
  struct curl_slist *hl = NULL;
  /* The upload location comes from the registry and may name another host (storage behind
     the registry): the registry's credentials go only to the registry. */
  size_t elen = strlen (c->endpoint);
  if (c->authz && strncmp (url, c->endpoint, elen) == 0 && (url[elen] == '/' || url[elen] == '\0'))
    hl = curl_slist_append (hl, c->authz);
  hl = curl_slist_append (hl, "Content-Type: application/octet-stream");
  hl = curl_slist_append (hl, "Expect:");
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt (e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)size);
  curl_easy_setopt (e, CURLOPT_READFUNCTION, upload_read);
  curl_easy_setopt (e, CURLOPT_READDATA, &u);
  curl_easy_setopt (e, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, discard_body);
  curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, upload_header);
  curl_easy_setopt (e, CURLOPT_HEADERDATA, &r);
  CURLcode rc = curl_easy_perform (e);
  curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, status);
  curl_slist_free_all (hl);
  reg_response_clear (&r);
  if (rc != CURLE_OK)
    return cimg_error_set (err, EIO, "upload: %s", curl_easy_strerror (rc));
  return 0;
}

/* Make sure the registry has blob d in c->repo. from: sibling repositories to mount from. */
static int
push_blob (struct cimg_store *s, struct reg_client *c, const char *digest, int64_t size,
           char *const *from, struct cimg_progress *p, const char *id, cimg_error_t *err)
{
  cleanup_free char *head = reg_client_url (c, "blobs/%s", digest);
  struct reg_response r = { 0 };
  if (reg_request (c, "HEAD", head, NULL, NULL, 0, NULL, 0, &r, err) < 0)
    return -1;
  long st = r.status;
  reg_response_clear (&r);
  if (st == 200)
    {
      cimg_progress_done (p, id, "Layer already exists");
      return 0;
    }
  if (st == 401 || st == 403)
    return cimg_error_set (err, EACCES, "HEAD %s: unauthorized (cimg login %s?)", head, c->domain);
  cleanup_free char *location = NULL;
  for (size_t i = 0; from && from[i]; i++)
    {
      cleanup_free char *url
          = reg_client_url (c, "blobs/uploads/?mount=%s&from=%s", digest, from[i]);
      if (reg_request (c, "POST", url, NULL, NULL, 0, NULL, 1 << 16, &r, err) < 0)
        return -1;
      if (r.status == 201)
        {
          reg_response_clear (&r);
          cleanup_free char *msg = xasprintf ("Mounted from %s", from[i]);
          cimg_progress_done (p, id, msg);
          return 0;
        }
      /* 202: the mount was refused and an ordinary upload session opened instead. */
      if (r.status == 202 && r.location)
        {
          location = absolute (c, r.location);
          reg_response_clear (&r);
          break;
        }
      reg_response_clear (&r);
    }
  cleanup_close int fd = cimg_store_open_blob (s, digest, err);
  if (fd < 0)
    return -1;
  for (int attempt = 0;; attempt++)
    {
      if (location == NULL)
        {
          cleanup_free char *url = reg_client_url (c, "blobs/uploads/");
          if (reg_request (c, "POST", url, NULL, NULL, 0, NULL, 1 << 16, &r, err) < 0)
            return -1;
          if (r.status != 202 || r.location == NULL)
            {
              cleanup_free char *m = reg_response_error (&r);
              bool denied = r.status == 401 || r.status == 403;
              reg_response_clear (&r);
              if (denied)
                return cimg_error_set (
                    err, EACCES, "start upload: unauthorized: %s (cimg login %s?)", m, c->domain);
              return cimg_error_set (err, EIO, "start upload: %s", m);
            }
          location = absolute (c, r.location);
          reg_response_clear (&r);
        }
      cimg_progress_update (p, id, "Pushing", 0, size);
      cleanup_free char *put
          = xasprintf ("%s%cdigest=%s", location, strchr (location, '?') ? '&' : '?', digest);
      free (location);
      location = NULL;
      long status = 0;
      cimg_error_t perr = { 0 };
      int rc = put_blob (c, put, fd, size, p, id, &status, &perr);
      if (rc == 0 && status == 201)
        {
          cimg_progress_done (p, id, "Pushed");
          return 0;
        }
      bool retry = rc < 0 || reg_status_retryable (status);
      if (!retry || attempt >= c->retries)
        {
          if (rc < 0)
            {
              cimg_error_set (err, perr.code, "%s", perr.msg);
              cimg_error_clear (&perr);
              return -1;
            }
          return cimg_error_set (err, EIO, "upload: HTTP %ld", status);
        }
      cimg_error_clear (&perr);
      reg_backoff (c, attempt, NULL);
    }
}

/* Repositories of the same registry this image came from or went to, for mounts. */
static char **
sibling_repos (const struct cimg_image *img, const struct cimg_ref *dst)
{
  char **out = NULL;
  char **lists[2] = { img->repo_digests, img->repo_tags };
  for (size_t l = 0; l < 2; l++)
    for (size_t i = 0; lists[l] && lists[l][i]; i++)
      {
        cimg_error_t e = { 0 };
        cleanup_ref struct cimg_ref *r = cimg_ref_parse (lists[l][i], &e);
        cimg_error_clear (&e);
        if (r && strcmp (r->domain, dst->domain) == 0 && strcmp (r->path, dst->path) != 0
            && !cimg_strv_contains (out, r->path))
          cimg_strv_append (&out, r->path);
      }
  return out;
}

int
cimg_registry_push (struct cimg_store *s, const char *src, const char *dst, struct cimg_progress *p,
                    char digest_out[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  cleanup_image struct cimg_image *img = cimg_store_find_image (s, src, err);
  if (img == NULL)
    return cimg_error_wrap (err, "push %s", src);
  cleanup_ref struct cimg_ref *ref = cimg_ref_parse (dst ? dst : src, err);
  if (ref == NULL)
    return cimg_error_wrap (err, "push");
  cleanup_free char *full = cimg_ref_string (ref);
  if (ref->digest)
    return cimg_error_set (err, EINVAL, "push %s: the destination must be a tag, not a digest",
                           full);
  /* Every layer must have its compressed blob as the manifest names it: the manifest is
     pushed byte for byte, so nothing may be recompressed. */
  for (size_t i = 0; i < img->n_layers; i++)
    if (!cimg_digest_valid (img->layers[i].digest)
        || !cimg_store_has_blob (s, img->layers[i].digest))
      return cimg_error_set (err, ENOENT,
                             "push %s: layer %zu (%s) has no kept compressed blob in the store "
                             "(image made without one); cimg cannot push it unchanged",
                             full, i + 1,
                             img->layers[i].digest[0] ? img->layers[i].digest : "no digest");
  cleanup_free char *mbytes = NULL;
  size_t mlen = 0;
  if (cimg_store_read_blob (s, img->manifest_digest, CIMG_MAX_METADATA, &mbytes, &mlen, err) < 0)
    return cimg_error_wrap (err, "push %s: manifest", full);
  const char *mt = reg_manifest_media_type (img->manifest);
  if (!reg_media_type_is_manifest (mt))
    return cimg_error_set (err, EINVAL, "push %s: stored manifest has media type \"%s\"", full, mt);

  cleanup_client struct reg_client *c = reg_client_new (ref->domain, ref->path, "pull,push", err);
  if (c == NULL)
    return cimg_error_wrap (err, "push %s", full);
  cleanup_strv char **from = sibling_repos (img, ref);
  for (size_t i = 0; from && from[i]; i++)
    {
      cleanup_free char *sc = xasprintf ("repository:%s:pull", from[i]);
      cimg_strv_append (&c->extra_scopes, sc);
    }
  for (size_t i = 0; i < img->n_layers; i++)
    {
      const struct cimg_image_layer *l = &img->layers[i];
      char id[13];
      snprintf (id, sizeof id, "%.12s", cimg_digest_hex (l->digest));
      cimg_progress_update (p, id, "Preparing", 0, 0);
      int64_t size = cimg_store_blob_size (s, l->digest);
      if (push_blob (s, c, l->digest, size, from, p, id, err) < 0)
        return cimg_error_wrap (err, "push %s: layer %s", full, l->digest);
    }
  int64_t csize = cimg_store_blob_size (s, img->id);
  char cid[13];
  snprintf (cid, sizeof cid, "%.12s", cimg_digest_hex (img->id));
  if (push_blob (s, c, img->id, csize, from, NULL, cid, err) < 0)
    return cimg_error_wrap (err, "push %s: config %s", full, img->id);

  cleanup_free char *url = reg_client_url (c, "manifests/%s", ref->tag);
  struct reg_response r = { 0 };
  if (reg_request (c, "PUT", url, NULL, mbytes, mlen, mt, 1 << 16, &r, err) < 0)
    return cimg_error_wrap (err, "push %s: manifest", full);
  if (r.status != 201 && r.status != 200)
    {
      cleanup_free char *m = reg_response_error (&r);
      reg_response_clear (&r);
      return cimg_error_set (err, EIO, "push %s: manifest: %s", full, m);
    }
  if (r.digest && strcmp (r.digest, img->manifest_digest) != 0)
    {
      cimg_error_set (err, EINVAL, "push %s: the registry stored the manifest as %.80s, not %s",
                      full, r.digest, img->manifest_digest);
      reg_response_clear (&r);
      return -1;
    }
  reg_response_clear (&r);
  if (digest_out)
    memcpy (digest_out, img->manifest_digest, CIMG_DIGEST_BUFSIZE);
  return 0;
}
