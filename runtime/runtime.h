/* runtime: spawn one container from a resolved spec. Knows nothing of images, Dockerfiles or
   command-line flags: cli (run) and build (RUN) both produce a struct cimg_spec. See
   docs/runtime.md for the spawn sequence. */
#ifndef CIMG_RUNTIME_H
#define CIMG_RUNTIME_H

#include <stdbool.h>
#include <sys/types.h>

#include "runtime/confine.h"
#include "util/util.h"

enum cimg_netmode
{
  CIMG_NET_PRIVATE = 0, /* a new network namespace with only lo, up (default, and "none") */
  CIMG_NET_HOST = 1,    /* the caller's network namespace */
};

/* An extra mount, made inside the rootfs before pivot_root. destination is a path inside the
   container (resolved in the rootfs: symlinks in the image cannot lead out of it); it is created
   (as a file when source is not a directory) if missing. */
struct cimg_spec_mount
{
  const char *source;      /* host path (bind; relative: to the spec's root_dirfd) or the
                              fs source ("tmpfs") */
  const char *destination; /* absolute path in the container */
  const char *type;        /* NULL: bind mount */
  unsigned long flags;     /* MS_RDONLY, MS_NOSUID, … */
  const char *data;        /* fs options (tmpfs: "size=…,mode=…") */
};

/* A device node made in the container (--device) and allowed in its device cgroup. */
struct cimg_spec_device
{
  const char *path; /* absolute, in the container */
  char type;        /* 'c' or 'b' */
  unsigned major, minor;
  mode_t mode;        /* permission bits of the node */
  const char *access; /* "rwm" or a subset */
};

/* setrlimit(resource, {soft, hard}) in the container (--ulimit). */
struct cimg_spec_rlimit
{
  int resource; /* RLIMIT_NOFILE, … */
  unsigned long long soft, hard;
};

struct cimg_spec_process
{
  char *const *args; /* argv; args[0] is looked up in PATH from env when it has no '/' */
  char *const *env;  /* "K=V" */
  const char *cwd;   /* absolute; created in the rootfs if missing, as Docker does */
  uid_t uid;
  gid_t gid;
  const gid_t *groups; /* supplementary groups */
  size_t n_groups;
  bool tty;                  /* a pty of the container's own devpts as controlling terminal */
  bool stdin_open;           /* -i: the caller's stdin (or pty input); else /dev/null */
  unsigned short rows, cols; /* initial window size with tty (0: take the caller's) */
  const struct cimg_spec_rlimit *rlimits;
  size_t n_rlimits;
};

struct cimg_spec
{
  const char *id; /* 64 hex: names the cgroup */

  /* The rootfs: either an overlay of lowers (paths relative to root_dirfd, top-most first,
     "l/<26 chars>" short links so that 120+ layers fit in one mount option page) with upper,
     work and merged (relative to root_dirfd too), or rootfs (an existing directory, relative
     to root_dirfd or absolute, used as is, when lowers is NULL). */
  int root_dirfd;
  char *const *lowers;
  const char *upper, *work, *merged;
  const char *rootfs;
  bool readonly_rootfs;
  /* The write layer is thrown away after the run (--rm): overlay's "volatile" skips the sync
     of the upper dir's filesystem when the overlay goes (most of a short run's teardown). */
  bool volatile_rootfs;

  const char *hostname;
  enum cimg_netmode network;

  const struct cimg_spec_mount *mounts; /* after the standard ones (e.g. /etc/hosts binds) */
  size_t n_mounts;

  const struct cimg_spec_device *devices;
  size_t n_devices;

  struct cimg_spec_process process;

  struct cimg_limits limits;
  char *const *caps;           /* capabilities kept (bounding, permitted, effective, inheritable) */
  bool seccomp;                /* Docker's default profile, or seccomp_profile when set */
  const char *seccomp_profile; /* a seccomp profile's JSON text (--security-opt seccomp=FILE) */
  bool no_new_privileges;
  int64_t shm_size;            /* bytes of /dev/shm; 0: 64 MiB */
  char *const *masked_paths;   /* NULL: Docker's; privileged: pass an empty vector */
  char *const *readonly_paths; /* NULL: Docker's */
  bool privileged;             /* /sys read-write; no masked/read-only paths */
};

