/* runtime/confine-internal.h: helpers shared by caps.c, seccomp.c and their tests. */
#ifndef CIMG_RUNTIME_CONFINE_INTERNAL_H
#define CIMG_RUNTIME_CONFINE_INTERNAL_H

#include <stdint.h>

#include "util/util.h"

/* Number of capabilities in cimg's table (CAP_CHOWN … CAP_CHECKPOINT_RESTORE). */
int cimg_cap_count (void);
/* "CAP_…" for a capability number, NULL if out of the table. */
const char *cimg_cap_name (int cap);
/* Capability number for a name ("CAP_NET_RAW", "net_raw", any case); -1 if unknown. */
int cimg_cap_from_name (const char *name);
/* Bit mask (1 << cap) of a list of names; an unknown name is an error naming it. */
int cimg_caps_to_mask (char *const *caps, uint64_t *mask, cimg_error_t *err);

/* seccomp.c's last step, shared with seccomp-json.c: export ctx (a libseccomp
   scmp_filter_ctx, left to the caller) as the program cimg_seccomp_load takes. audit_arch is the
   native architecture (seccomp_arch_native ()); max_native the highest native syscall number
   the profile names, above which the loader's second filter answers ENOSYS, or -1 for no such
   filter. NULL with err set on failure. */
struct cimg_seccomp_prog;
struct cimg_seccomp_prog *cimg_seccomp_prog_from_ctx (void *ctx, uint32_t audit_arch,
                                                      int max_native, cimg_error_t *err);

/* Tests only: on a hybrid machine, "v2" makes the cgroup code use the unified mount alone (no
   controllers there, but create/add/cgroup.kill/rmdir and cpu.stat can be exercised) and "v1"
   the v1 hierarchies alone (teardown through the freezer, without cgroup.kill). NULL: back to
   the layout found in mountinfo. Handles keep the mode they were made in. */
void cimg_cgroup_force_mode_for_tests (const char *mode);

#endif
