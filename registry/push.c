/* cimg push: blobs (skipped when present, mounted when in a sibling repository, else uploaded:
   in one PUT, or in PATCH chunks when large), then the manifest exactly as stored, so that its
   digest stays, and the repo digest is recorded on the image. */
#include "registry/registry-internal.h"
#include "store/image.h"
#include "store/repodigest.h"
#include "store/store-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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
  int64_t off, end; /* the bytes [off, end) of the file are still to send */
  int64_t total;    /* the blob's size, for progress */
  struct cimg_progress *p;
  const char *id;
  int64_t last; /* offset at the last progress update */
};

static size_t
upload_read (char *buf, size_t size, size_t nmemb, void *data)
{
  struct upload *u = data;
  size_t want = size * nmemb;
  if ((int64_t)want > u->end - u->off)
    want = (size_t)(u->end - u->off);
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
  if (u->p && (u->off - u->last) * 100 >= u->total)
    {
      u->last = u->off;
      cimg_progress_update (u->p, u->id, "Pushing", u->off, u->total);
    }
  return (size_t)r;
}

/* The answer's body, kept (up to 64 KiB) for the registry's error message. */
struct answer
{
  struct reg_response *r;
  size_t cap;
};

static size_t
answer_body (char *ptr, size_t size, size_t nmemb, void *data)
{
  struct answer *a = data;
  size_t n = size * nmemb;
  if (a->r->len + n + 1 <= 1 << 16)
    {
      if (a->r->len + n + 1 > a->cap)
        {
          a->cap = (a->r->len + n + 1) * 2;
          a->r->body = xrealloc (a->r->body, a->cap);
        }
      memcpy (a->r->body + a->r->len, ptr, n);
      a->r->len += n;
      a->r->body[a->r->len] = '\0';
    }
  return n;
}

static size_t
answer_header (char *ptr, size_t size, size_t nmemb, void *data)
{
  struct answer *a = data;
  reg_take_headers (a->r, ptr, size * nmemb);
  return size * nmemb;
}

/* Send the bytes [off, off + len) of fd to url with method (PUT: a whole blob; PATCH: a chunk,
   with its Content-Range). One attempt: *r gets the status and headers. progress counts
   against total. Returns -1 only for a transport failure. */
static int
send_file (struct reg_client *c, const char *method, const char *url, int fd, int64_t off,
           int64_t len, int64_t total, struct cimg_progress *p, const char *id,
           struct reg_response *r, cimg_error_t *err)
{
  CURL *e = c->easy;
  curl_easy_reset (e);
  reg_client_setup_easy (c, e);
  reg_response_clear (r);
  struct upload u = { fd, off, off + len, total, p, id, off };
  struct answer a = { r, 0 };
  struct curl_slist *hl = NULL;
  const char *authz = reg_client_authz_for (c, url);
  if (authz)
    hl = curl_slist_append (hl, authz);
  hl = curl_slist_append (hl, "Content-Type: application/octet-stream");
  char range[80];
  if (strcmp (method, "PATCH") == 0)
    {
      snprintf (range, sizeof range, "Content-Range: %" PRId64 "-%" PRId64, off, off + len - 1);
      hl = curl_slist_append (hl, range);
      curl_easy_setopt (e, CURLOPT_CUSTOMREQUEST, "PATCH");
    }
  hl = curl_slist_append (hl, "Expect:");
  c->errbuf[0] = '\0';
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_UPLOAD, 1L);
  curl_easy_setopt (e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)len);
  curl_easy_setopt (e, CURLOPT_READFUNCTION, upload_read);
  curl_easy_setopt (e, CURLOPT_READDATA, &u);
  curl_easy_setopt (e, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, answer_body);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, &a);
  curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, answer_header);
  curl_easy_setopt (e, CURLOPT_HEADERDATA, &a);
  CURLcode rc = curl_easy_perform (e);
  curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all (hl);
  if (r->body == NULL)
    r->body = xstrdup ("");
  if (rc != CURLE_OK)
    return cimg_error_set (err, EIO, "%s: %s", method,
                           c->errbuf[0] ? c->errbuf : curl_easy_strerror (rc));
  return 0;
}

/* Where an upload session stands (GET on its location: 204 with Range), after a chunk that
   may have arrived whole, in part or not at all. *off is set, *location follows the answer.
   Returns 0, 1 when the registry no longer knows the session (start a new one), or -1. */
