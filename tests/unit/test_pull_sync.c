/* Unit tests for the pull path's shortcuts (docs/store.md, "The layer sink"): files dated and
   closed on a thread of their own still get their times and leave no fd open; a download
   verified before the layer's syncfs becomes the blob only when its digest matches; a sink that
   leaves the compressed digest to its caller records the digest it is given and refuses to
   finish without one; the diff_id and the files are right however the bytes (plain, gzip, zstd)
   arrive. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "store/ingest.h"
#include "store/layer-internal.h"
#include "store/store-internal.h"
#include "tests/unit/fixture.h"
#include "tests/unit/tar-helpers.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/mount.h>
#include <sys/stat.h>

static int
open_fds (void)
{
  DIR *d = opendir ("/proc/self/fd");
  assert_non_null (d);
  int n = 0;
  while (readdir (d))
    n++;
  closedir (d);
  return n;
}

/* More files than the closer's queue holds, in several directories, each with its own time. */
static void
test_many_files_dated_and_closed (void **state)
{
  struct store_fixture *f = *state;
  enum
  {
    N = 700
  };
  struct tarw t;
  tw_init (&t);
  for (int i = 0; i < N; i++)
    {
      char name[64], content[32];
      if (i % 100 == 0)
        {
          snprintf (name, sizeof name, "d%d", i / 100);
          tw_dir (&t, name, 0755);
        }
      snprintf (name, sizeof name, "d%d/f%d", i / 100, i);
      snprintf (content, sizeof content, "file %d", i);
      struct archive_entry *e = ent (name, AE_IFREG, i % 7 == 0 ? 04755 : 0644);
      archive_entry_set_mtime (e, TAR_MTIME + i, i * 1000);
      tw_put (&t, e, content, strlen (content));
    }
  tw_close (&t);

  cleanup_free char *root = xasprintf ("%s/layer", f->dir);
  assert_int_equal (mkdir (root, 0755), 0);
  int rootfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (rootfd >= 0);
  int before = open_fds ();
  cimg_error_t err = { 0 };
  if (apply_tw (&t, rootfd, &err) < 0)
    fail_msg ("apply: %s", err.msg);
  assert_int_equal (open_fds (), before);

  for (int i = 0; i < N; i++)
    {
      char name[64], want[32], got[32] = { 0 };
      snprintf (name, sizeof name, "d%d/f%d", i / 100, i);
      struct stat st;
      assert_int_equal (fstatat (rootfd, name, &st, AT_SYMLINK_NOFOLLOW), 0);
      assert_int_equal (st.st_mtim.tv_sec, TAR_MTIME + i);
      assert_int_equal (st.st_mtim.tv_nsec, i * 1000);
      assert_int_equal (st.st_mode & 07777, i % 7 == 0 ? 04755 : 0644);
      int fd = openat (rootfd, name, O_RDONLY | O_CLOEXEC);
      assert_true (fd >= 0);
      assert_true (read (fd, got, sizeof got - 1) > 0);
      close (fd);
      snprintf (want, sizeof want, "file %d", i);
      assert_string_equal (got, want);
    }
  close (rootfd);
  tw_free (&t);
}

/* A write that fails (a full file system) fails the layer, names the file and the reason, and
   leaves no fd open: the files already handed to the closer are closed too. */
static void
test_write_error_fails_the_layer (void **state)
{
  struct store_fixture *f = *state;
  enum
  {
    N = 64,
    SZ = 16 * 1024
  };
  char *content = xmalloc (SZ);
  memset (content, 'x', SZ);
  struct tarw t;
  tw_init (&t);
  for (int i = 0; i < N; i++)
    {
      char name[32];
      snprintf (name, sizeof name, "f%02d", i);
      tw_put (&t, ent (name, AE_IFREG, 0644), content, SZ);
    }
  tw_close (&t);

  cleanup_free char *root = xasprintf ("%s/small", f->dir);
  assert_int_equal (mkdir (root, 0755), 0);
  /* 256 KiB for 1 MiB of files. */
  if (mount ("cimg-test", root, "tmpfs", 0, "size=256k") < 0)
    {
      if (errno == EPERM)
        skip ();
      fail_msg ("mount tmpfs: %s", strerror (errno));
    }
  int rootfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int before = open_fds ();
  cimg_error_t err = { 0 };
  int r = rootfd < 0 ? 0 : apply_tw (&t, rootfd, &err);
  int after = open_fds ();
  if (rootfd >= 0)
    close (rootfd);
  umount2 (root, MNT_DETACH);
  assert_true (rootfd >= 0);
  assert_int_equal (r, -1);
  assert_int_equal (after, before);
  assert_int_equal (err.code, ENOSPC);
  assert_non_null (strstr (err.msg, "entry \"f"));
  assert_non_null (strstr (err.msg, "No space left on device"));
  cimg_error_clear (&err);
  free (content);
  tw_free (&t);
}

