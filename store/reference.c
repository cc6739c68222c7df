/* Image references, parsed and normalised by the rules of Docker's reference package
   (github.com/distribution/reference: normalize.go, regexp.go, reference.go), with scanners
   written by hand so that each rule can report itself by name.

   Grammar (as Docker's):
     reference  := name [ ":" tag ] [ "@" digest ]
     name       := [ domain "/" ] path
     domain     := host [ ":" port ]
     host       := domain-component ( "." domain-component )* | "[" [0-9A-Fa-f:]+ "]"
     domain-component := [A-Za-z0-9] | [A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]
     port       := [0-9]+
     path       := path-component ( "/" path-component )*
     path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
     tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
     digest     := "sha256:" [a-f0-9]{64}

   Where this file knowingly differs from Docker, it says so at the spot. */

#include "store/store.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#define DEFAULT_DOMAIN "docker.io"
#define LEGACY_DEFAULT_DOMAIN "index.docker.io"
#define OFFICIAL_REPO_PREFIX "library/"
#define DEFAULT_TAG "latest"
#define TAG_MAX 128
/* Counted over "domain/path", as Docker up to distribution v2.8 (the daemon of Docker 20.10)
   does and as the distribution spec asks of clients. distribution/reference v0.6 counts the
   path alone; the stricter rule keeps every name we accept valid for both. */
#define NAME_TOTAL_MAX 255

/* ---------------------------------------------------------------- character classes */

/* Not <ctype.h>: its answers depend on the locale, and the grammar is ASCII. */
static bool
is_digit (char c)
{
  return c >= '0' && c <= '9';
}

static bool
is_lower (char c)
{
  return c >= 'a' && c <= 'z';
}

static bool
is_upper (char c)
{
  return c >= 'A' && c <= 'Z';
}

static bool
is_lower_alnum (char c)
{
  return is_lower (c) || is_digit (c);
}

static bool
is_alnum (char c)
{
  return is_lower (c) || is_upper (c) || is_digit (c);
}

static bool
is_word (char c)
{
  return is_alnum (c) || c == '_';
}

