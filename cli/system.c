#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "runtime/confine.h"

/* A cgroup that no container of this store owns and that is not provably a dead build's step
   is reported only once it is this old: until then it may be another store's container between
   the mkdir of its cgroup and its first process (docs/store.md, "Leftover cgroups and mounts"). */
#define FOREIGN_CGROUP_MIN_AGE_S (60 * 60)

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
  /* One exclusive hold for the store and the cgroups: no build or foreground run of this store
     is running meanwhile, so every RUN step it noted belongs to a build that is gone. */
  if (cimg_store_lock (s, CIMG_LOCK_EXCLUSIVE, &err) < 0)
    return cli_fail (&err);
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
  cimg_check_problems_free (v, n);

  /* Leftover cgroups (runtime/cgroup.c) and the notes of dead RUN steps. */
  cleanup_strv char **ctrs = cimg_store_container_ids (s);
  cleanup_strv char **steps = cimg_store_noted_steps (s);
  struct cimg_cgroup_leftover *lo = NULL;
  size_t nlo = 0, survived = 0;
  if (cimg_cgroup_sweep (ctrs, steps, FOREIGN_CGROUP_MIN_AGE_S, repair, &lo, &nlo, &err) < 0)
    {
      fflush (stdout);
      return cli_fail (&err);
    }
  time_t now = time (NULL);
  for (size_t i = 0; i < nlo; i++)
    {
      struct cimg_cgroup_leftover *l = &lo[i];
      bool gone = repair && l->removed;
      char why[160];
      if (l->dead_build)
        snprintf (why, sizeof why, "the RUN step of a build that was killed%s",
                  l->killed ? " (its processes killed)"
                  : l->live ? " (processes still in it: --repair kills them)"
                            : ", no process left");
      else
        snprintf (why, sizeof why, "no container of this store, no process, made %lld min ago",
                  (long long)(now - l->created) / 60);
      if (!l->dead_build)
        {
          /* Nothing proves it is this store's: a note on stderr, so that another store's (or a
             deleted store's) leftover never makes this store's check unclean. */
          if (repair && !gone)
            fprintf (stderr,
                     "note: cgroup cimg/%s: %s, but a process joined it since: left alone\n", l->id,
                     why);
          else
            fprintf (stderr, "note: %scgroup cimg/%s: %s%s\n", gone ? "removed " : "", l->id, why,
                     gone ? "" : " (not provably this store's; --repair removes it)");
          continue;
        }
      if (repair && !gone)
        {
          printf ("problem: cgroup cimg/%s: %s: processes survived SIGKILL\n", l->id, why);
          serious++;
          survived++;
        }
      else
        printf ("%sdebris: cgroup cimg/%s: %s\n", gone ? "removed " : "", l->id, why);
      n++;
      if (gone && l->dead_build)
        cimg_store_forget_step (s, l->id);
    }
  /* A note whose cgroup is not there: the build was killed before the cgroup was made or after
     it was removed. */
  for (size_t i = 0; steps && steps[i]; i++)
    {
      bool found = false;
      for (size_t k = 0; k < nlo && !found; k++)
        found = strcmp (lo[k].id, steps[i]) == 0;
      if (found)
        continue;
      printf ("%sdebris: run-steps/%s: a RUN step of a build that was killed (no cgroup left)\n",
              repair ? "removed " : "", steps[i]);
      n++;
      if (repair)
        cimg_store_forget_step (s, steps[i]);
    }
  cimg_cgroup_leftovers_free (lo, nlo);

  if (n == 0)
    printf ("store is consistent\n");
  else if (!repair)
    printf ("%zu problem(s), %zu of them debris; 'cimg system check --repair' removes them\n", n,
            n - serious);
  /* After a repair what was found is gone; without one, only debris is harmless. */
  return (!repair && serious) || survived ? EXIT_FAIL : 0;
}
