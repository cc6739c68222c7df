/* cli: argument parsing, output and exit codes. The only module that prints or exits. */
#ifndef CIMG_CLI_H
#define CIMG_CLI_H

#include <getopt.h>

#include "store/store.h"

/* Docker's exit codes: 1 when a command fails, 125 when cimg cannot even start it (bad flags,
   unknown command) — and, for run, when the error is cimg's own. */
#define EXIT_FAIL 1
#define EXIT_USAGE 125

struct cli
{
  const char *root;
  const char *prog; /* "cimg images", for messages */
};

struct cli_command
{
  const char *name;
  int (*fn) (struct cli *c, int argc, char **argv);
  const char *usage; /* first line: "cimg images [OPTIONS] [REPOSITORY[:TAG]]" */
  const char *help;  /* the options, one per line */
};

int cimg_cli_main (int argc, char **argv);

/* Print "cimg: <msg>" for err and return EXIT_FAIL. */
int cli_fail (cimg_error_t *err);
/* Print a usage error for the command and return EXIT_USAGE. */
int cli_usage_error (struct cli *c, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* Parse options with getopt_long; handles --help. Returns the getopt result (-1 at the end, '?'
   on error: the caller returns EXIT_USAGE), or 'h' when help was printed. */
int cli_getopt (struct cli *c, int argc, char **argv, const char *shortopts,
                const struct option *longopts);
void cli_print_help (struct cli *c);
/* Open the store named by --root / $CIMG_ROOT / /var/lib/cimg; prints the error itself. */
struct cimg_store *cli_open_store (struct cli *c);

struct cimg_container;
/* Does one command's work on one container. Returns 0 (done), -1 with err set (printed as
   "cimg: …"), or an exit code > 0 after printing its own message. */
typedef int (*cli_container_fn) (struct cimg_store *s, struct cimg_container *ctr, const char *name,
                                 void *data, cimg_error_t *err);
/* The loop of stop, kill, start, rm, wait…: every CONTAINER argument after optind (at least one)
   is looked up and handed to fn; a failure is reported and the others still go. With
   print_name, each one done is echoed (as Docker). Returns the command's exit code. */
int cli_each_container (struct cli *c, int argc, char **argv, bool print_name, cli_container_fn fn,
                        void *data);
/* cli/container-common.c. The start of a command on one container: with CLI_CTR_MOUNT_NS,
   enter a private mount namespace (for commands that mount the container's filesystem), open
   the store, find ref (ID, unique ID prefix or name). 0 with *s and *ctr set (the caller's),
   else the exit code after printing the error (*s and *ctr NULL). */
#define CLI_CTR_MOUNT_NS 0x1u
int cli_one_container (struct cli *c, const char *ref, unsigned flags, struct cimg_store **s,
                       struct cimg_container **ctr);
/* The value of a flag in seconds (stop -t …), as Docker: a whole number, 0 or more; with
   allow_forever also -1 (wait without limit). flag names it in the error ("-t, --time").
   0 with *out set, or EXIT_USAGE after printing the error. */
int cli_parse_seconds (struct cli *c, const char *flag, const char *value, bool allow_forever,
                       int64_t *out);

/* cli/output-file.c. The OUTPUT of save and export (-o), written whole or not at all: a temp
   file beside it, renamed over it once complete. A NULL or "-" path is stdout, refused when it
   is a terminal (as Docker: exit 1). Zero-initialise; open gives o->fd to write to and returns
   0, or -1 with err set. commit fsyncs and renames (the temp file is removed when that fails);
   abort removes the temp file, is a no-op after commit or for stdout, and frees o. */
struct cli_output
{
  const char *path; /* NULL: stdout */
  char *tmp;
  int fd;
};
int cli_output_open (struct cli_output *o, const char *path, cimg_error_t *err);
int cli_output_commit (struct cli_output *o, cimg_error_t *err);
void cli_output_abort (struct cli_output *o);
#define cleanup_cli_output __attribute__ ((cleanup (cli_output_abort)))
/* The start of save and export, whose one option is -o/--output FILE: parses the options,
   checks for nargs operands (at least nargs, or exactly with exact) and opens the output into o.
   CLI_CONTINUE when the command goes on (operands from optind); else the exit code to return:
   0 after --help, EXIT_USAGE or EXIT_FAIL after printing the error. */
#define CLI_CONTINUE (-1)
int cli_output_args (struct cli *c, int argc, char **argv, int nargs, bool exact,
                     struct cli_output *o);

/* A table printed as Docker's tabwriter (minwidth 10, padding 3) prints it. */
struct table;
struct table *table_new (size_t ncols);
void table_add (struct table *t, ...); /* ncols strings */
void table_print (struct table *t, FILE *out);
void table_free (struct table *t);

/* Commands. */
int cmd_images (struct cli *c, int argc, char **argv);
int cmd_tag (struct cli *c, int argc, char **argv);
int cmd_rmi (struct cli *c, int argc, char **argv);
int cmd_image_prune (struct cli *c, int argc, char **argv);
int cmd_inspect (struct cli *c, int argc, char **argv);
int cmd_history (struct cli *c, int argc, char **argv);
int cmd_system_df (struct cli *c, int argc, char **argv);
int cmd_system_check (struct cli *c, int argc, char **argv);
int cmd_system_prune (struct cli *c, int argc, char **argv);
int cmd_import (struct cli *c, int argc, char **argv);
int cmd_save (struct cli *c, int argc, char **argv);
int cmd_load (struct cli *c, int argc, char **argv);
/* cli/registry.c */
int cmd_pull (struct cli *c, int argc, char **argv);
int cmd_push (struct cli *c, int argc, char **argv);
int cmd_login (struct cli *c, int argc, char **argv);
int cmd_logout (struct cli *c, int argc, char **argv);
/* cli/run.c */
int cmd_run (struct cli *c, int argc, char **argv);
int cmd_ps (struct cli *c, int argc, char **argv);
int cmd_rm (struct cli *c, int argc, char **argv);
struct cimg_spec;
struct cimg_container;
/* The runtime spec of a container record; *storage holds what it points to (cli_spec_free). */
struct cimg_spec *cli_spec_from_record (struct cimg_store *s, struct cimg_container *c,
                                        void **storage);
void cli_spec_free (void *storage);
/* Start the container under a monitor (run -d, start); prints the ID with print_id. attach_fd:
   -1, or a socket that the monitor takes as its first attached client (start -a). Returns the
   exit code for cimg (0, 125, or 126/127 when the command could not be executed). */
int cli_start_detached (struct cimg_store *s, struct cimg_container *ctr, bool print_id,
                        int attach_fd);
/* cli/container.c */
int cmd_logs (struct cli *c, int argc, char **argv);
int cmd_wait (struct cli *c, int argc, char **argv);
int cmd_stop (struct cli *c, int argc, char **argv);
int cmd_kill (struct cli *c, int argc, char **argv);
int cmd_start (struct cli *c, int argc, char **argv);
int cmd_restart (struct cli *c, int argc, char **argv);
int cmd_container (struct cli *c, int argc, char **argv);
int cmd_exec (struct cli *c, int argc, char **argv);
/* inspect of containers, else of images (cmd_inspect) */
int cmd_inspect_any (struct cli *c, int argc, char **argv);
/* cli/container-attach.c: attach to a container's monitor on sock (cimg_monitor_attach): its
   output to stdout/stderr until the monitor hangs up; with send_stdin the caller's stdin to it
   (raw mode with tty and a terminal; ctrl-p ctrl-q detaches: *detached); with sig_proxy (not
   tty) the signals cimg gets go to pid; with tty the window size follows the caller's.
   0, or -1 with errno. */
int cli_attach_io (int sock, pid_t pid, bool tty, bool send_stdin, bool sig_proxy, bool *detached);
/* After cli_attach_io: the exit code the monitor recorded for the run of pid. */
int cli_attached_exit_code (struct cimg_store *s, struct cimg_container *ctr, pid_t pid);
int cmd_attach (struct cli *c, int argc, char **argv);
/* cli/container-stats.c */
int cmd_top (struct cli *c, int argc, char **argv);
int cmd_stats (struct cli *c, int argc, char **argv);
/* Kill the container's monitor (if any) and process, and wait until its state is recorded. */
int cli_container_kill_all (struct cimg_store *s, struct cimg_container *ctr);
/* cli/build.c */
int cmd_build (struct cli *c, int argc, char **argv);
/* cli/container-fs.c */
int cmd_diff (struct cli *c, int argc, char **argv);
int cmd_commit (struct cli *c, int argc, char **argv);
int cmd_export (struct cli *c, int argc, char **argv);
int cmd_cp (struct cli *c, int argc, char **argv);

#endif
