/* cimg pull: manifest (and index) → config → layers streamed into the store's layer sink. */
#include "registry/registry-internal.h"
#include "store/image.h"
#include "store/ingest.h"
#include "store/layer-internal.h"
#include "store/store-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <time.h>

#define MANIFEST_ACCEPT                                                                            \
  "Accept: " MT_OCI_INDEX ", " MT_OCI_MANIFEST ", " MT_DOCKER_LIST ", " MT_DOCKER_MANIFEST         \
  ", application/vnd.docker.distribution.manifest.v1+prettyjws;q=0.1"

void
cimg_pull_result_clear (struct cimg_pull_result *r)
{
  free (r->name);
  memset (r, 0, sizeof *r);
}

static int64_t
now_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The media type of a fetched manifest: the server's Content-Type (parameters dropped) must
   agree with the body's own mediaType when both are there. */
static int
manifest_type (const struct reg_response *r, json_t *m, const char *want, char *out, size_t n,
               cimg_error_t *err)
{
  cleanup_free char *ct = xstrdup (r->content_type ? r->content_type : "");
  ct[strcspn (ct, "; ")] = '\0';
  const char *body_mt = cimg_json_str (m, "mediaType");
  const char *mt = body_mt ? body_mt : reg_manifest_media_type (m);
  json_t *sv = json_object_get (m, "schemaVersion");
  if (json_is_integer (sv) && json_integer_value (sv) == 1)
    return cimg_error_set (err, ENOTSUP,
                           "Docker schema 1 manifests are not supported (deprecated since "
                           "2017); push the image again with a current tool");
  if (body_mt && *ct && strcmp (ct, "application/json") != 0 && strcmp (ct, body_mt) != 0)
    return cimg_error_set (
        err, EINVAL, "media type mismatch: the server says %s, the manifest says %s", ct, body_mt);
  if (!body_mt && *ct && strcmp (ct, "application/json") != 0 && strcmp (ct, "text/plain") != 0)
    mt = ct;
  if (want && *want && strcmp (want, mt) != 0)
    return cimg_error_set (err, EINVAL,
                           "media type mismatch: the index says %s, the manifest is %s", want, mt);
  if (!reg_media_type_is_index (mt) && !reg_media_type_is_manifest (mt))
    return cimg_error_set (err, ENOTSUP, "unsupported manifest media type \"%s\"", mt);
  snprintf (out, n, "%s", mt);
  return 0;
}

/* GET manifests/REFERENCE; verifies the digest (the one asked for, or the one the server
   names) and the size when known. On success *bytes and *len hold the body, digest its sha256. */
