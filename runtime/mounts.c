/* The container's filesystem: overlay rootfs, the kernel filesystems, /dev, masked paths and
   pivot_root. Runs in the container's process, inside its new mount namespace, so that no
   mount made here is ever visible to the host, and all of them go when the namespace's last
   process exits (even if cimg itself is killed). */
#include "runtime/runtime-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <dirent.h>
#include <unistd.h>

char *const cimg_default_masked_paths[] = {
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
  "/sys/devices/virtual/powercap",
  NULL,
};

char *const cimg_default_readonly_paths[] = {
  "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger", NULL,
};

/* glibc has no wrapper; the one raw call of the runtime. */
static int
sys_pivot_root (const char *new_root, const char *put_old)
{
  return (int)syscall (SYS_pivot_root, new_root, put_old);
}

/* Create path (and its parents) inside rootfd if it is missing, as a directory or an empty
   file, and return an O_PATH fd of it. Every component is resolved inside the rootfs, so a
   symlink in the image ("/proc -> /etc") cannot send a mount to the host. */
static int
target_in_root (int rootfd, const char *path, bool dir, cimg_error_t *err)
{
  int fd = cimg_openat_in_root (rootfd, path, O_PATH, 0);
  if (fd >= 0 || errno != ENOENT)
    {
      if (fd < 0)
        cimg_error_sys (err, "open %s in the rootfs", path);
      return fd;
    }
  cleanup_free char *copy = xstrdup (path);
  for (char *p = copy + 1;; p++)
    {
      bool end = *p == '\0';
      if (*p != '/' && !end)
        continue;
      *p = '\0';
      bool last = end || p[1] == '\0';
      char *name = NULL;
      cleanup_free char *to_free = NULL;
      cleanup_close int parent = cimg_open_parent_in_root (rootfd, copy, &name, &to_free);
      if (parent < 0)
        return cimg_error_sys (err, "open the parent of %s in the rootfs", copy);
      int r;
      if (last && !dir)
        {
          r = openat (parent, name, O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
          if (r >= 0)
            close (r);
        }
      else
        r = mkdirat (parent, name, 0755);
      if (r < 0 && errno != EEXIST)
        return cimg_error_sys (err, "create %s in the rootfs", copy);
      if (last)
        break;
      *p = '/';
    }
  fd = cimg_openat_in_root (rootfd, path, O_PATH, 0);
  if (fd < 0)
    return cimg_error_sys (err, "open %s in the rootfs", path);
  return fd;
}

static int
mount_fd (const char *src, int fd, const char *type, unsigned long flags, const char *data)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/self/fd/%d", fd);
  return mount (src, p, type, flags, data);
}

/* Mount at path inside the rootfs (see target_in_root). */
static int
mount_in_root (int rootfd, const char *path, const char *src, const char *type, unsigned long flags,
               const char *data, bool dir, cimg_error_t *err)
{
  cleanup_close int fd = target_in_root (rootfd, path, dir, err);
  if (fd < 0)
    return -1;
  if (mount_fd (src, fd, type, flags, data) < 0)
    return cimg_error_sys (err, "mount %s on %s", type ? type : src, path);
  /* A bind mount ignores MS_RDONLY & co. on the first call: they need a remount. */
  if (type == NULL && (flags & (MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)))
    {
      cleanup_close int fd2 = cimg_openat_in_root (rootfd, path, O_PATH, 0);
      if (fd2 < 0 || mount_fd (NULL, fd2, NULL, MS_REMOUNT | MS_BIND | flags, NULL) < 0)
        return cimg_error_sys (err, "remount %s read-only", path);
    }
  return 0;
}

