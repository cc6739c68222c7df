/* cimg's registry configuration (insecure registries, mirrors, push chunk size) and Docker's
 * credentials file. */
#include "registry/registry-internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

extern char **environ;

/* ---------------------------------------------------------------- cimg config */

void
reg_config_clear (struct reg_config *c)
{
  cimg_strv_free (c->insecure);
  cimg_strv_free (c->mirrors);
  memset (c, 0, sizeof *c);
}

static int
merge_strings (char ***dst, json_t *j, const char *key, cimg_error_t *err)
{
  json_t *a = json_object_get (j, key);
  if (a == NULL)
    return 0;
  if (!json_is_array (a))
    return cimg_error_set (err, EINVAL, "\"%s\" must be an array of strings", key);
  size_t i;
  json_t *v;
  json_array_foreach (a, i, v)
  {
    if (!json_is_string (v) || json_string_length (v) == 0)
      return cimg_error_set (err, EINVAL, "\"%s\" must be an array of strings", key);
    if (!cimg_strv_contains (*dst, json_string_value (v)))
      cimg_strv_append (dst, json_string_value (v));
  }
  return 0;
}

int
reg_config_merge (struct reg_config *c, json_t *j, cimg_error_t *err)
{
  if (!json_is_object (j))
    return cimg_error_set (err, EINVAL, "not a JSON object");
  if (merge_strings (&c->insecure, j, "insecure-registries", err) < 0
      || merge_strings (&c->mirrors, j, "registry-mirrors", err) < 0)
    return -1;
  json_t *cs = json_object_get (j, "push-chunk-size");
  if (cs)
    {
      /* A byte count, or a string with a unit ("64M"); a later file overrides. */
      int64_t n = -1;
      if (json_is_integer (cs))
        n = json_integer_value (cs);
      else if (!json_is_string (cs) || reg_parse_size (json_string_value (cs), &n) < 0)
        n = -1;
      if (n < 0)
        return cimg_error_set (err, EINVAL,
                               "\"push-chunk-size\" must be a byte count such as 67108864 or "
                               "\"64M\"");
      c->has_push_chunk_size = true;
      c->push_chunk_size = n;
    }
  for (size_t i = 0; c->mirrors && c->mirrors[i]; i++)
    if (!cimg_str_has_prefix (c->mirrors[i], "http://")
        && !cimg_str_has_prefix (c->mirrors[i], "https://"))
      return cimg_error_set (err, EINVAL, "registry-mirrors: \"%s\" is not an http(s) URL",
                             c->mirrors[i]);
  return 0;
}

static int
load_one (struct reg_config *c, const char *path, cimg_error_t *err)
{
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return errno == ENOENT ? 0 : cimg_error_sys (err, "open %s", path);
  cleanup_json json_t *j = cimg_json_load_at (AT_FDCWD, path, 1 << 20, err);
  if (j == NULL || reg_config_merge (c, j, err) < 0)
    return cimg_error_wrap (err, "%s", path);
  return 0;
}

int
reg_config_load (struct reg_config *c, cimg_error_t *err)
{
  memset (c, 0, sizeof *c);
  const char *only = getenv ("CIMG_CONFIG");
  if (only && *only)
    return load_one (c, only, err);
  if (load_one (c, "/etc/cimg/config.json", err) < 0)
    return -1;
  const char *home = getenv ("HOME");
  if (home && *home)
    {
      cleanup_free char *p = xasprintf ("%s/.config/cimg/config.json", home);
      if (load_one (c, p, err) < 0)
        return -1;
    }
  return 0;
}

/* "host[:port]" -> host, without the brackets of "[::1]:5000". */
static char *
domain_host (const char *domain)
{
  if (domain[0] == '[')
    {
      const char *e = strchr (domain, ']');
      return e ? xstrndup (domain + 1, (size_t)(e - domain - 1)) : xstrdup (domain);
    }
  const char *colon = strrchr (domain, ':');
  return colon ? xstrndup (domain, (size_t)(colon - domain)) : xstrdup (domain);
}

