/* ADD <url>: one HTTP(S) GET into a file of the build's temp dir, hashed as it is written.
   libcurl is the registry's lazily dlopened one (registry/curl-loader.c defines the curl_*
   symbols this file calls), so a build without URL sources never loads it. */
#include "build/build-exec.h"
#include "registry/registry-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void
curl_init_once (void)
{
  curl_global_init (CURL_GLOBAL_DEFAULT);
}

struct sink
{
  int fd;
  struct cimg_sha256 *h;
  int64_t size, max;
  int write_errno;
};

static size_t
write_cb (char *ptr, size_t size, size_t nmemb, void *data)
{
  struct sink *k = data;
  size_t n = size * nmemb;
  if (k->max > 0 && k->size + (int64_t)n > k->max)
    {
      k->write_errno = EFBIG;
      return 0;
    }
  if (cimg_write_all (k->fd, ptr, n) < 0)
    {
      k->write_errno = errno;
      return 0;
    }
  cimg_sha256_update (k->h, ptr, n);
  k->size += (int64_t)n;
  return n;
}

static int64_t
env_seconds (const char *name, int64_t def)
{
  const char *v = getenv (name);
  if (v == NULL || *v == '\0')
    return def;
  char *end;
  long long n = strtoll (v, &end, 10);
  return *end == '\0' && n > 0 ? n : def;
}

int
cimg_build_fetch (const char *url, int dirfd, const char *name, struct cimg_fetch_result *res,
                  cimg_error_t *err)
{
  memset (res, 0, sizeof *res);
  res->mtime = -1;
  const char *why = cimg_curl_load_error ();
  if (why)
    return cimg_error_set (err, ENOTSUP, "%s: %s", url, why);
  pthread_once (&curl_once, curl_init_once);
  CURL *e = curl_easy_init ();
  if (e == NULL)
    return cimg_error_set (err, ENOMEM, "%s: curl_easy_init failed", url);
  int fd = openat (dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    {
      curl_easy_cleanup (e);
      return cimg_error_sys (err, "create %s", name);
    }
  cleanup_sha256 struct cimg_sha256 *h = cimg_sha256_new ();
  struct sink k = { .fd = fd, .h = h, .max = env_seconds ("CIMG_BUILD_ADD_MAX_BYTES", 0) };
  char errbuf[CURL_ERROR_SIZE] = "";
  curl_easy_setopt (e, CURLOPT_URL, url);
  curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT, 30L);
  /* A stalled server fails the step instead of hanging the build. */
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (e, CURLOPT_LOW_SPEED_TIME, (long)env_seconds ("CIMG_BUILD_STALL_SECONDS", 60));
  curl_easy_setopt (e, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt (e, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (e, CURLOPT_USERAGENT, "cimg-build");
  /* Served bytes as they are: no Content-Encoding decoding, so the digest is the file's. */
  curl_easy_setopt (e, CURLOPT_FILETIME, 1L);
  curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt (e, CURLOPT_WRITEDATA, &k);
  curl_easy_setopt (e, CURLOPT_ERRORBUFFER, errbuf);
  CURLcode rc = curl_easy_perform (e);
  long status = 0;
  curl_easy_getinfo (e, CURLINFO_RESPONSE_CODE, &status);
  curl_off_t ft = -1;
  curl_easy_getinfo (e, CURLINFO_FILETIME_T, &ft);
  curl_easy_cleanup (e);
  int r = 0;
  if (rc != CURLE_OK)
    {
      if (k.write_errno == EFBIG)
        r = cimg_error_set (err, EFBIG, "%s: larger than CIMG_BUILD_ADD_MAX_BYTES", url);
      else if (k.write_errno)
        r = cimg_error_set (err, k.write_errno, "%s: write %s: %s", url, name,
                            strerror (k.write_errno));
      else
        r = cimg_error_set (err, EIO, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror (rc));
    }
  else if (status < 200 || status >= 300)
    r = cimg_error_set (err, EIO, "%s: HTTP status %ld", url, status);
  if (r == 0 && fsync (fd) < 0)
    r = cimg_error_sys (err, "fsync %s", name);
  close (fd);
  if (r < 0)
    {
      unlinkat (dirfd, name, 0);
      return -1;
    }
  cimg_sha256_final (h, res->digest);
  res->size = k.size;
  res->mtime = ft >= 0 ? (int64_t)ft : -1;
  return 0;
}