static int
fetch_manifest (struct reg_client *c, const char *reference, const struct reg_descriptor *want,
                char **bytes, size_t *len, json_t **parsed, char mt[96],
                char digest[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  cleanup_free char *url = reg_client_url (c, "manifests/%s", reference);
  char *hdrs[] = { MANIFEST_ACCEPT, NULL };
  struct reg_response r = { 0 };
  if (reg_request (c, "GET", url, hdrs, NULL, 0, NULL, CIMG_MAX_METADATA, &r, err) < 0)
    {
      if (err->code == EFBIG)
        {
          cimg_error_clear (err);
          return cimg_error_set (err, EFBIG, "manifest %s is over the limit of %d bytes", reference,
                                 CIMG_MAX_METADATA);
        }
      return -1;
    }
  int rc = -1;
  if (r.status != 200)
    {
      cleanup_free char *m = reg_response_error (&r);
      if (r.status == 404)
        cimg_error_set (err, ENOENT, "manifest %s not found: %s", reference, m);
      else if (r.status == 401 || r.status == 403)
        cimg_error_set (err, EACCES, "manifest %s: %s (cimg login %s?)", reference, m, c->domain);
      else
        cimg_error_set (err, EIO, "manifest %s: %s", reference, m);
      goto out;
    }
  cimg_sha256_buf (r.body, r.len, digest);
  const char *expect = want ? want->digest : (cimg_digest_valid (reference) ? reference : NULL);
  if (expect && strcmp (expect, digest) != 0)
    {
      cimg_error_set (err, EINVAL, "manifest %s: digest mismatch (got %s)", expect, digest);
      goto out;
    }
  if (expect == NULL && r.digest && strcmp (r.digest, digest) != 0)
    {
      cimg_error_set (err, EINVAL,
                      "manifest %s: digest mismatch (Docker-Content-Digest says %.80s, the "
                      "bytes hash to %s)",
                      reference, r.digest, digest);
      goto out;
    }
  if (want && want->size != (int64_t)r.len)
    {
      cimg_error_set (err, EINVAL,
                      "manifest %s: size mismatch (got %zu bytes, expected %" PRId64 ")",
                      want->digest, r.len, want->size);
      goto out;
    }
  json_t *j = cimg_json_parse (r.body, r.len, err);
  if (j == NULL)
    {
      cimg_error_wrap (err, "manifest %s", reference);
      goto out;
    }
  if (manifest_type (&r, j, want ? want->media_type : NULL, mt, 96, err) < 0)
    {
      json_decref (j);
      cimg_error_wrap (err, "manifest %s", reference);
      goto out;
    }
  *parsed = j;
  *bytes = steal_pointer (&r.body);
  *len = r.len;
  rc = 0;
out:
  reg_response_clear (&r);
  return rc;
}

static int
fetch_config (struct reg_client *c, const struct reg_descriptor *d, char **bytes, size_t *len,
              cimg_error_t *err)
{
  if (d->size > CIMG_MAX_METADATA)
    return cimg_error_set (err, EFBIG, "config %s: %" PRId64 " bytes is over the limit of %d",
                           d->digest, d->size, CIMG_MAX_METADATA);
  if (d->media_type[0] && strcmp (d->media_type, MT_OCI_CONFIG) != 0
      && strcmp (d->media_type, MT_DOCKER_CONFIG) != 0)
    return cimg_error_set (err, ENOTSUP,
                           "config %s: media type \"%s\" is not an image config (not a "
                           "container image?)",
                           d->digest, d->media_type);
  cleanup_free char *url = reg_client_url (c, "blobs/%s", d->digest);
  struct reg_response r = { 0 };
  if (reg_request (c, "GET", url, NULL, NULL, 0, NULL, CIMG_MAX_METADATA, &r, err) < 0)
    return cimg_error_wrap (err, "config %s", d->digest);
  int rc = -1;
  char got[CIMG_DIGEST_BUFSIZE];
  if (r.status != 200)
    {
      cleanup_free char *m = reg_response_error (&r);
      cimg_error_set (err, EIO, "config %s: %s", d->digest, m);
    }
  else if (cimg_sha256_buf (r.body, r.len, got), strcmp (got, d->digest) != 0)
    cimg_error_set (err, EINVAL, "config %s: digest mismatch (got %s)", d->digest, got);
  else if ((int64_t)r.len != d->size)
    cimg_error_set (err, EINVAL, "config %s: size mismatch (got %zu bytes, expected %" PRId64 ")",
                    d->digest, r.len, d->size);
  else
    {
      *bytes = steal_pointer (&r.body);
      *len = r.len;
      rc = 0;
    }
  reg_response_clear (&r);
  return rc;
}

/* ---------------------------------------------------------------- layers */

enum job_state
{
  JOB_SKIP,    /* already in the store, with its compressed blob */
  JOB_PENDING, /* not started, or waiting to retry */
  JOB_ACTIVE,  /* transfer running */
  JOB_DONE,    /* all bytes received; waiting to be committed in order */
  JOB_COMMITTED,
};

struct job
{
  struct pull *p;
  size_t index;
  struct reg_descriptor d;
  char diff_id[CIMG_DIGEST_BUFSIZE], parent[CIMG_DIGEST_BUFSIZE], chain[CIMG_DIGEST_BUFSIZE];
  char short_id[13];
  enum job_state state;
  struct cimg_layer_sink *sink;
  struct cimg_ingest *ingest; /* the compressed bytes, resumable after a kill */
  /* blob_only: the layer is in the store (same chain ID, e.g. from a load or a build) but the
     registry's compressed blob is not, so the blob is fetched into blobs/ without unpacking
     it: verified against its digest (ch) and, inflated (z), against the diff_id (th). */
  bool blob_only;
  struct cimg_inflater *z;
  struct cimg_sha256 *ch, *th;
  CURL *easy;
  struct curl_slist *hl;
  struct reg_response hdr;
  int64_t received; /* bytes fed to the sink */
  int attempts;     /* failed attempts so far */
  int64_t next_try; /* monotonic ms */
  bool checked;     /* the status of this response has been looked at */
  bool discard;     /* this response is an error: its body is not layer bytes */
  bool fatal;       /* err is set: the pull fails */
  bool reauthed;
  bool paused;       /* the write callback paused the transfer: its sink's ring was nearly full */
  bool said_waiting; /* "Waiting" was shown: no download slot was free at first */
  long status;
  char errbody[1024];
  size_t errlen;
  char curl_msg[CURL_ERROR_SIZE];
  cimg_error_t err;
  int64_t last_progress;
  struct cimg_layer_info info;
};

struct pull
{
  struct cimg_store *s;
  struct reg_client *c;
  struct cimg_progress *progress;
  CURLM *multi;
  struct job *jobs;
  size_t n;
  int max;
};

static void
job_reset_response (struct job *j)
{
  j->checked = j->discard = j->paused = false;
  j->status = 0;
  j->errlen = 0;
  reg_response_clear (&j->hdr);
}

static size_t
job_header (char *ptr, size_t size, size_t nmemb, void *data)
{
  struct job *j = data;
  reg_take_headers (&j->hdr, ptr, size * nmemb);
  return size * nmemb;
}

static int job_fail (struct job *j, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
static int
job_fail (struct job *j, int code, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  cleanup_free char *m = NULL;
  if (vasprintf (&m, fmt, ap) < 0)
    abort ();
  va_end (ap);
  cimg_error_set (&j->err, code, "%s", m);
  j->fatal = true;
  return 0;
}

static int
hash_out (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  (void)err;
  cimg_sha256_update (data, buf, len);
  return 0;
}

/* (Re)open where the layer's bytes go: a fresh layer sink, or for a blob-only fetch fresh
   hashes and inflater. */
static int
job_open_sink (struct job *j, cimg_error_t *err)
{
  if (j->blob_only)
    {
      cimg_inflater_free (j->z);
      cimg_sha256_free (j->ch);
      cimg_sha256_free (j->th);
      j->ch = cimg_sha256_new ();
      j->th = cimg_sha256_new ();
      j->z = cimg_inflater_new (hash_out, j->th);
      return 0;
    }
  cimg_layer_sink_free (j->sink);
  j->sink = cimg_layer_sink_new (j->p->s, j->parent, 0, err);
  if (j->sink == NULL)
    return -1;
  /* The download file hashes the same bytes (and is verified in job_commit). */
  cimg_layer_sink_digest_verified (j->sink);
  return 0;
}

static int
job_feed (struct job *j, const void *buf, size_t len, cimg_error_t *err)
{
  if (!j->blob_only)
    return cimg_layer_sink_write (j->sink, buf, len, err);
  cimg_sha256_update (j->ch, buf, len);
  return cimg_inflater_write (j->z, buf, len, err);
}

/* Room in a layer's ring below which its transfer is paused. A write callback brings 16 KiB,
   and every eighth one hands the inflater a 128 KiB batch (store/inflate.c): up to 8:1, what
   that batch inflates to fits without waiting; beyond (runs of zeros), the download loop waits
   in the ring for the worker to take the rest, as it would for any layer that compresses
   better than the room allows. */
#define ROOM_MIN ((size_t)1 << 20)

static void
job_wake (void *multi)
{
  curl_multi_wakeup (multi);
}

static size_t
job_write (char *ptr, size_t size, size_t nmemb, void *data)
{
  struct job *j = data;
  size_t len = size * nmemb;
  if (!j->checked)
    {
      j->checked = true;
      curl_easy_getinfo (j->easy, CURLINFO_RESPONSE_CODE, &j->status);
      if (j->status == 206)
        {
          int64_t start, end, total;
          if (reg_parse_content_range (j->hdr.content_range, &start, &end, &total) < 0)
            return job_fail (j, EIO, "resume: 206 with an invalid Content-Range \"%s\"",
                             j->hdr.content_range ? j->hdr.content_range : "");
          if (start != j->received)
            return job_fail (
                j, EIO, "resume: asked for bytes from %" PRId64 ", the server sent from %" PRId64,
                j->received, start);
          if (total >= 0 && total != j->d.size)
            return job_fail (
                j, EINVAL, "size mismatch (the server has %" PRId64 " bytes, expected %" PRId64 ")",
                total, j->d.size);
        }
      else if (j->status == 200)
        {
          if (j->received > 0)
            {
              /* The server ignored our Range: the bytes start over, and so must the sink. */
              j->received = 0;
              if (job_open_sink (j, &j->err) < 0 || cimg_ingest_reset (j->ingest, &j->err) < 0)
                {
                  j->fatal = true;
                  return 0;
                }
            }
        }
      else
        j->discard = true;
    }
  if (j->discard)
    {
      size_t k = sizeof j->errbody - 1 - j->errlen;
      if (k > len)
        k = len;
      memcpy (j->errbody + j->errlen, ptr, k);
      j->errlen += k;
      j->errbody[j->errlen] = '\0';
      return len;
    }
  /* curl serves every transfer from this one thread: a write that waited for one layer's
     extraction would hold the others' downloads (and so their extraction threads) too. A
     layer whose ring is nearly full is paused instead, and resumed by run_jobs once its
     extraction thread has made room (which wakes the loop). */
  if (!j->blob_only && !cimg_layer_sink_has_room (j->sink, ROOM_MIN, job_wake, j->p->multi))
    {
      j->paused = true;
      return CURL_WRITEFUNC_PAUSE;
    }
  if (j->received + (int64_t)len > j->d.size)
    return job_fail (j, EINVAL, "size mismatch (more than the %" PRId64 " bytes expected)",
                     j->d.size);
  if (cimg_ingest_write (j->ingest, ptr, len, &j->err) < 0 || job_feed (j, ptr, len, &j->err) < 0)
    {
      j->fatal = true;
      return 0;
    }
  j->received += (int64_t)len;
  int64_t t = now_ms ();
  if (t - j->last_progress >= 100 || j->received == j->d.size)
    {
      j->last_progress = t;
      cimg_progress_update (j->p->progress, j->short_id, "Downloading", j->received, j->d.size);
    }
  return len;
}

static int
replay_to_sink (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  return job_feed (data, buf, len, err);
}

static int
job_start (struct job *j, cimg_error_t *err)
{
  struct pull *p = j->p;
  if (j->ingest == NULL)
    {
      /* The compressed bytes go to a resumable ingest file (which becomes the kept blob), not
         through the sink's own blob writer. */
      j->ingest = cimg_ingest_open (p->s, j->d.digest, j->d.size, err);
      if (j->ingest == NULL)
        return -1;
      if (job_open_sink (j, err) < 0)
        return -1;
      j->received = cimg_ingest_offset (j->ingest);
      if (j->received > 0)
        {
          /* A killed pull left these bytes: they are hashed and unpacked again (the sink
             verifies the whole stream), and only the rest is asked for. */
          cimg_progress_update (p->progress, j->short_id, "Resuming", j->received, j->d.size);
          if (cimg_ingest_replay (j->ingest, replay_to_sink, j, err) < 0)
            return -1;
          /* Killed after the last byte: nothing to ask for (a Range past the end is a 416). */
          if (j->received == j->d.size)
            {
              j->state = JOB_DONE;
              return 0;
            }
        }
    }
  if (j->easy == NULL)
    j->easy = curl_easy_init ();
  else
    curl_easy_reset (j->easy);
  if (j->easy == NULL)
    return cimg_error_set (err, ENOMEM, "curl_easy_init failed");
  job_reset_response (j);
  reg_client_setup_easy (p->c, j->easy);
  cleanup_free char *url = reg_client_url (p->c, "blobs/%s", j->d.digest);
  curl_slist_free_all (j->hl);
  j->hl = NULL;
  /* A layer started late in a long pull must not go out with a token about to expire. */
  if (reg_client_fresh_token (p->c, err) < 0)
    return -1;
  if (p->c->authz)
    j->hl = curl_slist_append (j->hl, p->c->authz);
  if (j->received > 0)
    {
      char range[64];
      snprintf (range, sizeof range, "Range: bytes=%" PRId64 "-", j->received);
      j->hl = curl_slist_append (j->hl, range);
    }
  j->curl_msg[0] = '\0';
  curl_easy_setopt (j->easy, CURLOPT_ERRORBUFFER, j->curl_msg);
  curl_easy_setopt (j->easy, CURLOPT_URL, url);
  curl_easy_setopt (j->easy, CURLOPT_HTTPHEADER, j->hl);
  curl_easy_setopt (j->easy, CURLOPT_WRITEFUNCTION, job_write);
  curl_easy_setopt (j->easy, CURLOPT_WRITEDATA, j);
  curl_easy_setopt (j->easy, CURLOPT_HEADERFUNCTION, job_header);
  curl_easy_setopt (j->easy, CURLOPT_HEADERDATA, j);
  curl_easy_setopt (j->easy, CURLOPT_PRIVATE, j);
  /* The default 16 KiB makes one recv(2) per 16 KiB of a layer; with a larger buffer each takes
     what the socket has (the write callback still gets at most 16 KiB a call: the download
     file gathers its writes, store/ingest.c). */
  curl_easy_setopt (j->easy, CURLOPT_BUFFERSIZE, 256L * 1024);
  if (curl_multi_add_handle (p->multi, j->easy) != CURLM_OK)
    return cimg_error_set (err, EIO, "curl_multi_add_handle failed");
  j->state = JOB_ACTIVE;
  return 0;
}

/* A transfer ended with curl result rc. Decide: done, retry (resuming), or fail. */
static int
job_ended (struct job *j, CURLcode rc, cimg_error_t *err)
{
  struct pull *p = j->p;
  curl_multi_remove_handle (p->multi, j->easy);
  if (j->status == 0)
    curl_easy_getinfo (j->easy, CURLINFO_RESPONSE_CODE, &j->status);
  if (j->fatal)
    {
      cimg_error_set (err, j->err.code, "%s", j->err.msg ? j->err.msg : "failed");
      cimg_error_clear (&j->err);
      return -1;
    }
  const char *why = NULL;
  char buf[256];
  /* Every byte came before the connection broke (a Content-Length longer than the blob): the
     digests decide, and a resume would ask for a range past the end. */
  if (rc != CURLE_OK && !j->discard && j->d.size > 0 && j->received == j->d.size)
    rc = CURLE_OK;
  if (rc != CURLE_OK)
    {
      snprintf (buf, sizeof buf, "%s", j->curl_msg[0] ? j->curl_msg : curl_easy_strerror (rc));
      if (reg_curl_error_final (rc, j->curl_msg))
        return cimg_error_set (err, EIO, "%s", buf);
      why = buf;
    }
  else if (j->status == 401 && !j->reauthed && j->hdr.www_auth)
    {
      /* The token expired during a long pull: a fresh one, and the same bytes again. */
      j->reauthed = true;
      cleanup_free char *ch = xstrdup (j->hdr.www_auth);
      if (reg_authenticate (p->c, ch, err) < 0)
        return -1;
      j->state = JOB_PENDING;
      j->next_try = 0;
      return 0;
    }
  else if (j->status != 200 && j->status != 206)
    {
      struct reg_response er = { .status = j->status, .body = j->errbody, .len = j->errlen };
      cleanup_free char *m = reg_response_error (&er);
      if (!reg_status_retryable (j->status))
        return cimg_error_set (err, EIO, "%s", m);
      snprintf (buf, sizeof buf, "%s", m);
      why = buf;
    }
  else if (j->received < j->d.size)
    {
      snprintf (buf, sizeof buf, "body cut short at %" PRId64 " of %" PRId64 " bytes", j->received,
                j->d.size);
      why = buf;
    }
  if (why == NULL)
    {
      j->state = JOB_DONE;
      cimg_progress_done (p->progress, j->short_id, "Download complete");
      return 0;
    }
  if (j->attempts >= p->c->retries)
    return cimg_error_set (err, EIO, "%s (gave up after %d attempts)", why, j->attempts + 1);
  /* Retry later, resuming from what the sink already has. */
  int64_t delay = reg_parse_retry_after (j->hdr.retry_after);
  if (delay < 0)
    {
      delay = p->c->backoff_ms;
      for (int i = 0; i < j->attempts && delay < 30000; i++)
        delay *= 2;
    }
  j->attempts++;
  j->state = JOB_PENDING;
  j->next_try = now_ms () + delay;
  cimg_progress_done (p->progress, j->short_id, "Retrying");
  return 0;
}

/* A blob-only fetch: the bytes must hash to the descriptor's digest and inflate to the
   config's diff_id (a blob that did not would make the image's manifest lie about its
   layers); nothing is unpacked, the layer is the one already in the store. */
static int
job_commit_blob (struct job *j, cimg_error_t *err)
{
  cimg_progress_done (j->p->progress, j->short_id, "Verifying Checksum");
  char got[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_final (j->ch, got);
  if (strcmp (got, j->d.digest) != 0)
    return cimg_error_set (err, EINVAL, "digest mismatch (got %s)", got);
  if (cimg_inflater_finish (j->z, err) < 0)
    return -1;
  cimg_sha256_final (j->th, got);
  if (strcmp (got, j->diff_id) != 0)
    return cimg_error_set (err, EINVAL, "diff_id mismatch (the blob inflates to %s, expected %s)",
                           got, j->diff_id);
  if (cimg_ingest_commit (j->ingest, err) < 0)
    return -1;
  cimg_ingest_close (j->ingest, false);
  j->ingest = NULL;
  j->state = JOB_COMMITTED;
  cimg_progress_done (j->p->progress, j->short_id, "Pull complete");
  return 0;
}

static int
job_commit (struct job *j, cimg_error_t *err)
{
  if (j->blob_only)
    return job_commit_blob (j, err);
  cimg_progress_done (j->p->progress, j->short_id, "Extracting");
  /* The digest first (the sink relies on it), and the download's last bytes written out before
     the layer's syncfs, which then makes the blob durable too: one sync for both. */
  if (cimg_ingest_verify (j->ingest, err) < 0)
    return -1;
  if (cimg_layer_sink_finish (j->sink, j->d.digest, j->diff_id, &j->info, err) < 0)
    return -1;
  int rc = cimg_ingest_commit_synced (j->ingest, cimg_layer_sink_synced_fd (j->sink), err);
  cimg_layer_sink_free (j->sink);
  j->sink = NULL;
  if (rc < 0)
    return -1;
  cimg_ingest_close (j->ingest, false);
  j->ingest = NULL;
  if (strcmp (j->info.chain_id, j->chain) != 0)
    return cimg_error_set (err, EINVAL, "chain ID mismatch (got %s, expected %s)", j->info.chain_id,
                           j->chain);
  j->state = JOB_COMMITTED;
  cimg_progress_done (j->p->progress, j->short_id, "Pull complete");
  return 0;
}

static int
run_jobs (struct pull *p, cimg_error_t *err)
{
  size_t next_commit = 0;
  for (;;)
    {
      /* Commit in order: a layer goes into the store only after the one below it. */
      while (next_commit < p->n
             && (p->jobs[next_commit].state == JOB_DONE || p->jobs[next_commit].state == JOB_SKIP))
        {
          struct job *j = &p->jobs[next_commit];
          if (j->state == JOB_DONE && job_commit (j, err) < 0)
            return cimg_error_wrap (err, "layer %s", j->d.digest);
          next_commit++;
        }
      if (next_commit == p->n)
        return 0;
      int active = 0, waiting = 0;
      int64_t t = now_ms (), wake = -1;
      for (size_t i = 0; i < p->n; i++)
        {
          active += p->jobs[i].state == JOB_ACTIVE;
          waiting += p->jobs[i].state == JOB_DONE;
        }
      /* Finished layers wait for the ones below them with their sink (and its ring buffer)
         open: bounding them bounds memory. The next layer to commit is always allowed to
         (re)start, or layers waiting for it would wait forever. */
      for (size_t i = 0; i < p->n; i++)
        {
          struct job *j = &p->jobs[i];
          if (j->state != JOB_PENDING)
            continue;
          if (i != next_commit && (active >= p->max || waiting >= p->max))
            {
              /* As Docker: a layer queued behind the download limit says so once. */
              if (j->attempts == 0 && !j->said_waiting)
                cimg_progress_done (p->progress, j->short_id, "Waiting");
              j->said_waiting = true;
              continue;
            }
          if (j->next_try > t)
            {
              if (wake < 0 || j->next_try < wake)
                wake = j->next_try;
              continue;
            }
          if (job_start (j, err) < 0)
            return cimg_error_wrap (err, "layer %s", j->d.digest);
          active++;
        }
      for (size_t i = 0; i < p->n; i++)
        {
          struct job *j = &p->jobs[i];
          if (j->state == JOB_ACTIVE && j->paused
              && cimg_layer_sink_has_room (j->sink, ROOM_MIN, NULL, NULL))
            {
              j->paused = false;
              /* This may call job_write at once, which may pause it again. */
              curl_easy_pause (j->easy, CURLPAUSE_CONT);
            }
        }
      int timeout = 1000;
      if (wake >= 0 && wake - t < timeout)
        timeout = (int)(wake - t < 1 ? 1 : wake - t);
      int running;
      CURLMcode mc = curl_multi_perform (p->multi, &running);
      /* A transfer that ended inside that perform is news to read now: polling first would
         sleep the whole timeout when it was the last one running (a 1 s stall per pull). */
      if (mc == CURLM_OK && running >= active)
        {
          mc = curl_multi_poll (p->multi, NULL, 0, timeout, NULL);
          if (mc == CURLM_OK)
            mc = curl_multi_perform (p->multi, &running);
        }
      if (mc != CURLM_OK)
        return cimg_error_set (err, EIO, "curl: %s", curl_multi_strerror (mc));
      CURLMsg *msg;
      int left;
      while ((msg = curl_multi_info_read (p->multi, &left)))
        {
          if (msg->msg != CURLMSG_DONE)
            continue;
          struct job *j = NULL;
          curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **)&j);
          if (job_ended (j, msg->data.result, err) < 0)
            return cimg_error_wrap (err, "layer %s", j->d.digest);
        }
    }
}

static void
pull_free_jobs (struct pull *p)
{
  for (size_t i = 0; i < p->n; i++)
    {
      struct job *j = &p->jobs[i];
      if (j->easy)
        {
          if (j->state == JOB_ACTIVE)
            curl_multi_remove_handle (p->multi, j->easy);
          curl_easy_cleanup (j->easy);
        }
      curl_slist_free_all (j->hl);
      cimg_layer_sink_free (j->sink);
      cimg_inflater_free (j->z);
      cimg_sha256_free (j->ch);
      cimg_sha256_free (j->th);
      /* A pull that gives up removes its partial download (only a killed one leaves it). */
      cimg_ingest_close (j->ingest, false);
      reg_response_clear (&j->hdr);
      cimg_error_clear (&j->err);
    }
  free (p->jobs);
  if (p->multi)
    curl_multi_cleanup (p->multi);
}

/* ---------------------------------------------------------------- pull */

/* The first endpoint (mirror, then the registry) that serves the manifest. */
static struct reg_client *
open_client (const struct cimg_ref *ref, const char *reference, char **bytes, size_t *len,
             json_t **m, char mt[96], char digest[CIMG_DIGEST_BUFSIZE], cimg_error_t *err)
{
  struct reg_config cfg = { 0 };
  if (strcmp (ref->domain, "docker.io") == 0 && reg_config_load (&cfg, err) < 0)
    return NULL;
  for (size_t i = 0; cfg.mirrors && cfg.mirrors[i]; i++)
    {
      struct reg_client *c = reg_client_new (ref->domain, ref->path, "pull", err);
      if (c == NULL)
        break;
      free (c->endpoint);
      c->endpoint = xstrdup (cfg.mirrors[i]);
      size_t k = strlen (c->endpoint);
      while (k > 0 && c->endpoint[k - 1] == '/')
        c->endpoint[--k] = '\0';
      c->insecure = cimg_str_has_prefix (c->endpoint, "http://");
      c->http_fallback = false;
      /* Credentials of docker.io are not for a mirror. */
      free (c->user), free (c->pass);
      c->user = c->pass = NULL;
      if (fetch_manifest (c, reference, NULL, bytes, len, m, mt, digest, err) == 0)
        {
          reg_config_clear (&cfg);
          return c;
        }
      cimg_error_clear (err);
      reg_client_free (c);
    }
  reg_config_clear (&cfg);
  struct reg_client *c = reg_client_new (ref->domain, ref->path, "pull", err);
  if (c == NULL)
    return NULL;
  if (fetch_manifest (c, reference, NULL, bytes, len, m, mt, digest, err) < 0)
    {
      reg_client_free (c);
      return NULL;
    }
  return c;
}

static int
do_pull (struct cimg_store *s, struct cimg_ref *ref, const struct cimg_pull_opts *o,
         struct cimg_pull_result *res, cimg_error_t *err)
{
  struct reg_platform plat;
  if (reg_platform_parse (o ? o->platform : NULL, &plat, err) < 0)
    return -1;
  struct cimg_progress *progress = o ? o->progress : NULL;
  const char *reference = ref->digest ? ref->digest : ref->tag;
  cleanup_free char *name = cimg_ref_name (ref);
  cleanup_free char *top_bytes = NULL;
  size_t top_len = 0;
  cleanup_json json_t *top = NULL;
  char top_mt[96], top_digest[CIMG_DIGEST_BUFSIZE];
  cleanup_client struct reg_client *c
      = open_client (ref, reference, &top_bytes, &top_len, &top, top_mt, top_digest, err);
  if (c == NULL)
    return -1;
  {
    /* As Docker: "TAG: Pulling from REPO", and "NAME@DIGEST: Pulling from REPO" by digest. */
    cleanup_free char *line = xasprintf ("Pulling from %s", ref->path);
    cleanup_free char *what = ref->digest ? cimg_ref_string (ref) : xstrdup (ref->tag);
    cimg_progress_note (progress, what, line);
  }

  /* An index: the manifest of our platform. */
  cleanup_free char *m_bytes = NULL;
  size_t m_len = 0;
  cleanup_json json_t *m = NULL;
  char m_mt[96], m_digest[CIMG_DIGEST_BUFSIZE];
  if (reg_media_type_is_index (top_mt))
    {
      struct reg_descriptor d;
      if (reg_index_choose (top, &plat, &d, err) < 0)
        return -1;
      if (!d.media_type[0])
        snprintf (d.media_type, sizeof d.media_type, "%s",
                  strcmp (top_mt, MT_DOCKER_LIST) == 0 ? MT_DOCKER_MANIFEST : MT_OCI_MANIFEST);
      if (fetch_manifest (c, d.digest, &d, &m_bytes, &m_len, &m, m_mt, m_digest, err) < 0)
        return -1;
      if (!reg_media_type_is_manifest (m_mt))
        return cimg_error_set (err, EINVAL, "manifest %s: an index inside an index", d.digest);
    }
  else
    {
      m_bytes = steal_pointer (&top_bytes);
      m_len = top_len;
      m = steal_pointer (&top);
      memcpy (m_digest, top_digest, sizeof m_digest);
    }
  struct reg_manifest man;
  if (reg_manifest_parse (m, &man, err) < 0)
    return cimg_error_wrap (err, "manifest %s", m_digest);
  cleanup_free struct reg_descriptor *layers_d = man.layers;

  cleanup_free char *cfg_bytes = NULL;
  size_t cfg_len = 0;
  if (fetch_config (c, &man.config, &cfg_bytes, &cfg_len, err) < 0)
    return -1;
  cleanup_json json_t *cfg = cimg_json_parse (cfg_bytes, cfg_len, err);
  if (cfg == NULL)
    return cimg_error_wrap (err, "config %s", man.config.digest);
  const char *cos = cimg_json_str (cfg, "os"), *carch = cimg_json_str (cfg, "architecture");
  if (o && o->platform && cos && carch
      && (strcmp (cos, plat.os) != 0 || strcmp (carch, plat.arch) != 0))
    return cimg_error_set (err, EINVAL, "image is for %s/%s, not the requested %s/%s", cos, carch,
                           plat.os, plat.arch);
  json_t *diff_ids = json_object_get (json_object_get (cfg, "rootfs"), "diff_ids");
  size_t nd = json_is_array (diff_ids) ? json_array_size (diff_ids) : 0;
  if (nd != man.n_layers)
    return cimg_error_set (err, EINVAL,
                           "config %s lists %zu diff_ids for the manifest's %zu layers",
                           man.config.digest, nd, man.n_layers);

  /* Layers: which are there already, which to fetch. */
  struct pull p = { .s = s, .c = c, .progress = progress, .n = man.n_layers };
  p.max = o && o->max_concurrent > 0 ? o->max_concurrent : 3;
  p.jobs = xzalloc ((p.n ? p.n : 1) * sizeof *p.jobs);
  p.multi = curl_multi_init ();
  int rc = -1;
  bool downloaded = false;
  char parent[CIMG_DIGEST_BUFSIZE] = "";
  /* Declared before the first goto: cleanup attributes must never see them uninitialised. */
  cleanup_free char *repo_digest = NULL, *full = NULL;
  cleanup_free struct cimg_image_layer *il = NULL;
  char old_id[CIMG_DIGEST_BUFSIZE] = "";
  for (size_t i = 0; i < p.n; i++)
    {
      struct job *j = &p.jobs[i];
      j->p = &p;
      j->index = i;
      j->d = layers_d[i];
      const char *di = json_string_value (json_array_get (diff_ids, i));
      if (di == NULL || !cimg_digest_valid (di))
        {
          cimg_error_set (err, EINVAL, "config %s: diff_id %zu is not a digest", man.config.digest,
                          i + 1);
          goto out;
        }
      snprintf (j->diff_id, sizeof j->diff_id, "%s", di);
      snprintf (j->parent, sizeof j->parent, "%s", parent);
      cimg_chain_id (parent, di, j->chain);
      memcpy (parent, j->chain, sizeof parent);
      snprintf (j->short_id, sizeof j->short_id, "%.12s", cimg_digest_hex (j->d.digest));
      if (cimg_store_has_layer (s, j->chain) && cimg_store_has_blob (s, j->d.digest))
        {
          j->state = JOB_SKIP;
          cimg_progress_done (progress, j->short_id, "Already exists");
        }
      else if (cimg_store_has_layer (s, j->chain))
        {
          /* Push and save need the blob this manifest names, exactly: fetch it, once. */
          j->blob_only = true;
          j->state = JOB_PENDING;
          downloaded = true;
        }
      else
        {
          j->state = JOB_PENDING;
          downloaded = true;
        }
      /* Every layer has its line from the start, in the manifest's order, as in Docker's
         output; those beyond the download limit then say "Waiting". */
      if (j->state == JOB_PENDING)
        cimg_progress_done (progress, j->short_id, "Pulling fs layer");
    }
  if (run_jobs (&p, err) < 0)
    goto out;

  il = xzalloc ((p.n ? p.n : 1) * sizeof *il);
  for (size_t i = 0; i < p.n; i++)
    {
      struct job *j = &p.jobs[i];
      memcpy (il[i].chain_id, j->chain, sizeof il[i].chain_id);
      memcpy (il[i].diff_id, j->diff_id, sizeof il[i].diff_id);
      memcpy (il[i].digest, j->d.digest, sizeof il[i].digest);
      snprintf (il[i].media_type, sizeof il[i].media_type, "%s", j->d.media_type);
      il[i].blob_size = j->d.size;
      if (j->state == JOB_COMMITTED && !j->blob_only)
        il[i].size = j->info.size;
      else
        {
          struct cimg_layer_info li;
          if (cimg_store_layer_info (s, j->chain, &li, err) < 0)
            goto out;
          il[i].size = li.size;
        }
    }
  repo_digest = xasprintf ("%s@%s", name, top_digest);
  full = cimg_ref_string (ref);
  if (!ref->digest)
    {
      cimg_error_t ferr = { 0 };
      cleanup_image struct cimg_image *old = cimg_store_find_image (s, full, &ferr);
      cimg_error_clear (&ferr);
      if (old)
        memcpy (old_id, old->id, sizeof old_id);
    }
  /* The tag is remembered with this manifest: a push of it sends these bytes, even when the
     image is also known through another manifest. */
  const char *tag = ref->digest ? NULL : full;
  rc = cimg_store_add_image_ref (s, cfg_bytes, cfg_len, m_bytes, m_len, il, p.n, repo_digest, tag,
                                 tag, res->id, err);
  if (rc < 0)
    goto out;
  memcpy (res->digest, top_digest, sizeof res->digest);
  res->name = ref->digest ? xasprintf ("%s@%s", name, ref->digest) : xstrdup (full);
  res->downloaded = downloaded || strcmp (old_id, res->id) != 0;
out:
  pull_free_jobs (&p);
  return rc;
}

int
cimg_registry_pull (struct cimg_store *s, const char *refstr, const struct cimg_pull_opts *opts,
                    struct cimg_pull_result *res, cimg_error_t *err)
{
  memset (res, 0, sizeof *res);
  cleanup_ref struct cimg_ref *ref = cimg_ref_parse (refstr, err);
  if (ref == NULL)
    return -1;
  if (ref->digest && !cimg_digest_valid (ref->digest))
    return cimg_error_set (err, EINVAL, "invalid digest in \"%s\"", refstr);
  if (cimg_store_lock (s, CIMG_LOCK_SHARED, err) < 0)
    return -1;
  cleanup_free char *full = cimg_ref_string (ref);
  if (do_pull (s, ref, opts, res, err) < 0)
    {
      cimg_pull_result_clear (res);
      return cimg_error_wrap (err, "pull %s", full);
    }
  return 0;
}
