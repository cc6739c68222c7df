/* Per-registry TLS material, read the way Docker reads /etc/docker/certs.d. See
   docs/registry.md ("TLS"). */
#include "registry/registry-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* CA bundles and client certificates are small; a larger file is not one. */
#define TLS_FILE_MAX (4 << 20)

char *
reg_certs_dir (void)
{
  const char *d = getenv ("CIMG_CERTS_DIR");
  return xstrdup (d && *d ? d : "/etc/cimg/certs.d");
}

void
reg_tls_clear (struct reg_tls *t)
{
  free (t->dir);
  free (t->ca_pem);
  free (t->client_cert);
  free (t->client_key);
  memset (t, 0, sizeof *t);
}

static int
append_file (const char *path, char **buf, size_t *len, cimg_error_t *err)
{
  /* Symlinks are followed: this is the administrator's configuration (certificates are often
     links into a shared place), not content of the store. */
  cleanup_close int fd = open (path, O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || fstat (fd, &st) < 0)
    return cimg_error_sys (err, "read %s", path);
  if (!S_ISREG (st.st_mode) || st.st_size > TLS_FILE_MAX)
    return cimg_error_set (err, EINVAL, "%s: not a certificate file", path);
  *buf = xrealloc (*buf, *len + (size_t)st.st_size + 2);
  size_t n = 0;
  while (n < (size_t)st.st_size)
    {
      ssize_t r = read (fd, *buf + *len + n, (size_t)st.st_size - n);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return cimg_error_sys (err, "read %s", path);
      if (r == 0)
        break;
      n += (size_t)r;
    }
  *len += n;
  /* PEM files need not end with a newline; two glued together would merge two lines. */
  (*buf)[(*len)++] = '\n';
  (*buf)[*len] = '\0';
  return 0;
}

static int
by_name (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

static bool
has_suffix (const char *s, const char *suffix)
{
  size_t n = strlen (s), k = strlen (suffix);
  return n > k && strcmp (s + n - k, suffix) == 0;
}

int
reg_tls_load (const char *hostport, const char *system_ca, struct reg_tls *t, cimg_error_t *err)
{
  memset (t, 0, sizeof *t);
  /* The name becomes a path component: nothing that could leave the certs directory. */
  if (hostport == NULL || *hostport == '\0' || strchr (hostport, '/') || strcmp (hostport, ".") == 0
      || strcmp (hostport, "..") == 0)
    return 0;
  cleanup_free char *base = reg_certs_dir ();
  cleanup_free char *dir = xasprintf ("%s/%s", base, hostport);
  DIR *d = opendir (dir);
  if (d == NULL)
    {
      if (errno == ENOENT || errno == ENOTDIR)
        return 0;
      return cimg_error_sys (err, "TLS certificates of %s: %s", hostport, dir);
    }
  char **names = NULL;
  struct dirent *e;
  while ((e = readdir (d)))
    if (e->d_name[0] != '.'
        && (has_suffix (e->d_name, ".crt") || has_suffix (e->d_name, ".cert")
            || has_suffix (e->d_name, ".key")))
      cimg_strv_append (&names, e->d_name);
  closedir (d);
  size_t n = cimg_strv_len (names);
  if (n > 1)
    qsort (names, n, sizeof *names, by_name);
  t->dir = xstrdup (dir);
  int rc = 0;
  size_t ca_len = 0;
  size_t n_ca = 0;
  for (size_t i = 0; i < n && rc == 0; i++)
    {
      cleanup_free char *path = xasprintf ("%s/%s", dir, names[i]);
      size_t stem = strlen (names[i]);
      if (has_suffix (names[i], ".crt"))
        {
          /* The registry's CAs are added to the system's, as Docker does: a registry whose
             certificate a public CA signed still verifies. */
          if (n_ca++ == 0 && system_ca && access (system_ca, R_OK) == 0
              && append_file (system_ca, &t->ca_pem, &ca_len, err) < 0)
            rc = -1;
          if (rc == 0 && append_file (path, &t->ca_pem, &ca_len, err) < 0)
            rc = -1;
        }
      else if (has_suffix (names[i], ".cert"))
        {
          cleanup_free char *key = xasprintf ("%s/%.*s.key", dir, (int)(stem - 5), names[i]);
          if (access (key, R_OK) < 0)
            rc = cimg_error_set (err, ENOENT,
                                 "missing key %s for client certificate %s (CA certificates "
                                 "must use the extension .crt)",
                                 key, path);
          else if (t->client_cert == NULL)
            {
              /* libcurl takes one client certificate: the first by name. */
              t->client_cert = steal_pointer (&path);
              t->client_key = steal_pointer (&key);
            }
        }
      else
        {
          cleanup_free char *cert = xasprintf ("%s/%.*s.cert", dir, (int)(stem - 4), names[i]);
          if (access (cert, R_OK) < 0)
            rc = cimg_error_set (err, ENOENT, "missing client certificate %s for key %s", cert,
                                 path);
        }
    }
  t->ca_len = ca_len;
  cimg_strv_free (names);
  if (rc < 0)
    {
      reg_tls_clear (t);
      return cimg_error_wrap (err, "TLS certificates of %s", hostport);
    }
  return 0;
}
