/* Pure parsers: WWW-Authenticate, Content-Range, Retry-After, upload ranges, sizes, token
   lifetimes, platforms, manifests, indexes. */
#include "registry/registry-internal.h"
#include "store/store-internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

/* ---------------------------------------------------------------- WWW-Authenticate */

void
reg_challenge_clear (struct reg_challenge *c)
{
  free (c->scheme);
  free (c->realm);
  free (c->service);
  free (c->scope);
  free (c->error);
  memset (c, 0, sizeof *c);
}

/* RFC 7235 auth-params: name=token or name="quoted \"string\"", separated by commas. Only the
   first challenge is read: registries send one. */
int
reg_challenge_parse (const char *h, struct reg_challenge *c)
{
  memset (c, 0, sizeof *c);
  if (h == NULL)
    return -1;
  while (*h == ' ' || *h == '\t')
    h++;
  const char *s = h;
  while (*h && *h != ' ' && *h != '\t')
    h++;
  if (h == s)
    return -1;
  c->scheme = xstrndup (s, (size_t)(h - s));
  for (char *p = c->scheme; *p; p++)
    *p = (char)tolower ((unsigned char)*p);
  for (;;)
    {
      while (*h == ' ' || *h == '\t' || *h == ',')
        h++;
      if (*h == '\0')
        break;
      const char *ns = h;
      while (*h && *h != '=' && *h != ',' && *h != ' ')
        h++;
      size_t nlen = (size_t)(h - ns);
      if (*h != '=')
        {
          /* A token68 or a second challenge: stop. */
          break;
        }
      h++;
      char *val;
      if (*h == '"')
        {
          h++;
          size_t cap = strlen (h) + 1, n = 0;
          val = xmalloc (cap);
          while (*h && *h != '"')
            {
              if (*h == '\\' && h[1])
                h++;
              val[n++] = *h++;
            }
          val[n] = '\0';
          if (*h != '"')
            {
              free (val);
              reg_challenge_clear (c);
              return -1;
            }
          h++;
        }
      else
        {
          const char *vs = h;
          while (*h && *h != ',' && *h != ' ')
            h++;
          val = xstrndup (vs, (size_t)(h - vs));
        }
      char **slot = NULL;
      if (nlen == 5 && strncasecmp (ns, "realm", 5) == 0)
        slot = &c->realm;
      else if (nlen == 7 && strncasecmp (ns, "service", 7) == 0)
        slot = &c->service;
      else if (nlen == 5 && strncasecmp (ns, "scope", 5) == 0)
        slot = &c->scope;
      else if (nlen == 5 && strncasecmp (ns, "error", 5) == 0)
        slot = &c->error;
      if (slot)
        {
          free (*slot);
          *slot = val;
        }
      else
        free (val);
    }
  return 0;
}

/* ---------------------------------------------------------------- headers */

static int
parse_i64 (const char **p, int64_t *out)
{
  const char *s = *p;
  if (!isdigit ((unsigned char)*s))
    return -1;
  errno = 0;
  char *end;
  long long v = strtoll (s, &end, 10);
  if (errno || v < 0)
    return -1;
  *out = v;
  *p = end;
  return 0;
}

int
reg_parse_content_range (const char *v, int64_t *start, int64_t *end, int64_t *total)
{
  if (v == NULL)
    return -1;
  while (*v == ' ')
    v++;
  if (strncasecmp (v, "bytes", 5) != 0)
    return -1;
  v += 5;
  while (*v == ' ')
    v++;
  if (parse_i64 (&v, start) < 0 || *v++ != '-' || parse_i64 (&v, end) < 0 || *v++ != '/')
    return -1;
  if (*v == '*')
    {
      *total = -1;
      v++;
    }
  else if (parse_i64 (&v, total) < 0)
    return -1;
  while (*v == ' ' || *v == '\r' || *v == '\n')
    v++;
  if (*v != '\0' || *end < *start)
    return -1;
  return 0;
}

int64_t
reg_parse_retry_after (const char *v)
{
  if (v == NULL)
    return -1;
  while (*v == ' ')
    v++;
  int64_t secs;
  if (parse_i64 (&v, &secs) < 0)
    return -1;
  while (*v == ' ' || *v == '\r' || *v == '\n')
    v++;
  if (*v != '\0')
    return -1;
  /* A registry asking for more than a minute is not worth waiting for in a CLI. */
  if (secs > 60)
    secs = 60;
  return secs * 1000;
}

