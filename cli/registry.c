/* cimg pull, push, login, logout. */
#include "cli/cli.h"
#include "registry/registry.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <termios.h>

/* --max-concurrent-downloads and -uploads: 1 to 64. */
static int
parse_concurrency (struct cli *c, const char *flag, const char *arg, int *out)
{
  char *end;
  errno = 0;
  long v = strtol (arg, &end, 10);
  if (errno || *end || end == arg || v < 1 || v > 64)
    {
      cli_usage_error (c, "invalid %s \"%s\": 1 to 64", flag, arg);
      return -1;
    }
  *out = (int)v;
  return 0;
}

/* As Docker: a name without a tag or digest is told which tag it stands for. */
static void
say_default_tag (const char *refstr)
{
  cimg_error_t err = { 0 };
  cleanup_ref struct cimg_ref *r = cimg_ref_parse_name (refstr, &err);
  cimg_error_clear (&err);
  if (r && r->tag == NULL && r->digest == NULL)
    printf ("Using default tag: latest\n");
}

int
cmd_pull (struct cli *c, int argc, char **argv)
{
  enum
  {
    OPT_MAX = 0x200,
    OPT_PLATFORM,
  };
  static const struct option longopts[]
      = { { "max-concurrent-downloads", required_argument, NULL, OPT_MAX },
          { "platform", required_argument, NULL, OPT_PLATFORM },
          { "quiet", no_argument, NULL, 'q' },
          { 0 } };
  struct cimg_pull_opts o = { 0 };
  bool quiet = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "q", longopts)) != -1)
    switch (r)
      {
      case OPT_MAX:
        if (parse_concurrency (c, "--max-concurrent-downloads", optarg, &o.max_concurrent) < 0)
          return EXIT_USAGE;
        break;
      case OPT_PLATFORM:
        o.platform = optarg;
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
  if (!quiet)
    say_default_tag (argv[optind]);
  o.progress = cimg_progress_new (stdout, quiet);
  struct cimg_pull_result res;
  cimg_error_t err = { 0 };
  int rc = cimg_registry_pull (s, argv[optind], &o, &res, &err);
  cimg_progress_free (o.progress);
  if (rc < 0)
    return cli_fail (&err);
  if (!quiet)
    {
      cleanup_free char *fam = cimg_ref_familiar_string (res.name);
      printf ("Digest: %s\n", res.digest);
      if (res.downloaded)
        printf ("Status: Downloaded newer image for %s\n", fam);
      else
        printf ("Status: Image is up to date for %s\n", fam);
    }
  printf ("%s\n", res.name);
  cimg_pull_result_clear (&res);
  return 0;
}

