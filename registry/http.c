/* The HTTP side of the registry client: endpoints, requests with retries, the auth flows. */
#include "registry/registry-internal.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once (void)
{
  curl_global_init (CURL_GLOBAL_DEFAULT);
}

void
reg_response_clear (struct reg_response *r)
{
  free (r->body);
  free (r->content_type);
  free (r->digest);
  free (r->location);
  free (r->www_auth);
  free (r->retry_after);
  free (r->content_range);
  free (r->range);
  memset (r, 0, sizeof *r);
}

static int64_t
env_int (const char *name, int64_t def)
{
  const char *v = getenv (name);
  if (v == NULL || *v == '\0')
    return def;
  char *end;
  long long n = strtoll (v, &end, 10);
  return *end == '\0' && n >= 0 ? n : def;
}

/* The certificates of c's endpoint host, and with them whether the registry is insecure. */
static int
load_tls (struct reg_client *c, cimg_error_t *err)
{
  const char *host = strstr (c->endpoint, "://") + 3;
  char *system_ca = NULL;
  /* libcurl's own default bundle, which a CAINFO_BLOB would otherwise replace. */
  if (curl_easy_getinfo (c->easy, CURLINFO_CAINFO, &system_ca) != CURLE_OK || system_ca == NULL)
    system_ca = "/etc/ssl/certs/ca-certificates.crt";
  if (reg_tls_load (host, system_ca, &c->tls, err) < 0)
    return -1;
  /* Configured certificates mean TLS with verification, even for a loopback registry that
     would otherwise be insecure: a user who put a CA there wants it checked. */
  if (c->tls.dir)
    c->insecure = false;
  c->http_fallback = c->insecure;
  return 0;
}

struct reg_client *
reg_client_new (const char *domain, const char *repo, const char *actions, cimg_error_t *err)
{
  const char *why = cimg_curl_load_error ();
  if (why)
    {
      cimg_error_set (err, ELIBACC, "%s", why);
      return NULL;
    }
  pthread_once (&curl_once, curl_init_once);
  struct reg_config cfg;
  if (reg_config_load (&cfg, err) < 0)
    return NULL;
  struct reg_client *c = xzalloc (sizeof *c);
  c->domain = xstrdup (domain);
  c->easy = curl_easy_init ();
  if (c->easy == NULL)
    {
      cimg_error_set (err, ENOMEM, "curl_easy_init failed");
      reg_client_free (c);
      reg_config_clear (&cfg);
      return NULL;
    }
  c->repo = xstrdup (repo ? repo : "");
  c->actions = xstrdup (actions ? actions : "pull");
  c->insecure = reg_config_insecure (&cfg, domain);
  c->endpoint = strcmp (domain, "docker.io") == 0 ? xstrdup ("https://registry-1.docker.io")
                                                  : xasprintf ("https://%s", domain);
  /* 64 MiB: one PUT for nearly every layer, while a broken upload of a big one loses at
     most a chunk. The environment variable is for tests (small chunks of small images). */
  c->chunk_size = cfg.has_push_chunk_size ? cfg.push_chunk_size : (int64_t)64 << 20;
  reg_config_clear (&cfg);
  const char *cs = getenv ("CIMG_PUSH_CHUNK_SIZE");
  if (cs && *cs && reg_parse_size (cs, &c->chunk_size) < 0)
    {
      cimg_error_set (err, EINVAL, "CIMG_PUSH_CHUNK_SIZE=\"%s\" is not a byte count", cs);
      reg_client_free (c);
      return NULL;
    }
  if (load_tls (c, err) < 0)
    {
      reg_client_free (c);
      return NULL;
    }
  c->retries = (int)env_int ("CIMG_REGISTRY_RETRIES", 5);
  c->backoff_ms = env_int ("CIMG_REGISTRY_BACKOFF_MS", 250);
  if (cimg_registry_credentials (domain, &c->user, &c->pass, err) < 0)
    {
      reg_client_free (c);
      return NULL;
    }
  return c;
}