int
cimg_rootfs_mount (const struct cimg_spec *spec, cimg_error_t *err)
{
  /* Nothing mounted below may propagate back to the host (/ is usually shared). */
  if (mount (NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
    return cimg_error_sys (err, "make / private");
  const char *target;
  if (spec->lowers && spec->lowers[0])
    {
      /* Relative lowerdir/upperdir/workdir are resolved against the cwd of the mounting
         process: with the store root as cwd (see cimg_runtime_run), "l/<26 chars>" keeps 120+
         layers within the one page of mount options. */
      size_t len = 64 + strlen (spec->upper) + strlen (spec->work);
      for (size_t i = 0; spec->lowers[i]; i++)
        len += strlen (spec->lowers[i]) + 1;
      cleanup_free char *opts = xmalloc (len);
      char *p = opts;
      p += sprintf (p, "lowerdir=");
      for (size_t i = 0; spec->lowers[i]; i++)
        p += sprintf (p, "%s%s", i ? ":" : "", spec->lowers[i]);
      sprintf (p, ",upperdir=%s,workdir=%s%s", spec->upper, spec->work,
               spec->volatile_rootfs ? ",volatile" : "");
      if (strlen (opts) >= (size_t)sysconf (_SC_PAGESIZE))
        return cimg_error_set (err, E2BIG, "too many layers (%zu bytes of overlay options)",
                               strlen (opts));
      if (mount ("overlay", spec->merged, "overlay", 0, opts) < 0)
        return cimg_error_sys (err, "mount the overlay rootfs");
      target = spec->merged;
    }
  else
    {
      if (spec->rootfs == NULL)
        return cimg_error_set (err, EINVAL, "the spec has no rootfs");
      /* pivot_root needs the new root to be a mount point. */
      if (mount (spec->rootfs, spec->rootfs, NULL, MS_BIND | MS_REC, NULL) < 0)
        return cimg_error_sys (err, "bind %s", spec->rootfs);
      target = spec->rootfs;
    }
  int fd = open (target, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "open the rootfs");
  return fd;
}

static int
dev_node (int devfd, const char *name, unsigned maj, unsigned min, cimg_error_t *err)
{
  if (mknodat (devfd, name, S_IFCHR | 0666, makedev (maj, min)) < 0)
    return cimg_error_sys (err, "mknod /dev/%s", name);
  /* mknod obeys the umask; the nodes must be 0666 as on the host. */
  if (fchmodat (devfd, name, 0666, 0) < 0)
    return cimg_error_sys (err, "chmod /dev/%s", name);
  return 0;
}

/* --privileged: every device node of the host's /dev (as Docker), made in the container's
   /dev tmpfs; those already there are kept, the host's pts/shm/mqueue are skipped (the
   container has its own). The walk runs before pivot_root, so "/dev" is still the host's. */
static int
copy_host_devices (int hostfd, int devfd, int depth, cimg_error_t *err)
{
  int fd = dup (hostfd);
  if (fd < 0)
    return cimg_error_sys (err, "dup");
  cleanup_dir DIR *d = fdopendir (fd);
  if (d == NULL)
    {
      close (fd);
      return cimg_error_sys (err, "read /dev");
    }
  struct dirent *e;
  while ((e = readdir (d)))
    {
      const char *n = e->d_name;
      if (strcmp (n, ".") == 0 || strcmp (n, "..") == 0
          || (depth == 0
              && (strcmp (n, "pts") == 0 || strcmp (n, "shm") == 0 || strcmp (n, "mqueue") == 0
                  || strcmp (n, "console") == 0 || strcmp (n, "ptmx") == 0)))
        continue;
      struct stat st;
      if (fstatat (hostfd, n, &st, AT_SYMLINK_NOFOLLOW) < 0)
        continue;
      if (S_ISDIR (st.st_mode) && depth < 3)
        {
          cleanup_close int sub = openat (hostfd, n, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
          if (sub < 0)
            continue;
          if (mkdirat (devfd, n, 0755) < 0 && errno != EEXIST)
            return cimg_error_sys (err, "mkdir /dev/%s", n);
          cleanup_close int dsub = openat (devfd, n, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          if (dsub < 0 || copy_host_devices (sub, dsub, depth + 1, err) < 0)
            return dsub < 0 ? cimg_error_sys (err, "open /dev/%s", n) : -1;
          continue;
        }
      if (!S_ISCHR (st.st_mode) && !S_ISBLK (st.st_mode))
        continue;
      if (mknodat (devfd, n, st.st_mode, st.st_rdev) < 0)
        {
          if (errno == EEXIST)
            continue;
          return cimg_error_sys (err, "mknod /dev/%s", n);
        }
      fchmodat (devfd, n, st.st_mode & 07777, 0);
      fchownat (devfd, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
    }
  return 0;
}

static int
populate_dev (const struct cimg_spec *spec, int rootfd, cimg_error_t *err)
{
  if (mount_in_root (rootfd, "/dev", "tmpfs", "tmpfs", MS_NOSUID | MS_STRICTATIME,
                     "mode=755,size=65536k", true, err)
      < 0)
    return -1;
  cleanup_close int devfd = cimg_openat_in_root (rootfd, "/dev", O_PATH | O_DIRECTORY, 0);
  if (devfd < 0)
    return cimg_error_sys (err, "open /dev");
  /* mknod rather than bind mounts of the host's nodes: one syscall each, no mount to undo,
     and the device cgroup (not the node) is what guards access anyway. */
  static const struct
  {
    const char *name;
    unsigned maj, min;
  } nodes[] = { { "null", 1, 3 },   { "zero", 1, 5 },    { "full", 1, 7 },
                { "random", 1, 8 }, { "urandom", 1, 9 }, { "tty", 5, 0 } };
  for (size_t i = 0; i < ARRAY_SIZE (nodes); i++)
    if (dev_node (devfd, nodes[i].name, nodes[i].maj, nodes[i].min, err) < 0)
      return -1;
  static const struct
  {
    const char *name, *target;
  } links[] = { { "fd", "/proc/self/fd" },       { "stdin", "/proc/self/fd/0" },
                { "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" },
                { "ptmx", "pts/ptmx" },          { "core", "/proc/kcore" } };
  for (size_t i = 0; i < ARRAY_SIZE (links); i++)
    if (symlinkat (links[i].target, devfd, links[i].name) < 0)
      return cimg_error_sys (err, "symlink /dev/%s", links[i].name);
  if (spec->privileged)
    {
      cleanup_close int host = open ("/dev", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (host < 0)
        return cimg_error_sys (err, "open the host's /dev");
      if (copy_host_devices (host, devfd, 0, err) < 0)
        return -1;
    }
  for (size_t i = 0; i < spec->n_devices; i++)
    {
      const struct cimg_spec_device *d = &spec->devices[i];
      cleanup_free char *name = NULL;
      cleanup_close int parent = -1;
      {
        char *base = NULL, *to_free = NULL;
        cleanup_close int pfd = target_in_root (rootfd, d->path, false, err);
        if (pfd < 0)
          return -1;
        parent = cimg_open_parent_in_root (rootfd, d->path, &base, &to_free);
        if (parent < 0)
          return cimg_error_sys (err, "device %s", d->path);
        name = xstrdup (base);
        free (to_free);
      }
      /* target_in_root left an empty file where the node goes. */
      unlinkat (parent, name, 0);
      if (mknodat (parent, name, (d->type == 'b' ? S_IFBLK : S_IFCHR) | (d->mode & 07777),
                   makedev (d->major, d->minor))
              < 0
          || fchmodat (parent, name, d->mode & 07777, 0) < 0)
        return cimg_error_sys (err, "mknod %s", d->path);
    }
  if (mkdirat (devfd, "pts", 0755) < 0 || mkdirat (devfd, "shm", 01777) < 0
      || mkdirat (devfd, "mqueue", 0755) < 0)
    return cimg_error_sys (err, "mkdir in /dev");
  if (mount_in_root (rootfd, "/dev/pts", "devpts", "devpts", MS_NOSUID | MS_NOEXEC,
                     "newinstance,ptmxmode=0666,mode=0620,gid=5", true, err)
      < 0)
    return -1;
  char shm[64];
  snprintf (shm, sizeof shm, "mode=1777,size=%lldk",
            (long long)((spec->shm_size > 0 ? spec->shm_size : 64 << 20) + 1023) / 1024);
  if (mount_in_root (rootfd, "/dev/shm", "shm", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, shm,
                     true, err)
      < 0)
    return -1;
  if (mount_in_root (rootfd, "/dev/mqueue", "mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                     NULL, true, err)
      < 0)
    return -1;
  return 0;
}

int
cimg_rootfs_populate (const struct cimg_spec *spec, int rootfd, cimg_error_t *err)
{
  if (mount_in_root (rootfd, "/proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, true,
                     err)
      < 0)
    return -1;
  unsigned long ro = spec->privileged ? 0 : MS_RDONLY;
  /* sysfs shows the network devices of the mounting process's network namespace: the
     container's own, since this runs after clone(CLONE_NEWNET). */
  if (mount_in_root (rootfd, "/sys", "sysfs", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | ro, NULL,
                     true, err)
      < 0)
    return -1;
  /* The container sees no cgroup tree of the host: an empty read-only tmpfs, as a container
     without a private cgroup namespace on v1 would otherwise show the host's hierarchy. */
  if (mount_in_root (rootfd, "/sys/fs/cgroup", "tmpfs", "tmpfs",
                     MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY, "mode=755", true, err)
      < 0)
    return -1;
  if (populate_dev (spec, rootfd, err) < 0)
    return -1;
  for (size_t i = 0; i < spec->n_mounts; i++)
    {
      const struct cimg_spec_mount *m = &spec->mounts[i];
      bool dir = true;
      unsigned long flags = m->flags;
      if (m->type == NULL)
        {
          struct stat st;
          if (stat (m->source, &st) < 0)
            return cimg_error_sys (err, "bind %s", m->source);
          dir = S_ISDIR (st.st_mode);
          flags |= MS_BIND | MS_REC;
        }
      if (mount_in_root (rootfd, m->destination, m->source, m->type, flags, m->data, dir, err) < 0)
        return -1;
    }
  return 0;
}

int
cimg_rootfs_pivot (int rootfd, cimg_error_t *err)
{
  /* pivot_root(".", ".") stacks the old root on top of the new one at "/", where a lazy
     unmount removes it: no directory for the old root is needed inside the image (which may
     be read-only) and the host's tree is gone from the container's namespace. */
  if (fchdir (rootfd) < 0)
    return cimg_error_sys (err, "chdir to the rootfs");
  if (sys_pivot_root (".", ".") < 0)
    return cimg_error_sys (err, "pivot_root");
  if (umount2 (".", MNT_DETACH) < 0)
    return cimg_error_sys (err, "detach the old root");
  if (chdir ("/") < 0)
    return cimg_error_sys (err, "chdir /");
  return 0;
}

int
cimg_rootfs_finish (const struct cimg_spec *spec, cimg_error_t *err)
{
  if (spec->readonly_rootfs && mount (NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) < 0)
    return cimg_error_sys (err, "remount / read-only");
  if (spec->privileged)
    return 0;
  char *const *masked = spec->masked_paths ? spec->masked_paths : cimg_default_masked_paths;
  for (size_t i = 0; masked[i]; i++)
    {
      /* /dev/null over a file, an empty read-only tmpfs over a directory; a path the kernel
         does not have is fine. These are under the /proc and /sys just mounted, which hold no
         symlink of the image. */
      if (mount ("/dev/null", masked[i], NULL, MS_BIND, NULL) == 0)
        continue;
      if (errno == ENOENT)
        continue;
      if (errno != ENOTDIR
          || mount ("tmpfs", masked[i], "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    "size=0")
                 < 0)
        return cimg_error_sys (err, "mask %s", masked[i]);
    }
  char *const *ro = spec->readonly_paths ? spec->readonly_paths : cimg_default_readonly_paths;
  for (size_t i = 0; ro[i]; i++)
    {
      if (mount (ro[i], ro[i], NULL, MS_BIND | MS_REC, NULL) < 0)
        {
          if (errno == ENOENT)
            continue;
          return cimg_error_sys (err, "bind %s", ro[i]);
        }
      if (mount (NULL, ro[i], NULL,
                 MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)
          < 0)
        return cimg_error_sys (err, "remount %s read-only", ro[i]);
    }
  return 0;
}

int
cimg_net_lo_up (cimg_error_t *err)
{
  cleanup_close int s = socket (AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0)
    return cimg_error_sys (err, "socket");
  struct ifreq ifr = { 0 };
  strcpy (ifr.ifr_name, "lo");
  if (ioctl (s, SIOCGIFFLAGS, &ifr) < 0)
    return cimg_error_sys (err, "get flags of lo");
  ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
  if (ioctl (s, SIOCSIFFLAGS, &ifr) < 0)
    return cimg_error_sys (err, "bring lo up");
  return 0;
}
