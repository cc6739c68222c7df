/* runtime confinement: cgroups (v1, v2 and hybrid behind one interface), capabilities and the
   default seccomp profile. Used by the spawner (runtime/spawn.c) and, later, exec and stats. */
#ifndef CIMG_RUNTIME_CONFINE_H
#define CIMG_RUNTIME_CONFINE_H

#include <stddef.h>
#include <sys/types.h>

#include "util/util.h"

/* ---------------------------------------------------------------- cgroups */

enum cimg_blkio_rate_kind
{
  CIMG_BLKIO_READ_BPS,
  CIMG_BLKIO_WRITE_BPS,
  CIMG_BLKIO_READ_IOPS,
  CIMG_BLKIO_WRITE_IOPS,
};
/* One --device-read-bps /dev/vda:1m: the block device's numbers (from stat's st_rdev) and the
   rate in bytes or operations per second. */
struct cimg_blkio_rate
{
  enum cimg_blkio_rate_kind kind;
  unsigned major, minor;
  uint64_t rate;
};

struct cimg_limits
{
  int64_t memory;       /* bytes; 0: no limit */
  int64_t memory_swap;  /* memory + swap in bytes; 0: as Docker (twice memory); -1: unlimited */
  int64_t cpu_shares;   /* relative weight (v1 shares, mapped to v2 cpu.weight); 0: default */
  int64_t cpu_quota;    /* microseconds per period; 0: none */
  int64_t cpu_period;   /* microseconds; 0: 100000 */
  int64_t pids_limit;   /* 0 or -1: none */
  int64_t blkio_weight; /* 10..1000; 0: default */

  /* Zero (or NULL) means unset for these too, so that { 0 } means "no limit" throughout. */
  int64_t memory_reservation; /* bytes, soft limit (--memory-reservation); 0: none */
  bool memory_swappiness_set; /* --memory-swappiness given (0 is a valid value) */
  int64_t memory_swappiness;  /* 0..100; v1 only: cgroup v2 has no such knob (ignored) */
  bool oom_kill_disable;      /* v1 only: cgroup v2 has no such knob (ignored) */
  const char *cpuset_cpus;    /* "0-2,4" (--cpuset-cpus); NULL: the parent's */
  const char *cpuset_mems;    /* --cpuset-mems; NULL: the parent's */
  const struct cimg_blkio_rate *blkio_rates; /* --device-{read,write}-{bps,iops} */
  size_t n_blkio_rates;
};

struct cimg_cgroup;

/* "v1", "v2" or "hybrid" (v1 controllers with a cgroup2 mount, as on these machines): read once
   from /proc/self/mountinfo. */
const char *cimg_cgroup_mode (void);

/* Create the container's cgroup(s) under a cimg-owned parent ("cimg/<id>" in each hierarchy,
   never below the caller's own cgroup) and write the limits. Enables the controllers it needs
   on v2 (cgroup.subtree_control). Errors name the file and the value that was refused. */
struct cimg_cgroup *cimg_cgroup_create (const char *id, const struct cimg_limits *l,
                                        cimg_error_t *err);
/* Reopen an existing container's cgroup (for stats, exec, rm). */
struct cimg_cgroup *cimg_cgroup_open (const char *id, cimg_error_t *err);
/* Move pid into the cgroup (every hierarchy). */
int cimg_cgroup_add_pid (struct cimg_cgroup *cg, pid_t pid, cimg_error_t *err);
/* An O_DIRECTORY fd of the v2 cgroup for clone3(CLONE_INTO_CGROUP), or -1 on v1/hybrid. Owned
   by cg (do not close it); valid until cimg_cgroup_destroy or cimg_cgroup_free. */
int cimg_cgroup_fd (struct cimg_cgroup *cg);

/* A process joining the cgroup by itself, without cimg writing its pid anywhere (which on v1
   waits for an RCU grace period, 5–15 ms): the unified directory, when there is one (v2,
   hybrid), for clone3 CLONE_INTO_CGROUP, and the "tasks" file of each v1 hierarchy, which the
   new process writes "0" to. */
struct cimg_cgroup_join
{
  int into_fd;   /* O_DIRECTORY fd of the unified cgroup; -1: none (v1) */
  int tasks[16]; /* O_WRONLY fds of the v1 hierarchies' tasks files */
  int n;
};
/* Open them (O_CLOEXEC), in cimg before clone. Call after cimg_cgroup_set_devices, which may
   add the devices hierarchy. On error *j holds nothing. */
int cimg_cgroup_join_prepare (struct cimg_cgroup *cg, struct cimg_cgroup_join *j,
                              cimg_error_t *err);
/* In the new, single-threaded process: move itself into each v1 hierarchy's cgroup (the
   unified one it entered at clone3, or cimg adds it with cimg_cgroup_add_pid). Closes the
   tasks fds. Allocates nothing. */
int cimg_cgroup_join_self (struct cimg_cgroup_join *j, cimg_error_t *err);
/* Close what is left open. */
void cimg_cgroup_join_clear (struct cimg_cgroup_join *j);