/* Docker's masked and read-only paths (static vectors, NULL-terminated). */
extern char *const cimg_default_masked_paths[];
extern char *const cimg_default_readonly_paths[];

struct cimg_run_result
{
  int status;      /* wait status of the container's process (WIFEXITED, WIFSIGNALED …) */
  bool oom_killed; /* the memory cgroup's OOM killer fired */
  /* When the command could not be executed (not found, not executable): 127 or 126 and
     a message ("exec: \"x\": executable file not found in $PATH"); 0 otherwise. */
  int exec_error;
  char *exec_message;
};
void cimg_run_result_clear (struct cimg_run_result *r);

struct cimg_run_hooks
{
  /* Called in the parent once the command has been executed (pid in the caller's PID
     namespace; cgroup_dirs: the container's cgroup directories, one per hierarchy, for its
     record — exec joins them without looking up the cgroup mounts). A non-zero return kills
     the container. */
  int (*started) (void *data, pid_t pid, char *const *cgroup_dirs, cimg_error_t *err);
  void *data;
};

/* Create the cgroup, spawn the container, forward signals (and pty I/O with tty) until its
   process exits, then tear down (the cgroup is destroyed; every mount of the container lived
   in its own mount namespace and goes with it). Returns 0 with *res filled when the command
   ran (or could not be executed: res->exec_error), or -1 with err set when cimg could not set
   the container up; in both cases nothing of the container is left running or mounted.
   The caller's terminal (with tty) is put in raw mode and restored before return. */
int cimg_runtime_run (const struct cimg_spec *spec, const struct cimg_run_hooks *hooks,
                      struct cimg_run_result *res, cimg_error_t *err);

/* The container's output, for cimg_runtime_run_captured: stream 1 (stdout, or a pty's output)
   or 2 (stderr). */
typedef void (*cimg_output_fn) (void *data, int stream, const char *buf, size_t len);

/* As cimg_runtime_run, for detached containers (the monitor): the container's stdout and
   stderr are pipes (or, with tty, the pty) that the wait loop reads, handing each chunk to
   output(output_data, …) instead of the container writing to cimg's own fds 1 and 2; called
   until the container's process has exited and what it wrote is drained. */
int cimg_runtime_run_captured (const struct cimg_spec *spec, const struct cimg_run_hooks *hooks,
                               cimg_output_fn output, void *output_data,
                               struct cimg_run_result *res, cimg_error_t *err);

/* A process run in an existing container (cimg exec). */
struct cimg_exec_spec
{
  pid_t pid;       /* the container's process (its PID 1), in the caller's PID namespace */
  int64_t pid_ino; /* the inode of its pidfd (pidfs, Linux 6.9+) as recorded; 0: unknown */
  const char *id;  /* the container's ID: its cgroup */
  /* The container's cgroup directories as its record keeps them (state.json's CgroupPaths,
     validated before use); NULL: found from the cgroup mounts. */
  char *const *cgroup_dirs;
  int store_dirfd;                  /* for the compiled seccomp profile's cache; -1: none */
  struct cimg_spec_process process; /* tty: a pty of the container's devpts */
  char *const *caps;
  bool seccomp;
  const char *seccomp_profile; /* as in struct cimg_spec */
  bool no_new_privileges;
  bool detach; /* return once the command runs, without waiting for it */
};

/* Run x->process in the container of x->pid: it joins every namespace of that process (IPC,
   UTS, network, cgroup, PID, and the mount namespace last, whose root is the container's) and
   its cgroup, with the same capabilities, seccomp profile and no-new-privileges, and cimg's
   stdio. Signals cimg gets are forwarded to it. Returns 0 with *res (the wait status; or
   exec_error 126/127) once it exited (or, with detach, once it was executed), or -1 with err
   when it could not be set up. */
int cimg_runtime_exec (const struct cimg_exec_spec *x, struct cimg_run_result *res,
                       cimg_error_t *err);

/* Exit code as Docker reports it for a wait status: the code, or 128+N for signal N. */
int cimg_runtime_exit_code (int status);

#endif
