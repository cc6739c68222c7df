/* runtime: users and groups of a container, resolved from its /etc/passwd and /etc/group
   (cimg run, exec and build's RUN/USER share this). */
#ifndef CIMG_RUNTIME_USER_H
#define CIMG_RUNTIME_USER_H

#include <sys/types.h>

#include "util/util.h"

struct cimg_user
{
  uid_t uid;
  gid_t gid;
  char *home;
  char **groups; /* supplementary gids as strings, the primary group first */
};

/* Resolve "user[:group]" (NULL or "": root) against the texts of the image's /etc/passwd and
   /etc/group (either may be NULL), as runc's GetExecUser: names must exist, numeric IDs need
   not. Supplementary groups as containerd gives them: the primary group, the groups that list
   the user (only when no group was given), then group_add (names or numbers). */
int cimg_user_resolve (const char *spec, const char *passwd, const char *group,
                       char *const *group_add, struct cimg_user *u, cimg_error_t *err);
void cimg_user_clear (struct cimg_user *u);

#endif