static int
upload_offset (struct reg_client *c, char **location, int64_t expect, int64_t *off,
               cimg_error_t *err)
{
  struct reg_response r = { 0 };
  if (reg_request (c, "GET", *location, NULL, NULL, 0, NULL, 1 << 16, &r, err) < 0)
    return cimg_error_wrap (err, "upload status");
  if (r.status == 404)
    {
      reg_response_clear (&r);
      return 1;
    }
  if ((r.status != 204 && r.status != 200) || reg_parse_upload_range (r.range, expect, off) < 0)
    {
      cleanup_free char *m = reg_response_error (&r);
      cimg_error_set (err, EIO, "upload status: %s (Range \"%.40s\")", m, r.range ? r.range : "");
      reg_response_clear (&r);
      return -1;
    }
  if (r.location)
    {
      free (*location);
      *location = absolute (c, r.location);
    }
  reg_response_clear (&r);
  return 0;
}

/* The upload session's closing PUT ?digest= (the body went up already, or goes with it). */
static char *
digest_url (const char *location, const char *digest)
{
  return xasprintf ("%s%cdigest=%s", location, strchr (location, '?') ? '&' : '?', digest);
}

/* Docker's chunked upload into the session at *location: PATCH chunks of c->chunk_size bytes,
   each with its Content-Range, following each answer's Location and Range; a chunk that fails
   (connection, 5xx, 416) resumes from the offset the registry reports. Then PUT ?digest= with
   no body. Returns 0 when the blob is in, 1 when the session was lost (start a new one), -1. */
static int
upload_chunked (struct reg_client *c, char **location, int fd, const char *digest, int64_t size,
                struct cimg_progress *p, const char *id, cimg_error_t *err)
{
  int64_t off = 0;
  int failures = 0; /* in a row, without progress */
  bool reauthed = false;
  while (off < size)
    {
      int64_t n = size - off < c->chunk_size ? size - off : c->chunk_size;
      if (reg_client_fresh_token (c, err) < 0)
        return -1;
      struct reg_response r = { 0 };
      cimg_error_t serr = { 0 };
      int rc = send_file (c, "PATCH", *location, fd, off, n, size, p, id, &r, &serr);
      if (rc == 0 && r.status == 202)
        {
          int64_t next = off + n;
          if (r.range && reg_parse_upload_range (r.range, off + n, &next) < 0)
            {
              cimg_error_set (err, EIO,
                              "upload: unusable Range \"%.40s\" after the chunk at %" PRId64,
                              r.range, off);
              reg_response_clear (&r);
              return -1;
            }
          if (r.location)
            {
              free (*location);
              *location = absolute (c, r.location);
            }
          reg_response_clear (&r);
          if (next > off + n)
            return cimg_error_set (
                err, EIO, "upload: the registry reports %" PRId64 " bytes, %" PRId64 " were sent",
                next, off + n);
          /* A registry that took less than was sent: the rest again, from where it stands. */
          if (next <= off && ++failures > c->retries)
            return cimg_error_set (err, EIO, "upload: no progress at %" PRId64 " bytes", off);
          if (next > off)
            failures = 0, reauthed = false;
          off = next;
          cimg_progress_update (p, id, "Pushing", off, size);
          continue;
        }
      if (rc == 0 && r.status == 401 && r.www_auth && !reauthed)
        {
          /* The token was refused (revoked, or expired earlier than it said). */
          reauthed = true;
          cleanup_free char *ch = xstrdup (r.www_auth);
          reg_response_clear (&r);
          if (reg_authenticate (c, ch, err) < 0)
            return -1;
          continue;
        }
      if (rc == 0 && r.status == 404)
        {
          reg_response_clear (&r);
          return 1;
        }
      bool retry = rc < 0 || r.status == 416 || reg_status_retryable (r.status);
      cleanup_free char *why = rc < 0 ? xstrdup (serr.msg) : reg_response_error (&r);
      cimg_error_clear (&serr);
      if (!retry || ++failures > c->retries)
        {
          reg_response_clear (&r);
          return cimg_error_set (err,
                                 rc < 0                               ? EIO
                                 : r.status == 401 || r.status == 403 ? EACCES
                                                                      : EIO,
                                 "upload: chunk at %" PRId64 ": %s", off, why);
        }
      /* 416: the registry has a different offset than this chunk assumed; asking is enough.
         Anything else: wait first. */
      if (rc < 0 || r.status != 416)
        reg_backoff (c, failures - 1, r.retry_after);
      reg_response_clear (&r);
      int st = upload_offset (c, location, off, &off, err);
      if (st != 0)
        return st;
      if (off > size)
        return cimg_error_set (
            err, EIO, "upload: the registry reports %" PRId64 " bytes of %" PRId64, off, size);
    }
  cleanup_free char *put = digest_url (*location, digest);
  struct reg_response r = { 0 };
  if (reg_request (c, "PUT", put, NULL, NULL, 0, NULL, 1 << 16, &r, err) < 0)
    return -1;
  long st = r.status;
  cleanup_free char *m = reg_response_error (&r);
  reg_response_clear (&r);
  if (st == 201)
    return 0;
  if (st == 404)
    {
      /* A retried PUT whose first attempt was taken (its answer lost) finds no session: the
         blob may well be in. */
      cleanup_free char *head = reg_client_url (c, "blobs/%s", digest);
      if (reg_request (c, "HEAD", head, NULL, NULL, 0, NULL, 0, &r, err) < 0)
        return -1;
      st = r.status;
      reg_response_clear (&r);
      return st == 200 ? 0 : 1;
    }
  return cimg_error_set (err, st == 401 || st == 403 ? EACCES : EIO, "upload: closing PUT: %s", m);
}

