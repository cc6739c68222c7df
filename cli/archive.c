#include "build/change.h"
#include "cli/cli.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

int
cmd_import (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "change", required_argument, NULL, 'c' },
                                            { "message", required_argument, NULL, 'm' },
                                            { "platform", required_argument, NULL, 'p' },
                                            { 0 } };
  cleanup_strv char **changes = NULL;
  const char *message = NULL;
  int r;
  while ((r = cli_getopt (c, argc, argv, "c:m:", longopts)) != -1)
    switch (r)
      {
      case 'c':
        cimg_strv_append (&changes, optarg);
        break;
      case 'm':
        message = optarg;
        break;
      case 'p':
        if (strcmp (optarg, "linux") != 0 && !cimg_str_has_prefix (optarg, "linux/"))
          return cli_usage_error (c, "unsupported platform \"%s\"", optarg);
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (argc - optind < 1 || argc - optind > 2)
    return cli_usage_error (c, "\"%s\" requires at least 1 and at most 2 arguments.", c->prog);
  const char *file = argv[optind];
  const char *tag = optind + 1 < argc ? argv[optind + 1] : NULL;
  cimg_error_t err = { 0 };
  if (tag)
    {
      /* Refuse a bad name before reading a byte of a possibly large tarball. */
      cleanup_ref struct cimg_ref *ref = cimg_ref_parse_tag (tag, &err);
      if (ref == NULL)
        return cli_fail (&err);
    }
  /* The changes apply to an empty config, as Docker's import; the store adds PATH. */
  cleanup_json json_t *cc = json_object ();
  if (cimg_config_apply_changes (cc, changes, &err) < 0)
    {
      cimg_error_wrap (&err, "import %s", file);
      return cli_fail (&err);
    }
  cleanup_close int fd = strcmp (file, "-") == 0 ? dup (0) : open (file, O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    {
      cimg_error_sys (&err, "import %s", file);
      return cli_fail (&err);
    }
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  char id[CIMG_DIGEST_BUFSIZE];
  if (cimg_store_import (s, fd, tag, message, cc, id, &err) < 0)
    {
      cimg_error_wrap (&err, "import %s", file);
      return cli_fail (&err);
    }
  printf ("%s\n", id);
  return 0;
}

int
cmd_save (struct cli *c, int argc, char **argv)
{
  cleanup_cli_output struct cli_output out = { 0 };
  int r = cli_output_args (c, argc, argv, 1, false, &out);
  if (r != CLI_CONTINUE)
    return r;
  cimg_error_t err = { 0 };
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  if (cimg_store_save (s, argv + optind, out.fd, &err) < 0 || cli_output_commit (&out, &err) < 0)
    return cli_fail (&err);
  return 0;
}

int
cmd_load (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[]
      = { { "input", required_argument, NULL, 'i' }, { "quiet", no_argument, NULL, 'q' }, { 0 } };
  const char *input = NULL;
  bool quiet = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "i:q", longopts)) != -1)
    switch (r)
      {
      case 'i':
        input = optarg;
        break;
      case 'q':
        quiet = true;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (optind < argc)
    return cli_usage_error (c, "\"%s\" accepts no arguments.", c->prog);
  cimg_error_t err = { 0 };
  if (input == NULL && isatty (0))
    return cli_usage_error (c, "requested load from stdin, but stdin is empty");
  cleanup_close int fd = input ? open (input, O_RDONLY | O_CLOEXEC) : dup (0);
  if (fd < 0)
    {
      cimg_error_sys (&err, "load %s", input ? input : "-");
      return cli_fail (&err);
    }
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cleanup_strv char **report = NULL;
  if (cimg_store_load (s, fd, &report, &err) < 0)
    {
      cimg_error_wrap (&err, "load %s", input ? input : "-");
      return cli_fail (&err);
    }
  for (size_t i = 0; !quiet && report && report[i]; i++)
    printf ("%s\n", report[i]);
  return 0;
}
