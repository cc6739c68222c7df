/* Unit tests for store/archive.c: import, save, load. Each test works in fresh stores under one
   temporary directory; the image imported first is saved, and that archive (and variants of it
   rewritten here) is what the load tests read. */
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
#include <sys/utsname.h>

#include "build/change.h"
#include "store/store-internal.h"

#define TAG "example.com/test/app:1.0"
#define HELLO "hello world\n"

/* ---------------------------------------------------------------- shared state */

static struct
{
  char dir[64];
  char *rootfs; /* a rootfs tar to import */
  char *saved;  /* the archive test_save wrote, once it has */
  char id[CIMG_DIGEST_BUFSIZE];
  char diff_id[CIMG_DIGEST_BUFSIZE];
} G;

struct fx
{
  char *root;
  struct cimg_store *s;
};

static struct cimg_store *
open_store (char **root)
{
  *root = xasprintf ("%s/store-XXXXXX", G.dir);
  if (mkdtemp (*root) == NULL)
    return NULL;
  cimg_error_t err = { 0 };
  struct cimg_store *s = cimg_store_open (*root, &err);
  cimg_error_clear (&err);
  return s;
}

static int
fx_setup (void **state)
{
  struct fx *f = xzalloc (sizeof *f);
  f->s = open_store (&f->root);
  if (f->s == NULL)
    return -1;
  *state = f;
  return 0;
}

static int
fx_teardown (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  cimg_store_close (f->s);
  cimg_rm_rf_at (AT_FDCWD, f->root, &err);
  cimg_error_clear (&err);
  free (f->root);
  free (f);
  return 0;
}

/* ---------------------------------------------------------------- tar entries in memory */

struct ent
{
  char *name;
  mode_t type;
  mode_t perm;
  char *data;
  size_t len;
  char *link;
};

struct ents
{
  struct ent *v;
  size_t n;
};

static struct ent *
ents_add (struct ents *e, const char *name, mode_t type, const void *data, size_t len,
          const char *link)
{
  e->v = xrealloc (e->v, (e->n + 1) * sizeof *e->v);
  struct ent *x = &e->v[e->n++];
  memset (x, 0, sizeof *x);
  x->name = xstrdup (name);
  x->type = type;
  x->perm = type == AE_IFDIR ? 0755 : 0644;
  x->data = xmemdup (data ? data : "", len + 1);
  x->len = len;
  x->link = link ? xstrdup (link) : NULL;
  return x;
}

static struct ent *
ents_find (struct ents *e, const char *name)
{
  for (size_t i = 0; i < e->n; i++)
    if (strcmp (e->v[i].name, name) == 0)
      return &e->v[i];
  return NULL;
}

static void
ents_remove (struct ents *e, const char *name)
{
  struct ent *x = ents_find (e, name);
  assert_non_null (x);
  free (x->name);
  free (x->data);
  free (x->link);
  size_t i = (size_t)(x - e->v);
  memmove (&e->v[i], &e->v[i + 1], (e->n - i - 1) * sizeof *e->v);
  e->n--;
}

static void
ents_set (struct ents *e, const char *name, const void *data, size_t len)
{
  struct ent *x = ents_find (e, name);
  assert_non_null (x);
  free (x->data);
  x->data = xmemdup (data, len + 1);
  x->len = len;
}

static void
ents_free (struct ents *e)
{
  for (size_t i = 0; i < e->n; i++)
    {
      free (e->v[i].name);
      free (e->v[i].data);
      free (e->v[i].link);
    }
  free (e->v);
  e->v = NULL;
  e->n = 0;
}

static void
ents_read (const char *path, struct ents *out)
{
  memset (out, 0, sizeof *out);
  struct archive *a = archive_read_new ();
  archive_read_support_filter_all (a);
  archive_read_support_format_tar (a);
  assert_int_equal (archive_read_open_filename (a, path, 65536), ARCHIVE_OK);
  struct archive_entry *e;
  int r;
  while ((r = archive_read_next_header (a, &e)) == ARCHIVE_OK)
    {
      size_t cap = 65536, len = 0;
      char *buf = xmalloc (cap);
      la_ssize_t n;
      while ((n = archive_read_data (a, buf + len, cap - len)) > 0)
        {
          len += (size_t)n;
          if (len == cap)
            buf = xrealloc (buf, cap *= 2);
        }
      assert_true (n == 0);
      struct ent *x = ents_add (out, archive_entry_pathname (e), archive_entry_filetype (e), buf,
                                len, archive_entry_symlink (e));
      x->perm = archive_entry_perm (e);
      free (buf);
    }
  assert_int_equal (r, ARCHIVE_EOF);
  archive_read_free (a);
}

