/* runtime/caps.c: capability sets as Docker computes and applies them.

   Names are resolved against cimg's own table (not libcap's) so that "ALL" and the error for an
   unknown name do not depend on the libcap version installed; the apply step uses raw capset(2)
   and prctl(2) so that it allocates nothing in the container's process after fork. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "runtime/confine.h"
#include "runtime/confine-internal.h"

/* Index = capability number, as in <linux/capability.h>. */
static const char *const cap_names[] = {
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_DAC_READ_SEARCH",
  "CAP_FOWNER",
  "CAP_FSETID",
  "CAP_KILL",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETPCAP",
  "CAP_LINUX_IMMUTABLE",
  "CAP_NET_BIND_SERVICE",
  "CAP_NET_BROADCAST",
  "CAP_NET_ADMIN",
  "CAP_NET_RAW",
  "CAP_IPC_LOCK",
  "CAP_IPC_OWNER",
  "CAP_SYS_MODULE",
  "CAP_SYS_RAWIO",
  "CAP_SYS_CHROOT",
  "CAP_SYS_PTRACE",
  "CAP_SYS_PACCT",
  "CAP_SYS_ADMIN",
  "CAP_SYS_BOOT",
  "CAP_SYS_NICE",
  "CAP_SYS_RESOURCE",
  "CAP_SYS_TIME",
  "CAP_SYS_TTY_CONFIG",
  "CAP_MKNOD",
  "CAP_LEASE",
  "CAP_AUDIT_WRITE",
  "CAP_AUDIT_CONTROL",
  "CAP_SETFCAP",
  "CAP_MAC_OVERRIDE",
  "CAP_MAC_ADMIN",
  "CAP_SYSLOG",
  "CAP_WAKE_ALARM",
  "CAP_BLOCK_SUSPEND",
  "CAP_AUDIT_READ",
  "CAP_PERFMON",
  "CAP_BPF",
  "CAP_CHECKPOINT_RESTORE",
};

/* Docker's default set (moby oci/caps DefaultCapabilities), in its order. */
static const char *const default_caps[] = {
  "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
  "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
  "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
  "CAP_KILL",    "CAP_AUDIT_WRITE",
};

int
cimg_cap_count (void)
{
  return (int)ARRAY_SIZE (cap_names);
}

const char *
cimg_cap_name (int cap)
{
  if (cap < 0 || cap >= (int)ARRAY_SIZE (cap_names))
    return NULL;
  return cap_names[cap];
}

int
cimg_cap_from_name (const char *name)
{
  if (name == NULL)
    return -1;
  /* Docker accepts "net_raw", "NET_RAW" and "CAP_NET_RAW" alike. */
  const char *bare = strncasecmp (name, "CAP_", 4) == 0 ? name + 4 : name;
  for (size_t i = 0; i < ARRAY_SIZE (cap_names); i++)
    if (strcasecmp (cap_names[i] + 4, bare) == 0)
      return (int)i;
  return -1;
}

static bool
is_all (const char *name)
{
  return strcasecmp (name, "ALL") == 0 || strcasecmp (name, "CAP_ALL") == 0;
}

char **
cimg_caps_default (void)
{
  char **v = NULL;
  for (size_t i = 0; i < ARRAY_SIZE (default_caps); i++)
    cimg_strv_append (&v, default_caps[i]);
  return v;
}

int
cimg_caps_to_mask (char *const *caps, uint64_t *mask, cimg_error_t *err)
{
  uint64_t m = 0;
  for (size_t i = 0; caps != NULL && caps[i] != NULL; i++)
    {
      int c = cimg_cap_from_name (caps[i]);
      if (c < 0)
        return cimg_error_set (err, EINVAL, "unknown capability: \"%s\"", caps[i]);
      m |= UINT64_C (1) << c;
    }
  *mask = m;
  return 0;
}

/* Check every name of a --cap-add/--cap-drop list and turn it into a mask; *all is set when the
   list holds "ALL". */
static int
parse_list (char *const *names, uint64_t *mask, bool *all, cimg_error_t *err)
{
  *mask = 0;
  *all = false;
  for (size_t i = 0; names != NULL && names[i] != NULL; i++)
    {
      if (is_all (names[i]))
        {
          *all = true;
          continue;
        }
      int c = cimg_cap_from_name (names[i]);
      if (c < 0)
        return cimg_error_set (err, EINVAL, "unknown capability: \"%s\"", names[i]);
      *mask |= UINT64_C (1) << c;
    }
  return 0;
}