int
reg_parse_upload_range (const char *v, int64_t expect, int64_t *next)
{
  if (v == NULL)
    return -1;
  while (*v == ' ')
    v++;
  /* The spec says "0-END"; some registries answer in the request's "bytes=" form. */
  if (strncasecmp (v, "bytes=", 6) == 0)
    v += 6;
  int64_t start, end;
  if (parse_i64 (&v, &start) < 0 || *v++ != '-' || parse_i64 (&v, &end) < 0)
    return -1;
  while (*v == ' ' || *v == '\r' || *v == '\n')
    v++;
  if (*v != '\0' || start != 0 || end == INT64_MAX)
    return -1;
  /* distribution says "0-0" both for nothing and for one byte received: only the caller
     knows which it sent. */
  if (end == 0 && expect != 1)
    *next = 0;
  else
    *next = end + 1;
  return 0;
}

int
reg_parse_size (const char *v, int64_t *out)
{
  if (v == NULL)
    return -1;
  while (*v == ' ')
    v++;
  int64_t n;
  if (parse_i64 (&v, &n) < 0)
    return -1;
  int shift = 0;
  switch (tolower ((unsigned char)*v))
    {
    case 'k':
      shift = 10;
      break;
    case 'm':
      shift = 20;
      break;
    case 'g':
      shift = 30;
      break;
    case '\0':
      break;
    default:
      return -1;
    }
  if (shift)
    {
      v++;
      /* "64k", "64kb", "64KiB": units are binary whichever way they are spelt. */
      if (*v == 'i' || *v == 'I')
        v++;
      if (*v == 'b' || *v == 'B')
        v++;
    }
  if (*v != '\0' || n > (INT64_MAX >> shift))
    return -1;
  *out = n << shift;
  return 0;
}

int
reg_parse_rfc3339_ms (const char *v, int64_t *ms)
{
  if (v == NULL)
    return -1;
  struct tm tm = { 0 };
  int used = 0;
  if (sscanf (v, "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
              &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used)
          != 6
      || used == 0)
    return -1;
  if (tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23
      || tm.tm_min > 59 || tm.tm_sec > 60)
    return -1;
  const char *p = v + used;
  int64_t frac = 0;
  if (*p == '.')
    {
      p++;
      if (!isdigit ((unsigned char)*p))
        return -1;
      int digits = 0;
      for (; isdigit ((unsigned char)*p); p++, digits++)
        if (digits < 3)
          frac = frac * 10 + (*p - '0');
      for (; digits < 3; digits++)
        frac *= 10;
    }
  int64_t offset = 0;
  if (*p == 'Z' || *p == 'z')
    p++;
  else if (*p == '+' || *p == '-')
    {
      int oh, om, n = 0;
      if (sscanf (p + 1, "%2d:%2d%n", &oh, &om, &n) != 2 || n != 5 || oh > 23 || om > 59)
        return -1;
      offset = (*p == '+' ? 1 : -1) * (int64_t)(oh * 3600 + om * 60);
      p += 6;
    }
  else
    return -1;
  if (*p != '\0')
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  time_t t = timegm (&tm);
  if (t == (time_t)-1)
    return -1;
  *ms = ((int64_t)t - offset) * 1000 + frac;
  return 0;
}

int64_t
reg_token_refresh_after_ms (int64_t expires_in, const char *issued_at, int64_t now_ms)
{
  /* The token spec: a token that says nothing of its lifetime lasts 60 seconds. */
  int64_t life = (expires_in > 0 ? expires_in : 60) * 1000;
  int64_t issued;
  /* A token issued a while ago (a cached one) has less left. One "issued" in the future is
     clock skew: the lifetime counts from now. */
  if (reg_parse_rfc3339_ms (issued_at, &issued) == 0 && issued < now_ms)
    life -= now_ms - issued < life ? now_ms - issued : life;
  /* Renew a quarter of the lifetime before the end, at most 30 s before: late enough that a
     long-lived token is not renewed for nothing, early enough that a request started just
     before the end does not reach the registry after it. */
  int64_t margin = life / 4 < 30000 ? life / 4 : 30000;
  return life - margin;
}

/* ---------------------------------------------------------------- platforms */