static void
ents_write (const struct ents *e, const char *path, const char *filter)
{
  struct archive *a = archive_write_new ();
  archive_write_set_format_pax_restricted (a);
  if (filter && strcmp (filter, "gzip") == 0)
    archive_write_add_filter_gzip (a);
  else if (filter && strcmp (filter, "zstd") == 0)
    archive_write_add_filter_zstd (a);
  assert_int_equal (archive_write_open_filename (a, path), ARCHIVE_OK);
  for (size_t i = 0; i < e->n; i++)
    {
      struct archive_entry *x = archive_entry_new ();
      archive_entry_set_pathname (x, e->v[i].name);
      archive_entry_set_filetype (x, e->v[i].type);
      archive_entry_set_perm (x, e->v[i].perm);
      archive_entry_set_mtime (x, 1700000000, 0);
      if (e->v[i].type == AE_IFLNK)
        archive_entry_set_symlink (x, e->v[i].link);
      archive_entry_set_size (x, e->v[i].type == AE_IFREG ? (la_int64_t)e->v[i].len : 0);
      assert_int_equal (archive_write_header (a, x), ARCHIVE_OK);
      if (e->v[i].type == AE_IFREG && e->v[i].len > 0)
        assert_int_equal (archive_write_data (a, e->v[i].data, e->v[i].len),
                          (la_ssize_t)e->v[i].len);
      archive_entry_free (x);
    }
  assert_int_equal (archive_write_close (a), ARCHIVE_OK);
  archive_write_free (a);
}

/* ---------------------------------------------------------------- helpers */

static int
load_file (struct cimg_store *s, const char *path, char ***report, cimg_error_t *err)
{
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  int rc = cimg_store_load (s, fd, report, err);
  close (fd);
  return rc;
}

static size_t
count_dir (struct cimg_store *s, const char *sub)
{
  int fd = openat (cimg_store_dirfd (s), sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  assert_true (fd >= 0);
  DIR *d = fdopendir (fd);
  assert_non_null (d);
  size_t n = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      n++;
  closedir (d);
  return n;
}

static size_t
count_tagged (struct cimg_store *s)
{
  struct cimg_image_summary *v = NULL;
  size_t n = 0, tagged = 0;
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_store_list_images (s, &v, &n, &err), 0);
  for (size_t i = 0; i < n; i++)
    if (v[i].repo_tags && v[i].repo_tags[0])
      tagged++;
  cimg_image_summaries_free (v, n);
  return tagged;
}

/* After a refused load: no tag, no image, nothing staged left in ingest/, no blob, no layer. */
static void
assert_store_untouched (struct cimg_store *s)
{
  assert_int_equal (count_tagged (s), 0);
  struct cimg_image_summary *v = NULL;
  size_t n = 0;
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_store_list_images (s, &v, &n, &err), 0);
  cimg_image_summaries_free (v, n);
  assert_int_equal (n, 0);
  assert_int_equal (count_dir (s, "ingest"), 0);
  assert_int_equal (count_dir (s, "blobs/sha256"), 0);
  assert_int_equal (count_dir (s, "layers"), 0);
}

static void
assert_file_in_layer (struct cimg_store *s, const char *chain_id, const char *rel,
                      const char *content)
{
  cleanup_free char *diff = cimg_store_layer_diff_path (chain_id);
  cleanup_free char *path = xasprintf ("%s/%s", diff, rel);
  cleanup_free char *buf = NULL;
  size_t len = 0;
  cimg_error_t err = { 0 };
  int rc = cimg_read_file_at (cimg_store_dirfd (s), path, 1 << 20, &buf, &len, &err);
  if (rc < 0)
    fail_msg ("%s: %s", path, err.msg);
  assert_int_equal (len, strlen (content));
  assert_memory_equal (buf, content, len);
}

static void
assert_msg_contains (const cimg_error_t *err, const char *needle)
{
  assert_non_null (err->msg);
  if (strstr (err->msg, needle) == NULL)
    fail_msg ("error \"%s\" does not contain \"%s\"", err->msg, needle);
}

/* The layer blob's name in the saved archive (the only blob that is a tar). */
static const char *
layer_blob_name (void)
{
  static char name[128];
  snprintf (name, sizeof name, "blobs/sha256/%s", cimg_digest_hex (G.diff_id));
  return name;
}

/* The saved archive with its docker-archive part removed: an OCI layout alone. */
static void
oci_only (struct ents *e)
{
  assert_non_null (G.saved);
  ents_read (G.saved, e);
  ents_remove (e, "manifest.json");
  ents_remove (e, "repositories");
}

/* ---------------------------------------------------------------- group setup */

static int
group_setup (void **state)
{
  (void)state;
  snprintf (G.dir, sizeof G.dir, "/var/tmp/cimg-test-archive-XXXXXX");
  if (mkdtemp (G.dir) == NULL)
    return -1;
  /* A small root filesystem; "./" names and a symlink as real rootfs tars have them. */
  struct ents e = { 0 };
  ents_add (&e, "./etc", AE_IFDIR, NULL, 0, NULL);
  ents_add (&e, "./etc/hello", AE_IFREG, HELLO, strlen (HELLO), NULL);
  ents_add (&e, "./usr/bin/tool", AE_IFREG, "#!/bin/sh\n", 10, NULL)->perm = 0755;
  ents_add (&e, "./greeting", AE_IFLNK, NULL, 0, "etc/hello");
  G.rootfs = xasprintf ("%s/rootfs.tar.gz", G.dir);
  ents_write (&e, G.rootfs, "gzip");
  ents_free (&e);
  return 0;
}

