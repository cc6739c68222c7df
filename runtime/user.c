#include "runtime/user.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

static void
split_commas (char ***v, const char *s)
{
  cleanup_free char *copy = xstrdup (s);
  char *save = NULL;
  for (char *t = strtok_r (copy, ",", &save); t; t = strtok_r (NULL, ",", &save))
    cimg_strv_append (v, t);
}

static char **
split_colon (const char *line)
{
  char **v = NULL;
  const char *p = line;
  for (;;)
    {
      const char *e = strchrnul (p, ':');
      cleanup_free char *f = xstrndup (p, (size_t)(e - p));
      cimg_strv_append (&v, f);
      if (*e == '\0')
        break;
      p = e + 1;
    }
  return v;
}

static bool
all_digits (const char *s)
{
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9')
      return false;
  return true;
}

/* Find the line of file whose field 0 (name) or 2 (id) matches key. */
static char **
db_find (const char *file, const char *key, bool by_id)
{
  if (file == NULL)
    return NULL;
  cleanup_free char *copy = xstrdup (file);
  char *save = NULL;
  for (char *line = strtok_r (copy, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      char **f = split_colon (line);
      if (cimg_strv_len (f) >= 3 && strcmp (f[by_id ? 2 : 0], key) == 0)
        return f;
      cimg_strv_free (f);
    }
  return NULL;
}

void
cimg_user_clear (struct cimg_user *u)
{
  free (u->home);
  cimg_strv_free (u->groups);
}

int
cimg_user_resolve (const char *spec, const char *passwd, const char *group, char *const *group_add,
                   struct cimg_user *u, cimg_error_t *err)
{
  cleanup_free char *copy = xstrdup (spec && *spec ? spec : "0");
  char *gpart = strchr (copy, ':');
  if (gpart)
    *gpart++ = '\0';
  const char *upart = *copy ? copy : "0";
  u->uid = 0;
  u->gid = 0;
  u->home = xstrdup ("/");
  cleanup_strv char **pw = NULL;
  if (all_digits (upart))
    {
      u->uid = (uid_t)strtoul (upart, NULL, 10);
      pw = db_find (passwd, upart, true);
    }
  else
    {
      pw = db_find (passwd, upart, false);
      if (pw == NULL)
        return cimg_error_set (err, ENOENT,
                               "unable to find user %s: no matching entries in passwd file", upart);
      u->uid = (uid_t)strtoul (pw[2], NULL, 10);
    }
  const char *uname = NULL;
  if (pw && cimg_strv_len (pw) >= 4)
    {
      u->gid = (gid_t)strtoul (pw[3], NULL, 10);
      uname = pw[0];
      if (cimg_strv_len (pw) >= 6 && pw[5][0])
        {
          free (u->home);
          u->home = xstrdup (pw[5]);
        }
    }
  if (gpart && *gpart)
    {
      if (all_digits (gpart))
        u->gid = (gid_t)strtoul (gpart, NULL, 10);
      else
        {
          cleanup_strv char **gr = db_find (group, gpart, false);
          if (gr == NULL)
            return cimg_error_set (
                err, ENOENT, "unable to find group %s: no matching entries in group file", gpart);
          u->gid = (gid_t)strtoul (gr[2], NULL, 10);
        }
    }
  /* Supplementary groups, as containerd gives them: the primary group, those that list the
     user as a member (only when no group was given, as runc), then --group-add. */
  {
    char gs[32];
    snprintf (gs, sizeof gs, "%u", (unsigned)u->gid);
    cimg_strv_append (&u->groups, gs);
  }
  if (uname && !gpart && group)
    {
      cleanup_free char *gc = xstrdup (group);
      char *save = NULL;
      for (char *line = strtok_r (gc, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
        {
          cleanup_strv char **f = split_colon (line);
          if (cimg_strv_len (f) < 4)
            continue;
          cleanup_strv char **members = NULL;
          split_commas (&members, f[3]);
          if (cimg_strv_contains (members, uname) && !cimg_strv_contains (u->groups, f[2]))
            cimg_strv_append (&u->groups, f[2]);
        }
    }
  for (size_t i = 0; group_add && group_add[i]; i++)
    {
      const char *g = group_add[i];
      if (all_digits (g))
        {
          if (!cimg_strv_contains (u->groups, g))
            cimg_strv_append (&u->groups, g);
        }
      else
        {
          cleanup_strv char **gr = db_find (group, g, false);
          if (gr == NULL)
            return cimg_error_set (err, ENOENT,
                                   "unable to find group %s: no matching entries in group file", g);
          if (!cimg_strv_contains (u->groups, gr[2]))
            cimg_strv_append (&u->groups, gr[2]);
        }
    }
  return 0;
}

/* --security-opt; *profile gets a seccomp profile file's JSON text (checked to compile). */
