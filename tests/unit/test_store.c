#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "store/image.h"
#include "store/store-internal.h"
#include "tests/unit/fixture.h"

/* A tar (optionally compressed with the libarchive filter named) holding the given files. */
static size_t
make_tar (const char *filter, const char *const *names, const char *const *contents,
          unsigned char *buf, size_t cap)
{
  struct archive *a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  if (filter && strcmp (filter, "gzip") == 0)
    archive_write_add_filter_gzip (a);
  else if (filter && strcmp (filter, "zstd") == 0)
    archive_write_add_filter_zstd (a);
  archive_write_set_bytes_in_last_block (a, 1);
  size_t used = 0;
  assert_int_equal (archive_write_open_memory (a, buf, cap, &used), ARCHIVE_OK);
  for (size_t i = 0; names[i]; i++)
    {
      struct archive_entry *e = archive_entry_new ();
      archive_entry_set_pathname (e, names[i]);
      bool dir = names[i][strlen (names[i]) - 1] == '/';
      archive_entry_set_filetype (e, dir ? AE_IFDIR : AE_IFREG);
      archive_entry_set_perm (e, dir ? 0755 : 0644);
      archive_entry_set_size (e, dir ? 0 : (la_int64_t)strlen (contents[i]));
      archive_entry_set_mtime (e, 1700000000, 0);
      assert_int_equal (archive_write_header (a, e), ARCHIVE_OK);
      if (!dir)
        archive_write_data (a, contents[i], strlen (contents[i]));
      archive_entry_free (e);
    }
  archive_write_close (a);
  archive_write_free (a);
  return used;
}

/* Feed buf to a new sink in small pieces, the way a network transfer would. */
static int
feed (struct cimg_store *s, const char *parent, const unsigned char *buf, size_t len, int flags,
      const char *want_digest, const char *want_diff, struct cimg_layer_info *info,
      cimg_error_t *err)
{
  struct cimg_layer_sink *k = cimg_layer_sink_new (s, parent, flags, err);
  if (k == NULL)
    return -1;
  int rc = 0;
  for (size_t off = 0; off < len && rc == 0; off += 777)
    rc = cimg_layer_sink_write (k, buf + off, len - off < 777 ? len - off : 777, err);
  if (rc == 0)
    rc = cimg_layer_sink_finish (k, want_digest, want_diff, info, err);
  cimg_layer_sink_free (k);
  return rc;
}

static size_t
count_entries (struct cimg_store *s, const char *dir)
{
  int fd = openat (cimg_store_dirfd (s), dir, O_RDONLY | O_DIRECTORY);
  assert_true (fd >= 0);
  DIR *d = fdopendir (fd);
  size_t n = 0;
  struct dirent *e;
  while ((e = readdir (d)))
    n += e->d_name[0] != '.';
  closedir (d);
  return n;
}

static const char *const names1[] = { "etc/", "etc/hello", "bin/", "bin/sh", NULL };
static const char *const contents1[] = { "", "hello world\n", "", "#!fake shell\n", NULL };

static void
test_blob_writer (void **state)
{
  struct store_fixture *f = *state;
  cimg_error_t err = { 0 };
  char d[CIMG_DIGEST_BUFSIZE];
  assert_int_equal (cimg_store_put_blob (f->s, "abc", 3, NULL, d, &err), 0);
  assert_true (cimg_store_has_blob (f->s, d));
  assert_int_equal (cimg_store_blob_size (f->s, d), 3);
  char *buf = NULL;
  size_t len;
  assert_int_equal (cimg_store_read_blob (f->s, d, 100, &buf, &len, &err), 0);
  assert_memory_equal (buf, "abc", 3);
  free (buf);

  /* A wrong digest is refused and leaves nothing in ingest/ or blobs/. */
  struct cimg_blob_writer *w = cimg_blob_writer_new (
      f->s, "sha256:0000000000000000000000000000000000000000000000000000000000000000", 3, &err);
  assert_non_null (w);
  assert_int_equal (cimg_blob_writer_write (w, "xyz", 3, &err), 0);
  assert_int_equal (cimg_blob_writer_commit (w, NULL, &err), -1);
  assert_non_null (strstr (err.msg, "digest mismatch"));
  cimg_error_clear (&err);
  cimg_blob_writer_free (w);
  assert_int_equal (count_entries (f->s, "ingest"), 0);
  assert_int_equal (count_entries (f->s, "blobs/sha256"), 1);

  /* A blob whose bytes changed on disk is not trusted when read. */
  cleanup_free char *path = cimg_blob_path (d);
  int fd = openat (cimg_store_dirfd (f->s), path, O_WRONLY | O_TRUNC);
  assert_int_equal (write (fd, "abd", 3), 3);
  close (fd);
  assert_int_equal (cimg_store_read_blob (f->s, d, 100, &buf, &len, &err), -1);
  assert_non_null (strstr (err.msg, "does not match its digest"));
  cimg_error_clear (&err);
}