static void
test_verified_download_commits_after_sync (void **state)
{
  struct store_fixture *f = *state;
  char data[100000], digest[CIMG_DIGEST_BUFSIZE], other[CIMG_DIGEST_BUFSIZE];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (char)(i * 13);
  cimg_sha256_buf (data, sizeof data, digest);
  cimg_sha256_buf (data, sizeof data - 1, other);
  cleanup_free char *root = xasprintf ("%s/root", f->dir);
  cleanup_close int fsfd = open (root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (fsfd >= 0);
  cimg_error_t err = { 0 };

  /* Bytes that do not hash to the digest: refused before anything is synced or renamed. */
  struct cimg_ingest *g = cimg_ingest_open (f->s, other, sizeof data, &err);
  assert_non_null (g);
  assert_int_equal (cimg_ingest_write (g, data, sizeof data, &err), 0);
  assert_int_equal (cimg_ingest_verify (g, &err), -1);
  assert_non_null (strstr (err.msg, "digest mismatch"));
  cimg_error_clear (&err);
  assert_int_equal (cimg_ingest_commit_synced (g, fsfd, &err), -1);
  cimg_error_clear (&err);
  cimg_ingest_close (g, false);
  assert_false (cimg_store_has_blob (f->s, other));

  g = cimg_ingest_open (f->s, digest, sizeof data, &err);
  assert_non_null (g);
  assert_int_equal (cimg_ingest_write (g, data, 1000, &err), 0);
  assert_int_equal (cimg_ingest_write (g, data + 1000, sizeof data - 1000, &err), 0);
  assert_int_equal (cimg_ingest_verify (g, &err), 0);
  assert_false (cimg_store_has_blob (f->s, digest));
  assert_int_equal (syncfs (fsfd), 0);
  assert_int_equal (cimg_ingest_commit_synced (g, fsfd, &err), 0);
  cimg_ingest_close (g, false);
  assert_true (cimg_store_has_blob (f->s, digest));
  assert_int_equal (cimg_store_blob_size (f->s, digest), sizeof data);
  cleanup_free char *partial = xasprintf ("%s/root/ingest/dl-%s", f->dir, cimg_digest_hex (digest));
  struct stat st;
  assert_int_equal (stat (partial, &st), -1);
}

static struct cimg_layer_sink *
sink_of (struct cimg_store *s, const struct membuf *tar)
{
  cimg_error_t err = { 0 };
  struct cimg_layer_sink *k = cimg_layer_sink_new (s, NULL, 0, &err);
  if (k == NULL)
    fail_msg ("sink: %s", err.msg);
  cimg_layer_sink_digest_verified (k);
  if (cimg_layer_sink_write (k, tar->data, tar->len, &err) < 0)
    fail_msg ("write: %s", err.msg);
  return k;
}

struct room_waker
{
  int efd;
  int wakes;
};

static void
room_wake (void *data)
{
  struct room_waker *w = data;
  __atomic_add_fetch (&w->wakes, 1, __ATOMIC_SEQ_CST);
  uint64_t one = 1;
  assert_int_equal (write (w->efd, &one, sizeof one), (ssize_t)sizeof one);
}

/* A feeder that asks for room instead of blocking (registry/pull.c pauses the transfer) is
   woken once for each time it was told no, and then finds the room: a lost wake-up would leave
   a pull's layer paused for good. The extraction is made slow (many files) so that the feeder
   outruns it. */
static void
test_sink_wakes_when_room (void **state)
{
  struct store_fixture *f = *state;
  enum
  {
    N = 20000,
    STEP = 64 * 1024,
    ROOM = 2 << 20
  };
  struct tarw t;
  tw_init (&t);
  for (int i = 0; i < N; i++)
    {
      char name[32];
      if (i % 1000 == 0)
        {
          snprintf (name, sizeof name, "d%d", i / 1000);
          tw_dir (&t, name, 0755);
        }
      snprintf (name, sizeof name, "d%d/f%d", i / 1000, i);
      tw_file (&t, name, 0644, "");
    }
  tw_close (&t);
  char digest[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (t.m.data, t.m.len, digest);

  struct room_waker w = { .efd = eventfd (0, EFD_CLOEXEC) };
  assert_true (w.efd >= 0);
  cimg_error_t err = { 0 };
  struct cimg_layer_sink *k = cimg_layer_sink_new (f->s, NULL, 0, &err);
  if (k == NULL)
    fail_msg ("sink: %s", err.msg);
  cimg_layer_sink_digest_verified (k);
  int told_no = 0;
  for (size_t off = 0; off < t.m.len; off += STEP)
    {
      if (!cimg_layer_sink_has_room (k, ROOM, room_wake, &w))
        {
          told_no++;
          struct pollfd pfd = { .fd = w.efd, .events = POLLIN };
          if (poll (&pfd, 1, 30000) != 1)
            fail_msg ("no wake-up within 30 s after %d pauses", told_no);
          uint64_t n;
          assert_int_equal (read (w.efd, &n, sizeof n), (ssize_t)sizeof n);
          assert_true (cimg_layer_sink_has_room (k, ROOM, NULL, NULL));
        }
      size_t len = t.m.len - off < STEP ? t.m.len - off : STEP;
      if (cimg_layer_sink_write (k, t.m.data + off, len, &err) < 0)
        fail_msg ("write: %s", err.msg);
    }
  struct cimg_layer_info info;
  if (cimg_layer_sink_finish (k, digest, NULL, &info, &err) < 0)
    fail_msg ("finish: %s", err.msg);
  cimg_layer_sink_free (k);
  assert_true (told_no > 0);
  assert_int_equal (__atomic_load_n (&w.wakes, __ATOMIC_SEQ_CST), told_no);
  /* Every byte went through, in order. */
  assert_string_equal (info.diff_id, digest);
  assert_true (cimg_store_has_layer (f->s, info.chain_id));
  close (w.efd);
  tw_free (&t);
}

static void
test_sink_takes_the_verified_digest (void **state)
{
  struct store_fixture *f = *state;
  struct tarw t;
  tw_init (&t);
  tw_file (&t, "hello", 0644, "hello");
  tw_close (&t);
  char digest[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (t.m.data, t.m.len, digest);
  cimg_error_t err = { 0 };
  struct cimg_layer_info info;

  /* No digest to take: nothing is recorded. */
  struct cimg_layer_sink *k = sink_of (f->s, &t.m);
  assert_int_equal (cimg_layer_sink_finish (k, NULL, NULL, &info, &err), -1);
  cimg_error_clear (&err);
  cimg_layer_sink_free (k);

  k = sink_of (f->s, &t.m);
  if (cimg_layer_sink_finish (k, digest, NULL, &info, &err) < 0)
    fail_msg ("finish: %s", err.msg);
  assert_true (cimg_layer_sink_synced_fd (k) >= 0);
  cimg_layer_sink_free (k);
  assert_string_equal (info.digest, digest);
  assert_true (cimg_store_has_layer (f->s, info.chain_id));
  struct cimg_layer_info stored;
  assert_int_equal (cimg_store_layer_info (f->s, info.chain_id, &stored, &err), 0);
  assert_string_equal (stored.digest, digest);
  assert_string_equal (stored.diff_id, info.diff_id);

  /* The same layer again: it is already there, so nothing is synced for it. */
  k = sink_of (f->s, &t.m);
  assert_int_equal (cimg_layer_sink_finish (k, digest, NULL, &info, &err), 0);
  assert_int_equal (cimg_layer_sink_synced_fd (k), -1);
  cimg_layer_sink_free (k);
  tw_free (&t);
}

/* The diff_id is the hash of every byte of the tar stream, in order, whichever thread hashes
   them: the extraction thread as it releases them, the feeder for what that thread left in the
   ring when it stopped at the end-of-archive marker and for all that follows (padding that
   counts, even beyond the ring's size, or other bytes). Fed in chunks of several sizes. */
/* File i of a case: its name and a line number over and over, 20 000 + 700 i bytes. */
static char *
file_content (const char *name, int i)
{
  size_t len = 20000 + 700 * (size_t)i;
  char *s = xmalloc (len + 1);
  size_t at = 0;
  for (int line = 0; at < len; line++)
    {
      char l[64];
      int n = snprintf (l, sizeof l, "%s:%d\n", name, line);
      size_t take = len - at < (size_t)n ? len - at : (size_t)n;
      memcpy (s + at, l, take);
      at += take;
    }
  s[len] = 0;
  return s;
}

static void
test_diff_id_covers_every_byte (void **state)
{
  struct store_fixture *f = *state;
  static const size_t chunks[] = { 1000, 65536, 1 << 20, SIZE_MAX };
  static const size_t tails[] = { 0, 3000, 10 << 20 };
  static const char *const forms[] = { "tar", "gzip", "zstd" };
  for (size_t ti = 0; ti < ARRAY_SIZE (tails); ti++)
    for (size_t fi = 0; fi < ARRAY_SIZE (forms); fi++)
      for (size_t ci = 0; ci < ARRAY_SIZE (chunks); ci++)
        {
          /* Names of their own: each case makes a new layer, not one the store has. Contents of
             odd lengths, 5.5 MB in all: the ring (4 MiB) wraps inside files. */
          struct tarw t;
          tw_init (&t);
          char name[40];
          for (int i = 0; i < 100; i++)
            {
              snprintf (name, sizeof name, "f%d-%zu-%zu-%zu", i, ti, fi, ci);
              cleanup_free char *content = file_content (name, i);
              tw_file (&t, name, 0644, content);
            }
          tw_close (&t);
          struct membuf plain = { 0 };
          membuf_add (&plain, t.m.data, t.m.len);
          for (size_t i = 0; i < tails[ti]; i++)
            membuf_add (&plain, ti == 1 ? "x" : "", 1); /* not only zeros: still the layer's */
          char digest[CIMG_DIGEST_BUFSIZE];
          cimg_sha256_buf (plain.data, plain.len, digest);
          /* Compressed, the inflater writes into the ring's free space in place (ring_space),
             and after the end-of-archive marker into its own buffer, hashed by the producer. */
          struct membuf packed = plain;
          if (fi == 1)
            gzip_buf (&plain, &packed);
          else if (fi == 2)
            zstd_buf (&plain, &packed);
          cimg_error_t err = { 0 };
          struct cimg_layer_sink *k = cimg_layer_sink_new (f->s, NULL, 0, &err);
          if (k == NULL)
            fail_msg ("sink: %s", err.msg);
          for (size_t off = 0; off < packed.len;)
            {
              size_t n = packed.len - off < chunks[ci] ? packed.len - off : chunks[ci];
              if (cimg_layer_sink_write (k, packed.data + off, n, &err) < 0)
                fail_msg ("write: %s", err.msg);
              off += n;
            }
          struct cimg_layer_info info;
          if (cimg_layer_sink_finish (k, NULL, NULL, &info, &err) < 0)
            fail_msg ("finish (%s, tail %zu, chunk %zu): %s", forms[fi], tails[ti], chunks[ci],
                      err.msg);
          cimg_layer_sink_free (k);
          if (strcmp (info.diff_id, digest) != 0)
            fail_msg ("%s, tail %zu, chunk %zu: diff_id %s, the bytes hash to %s", forms[fi],
                      tails[ti], chunks[ci], info.diff_id, digest);
          /* Every file with its content: one misplaced byte of the ring shows here. */
          for (int i = 0; i < 100; i++)
            {
              snprintf (name, sizeof name, "f%d-%zu-%zu-%zu", i, ti, fi, ci);
              cleanup_free char *path
                  = xasprintf ("layers/%s/diff/%s", strchr (info.chain_id, ':') + 1, name);
              cleanup_free char *want = file_content (name, i);
              size_t n = strlen (want);
              cleanup_free char *got = xzalloc (n + 2);
              cleanup_close int fd = openat (f->s->dirfd, path, O_RDONLY | O_CLOEXEC);
              assert_true (fd >= 0);
              assert_int_equal (read (fd, got, n + 1), (ssize_t)n);
              if (memcmp (got, want, n) != 0)
                fail_msg ("%s, tail %zu, chunk %zu: %s has other bytes than the tar's", forms[fi],
                          tails[ti], chunks[ci], name);
            }
          if (packed.data != plain.data)
            free (packed.data);
          free (plain.data);
          tw_free (&t);
        }
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_many_files_dated_and_closed, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_write_error_fails_the_layer, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_verified_download_commits_after_sync, store_setup,
                                     store_teardown),
    cmocka_unit_test_setup_teardown (test_sink_takes_the_verified_digest, store_setup,
                                     store_teardown),
    cmocka_unit_test_setup_teardown (test_sink_wakes_when_room, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_diff_id_covers_every_byte, store_setup, store_teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