static bool
in_cidr (const char *host, const char *cidr)
{
  const char *slash = strchr (cidr, '/');
  if (slash == NULL)
    return false;
  cleanup_free char *net = xstrndup (cidr, (size_t)(slash - cidr));
  int bits = atoi (slash + 1);
  unsigned char a[16], b[16];
  int af = strchr (net, ':') ? AF_INET6 : AF_INET;
  size_t len = af == AF_INET6 ? 16 : 4;
  if (bits < 0 || (size_t)bits > len * 8 || inet_pton (af, net, b) != 1
      || inet_pton (af, host, a) != 1)
    return false;
  for (int i = 0; i < bits; i++)
    if (((a[i / 8] ^ b[i / 8]) >> (7 - i % 8)) & 1)
      return false;
  return true;
}

bool
reg_config_insecure (const struct reg_config *c, const char *domain)
{
  cleanup_free char *host = domain_host (domain);
  if (strcmp (host, "localhost") == 0 || strcmp (host, "::1") == 0 || in_cidr (host, "127.0.0.0/8"))
    return true;
  for (size_t i = 0; c && c->insecure && c->insecure[i]; i++)
    {
      const char *e = c->insecure[i];
      if (strcmp (e, domain) == 0 || strcmp (e, host) == 0 || in_cidr (host, e))
        return true;
    }
  return false;
}

/* ---------------------------------------------------------------- credentials */

const char *
reg_auth_key (const char *domain)
{
  return strcmp (domain, "docker.io") == 0 ? "https://index.docker.io/v1/" : domain;
}

char *
reg_docker_config_path (void)
{
  const char *d = getenv ("DOCKER_CONFIG");
  if (d && *d)
    return xasprintf ("%s/config.json", d);
  const char *home = getenv ("HOME");
  return xasprintf ("%s/.docker/config.json", home && *home ? home : "/root");
}

char *
reg_auth_encode (const char *user, const char *pass)
{
  cleanup_free char *plain = xasprintf ("%s:%s", user, pass);
  size_t n = strlen (plain);
  char *out = xmalloc (4 * ((n + 2) / 3) + 1);
  EVP_EncodeBlock ((unsigned char *)out, (const unsigned char *)plain, (int)n);
  return out;
}

int
reg_auth_decode (const char *b64, char **user, char **pass)
{
  *user = *pass = NULL;
  size_t n = strlen (b64);
  if (n == 0 || n % 4 != 0 || n > 65536)
    return -1;
  cleanup_free unsigned char *out = xmalloc (n / 4 * 3 + 1);
  int r = EVP_DecodeBlock (out, (const unsigned char *)b64, (int)n);
  if (r < 0)
    return -1;
  /* EVP_DecodeBlock counts the padding as zero bytes. */
  if (n >= 1 && b64[n - 1] == '=')
    r--;
  if (n >= 2 && b64[n - 2] == '=')
    r--;
  out[r] = '\0';
  if (memchr (out, '\0', (size_t)r))
    return -1;
  char *colon = strchr ((char *)out, ':');
  if (colon == NULL)
    return -1;
  *user = xstrndup ((char *)out, (size_t)(colon - (char *)out));
  *pass = xstrdup (colon + 1);
  return 0;
}

/* "https://index.docker.io/v1/" -> "index.docker.io", "http://h:5000/x" -> "h:5000". */
static char *
url_host (const char *k)
{
  const char *p = strstr (k, "://");
  p = p ? p + 3 : k;
  size_t n = strcspn (p, "/");
  return xstrndup (p, n);
}

