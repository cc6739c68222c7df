/* registry internals shared between the registry's files and its unit tests. */
#ifndef CIMG_REGISTRY_INTERNAL_H
#define CIMG_REGISTRY_INTERNAL_H

#include <curl/curl.h>

#include "registry/registry.h"

/* ---------------------------------------------------------------- pure parsers */

/* A WWW-Authenticate challenge: `Bearer realm="…",service="…",scope="…"` or `Basic realm=…`. */
struct reg_challenge
{
  char *scheme; /* lower-cased: "bearer", "basic" */
  char *realm, *service, *scope, *error;
};
/* Parse the first challenge of header. Returns 0, or -1 when it is not a challenge. */
int reg_challenge_parse (const char *header, struct reg_challenge *c);
void reg_challenge_clear (struct reg_challenge *c);

/* "bytes START-END/TOTAL" (TOTAL may be "*", then -1). Returns 0 or -1. */
int reg_parse_content_range (const char *v, int64_t *start, int64_t *end, int64_t *total);
/* Retry-After as delay-seconds (HTTP dates are not used by registries): milliseconds, or -1. */
int64_t reg_parse_retry_after (const char *v);
/* The Range header of an upload session ("0-END", END inclusive; "bytes=0-END" too): *next is
   the offset the next chunk starts at. distribution answers "0-0" for an empty session as
   well as for one byte: that is one byte only when expect (the offset the caller believes in)
   is 1. Returns 0 or -1. */
int reg_parse_upload_range (const char *v, int64_t expect, int64_t *next);
/* A byte count: "67108864", "64k", "64M", "1GiB", "512kb" (binary units). Returns 0 or -1. */
int reg_parse_size (const char *v, int64_t *out);
/* RFC 3339 ("2026-11-23T19:00:00.123Z", "…+01:00") as milliseconds since the epoch. */
int reg_parse_rfc3339_ms (const char *v, int64_t *ms);
/* Milliseconds from now_ms (wall clock) after which a token answered with expires_in
   (seconds; <= 0: the spec's default of 60) and issued_at (may be NULL) should be renewed:
   shortly before it expires. */
int64_t reg_token_refresh_after_ms (int64_t expires_in, const char *issued_at, int64_t now_ms);

struct reg_platform
{
  char os[32], arch[32], variant[32]; /* variant "" when none asked for */
};
/* "os/arch[/variant]"; NULL or "" for this machine's. */
int reg_platform_parse (const char *s, struct reg_platform *p, cimg_error_t *err);

struct reg_descriptor
{
  char digest[CIMG_DIGEST_BUFSIZE];
  char media_type[96];
  int64_t size;
};

/* Pick the manifest of index (OCI index or Docker manifest list) for platform p: os and arch
   must match; a variant asked for must match; without one, arm64 prefers v8 or none. Returns 0
   with *d filled, or -1 naming the platforms the index has. */
int reg_index_choose (json_t *index, const struct reg_platform *p, struct reg_descriptor *d,
                      cimg_error_t *err);

struct reg_manifest
{
  struct reg_descriptor config;
  size_t n_layers;
  struct reg_descriptor *layers;
};
/* Parse an image manifest (OCI or Docker schema2); every digest is validated, every size must
   be >= 0, layer media types must be a tar (plain, gzip, zstd; foreign layers are refused). */
int reg_manifest_parse (json_t *m, struct reg_manifest *out, cimg_error_t *err);
void reg_manifest_clear (struct reg_manifest *m);

/* The media type a manifest says it has, when the server's Content-Type is missing or generic:
   its mediaType field, else guessed from its shape. */
const char *reg_manifest_media_type (json_t *m);
bool reg_media_type_is_index (const char *mt);
bool reg_media_type_is_manifest (const char *mt);

/* ---------------------------------------------------------------- config */

struct reg_config
{
  char **insecure; /* "host[:port]" or CIDR "10.0.0.0/8" */
  char **mirrors;  /* "https://mirror.example" for docker.io */
  /* push-chunk-size: blobs larger than this go up in PATCH chunks of this size (0: never). */
  bool has_push_chunk_size;
  int64_t push_chunk_size;
};
/* Merge the keys of j (a parsed config file) into c. */
int reg_config_merge (struct reg_config *c, json_t *j, cimg_error_t *err);
/* /etc/cimg/config.json then ~/.config/cimg/config.json (or $CIMG_CONFIG alone, if set). */
int reg_config_load (struct reg_config *c, cimg_error_t *err);
void reg_config_clear (struct reg_config *c);
/* Plain HTTP for domain ("host[:port]")? localhost, 127.0.0.0/8 and ::1 always; others when
   listed. */
bool reg_config_insecure (const struct reg_config *c, const char *domain);

/* ---------------------------------------------------------------- TLS */

/* A registry's own TLS material, the Docker way: CERTS_DIR/HOST[:PORT]/ holds CA certificates
   (*.crt, added to the system's) and client certificates (NAME.cert with NAME.key). */
struct reg_tls
{
  char *dir;    /* the registry's certificates directory when it exists, else NULL */
  char *ca_pem; /* the system CAs and the directory's *.crt (NULL: libcurl's defaults) */
  size_t ca_len;
  char *client_cert, *client_key; /* paths, or NULL */
};
/* $CIMG_CERTS_DIR, else /etc/cimg/certs.d (newly allocated). */
char *reg_certs_dir (void);
/* Read the directory of hostport ("127.0.0.1:5000"). No directory: *t is all NULL, returns 0.
   system_ca (may be NULL): the CA bundle the directory's CAs are added to. A .cert without its
   .key (or the reverse) is an error. */
int reg_tls_load (const char *hostport, const char *system_ca, struct reg_tls *t,
                  cimg_error_t *err);