void
reg_client_free (struct reg_client *c)
{
  if (c == NULL)
    return;
  if (c->easy)
    curl_easy_cleanup (c->easy);
  free (c->domain);
  free (c->endpoint);
  free (c->repo);
  free (c->actions);
  cimg_strv_free (c->extra_scopes);
  free (c->user);
  free (c->pass);
  free (c->authz);
  free (c->challenge);
  reg_tls_clear (&c->tls);
  free (c);
}

static char *
dup_or_null (const char *s)
{
  return s ? xstrdup (s) : NULL;
}

struct reg_client *
reg_client_clone (const struct reg_client *c, cimg_error_t *err)
{
  struct reg_client *n = xzalloc (sizeof *n);
  n->easy = curl_easy_init ();
  if (n->easy == NULL)
    {
      free (n);
      cimg_error_set (err, ENOMEM, "curl_easy_init failed");
      return NULL;
    }
  n->domain = xstrdup (c->domain);
  n->endpoint = xstrdup (c->endpoint);
  n->repo = xstrdup (c->repo);
  n->actions = xstrdup (c->actions);
  for (size_t i = 0; c->extra_scopes && c->extra_scopes[i]; i++)
    cimg_strv_append (&n->extra_scopes, c->extra_scopes[i]);
  n->user = dup_or_null (c->user);
  n->pass = dup_or_null (c->pass);
  n->authz = dup_or_null (c->authz);
  n->challenge = dup_or_null (c->challenge);
  n->token_renew_ms = c->token_renew_ms;
  n->chunk_size = c->chunk_size;
  n->insecure = c->insecure;
  n->http_fallback = c->http_fallback;
  n->tls.dir = dup_or_null (c->tls.dir);
  n->tls.ca_pem = c->tls.ca_pem ? xmemdup (c->tls.ca_pem, c->tls.ca_len) : NULL;
  n->tls.ca_len = c->tls.ca_len;
  n->tls.client_cert = dup_or_null (c->tls.client_cert);
  n->tls.client_key = dup_or_null (c->tls.client_key);
  n->retries = c->retries;
  n->backoff_ms = c->backoff_ms;
  return n;
}

void
reg_client_freep (struct reg_client **c)
{
  reg_client_free (*c);
  *c = NULL;
}