int
cmd_push (struct cli *c, int argc, char **argv)
{
  enum
  {
    OPT_MAX = 0x200,
  };
  static const struct option longopts[]
      = { { "max-concurrent-uploads", required_argument, NULL, OPT_MAX },
          { "quiet", no_argument, NULL, 'q' },
          { 0 } };
  bool quiet = false;
  int max = 0;
  int r;
  while ((r = cli_getopt (c, argc, argv, "q", longopts)) != -1)
    switch (r)
      {
      case OPT_MAX:
        if (parse_concurrency (c, "--max-concurrent-uploads", optarg, &max) < 0)
          return EXIT_USAGE;
        break;
      case 'q':
        quiet = true;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  int n = argc - optind;
  if (n < 1 || n > 2)
    return cli_usage_error (c, "\"%s\" requires 1 or 2 arguments.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  const char *dst = n == 2 ? argv[optind + 1] : argv[optind];
  cimg_error_t err = { 0 };
  cleanup_ref struct cimg_ref *ref = cimg_ref_parse (dst, &err);
  if (ref == NULL)
    return cli_fail (&err);
  if (!quiet)
    {
      say_default_tag (dst);
      printf ("The push refers to repository [%s/%s]\n", ref->domain, ref->path);
    }
  struct cimg_progress *p = cimg_progress_new (stdout, quiet);
  char digest[CIMG_DIGEST_BUFSIZE];
  int rc = cimg_registry_push (s, argv[optind], n == 2 ? dst : NULL, max, p, digest, &err);
  cimg_progress_free (p);
  if (rc < 0)
    return cli_fail (&err);
  if (quiet)
    printf ("%s\n", digest);
  else
    printf ("%s: digest: %s size: %" PRId64 "\n", ref->tag ? ref->tag : "latest", digest,
            cimg_store_blob_size (s, digest));
  return 0;
}

/* The password from stdin: one line, without its newline. */
static char *
read_password_stdin (void)
{
  size_t cap = 0;
  char *line = NULL;
  ssize_t n = getline (&line, &cap, stdin);
  if (n < 0)
    {
      free (line);
      return NULL;
    }
  while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
    line[--n] = '\0';
  return line;
}

int
cmd_login (struct cli *c, int argc, char **argv)
{
  enum
  {
    OPT_STDIN = 0x200
  };
  static const struct option longopts[] = { { "username", required_argument, NULL, 'u' },
                                            { "password", required_argument, NULL, 'p' },
                                            { "password-stdin", no_argument, NULL, OPT_STDIN },
                                            { 0 } };
  const char *user = NULL, *pass = NULL;
  bool from_stdin = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "u:p:", longopts)) != -1)
    switch (r)
      {
      case 'u':
        user = optarg;
        break;
      case 'p':
        pass = optarg;
        break;
      case OPT_STDIN:
        from_stdin = true;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (argc - optind > 1)
    return cli_usage_error (c, "\"%s\" requires at most 1 argument.", c->prog);
  if (from_stdin && pass)
    return cli_usage_error (c, "--password and --password-stdin are mutually exclusive");
  if (from_stdin && user == NULL)
    return cli_usage_error (c, "Must provide --username with --password-stdin");
  cleanup_free char *server = cimg_registry_server_name (argc > optind ? argv[optind] : NULL);
  cleanup_free char *pw = NULL;
  cimg_error_t err = { 0 };
  if (from_stdin)
    {
      pw = read_password_stdin ();
      if (pw == NULL || *pw == '\0')
        {
          cimg_error_set (&err, EINVAL, "login %s: no password on stdin", server);
          return cli_fail (&err);
        }
      pass = pw;
    }
  if (pass)
    fprintf (stderr, "WARNING! Using --password via the CLI is insecure. Use --password-stdin.\n");
  if (user == NULL || pass == NULL)
    {
      /* No prompt without a terminal; with the credentials already stored, check them. */
      cleanup_free char *su = NULL, *sp = NULL;
      if (cimg_registry_credentials (server, &su, &sp, &err) < 0)
        return cli_fail (&err);
      if (su == NULL || (user && strcmp (user, su) != 0))
        {
          cimg_error_set (&err, EINVAL,
                          "login %s: give the credentials with -u USER and -p PASSWORD or "
                          "--password-stdin",
                          server);
          return cli_fail (&err);
        }
      if (cimg_registry_login (server, su, sp, &err) < 0)
        return cli_fail (&err);
    }
  else if (cimg_registry_login (server, user, pass, &err) < 0)
    return cli_fail (&err);
  printf ("Login Succeeded\n");
  return 0;
}

int
cmd_logout (struct cli *c, int argc, char **argv)
{
  int r;
  while ((r = cli_getopt (c, argc, argv, "", NULL)) != -1)
    return r == 'h' ? 0 : EXIT_USAGE;
  if (argc - optind > 1)
    return cli_usage_error (c, "\"%s\" requires at most 1 argument.", c->prog);
  cleanup_free char *server = cimg_registry_server_name (argc > optind ? argv[optind] : NULL);
  cimg_error_t err = { 0 };
  bool found = false;
  if (cimg_registry_logout (server, &found, &err) < 0)
    {
      cimg_error_wrap (&err, "logout %s", server);
      return cli_fail (&err);
    }
  if (found)
    printf ("Removing login credentials for %s\n", server);
  else
    printf ("Not logged in to %s\n", server);
  return 0;
}
