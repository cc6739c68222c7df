#include "cli/cli.h"
#include "store/container.h"

#include <stdarg.h>
#include <string.h>

static const struct cli_command *current;

int
cli_fail (cimg_error_t *err)
{
  fprintf (stderr, "cimg: %s\n", err->msg ? err->msg : "unknown error");
  cimg_error_clear (err);
  return EXIT_FAIL;
}

int
cli_usage_error (struct cli *c, const char *fmt, ...)
{
  va_list ap;
  fprintf (stderr, "cimg: ");
  va_start (ap, fmt);
  vfprintf (stderr, fmt, ap);
  va_end (ap);
  fprintf (stderr, "\nSee '%s --help'.\n", c->prog);
  return EXIT_USAGE;
}

void
cli_print_help (struct cli *c)
{
  if (current == NULL)
    return;
  printf ("\nUsage:  %s\n", current->usage);
  if (current->help && *current->help)
    printf ("\n%s", current->help);
  (void)c;
}

int
cli_getopt (struct cli *c, int argc, char **argv, const char *shortopts,
            const struct option *longopts)
{
  /* Every command takes --help; it is appended here so no command has to list it. */
  size_t n = 0;
  while (longopts && longopts[n].name)
    n++;
  struct option all[n + 2];
  if (n)
    memcpy (all, longopts, n * sizeof *all);
  all[n] = (struct option){ "help", no_argument, NULL, 0x100 };
  all[n + 1] = (struct option){ 0 };
  cleanup_free char *so = xasprintf (":%s", shortopts);
  int r = getopt_long (argc, argv, so, all, NULL);
  if (r == 0x100)
    {
      cli_print_help (c);
      return 'h';
    }
  if (r == '?')
    {
      if (optopt)
        cli_usage_error (c, "unknown shorthand flag: '%c' in -%c", optopt, optopt);
      else
        cli_usage_error (c, "unknown flag: %s", argv[optind - 1]);
    }
  if (r == ':')
    {
      cli_usage_error (c, "flag needs an argument: %s", argv[optind - 1]);
      return '?';
    }
  return r;
}

struct cimg_store *
cli_open_store (struct cli *c)
{
  cimg_error_t err = { 0 };
  struct cimg_store *s = cimg_store_open (c->root, &err);
  if (s == NULL)
    cli_fail (&err);
  return s;
}

