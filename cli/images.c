#include "cli/cli.h"
#include "store/image.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* "docker.io/library/ubuntu:latest" -> "ubuntu", "latest". */
static void
split_tag (const char *full, char **repo, char **tag)
{
  cleanup_free char *f = cimg_ref_familiar_string (full);
  char *slash = strrchr (f, '/');
  char *colon = strrchr (slash ? slash : f, ':');
  if (colon)
    {
      *repo = xstrndup (f, (size_t)(colon - f));
      *tag = xstrdup (colon + 1);
    }
  else
    {
      *repo = xstrdup (f);
      *tag = xstrdup ("<none>");
    }
}

static void
short_id (const char *id, bool no_trunc, char *out, size_t n)
{
  if (no_trunc)
    snprintf (out, n, "%s", id);
  else
    snprintf (out, n, "%.12s", cimg_digest_hex (id));
}

static void
created_since (int64_t created, char *out, size_t n)
{
  if (created <= 0)
    {
      snprintf (out, n, "N/A");
      return;
    }
  char d[64];
  cimg_human_duration (cimg_now () - created, d, sizeof d);
  snprintf (out, n, "%s ago", d);
}

/* The digest part of the first repo digest of repo ("name@sha256:…"), or "<none>". */
static const char *
digest_for (char **repo_digests, const char *repo)
{
  for (size_t i = 0; repo_digests && repo_digests[i]; i++)
    {
      cleanup_free char *f = cimg_ref_familiar_string (repo_digests[i]);
      char *at = strchr (f, '@');
      if (at && (size_t)(at - f) == strlen (repo) && strncmp (f, repo, strlen (repo)) == 0)
        return strchr (repo_digests[i], '@') + 1;
    }
  return "<none>";
}

struct images_opts
{
  bool all, quiet, digests, no_trunc, json;
  const char *filter_repo, *filter_tag;
};

static void
emit_row (struct cimg_store *st, struct table *t, const struct images_opts *o,
          const struct cimg_image_summary *im, const char *full, const char *repo, const char *tag,
          json_t *seen_ids)
{
  char id[80], created[80], size[32];
  short_id (im->id, o->no_trunc, id, sizeof id);
  if (o->quiet)
    {
      /* Each ID once, at its first row, as Docker. A JSON object is a hash table: a linear
         listing, where a list searched per row was quadratic in the number of images. */
      if (json_object_get (seen_ids, id) == NULL)
        {
          printf ("%s\n", id);
          json_object_set_new (seen_ids, id, json_true ());
        }
      return;
    }
  created_since (im->created, created, sizeof created);
  cimg_human_size (im->size, size, sizeof size);
  /* The repo digest of the manifest this tag came with, when the image is known through
     several (store/image.h); else the repository's first. Only read when shown: `images`
     alone stays an index read. */
  cleanup_free char *own = (o->digests || o->json) && full
                               ? cimg_store_image_repo_digest_for (st, im->id, full)
                               : NULL;
  const char *digest = own                            ? own
                       : strcmp (repo, "<none>") == 0 ? "<none>"
                                                      : digest_for (im->repo_digests, repo);
  if (o->json)
    {
      char at[64] = "";
      time_t tt = (time_t)im->created;
      struct tm tm;
      gmtime_r (&tt, &tm);
      strftime (at, sizeof at, "%Y-%m-%d %H:%M:%S +0000 UTC", &tm);
      cleanup_json json_t *j = json_pack (
          "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Containers", "N/A",
          "CreatedAt", at, "CreatedSince", created, "Digest", digest, "ID", id, "Repository", repo,
          "SharedSize", "N/A", "Size", size, "Tag", tag, "UniqueSize", "N/A", "VirtualSize", size);
      cleanup_free char *s = json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS);
      printf ("%s\n", s);
      return;
    }
  if (o->digests)
    table_add (t, repo, tag, digest, id, created, size);
  else
    table_add (t, repo, tag, id, created, size);
}