/* Open an upload session (POST blobs/uploads/). */
static char *
start_upload (struct reg_client *c, cimg_error_t *err)
{
  cleanup_free char *url = reg_client_url (c, "blobs/uploads/");
  struct reg_response r = { 0 };
  if (reg_request (c, "POST", url, NULL, NULL, 0, NULL, 1 << 16, &r, err) < 0)
    return NULL;
  if (r.status != 202 || r.location == NULL)
    {
      cleanup_free char *m = reg_response_error (&r);
      bool denied = r.status == 401 || r.status == 403;
      reg_response_clear (&r);
      if (denied)
        cimg_error_set (err, EACCES, "start upload: unauthorized: %s (cimg login %s?)", m,
                        c->domain);
      else
        cimg_error_set (err, EIO, "start upload: %s", m);
      return NULL;
    }
  char *location = absolute (c, r.location);
  reg_response_clear (&r);
  return location;
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
  /* Large blobs go in chunks: a connection that breaks costs a chunk, not the whole blob. */
  bool chunked = c->chunk_size > 0 && size > c->chunk_size;
  bool reauthed = false;
  for (int attempt = 0;; attempt++)
    {
      if (location == NULL && (location = start_upload (c, err)) == NULL)
        return -1;
      cimg_progress_update (p, id, "Pushing", 0, size);
      if (chunked)
        {
          int rc = upload_chunked (c, &location, fd, digest, size, p, id, err);
          free (location);
          location = NULL;
          if (rc < 0)
            return -1;
          if (rc == 0)
            {
              cimg_progress_done (p, id, "Pushed");
              return 0;
            }
          if (attempt >= c->retries)
            return cimg_error_set (err, EIO, "upload: the registry lost the upload session");
          reg_backoff (c, attempt, NULL);
          continue;
        }
      if (reg_client_fresh_token (c, err) < 0)
        return -1;
      cleanup_free char *put = digest_url (location, digest);
      free (location);
      location = NULL;
      cimg_error_t perr = { 0 };
      int rc = send_file (c, "PUT", put, fd, 0, size, size, p, id, &r, &perr);
      long status = r.status;
      cleanup_free char *ch = r.www_auth ? xstrdup (r.www_auth) : NULL;
      cleanup_free char *m = rc == 0 ? reg_response_error (&r) : NULL;
      reg_response_clear (&r);
      if (rc == 0 && status == 201)
        {
          cimg_progress_done (p, id, "Pushed");
          return 0;
        }
      if (rc == 0 && status == 401 && ch && !reauthed)
        {
          /* A token refused mid-push: a fresh one, and the upload again from a new session. */
          reauthed = true;
          if (reg_authenticate (c, ch, err) < 0)
            return -1;
          attempt--;
          continue;
        }
      bool retry = rc < 0 || reg_status_retryable (status);
      if (!retry || attempt >= c->retries)
        {
          if (rc < 0)
            {
              cimg_error_set (err, perr.code, "upload: %s", perr.msg);
              cimg_error_clear (&perr);
              return -1;
            }
          return cimg_error_set (err, status == 401 || status == 403 ? EACCES : EIO, "upload: %s",
                                 m);
        }
      cimg_error_clear (&perr);
      reg_backoff (c, attempt, NULL);
    }
}

/* The layers' uploads, several at once: each worker takes the next layer not yet taken, with
   a client of its own (a connection and a token each; libcurl's handles are not shared
   between threads). The first failure stops the others from taking more. */