static int
group_teardown (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  cimg_rm_rf_at (AT_FDCWD, G.dir, &err);
  cimg_error_clear (&err);
  free (G.rootfs);
  free (G.saved);
  return 0;
}

/* ---------------------------------------------------------------- import */

static void
test_import (void **state)
{
  struct fx *f = *state;
  const char *changes[] = { "CMD echo hi",       "entrypoint [\"/usr/bin/tool\"]",
                            "ENV A=b C=\"d e\"", "ENV F g h",
                            "EXPOSE 80 53/udp",  "WORKDIR /srv",
                            "WORKDIR app",       "LABEL x=y",
                            "USER nobody",       "VOLUME /data",
                            "STOPSIGNAL SIGINT", NULL };
  int fd = open (G.rootfs, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  char id[CIMG_DIGEST_BUFSIZE] = "";
  cimg_error_t err = { 0 };
  /* The CLI applies --change lines to the config it hands the store (build/change.h). */
  cleanup_json json_t *changed = json_object ();
  if (cimg_config_apply_changes (changed, (char *const *)changes, &err) < 0)
    fail_msg ("changes: %s", err.msg);
  int rc = cimg_store_import (f->s, fd, TAG, "my message", changed, id, &err);
  close (fd);
  if (rc < 0)
    fail_msg ("import: %s", err.msg);
  assert_true (cimg_digest_valid (id));

  cleanup_image struct cimg_image *img = cimg_store_find_image (f->s, TAG, &err);
  assert_non_null (img);
  assert_string_equal (img->id, id);
  assert_int_equal (img->n_layers, 1);
  assert_true (cimg_store_has_layer (f->s, img->layers[0].chain_id));
  assert_file_in_layer (f->s, img->layers[0].chain_id, "etc/hello", HELLO);
  assert_file_in_layer (f->s, img->layers[0].chain_id, "usr/bin/tool", "#!/bin/sh\n");

  json_t *cfg = img->config;
  assert_string_equal (cimg_json_str (cfg, "os"), "linux");
  assert_non_null (cimg_json_str (cfg, "architecture"));
  int64_t created = 0;
  assert_int_equal (cimg_time_parse_rfc3339 (cimg_json_str (cfg, "created"), &created), 0);
  assert_true (created > 1700000000);
  json_t *diff_ids = json_object_get (json_object_get (cfg, "rootfs"), "diff_ids");
  assert_int_equal (json_array_size (diff_ids), 1);
  assert_string_equal (json_string_value (json_array_get (diff_ids, 0)), img->layers[0].diff_id);
  json_t *hist = json_array_get (json_object_get (cfg, "history"), 0);
  assert_string_equal (cimg_json_str (hist, "comment"), "my message");

  json_t *cc = json_object_get (cfg, "config");
  json_t *cmd = json_object_get (cc, "Cmd");
  assert_int_equal (json_array_size (cmd), 3);
  assert_string_equal (json_string_value (json_array_get (cmd, 0)), "/bin/sh");
  assert_string_equal (json_string_value (json_array_get (cmd, 1)), "-c");
  assert_string_equal (json_string_value (json_array_get (cmd, 2)), "echo hi");
  json_t *ep = json_object_get (cc, "Entrypoint");
  assert_int_equal (json_array_size (ep), 1);
  assert_string_equal (json_string_value (json_array_get (ep, 0)), "/usr/bin/tool");
  json_t *env = json_object_get (cc, "Env");
  assert_int_equal (json_array_size (env), 4);
  assert_true (cimg_str_has_prefix (json_string_value (json_array_get (env, 0)), "PATH=/usr/"));
  assert_string_equal (json_string_value (json_array_get (env, 1)), "A=b");
  assert_string_equal (json_string_value (json_array_get (env, 2)), "C=d e");
  assert_string_equal (json_string_value (json_array_get (env, 3)), "F=g h");
  json_t *ports = json_object_get (cc, "ExposedPorts");
  assert_int_equal (json_object_size (ports), 2);
  assert_non_null (json_object_get (ports, "80/tcp"));
  assert_non_null (json_object_get (ports, "53/udp"));
  assert_string_equal (cimg_json_str (cc, "WorkingDir"), "/srv/app");
  assert_string_equal (cimg_json_str (json_object_get (cc, "Labels"), "x"), "y");
  assert_string_equal (cimg_json_str (cc, "User"), "nobody");
  assert_string_equal (cimg_json_str (cc, "StopSignal"), "SIGINT");
  assert_non_null (json_object_get (json_object_get (cc, "Volumes"), "/data"));

  /* The layer's bytes are kept, so the image can be saved. */
  struct cimg_layer_info info;
  assert_int_equal (cimg_store_layer_info (f->s, img->layers[0].chain_id, &info, &err), 0);
  assert_true (cimg_store_has_blob (f->s, info.digest));

  /* Saved here, while this store exists; the save test checks the archive. */
  G.saved = xasprintf ("%s/saved.tar", G.dir);
  int out = open (G.saved, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (out >= 0);
  char *const names[] = { (char *)TAG, NULL };
  rc = cimg_store_save (f->s, names, out, &err);
  close (out);
  if (rc < 0)
    fail_msg ("save: %s", err.msg);
  memcpy (G.id, img->id, sizeof G.id);
  memcpy (G.diff_id, img->layers[0].diff_id, sizeof G.diff_id);

  /* An unknown image is refused, and nothing is written for it. */
  char *const unknown[] = { (char *)"nosuch:image", NULL };
  cleanup_free char *upath = xasprintf ("%s/unknown.tar", G.dir);
  out = open (upath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (out >= 0);
  assert_int_equal (cimg_store_save (f->s, unknown, out, &err), -1);
  close (out);
  assert_msg_contains (&err, "nosuch");
  struct stat st;
  assert_int_equal (stat (upath, &st), 0);
  assert_int_equal (st.st_size, 0);
  cimg_error_clear (&err);
}

static void
test_import_refuses_bad_change (void **state)
{
  struct fx *f = *state;
  const char *changes[] = { "RUN rm -rf /", NULL };
  cimg_error_t err = { 0 };
  cleanup_json json_t *cc = json_object ();
  assert_int_equal (cimg_config_apply_changes (cc, (char *const *)changes, &err), -1);
  assert_msg_contains (&err, "RUN is not a valid change command");
  assert_int_equal (json_object_size (cc), 0);
  cimg_error_clear (&err);
  assert_store_untouched (f->s);
}

static void
test_import_untagged_plain (void **state)
{
  struct fx *f = *state;
  /* A plain (uncompressed) tar, no tag, no changes: PATH is the default, comment "Imported". */
  struct ents e = { 0 };
  ents_add (&e, "a.txt", AE_IFREG, "A", 1, NULL);
  cleanup_free char *path = xasprintf ("%s/plain.tar", G.dir);
  ents_write (&e, path, NULL);
  ents_free (&e);
  int fd = open (path, O_RDONLY | O_CLOEXEC);
  assert_true (fd >= 0);
  cimg_error_t err = { 0 };
  char id[CIMG_DIGEST_BUFSIZE] = "";
  int rc = cimg_store_import (f->s, fd, NULL, NULL, NULL, id, &err);
  close (fd);
  if (rc < 0)
    fail_msg ("import: %s", err.msg);
  assert_int_equal (count_tagged (f->s), 0);
  cleanup_image struct cimg_image *img = cimg_store_find_image (f->s, id, &err);
  assert_non_null (img);
  json_t *cc = json_object_get (img->config, "config");
  json_t *env = json_object_get (cc, "Env");
  assert_int_equal (json_array_size (env), 1);
  assert_true (cimg_str_has_prefix (json_string_value (json_array_get (env, 0)), "PATH="));
  assert_null (json_object_get (cc, "Cmd"));
  json_t *hist = json_array_get (json_object_get (img->config, "history"), 0);
  assert_string_equal (cimg_json_str (hist, "comment"), "Imported from -");
  assert_file_in_layer (f->s, img->layers[0].chain_id, "a.txt", "A");
}

/* ---------------------------------------------------------------- save */

static void
test_save_layout (void **state)
{
  (void)state;
  assert_non_null (G.saved);
  struct ents e = { 0 };
  ents_read (G.saved, &e);
  assert_true (e.n >= 2);
  assert_string_equal (e.v[0].name, "blobs/");
  assert_int_equal (e.v[0].type, AE_IFDIR);
  assert_string_equal (e.v[1].name, "blobs/sha256/");
  assert_int_equal (e.v[1].type, AE_IFDIR);

  size_t blobs = 0;
  for (size_t i = 0; i < e.n; i++)
    {
      if (!cimg_str_has_prefix (e.v[i].name, "blobs/sha256/") || e.v[i].type != AE_IFREG)
        continue;
      char d[CIMG_DIGEST_BUFSIZE];
      cimg_sha256_buf (e.v[i].data, e.v[i].len, d);
      assert_string_equal (e.v[i].name + strlen ("blobs/sha256/"), cimg_digest_hex (d));
      blobs++;
    }
  assert_int_equal (blobs, 3); /* config, layer, OCI manifest */

  cimg_error_t err = { 0 };
  struct ent *m = ents_find (&e, "manifest.json");
  assert_non_null (m);
  cleanup_json json_t *mj = json_loadb (m->data, m->len, 0, NULL);
  assert_true (json_is_array (mj));
  assert_int_equal (json_array_size (mj), 1);
  json_t *item = json_array_get (mj, 0);
  cleanup_free char *cpath = cimg_blob_path (G.id);
  assert_string_equal (cimg_json_str (item, "Config"), cpath);
  json_t *tags = json_object_get (item, "RepoTags");
  assert_int_equal (json_array_size (tags), 1);
  assert_string_equal (json_string_value (json_array_get (tags, 0)), TAG);
  json_t *layers = json_object_get (item, "Layers");
  assert_int_equal (json_array_size (layers), 1);
  /* docker-archive layers are the uncompressed tars: their digest is the diff_id. */
  assert_string_equal (json_string_value (json_array_get (layers, 0)), layer_blob_name ());
  assert_non_null (ents_find (&e, layer_blob_name ()));

  struct ent *r = ents_find (&e, "repositories");
  assert_non_null (r);
  cleanup_json json_t *rj = cimg_json_parse (r->data, r->len, &err);
  assert_non_null (rj);
  assert_string_equal (cimg_json_str (json_object_get (rj, "example.com/test/app"), "1.0"),
                       cimg_digest_hex (G.id));

  struct ent *l = ents_find (&e, "oci-layout");
  assert_non_null (l);
  cleanup_json json_t *lj = cimg_json_parse (l->data, l->len, &err);
  assert_non_null (lj);
  assert_string_equal (cimg_json_str (lj, "imageLayoutVersion"), "1.0.0");

  struct ent *x = ents_find (&e, "index.json");
  assert_non_null (x);
  cleanup_json json_t *xj = cimg_json_parse (x->data, x->len, &err);
  assert_non_null (xj);
  assert_int_equal (cimg_json_int (xj, "schemaVersion"), 2);
  json_t *ms = json_object_get (xj, "manifests");
  assert_int_equal (json_array_size (ms), 1);
  json_t *desc = json_array_get (ms, 0);
  assert_string_equal (cimg_json_str (desc, "mediaType"), MT_OCI_MANIFEST);
  json_t *ann = json_object_get (desc, "annotations");
  assert_string_equal (cimg_json_str (ann, "io.containerd.image.name"), TAG);
  assert_string_equal (cimg_json_str (ann, "org.opencontainers.image.ref.name"), "1.0");

  /* The OCI manifest describes exactly the blobs written. */
  cleanup_free char *mpath = cimg_blob_path (cimg_json_str (desc, "digest"));
  struct ent *mb = ents_find (&e, mpath);
  assert_non_null (mb);
  assert_int_equal (cimg_json_int (desc, "size"), (int64_t)mb->len);
  cleanup_json json_t *om = cimg_json_parse (mb->data, mb->len, &err);
  assert_non_null (om);
  assert_string_equal (cimg_json_str (om, "mediaType"), MT_OCI_MANIFEST);
  json_t *oc = json_object_get (om, "config");
  assert_string_equal (cimg_json_str (oc, "mediaType"), MT_OCI_CONFIG);
  assert_string_equal (cimg_json_str (oc, "digest"), G.id);
  assert_int_equal (cimg_json_int (oc, "size"), (int64_t)ents_find (&e, cpath)->len);
  json_t *ol = json_array_get (json_object_get (om, "layers"), 0);
  assert_string_equal (cimg_json_str (ol, "mediaType"), MT_OCI_LAYER_TAR);
  assert_string_equal (cimg_json_str (ol, "digest"), G.diff_id);
  assert_int_equal (cimg_json_int (ol, "size"), (int64_t)ents_find (&e, layer_blob_name ())->len);
  ents_free (&e);
}

/* ---------------------------------------------------------------- load */

static void
assert_loaded (struct cimg_store *s, const char *name)
{
  cimg_error_t err = { 0 };
  cleanup_image struct cimg_image *img = cimg_store_find_image (s, name, &err);
  if (img == NULL)
    fail_msg ("find %s: %s", name, err.msg);
  assert_string_equal (img->id, G.id);
  assert_int_equal (img->n_layers, 1);
  assert_string_equal (img->layers[0].diff_id, G.diff_id);
  assert_file_in_layer (s, img->layers[0].chain_id, "etc/hello", HELLO);
  assert_int_equal (count_dir (s, "ingest"), 0);
}

static void
test_load_saved (void **state)
{
  struct fx *f = *state;
  assert_non_null (G.saved);
  char **report = NULL;
  cimg_error_t err = { 0 };
  if (load_file (f->s, G.saved, &report, &err) < 0)
    fail_msg ("load: %s", err.msg);
  assert_int_equal (cimg_strv_len (report), 1);
  assert_string_equal (report[0], "Loaded image: " TAG);
  cimg_strv_free (report);
  assert_loaded (f->s, TAG);
  /* A saved-and-loaded image saves again into the same bytes (fixed mtimes, same blobs). */
  cleanup_free char *again = xasprintf ("%s/again.tar", G.dir);
  int out = open (again, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (out >= 0);
  char *const names[] = { (char *)TAG, NULL };
  int rc = cimg_store_save (f->s, names, out, &err);
  close (out);
  if (rc < 0)
    fail_msg ("save: %s", err.msg);
  cleanup_free char *a = NULL, *b = NULL;
  size_t alen = 0, blen = 0;
  assert_int_equal (cimg_read_file_at (AT_FDCWD, G.saved, 1 << 26, &a, &alen, &err), 0);
  assert_int_equal (cimg_read_file_at (AT_FDCWD, again, 1 << 26, &b, &blen, &err), 0);
  assert_int_equal (alen, blen);
  assert_memory_equal (a, b, alen);

  /* Loading it a second time finds everything present and still tags. */
  report = NULL;
  if (load_file (f->s, G.saved, &report, &err) < 0)
    fail_msg ("load again: %s", err.msg);
  assert_string_equal (report[0], "Loaded image: " TAG);
  cimg_strv_free (report);
}

static void
test_load_gzip (void **state)
{
  struct fx *f = *state;
  struct ents e = { 0 };
  ents_read (G.saved, &e);
  cleanup_free char *path = xasprintf ("%s/saved.tar.gz", G.dir);
  ents_write (&e, path, "gzip");
  ents_free (&e);
  cimg_error_t err = { 0 };
  if (load_file (f->s, path, NULL, &err) < 0)
    fail_msg ("load: %s", err.msg);
  assert_loaded (f->s, TAG);
}

static void
test_load_oci_only (void **state)
{
  struct fx *f = *state;
  struct ents e = { 0 };
  oci_only (&e);
  /* An unreferenced blob in the layout must not stay behind in the store. */
  const char *extra = "not referenced";
  char ed[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (extra, strlen (extra), ed);
  cleanup_free char *epath = cimg_blob_path (ed);
  ents_add (&e, epath, AE_IFREG, extra, strlen (extra), NULL);
  cleanup_free char *path = xasprintf ("%s/oci.tar", G.dir);
  ents_write (&e, path, "zstd");
  ents_free (&e);
  char **report = NULL;
  cimg_error_t err = { 0 };
  if (load_file (f->s, path, &report, &err) < 0)
    fail_msg ("load: %s", err.msg);
  assert_int_equal (cimg_strv_len (report), 1);
  assert_string_equal (report[0], "Loaded image: " TAG);
  cimg_strv_free (report);
  assert_loaded (f->s, TAG);
  assert_false (cimg_store_has_blob (f->s, ed));
  assert_true (cimg_store_has_blob (f->s, G.id));
}

static void
test_load_oci_bare_tag (void **state)
{
  struct fx *f = *state;
  struct ents e = { 0 };
  oci_only (&e);
  /* As skopeo and umoci write it: only the OCI ref.name, a bare tag naming no repository. */
  struct ent *x = ents_find (&e, "index.json");
  cimg_error_t err = { 0 };
  cleanup_json json_t *j = cimg_json_parse (x->data, x->len, &err);
  assert_non_null (j);
  json_t *desc = json_array_get (json_object_get (j, "manifests"), 0);
  json_object_del (json_object_get (desc, "annotations"), "io.containerd.image.name");
  cleanup_free char *s = json_dumps (j, JSON_COMPACT);
  ents_set (&e, "index.json", s, strlen (s));
  cleanup_free char *path = xasprintf ("%s/oci-bare.tar", G.dir);
  ents_write (&e, path, NULL);
  ents_free (&e);
  char **report = NULL;
  if (load_file (f->s, path, &report, &err) < 0)
    fail_msg ("load: %s", err.msg);
  assert_int_equal (cimg_strv_len (report), 1);
  cleanup_free char *want = xasprintf ("Loaded image ID: %s", G.id);
  assert_string_equal (report[0], want);
  cimg_strv_free (report);
  assert_int_equal (count_tagged (f->s), 0);
  assert_loaded (f->s, G.id);
}

static void
test_load_oci_nested_index (void **state)
{
  struct fx *f = *state;
  struct ents e = { 0 };
  oci_only (&e);
  /* A multi-platform image: index.json names a nested index whose entry for another platform
     points at a blob the archive lacks; only this machine's manifest is loaded, under the name
     of the entry that points at the nested index. */
  struct utsname u;
  assert_int_equal (uname (&u), 0);
  const char *arch = strcmp (u.machine, "aarch64") == 0 ? "arm64" : "amd64";
  struct ent *x = ents_find (&e, "index.json");
  cimg_error_t err = { 0 };
  cleanup_json json_t *top = cimg_json_parse (x->data, x->len, &err);
  assert_non_null (top);
  json_t *mdesc = json_deep_copy (json_array_get (json_object_get (top, "manifests"), 0));
  json_object_del (mdesc, "annotations");
  json_object_set_new (mdesc, "platform",
                       json_pack ("{s:s, s:s}", "os", "linux", "architecture", arch));
  char missing[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf ("absent", 6, missing);
  cleanup_json json_t *nested = json_pack (
      "{s:i, s:s, s:[{s:s, s:s, s:i, s:{s:s, s:s}}, o]}", "schemaVersion", 2, "mediaType",
      MT_OCI_INDEX, "manifests", "mediaType", MT_OCI_MANIFEST, "digest", missing, "size", 6,
      "platform", "os", "linux", "architecture", "otherarch", mdesc);
  assert_non_null (nested);
  cleanup_free char *nbytes = json_dumps (nested, JSON_COMPACT);
  char nd[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (nbytes, strlen (nbytes), nd);
  cleanup_free char *npath = cimg_blob_path (nd);
  ents_add (&e, npath, AE_IFREG, nbytes, strlen (nbytes), NULL);
  cleanup_json json_t *index
      = json_pack ("{s:i, s:s, s:[{s:s, s:s, s:I, s:{s:s, s:s}}]}", "schemaVersion", 2, "mediaType",
                   MT_OCI_INDEX, "manifests", "mediaType", MT_OCI_INDEX, "digest", nd, "size",
                   (json_int_t)strlen (nbytes), "annotations", "io.containerd.image.name",
                   "example.com/multi:2", "org.opencontainers.image.ref.name", "2");
  cleanup_free char *ibytes = json_dumps (index, JSON_COMPACT);
  ents_set (&e, "index.json", ibytes, strlen (ibytes));
  cleanup_free char *path = xasprintf ("%s/nested.tar", G.dir);
  ents_write (&e, path, NULL);
  ents_free (&e);
  char **report = NULL;
  if (load_file (f->s, path, &report, &err) < 0)
    fail_msg ("load: %s", err.msg);
  assert_int_equal (cimg_strv_len (report), 1);
  assert_string_equal (report[0], "Loaded image: example.com/multi:2");
  cimg_strv_free (report);
  assert_loaded (f->s, "example.com/multi:2");
}

static void
test_load_legacy_docker_archive (void **state)
{
  struct fx *f = *state;
  /* As Docker before 25 writes it: "<hex>.json" config, "<id>/layer.tar", a second image's
     copy of a layer as a symlink to the first; names with "./". */
  struct ents saved = { 0 };
  ents_read (G.saved, &saved);
  cleanup_free char *cpath = cimg_blob_path (G.id);
  struct ent *cfg = ents_find (&saved, cpath);
  struct ent *layer = ents_find (&saved, layer_blob_name ());
  assert_non_null (cfg);
  assert_non_null (layer);
  struct ents e = { 0 };
  cleanup_free char *cname = xasprintf ("./%s.json", cimg_digest_hex (G.id));
  ents_add (&e, "./aaaa/", AE_IFDIR, NULL, 0, NULL);
  ents_add (&e, "./aaaa/layer.tar", AE_IFREG, layer->data, layer->len, NULL);
  ents_add (&e, "./bbbb/", AE_IFDIR, NULL, 0, NULL);
  ents_add (&e, "./bbbb/layer.tar", AE_IFLNK, NULL, 0, "../aaaa/layer.tar");
  ents_add (&e, cname, AE_IFREG, cfg->data, cfg->len, NULL);
  cleanup_free char *manifest = xasprintf (
      "[{\"Config\":\"%s.json\",\"RepoTags\":[\"legacy:1\"],\"Layers\":[\"bbbb/layer.tar\"]}]",
      cimg_digest_hex (G.id));
  ents_add (&e, "./manifest.json", AE_IFREG, manifest, strlen (manifest), NULL);
  ents_free (&saved);
  cleanup_free char *path = xasprintf ("%s/legacy.tar", G.dir);
  ents_write (&e, path, NULL);
  ents_free (&e);
  char **report = NULL;
  cimg_error_t err = { 0 };
  if (load_file (f->s, path, &report, &err) < 0)
    fail_msg ("load: %s", err.msg);
  assert_int_equal (cimg_strv_len (report), 1);
  assert_string_equal (report[0], "Loaded image: legacy:1");
  cimg_strv_free (report);
  assert_loaded (f->s, "legacy:1");
}

static void
test_load_truncated (void **state)
{
  struct fx *f = *state;
  cleanup_free char *data = NULL;
  size_t len = 0;
  cimg_error_t err = { 0 };
  assert_int_equal (cimg_read_file_at (AT_FDCWD, G.saved, 1 << 26, &data, &len, &err), 0);
  cleanup_free char *path = xasprintf ("%s/truncated.tar", G.dir);
  /* Cut inside the archive at a few places: mid-header, mid-data, just before the end. */
  size_t cuts[] = { len / 2, 700, len - 1100 };
  for (size_t i = 0; i < ARRAY_SIZE (cuts); i++)
    {
      assert_true (cuts[i] < len);
      assert_int_equal (cimg_write_file_atomic_at (AT_FDCWD, path, data, cuts[i], 0644, &err), 0);
      assert_int_equal (load_file (f->s, path, NULL, &err), -1);
      assert_non_null (err.msg);
      cimg_error_clear (&err);
      assert_store_untouched (f->s);
    }
}

static void
test_load_altered_blob (void **state)
{
  struct fx *f = *state;
  struct ents e = { 0 };
  ents_read (G.saved, &e);
  struct ent *l = ents_find (&e, layer_blob_name ());
  assert_non_null (l);
  /* Change one byte of file content inside the layer tar: still a valid tar. */
  char *hit = memmem (l->data, l->len, HELLO, strlen (HELLO));
  assert_non_null (hit);
  hit[0] = 'j';
  cleanup_free char *path = xasprintf ("%s/altered.tar", G.dir);
  ents_write (&e, path, NULL);
  ents_free (&e);
  cimg_error_t err = { 0 };
  assert_int_equal (load_file (f->s, path, NULL, &err), -1);
  assert_msg_contains (&err, layer_blob_name ());
  assert_msg_contains (&err, "digest mismatch");
  cimg_error_clear (&err);
  assert_store_untouched (f->s);
}

static void
test_load_diff_id_mismatch (void **state)
{
  struct fx *f = *state;
  /* A docker-archive layer under a free name is not checked by its name, but its diff_id is. */
  struct ents saved = { 0 };
  ents_read (G.saved, &saved);
  cleanup_free char *cpath = cimg_blob_path (G.id);
  struct ent *cfg = ents_find (&saved, cpath);
  struct ent *layer = ents_find (&saved, layer_blob_name ());
  assert_non_null (cfg);
  assert_non_null (layer);
  char *hit = memmem (layer->data, layer->len, HELLO, strlen (HELLO));
  assert_non_null (hit);
  hit[0] = 'j';
  char altered[CIMG_DIGEST_BUFSIZE];
  cimg_sha256_buf (layer->data, layer->len, altered);
  struct ents e = { 0 };
  ents_add (&e, "x/layer.tar", AE_IFREG, layer->data, layer->len, NULL);
  ents_add (&e, "config.json", AE_IFREG, cfg->data, cfg->len, NULL);
  const char *manifest
      = "[{\"Config\":\"config.json\",\"RepoTags\":[\"bad:1\"],\"Layers\":[\"x/layer.tar\"]}]";
  ents_add (&e, "manifest.json", AE_IFREG, manifest, strlen (manifest), NULL);
  ents_free (&saved);
  cleanup_free char *path = xasprintf ("%s/mismatch.tar", G.dir);
  ents_write (&e, path, NULL);
  ents_free (&e);
  cimg_error_t err = { 0 };
  assert_int_equal (load_file (f->s, path, NULL, &err), -1);
  cleanup_free char *want = xasprintf ("layer 1 (%s): diff_id mismatch (got %s, expected %s)",
                                       altered, altered, G.diff_id);
  assert_msg_contains (&err, want);
  cimg_error_clear (&err);
  assert_store_untouched (f->s);
}

static void
test_load_oci_missing_blob (void **state)
{
  struct fx *f = *state;
  struct ents e = { 0 };
  oci_only (&e);
  cleanup_free char *cpath = cimg_blob_path (G.id);
  ents_remove (&e, cpath);
  cleanup_free char *path = xasprintf ("%s/missing.tar", G.dir);
  ents_write (&e, path, NULL);
  ents_free (&e);
  cimg_error_t err = { 0 };
  assert_int_equal (load_file (f->s, path, NULL, &err), -1);
  assert_msg_contains (&err, G.id);
  assert_msg_contains (&err, "not in the archive");
  cimg_error_clear (&err);
  assert_store_untouched (f->s);
}

static void
test_load_layer_count_mismatch (void **state)
{
  struct fx *f = *state;
  struct ents e = { 0 };
  ents_read (G.saved, &e);
  struct ent *m = ents_find (&e, "manifest.json");
  cimg_error_t err = { 0 };
  cleanup_json json_t *j = json_loadb (m->data, m->len, 0, NULL);
  assert_non_null (j);
  json_t *layers = json_object_get (json_array_get (j, 0), "Layers");
  json_array_append (layers, json_array_get (layers, 0));
  cleanup_free char *s = json_dumps (j, JSON_COMPACT);
  ents_set (&e, "manifest.json", s, strlen (s));
  cleanup_free char *path = xasprintf ("%s/count.tar", G.dir);
  ents_write (&e, path, NULL);
  ents_free (&e);
  assert_int_equal (load_file (f->s, path, NULL, &err), -1);
  assert_msg_contains (&err, "2 layers, but the config lists 1 diff_ids");
  cimg_error_clear (&err);
  assert_store_untouched (f->s);
}

static void
test_load_not_an_image (void **state)
{
  struct fx *f = *state;
  cimg_error_t err = { 0 };
  assert_int_equal (load_file (f->s, G.rootfs, NULL, &err), -1);
  assert_msg_contains (&err, "manifest.json");
  cimg_error_clear (&err);
  assert_store_untouched (f->s);
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    /* test_import saves the archive the tests after it read. */
    cmocka_unit_test_setup_teardown (test_import, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_import_refuses_bad_change, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_import_untagged_plain, fx_setup, fx_teardown),
    cmocka_unit_test (test_save_layout),
    cmocka_unit_test_setup_teardown (test_load_saved, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_gzip, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_oci_only, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_oci_bare_tag, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_oci_nested_index, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_legacy_docker_archive, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_truncated, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_altered_blob, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_diff_id_mismatch, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_oci_missing_blob, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_layer_count_mismatch, fx_setup, fx_teardown),
    cmocka_unit_test_setup_teardown (test_load_not_an_image, fx_setup, fx_teardown),
  };
  return cmocka_run_group_tests (tests, group_setup, group_teardown);
}