void
reg_client_setup_easy (struct reg_client *c, CURL *e)
{
  curl_easy_setopt (e, CURLOPT_USERAGENT, "cimg/" CIMG_VERSION);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT, 30L);
  /* A stalled body (no byte for a minute) is a broken connection: retried, resumed. */
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_TIME, env_int ("CIMG_REGISTRY_STALL_SECONDS", 60));
  /* Blob GETs are redirected to storage (S3, CDNs). curl does not send our Authorization
     header to another host on a redirect. */
  curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (e, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (e, CURLOPT_REDIR_PROTOCOLS_STR, c && c->insecure ? "http,https" : "https");
  curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
  if (c == NULL)
    return;
  if (c->insecure)
    {
      /* As Docker: an insecure registry's TLS is used without verification. */
      curl_easy_setopt (e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt (e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
  if (c->tls.ca_pem)
    {
      /* NOCOPY: the client outlives every transfer made with it. */
      struct curl_blob b = { c->tls.ca_pem, c->tls.ca_len, CURL_BLOB_NOCOPY };
      curl_easy_setopt (e, CURLOPT_CAINFO_BLOB, &b);
    }
  if (c->tls.client_cert)
    {
      curl_easy_setopt (e, CURLOPT_SSLCERT, c->tls.client_cert);
      curl_easy_setopt (e, CURLOPT_SSLKEY, c->tls.client_key);
    }
}

bool
reg_curl_error_final (CURLcode rc, const char *msg)
{
  switch (rc)
    {
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      return true;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
      /* A handshake the server ended with an alert about certificates ("certificate
         required", "unknown ca") fails the same way every time. */
      return msg && strstr (msg, "certificate") != NULL;
    default:
      return false;
    }
}

/* The message of a failed transfer: libcurl's error buffer says which certificate problem,
   curl_easy_strerror only that there was one. */
static char *
transfer_error (struct reg_client *c, CURLcode rc)
{
  const char *why = c->errbuf[0] ? c->errbuf : curl_easy_strerror (rc);
  if (strstr (why, "certificate") == NULL)
    return xstrdup (why);
  cleanup_free char *base = reg_certs_dir ();
  const char *host = strstr (c->endpoint, "://") + 3;
  /* A TLS alert about our certificate: the registry wants one and got none. */
  if (strstr (why, "alert") && c->tls.client_cert == NULL)
    return xasprintf ("%s (the registry asks for a client certificate: client.cert and "
                      "client.key in %s/%s/)",
                      why, base, host);
  if (c->tls.dir)
    return xasprintf ("%s (TLS material from %s)", why, c->tls.dir);
  return xasprintf ("%s (a registry's CA certificate goes in %s/%s/ca.crt, its client "
                    "certificate in client.cert and client.key there)",
                    why, base, host);
}

char *
reg_client_url (struct reg_client *c, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  cleanup_free char *rest = NULL;
  if (vasprintf (&rest, fmt, ap) < 0)
    abort ();
  va_end (ap);
  return xasprintf ("%s/v2/%s/%s", c->endpoint, c->repo, rest);
}

bool
reg_status_retryable (long status)
{
  return status == 408 || status == 429 || (status >= 500 && status <= 599);
}

void
reg_backoff (struct reg_client *c, int attempt, const char *retry_after)
{
  int64_t ms = reg_parse_retry_after (retry_after);
  if (ms < 0)
    {
      ms = c->backoff_ms;
      for (int i = 0; i < attempt && ms < 30000; i++)
        ms *= 2;
    }
  struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
  while (nanosleep (&ts, &ts) < 0 && errno == EINTR)
    ;
}

/* ---------------------------------------------------------------- one request */

struct sink
{
  struct reg_response *r;
  size_t max, cap;
  bool too_big;
};

static size_t
body_cb (char *ptr, size_t size, size_t nmemb, void *data)
{
  struct sink *s = data;
  size_t n = size * nmemb;
  if (s->r->len + n > s->max)
    {
      s->too_big = true;
      return 0;
    }
  if (s->r->len + n + 1 > s->cap)
    {
      s->cap = (s->r->len + n + 1) * 2;
      if (s->cap > s->max + 1)
        s->cap = s->max + 1;
      s->r->body = xrealloc (s->r->body, s->cap);
    }
  memcpy (s->r->body + s->r->len, ptr, n);
  s->r->len += n;
  s->r->body[s->r->len] = '\0';
  return n;
}

/* Keep the value of header name from line (without CRLF), replacing an earlier one. */
static void
take_header (const char *line, size_t n, const char *name, char **slot)
{
  size_t k = strlen (name);
  if (n <= k || strncasecmp (line, name, k) != 0 || line[k] != ':')
    return;
  const char *v = line + k + 1;
  const char *end = line + n;
  while (v < end && (*v == ' ' || *v == '\t'))
    v++;
  while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
    end--;
  free (*slot);
  *slot = xstrndup (v, (size_t)(end - v));
}

void
reg_take_headers (struct reg_response *r, const char *line, size_t n)
{
  if (n >= 5 && strncmp (line, "HTTP/", 5) == 0)
    {
      /* A new response (after a redirect or a 100 Continue): forget the previous headers. */
      char *body = r->body;
      size_t len = r->len;
      r->body = NULL;
      reg_response_clear (r);
      r->body = body;
      r->len = len;
      return;
    }
  take_header (line, n, "Content-Type", &r->content_type);
  take_header (line, n, "Docker-Content-Digest", &r->digest);
  take_header (line, n, "Location", &r->location);
  take_header (line, n, "WWW-Authenticate", &r->www_auth);
  take_header (line, n, "Retry-After", &r->retry_after);
  take_header (line, n, "Content-Range", &r->content_range);
  take_header (line, n, "Range", &r->range);
}

static size_t
header_cb (char *ptr, size_t size, size_t nmemb, void *data)
{
  struct sink *s = data;
  reg_take_headers (s->r, ptr, size * nmemb);
  return size * nmemb;
}

/* One attempt, no retry, no auth added. Returns the curl result. */
static CURLcode
perform (struct reg_client *c, const char *method, const char *url, char *const *headers,
         const char *authz, const void *body, size_t len, const char *body_type, size_t max,
         struct reg_response *r, bool *too_big)
{
  CURL *e = c->easy;
  curl_easy_reset (e);
  reg_client_setup_easy (c, e);
  reg_response_clear (r);
  struct sink s = { .r = r, .max = max };
  struct curl_slist *hl = NULL;
  for (size_t i = 0; headers && headers[i]; i++)
    hl = curl_slist_append (hl, headers[i]);
  if (authz)
    hl = curl_slist_append (hl, authz);
  cleanup_free char *ct = NULL;
  if (body_type)
    {
      ct = xasprintf ("Content-Type: %s", body_type);
      hl = curl_slist_append (hl, ct);
    }
  /* A PUT of a body must not wait a second for "100 Continue". */
  hl = curl_slist_append (hl, "Expect:");
  c->errbuf[0] = '\0';
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, c->errbuf);
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, body_cb);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, &s);
  curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt (e, CURLOPT_HEADERDATA, &s);
  if (strcmp (method, "HEAD") == 0)
    curl_easy_setopt (e, CURLOPT_NOBODY, 1L);
  else if (strcmp (method, "GET") != 0)
    {
      curl_easy_setopt (e, CURLOPT_CUSTOMREQUEST, method);
      curl_easy_setopt (e, CURLOPT_POSTFIELDS, body ? body : "");
      curl_easy_setopt (e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? len : 0));
    }
  CURLcode rc = curl_easy_perform (e);
  curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &r->status);
  curl_slist_free_all (hl);
  *too_big = s.too_big;
  if (r->body == NULL)
    r->body = xstrdup ("");
  return rc;
}