void reg_tls_clear (struct reg_tls *t);
/* A transfer failure that trying again cannot fix: the server's certificate was refused, ours
   was, or the TLS material is unusable. msg: libcurl's error buffer (may be ""). */
bool reg_curl_error_final (CURLcode rc, const char *msg);

/* ---------------------------------------------------------------- credentials */

/* The key of a registry in ~/.docker/config.json "auths" ("https://index.docker.io/v1/" for
   Docker Hub, else the host). */
const char *reg_auth_key (const char *domain);
/* Look domain up in a parsed docker config: credHelpers[domain], else auths (whose keys may be
   URLs), else credsStore. Sets *user and *pass (from auths' base64 "auth" or username/password),
   or *helper (the docker-credential-* suffix to ask). Nothing found: all NULL, returns 0. */
int reg_docker_config_lookup (json_t *cfg, const char *domain, char **user, char **pass,
                              char **helper, cimg_error_t *err);
/* base64 of "user:pass" (newly allocated), and back. */
char *reg_auth_encode (const char *user, const char *pass);
int reg_auth_decode (const char *b64, char **user, char **pass);
/* Write user/pass for server into the docker config (mode 600, atomically). */
int reg_store_credentials (const char *server, const char *user, const char *pass,
                           cimg_error_t *err);
/* The path of the docker config: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
char *reg_docker_config_path (void);

/* ---------------------------------------------------------------- http */

struct reg_response
{
  long status;
  char *body; /* NUL-terminated */
  size_t len;
  char *content_type, *digest, *location, *www_auth, *retry_after, *content_range;
  char *range; /* an upload session's "Range: 0-END" */
};
void reg_response_clear (struct reg_response *r);
/* Keep the headers the client reads from one header line (a status line starts afresh). */
void reg_take_headers (struct reg_response *r, const char *line, size_t n);

/* One registry + repository: endpoint, credentials and the token for a scope. */
struct reg_client
{
  char *domain;        /* as in references: "docker.io", "127.0.0.1:5000" */
  char *endpoint;      /* "https://registry-1.docker.io", "http://127.0.0.1:5000" */
  char *repo;          /* "library/busybox" */
  char *actions;       /* "pull" or "pull,push" */
  char **extra_scopes; /* "repository:other:pull" for cross-repository mounts */
  char *user, *pass;
  char *authz; /* "Authorization: …" header, or NULL */
  /* The Bearer challenge authz answers, and the CLOCK_MONOTONIC time (ms) after which its
     token is renewed before a request (0: no expiry known, renewed only on a 401). */
  char *challenge;
  int64_t token_renew_ms;
  int64_t chunk_size; /* push: PATCH chunk size, and the size above which uploads are chunked */
  /* An insecure registry: certificates are not verified, and plain HTTP is allowed. A
     registry with a certificates directory is never insecure (its certificates say TLS). */
  bool insecure;
  /* Until the first answer: an https:// endpoint that, failing, turns into http:// (insecure
     registries: TLS first, as Docker does). */
  bool http_fallback;
  struct reg_tls tls;
  char errbuf[CURL_ERROR_SIZE]; /* libcurl's message for the last failure of easy */
  int retries;                  /* attempts after the first */
  int64_t backoff_ms;           /* first delay; doubles */
  CURL *easy;
};

/* A client for domain/repo. Credentials are looked up (config.json, helpers) here. */
struct reg_client *reg_client_new (const char *domain, const char *repo, const char *actions,
                                   cimg_error_t *err);
/* Another client for the same registry and repository, with c's endpoint, credentials and
   token, and a connection of its own: for requests made from another thread. */
struct reg_client *reg_client_clone (const struct reg_client *c, cimg_error_t *err);
void reg_client_free (struct reg_client *c);
void reg_client_freep (struct reg_client **c);
#define cleanup_client __attribute__ ((cleanup (reg_client_freep)))

/* Set the options every request of c shares (TLS, timeouts, user agent) on e. */
void reg_client_setup_easy (struct reg_client *c, CURL *e);
/* "endpoint/v2/repo/suffix" (newly allocated). */
char *reg_client_url (struct reg_client *c, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));

/* A request whose body fits in memory (max bytes; more is an error). Retries connection
   errors, 408, 429 and 5xx with exponential backoff (honouring Retry-After), answers a 401 by
   authenticating from its challenge once. body/len: the request body (may be NULL).
   headers: extra "Name: value" lines (NULL-terminated, may be NULL). Returns 0 with the final
   response in *r (any status), or -1 on a transport failure after the retries. */
int reg_request (struct reg_client *c, const char *method, const char *url, char *const *headers,
                 const void *body, size_t len, const char *body_type, size_t max,
                 struct reg_response *r, cimg_error_t *err);
/* Authenticate from a WWW-Authenticate challenge (fetching a token for c's scopes). */
int reg_authenticate (struct reg_client *c, const char *challenge, cimg_error_t *err);
/* Renew c's Bearer token when it is about to expire (call before a request). */
int reg_client_fresh_token (struct reg_client *c, cimg_error_t *err);
/* The Authorization header to send to url: c->authz for the registry's own URLs, NULL for
   another host (an upload location or a redirect to storage). */
const char *reg_client_authz_for (struct reg_client *c, const char *url);
/* A message for an unexpected response: "HTTP 404: MANIFEST_UNKNOWN: manifest unknown". */
char *reg_response_error (const struct reg_response *r);
/* Wait before retry number attempt (0-based), or as Retry-After says. */
void reg_backoff (struct reg_client *c, int attempt, const char *retry_after);
bool reg_status_retryable (long status);

/* libcurl is loaded on first use (registry/curl-loader.c): NULL once it is, else why not. */
const char *cimg_curl_load_error (void);

#endif
