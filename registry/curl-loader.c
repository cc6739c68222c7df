/* libcurl, loaded when the first registry command needs it.

   Linking libcurl pulls ~30 shared libraries (TLS, HTTP/2, SSH, LDAP, GSSAPI, IDN, …) into
   every cimg process: ~7 ms and ~5 MiB before `cimg images` or `cimg run` do anything. These
   definitions stand in for the libcurl functions the registry client calls; the first call
   dlopens libcurl.so.4 and forwards. Commands that never talk to a registry never load it. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

#include "registry/registry-internal.h"

static struct
{
  void *lib;
  char error[256];
  CURLcode (*global_init) (long);
  CURL *(*easy_init) (void);
  CURLcode (*easy_setopt) (CURL *, CURLoption, ...);
  CURLcode (*easy_getinfo) (CURL *, CURLINFO, ...);
  CURLcode (*easy_perform) (CURL *);
  void (*easy_cleanup) (CURL *);
  void (*easy_reset) (CURL *);
  CURLcode (*easy_pause) (CURL *, int);
  const char *(*easy_strerror) (CURLcode);
  char *(*easy_escape) (CURL *, const char *, int);
  void (*free) (void *);
  struct curl_slist *(*slist_append) (struct curl_slist *, const char *);
  void (*slist_free_all) (struct curl_slist *);
  CURLM *(*multi_init) (void);
  CURLMcode (*multi_add_handle) (CURLM *, CURL *);
  CURLMcode (*multi_remove_handle) (CURLM *, CURL *);
  CURLMcode (*multi_perform) (CURLM *, int *);
  CURLMcode (*multi_poll) (CURLM *, struct curl_waitfd[], unsigned int, int, int *);
  CURLMcode (*multi_wakeup) (CURLM *);
  CURLMsg *(*multi_info_read) (CURLM *, int *);
  CURLMcode (*multi_cleanup) (CURLM *);
  const char *(*multi_strerror) (CURLMcode);
} C;

static pthread_once_t once = PTHREAD_ONCE_INIT;

#define SYM(field, name)                                                                           \
  do                                                                                               \
    {                                                                                              \
      *(void **)&C.field = dlsym (C.lib, name);                                                    \
      if (C.field == NULL)                                                                         \
        {                                                                                          \
          snprintf (C.error, sizeof C.error, "libcurl.so.4 has no %s", name);                      \
          dlclose (C.lib);                                                                         \
          C.lib = NULL;                                                                            \
          return;                                                                                  \
        }                                                                                          \
    }                                                                                              \
  while (0)

static void
load (void)
{
  C.lib = dlopen ("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
  if (C.lib == NULL)
    {
      const char *e = dlerror ();
      snprintf (C.error, sizeof C.error, "cannot load libcurl (package libcurl4): %s",
                e ? e : "unknown error");
      return;
    }
  SYM (global_init, "curl_global_init");
  SYM (easy_init, "curl_easy_init");
  SYM (easy_setopt, "curl_easy_setopt");
  SYM (easy_getinfo, "curl_easy_getinfo");
  SYM (easy_perform, "curl_easy_perform");
  SYM (easy_cleanup, "curl_easy_cleanup");
  SYM (easy_reset, "curl_easy_reset");
  SYM (easy_pause, "curl_easy_pause");
  SYM (easy_strerror, "curl_easy_strerror");
  SYM (easy_escape, "curl_easy_escape");
  SYM (free, "curl_free");
  SYM (slist_append, "curl_slist_append");
  SYM (slist_free_all, "curl_slist_free_all");
  SYM (multi_init, "curl_multi_init");
  SYM (multi_add_handle, "curl_multi_add_handle");
  SYM (multi_remove_handle, "curl_multi_remove_handle");
  SYM (multi_perform, "curl_multi_perform");
  SYM (multi_poll, "curl_multi_poll");
  SYM (multi_wakeup, "curl_multi_wakeup");
  SYM (multi_info_read, "curl_multi_info_read");
  SYM (multi_cleanup, "curl_multi_cleanup");
  SYM (multi_strerror, "curl_multi_strerror");
}

static bool
loaded (void)
{
  pthread_once (&once, load);
  return C.lib != NULL;
}

const char *
cimg_curl_load_error (void)
{
  return loaded () ? NULL : C.error;
}

CURLcode
curl_global_init (long flags)
{
  return loaded () ? C.global_init (flags) : CURLE_FAILED_INIT;
}

CURL *
curl_easy_init (void)
{
  return loaded () ? C.easy_init () : NULL;
}

/* Every option value libcurl takes is a long, a pointer, a function pointer or a curl_off_t:
   on the ABIs cimg builds for (x86-64, aarch64) each is passed in one integer register or
   stack slot, so forwarding it as a 64-bit integer preserves it. */
