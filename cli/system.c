#include "cli/cli.h"

#include <string.h>

static void
pct (int64_t part, int64_t whole, char *out, size_t n)
{
  char sz[32];
  cimg_human_size (part, sz, sizeof sz);
  if (whole > 0)
    snprintf (out, n, "%s (%d%%)", sz, (int)(100 * part / whole));
  else
    snprintf (out, n, "%s", sz);
}

int
cmd_system_df (struct cli *c, int argc, char **argv)
{
  int r;
  while ((r = cli_getopt (c, argc, argv, "", NULL)) != -1)
    return r == 'h' ? 0 : EXIT_USAGE;
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  struct cimg_df df;
  if (cimg_store_df (s, &df, &err) < 0)
    return cli_fail (&err);
  char a[16], b[16], sz[32], rec[48], ca[16], cb[16], csz[32], crec[48];
  snprintf (a, sizeof a, "%zu", df.images);
  snprintf (b, sizeof b, "%zu", df.images_active);
  cimg_human_size (df.images_size, sz, sizeof sz);
  pct (df.images_reclaimable, df.images_size, rec, sizeof rec);
  snprintf (ca, sizeof ca, "%zu", df.containers);
  snprintf (cb, sizeof cb, "%zu", df.containers_active);
  cimg_human_size (df.containers_size, csz, sizeof csz);
  pct (df.containers_reclaimable, df.containers_size, crec, sizeof crec);
  struct table *t = table_new (5);
  table_add (t, "TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE");
  table_add (t, "Images", a, b, sz, rec);
  table_add (t, "Containers", ca, cb, csz, crec);
  table_add (t, "Local Volumes", "0", "0", "0B", "0B");
  table_add (t, "Build Cache", "0", "0", "0B", "0B");
  table_print (t, stdout);
  table_free (t);
  return 0;
}

int
cmd_system_check (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "repair", no_argument, NULL, 'r' }, { 0 } };
  bool repair = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "", longopts)) != -1)
    switch (r)
      {
      case 'r':
        repair = true;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (optind < argc)
    return cli_usage_error (c, "\"%s\" accepts no arguments.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  struct cimg_check_problem *v = NULL;
  size_t n = 0;
  if (cimg_store_check (s, repair, &v, &n, &err) < 0)
    return cli_fail (&err);
  size_t serious = 0;
  for (size_t i = 0; i < n; i++)
    {
      printf ("%s%s: %s\n", repair ? "removed " : "", v[i].debris ? "debris" : "problem",
              v[i].what);
      serious += !v[i].debris;
    }
  if (n == 0)
    printf ("store is consistent\n");
  else if (!repair)
    printf ("%zu problem(s), %zu of them debris; 'cimg system check --repair' removes them\n", n,
            n - serious);
  cimg_check_problems_free (v, n);
  /* After a repair what was found is gone; without one, only debris is harmless. */
  return !repair && serious ? EXIT_FAIL : 0;
}
