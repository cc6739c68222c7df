/* Shared by the harnesses: a scratch store on tmpfs beside a canary tree, for the harnesses that
   extract (layer apply, docker-archive/OCI-layout load). Each input gets a fresh store; after it
   the canary's snapshot must be what it was, or the harness aborts (libFuzzer then keeps the
   input as a crash). */
#ifndef CIMG_FUZZ_COMMON_H
#define CIMG_FUZZ_COMMON_H

#include "store/store.h"
#include "tests/fuzz/tree-snapshot.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

struct fuzz_env
{
  char base[64];
  int basefd;
  char *store_root;
  char *canary_before;
};

static struct fuzz_env fuzz_env;

static const char *const fuzz_snap_skip[] = { "store", NULL };

static void
fuzz_env_cleanup (void)
{
  cimg_error_t err = { 0 };
  if (fuzz_env.base[0])
    cimg_rm_rf_at (AT_FDCWD, fuzz_env.base, &err);
  cimg_error_clear (&err);
}

/* Once per process: base/canary/… and base/outside, and a store path base/store. tmpfs, because
   the store fsyncs and a fuzzer creates and removes thousands of them. */
static void
fuzz_env_init (void)
{
  if (fuzz_env.base[0])
    return;
  const char *tmp = access ("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  snprintf (fuzz_env.base, sizeof fuzz_env.base, "%s/cimg-fuzz-XXXXXX", tmp);
  if (mkdtemp (fuzz_env.base) == NULL)
    abort ();
  fuzz_env.basefd = open (fuzz_env.base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fuzz_env.basefd < 0 || mkdirat (fuzz_env.basefd, "canary", 0755) < 0
      || mkdirat (fuzz_env.basefd, "canary/etc", 0755) < 0)
    abort ();
  const char *files[] = { "canary/file", "canary/etc/passwd", "outside" };
  for (size_t i = 0; i < ARRAY_SIZE (files); i++)
    {
      int fd = openat (fuzz_env.basefd, files[i], O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (fd < 0 || cimg_write_all (fd, files[i], strlen (files[i])) < 0)
        abort ();
      close (fd);
    }
  if (symlinkat ("file", fuzz_env.basefd, "canary/link") < 0)
    abort ();
  fuzz_env.store_root = xasprintf ("%s/store", fuzz_env.base);
  fuzz_env.canary_before = tree_snapshot (fuzz_env.basefd, fuzz_snap_skip);
  /* The default limit (64 GiB) would let a small input keep the harness busy for minutes. */
  setenv ("CIMG_MAX_LAYER_SIZE", "16M", 1);
  atexit (fuzz_env_cleanup);
}

static struct cimg_store *
fuzz_store_open (void)
{
  cimg_error_t err = { 0 };
  struct cimg_store *s = cimg_store_open (fuzz_env.store_root, &err);
  if (s == NULL)
    {
      fprintf (stderr, "open store: %s\n", err.msg);
      abort ();
    }
  return s;
}

/* A copy of data with the checksum of every 512-byte-aligned block that carries the ustar magic
   recomputed: random mutations of a tar header otherwise die at the checksum, and the fuzzer
   never gets past libarchive's header check into the code under test. Headers of tars nested in
   a tar (layers in a docker-archive) are aligned too. */
static inline uint8_t *
fuzz_fix_tar_checksums (const uint8_t *data, size_t size)
{
  uint8_t *buf = xmalloc (size ? size : 1);
  memcpy (buf, data, size);
  for (size_t off = 0; off + 512 <= size; off += 512)
    {
      uint8_t *h = buf + off;
      if (memcmp (h + 257, "ustar", 5) != 0)
        continue;
      memset (h + 148, ' ', 8);
      unsigned sum = 0;
      for (size_t i = 0; i < 512; i++)
        sum += h[i];
      char field[8];
      snprintf (field, sizeof field, "%06o", sum & 0777777);
      memcpy (h + 148, field, 6);
      h[154] = '\0';
      h[155] = ' ';
    }
  return buf;
}

/* With CIMG_FUZZ_DEBUG set (replaying a corpus by hand), say how an input ended. */
static void
fuzz_note (const char *what, int rc, cimg_error_t *err)
{
  if (getenv ("CIMG_FUZZ_DEBUG"))
    fprintf (stderr, "%s: %s\n", what, rc == 0 ? "ok" : err->msg ? err->msg : "failed");
  cimg_error_clear (err);
}

/* Close and remove the store, then check the canary. */
static void
fuzz_store_done (struct cimg_store *s)
{
  cimg_store_close (s);
  cimg_error_t err = { 0 };
  if (cimg_rm_rf_at (fuzz_env.basefd, "store", &err) < 0)
    {
      fprintf (stderr, "remove store: %s\n", err.msg);
      abort ();
    }
  char *after = tree_snapshot (fuzz_env.basefd, fuzz_snap_skip);
  if (strcmp (after, fuzz_env.canary_before) != 0)
    {
      fprintf (stderr, "the canary beside the store changed:\nbefore:\n%s\nafter:\n%s\n",
               fuzz_env.canary_before, after);
      abort ();
    }
  free (after);
}

#endif