static void
host_platform (struct reg_platform *p)
{
  struct utsname u;
  const char *m = uname (&u) == 0 ? u.machine : "x86_64";
  snprintf (p->os, sizeof p->os, "linux");
  p->variant[0] = '\0';
  if (strcmp (m, "x86_64") == 0)
    snprintf (p->arch, sizeof p->arch, "amd64");
  else if (strcmp (m, "aarch64") == 0)
    snprintf (p->arch, sizeof p->arch, "arm64");
  else if (strncmp (m, "armv7", 5) == 0)
    snprintf (p->arch, sizeof p->arch, "arm"), snprintf (p->variant, sizeof p->variant, "v7");
  else if (strncmp (m, "armv6", 5) == 0)
    snprintf (p->arch, sizeof p->arch, "arm"), snprintf (p->variant, sizeof p->variant, "v6");
  else if (m[0] == 'i' && strcmp (m + 2, "86") == 0)
    snprintf (p->arch, sizeof p->arch, "386");
  else
    snprintf (p->arch, sizeof p->arch, "%.31s", m);
}

int
reg_platform_parse (const char *s, struct reg_platform *p, cimg_error_t *err)
{
  memset (p, 0, sizeof *p);
  if (s == NULL || *s == '\0')
    {
      host_platform (p);
      return 0;
    }
  cleanup_free char *copy = xstrdup (s);
  char *parts[4] = { 0 };
  size_t n = 0;
  for (char *save = NULL, *t = strtok_r (copy, "/", &save); t; t = strtok_r (NULL, "/", &save))
    {
      if (n == 3)
        return cimg_error_set (err, EINVAL, "invalid platform \"%s\": os/arch[/variant]", s);
      parts[n++] = t;
    }
  if (n < 2 || strlen (parts[0]) >= sizeof p->os || strlen (parts[1]) >= sizeof p->arch
      || (parts[2] && strlen (parts[2]) >= sizeof p->variant))
    return cimg_error_set (err, EINVAL, "invalid platform \"%s\": os/arch[/variant]", s);
  for (size_t i = 0; i < n; i++)
    for (char *q = parts[i]; *q; q++)
      *q = (char)tolower ((unsigned char)*q);
  snprintf (p->os, sizeof p->os, "%s", parts[0]);
  snprintf (p->arch, sizeof p->arch, "%s", parts[1]);
  if (parts[2])
    snprintf (p->variant, sizeof p->variant, "%s", parts[2]);
  /* As containerd's normalisation: aarch64 is arm64, x86_64 is amd64. */
  if (strcmp (p->arch, "aarch64") == 0)
    snprintf (p->arch, sizeof p->arch, "arm64");
  if (strcmp (p->arch, "x86_64") == 0 || strcmp (p->arch, "x86-64") == 0)
    snprintf (p->arch, sizeof p->arch, "amd64");
  return 0;
}

static int
descriptor_parse (json_t *d, struct reg_descriptor *out, const char *what, cimg_error_t *err)
{
  memset (out, 0, sizeof *out);
  if (!json_is_object (d))
    return cimg_error_set (err, EINVAL, "%s: not an object", what);
  const char *dg = cimg_json_str (d, "digest");
  if (dg == NULL || !cimg_digest_valid (dg))
    return cimg_error_set (err, EINVAL, "%s: invalid digest \"%s\"", what, dg ? dg : "");
  json_t *sz = json_object_get (d, "size");
  if (!json_is_integer (sz) || json_integer_value (sz) < 0)
    return cimg_error_set (err, EINVAL, "%s %s: invalid size", what, dg);
  const char *mt = cimg_json_str (d, "mediaType");
  if (mt && strlen (mt) >= sizeof out->media_type)
    return cimg_error_set (err, EINVAL, "%s %s: media type too long", what, dg);
  snprintf (out->digest, sizeof out->digest, "%s", dg);
  snprintf (out->media_type, sizeof out->media_type, "%s", mt ? mt : "");
  out->size = json_integer_value (sz);
  return 0;
}

bool
reg_media_type_is_index (const char *mt)
{
  return mt && (strcmp (mt, MT_OCI_INDEX) == 0 || strcmp (mt, MT_DOCKER_LIST) == 0);
}

bool
reg_media_type_is_manifest (const char *mt)
{
  return mt && (strcmp (mt, MT_OCI_MANIFEST) == 0 || strcmp (mt, MT_DOCKER_MANIFEST) == 0);
}

const char *
reg_manifest_media_type (json_t *m)
{
  const char *mt = cimg_json_str (m, "mediaType");
  if (mt)
    return mt;
  if (json_is_array (json_object_get (m, "manifests")))
    return MT_OCI_INDEX;
  if (json_object_get (m, "config"))
    return MT_OCI_MANIFEST;
  return "";
}