static void
sink_roundtrip (struct store_fixture *f, const char *filter)
{
  cimg_error_t err = { 0 };
  unsigned char plain[1 << 16], comp[1 << 16];
  size_t plen = make_tar (NULL, names1, contents1, plain, sizeof plain);
  size_t clen = make_tar (filter, names1, contents1, comp, sizeof comp);
  char diff[CIMG_DIGEST_BUFSIZE], cdig[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (plain, plen, diff);
  cimg_sha256_buf (comp, clen, cdig);
  struct cimg_layer_info li;
  assert_int_equal (feed (f->s, NULL, comp, clen, CIMG_SINK_KEEP_BLOB, cdig, diff, &li, &err), 0);
  assert_string_equal (li.diff_id, diff);
  assert_string_equal (li.digest, cdig);
  assert_string_equal (li.chain_id, diff); /* a base layer's chain ID is its diff_id */
  assert_int_equal (li.size, (int64_t)(strlen (contents1[1]) + strlen (contents1[3])));
  assert_true (cimg_store_has_layer (f->s, li.chain_id));
  assert_true (cimg_store_has_blob (f->s, cdig));
  cleanup_free char *p = xasprintf ("layers/%s/diff/etc/hello", cimg_digest_hex (diff));
  char *buf = NULL;
  assert_int_equal (cimg_read_file_at (cimg_store_dirfd (f->s), p, 100, &buf, NULL, &err), 0);
  assert_string_equal (buf, "hello world\n");
  free (buf);
  /* The kept blob gives back the exact uncompressed bytes (for save and push). */
  char tmpl[] = "/tmp/cimg-test-tar-XXXXXX";
  int fd = mkstemp (tmpl);
  unlink (tmpl);
  char got[CIMG_DIGEST_BUFSIZE];
  assert_int_equal (cimg_store_layer_tar (f->s, li.chain_id, fd, got, &err), 0);
  assert_string_equal (got, diff);
  close (fd);
  /* The short link leads to the diff directory. */
  cleanup_free char *link = cimg_store_layer_link (f->s, li.chain_id, &err);
  assert_non_null (link);
  cleanup_free char *lp = xasprintf ("%s/etc/hello", link);
  assert_int_equal (faccessat (cimg_store_dirfd (f->s), lp, F_OK, 0), 0);
}

static void
test_sink_gzip (void **state)
{
  sink_roundtrip (*state, "gzip");
}

static void
test_sink_zstd (void **state)
{
  sink_roundtrip (*state, "zstd");
}

static void
test_sink_plain (void **state)
{
  sink_roundtrip (*state, NULL);
}

static void
test_sink_refusals (void **state)
{
  struct store_fixture *f = *state;
  cimg_error_t err = { 0 };
  unsigned char comp[1 << 16];
  size_t clen = make_tar ("gzip", names1, contents1, comp, sizeof comp);
  struct cimg_layer_info li;
  /* diff_id mismatch */
  assert_int_equal (feed (f->s, NULL, comp, clen, CIMG_SINK_KEEP_BLOB, NULL,
                          "sha256:1111111111111111111111111111111111111111111111111111111111111111",
                          &li, &err),
                    -1);
  assert_non_null (strstr (err.msg, "diff_id mismatch"));
  cimg_error_clear (&err);
  /* truncated gzip */
  assert_int_equal (feed (f->s, NULL, comp, clen / 2, 0, NULL, NULL, &li, &err), -1);
  assert_non_null (strstr (err.msg, "gzip"));
  cimg_error_clear (&err);
  /* corrupt gzip */
  unsigned char bad[1 << 16];
  memcpy (bad, comp, clen);
  for (size_t i = 20; i < clen - 8; i += 3)
    bad[i] ^= 0x5a;
  assert_int_equal (feed (f->s, NULL, bad, clen, 0, NULL, NULL, &li, &err), -1);
  cimg_error_clear (&err);
  /* not a tar at all */
  assert_int_equal (feed (f->s, NULL, (const unsigned char *)"hello, this is not a tar file", 29, 0,
                          NULL, NULL, &li, &err),
                    -1);
  cimg_error_clear (&err);
  /* Nothing of any of them is left. */
  assert_int_equal (count_entries (f->s, "layers"), 0);
  assert_int_equal (count_entries (f->s, "ingest"), 0);
  assert_int_equal (count_entries (f->s, "blobs/sha256"), 0);
  assert_int_equal (count_entries (f->s, "l"), 0);
}

/* A one-layer image "x:1" from names1; returns its ID. */
static void
add_image (struct store_fixture *f, const char *tag, const char *created,
           char id[CIMG_DIGEST_BUFSIZE])
{
  cimg_error_t err = { 0 };
  unsigned char comp[1 << 16];
  size_t clen = make_tar ("gzip", names1, contents1, comp, sizeof comp);
  struct cimg_layer_info li;
  assert_int_equal (feed (f->s, NULL, comp, clen, CIMG_SINK_KEEP_BLOB, NULL, NULL, &li, &err), 0);
  cleanup_free char *config = xasprintf (
      "{\"architecture\":\"amd64\",\"os\":\"linux\",\"created\":\"%s\",\"config\":{\"Cmd\":["
      "\"/bin/sh\"]},\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"%s\"]}}",
      created, li.diff_id);
  struct cimg_image_layer l = { 0 };
  memcpy (l.chain_id, li.chain_id, sizeof l.chain_id);
  memcpy (l.diff_id, li.diff_id, sizeof l.diff_id);
  memcpy (l.digest, li.digest, sizeof l.digest);
  snprintf (l.media_type, sizeof l.media_type, "%s", li.media_type);
  l.blob_size = li.blob_size;
  l.size = li.size;
  assert_int_equal (
      cimg_store_add_image (f->s, config, strlen (config), NULL, 0, &l, 1, NULL, id, &err), 0);
  if (tag)
    assert_int_equal (cimg_store_tag (f->s, id, tag, &err), 0);
}

static void
test_images (void **state)
{
  struct store_fixture *f = *state;
  cimg_error_t err = { 0 };
  char id[CIMG_DIGEST_BUFSIZE], id2[CIMG_DIGEST_BUFSIZE];
  add_image (f, "x:1", "2024-01-02T03:04:05Z", id);
  add_image (f, "y", "2025-01-02T03:04:05Z", id2);
  assert_string_not_equal (id, id2);

  struct cimg_image *img = cimg_store_find_image (f->s, "x:1", &err);
  assert_non_null (img);
  assert_string_equal (img->id, id);
  assert_int_equal (img->n_layers, 1);
  assert_int_equal (img->created, 1704164645);
  assert_string_equal (img->repo_tags[0], "docker.io/library/x:1");
  assert_non_null (img->manifest);
  cimg_image_free (img);
  char prefix[20];
  snprintf (prefix, sizeof prefix, "%.10s", id + 7);
  img = cimg_store_find_image (f->s, prefix, &err);
  assert_non_null (img);
  assert_string_equal (img->id, id);
  cimg_image_free (img);
  assert_null (cimg_store_find_image (f->s, "x:2", &err));
  assert_non_null (strstr (err.msg, "No such image: x:2"));
  cimg_error_clear (&err);
  assert_null (cimg_store_find_image (f->s, "Bad/Name", &err));
  assert_non_null (strstr (err.msg, "lowercase"));
  cimg_error_clear (&err);

  /* Newest first, tags attached. */
  struct cimg_image_summary *v;
  size_t n;
  assert_int_equal (cimg_store_list_images (f->s, &v, &n, &err), 0);
  assert_int_equal (n, 2);
  assert_string_equal (v[0].id, id2);
  assert_string_equal (v[1].repo_tags[0], "docker.io/library/x:1");
  cimg_image_summaries_free (v, n);

  /* rmi: a second tag is only untagged; the last tag deletes; gc frees the layer once unused. */
  assert_int_equal (cimg_store_tag (f->s, id, "x:2", &err), 0);
  char **report = NULL;
  assert_int_equal (cimg_store_remove_image (f->s, "x:2", 0, &report, &err), 0);
  assert_string_equal (report[0], "Untagged: x:2");
  assert_null (report[1]);
  cimg_strv_free (report);
  report = NULL;
  /* By ID with one tag: untag and delete. Both images share the layer: it stays. */
  assert_int_equal (cimg_store_remove_image (f->s, id, 0, &report, &err), 0);
  assert_string_equal (report[0], "Untagged: x:1");
  assert_non_null (strstr (report[1], "Deleted: sha256:"));
  cimg_strv_free (report);
  report = NULL;
  assert_int_equal (count_entries (f->s, "layers"), 1);
  assert_int_equal (cimg_store_remove_image (f->s, "y", 0, &report, &err), 0);
  cimg_strv_free (report);
  cimg_store_unlock (f->s);
  assert_int_equal (count_entries (f->s, "layers"), 0);
  assert_int_equal (count_entries (f->s, "blobs/sha256"), 0);
  assert_int_equal (count_entries (f->s, "l"), 0);
}

static void
test_check (void **state)
{
  struct store_fixture *f = *state;
  cimg_error_t err = { 0 };
  char id[CIMG_DIGEST_BUFSIZE];
  add_image (f, "x:1", "2024-01-02T03:04:05Z", id);
  struct cimg_check_problem *v;
  size_t n;
  assert_int_equal (cimg_store_check (f->s, false, &v, &n, &err), 0);
  assert_int_equal (n, 0);
  cimg_check_problems_free (v, n);

  /* Debris of a killed writer. */
  int dfd = cimg_store_dirfd (f->s);
  int fd = openat (dfd, "ingest/blob-dead", O_WRONLY | O_CREAT, 0600);
  close (fd);
  mkdirat (dfd, "layers/tmp-dead", 0700);
  /* An image record's write cut short: its temporary file beside image.json (a kill in load). */
  cleanup_free char *rec_tmp = xasprintf ("images/%s/image.json.tmp-dead", cimg_digest_hex (id));
  fd = openat (dfd, rec_tmp, O_WRONLY | O_CREAT, 0600);
  assert_true (fd >= 0);
  close (fd);
  assert_int_equal (cimg_store_check (f->s, false, &v, &n, &err), 0);
  assert_int_equal (n, 3);
  assert_true (v[0].debris && v[1].debris && v[2].debris);
  bool named = false;
  for (size_t i = 0; i < n; i++)
    named |= strstr (v[i].what, "image.json.tmp-dead") != NULL;
  assert_true (named);
  cimg_check_problems_free (v, n);
  assert_int_equal (cimg_store_check (f->s, true, &v, &n, &err), 0);
  cimg_check_problems_free (v, n);
  assert_int_equal (cimg_store_check (f->s, false, &v, &n, &err), 0);
  assert_int_equal (n, 0);
  cimg_check_problems_free (v, n);
  struct stat st;
  assert_int_equal (fstatat (dfd, rec_tmp, &st, 0), -1);
  cleanup_free char *rec = xasprintf ("images/%s/image.json", cimg_digest_hex (id));
  assert_int_equal (fstatat (dfd, rec, &st, 0), 0); /* the record itself stays */

  /* A config blob that rotted: a real problem; repair removes the image and its tag. */
  cleanup_free char *path = cimg_blob_path (id);
  fd = openat (dfd, path, O_WRONLY | O_APPEND);
  assert_int_equal (write (fd, " ", 1), 1);
  close (fd);
  assert_int_equal (cimg_store_check (f->s, false, &v, &n, &err), 0);
  bool serious = false;
  for (size_t i = 0; i < n; i++)
    serious |= !v[i].debris;
  assert_true (serious);
  cimg_check_problems_free (v, n);
  assert_int_equal (cimg_store_check (f->s, true, &v, &n, &err), 0);
  cimg_check_problems_free (v, n);
  assert_int_equal (cimg_store_check (f->s, false, &v, &n, &err), 0);
  assert_int_equal (n, 0);
  cimg_check_problems_free (v, n);
  assert_null (cimg_store_find_image (f->s, "x:1", &err));
  cimg_error_clear (&err);
  assert_int_equal (count_entries (f->s, "layers"), 0);
}

/* One image through two manifests (store/image.h): each tag keeps the manifest it came with,
   gc keeps both manifests and their blobs, and a record from before "manifests" existed is
   read as one manifest and merged. */
static void
test_manifests (void **state)
{
  struct store_fixture *f = *state;
  cimg_error_t err = { 0 };
  unsigned char comp[1 << 16];
  size_t clen = make_tar ("gzip", names1, contents1, comp, sizeof comp);
  struct cimg_layer_info li;
  assert_int_equal (feed (f->s, NULL, comp, clen, CIMG_SINK_KEEP_BLOB, NULL, NULL, &li, &err), 0);
  cleanup_free char *config
      = xasprintf ("{\"architecture\":\"amd64\",\"os\":\"linux\",\"rootfs\":{\"type\":\"layers\","
                   "\"diff_ids\":[\"%s\"]}}",
                   li.diff_id);
  char cdigest[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (config, strlen (config), cdigest);
  struct cimg_image_layer l = { 0 };
  memcpy (l.chain_id, li.chain_id, sizeof l.chain_id);
  memcpy (l.diff_id, li.diff_id, sizeof l.diff_id);
  memcpy (l.digest, li.digest, sizeof l.digest);
  snprintf (l.media_type, sizeof l.media_type, "%s", MT_OCI_LAYER_GZIP);
  l.blob_size = li.blob_size;
  l.size = li.size;
  /* Two manifests of the same config and layer: an OCI one and a Docker one. */
  cleanup_free char *ma = xasprintf (
      "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
      "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
      "\"size\":%lld}]}",
      MT_OCI_MANIFEST, MT_OCI_CONFIG, cdigest, strlen (config), MT_OCI_LAYER_GZIP, li.digest,
      (long long)li.blob_size);
  cleanup_free char *mb = xasprintf (
      "{\"schemaVersion\":2,\"mediaType\":\"%s\",\"config\":{\"mediaType\":\"%s\","
      "\"digest\":\"%s\",\"size\":%zu},\"layers\":[{\"mediaType\":\"%s\",\"digest\":\"%s\","
      "\"size\":%lld}]}",
      MT_DOCKER_MANIFEST, MT_DOCKER_CONFIG, cdigest, strlen (config), MT_DOCKER_LAYER_GZIP,
      li.digest, (long long)li.blob_size);
  char da[CIMG_DIGEST_BUFSIZE], db[CIMG_DIGEST_BUFSIZE], got[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (ma, strlen (ma), da);
  cimg_sha256_buf (mb, strlen (mb), db);
  cleanup_free char *rda = xasprintf ("docker.io/library/x@%s", da);
  cleanup_free char *rdb = xasprintf ("docker.io/library/x@%s", db);
  char id[CIMG_DIGEST_BUFSIZE], id2[CIMG_DIGEST_BUFSIZE];
  assert_int_equal (cimg_store_add_image_ref (f->s, config, strlen (config), ma, strlen (ma), &l, 1,
                                              rda, "docker.io/library/x:oci", "x:oci", id, &err),
                    0);
  assert_int_equal (cimg_store_add_image_ref (f->s, config, strlen (config), mb, strlen (mb), &l, 1,
                                              rdb, "docker.io/library/x:v2", "x:v2", id2, &err),
                    0);
  assert_string_equal (id, id2);
  /* Tagged in the same update as the image. */
  for (size_t i = 0; i < 2; i++)
    {
      cleanup_image struct cimg_image *img
          = cimg_store_find_image (f->s, i ? "x:v2" : "x:oci", &err);
      assert_non_null (img);
      assert_string_equal (img->id, id);
    }
  /* A tag that cannot be made: the image is not recorded either. */
  cleanup_free char *other = xasprintf ("%.*s,\"author\":\"z\"}", (int)strlen (config) - 1, config);
  char oid[CIMG_DIGEST_BUFSIZE], id3[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (other, strlen (other), oid);
  assert_int_equal (cimg_store_add_image_ref (f->s, other, strlen (other), NULL, 0, &l, 1, NULL,
                                              NULL, "Bad:Tag", id3, &err),
                    -1);
  cimg_error_clear (&err);
  {
    cleanup_image struct cimg_image *none = cimg_store_find_image (f->s, oid, &err);
    assert_null (none);
    cimg_error_clear (&err);
  }

  assert_int_equal (cimg_store_image_manifest_for (f->s, id, "docker.io/library/x:oci", got, &err),
                    0);
  assert_string_equal (got, da);
  assert_int_equal (cimg_store_image_manifest_for (f->s, id, "docker.io/library/x:v2", got, &err),
                    0);
  assert_string_equal (got, db);
  /* Unknown names: the newest manifest. */
  assert_int_equal (cimg_store_image_manifest_for (f->s, id, NULL, got, &err), 0);
  assert_string_equal (got, db);
  assert_int_equal (cimg_store_image_manifest_for (f->s, id, "docker.io/library/z:1", got, &err),
                    0);
  assert_string_equal (got, db);
  char *rd = cimg_store_image_repo_digest_for (f->s, id, "docker.io/library/x:oci");
  assert_non_null (rd);
  assert_string_equal (rd, da);
  free (rd);
  rd = cimg_store_image_repo_digest_for (f->s, id, "docker.io/library/x:v2");
  assert_non_null (rd);
  assert_string_equal (rd, db);
  free (rd);
  assert_null (cimg_store_image_repo_digest_for (f->s, id, "docker.io/library/x:none"));

  /* A push of x:oci to y:1 remembers y:1 with the OCI manifest. */
  const char *refs[] = { "docker.io/library/y:1", "docker.io/library/y@sha256:"
                                                  "00000000000000000000000000000000000000000000000"
                                                  "00000000000000000" };
  assert_int_equal (cimg_store_image_add_manifest_refs (f->s, id, da, refs, 2, &err), 0);
  assert_int_equal (cimg_store_image_manifest_for (f->s, id, "docker.io/library/y:1", got, &err),
                    0);
  assert_string_equal (got, da);
  /* A tag names one manifest: x:v2 pulled again through the OCI manifest moves. */
  assert_int_equal (cimg_store_add_image_ref (f->s, config, strlen (config), ma, strlen (ma), &l, 1,
                                              rda, "docker.io/library/x:v2", NULL, id2, &err),
                    0);
  assert_int_equal (cimg_store_image_manifest_for (f->s, id, "docker.io/library/x:v2", got, &err),
                    0);
  assert_string_equal (got, da);

  /* gc and check keep both manifests. */
  struct cimg_gc_report gr;
  assert_int_equal (cimg_store_gc (f->s, &gr, &err), 0);
  cimg_store_unlock (f->s);
  assert_true (cimg_store_has_blob (f->s, da));
  assert_true (cimg_store_has_blob (f->s, db));
  struct cimg_check_problem *v;
  size_t n;
  assert_int_equal (cimg_store_check (f->s, false, &v, &n, &err), 0);
  cimg_store_unlock (f->s);
  assert_int_equal (n, 0);
  cimg_check_problems_free (v, n);

  /* A record written before "manifests": its manifest_digest is its one manifest, and a new
     manifest is added beside it. */
  cleanup_free char *path = xasprintf ("images/%s/image.json", cimg_digest_hex (id));
  json_t *rec = cimg_json_load_at (cimg_store_dirfd (f->s), path, 1 << 20, &err);
  assert_non_null (rec);
  json_object_del (rec, "manifests");
  json_object_set_new (rec, "manifest_digest", json_string (db));
  assert_int_equal (cimg_json_save_at (cimg_store_dirfd (f->s), path, rec, &err), 0);
  json_decref (rec);
  assert_int_equal (cimg_store_image_manifest_for (f->s, id, "docker.io/library/x:oci", got, &err),
                    0);
  assert_string_equal (got, db);
  assert_int_equal (cimg_store_add_image_ref (f->s, config, strlen (config), ma, strlen (ma), &l, 1,
                                              rda, "docker.io/library/x:oci", NULL, id2, &err),
                    0);
  assert_int_equal (cimg_store_image_manifest_for (f->s, id, "docker.io/library/x:oci", got, &err),
                    0);
  assert_string_equal (got, da);
  assert_int_equal (cimg_store_gc (f->s, &gr, &err), 0);
  cimg_store_unlock (f->s);
  assert_true (cimg_store_has_blob (f->s, db));
  assert_true (cimg_store_has_blob (f->s, da));
}

int
main (void)
{
  if (geteuid () != 0)
    {
      fprintf (stderr, "test_store needs root (ownership and overlay xattrs)\n");
      return 77;
    }
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_blob_writer, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_sink_gzip, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_sink_zstd, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_sink_plain, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_sink_refusals, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_images, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_check, store_setup, store_teardown),
    cmocka_unit_test_setup_teardown (test_manifests, store_setup, store_teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