int
reg_request (struct reg_client *c, const char *method, const char *url, char *const *headers,
             const void *body, size_t len, const char *body_type, size_t max,
             struct reg_response *r, cimg_error_t *err)
{
  bool authed = false;
  cleanup_free char *plain = NULL;
  for (int attempt = 0;; attempt++)
    {
      bool too_big = false;
      if (reg_client_fresh_token (c, err) < 0)
        return -1;
      CURLcode rc = perform (c, method, url, headers, reg_client_authz_for (c, url), body, len,
                             body_type, max, r, &too_big);
      if (too_big)
        return cimg_error_set (err, EFBIG, "%s %s: response over the limit of %zu bytes", method,
                               url, max);
      size_t n = strlen (c->endpoint);
      if (rc != CURLE_OK && c->http_fallback && strncmp (url, c->endpoint, n) == 0
          && cimg_str_has_prefix (url, "https://"))
        {
          /* An insecure registry that does not answer over TLS: plain HTTP from now on, for
             this request and every later one (their URLs are made from the endpoint). */
          c->http_fallback = false;
          char *ep = xasprintf ("http://%s", c->endpoint + strlen ("https://"));
          free (c->endpoint);
          c->endpoint = ep;
          plain = xasprintf ("http://%s", url + strlen ("https://"));
          url = plain;
          attempt--;
          continue;
        }
      if (rc != CURLE_OK)
        {
          if (attempt < c->retries && !reg_curl_error_final (rc, c->errbuf))
            {
              reg_backoff (c, attempt, NULL);
              continue;
            }
          cleanup_free char *why = transfer_error (c, rc);
          return cimg_error_set (err, EIO, "%s %s: %s", method, url, why);
        }
      c->http_fallback = false;
      if (r->status == 401 && !authed && r->www_auth)
        {
          authed = true;
          cleanup_free char *ch = xstrdup (r->www_auth);
          if (reg_authenticate (c, ch, err) < 0)
            return -1;
          attempt--;
          continue;
        }
      if (reg_status_retryable (r->status) && attempt < c->retries)
        {
          reg_backoff (c, attempt, r->retry_after);
          continue;
        }
      return 0;
    }
}

