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

#endif
