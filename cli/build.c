/* cimg build: flags → build/build-exec.h, and the Docker-like output around it. */
#include "build/build-exec.h"
#include "cli/cli.h"
#include "store/image.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

int
cmd_build (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "tag", required_argument, NULL, 't' },
                                            { "file", required_argument, NULL, 'f' },
                                            { "build-arg", required_argument, NULL, 'a' },
                                            { "target", required_argument, NULL, 'T' },
                                            { "no-cache", no_argument, NULL, 'n' },
                                            { "network", required_argument, NULL, 'N' },
                                            { "dry-run", no_argument, NULL, 'd' },
                                            { "quiet", no_argument, NULL, 'q' },
                                            { "pull", no_argument, NULL, 'p' },
                                            { "platform", required_argument, NULL, 'P' },
                                            { "secret", required_argument, NULL, 'S' },
                                            { "allow", required_argument, NULL, 'A' },
                                            { 0 } };
  cleanup_strv char **tags = NULL, **args = NULL, **secrets = NULL;
  const char *file = NULL, *target = NULL, *network = NULL, *platform = NULL;
  bool no_cache = false, dry = false, quiet = false, pull = false, insecure = false;
  int r;
  optind = 1;
  while ((r = cli_getopt (c, argc, argv, "t:f:q", longopts)) != -1)
    switch (r)
      {
      case 't':
        cimg_strv_append (&tags, optarg);
        break;
      case 'f':
        file = optarg;
        break;
      case 'a':
        if (strchr (optarg, '='))
          cimg_strv_append (&args, optarg);
        else if (getenv (optarg))
          {
            cleanup_free char *kv = xasprintf ("%s=%s", optarg, getenv (optarg));
            cimg_strv_append (&args, kv);
          }
        break;
      case 'T':
        target = optarg;
        break;
      case 'n':
        no_cache = true;
        break;
      case 'N':
        network = optarg;
        break;
      case 'd':
        dry = true;
        break;
      case 'q':
        quiet = true;
        break;
      case 'p':
        pull = true;
        break;
      case 'P':
        platform = optarg;
        break;
      case 'S':
        cimg_strv_append (&secrets, optarg);
        break;
      case 'A':
        /* BuildKit's entitlements: only security.insecure means something without a daemon
           (network.host is the default here already). */
        for (char *save = NULL, *cp = strdupa (optarg), *e = strtok_r (cp, ",", &save); e;
             e = strtok_r (NULL, ",", &save))
          if (strcmp (e, "security.insecure") == 0)
            insecure = true;
          else if (strcmp (e, "network.host") != 0)
            return cli_usage_error (
                c, "invalid entitlement \"%s\" (security.insecure, network.host)", e);
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (argc - optind != 1)
    return cli_usage_error (c, "\"%s\" requires exactly 1 argument.", c->prog);
  const char *context = argv[optind];
  if (network && strcmp (network, "host") && strcmp (network, "none")
      && strcmp (network, "default"))
    return cli_usage_error (c, "network mode \"%s\" not supported (none, host)", network);
  cimg_error_t err = { 0 };
  struct cimg_platform tp;
  if (platform && cimg_build_platform_parse (platform, &tp, &err) < 0)
    {
      cli_usage_error (c, "%s", err.msg);
      cimg_error_clear (&err);
      return EXIT_USAGE;
    }
  for (size_t i = 0; tags && tags[i]; i++)
    {
      cleanup_ref struct cimg_ref *ref = cimg_ref_parse_tag (tags[i], &err);
      if (ref == NULL)
        {
          cimg_error_wrap (&err, "--tag"); /* the message names the tag itself */
          return cli_fail (&err);
        }
    }
  cleanup_free char *dfpath = file ? xstrdup (file) : xasprintf ("%s/Dockerfile", context);

  if (dry)
    {
      cleanup_free char *text = NULL;
      size_t len;
      if (cimg_read_file_at (AT_FDCWD, dfpath, 16 << 20, &text, &len, &err) < 0)
        return cli_fail (&err);
      const char *slash = strrchr (dfpath, '/');
      cleanup_dockerfile struct cimg_dockerfile *df
          = cimg_build_parse (slash ? slash + 1 : dfpath, text, len, &err);
      if (df == NULL)
        return cli_fail (&err);
      for (size_t i = 0; df->warnings[i]; i++)
        fprintf (stderr, "[WARNING]: %s\n", df->warnings[i]);
      cleanup_free char *plan = NULL;
      cleanup_strv char **pargs = NULL;
      if (platform)
        {
          struct cimg_platform host;
          cimg_build_platform_host (&host);
          char **pa = cimg_build_platform_args (&host, &tp);
          for (size_t i = 0; pa[i]; i++)
            if (cimg_str_has_prefix (pa[i], "TARGET"))
              cimg_strv_append (&pargs, pa[i]);
          cimg_strv_free (pa);
        }
      for (size_t i = 0; args && args[i]; i++)
        cimg_strv_append (&pargs, args[i]);
      if (cimg_build_plan (df, pargs, target, &plan, &err) < 0)
        return cli_fail (&err);
      fputs (plan, stdout);
      return 0;
    }

  if (cimg_build_enter_mount_namespace (&err) < 0)
    return cli_fail (&err);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cleanup_close int devnull = -1;
  if (quiet)
    {
      devnull = open ("/dev/null", O_WRONLY | O_CLOEXEC);
      if (devnull < 0)
        {
          cimg_error_sys (&err, "/dev/null");
          return cli_fail (&err);
        }
    }
  struct cimg_build_opts o = {
    .context = context,
    .dockerfile = dfpath,
    .build_args = args,
    .target = target,
    .no_cache = no_cache,
    .pull = pull,
    .platform = platform,
    .secrets = secrets,
    .allow_insecure = insecure,
    .network_none = network && strcmp (network, "none") == 0,
    .out = quiet ? NULL : stdout,
    .run_output_fd = devnull,
  };
  char id[CIMG_DIGEST_BUFSIZE];
  int run_exit = 0;
  if (cimg_build_run (s, &o, id, &run_exit, &err) < 0)
    {
      cli_fail (&err);
      /* As Docker's legacy builder: a failed RUN's exit code is the build's. */
      return run_exit ? run_exit : EXIT_FAIL;
    }
  /* Every -t in one index update (store/image.h): all the tags or, killed, none. */
  cleanup_image_batch struct cimg_image_batch *tb = cimg_image_batch_new (s);
  for (size_t i = 0; tags && tags[i]; i++)
    if (cimg_image_batch_tag (tb, id, tags[i], &err) < 0)
      return cli_fail (&err);
  if (cimg_image_batch_commit (tb, &err) < 0)
    return cli_fail (&err);
  if (quiet)
    {
      printf ("%s\n", id);
      return 0;
    }
  printf ("Successfully built %.12s\n", cimg_digest_hex (id));
  for (size_t i = 0; tags && tags[i]; i++)
    {
      cleanup_ref struct cimg_ref *ref = cimg_ref_parse (tags[i], &err);
      cleanup_free char *full = ref ? cimg_ref_string (ref) : NULL;
      cleanup_free char *fam = full ? cimg_ref_familiar_string (full) : xstrdup (tags[i]);
      cimg_error_clear (&err);
      printf ("Successfully tagged %s\n", fam);
    }
  return 0;
}