static bool
is_hex (char c)
{
  return is_digit (c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool
is_lower_hex (char c)
{
  return is_digit (c) || (c >= 'a' && c <= 'f');
}

static bool
has_upper (const char *s, size_t n)
{
  for (size_t i = 0; i < n; i++)
    if (is_upper (s[i]))
      return true;
  return false;
}

/* ---------------------------------------------------------------- scanners */

static bool
valid_path_component (const char *s, size_t n)
{
  size_t i = 0;

  for (;;)
    {
      if (i == n || !is_lower_alnum (s[i]))
        return false;
      while (i < n && is_lower_alnum (s[i]))
        i++;
      if (i == n)
        return true;
      if (s[i] == '.')
        i++;
      else if (s[i] == '_')
        {
          i++;
          if (i < n && s[i] == '_')
            i++;
        }
      else if (s[i] == '-')
        {
          while (i < n && s[i] == '-')
            i++;
        }
      else
        return false;
    }
}

/* As valid_path_component, judging s as if it were lower case: Docker reports "must be
   lowercase" exactly when lower-casing would make the reference valid. */
static bool
valid_path_component_folded (const char *s, size_t n)
{
  cleanup_free char *low = xstrndup (s, n);
  for (size_t i = 0; i < n; i++)
    if (is_upper (low[i]))
      low[i] = (char)(low[i] - 'A' + 'a');
  return valid_path_component (low, n);
}

static bool
valid_domain_component (const char *s, size_t n)
{
  if (n == 0 || !is_alnum (s[0]) || !is_alnum (s[n - 1]))
    return false;
  for (size_t i = 1; i + 1 < n; i++)
    if (!is_alnum (s[i]) && s[i] != '-')
      return false;
  return true;
}

static bool
valid_domain (const char *s, size_t n)
{
  size_t i;

  if (n == 0)
    return false;
  if (s[0] == '[')
    {
      const char *close = memchr (s, ']', n);
      if (close == NULL || close == s + 1)
        return false;
      for (const char *p = s + 1; p < close; p++)
        if (!is_hex (*p) && *p != ':')
          return false;
      i = (size_t)(close - s) + 1;
    }
  else
    {
      size_t host_end = 0;
      while (host_end < n && s[host_end] != ':')
        host_end++;
      size_t start = 0;
      for (;;)
        {
          size_t end = start;
          while (end < host_end && s[end] != '.')
            end++;
          if (!valid_domain_component (s + start, end - start))
            return false;
          if (end == host_end)
            break;
          start = end + 1;
        }
      i = host_end;
    }
  if (i == n)
    return true;
  if (s[i] != ':' || i + 1 == n)
    return false;
  for (i++; i < n; i++)
    if (!is_digit (s[i]))
      return false;
  return true;
}

static bool
is_hex64_lower (const char *s, size_t n)
{
  if (n != 64)
    return false;
  for (size_t i = 0; i < n; i++)
    if (!is_lower_hex (s[i]))
      return false;
  return true;
}

/* Docker's digest-algorithm: [A-Za-z][A-Za-z0-9]* ( [-_+.] [A-Za-z][A-Za-z0-9]* )* */
static bool
valid_digest_algorithm (const char *s, size_t n)
{
  size_t i = 0;

  for (;;)
    {
      if (i == n || !(is_lower (s[i]) || is_upper (s[i])))
        return false;
      while (i < n && is_alnum (s[i]))
        i++;
      if (i == n)
        return true;
      if (s[i] != '-' && s[i] != '_' && s[i] != '+' && s[i] != '.')
        return false;
      i++;
    }
}

/* ---------------------------------------------------------------- errors */

/* The reference goes into a message a terminal will show, so nothing in it may be taken for
   a control sequence. */
static char *
quote (const char *s, size_t n)
{
  char *out = xmalloc (n * 4 + 1);
  char *o = out;

  for (size_t i = 0; i < n; i++)
    {
      unsigned char c = (unsigned char)s[i];
      if (c == '"' || c == '\\')
        {
          *o++ = '\\';
          *o++ = (char)c;
        }
      else if (c < 0x20 || c >= 0x7f)
        o += sprintf (o, "\\x%02x", c);
      else
        *o++ = (char)c;
    }
  *o = '\0';
  return out;
}

static void ref_error (cimg_error_t *err, const char *ref, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

static void
ref_error (cimg_error_t *err, const char *ref, const char *fmt, ...)
{
  va_list ap, ap2;
  cleanup_free char *q = quote (ref, strlen (ref));
  cleanup_free char *rule = NULL;

  va_start (ap, fmt);
  va_copy (ap2, ap);
  int n = vsnprintf (NULL, 0, fmt, ap);
  if (n >= 0)
    {
      rule = xmalloc ((size_t)n + 1);
      vsnprintf (rule, (size_t)n + 1, fmt, ap2);
    }
  va_end (ap2);
  va_end (ap);
  cimg_error_set (err, 0, "invalid reference \"%s\": %s", q, rule != NULL ? rule : fmt);
}

/* ---------------------------------------------------------------- parsing */

static struct cimg_ref *
parse (const char *s, bool default_tag, cimg_error_t *err)
{
  if (s == NULL || *s == '\0')
    {
      ref_error (err, "", "reference is empty");
      return NULL;
    }
  size_t len = strlen (s);

  /* An image ID would otherwise pass for a one-component name; refusing it keeps
     "cimg run <id>" from ever meaning a repository of that name. */
  if (is_hex64_lower (s, len))
    {
      ref_error (err, s, "repository name cannot be a 64-byte hexadecimal string");
      return NULL;
    }
  /* Never valid ("://" fits no part of the grammar); said plainly because it is a common
     slip when a registry URL is pasted. */
  if (strstr (s, "://") != NULL)
    {
      ref_error (err, s, "a reference takes no URL scheme (give \"host[:port]/path\")");
      return NULL;
    }

  /* Where the domain ends, by Docker's splitDockerDomain: the first component is a domain
     only when it cannot be a Docker Hub namespace, i.e. it is "localhost", holds "." or ":",
     or has upper case (Hub namespaces are lower case). */
  const char *slash = strchr (s, '/');
  const char *domain = DEFAULT_DOMAIN;
  size_t domain_len = strlen (DEFAULT_DOMAIN);
  const char *rest = s; /* what follows the domain: path [":" tag] ["@" digest] */
  bool explicit_domain = false;
  if (slash != NULL)
    {
      size_t n = (size_t)(slash - s);
      bool is_localhost = n == strlen ("localhost") && memcmp (s, "localhost", n) == 0;
      bool is_legacy
          = n == strlen (LEGACY_DEFAULT_DOMAIN) && memcmp (s, LEGACY_DEFAULT_DOMAIN, n) == 0;
      bool hostish = memchr (s, '.', n) != NULL || memchr (s, ':', n) != NULL;
      if (is_legacy)
        rest = slash + 1;
      else if (is_localhost || hostish || has_upper (s, n))
        {
          domain = s;
          domain_len = n;
          rest = slash + 1;
          explicit_domain = true;
        }
    }
  bool official = !explicit_domain
                  || (domain_len == strlen (DEFAULT_DOMAIN)
                      && memcmp (domain, DEFAULT_DOMAIN, domain_len) == 0);

  /* Docker checks case on everything up to the first ":" before anything else, so that
     "Ubuntu" is "must be lowercase" rather than a bad component. */
  size_t remote_len = strcspn (rest, ":");
  if (has_upper (rest, remote_len))
    {
      ref_error (err, s, "repository name must be lowercase");
      return NULL;
    }

  /* Docker retries an upper-case first component that is no domain as part of the path, and
     says "must be lowercase" when the whole reference, lower-cased, would then be valid. So
     the case error waits until the rest has been checked. */
  bool case_error = false;
  if (explicit_domain && !valid_domain (domain, domain_len))
    {
      if (has_upper (domain, domain_len) && valid_path_component_folded (domain, domain_len))
        case_error = true;
      else
        {
          /* Docker would accept e.g. "a_b.c/d" as a name with an empty domain; nothing can be
             pulled from or pushed to no registry, so such a name is refused here. */
          cleanup_free char *q = quote (domain, domain_len);
          ref_error (err, s,
                     "invalid domain \"%s\": a domain is names of letters, digits and inner "
                     "\"-\" joined by \".\", or an IPv6 address in brackets, with an optional "
                     "\":port\"",
                     q);
          return NULL;
        }
    }

  size_t path_len = strcspn (rest, ":@");
  for (size_t start = 0;;)
    {
      size_t end = start;
      while (end < path_len && rest[end] != '/')
        end++;
      if (end == start)
        {
          ref_error (err, s,
                     "repository name has an empty path component (leading, trailing or "
                     "double \"/\")");
          return NULL;
        }
      if (!valid_path_component (rest + start, end - start))
        {
          cleanup_free char *q = quote (rest + start, end - start);
          ref_error (err, s,
                     "invalid path component \"%s\": components are lower-case letters and "
                     "digits, separated by \".\", \"_\", \"__\" or dashes",
                     q);
          return NULL;
        }
      if (end == path_len)
        break;
      start = end + 1;
    }

  const char *p = rest + path_len;
  const char *tag = NULL;
  size_t tag_len = 0;
  if (*p == ':')
    {
      tag = p + 1;
      tag_len = strcspn (tag, "@");
      p = tag + tag_len;
      if (tag_len == 0)
        {
          ref_error (err, s, "tag is empty");
          return NULL;
        }
      if (tag_len > TAG_MAX)
        {
          ref_error (err, s, "tag is longer than %d characters", TAG_MAX);
          return NULL;
        }
      bool ok = is_word (tag[0]);
      for (size_t i = 1; ok && i < tag_len; i++)
        ok = is_word (tag[i]) || tag[i] == '.' || tag[i] == '-';
      if (!ok)
        {
          cleanup_free char *q = quote (tag, tag_len);
          ref_error (err, s,
                     "invalid tag \"%s\": a tag is letters, digits, \"_\", \".\" and \"-\", "
                     "not starting with \".\" or \"-\"",
                     q);
          return NULL;
        }
    }

  const char *digest = NULL;
  if (*p == '@')
    {
      digest = p + 1;
      size_t n = strlen (digest);
      if (n == 0)
        {
          ref_error (err, s, "digest is empty");
          return NULL;
        }
      const char *colon = memchr (digest, ':', n);
      size_t alg_len = colon != NULL ? (size_t)(colon - digest) : n;
      size_t enc_len = colon != NULL ? n - alg_len - 1 : 0;
      /* Docker's digest syntax: algorithm ":" at least 32 hex digits of either case. */
      bool docker_form = colon != NULL && valid_digest_algorithm (digest, alg_len) && enc_len >= 32;
      for (size_t i = 0; docker_form && i < enc_len; i++)
        docker_form = is_hex (colon[1 + i]);
      if (docker_form && case_error)
        {
          ref_error (err, s, "repository name must be lowercase");
          return NULL;
        }
      /* Docker accepts any algorithm its digest library has linked in (sha384, sha512…);
         the store addresses content by sha256 alone, so a name with another digest could
         never be resolved. */
      bool sha256 = alg_len == strlen ("sha256") && memcmp (digest, "sha256", alg_len) == 0;
      if (docker_form && !sha256)
        {
          cleanup_free char *q = quote (digest, alg_len);
          ref_error (err, s, "unsupported digest algorithm \"%s\": only sha256 is supported", q);
          return NULL;
        }
      if (!sha256 || colon == NULL || !is_hex64_lower (colon + 1, enc_len))
        {
          cleanup_free char *q = quote (digest, n);
          ref_error (err, s,
                     "invalid digest \"%s\": a digest is \"sha256:\" and 64 lower-case hex "
                     "digits",
                     q);
          return NULL;
        }
    }

  if (case_error)
    {
      ref_error (err, s, "repository name must be lowercase");
      return NULL;
    }

  size_t name_len
      = domain_len + 1
        + (official && !memchr (rest, '/', path_len) ? strlen (OFFICIAL_REPO_PREFIX) : 0)
        + path_len;
  if (name_len > NAME_TOTAL_MAX)
    {
      ref_error (err, s, "repository name must not be more than %d characters (it has %zu)",
                 NAME_TOTAL_MAX, name_len);
      return NULL;
    }

  struct cimg_ref *r = xzalloc (sizeof *r);
  r->domain = xstrndup (domain, domain_len);
  /* Docker Hub keeps official images under "library/"; other registries have no such rule. */
  if (official && memchr (rest, '/', path_len) == NULL)
    r->path = xasprintf (OFFICIAL_REPO_PREFIX "%.*s", (int)path_len, rest);
  else
    r->path = xstrndup (rest, path_len);
  if (tag != NULL)
    r->tag = xstrndup (tag, tag_len);
  else if (digest == NULL && default_tag)
    r->tag = xstrdup (DEFAULT_TAG);
  if (digest != NULL)
    r->digest = xstrdup (digest);
  return r;
}

struct cimg_ref *
cimg_ref_parse (const char *s, cimg_error_t *err)
{
  return parse (s, true, err);
}

struct cimg_ref *
cimg_ref_parse_name (const char *s, cimg_error_t *err)
{
  return parse (s, false, err);
}

struct cimg_ref *
cimg_ref_parse_tag (const char *s, cimg_error_t *err)
{
  struct cimg_ref *r = parse (s, true, err);
  if (r != NULL && r->digest != NULL)
    {
      cimg_error_set (err, EINVAL, "refusing to create a tag with a digest reference: %s", s);
      cimg_ref_free (r);
      return NULL;
    }
  return r;
}

void
cimg_ref_free (struct cimg_ref *r)
{
  if (r == NULL)
    return;
  free (r->domain);
  free (r->path);
  free (r->tag);
  free (r->digest);
  free (r);
}

void
cimg_ref_freep (struct cimg_ref **r)
{
  cimg_ref_free (*r);
  *r = NULL;
}

/* ---------------------------------------------------------------- formatting */

static char *
with_suffixes (char *name, const struct cimg_ref *r)
{
  char *s = xasprintf ("%s%s%s%s%s", name, r->tag != NULL ? ":" : "", r->tag != NULL ? r->tag : "",
                       r->digest != NULL ? "@" : "", r->digest != NULL ? r->digest : "");
  free (name);
  return s;
}

char *
cimg_ref_name (const struct cimg_ref *r)
{
  return xasprintf ("%s/%s", r->domain, r->path);
}

char *
cimg_ref_string (const struct cimg_ref *r)
{
  return with_suffixes (cimg_ref_name (r), r);
}

char *
cimg_ref_familiar_name (const struct cimg_ref *r)
{
  if (strcmp (r->domain, DEFAULT_DOMAIN) != 0)
    return cimg_ref_name (r);
  /* Only a single component after "library/" is an official image; "library/a/b" keeps its
     prefix, or it would read back as "docker.io/a/b". */
  if (cimg_str_has_prefix (r->path, OFFICIAL_REPO_PREFIX)
      && strchr (r->path + strlen (OFFICIAL_REPO_PREFIX), '/') == NULL)
    return xstrdup (r->path + strlen (OFFICIAL_REPO_PREFIX));
  /* A Hub path whose first component reads as a domain ("docker.io/foo.com/bar") keeps its
     domain: shortened, it would name another registry (found by tests/fuzz). */
  size_t first = strcspn (r->path, "/");
  if (r->path[first] == '/'
      && (memchr (r->path, '.', first) != NULL
          || (first == strlen ("localhost") && memcmp (r->path, "localhost", first) == 0)))
    return cimg_ref_name (r);
  return xstrdup (r->path);
}

char *
cimg_ref_familiar_string (const char *full)
{
  if (full == NULL)
    return NULL;
  /* Full names parse back to themselves, so the parser is the splitter. No default tag: a
     stored "name@digest" must not grow a ":latest". */
  cleanup_ref struct cimg_ref *r = cimg_ref_parse_name (full, NULL);
  /* A stored string that no longer parses is shown as it is rather than hidden. */
  if (r == NULL)
    return xstrdup (full);
  return with_suffixes (cimg_ref_familiar_name (r), r);
}