int
cli_each_container (struct cli *c, int argc, char **argv, bool print_name, cli_container_fn fn,
                    void *data)
{
  if (optind >= argc)
    return cli_usage_error (c, "\"%s\" requires at least 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  int rc = 0;
  for (int k = optind; k < argc; k++)
    {
      cimg_error_t err = { 0 };
      cleanup_container struct cimg_container *ctr = cimg_container_find (s, argv[k], &err);
      int r = ctr ? fn (s, ctr, argv[k], data, &err) : -1;
      if (r < 0)
        rc = cli_fail (&err);
      else if (r > 0)
        rc = r;
      else if (print_name)
        printf ("%s\n", argv[k]);
    }
  return rc;
}

static int
cmd_version (struct cli *c, int argc, char **argv)
{
  int o;
  while ((o = cli_getopt (c, argc, argv, "", NULL)) != -1)
    return o == 'h' ? 0 : EXIT_USAGE;
  printf ("cimg version %s\n", CIMG_VERSION);
  return 0;
}

static const struct cli_command image_commands[] = {
  { "ls", cmd_images, "cimg image ls [OPTIONS] [REPOSITORY[:TAG]]", NULL },
  { "rm", cmd_rmi, "cimg image rm [OPTIONS] IMAGE [IMAGE...]", NULL },
  { "prune", cmd_image_prune, "cimg image prune [OPTIONS]",
    "Remove unused images\n\nOptions:\n  -a, --all     Remove all unused images, not just "
    "dangling ones\n  -f, --force   Do not prompt for confirmation\n" },
  { "inspect", cmd_inspect, "cimg image inspect IMAGE [IMAGE...]", NULL },
  { "history", cmd_history, "cimg image history [OPTIONS] IMAGE", NULL },
  { "tag", cmd_tag, "cimg image tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]", NULL },
  { "import", cmd_import, "cimg image import [OPTIONS] file|- [REPOSITORY[:TAG]]", NULL },
  { "save", cmd_save, "cimg image save [OPTIONS] IMAGE [IMAGE...]", NULL },
  { "load", cmd_load, "cimg image load [OPTIONS]", NULL },
  { NULL, NULL, NULL, NULL },
};

static const struct cli_command system_commands[] = {
  { "df", cmd_system_df, "cimg system df", "Show the disk usage of images and containers\n" },
  { "check", cmd_system_check, "cimg system check [OPTIONS]",
    "Verify the store: blobs against their digests, layers and images against their records,\n"
    "tags against their images; list debris left by interrupted commands.\n"
    "Exits 1 when it finds a problem other than debris.\n\nOptions:\n"
    "      --repair   Remove debris, and what is broken (a broken image is removed with its "
    "tags)\n" },
  { "prune", cmd_system_prune, "cimg system prune [OPTIONS]",
    "Remove dangling images and everything no image uses\n\nOptions:\n  -a, --all     Remove "
    "all unused images, not just dangling ones\n  -f, --force   Do not prompt for "
    "confirmation\n" },
  { NULL, NULL, NULL, NULL },
};

static const struct cli_command top_commands[] = {
  { "build", cmd_build, "cimg build [OPTIONS] PATH",
    "Build an image from a Dockerfile\n\nOptions:\n"
    "      --allow list       Allow an extra privilege: security.insecure (RUN --security)\n"
    "      --build-arg list   Set build-time variables (K=V)\n"
    "      --dry-run          Print the parsed plan and run nothing\n"
    "  -f, --file string      Name of the Dockerfile (default: PATH/Dockerfile)\n"
    "      --network string   Networking mode for RUN: host (default) or none\n"
    "      --no-cache         Do not use cache when building the image\n"
    "      --platform string  Target platform (os/arch[/variant]): sets the TARGET* ARGs\n"
    "      --pull             Always pull the FROM images (missing ones are pulled anyway)\n"
    "  -q, --quiet            Suppress the build output and print image ID on success\n"
    "      --secret list      Secret for RUN --mount=type=secret (id=X,src=FILE or id=X,env=VAR)\n"
    "  -t, --tag list         Name and optionally a tag (name:tag)\n"
    "      --target string    Set the target build stage to build\n" },
  { "images", cmd_images, "cimg images [OPTIONS] [REPOSITORY[:TAG]]",
    "List images\n\nOptions:\n  -a, --all             Show all images (untagged ones too)\n"
    "      --digests         Show digests\n      --format string   \"json\": one JSON object "
    "per image\n      --no-trunc        Don't truncate output\n  -q, --quiet           Only "
    "show image IDs\n" },
  { "tag", cmd_tag, "cimg tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
    "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE\n" },
  { "rmi", cmd_rmi, "cimg rmi [OPTIONS] IMAGE [IMAGE...]",
    "Remove one or more images\n\nOptions:\n  -f, --force   Remove the image even if it has "
    "several tags; untag an image in use\n" },
  { "inspect", cmd_inspect_any, "cimg inspect [OPTIONS] NAME|ID [NAME|ID...]",
    "Return low-level information on containers or images, as JSON\n\nOptions:\n"
    "      --type string   container or image (default: a container of that name first)\n" },
  { "history", cmd_history, "cimg history [OPTIONS] IMAGE",
    "Show the history of an image\n\nOptions:\n      --no-trunc   Don't truncate output\n"
    "  -q, --quiet      Only show image IDs\n" },
  { "import", cmd_import, "cimg import [OPTIONS] file|- [REPOSITORY[:TAG]]",
    "Import the contents from a tarball (plain, gzip, zstd, xz, bzip2) to create a filesystem "
    "image\n\n"
    "Options:\n  -c, --change list      Apply Dockerfile instruction to the created image\n"
    "  -m, --message string   Set commit message for imported image\n" },
  { "save", cmd_save, "cimg save [OPTIONS] IMAGE [IMAGE...]",
    "Save one or more images to a tar archive (docker-archive and OCI layout in one)\n\n"
    "Options:\n  -o, --output string   Write to a file, instead of STDOUT\n" },
  { "load", cmd_load, "cimg load [OPTIONS]",
    "Load an image from a tar archive (docker-archive or OCI layout, plain or compressed)\n\n"
    "Options:\n  -i, --input string   Read from tar archive file, instead of STDIN\n"
    "  -q, --quiet          Suppress the load output\n" },
  { "pull", cmd_pull, "cimg pull [OPTIONS] NAME[:TAG|@DIGEST]",
    "Download an image from a registry\n\nOptions:\n"
    "      --max-concurrent-downloads int   Layers downloaded at once (default 3)\n"
    "      --platform string                os/arch[/variant] (default: this machine's)\n"
    "  -q, --quiet                          Print only the reference\n" },
  { "push", cmd_push, "cimg push [OPTIONS] NAME[:TAG] [DESTINATION]",
    "Upload an image to a registry\n\nOptions:\n"
    "      --max-concurrent-uploads int   Layers uploaded at once (default 5)\n"
    "  -q, --quiet                        Print only the digest\n" },
  { "login", cmd_login, "cimg login [OPTIONS] [SERVER]",
    "Log in to a registry (credentials are checked, then kept in ~/.docker/config.json)\n\n"
    "Options:\n  -p, --password string   Password\n      --password-stdin    Take the "
    "password from stdin\n  -u, --username string   Username\n" },
  { "logout", cmd_logout, "cimg logout [SERVER]", "Log out from a registry\n" },
  { "run", cmd_run, "cimg run [OPTIONS] IMAGE [COMMAND] [ARG...]",
    "Run a command in a new container\n\nOptions:\n"
    "      --blkio-weight uint16       Block IO (relative weight), between 10 and 1000\n"
    "      --cap-add list              Add Linux capabilities\n"
    "      --cap-drop list             Drop Linux capabilities\n"
    "      --cidfile string            Write the container ID to the file\n"
    "      --cpu-period int            CPU CFS period (microseconds)\n"
    "      --cpu-quota int             CPU CFS quota (microseconds)\n"
    "  -c, --cpu-shares int            CPU shares (relative weight)\n"
    "      --cpus decimal              Number of CPUs\n"
    "      --cpuset-cpus string        CPUs in which to allow execution (0-3, 0,1)\n"
    "      --cpuset-mems string        MEMs in which to allow execution (0-3, 0,1)\n"
    "      --device list               Add a host device (HOST[:CTR[:PERMS]])\n"
    "      --device-read-bps list      Limit read rate (bytes per second) from a device\n"
    "      --device-read-iops list     Limit read rate (IO per second) from a device\n"
    "      --device-write-bps list     Limit write rate (bytes per second) to a device\n"
    "      --device-write-iops list    Limit write rate (IO per second) to a device\n"
    "      --entrypoint string         Overwrite the default ENTRYPOINT of the image\n"
    "  -e, --env list                  Set environment variables\n"
    "      --env-file list             Read in a file of environment variables\n"
    "      --group-add list            Add additional groups to join\n"
    "  -h, --hostname string           Container host name\n"
    "  -i, --interactive               Keep STDIN open\n"
    "      --kernel-memory bytes       Accepted and ignored (deprecated)\n"
    "  -m, --memory bytes              Memory limit\n"
    "      --memory-reservation bytes  Memory soft limit\n"
    "      --memory-swap bytes         Memory + swap limit (-1: unlimited swap)\n"
    "      --memory-swappiness int     Tune container memory swappiness (0 to 100)\n"
    "      --name string               Assign a name to the container\n"
    "      --network string            none, host, or default (own namespace, lo up)\n"
    "      --oom-kill-disable          Disable OOM Killer\n"
    "      --pids-limit int            Tune container pids limit (-1 for unlimited)\n"
    "      --privileged                Give extended privileges to this container\n"
    "      --read-only                 Mount the container's root filesystem as read only\n"
    "      --rm                        Automatically remove the container when it exits\n"
    "      --security-opt list         no-new-privileges, seccomp=unconfined, seccomp=FILE.json\n"
    "      --shm-size bytes            Size of /dev/shm (default 64m)\n"
    "  -t, --tty                       Allocate a pseudo-TTY\n"
    "      --tmpfs list                Mount a tmpfs directory (PATH[:OPTIONS])\n"
    "      --ulimit ulimit             Ulimit options (NAME=SOFT[:HARD])\n"
    "  -u, --user string               Username or UID (format: <name|uid>[:<group|gid>])\n"
    "  -v, --volume list               Bind mount a host path (HOST:CTR[:ro])\n"
    "  -w, --workdir string            Working directory inside the container\n" },
  { "ps", cmd_ps, "cimg ps [OPTIONS]",
    "List containers\n\nOptions:\n  -a, --all        Show all containers (default shows just "
    "running)\n      --no-trunc   Don't truncate output\n  -q, --quiet      Only display "
    "container IDs\n" },
  { "rm", cmd_rm, "cimg rm [OPTIONS] CONTAINER [CONTAINER...]",
    "Remove one or more containers\n\nOptions:\n  -f, --force   Force the removal of a "
    "running container (uses SIGKILL)\n" },
  { "logs", cmd_logs, "cimg logs [OPTIONS] CONTAINER",
    "Fetch the logs of a container\n\nOptions:\n  -f, --follow       Follow log output\n"
    "  -n, --tail string  Number of lines to show from the end of the logs (default \"all\")\n"
    "      --since string Show logs since timestamp (2013-01-02T13:23:37Z) or relative (42m)\n"
    "  -t, --timestamps   Show timestamps\n"
    "      --until string Show logs before a timestamp or relative (42m)\n" },
  { "wait", cmd_wait, "cimg wait CONTAINER [CONTAINER...]",
    "Block until one or more containers stop, then print their exit codes\n" },
  { "stop", cmd_stop, "cimg stop [OPTIONS] CONTAINER [CONTAINER...]",
    "Stop one or more running containers\n\nOptions:\n  -s, --signal string   Signal to "
    "send (default: the image's StopSignal, else SIGTERM)\n  -t, --time int        Seconds to "
    "wait before killing it (default 10)\n" },
  { "kill", cmd_kill, "cimg kill [OPTIONS] CONTAINER [CONTAINER...]",
    "Kill one or more running containers\n\nOptions:\n  -s, --signal string   Signal to "
    "send to the container (default \"KILL\")\n" },
  { "start", cmd_start, "cimg start [OPTIONS] CONTAINER [CONTAINER...]",
    "Start one or more stopped containers\n\nOptions:\n  -a, --attach        Attach STDOUT/STDERR "
    "and forward signals\n  -i, --interactive   Attach container's STDIN\n" },
  { "attach", cmd_attach, "cimg attach [OPTIONS] CONTAINER",
    "Attach local standard input, output, and error streams to a running container\n\n"
    "Options:\n      --no-stdin    Do not attach STDIN\n      --sig-proxy   Proxy all received "
    "signals to the process (default true)\n" },
  { "top", cmd_top, "cimg top CONTAINER [ps OPTIONS]",
    "Display the running processes of a container\n" },
  { "stats", cmd_stats, "cimg stats [OPTIONS] [CONTAINER...]",
    "Display a live stream of container(s) resource usage statistics\n\nOptions:\n"
    "  -a, --all         Show all containers (default shows just running)\n"
    "      --format      \"json\": one JSON object per container\n"
    "      --no-stream   Disable streaming stats and only pull the first result\n"
    "      --no-trunc    Do not truncate output\n" },
  { "diff", cmd_diff, "cimg diff CONTAINER",
    "Inspect changes to files or directories on a container's filesystem\n" },
  { "commit", cmd_commit, "cimg commit [OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
    "Create a new image from a container's changes\n\nOptions:\n"
    "  -a, --author string    Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")\n"
    "  -c, --change list      Apply Dockerfile instruction to the created image\n"
    "  -m, --message string   Commit message\n"
    "  -p, --pause            Pause container during commit (default true)\n" },
  { "export", cmd_export, "cimg export [OPTIONS] CONTAINER",
    "Export a container's filesystem as a tar archive\n\nOptions:\n"
    "  -o, --output string   Write to a file, instead of STDOUT\n" },
  { "cp", cmd_cp,
    "cimg cp [OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n"
    "        cimg cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
    "Copy files/folders between a container and the local filesystem\n\n"
    "Use '-' as the source to read a tar archive from stdin and extract it to a directory\n"
    "destination in a container. Use '-' as the destination to stream a tar archive of a\n"
    "container source to stdout.\n\nOptions:\n"
    "  -a, --archive       Archive mode (copy all uid/gid information)\n"
    "  -L, --follow-link   Always follow symbol link in SRC_PATH\n"
    "  -q, --quiet         Accepted for Docker compatibility\n" },
  { "restart", cmd_restart, "cimg restart [OPTIONS] CONTAINER [CONTAINER...]",
    "Restart one or more containers\n\nOptions:\n  -t, --time int   Seconds to wait before "
    "killing it (default 10)\n" },
  { "exec", cmd_exec, "cimg exec [OPTIONS] CONTAINER COMMAND [ARG...]",
    "Execute a command in a running container\n\nOptions:\n  -d, --detach         Run the "
    "command in the background\n  -e, --env list       Set environment variables\n"
    "  -i, --interactive    Keep STDIN open\n  -t, --tty            Allocate a pseudo-TTY\n"
    "  -u, --user string    Username or UID "
    "(<name|uid>[:<gid>])\n  -w, --workdir string Working directory inside the container\n" },
  { "container", cmd_container, "cimg container COMMAND",
    "Manage containers (prune, ls, rm, logs, start, stop, …)\n" },
  { "version", cmd_version, "cimg version", "Show the cimg version\n" },
  { NULL, NULL, NULL, NULL },
};

