/* runtime internals shared between spawn.c, mounts.c and tty.c. Everything here runs in the
   container's process between clone and execve unless said otherwise. */
#ifndef CIMG_RUNTIME_INTERNAL_H
#define CIMG_RUNTIME_INTERNAL_H

#include "runtime/runtime.h"

/* In the new mount namespace: make every mount private, mount the overlay (or bind the rootfs
   onto itself, so that it is a mount point pivot_root accepts) and return an O_PATH fd of it. */
int cimg_rootfs_mount (const struct cimg_spec *spec, cimg_error_t *err);
/* /proc /sys /dev (+ nodes and links) /dev/pts /dev/shm /dev/mqueue and spec->mounts, all
   resolved inside the rootfs (rootfd). */
int cimg_rootfs_populate (const struct cimg_spec *spec, int rootfd, cimg_error_t *err);
/* pivot_root(".", ".") in rootfd, detach the old root, chdir("/"). */
int cimg_rootfs_pivot (int rootfd, cimg_error_t *err);
/* After pivot_root: read-only root, masked and read-only paths. */
int cimg_rootfs_finish (const struct cimg_spec *spec, cimg_error_t *err);
/* Bring lo up in the current network namespace. */
int cimg_net_lo_up (cimg_error_t *err);
/* execve p->args[0] (PATH looked up in p->env); returns only on failure: 127 or 126 and the
   message Docker gives. */
int cimg_child_exec_command (const struct cimg_spec_process *p, char *msg, size_t n);
/* setgroups, setgid, setuid to p's (keeping the permitted capabilities for cimg_caps_apply). */
int cimg_child_switch_user (const struct cimg_spec_process *p, cimg_error_t *err);

/* In cimg, not the container's process: a container's cgroup directories, kept in its record
   when it starts (cimg_run_hooks.started gets them) so that exec opens them without reading
   /proc/self/mountinfo. cimg_cgroup_dirs: one per hierarchy cg has (v1 and unified), as
   absolute paths, a NULL-terminated vector that is the caller's. */
char **cimg_cgroup_dirs (const struct cimg_cgroup *cg);
/* cimg_cgroup_join_prepare from kept directories: each must be absolute, without "." or ".."
   components, end in "/cimg/<id>", and open (openat2 RESOLVE_NO_SYMLINKS, O_DIRECTORY) to a
   directory of a cgroup (v1: its tasks file is opened) or cgroup2 file system (the into_fd),
   at most one of the latter. The set is trusted to be complete. -1 with err, *j
   holding nothing, when one is not (or cannot be opened): the caller then takes
   cimg_cgroup_open's lookup instead. */
int cimg_cgroup_join_prepare_dirs (const char *id, char *const *dirs, struct cimg_cgroup_join *j,
                                   cimg_error_t *err);
/* Write pid to the cgroup.procs of j's unified directory (a kernel without clone3's
   CLONE_INTO_CGROUP); 0 when j has none. */
int cimg_cgroup_join_add_pid (struct cimg_cgroup_join *j, pid_t pid, cimg_error_t *err);

#endif