int
cmd_images (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[]
      = { { "all", no_argument, NULL, 'a' },          { "quiet", no_argument, NULL, 'q' },
          { "digests", no_argument, NULL, 'D' },      { "no-trunc", no_argument, NULL, 'T' },
          { "format", required_argument, NULL, 'F' }, { 0 } };
  struct images_opts o = { 0 };
  int r;
  while ((r = cli_getopt (c, argc, argv, "aq", longopts)) != -1)
    switch (r)
      {
      case 'a':
        o.all = true;
        break;
      case 'q':
        o.quiet = true;
        break;
      case 'D':
        o.digests = true;
        break;
      case 'T':
        o.no_trunc = true;
        break;
      case 'F':
        if (strcmp (optarg, "json") != 0 && strcmp (optarg, "{{json .}}") != 0)
          return cli_usage_error (c, "unsupported --format \"%s\" (only \"json\")", optarg);
        o.json = true;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (argc - optind > 1)
    return cli_usage_error (c, "\"%s\" requires at most 1 argument.", c->prog);
  cleanup_free char *frepo = NULL;
  if (optind < argc)
    {
      /* A filter "name" or "name:tag", compared in familiar form. */
      cimg_error_t err = { 0 };
      cleanup_ref struct cimg_ref *ref = cimg_ref_parse_name (argv[optind], &err);
      if (ref == NULL)
        return cli_fail (&err);
      frepo = cimg_ref_familiar_name (ref);
      o.filter_repo = frepo;
      if (ref->tag)
        o.filter_tag = xstrdup (ref->tag);
    }
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  struct cimg_image_summary *v = NULL;
  size_t n = 0;
  if (cimg_store_list_images (s, &v, &n, &err) < 0)
    return cli_fail (&err);
  struct table *t = table_new (o.digests ? 6 : 5);
  if (o.digests)
    table_add (t, "REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE");
  else
    table_add (t, "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE");
  cleanup_json json_t *seen = json_object ();
  for (size_t i = 0; i < n; i++)
    {
      struct cimg_image_summary *im = &v[i];
      if (im->repo_tags == NULL)
        {
          if (o.all && o.filter_repo == NULL)
            emit_row (s, t, &o, im, NULL, "<none>", "<none>", seen);
          continue;
        }
      for (size_t k = 0; im->repo_tags[k]; k++)
        {
          cleanup_free char *repo = NULL, *tag = NULL;
          split_tag (im->repo_tags[k], &repo, &tag);
          if (o.filter_repo && strcmp (repo, o.filter_repo) != 0)
            continue;
          if (o.filter_tag && strcmp (tag, o.filter_tag) != 0)
            continue;
          emit_row (s, t, &o, im, im->repo_tags[k], repo, tag, seen);
        }
    }
  if (!o.quiet && !o.json)
    table_print (t, stdout);
  table_free (t);
  cimg_image_summaries_free (v, n);
  if (o.filter_tag)
    free ((char *)o.filter_tag);
  return 0;
}

/* An image known through several manifests (OCI and Docker, gzip and zstd) pushes, for each
   tag, the manifest that tag came with (store/image.h). The new tag is recorded with the
   manifest push would send for the source name, so that `push DST` sends what `push SRC` does,
   digest for digest, and `images --digests` shows it the source's repo digest in that
   repository. No repo digest is added: as Docker's, only a pull or a push makes one. This is
   written before the tag: a failure between the two leaves a reference in the record that no
   tag leads to, which nothing reads; the other order would leave a tag that pushes the wrong
   manifest. */
static int
tag_keep_manifest (struct cimg_store *s, const char *id, const char *src, const char *dst,
                   cimg_error_t *err)
{
  cimg_error_t e = { 0 };
  cleanup_ref struct cimg_ref *dref = cimg_ref_parse (dst, &e);
  cimg_error_clear (&e);
  if (dref == NULL || dref->digest != NULL)
    return 0; /* cimg_store_tag says what is wrong with it */
  cleanup_ref struct cimg_ref *sref = cimg_ref_parse (src, &e);
  cimg_error_clear (&e);
  cleanup_free char *sfull = sref ? cimg_ref_string (sref) : NULL;
  char md[CIMG_DIGEST_BUFSIZE];
  if (cimg_store_image_manifest_for (s, id, sfull, md, &e) < 0)
    {
      /* A record with no manifest has none to keep. */
      if (e.code == ENOENT)
        {
          cimg_error_clear (&e);
          return 0;
        }
      *err = e;
      return -1;
    }
  cleanup_free char *dfull = cimg_ref_string (dref);
  const char *refs[] = { dfull };
  return cimg_store_image_add_manifest_refs (s, id, md, refs, ARRAY_SIZE (refs), err);
}

int
cmd_tag (struct cli *c, int argc, char **argv)
{
  int r;
  while ((r = cli_getopt (c, argc, argv, "", NULL)) != -1)
    return r == 'h' ? 0 : EXIT_USAGE;
  if (argc - optind != 2)
    return cli_usage_error (c, "\"%s\" requires exactly 2 arguments.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  /* Shared from the lookup to the tag: rmi and prune remove images under the exclusive lock,
     so the image found is still there when its manifest and the tag are recorded (without it a
     racing rmi made tag fail with "image … is not in the store" instead of "No such image"). */
  if (cimg_store_lock (s, CIMG_LOCK_SHARED, &err) < 0)
    return cli_fail (&err);
  cleanup_image struct cimg_image *img = cimg_store_find_image (s, argv[optind], &err);
  if (img == NULL || tag_keep_manifest (s, img->id, argv[optind], argv[optind + 1], &err) < 0
      || cimg_store_tag (s, img->id, argv[optind + 1], &err) < 0)
    return cli_fail (&err);
  return 0;
}

static int
print_report (char *const *report)
{
  for (size_t i = 0; report && report[i]; i++)
    printf ("%s\n", report[i]);
  fflush (stdout);
  return 0;
}

int
cmd_rmi (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[]
      = { { "force", no_argument, NULL, 'f' }, { "no-prune", no_argument, NULL, 'P' }, { 0 } };
  int flags = 0, r;
  while ((r = cli_getopt (c, argc, argv, "f", longopts)) != -1)
    switch (r)
      {
      case 'f':
        flags |= CIMG_RMI_FORCE;
        break;
      case 'P':
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (optind >= argc)
    return cli_usage_error (c, "\"%s\" requires at least 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  /* All the names in one index update and one gc (store/image.h). As docker rmi: each name is
     reported in order, one that fails fails alone, and the exit code is 1 if any did. */
  cleanup_image_batch struct cimg_image_batch *b = cimg_image_batch_new (s);
  for (int i = optind; i < argc; i++)
    cimg_image_batch_remove (b, argv[i], flags);
  cimg_error_t err = { 0 };
  int committed = cimg_image_batch_commit (b, &err);
  int rc = committed < 0 ? EXIT_FAIL : 0;
  for (int i = optind; i < argc; i++)
    {
      cimg_error_t nerr = { 0 };
      char *const *report = NULL;
      int ok = cimg_image_batch_removed (b, (size_t)(i - optind), &report, &nerr);
      print_report (report);
      if (ok < 0)
        rc = cli_fail (&nerr);
    }
  if (committed < 0)
    cli_fail (&err);
  return rc;
}

static int
prune (struct cli *c, int argc, char **argv, bool system)
{
  static const struct option longopts[]
      = { { "all", no_argument, NULL, 'a' }, { "force", no_argument, NULL, 'f' }, { 0 } };
  bool all = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "af", longopts)) != -1)
    switch (r)
      {
      case 'a':
        all = true;
        break;
      case 'f':
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  cleanup_strv char **report = NULL;
  int64_t reclaimed = 0;
  if (cimg_store_prune_images (s, all, &report, &reclaimed, &err) < 0)
    {
      print_report (report);
      return cli_fail (&err);
    }
  if (report)
    printf (system ? "Deleted Images:\n" : "Deleted Images:\n");
  print_report (report);
  char sz[32];
  cimg_human_size (reclaimed, sz, sizeof sz);
  printf ("\nTotal reclaimed space: %s\n", sz);
  return 0;
}

int
cmd_image_prune (struct cli *c, int argc, char **argv)
{
  return prune (c, argc, argv, false);
}

int
cmd_system_prune (struct cli *c, int argc, char **argv)
{
  return prune (c, argc, argv, true);
}

static json_t *
familiar_list (char **v)
{
  json_t *a = json_array ();
  for (size_t i = 0; v && v[i]; i++)
    {
      cleanup_free char *f = cimg_ref_familiar_string (v[i]);
      json_array_append_new (a, json_string (f));
    }
  return a;
}

static json_t *
str_or_empty (json_t *config, const char *key)
{
  const char *v = cimg_json_str (config, key);
  return json_string (v ? v : "");
}

static json_t *
inspect_json (struct cimg_store *s, struct cimg_image *img)
{
  json_t *cfg = img->config;
  json_t *layers = json_array ();
  cleanup_free char *lower = xstrdup ("");
  cleanup_free char *upper = NULL;
  for (size_t i = 0; i < img->n_layers; i++)
    {
      json_array_append_new (layers, json_string (img->layers[i].diff_id));
      cleanup_free char *p = cimg_store_layer_diff_path (img->layers[i].chain_id);
      char *full = xasprintf ("%s/%s", cimg_store_root (s), p);
      if (i + 1 == img->n_layers)
        upper = full;
      else
        {
          /* overlay lists lower dirs top-most first. */
          char *nl = *lower ? xasprintf ("%s:%s", full, lower) : xstrdup (full);
          free (lower);
          lower = nl;
          free (full);
        }
    }
  json_t *data = json_object ();
  if (*lower)
    json_object_set_new (data, "LowerDir", json_string (lower));
  if (upper)
    json_object_set_new (data, "UpperDir", json_string (upper));
  json_t *config = json_object_get (cfg, "config");
  json_t *j = json_object ();
  json_object_set_new (j, "Id", json_string (img->id));
  json_object_set_new (j, "RepoTags", familiar_list (img->repo_tags));
  json_object_set_new (j, "RepoDigests", familiar_list (img->repo_digests));
  json_object_set_new (j, "Parent", json_string (""));
  json_object_set_new (j, "Comment", str_or_empty (cfg, "comment"));
  json_object_set_new (j, "Created", str_or_empty (cfg, "created"));
  json_object_set_new (j, "DockerVersion", str_or_empty (cfg, "docker_version"));
  json_object_set_new (j, "Author", str_or_empty (cfg, "author"));
  json_object_set_new (j, "Config", json_is_object (config) ? json_incref (config) : json_null ());
  json_object_set_new (j, "Architecture", str_or_empty (cfg, "architecture"));
  if (cimg_json_str (cfg, "variant"))
    json_object_set_new (j, "Variant", str_or_empty (cfg, "variant"));
  json_object_set_new (j, "Os", str_or_empty (cfg, "os"));
  json_object_set_new (j, "Size", json_integer (img->size));
  json_object_set_new (j, "GraphDriver", json_pack ("{s:s, s:o}", "Name", "overlay", "Data", data));
  json_object_set_new (j, "RootFS", json_pack ("{s:s, s:o}", "Type", "layers", "Layers", layers));
  json_object_set_new (j, "ManifestDigest", json_string (img->manifest_digest));
  return j;
}

int
cmd_inspect (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "type", required_argument, NULL, 't' },
                                            { "format", required_argument, NULL, 'f' },
                                            { 0 } };
  int r;
  while ((r = cli_getopt (c, argc, argv, "f:", longopts)) != -1)
    switch (r)
      {
      case 't':
        if (strcmp (optarg, "image") != 0)
          return cli_usage_error (c, "unsupported --type \"%s\" (only \"image\")", optarg);
        break;
      case 'f':
        return cli_usage_error (c, "--format templates are not supported; pipe the JSON to jq");
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (optind >= argc)
    return cli_usage_error (c, "\"%s\" requires at least 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cleanup_json json_t *out = json_array ();
  int rc = 0;
  for (int i = optind; i < argc; i++)
    {
      cimg_error_t err = { 0 };
      cleanup_image struct cimg_image *img = cimg_store_find_image (s, argv[i], &err);
      if (img == NULL)
        {
          rc = cli_fail (&err);
          continue;
        }
      json_array_append_new (out, inspect_json (s, img));
    }
  cleanup_free char *txt = json_dumps (out, JSON_INDENT (4) | JSON_PRESERVE_ORDER);
  printf ("%s\n", txt);
  return rc;
}

int
cmd_history (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[]
      = { { "no-trunc", no_argument, NULL, 'T' }, { "quiet", no_argument, NULL, 'q' }, { 0 } };
  bool no_trunc = false, quiet = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "q", longopts)) != -1)
    switch (r)
      {
      case 'T':
        no_trunc = true;
        break;
      case 'q':
        quiet = true;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (argc - optind != 1)
    return cli_usage_error (c, "\"%s\" requires exactly 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  cleanup_image struct cimg_image *img = cimg_store_find_image (s, argv[optind], &err);
  if (img == NULL)
    return cli_fail (&err);
  json_t *hist = json_object_get (img->config, "history");
  size_t n = json_array_size (hist);
  /* Layer sizes belong to the history entries that are not empty_layer, in order. */
  int64_t *sizes = xzalloc ((n + 1) * sizeof *sizes);
  size_t li = 0;
  for (size_t i = 0; i < n; i++)
    {
      json_t *e = json_array_get (hist, i);
      if (!json_is_true (json_object_get (e, "empty_layer")) && li < img->n_layers)
        sizes[i] = img->layers[li++].size;
    }
  struct table *t = table_new (5);
  table_add (t, "IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT");
  char id[80];
  short_id (img->id, no_trunc, id, sizeof id);
  for (size_t k = n; k-- > 0;)
    {
      json_t *e = json_array_get (hist, k);
      const char *img_col = k + 1 == n ? id : "<missing>";
      if (quiet)
        {
          printf ("%s\n", img_col);
          continue;
        }
      char created[80], size[32];
      int64_t when = 0;
      const char *cs = cimg_json_str (e, "created");
      if (cs)
        cimg_time_parse_rfc3339 (cs, &when);
      created_since (when, created, sizeof created);
      cimg_human_size (sizes[k], size, sizeof size);
      const char *by = cimg_json_str (e, "created_by");
      cleanup_free char *bys = xstrdup (by ? by : "");
      for (char *p = bys; *p; p++)
        if (*p == '\n' || *p == '\t')
          *p = ' ';
      if (!no_trunc && strlen (bys) > 45)
        {
          char *t45 = xasprintf ("%.44s…", bys);
          free (bys);
          bys = t45;
        }
      const char *comment = cimg_json_str (e, "comment");
      table_add (t, img_col, created, bys, size, comment ? comment : "");
    }
  if (!quiet)
    table_print (t, stdout);
  table_free (t);
  free (sizes);
  return 0;
}