struct upload_pool
{
  pthread_mutex_t mu;
  struct cimg_store *s;
  struct reg_client *base;
  const struct reg_descriptor *layers;
  char (*ids)[13];
  size_t n, next; /* layers are taken top first: next counts down from n */
  char *const *from;
  struct cimg_progress *p;
  bool failed;
  size_t failed_layer;
  cimg_error_t err;
};

/* The next layer to upload, or false when none is left or one failed. */
static bool
take_layer (struct upload_pool *u, size_t *i)
{
  pthread_mutex_lock (&u->mu);
  bool ok = !u->failed && u->next > 0;
  if (ok)
    *i = --u->next;
  pthread_mutex_unlock (&u->mu);
  return ok;
}

static void
fail_layer (struct upload_pool *u, size_t i, cimg_error_t *err)
{
  pthread_mutex_lock (&u->mu);
  if (!u->failed)
    {
      u->failed = true;
      u->failed_layer = i;
      u->err = *err;
      *err = (cimg_error_t){ 0 };
    }
  pthread_mutex_unlock (&u->mu);
  cimg_error_clear (err);
}

static void
upload_layers (struct upload_pool *u, struct reg_client *c)
{
  size_t i;
  while (take_layer (u, &i))
    {
      cimg_error_t err = { 0 };
      const char *ld = u->layers[i].digest;
      if (push_blob (u->s, c, ld, cimg_store_blob_size (u->s, ld), u->from, u->p, u->ids[i], &err)
          < 0)
        fail_layer (u, i, &err);
    }
}

struct uploader
{
  struct upload_pool *u;
  struct reg_client *c;
  pthread_t tid;
};

static void *
upload_worker (void *data)
{
  struct uploader *w = data;
  upload_layers (w->u, w->c);
  return NULL;
}

/* Upload the layers with at most max (>= 1) at once, the calling thread being one of them with
   the base client. The other threads' clients are copied from it here, before this thread
   uploads with it: from then on it may renew the base client's token, which a copy made at the
   same time would read half-replaced. */