static const struct cli_command *
find (const struct cli_command *table, const char *name)
{
  for (size_t i = 0; table[i].name; i++)
    if (strcmp (table[i].name, name) == 0)
      return &table[i];
  return NULL;
}

static void
main_usage (FILE *out)
{
  fprintf (out, "\nUsage:  cimg [OPTIONS] COMMAND\n\nA daemonless container image tool\n\n"
                "Options:\n      --root string   Store directory (default $CIMG_ROOT or "
                "/var/lib/cimg)\n  -v, --version       Print version information and quit\n\n"
                "Management Commands:\n  image       Manage images\n  system      Manage "
                "the store\n\nCommands:\n");
  for (size_t i = 0; top_commands[i].name; i++)
    {
      const char *h = top_commands[i].help;
      const char *nl = strchr (h, '\n');
      fprintf (out, "  %-10s  %.*s\n", top_commands[i].name, (int)(nl ? nl - h : 0), h);
    }
  fprintf (out, "\nRun 'cimg COMMAND --help' for more information on a command.\n");
}

static void
group_usage (const char *group, const struct cli_command *table, FILE *out)
{
  fprintf (out, "\nUsage:  cimg %s COMMAND\n\nCommands:\n", group);
  for (size_t i = 0; table[i].name; i++)
    fprintf (out, "  %s\n", table[i].usage);
}