int
reg_index_choose (json_t *index, const struct reg_platform *p, struct reg_descriptor *d,
                  cimg_error_t *err)
{
  json_t *ms = json_object_get (index, "manifests");
  if (!json_is_array (ms))
    return cimg_error_set (err, EINVAL, "index: no manifests array");
  int best = -1, best_score = -1;
  cleanup_free char *seen = xstrdup ("");
  size_t i;
  json_t *m;
  json_array_foreach (ms, i, m)
  {
    json_t *pl = json_object_get (m, "platform");
    const char *os = cimg_json_str (pl, "os"), *arch = cimg_json_str (pl, "architecture");
    const char *var = cimg_json_str (pl, "variant");
    if (os == NULL || arch == NULL)
      continue;
    char *more = xasprintf ("%s%s%s/%s%s%s", seen, *seen ? ", " : "", os, arch, var ? "/" : "",
                            var ? var : "");
    free (seen);
    seen = more;
    if (strcmp (os, p->os) != 0 || strcmp (arch, p->arch) != 0)
      continue;
    int score;
    if (p->variant[0])
      {
        /* arm64 without a variant is v8. */
        bool same = var ? strcmp (var, p->variant) == 0
                        : (strcmp (p->arch, "arm64") == 0 && strcmp (p->variant, "v8") == 0);
        if (!same)
          continue;
        score = 2;
      }
    else
      score = var == NULL || (strcmp (p->arch, "arm64") == 0 && strcmp (var, "v8") == 0) ? 2 : 1;
    if (score > best_score)
      best = (int)i, best_score = score;
  }
  if (best < 0)
    return cimg_error_set (err, ENOENT,
                           "no matching manifest for %s/%s%s%s in the manifest list entries "
                           "(it has: %s)",
                           p->os, p->arch, p->variant[0] ? "/" : "", p->variant,
                           *seen ? seen : "none with a platform");
  if (descriptor_parse (json_array_get (ms, (size_t)best), d, "index entry", err) < 0)
    return -1;
  if (d->media_type[0] && !reg_media_type_is_manifest (d->media_type))
    return cimg_error_set (err, EINVAL, "index entry %s: unsupported media type %s", d->digest,
                           d->media_type);
  return 0;
}

void
reg_manifest_clear (struct reg_manifest *m)
{
  free (m->layers);
  memset (m, 0, sizeof *m);
}

static bool
layer_type_ok (const char *mt)
{
  static const char *const ok[]
      = { MT_DOCKER_LAYER_GZIP, MT_DOCKER_LAYER_TAR,
          MT_OCI_LAYER_TAR,     MT_OCI_LAYER_GZIP,
          MT_OCI_LAYER_ZSTD,    "application/vnd.docker.image.rootfs.diff.tar.zstd" };
  for (size_t i = 0; i < ARRAY_SIZE (ok); i++)
    if (strcmp (mt, ok[i]) == 0)
      return true;
  return false;
}

int
reg_manifest_parse (json_t *m, struct reg_manifest *out, cimg_error_t *err)
{
  memset (out, 0, sizeof *out);
  if (!json_is_object (m))
    return cimg_error_set (err, EINVAL, "manifest: not a JSON object");
  json_t *sv = json_object_get (m, "schemaVersion");
  if (json_is_integer (sv) && json_integer_value (sv) == 1)
    return cimg_error_set (err, ENOTSUP,
                           "manifest: Docker schema 1 manifests are not supported (deprecated "
                           "since 2017); push the image again with a current tool");
  if (!json_is_integer (sv) || json_integer_value (sv) != 2)
    return cimg_error_set (err, EINVAL, "manifest: schemaVersion is not 2");
  if (descriptor_parse (json_object_get (m, "config"), &out->config, "config", err) < 0)
    return cimg_error_wrap (err, "manifest");
  json_t *ls = json_object_get (m, "layers");
  if (!json_is_array (ls))
    return cimg_error_set (err, EINVAL, "manifest: no layers array");
  size_t n = json_array_size (ls);
  if (n > 1000)
    return cimg_error_set (err, EINVAL, "manifest: %zu layers is too many", n);
  out->layers = xzalloc ((n ? n : 1) * sizeof *out->layers);
  for (size_t i = 0; i < n; i++)
    {
      char what[32];
      snprintf (what, sizeof what, "layer %zu", i + 1);
      if (descriptor_parse (json_array_get (ls, i), &out->layers[i], what, err) < 0)
        goto fail;
      if (!layer_type_ok (out->layers[i].media_type))
        {
          cimg_error_set (err, ENOTSUP, "layer %zu (%s): unsupported media type \"%s\"", i + 1,
                          out->layers[i].digest, out->layers[i].media_type);
          goto fail;
        }
    }
  out->n_layers = n;
  return 0;
fail:
  reg_manifest_clear (out);
  return cimg_error_wrap (err, "manifest");
}