static bool
key_matches (const char *key, const char *domain)
{
  if (strcmp (key, reg_auth_key (domain)) == 0)
    return true;
  cleanup_free char *h = url_host (key);
  if (strcmp (domain, "docker.io") == 0)
    return strcmp (h, "index.docker.io") == 0 || strcmp (h, "docker.io") == 0
           || strcmp (h, "registry-1.docker.io") == 0;
  return strcmp (h, domain) == 0;
}

int
reg_docker_config_lookup (json_t *cfg, const char *domain, char **user, char **pass, char **helper,
                          cimg_error_t *err)
{
  *user = *pass = *helper = NULL;
  const char *k;
  json_t *v;
  json_object_foreach (json_object_get (cfg, "credHelpers"), k, v)
  {
    if (key_matches (k, domain) && json_is_string (v))
      {
        *helper = xstrdup (json_string_value (v));
        return 0;
      }
  }
  json_object_foreach (json_object_get (cfg, "auths"), k, v)
  {
    if (!key_matches (k, domain))
      continue;
    const char *a = cimg_json_str (v, "auth");
    if (a && *a)
      {
        if (reg_auth_decode (a, user, pass) < 0)
          return cimg_error_set (err, EINVAL,
                                 "auths[\"%s\"]: \"auth\" is not base64 of user:password", k);
        return 0;
      }
    const char *u = cimg_json_str (v, "username"), *p = cimg_json_str (v, "password");
    if (u && p)
      {
        *user = xstrdup (u);
        *pass = xstrdup (p);
        return 0;
      }
  }
  const char *store = cimg_json_str (cfg, "credsStore");
  if (store && *store)
    *helper = xstrdup (store);
  return 0;
}

/* Run docker-credential-NAME ARG with input on stdin; its stdout (at most 64 KiB) in *out.
   Exit status in *status. */
static int
run_helper (const char *name, const char *arg, const char *input, char **out, int *status,
            cimg_error_t *err)
{
  for (const char *p = name; *p; p++)
    if (*p == '/' || *p == ' ')
      return cimg_error_set (err, EINVAL, "invalid credential helper name \"%s\"", name);
  cleanup_free char *prog = xasprintf ("docker-credential-%s", name);
  int in[2] = { -1, -1 }, outp[2] = { -1, -1 };
  if (pipe2 (in, O_CLOEXEC) < 0)
    return cimg_error_sys (err, "pipe");
  if (pipe2 (outp, O_CLOEXEC) < 0)
    {
      close (in[0]), close (in[1]);
      return cimg_error_sys (err, "pipe");
    }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, in[0], 0);
  posix_spawn_file_actions_adddup2 (&fa, outp[1], 1);
  char *argv[] = { prog, (char *)arg, NULL };
  pid_t pid;
  int r = posix_spawnp (&pid, prog, &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (in[0]);
  close (outp[1]);
  if (r != 0)
    {
      close (in[1]);
      close (outp[0]);
      errno = r;
      return cimg_error_sys (err, "run %s", prog);
    }
  /* The input is a server name or a small JSON: it fits the pipe buffer. */
  (void)cimg_write_all (in[1], input, strlen (input));
  close (in[1]);
  size_t cap = 65536, n = 0;
  char *buf = xmalloc (cap + 1);
  ssize_t k;
  while ((k = read (outp[0], buf + n, cap - n)) > 0)
    n += (size_t)k;
  close (outp[0]);
  buf[n] = '\0';
  int st = 0;
  while (waitpid (pid, &st, 0) < 0 && errno == EINTR)
    ;
  *status = WIFEXITED (st) ? WEXITSTATUS (st) : 128;
  *out = buf;
  return 0;
}