static int
push_layers (struct upload_pool *u, size_t max, cimg_error_t *err)
{
  pthread_mutex_init (&u->mu, NULL);
  u->next = u->n;
  size_t at_once = u->n < max ? u->n : max;
  /* Layers are taken top first: those below the first at_once wait for an upload to end. */
  for (size_t k = at_once; k < u->n; k++)
    cimg_progress_done (u->p, u->ids[u->n - 1 - k], "Waiting");
  size_t more = at_once > 0 ? at_once - 1 : 0;
  struct uploader *w = xzalloc ((more ? more : 1) * sizeof *w);
  size_t started = 0;
  for (size_t k = 0; k < more; k++)
    {
      cimg_error_t cerr = { 0 };
      w[started].u = u;
      w[started].c = reg_client_clone (u->base, &cerr);
      cimg_error_clear (&cerr);
      /* Either failing leaves fewer uploads at once: the others take what is left. */
      if (w[started].c == NULL)
        break;
      if (pthread_create (&w[started].tid, NULL, upload_worker, &w[started]) != 0)
        {
          reg_client_free (w[started].c);
          break;
        }
      started++;
    }
  upload_layers (u, u->base);
  for (size_t k = 0; k < started; k++)
    {
      pthread_join (w[k].tid, NULL);
      reg_client_free (w[k].c);
    }
  free (w);
  pthread_mutex_destroy (&u->mu);
  if (!u->failed)
    return 0;
  *err = u->err;
  return -1;
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
cimg_registry_push (struct cimg_store *s, const char *src, const char *dst, int max_concurrent,
                    struct cimg_progress *p, char digest_out[CIMG_DIGEST_BUFSIZE],
                    cimg_error_t *err)
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
  /* The manifest the source name came with (an image known through several manifests pushes
     each tag's own), pushed byte for byte. */
  char mdigest[CIMG_DIGEST_BUFSIZE];
  {
    cimg_error_t perr = { 0 };
    cleanup_ref struct cimg_ref *sref = cimg_ref_parse (src, &perr);
    cimg_error_clear (&perr);
    cleanup_free char *sfull = sref ? cimg_ref_string (sref) : NULL;
    if (cimg_store_image_manifest_for (s, img->id, sfull, mdigest, err) < 0)
      return cimg_error_wrap (err, "push %s", full);
  }
  cleanup_free char *mbytes = NULL;
  size_t mlen = 0;
  if (cimg_store_read_blob (s, mdigest, CIMG_MAX_METADATA, &mbytes, &mlen, err) < 0)
    return cimg_error_wrap (err, "push %s: manifest", full);
  cleanup_json json_t *mj = cimg_json_parse (mbytes, mlen, err);
  if (mj == NULL)
    return cimg_error_wrap (err, "push %s: manifest %s", full, mdigest);
  const char *mt = reg_manifest_media_type (mj);
  if (!reg_media_type_is_manifest (mt))
    return cimg_error_set (err, EINVAL, "push %s: stored manifest has media type \"%s\"", full, mt);
  struct reg_manifest man;
  if (reg_manifest_parse (mj, &man, err) < 0)
    return cimg_error_wrap (err, "push %s: manifest %s", full, mdigest);
  cleanup_free struct reg_descriptor *mlayers = man.layers;
  if (strcmp (man.config.digest, img->id) != 0 || man.n_layers != img->n_layers)
    return cimg_error_set (err, EINVAL, "push %s: manifest %s is not the image's", full, mdigest);
  /* Every layer must have its compressed blob as the manifest names it: nothing may be
     recompressed. */
  for (size_t i = 0; i < man.n_layers; i++)
    if (!cimg_store_has_blob (s, mlayers[i].digest))
      return cimg_error_set (err, ENOENT,
                             "push %s: layer %zu (%s) has no kept compressed blob in the store "
                             "(image made without one); cimg cannot push it unchanged",
                             full, i + 1, mlayers[i].digest);

  cleanup_client struct reg_client *c = reg_client_new (ref->domain, ref->path, "pull,push", err);
  if (c == NULL)
    return cimg_error_wrap (err, "push %s", full);
  cleanup_strv char **from = sibling_repos (img, ref);
  for (size_t i = 0; from && from[i]; i++)
    {
      cleanup_free char *sc = xasprintf ("repository:%s:pull", from[i]);
      cimg_strv_append (&c->extra_scopes, sc);
    }
  /* The config first: its requests settle the endpoint (TLS or plain HTTP) and the token that
     the layers' uploaders then start with. */
  int64_t csize = cimg_store_blob_size (s, img->id);
  char cid[13];
  snprintf (cid, sizeof cid, "%.12s", cimg_digest_hex (img->id));
  if (push_blob (s, c, img->id, csize, from, NULL, cid, err) < 0)
    return cimg_error_wrap (err, "push %s: config %s", full, img->id);
  /* As docker push prints them: every layer has its line at once, the top one first, named
     by its diff_id (a pull names a layer by its blob's digest). */
  cleanup_free char (*ids)[13] = xzalloc ((man.n_layers ? man.n_layers : 1) * sizeof *ids);
  for (size_t k = 0; k < man.n_layers; k++)
    {
      size_t i = man.n_layers - 1 - k;
      snprintf (ids[i], sizeof ids[i], "%.12s", cimg_digest_hex (img->layers[i].diff_id));
      cimg_progress_update (p, ids[i], "Preparing", 0, 0);
    }
  struct upload_pool u = {
    .s = s, .base = c, .layers = mlayers, .ids = ids, .n = man.n_layers, .from = from, .p = p
  };
  if (push_layers (&u, max_concurrent > 0 ? (size_t)max_concurrent : 5, err) < 0)
    return cimg_error_wrap (err, "push %s: layer %s", full, mlayers[u.failed_layer].digest);

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
  if (r.digest && strcmp (r.digest, mdigest) != 0)
    {
      cimg_error_set (err, EINVAL, "push %s: the registry stored the manifest as %.80s, not %s",
                      full, r.digest, mdigest);
      reg_response_clear (&r);
      return -1;
    }
  reg_response_clear (&r);
  /* As docker push: the image now has a repo digest under the name it went to, which
     `images --digests` and `inspect` show. */
  cleanup_free char *name = cimg_ref_name (ref);
  cleanup_free char *repo_digest = xasprintf ("%s@%s", name, mdigest);
  cimg_error_t rerr = { 0 };
  const char *refs[] = { full, repo_digest };
  if (cimg_store_add_repo_digest (s, img->id, repo_digest, &rerr) < 0
      || cimg_store_image_add_manifest_refs (s, img->id, mdigest, refs, ARRAY_SIZE (refs), &rerr)
             < 0)
    {
      /* An image removed while it was pushed has nothing left to record the digest on; the
         push itself succeeded. */
      if (rerr.code != ENOENT)
        {
          cimg_error_set (err, rerr.code, "push %s: pushed as %s, but: %s", full, mdigest,
                          rerr.msg);
          cimg_error_clear (&rerr);
          return -1;
        }
      cimg_error_clear (&rerr);
    }
  if (digest_out)
    memcpy (digest_out, mdigest, CIMG_DIGEST_BUFSIZE);
  return 0;
}