static int
run (struct cli *c, const struct cli_command *cmd, int argc, char **argv)
{
  current = cmd;
  /* Help text of an alias (image ls) is that of its main command (images). */
  if (cmd->help == NULL)
    for (size_t i = 0; top_commands[i].name; i++)
      if (top_commands[i].fn == cmd->fn)
        {
          static struct cli_command alias;
          alias = top_commands[i];
          alias.usage = cmd->usage;
          current = &alias;
        }
  /* "cimg image ls [OPTIONS] …" -> "cimg image ls", for "See 'cimg image ls --help'". */
  const char *end = cmd->usage + strlen (cmd->usage);
  for (const char *q = cmd->usage; *q; q++)
    if (q[0] == ' ' && (q[1] == '[' || (q[1] >= 'A' && q[1] <= 'Z')))
      {
        end = q;
        break;
      }
  cleanup_free char *prog = xstrndup (cmd->usage, (size_t)(end - cmd->usage));
  c->prog = prog;
  optind = 1;
  opterr = 0;
  return cmd->fn (c, argc, argv);
}

int
cimg_cli_main (int argc, char **argv)
{
  struct cli c = { 0 };
  c.root = getenv ("CIMG_ROOT");
  if (c.root == NULL || *c.root == '\0')
    c.root = "/var/lib/cimg";
  int i = 1;
  for (; i < argc && argv[i][0] == '-'; i++)
    {
      const char *a = argv[i];
      if (strcmp (a, "--root") == 0 && i + 1 < argc)
        c.root = argv[++i];
      else if (cimg_str_has_prefix (a, "--root="))
        c.root = a + 7;
      else if (strcmp (a, "--help") == 0 || strcmp (a, "-h") == 0)
        {
          main_usage (stdout);
          return 0;
        }
      else if (strcmp (a, "--version") == 0 || strcmp (a, "-v") == 0)
        {
          printf ("cimg version %s\n", CIMG_VERSION);
          return 0;
        }
      else
        {
          fprintf (stderr, "cimg: unknown flag: %s\nSee 'cimg --help'.\n", a);
          return EXIT_USAGE;
        }
    }
  if (i >= argc)
    {
      main_usage (stderr);
      return EXIT_USAGE;
    }
  const char *name = argv[i];
  const struct cli_command *group = NULL;
  const char *gname = NULL;
  if (strcmp (name, "image") == 0)
    group = image_commands, gname = "image";
  else if (strcmp (name, "system") == 0)
    group = system_commands, gname = "system";
  if (group)
    {
      if (i + 1 >= argc || strcmp (argv[i + 1], "--help") == 0)
        {
          group_usage (gname, group, i + 1 >= argc ? stderr : stdout);
          return i + 1 >= argc ? EXIT_USAGE : 0;
        }
      const struct cli_command *cmd = find (group, argv[i + 1]);
      if (cmd == NULL)
        {
          fprintf (stderr, "cimg: '%s %s' is not a cimg command.\nSee 'cimg %s --help'.\n", gname,
                   argv[i + 1], gname);
          return EXIT_USAGE;
        }
      return run (&c, cmd, argc - i - 1, argv + i + 1);
    }
  const struct cli_command *cmd = find (top_commands, name);
  if (cmd == NULL)
    {
      fprintf (stderr, "cimg: '%s' is not a cimg command.\nSee 'cimg --help'.\n", name);
      return EXIT_USAGE;
    }
  return run (&c, cmd, argc - i, argv + i);
}