static int
helper_get (const char *helper, const char *domain, char **user, char **pass, cimg_error_t *err)
{
  cleanup_free char *out = NULL;
  int st = 0;
  if (run_helper (helper, "get", reg_auth_key (domain), &out, &st, err) < 0)
    return -1;
  if (st != 0)
    {
      /* "credentials not found in native keychain" is no error: anonymous. */
      if (strstr (out, "not found"))
        return 0;
      return cimg_error_set (err, EIO, "docker-credential-%s get: exit %d: %.200s", helper, st,
                             out);
    }
  cleanup_json json_t *j = cimg_json_parse (out, strlen (out), err);
  if (j == NULL)
    return cimg_error_wrap (err, "docker-credential-%s get", helper);
  const char *u = cimg_json_str (j, "Username"), *s = cimg_json_str (j, "Secret");
  if (u && s)
    {
      *user = xstrdup (u);
      *pass = xstrdup (s);
    }
  return 0;
}

int
cimg_registry_credentials (const char *server, char **user, char **password, cimg_error_t *err)
{
  *user = *password = NULL;
  cleanup_free char *path = reg_docker_config_path ();
  struct stat st;
  if (stat (path, &st) < 0)
    return 0;
  cleanup_json json_t *cfg = cimg_json_load_at (AT_FDCWD, path, 1 << 20, err);
  if (cfg == NULL)
    return cimg_error_wrap (err, "credentials");
  cleanup_free char *helper = NULL;
  if (reg_docker_config_lookup (cfg, server, user, password, &helper, err) < 0)
    return cimg_error_wrap (err, "%s", path);
  if (helper)
    return helper_get (helper, server, user, password, err);
  return 0;
}

char *
cimg_registry_server_name (const char *server)
{
  if (server == NULL || *server == '\0')
    return xstrdup ("docker.io");
  cleanup_free char *h = url_host (server);
  if (strcmp (h, "index.docker.io") == 0 || strcmp (h, "registry-1.docker.io") == 0
      || strcmp (h, "docker.io") == 0)
    return xstrdup ("docker.io");
  return steal_pointer (&h);
}

/* Rewrite the docker config with fn applied; mode 600, atomically. */
static int
update_docker_config (const char *server, const char *user, const char *pass, bool *found,
                      cimg_error_t *err)
{
  cleanup_free char *path = reg_docker_config_path ();
  cleanup_json json_t *cfg = NULL;
  struct stat st;
  if (stat (path, &st) == 0)
    {
      cfg = cimg_json_load_at (AT_FDCWD, path, 1 << 20, err);
      if (cfg == NULL)
        return -1;
    }
  else
    cfg = json_object ();
  json_t *auths = json_object_get (cfg, "auths");
  if (!json_is_object (auths))
    {
      auths = json_object ();
      json_object_set_new (cfg, "auths", auths);
    }
  /* Logout removes every key naming the server (URL forms too); login writes the canonical
     one after removing the others. */
  const char *k;
  json_t *v;
  void *tmp;
  bool any = false;
  json_object_foreach_safe (auths, tmp, k, v)
  {
    if (key_matches (k, server))
      {
        json_object_del (auths, k);
        any = true;
      }
  }
  if (found)
    *found = any;
  if (user)
    {
      cleanup_free char *a = reg_auth_encode (user, pass);
      json_object_set_new (auths, reg_auth_key (server), json_pack ("{s:s}", "auth", a));
    }
  else if (!any)
    return 0;
  cleanup_free char *dir = xstrdup (path);
  *strrchr (dir, '/') = '\0';
  if (cimg_mkdir_p_at (AT_FDCWD, dir, 0700, err) < 0)
    return -1;
  cleanup_free char *text = json_dumps (cfg, JSON_INDENT (1) | JSON_SORT_KEYS);
  cleanup_free char *withnl = xasprintf ("%s\n", text);
  return cimg_write_file_atomic_at (AT_FDCWD, path, withnl, strlen (withnl), 0600, err);
}

int
reg_store_credentials (const char *server, const char *user, const char *pass, cimg_error_t *err)
{
  return update_docker_config (server, user, pass, NULL, err);
}

int
cimg_registry_logout (const char *server, bool *found, cimg_error_t *err)
{
  return update_docker_config (server, NULL, NULL, found, err);
}