CURLcode
curl_easy_setopt (CURL *h, CURLoption opt, ...)
{
  va_list ap;
  va_start (ap, opt);
  unsigned long long v = va_arg (ap, unsigned long long);
  va_end (ap);
  return loaded () ? C.easy_setopt (h, opt, v) : CURLE_FAILED_INIT;
}

CURLcode
curl_easy_getinfo (CURL *h, CURLINFO info, ...)
{
  va_list ap;
  va_start (ap, info);
  void *p = va_arg (ap, void *);
  va_end (ap);
  return loaded () ? C.easy_getinfo (h, info, p) : CURLE_FAILED_INIT;
}

CURLcode
curl_easy_perform (CURL *h)
{
  return loaded () ? C.easy_perform (h) : CURLE_FAILED_INIT;
}

void
curl_easy_cleanup (CURL *h)
{
  if (loaded ())
    C.easy_cleanup (h);
}

void
curl_easy_reset (CURL *h)
{
  if (loaded ())
    C.easy_reset (h);
}

const char *
curl_easy_strerror (CURLcode c)
{
  return loaded () ? C.easy_strerror (c) : C.error;
}

char *
curl_easy_escape (CURL *h, const char *s, int len)
{
  return loaded () ? C.easy_escape (h, s, len) : NULL;
}

void
curl_free (void *p)
{
  if (loaded ())
    C.free (p);
}

struct curl_slist *
curl_slist_append (struct curl_slist *l, const char *s)
{
  return loaded () ? C.slist_append (l, s) : NULL;
}

void
curl_slist_free_all (struct curl_slist *l)
{
  if (loaded ())
    C.slist_free_all (l);
}

CURLM *
curl_multi_init (void)
{
  return loaded () ? C.multi_init () : NULL;
}

CURLMcode
curl_multi_add_handle (CURLM *m, CURL *h)
{
  return loaded () ? C.multi_add_handle (m, h) : CURLM_INTERNAL_ERROR;
}

CURLMcode
curl_multi_remove_handle (CURLM *m, CURL *h)
{
  return loaded () ? C.multi_remove_handle (m, h) : CURLM_INTERNAL_ERROR;
}

CURLMcode
curl_multi_perform (CURLM *m, int *running)
{
  return loaded () ? C.multi_perform (m, running) : CURLM_INTERNAL_ERROR;
}

CURLMcode
curl_multi_poll (CURLM *m, struct curl_waitfd extra[], unsigned int n, int timeout_ms, int *ret)
{
  return loaded () ? C.multi_poll (m, extra, n, timeout_ms, ret) : CURLM_INTERNAL_ERROR;
}

/* Called from other threads (a layer's extraction thread): the library is loaded by then, as
   the multi handle it wakes was made through it. */
CURLMcode
curl_multi_wakeup (CURLM *m)
{
  return loaded () ? C.multi_wakeup (m) : CURLM_INTERNAL_ERROR;
}

CURLcode
curl_easy_pause (CURL *h, int bitmask)
{
  return loaded () ? C.easy_pause (h, bitmask) : CURLE_FAILED_INIT;
}

CURLMsg *
curl_multi_info_read (CURLM *m, int *left)
{
  return loaded () ? C.multi_info_read (m, left) : NULL;
}

CURLMcode
curl_multi_cleanup (CURLM *m)
{
  return loaded () ? C.multi_cleanup (m) : CURLM_INTERNAL_ERROR;
}

const char *
curl_multi_strerror (CURLMcode c)
{
  return loaded () ? C.multi_strerror (c) : C.error;
}
