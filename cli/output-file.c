/* The OUTPUT of save and export: whole or not at all, so that a failed or killed command never
   leaves a truncated archive under the name the user asked for. */
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int
cli_output_open (struct cli_output *o, const char *path, cimg_error_t *err)
{
  memset (o, 0, sizeof *o);
  o->fd = 1;
  if (path == NULL || strcmp (path, "-") == 0)
    {
      /* Docker's words: an archive on a terminal is noise, and likely a mistake. */
      if (isatty (1))
        return cimg_error_set (err, EINVAL,
                               "cowardly refusing to save to a terminal. Use the "
                               "-o flag or redirect");
      return 0;
    }
  o->path = path;
  o->tmp = xasprintf ("%s.tmp-%d", path, (int)getpid ());
  o->fd = open (o->tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (o->fd < 0)
    {
      cimg_error_sys (err, "open %s", path);
      free (steal_pointer (&o->tmp));
      return -1;
    }
  return 0;
}

int
cli_output_commit (struct cli_output *o, cimg_error_t *err)
{
  if (o->tmp == NULL)
    return 0;
  if (fsync (o->fd) < 0 || rename (o->tmp, o->path) < 0)
    {
      cimg_error_sys (err, "write %s", o->path);
      cli_output_abort (o);
      return -1;
    }
  close (steal_fd (&o->fd));
  free (steal_pointer (&o->tmp));
  /* The rename is durable only once the directory that holds it is. */
  cleanup_free char *dir = xstrdup (o->path);
  char *slash = strrchr (dir, '/');
  if (slash)
    slash[slash == dir ? 1 : 0] = '\0';
  if (cimg_fsync_dir_at (AT_FDCWD, slash ? dir : ".") < 0)
    return cimg_error_sys (err, "fsync the directory of %s", o->path);
  return 0;
}

void
cli_output_abort (struct cli_output *o)
{
  if (o->tmp == NULL)
    return;
  close (steal_fd (&o->fd));
  unlink (o->tmp);
  free (steal_pointer (&o->tmp));
}

int
cli_output_args (struct cli *c, int argc, char **argv, int nargs, bool exact, struct cli_output *o)
{
  static const struct option longopts[] = { { "output", required_argument, NULL, 'o' }, { 0 } };
  const char *output = NULL;
  int r;
  while ((r = cli_getopt (c, argc, argv, "o:", longopts)) != -1)
    switch (r)
      {
      case 'o':
        output = optarg;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (exact ? argc - optind != nargs : argc - optind < nargs)
    return cli_usage_error (c, "\"%s\" requires %s %d argument%s.", c->prog,
                            exact ? "exactly" : "at least", nargs, nargs == 1 ? "" : "s");
  cimg_error_t err = { 0 };
  if (cli_output_open (o, output, &err) < 0)
    return cli_fail (&err);
  return CLI_CONTINUE;
}