/* A devices cgroup rule, as Docker's --device-cgroup-rule "c 1:3 rwm". */
struct cimg_device_rule
{
  char type;          /* 'c', 'b', or 'a' (every device) */
  int64_t major;      /* -1: any */
  int64_t minor;      /* -1: any */
  const char *access; /* a subset of "rwm": read, write, mknod */
};
/* Limit the devices the container may open or create to Docker's default allow-list (mknod of
   any node; rwm on null, zero, full, random, urandom, tty, console, ptmx, the pts, tun) plus
   extra (--device, --device-cgroup-rule): a device node shipped in an image cannot be opened.
   Call after create and before the first process joins; not for --privileged. v1/hybrid: the
   devices hierarchy; v2: a BPF_CGROUP_DEVICE program attached to the cgroup. */
int cimg_cgroup_set_devices (struct cimg_cgroup *cg, const struct cimg_device_rule *extra,
                             size_t n_extra, cimg_error_t *err);

struct cimg_cgroup_stats
{
  int64_t memory_usage, memory_limit; /* bytes; limit 0 when unlimited */
  int64_t pids;
  int64_t cpu_usage_ns;
  bool oom_killed; /* the OOM killer killed a process of the cgroup */
};
int cimg_cgroup_stats (struct cimg_cgroup *cg, struct cimg_cgroup_stats *st, cimg_error_t *err);
/* What cimg stats shows: the stats above, the page cache that can be dropped (v1
   total_inactive_file, v2 inactive_file: Docker's MEM USAGE is usage minus it) and the bytes
   read and written on block devices (v1 blkio.throttle.io_service_bytes, v2 io.stat). */
struct cimg_cgroup_usage
{
  int64_t memory_usage, memory_limit, memory_inactive_file;
  int64_t pids;
  int64_t cpu_usage_ns;
  int64_t blkio_read, blkio_write;
};
int cimg_cgroup_usage (struct cimg_cgroup *cg, struct cimg_cgroup_usage *u, cimg_error_t *err);
/* The PIDs (in cimg's PID namespace) of the processes in the cgroup; *pids is the caller's. */
int cimg_cgroup_pids (struct cimg_cgroup *cg, pid_t **pids, size_t *n, cimg_error_t *err);
/* Freeze every process of the cgroup (v1 freezer.state FROZEN, else v2 cgroup.freeze) and
   return once all are stopped (up to 5 s: then thawed again, ETIMEDOUT); with freeze false,
   thaw. ENOTSUP when the cgroup has no freezer. */
int cimg_cgroup_freeze (struct cimg_cgroup *cg, bool freeze, cimg_error_t *err);
/* Kill every process left in it (SIGKILL; freezer where available so none escapes by forking),
   wait until it is empty, and remove its directories. */
int cimg_cgroup_destroy (struct cimg_cgroup *cg, cimg_error_t *err);
void cimg_cgroup_free (struct cimg_cgroup *cg);

/* A cimg/<id> cgroup that no container owns (cimg_cgroup_sweep). */
struct cimg_cgroup_leftover
{
  char *id;
  char **dirs;     /* its directories, one per hierarchy it is in */
  int64_t created; /* the newest mtime of dirs (a cgroup's is its creation), epoch seconds */
  bool dead_build; /* its ID is in dead: a RUN step of a build that is gone */
  bool live;       /* a process is (still) in it */
  bool killed;     /* remove: its processes were killed */
  bool removed;    /* remove: all its directories are gone */
};
/* Find the cimg/<id> cgroups of every hierarchy of this host (v1, unified, and the v2 fallback
   parent; whatever mode is forced) whose ID is not in keep (the store's containers), and return
   the leftovers among them: those whose ID is in dead (RUN steps of builds that provably are
   gone), and those with no process anywhere in their subtree, created at least min_age_s ago
   (a younger one may be a container of another store between its mkdir and its first
   process). With remove, each leftover is removed (subtrees deepest first); a dead build's
   processes are killed first; a leftover that still has processes (impossible but for a
   kill that failed) stays, live. *out is the caller's (cimg_cgroup_leftovers_free). */
int cimg_cgroup_sweep (char *const *keep, char *const *dead, int64_t min_age_s, bool remove,
                       struct cimg_cgroup_leftover **out, size_t *n, cimg_error_t *err);
void cimg_cgroup_leftovers_free (struct cimg_cgroup_leftover *v, size_t n);

/* ---------------------------------------------------------------- capabilities */

/* Docker's default capability set: CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID
   SETFCAP SETPCAP NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE (names "CAP_…"). */
char **cimg_caps_default (void);
/* The default set with --cap-add/--cap-drop applied ("ALL" allowed in both; names with or
   without "CAP_", any case). An unknown name is an error that names it. */