char **
cimg_caps_resolve (char *const *add, char *const *drop, cimg_error_t *err)
{
  uint64_t add_m, drop_m;
  bool add_all, drop_all;
  if (parse_list (add, &add_m, &add_all, err) < 0 || parse_list (drop, &drop_m, &drop_all, err) < 0)
    return NULL;

  uint64_t base = 0;
  for (size_t i = 0; i < ARRAY_SIZE (default_caps); i++)
    base |= UINT64_C (1) << cimg_cap_from_name (default_caps[i]);
  uint64_t all
      = (cimg_cap_count () >= 64) ? ~UINT64_C (0) : (UINT64_C (1) << cimg_cap_count ()) - 1;

  /* The same three cases as moby's TweakCapabilities: --cap-add ALL wins over everything but
     the explicit drops; --cap-drop ALL leaves exactly the adds; otherwise the defaults minus
     the drops plus the adds (so a name both added and dropped stays, as in Docker). */
  uint64_t keep;
  if (add_all)
    keep = all & ~drop_m;
  else if (drop_all)
    keep = add_m;
  else
    keep = (base & ~drop_m) | add_m;

  char **v = xzalloc (sizeof (char *));
  for (int c = 0; c < cimg_cap_count (); c++)
    if (keep & (UINT64_C (1) << c))
      cimg_strv_append (&v, cap_names[c]);
  return v;
}

/* The highest capability the running kernel knows. /proc may be missing or masked in the
   container by the time this runs, so fall back to probing the bounding set, where
   PR_CAPBSET_READ fails with EINVAL beyond the last valid capability. */
static int
last_cap (void)
{
  int fd = open ("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
  if (fd >= 0)
    {
      char buf[16];
      ssize_t n = read (fd, buf, sizeof buf - 1);
      close (fd);
      if (n > 0)
        {
          buf[n] = '\0';
          char *end;
          long v = strtol (buf, &end, 10);
          if (end != buf && v >= 0 && v < 64)
            return (int)v;
        }
    }
  int c = 0;
  while (c < 63 && prctl (PR_CAPBSET_READ, (unsigned long)c + 1, 0, 0, 0) >= 0)
    c++;
  return c;
}

static int
capget_masks (uint64_t *eff, uint64_t *prm, uint64_t *inh)
{
  struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct d[2];
  memset (d, 0, sizeof d);
  if (syscall (SYS_capget, &h, d) < 0)
    return -1;
  *eff = (uint64_t)d[0].effective | ((uint64_t)d[1].effective << 32);
  *prm = (uint64_t)d[0].permitted | ((uint64_t)d[1].permitted << 32);
  *inh = (uint64_t)d[0].inheritable | ((uint64_t)d[1].inheritable << 32);
  return 0;
}

static int
capset_masks (uint64_t eff, uint64_t prm, uint64_t inh)
{
  struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
  struct __user_cap_data_struct d[2];
  d[0].effective = (uint32_t)eff;
  d[1].effective = (uint32_t)(eff >> 32);
  d[0].permitted = (uint32_t)prm;
  d[1].permitted = (uint32_t)(prm >> 32);
  d[0].inheritable = (uint32_t)inh;
  d[1].inheritable = (uint32_t)(inh >> 32);
  return (int)syscall (SYS_capset, &h, d);
}

/* Callers switch user first, with prctl(PR_SET_KEEPCAPS, 1) before setuid(2): without it the
   kernel empties the permitted set when the real, effective and saved uids all leave 0, and
   nothing could be kept. KEEPCAPS keeps the permitted set only; the effective set is still
   cleared by setuid, which is why it is raised again below before the bounding set is
   touched. */
int
cimg_caps_apply (char *const *keep, cimg_error_t *err)
{
  uint64_t want;
  if (cimg_caps_to_mask (keep, &want, err) < 0)
    return -1;

  int last = last_cap ();
  uint64_t valid = last >= 63 ? ~UINT64_C (0) : (UINT64_C (1) << (last + 1)) - 1;

  uint64_t eff, prm, inh;
  if (capget_masks (&eff, &prm, &inh) < 0)
    return cimg_error_sys (err, "capget");
  /* A capability cimg itself does not hold (this VM's bounding set lacks CAP_SYS_RESOURCE, a
     nested runtime may lack more) can never be granted: it is left out rather than making
     --privileged or --cap-add ALL fail, as moby does for capabilities unknown to the kernel. */
  want &= valid & prm;

  /* PR_CAPBSET_DROP needs CAP_SETPCAP in the effective set. */
  if (capset_masks (prm, prm, inh) < 0)
    return cimg_error_sys (err, "capset: raise the effective set to %#llx",
                           (unsigned long long)prm);

  for (int c = 0; c <= last; c++)
    {
      if (want & (UINT64_C (1) << c))
        continue;
      if (prctl (PR_CAPBSET_DROP, (unsigned long)c, 0, 0, 0) < 0 && errno != EINVAL)
        return cimg_error_sys (err, "drop %s from the bounding set",
                               cimg_cap_name (c) ? cimg_cap_name (c) : "capability");
    }

  /* The inheritable set stays empty, as in Docker since CVE-2022-24769: a non-empty one would
     hand its capabilities to any program with inheritable file capabilities that a non-root
     user of the container executes. */
  if (capset_masks (want, want, 0) < 0)
    return cimg_error_sys (err, "capset: permitted and effective %#llx", (unsigned long long)want);

  /* Ambient capabilities would survive execve of unprivileged programs; Docker leaves the
     set empty. EINVAL: a kernel before 4.3 without ambient capabilities, nothing to clear. */
  if (prctl (PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
    return cimg_error_sys (err, "clear the ambient capabilities");
  return 0;
}