char *
reg_response_error (const struct reg_response *r)
{
  /* The registry's error body: {"errors":[{"code":"…","message":"…"}]}. */
  cimg_error_t e = { 0 };
  cleanup_json json_t *j = r->len ? cimg_json_parse (r->body, r->len, &e) : NULL;
  cimg_error_clear (&e);
  json_t *first = json_array_get (json_object_get (j, "errors"), 0);
  const char *code = cimg_json_str (first, "code"), *msg = cimg_json_str (first, "message");
  if (code || msg)
    return xasprintf ("HTTP %ld: %s%s%s", r->status, code ? code : "", code && msg ? ": " : "",
                      msg ? msg : "");
  return xasprintf ("HTTP %ld", r->status);
}

/* ---------------------------------------------------------------- auth */

static int64_t
monotonic_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t
wall_ms (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
reg_client_authz_for (struct reg_client *c, const char *url)
{
  /* Upload locations come from the registry and may name another host (storage behind it):
     the registry's credentials go only to the registry. */
  size_t n = strlen (c->endpoint);
  if (c->authz && strncmp (url, c->endpoint, n) == 0
      && (url[n] == '/' || url[n] == '\0' || url[n] == '?'))
    return c->authz;
  return NULL;
}

int
reg_client_fresh_token (struct reg_client *c, cimg_error_t *err)
{
  if (c->challenge == NULL || c->token_renew_ms == 0 || monotonic_ms () < c->token_renew_ms)
    return 0;
  /* The same challenge, the same scopes: a new token before the registry refuses the old
     one (the refusal would cost a round trip, and a request body sent for nothing). */
  cleanup_free char *ch = xstrdup (c->challenge);
  return reg_authenticate (c, ch, err);
}

static char *
scope_string (struct reg_client *c)
{
  /* login asks for a token without a scope (the registry root). */
  char *s = *c->repo ? xasprintf ("repository:%s:%s", c->repo, c->actions) : xstrdup ("");
  for (size_t i = 0; c->extra_scopes && c->extra_scopes[i]; i++)
    {
      char *t = xasprintf ("%s %s", s, c->extra_scopes[i]);
      free (s);
      s = t;
    }
  return s;
}

int
reg_authenticate (struct reg_client *c, const char *challenge, cimg_error_t *err)
{
  struct reg_challenge ch;
  if (reg_challenge_parse (challenge, &ch) < 0)
    return cimg_error_set (err, EACCES, "%s: unusable WWW-Authenticate challenge \"%.100s\"",
                           c->domain, challenge);
  int rc = -1;
  if (strcmp (ch.scheme, "basic") == 0)
    {
      if (c->user == NULL)
        {
          cimg_error_set (err, EACCES, "%s: unauthorized: authentication required (cimg login %s)",
                          c->domain, c->domain);
          goto out;
        }
      cleanup_free char *a = reg_auth_encode (c->user, c->pass);
      free (c->authz);
      c->authz = xasprintf ("Authorization: Basic %s", a);
      rc = 0;
    }
  else if (strcmp (ch.scheme, "bearer") == 0)
    {
      if (ch.realm == NULL
          || !(cimg_str_has_prefix (ch.realm, "https://")
               || (cimg_str_has_prefix (ch.realm, "http://") && c->insecure)))
        {
          cimg_error_set (err, EACCES, "%s: token realm \"%s\" is not an %s URL", c->domain,
                          ch.realm ? ch.realm : "", c->insecure ? "http(s)" : "https");
          goto out;
        }
      CURL *e = c->easy;
      cleanup_free char *scope = scope_string (c);
      cleanup_free char *url = xstrdup (ch.realm);
      char sep = strchr (url, '?') ? '&' : '?';
      if (ch.service)
        {
          char *q = curl_easy_escape (e, ch.service, 0);
          char *t = xasprintf ("%s%cservice=%s", url, sep, q);
          curl_free (q);
          free (url);
          url = t;
          sep = '&';
        }
      /* Our own scope (with the push or mount actions we need), not only the challenge's. */
      for (char *save = NULL, *tok = strtok_r (scope, " ", &save); tok;
           tok = strtok_r (NULL, " ", &save))
        {
          char *q = curl_easy_escape (e, tok, 0);
          char *t = xasprintf ("%s%cscope=%s", url, sep, q);
          curl_free (q);
          free (url);
          url = t;
          sep = '&';
        }
      cleanup_free char *basic = NULL;
      if (c->user)
        {
          cleanup_free char *a = reg_auth_encode (c->user, c->pass);
          basic = xasprintf ("Authorization: Basic %s", a);
        }
      struct reg_response r = { 0 };
      int attempt = 0;
      CURLcode cr;
      bool too_big = false;
      for (;; attempt++)
        {
          cr = perform (c, "GET", url, NULL, basic, NULL, 0, NULL, 1 << 20, &r, &too_big);
          if ((cr != CURLE_OK || reg_status_retryable (r.status)) && attempt < c->retries
              && !too_big && !(cr != CURLE_OK && reg_curl_error_final (cr, c->errbuf)))
            {
              reg_backoff (c, attempt, r.retry_after);
              continue;
            }
          break;
        }
      if (cr != CURLE_OK || too_big)
        {
          cleanup_free char *why = too_big ? xstrdup ("answer too big") : transfer_error (c, cr);
          cimg_error_set (err, EIO, "%s: token from %s: %s", c->domain, ch.realm, why);
          reg_response_clear (&r);
          goto out;
        }
      if (r.status != 200)
        {
          cleanup_free char *m = reg_response_error (&r);
          cimg_error_set (err, EACCES, "%s: token from %s: %s%s", c->domain, ch.realm, m,
                          r.status == 401 ? " (wrong credentials? cimg login)" : "");
          reg_response_clear (&r);
          goto out;
        }
      cleanup_json json_t *j = cimg_json_parse (r.body, r.len, err);
      reg_response_clear (&r);
      if (j == NULL)
        {
          cimg_error_wrap (err, "%s: token from %s", c->domain, ch.realm);
          goto out;
        }
      const char *tok = cimg_json_str (j, "token");
      if (tok == NULL || *tok == '\0')
        tok = cimg_json_str (j, "access_token");
      if (tok == NULL || *tok == '\0' || strpbrk (tok, "\r\n"))
        {
          cimg_error_set (err, EACCES, "%s: token from %s: no token in the answer", c->domain,
                          ch.realm);
          goto out;
        }
      free (c->authz);
      c->authz = xasprintf ("Authorization: Bearer %s", tok);
      json_t *ei = json_object_get (j, "expires_in");
      int64_t expires_in = json_is_integer (ei) ? (int64_t)json_integer_value (ei)
                           : json_is_real (ei)  ? (int64_t)json_real_value (ei)
                                                : 0;
      c->token_renew_ms
          = monotonic_ms ()
            + reg_token_refresh_after_ms (expires_in, cimg_json_str (j, "issued_at"), wall_ms ());
      if (c->challenge != challenge)
        {
          free (c->challenge);
          c->challenge = xstrdup (challenge);
        }
      rc = 0;
    }
  else
    cimg_error_set (err, EACCES, "%s: unsupported authentication scheme \"%s\"", c->domain,
                    ch.scheme);
out:
  if (rc == 0 && strcmp (ch.scheme, "bearer") != 0)
    {
      free (c->challenge);
      c->challenge = NULL;
      c->token_renew_ms = 0;
    }
  reg_challenge_clear (&ch);
  return rc;
}