char **cimg_caps_resolve (char *const *add, char *const *drop, cimg_error_t *err);
/* In the container's process, just before execve, after setgroups/setgid/setuid (with
   PR_SET_KEEPCAPS set before setuid, else the kernel empties the permitted set): make keep the
   bounding, permitted and effective sets, dropping every other capability; the inheritable and
   ambient sets end empty, as in Docker since CVE-2022-24769. Capabilities the calling process
   does not hold itself are left out (they cannot be granted; this VM lacks CAP_SYS_RESOURCE). */
int cimg_caps_apply (char *const *keep, cimg_error_t *err);

/* ---------------------------------------------------------------- seccomp */

/* Load Docker's default seccomp profile for this architecture into the calling process (the
   container's, after PR_SET_NO_NEW_PRIVS, or before the capabilities are dropped while
   CAP_SYS_ADMIN is still held, as runc does without no-new-privileges; the kernel refuses the
   filter otherwise): an allow-list, the rest failing with EPERM (ENOSYS for syscalls newer than
   the list, so that libc falls back), with the conditional rules that depend on the
   capabilities in caps (e.g. CAP_SYS_ADMIN) and on clone flags (no new namespaces). On x86-64
   the i386 and x32 entry points are filtered too. */
int cimg_seccomp_apply_default (char *const *caps, cimg_error_t *err);

/* The same profile in two steps, so that the container's process only loads it:
   cimg_seccomp_prepare in cimg (before clone), cimg_seccomp_load in the child (where
   cimg_seccomp_apply_default would be called). */
struct cimg_seccomp_prog;

/* The compiled profile for caps (an unknown name is an error naming it). With store_dirfd >= 0
   it is taken from, or compiled once into, <store>/seccomp/<sha256 of the key>.bpf (key:
   profile version, libseccomp version, architecture, kernel >= 4.8, the capabilities the profile
   depends on); a file that fails a check (size, header, key, checksum, owner) is recompiled and
   replaced, never loaded, and a store that cannot keep the file (read-only, full) is no error.
   -1: no cache. On success *out is the caller's (cimg_seccomp_prog_free); it may be inherited
   across fork or clone. */
int cimg_seccomp_prepare (int store_dirfd, char *const *caps, struct cimg_seccomp_prog **out,
                          cimg_error_t *err);
/* --security-opt seccomp=PROFILE.json: a profile in Docker's JSON format (moby's
   profiles/seccomp: defaultAction, defaultErrnoRet, architectures or archMap, syscalls[] with
   names or name, action, errnoRet, args, includes and excludes on caps, arches and minKernel),
   compiled with libseccomp for the capabilities in caps (the container's bounding set, which
   includes.caps and excludes.caps are matched against; an unknown name is an error). Syscall
   names unknown to libseccomp are skipped, as Docker does. Never cached (docs/confinement.md).
   A profile of more than CIMG_SECCOMP_PROFILE_MAX bytes or not valid is an error naming the
   field: `seccomp profile: syscalls[3].action: unknown action "SCMP_ACT_FOO"`.
   A profile with neither defaultAction nor syscalls means no filter, as in Docker: 0 with
   *out NULL (load nothing, as for seccomp=unconfined). Otherwise *out is loaded with
   cimg_seccomp_load, with the same preconditions as the default profile's. */
#define CIMG_SECCOMP_PROFILE_MAX (1024 * 1024)
int cimg_seccomp_prepare_json (const char *json_text, size_t len, char *const *caps,
                               struct cimg_seccomp_prog **out, cimg_error_t *err);
/* The text of the profile file at path (relative to the current directory; symlinks followed;
   a regular file of at most CIMG_SECCOMP_PROFILE_MAX bytes), NUL-terminated, for the caller
   to free. Errors name the file: "seccomp profile PATH: No such file or directory". For a CLI
   that keeps the profile's text with the container, as Docker keeps it in its SecurityOpt. */
int cimg_seccomp_read_profile (const char *path, char **text, size_t *len, cimg_error_t *err);
/* cimg_seccomp_read_profile then cimg_seccomp_prepare_json; errors name the file:
   "seccomp profile PATH: syscalls[3].action: …". */
int cimg_seccomp_prepare_json_file (const char *path, char *const *caps,
                                    struct cimg_seccomp_prog **out, cimg_error_t *err);
/* The program a container gets: profile_json (a custom profile's text) when not NULL, else
   Docker's default through the cache in store_dirfd. *out may be NULL after success (a profile
   "{}" means no filter): never pass NULL to cimg_seccomp_load. */
int cimg_seccomp_prepare_for (int store_dirfd, const char *profile_json, char *const *caps,
                              struct cimg_seccomp_prog **out, cimg_error_t *err);
/* Load p into the calling process, with the same preconditions as cimg_seccomp_apply_default
   (NO_NEW_PRIVS or CAP_SYS_ADMIN). Makes two system calls and allocates nothing. */
int cimg_seccomp_load (const struct cimg_seccomp_prog *p, cimg_error_t *err);
void cimg_seccomp_prog_free (struct cimg_seccomp_prog *p);
void cimg_seccomp_prog_freep (struct cimg_seccomp_prog **p);
#define cleanup_seccomp_prog __attribute__ ((cleanup (cimg_seccomp_prog_freep)))

#endif
