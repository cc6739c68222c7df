/* util: the base every module stands on. Knows nothing of images. */
#ifndef CIMG_UTIL_H
#define CIMG_UTIL_H

#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>
#include <jansson.h>

/* ---------------------------------------------------------------- errors */

/* An error value: an errno-like code (0 when the cause is not a system call) and a message that
   callers extend with context, outermost first: "load x.tar: layer 2 (sha256:ab12…): entry
   "../etc/passwd": path leaves the layer". A zeroed struct means "no error". */
typedef struct cimg_error
{
  int code;
  char *msg;
} cimg_error_t;

/* Set *err (replacing any previous error) and return -1, so that `return cimg_error_set (…)`
   reads naturally. err may be NULL. */
int cimg_error_set (cimg_error_t *err, int code, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));
/* As cimg_error_set, with code = errno and ": strerror(errno)" appended. */
int cimg_error_sys (cimg_error_t *err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
/* Prefix the message with "<context>: ". Returns -1. A no-op on an empty error. */
int cimg_error_wrap (cimg_error_t *err, const char *fmt, ...)
    __attribute__ ((format (printf, 2, 3)));
void cimg_error_clear (cimg_error_t *err);
static inline bool
cimg_error_is_set (const cimg_error_t *err)
{
  return err != NULL && err->msg != NULL;
}

/* ---------------------------------------------------------------- memory */

void *xmalloc (size_t n);
void *xzalloc (size_t n);
void *xrealloc (void *p, size_t n);
char *xstrdup (const char *s);
char *xstrndup (const char *s, size_t n);
char *xasprintf (const char *fmt, ...) __attribute__ ((format (printf, 1, 2)));
void *xmemdup (const void *p, size_t n);

/* ---------------------------------------------------------------- cleanup */

void cimg_freep (void *p);
void cimg_closep (int *fd);
void cimg_fclosep (FILE **f);
void cimg_closedirp (DIR **d);
void cimg_json_decrefp (json_t **j);
void cimg_strvfreep (char ***v);

#define cleanup_free __attribute__ ((cleanup (cimg_freep)))
#define cleanup_close __attribute__ ((cleanup (cimg_closep)))
#define cleanup_fclose __attribute__ ((cleanup (cimg_fclosep)))
#define cleanup_dir __attribute__ ((cleanup (cimg_closedirp)))
#define cleanup_json __attribute__ ((cleanup (cimg_json_decrefp)))
#define cleanup_strv __attribute__ ((cleanup (cimg_strvfreep)))

static inline void *
cimg_steal_pointer (void *pp)
{
  void **p = (void **)pp;
  void *r = *p;
  *p = NULL;
  return r;
}
#define steal_pointer(pp) cimg_steal_pointer (pp)
static inline int
steal_fd (int *fd)
{
  int r = *fd;
  *fd = -1;
  return r;
}

#define ARRAY_SIZE(a) (sizeof (a) / sizeof ((a)[0]))

/* NULL-terminated string vectors. */
size_t cimg_strv_len (char *const *v);
void cimg_strv_free (char **v);
/* Append a copy of s; *v may be NULL. */
void cimg_strv_append (char ***v, const char *s);
bool cimg_strv_contains (char *const *v, const char *s);

bool cimg_str_has_prefix (const char *s, const char *prefix);
bool cimg_str_has_suffix (const char *s, const char *suffix);

/* ---------------------------------------------------------------- syscalls */

/* openat2(2) with RESOLVE_IN_ROOT semantics: path is resolved as if dirfd were "/" (".." and
   absolute symlinks cannot leave it; magic links refused). Where the kernel lacks openat2 a
   userspace walk does the same, one component at a time with O_NOFOLLOW, resolving symlinks
   itself against dirfd. flags always gain O_CLOEXEC. */
int cimg_openat_in_root (int dirfd, const char *path, int flags, mode_t mode);
/* Make cimg_openat_in_root use the userspace walk from now on (for tests of the fallback). */
void cimg_openat2_disable (void);
/* Like cimg_openat_in_root, but opens the parent of path (O_PATH|O_DIRECTORY) and returns the
   final component in *base (a pointer into a copy owned by the caller via *to_free). */
int cimg_open_parent_in_root (int dirfd, const char *path, char **base, char **to_free);

/* ---------------------------------------------------------------- files */

/* mkdir -p relative to dirfd (plain relative path; no symlinks followed in trusted trees). */
int cimg_mkdir_p_at (int dirfd, const char *path, mode_t mode, cimg_error_t *err);
/* rm -rf name in dirfd; never follows symlinks, never crosses mount points it meets
   (their contents are left, and an error reported). Missing is not an error. */
int cimg_rm_rf_at (int dirfd, const char *name, cimg_error_t *err);
/* Write data to dirfd/name atomically: temp file, fsync, rename, fsync dirfd. */
int cimg_write_file_atomic_at (int dirfd, const char *name, const void *data, size_t len,
                               mode_t mode, cimg_error_t *err);
/* Read the whole of dirfd/name, refusing files over max bytes. *out is NUL-terminated. */
int cimg_read_file_at (int dirfd, const char *name, size_t max, char **out, size_t *len,
                       cimg_error_t *err);
int cimg_fsync_dir_at (int dirfd, const char *name);
/* write(2) all of it, retrying on EINTR and short writes. */
int cimg_write_all (int fd, const void *buf, size_t len);
/* Apparent size (bytes of regular files and link targets) under dirfd/name, as Docker counts
   a layer's size; links are not followed. */
int64_t cimg_disk_usage_at (int dirfd, const char *name);

/* ---------------------------------------------------------------- json */

/* Load a JSON object from dirfd/name; refuses files over max bytes. */
json_t *cimg_json_load_at (int dirfd, const char *name, size_t max, cimg_error_t *err);
/* Parse a JSON object from memory. */
json_t *cimg_json_parse (const char *buf, size_t len, cimg_error_t *err);
/* Write JSON atomically (compact, sorted keys). */
int cimg_json_save_at (int dirfd, const char *name, json_t *j, cimg_error_t *err);
/* Accessors that return NULL/0 for a missing or mistyped field. */
const char *cimg_json_str (json_t *obj, const char *key);
int64_t cimg_json_int (json_t *obj, const char *key);
/* obj[key] as an object, created (replacing a value of another type) when it is not one. The
   reference is borrowed from obj. */
json_t *cimg_json_object_field (json_t *obj, const char *key);
/* A JSON array of the strings of v (NULL: an empty array); a new reference. */
json_t *cimg_json_from_strv (char *const *v);
/* The strings of the array a as a NULL-terminated vector, never NULL (other values and a
   non-array give nothing). */
char **cimg_json_to_strv (json_t *a);
/* The key of a config's ExposedPorts for a port as EXPOSE takes it ("80", "80/UDP",
   "8000-8010/tcp"): "80/tcp", "80/udp", "8000-8010/tcp" (protocol tcp, udp or sctp, tcp when
   none is given), newly allocated; NULL when p is not a port. */
char *cimg_json_port_key (const char *p);

/* ---------------------------------------------------------------- digest */

#define CIMG_DIGEST_LEN 71 /* "sha256:" + 64 hex */
#define CIMG_DIGEST_BUFSIZE 72

struct cimg_sha256;
struct cimg_sha256 *cimg_sha256_new (void);
void cimg_sha256_update (struct cimg_sha256 *h, const void *buf, size_t len);
/* Writes "sha256:<hex>" into out. The context may be reused after cimg_sha256_reset. */
void cimg_sha256_final (struct cimg_sha256 *h, char out[CIMG_DIGEST_BUFSIZE]);
void cimg_sha256_reset (struct cimg_sha256 *h);
void cimg_sha256_free (struct cimg_sha256 *h);
void cimg_sha256_freep (struct cimg_sha256 **h);
#define cleanup_sha256 __attribute__ ((cleanup (cimg_sha256_freep)))
/* One-shot digest of a buffer. */
void cimg_sha256_buf (const void *buf, size_t len, char out[CIMG_DIGEST_BUFSIZE]);
/* True when s is exactly "sha256:" followed by 64 lower-case hex digits. */
bool cimg_digest_valid (const char *s);
/* The 64-hex part of a valid digest (pointer into s). */
const char *cimg_digest_hex (const char *s);
bool cimg_hex64_valid (const char *s);
/* Random 64-hex identifier. */
void cimg_random_hex64 (char out[65]);

/* ---------------------------------------------------------------- output */

/* Human sizes as Docker prints them: "1.2MB", "5.6kB", "940B" (powers of 1000). */
void cimg_human_size (int64_t bytes, char *out, size_t n);
/* "3 seconds", "2 minutes", "5 days" … as Docker's units.HumanDuration. */
void cimg_human_duration (int64_t seconds, char *out, size_t n);
/* RFC 3339 with nanoseconds in UTC: 2024-01-02T03:04:05.123456789Z */
void cimg_time_rfc3339 (int64_t sec, long nsec, char *out, size_t n);
/* Parse RFC 3339 (as Go writes it); returns 0 and seconds since the epoch, or -1. */
int cimg_time_parse_rfc3339 (const char *s, int64_t *sec);
int64_t cimg_now (void);
/* Parse a duration as Go's time.ParseDuration: a sign, then one or more decimal numbers (a
   fraction allowed) each with a unit ns, us, µs, μs, ms, s, m, h ("1m30s", "1.5s",
   "-2h"); "0" alone needs no unit. Stores nanoseconds in *ns and returns 0, or -1 with err set
   to Go's message ("time: missing unit in duration \"5\"", "time: invalid duration \"\"",
   "time: unknown unit \"x\" in duration \"1x\""; beyond 2^63-1 ns is invalid). */
int cimg_parse_go_duration (const char *s, int64_t *ns, cimg_error_t *err);
/* ns as Go's Duration.String: "1h0m0s", "1.5s", "500ms", "2µs", "0s". Newly allocated. */
char *cimg_format_go_duration (int64_t ns);

/* Progress: a bar on a TTY, plain lines otherwise. Library code reports through this
   callback-free object; the CLI decides whether it is enabled. */
struct cimg_progress;
struct cimg_progress *cimg_progress_new (FILE *out, bool quiet);
/* Start/advance a line for id ("ab12cd34ef56: Downloading  [====>   ] 1.2MB/3.4MB"). */
void cimg_progress_update (struct cimg_progress *p, const char *id, const char *action,
                           int64_t done, int64_t total);
void cimg_progress_done (struct cimg_progress *p, const char *id, const char *action);
/* A line "id: text" printed once and never rewritten, so it may be wider than the terminal.
   Only before the first line of cimg_progress_update/done: on a TTY those are found again by
   counting rows up from the bottom, which a line printed after them would upset. */
void cimg_progress_note (struct cimg_progress *p, const char *id, const char *text);
void cimg_progress_free (struct cimg_progress *p);

#endif
