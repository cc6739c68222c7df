/* cimg diff, commit, export, cp: a container's filesystem.

   Views. A container's overlay is mounted only in its own mount namespace, so these commands
   mount what they need themselves, in a private mount namespace of this process (entered before
   anything else, as build does: nothing can leak to the host and everything goes when cimg
   exits, however it exits), on the container's merged/ directory:
   - the image's layers alone (read-only; diff and commit ask it "did the image have this");
   - the merged filesystem read-only: the write layer as the top-most *lower* dir above the
     image's layers. Without an upper dir it needs no work dir and never writes, so it is safe
     even while the container runs on the same upper dir (export, cp out of a stopped one);
   - the merged filesystem writable, with the container's own upper and work dirs, only while
     the container is stopped and its lock is held (cp into a stopped container): the kernel
     then does copy-up, whiteouts and opaque directories exactly as the container would.
   A running container is reached through /proc/PID/root instead (cp), which is its live view
   with its mounts, checked against the recorded process start time so that a recycled PID is
   never used.

   Every path inside a container is resolved with cimg_openat_in_root (openat2 RESOLVE_IN_ROOT):
   symlinks and ".." in the container cannot lead out of its root. Below the resolved start,
   trees are walked by file descriptor with O_NOFOLLOW, so a symlink met on the way is copied as
   a symlink and never followed. */
#include "build/build-exec.h"
#include "build/build.h"
#include "build/change.h"
#include "cli/cli.h"
#include "runtime/confine.h"
#include "store/container-fs.h"
#include "store/container.h"
#include "store/store-internal.h"

#include <archive.h>
#include <archive_entry.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <time.h>

#define COPY_BUFSIZE (128 * 1024)

/* ---------------------------------------------------------------- views */

enum view_kind
{
  VIEW_IMAGE,     /* the image's layers, read-only */
  VIEW_MERGED_RO, /* write layer over the image's layers, read-only */
  VIEW_MERGED_RW, /* the container's own overlay (stopped containers only) */
};

/* Open fd (O_RDONLY directory) of the wanted view, or -1 with err. *none: the image has no layer
   (VIEW_IMAGE then returns -1 without an error). */
static int
open_view (struct cimg_store *s, const struct cimg_container *ctr, enum view_kind kind,
           cimg_error_t *err)
{
  int sfd = cimg_store_dirfd (s);
  json_t *gd = json_object_get (json_object_get (ctr->config, "GraphDriver"), "Data");
  const char *lowers = cimg_json_str (gd, "LowerDir");
  cleanup_free char *dir = cimg_container_dir (ctr);
  cleanup_free char *upper = xasprintf ("%s/upper", dir);
  cleanup_free char *work = xasprintf ("%s/work", dir);
  cleanup_free char *merged = xasprintf ("%s/merged", dir);
  if (lowers == NULL || *lowers == '\0')
    {
      /* An image without layers: the write layer is the whole filesystem, and has no
         whiteouts that could matter. */
      if (kind == VIEW_IMAGE)
        return -1;
      int fd = openat (sfd, upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (fd < 0)
        return cimg_error_sys (err, "container %.12s: open its write layer", ctr->id);
      return fd;
    }
  for (const char *p = lowers; *p; p++)
    if (*p == ',')
      return cimg_error_set (err, EINVAL, "container %.12s: bad LowerDir", ctr->id);
  cleanup_free char *opts = NULL;
  unsigned long flags = MS_NOSUID | MS_NODEV;
  switch (kind)
    {
    case VIEW_IMAGE:
      /* overlay wants two lower dirs when it has no upper: a single layer is opened as is. */
      if (strchr (lowers, ':') == NULL)
        {
          int fd = openat (sfd, lowers, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
          if (fd < 0)
            return cimg_error_sys (err, "container %.12s: open layer %s", ctr->id, lowers);
          return fd;
        }
      opts = xasprintf ("lowerdir=%s", lowers);
      flags |= MS_RDONLY;
      break;
    case VIEW_MERGED_RO:
      /* index=off: with the index on, overlay refuses a lower dir that is the upper dir of
         a mount (the running container's); without it, it only warns. This mount never
         writes, and reads a snapshot of what the container wrote. */
      opts = xasprintf ("lowerdir=%s:%s,index=off", upper, lowers);
      flags |= MS_RDONLY;
      break;
    case VIEW_MERGED_RW:
      opts = xasprintf ("lowerdir=%s,upperdir=%s,workdir=%s", lowers, upper, work);
      break;
    }
  if (strlen (opts) >= (size_t)sysconf (_SC_PAGESIZE))
    return cimg_error_set (err, E2BIG, "container %.12s: too many layers to mount", ctr->id);
  /* The layer paths are relative to the store root (short l/ links keep them within a page):
     mount from there, then come back, for cp's host paths are relative to the caller's cwd. */
  cleanup_close int cwd = open (".", O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (cwd < 0)
    return cimg_error_sys (err, "open the current directory");
  if (fchdir (sfd) < 0)
    return cimg_error_sys (err, "chdir to the store");
  int fd = -1;
  if (mount ("overlay", merged, "overlay", flags, opts) < 0)
    cimg_error_sys (err, "container %.12s: mount its filesystem", ctr->id);
  else if ((fd = open (merged, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
    cimg_error_sys (err, "container %.12s: open its filesystem", ctr->id);
  if (fchdir (cwd) < 0 && fd >= 0)
    {
      close (fd);
      return cimg_error_sys (err, "chdir back");
    }
  return fd;
}

/* The root of a running container as its process sees it (O_PATH), or -1 with err. */
static int
open_proc_root (const struct cimg_container *ctr, pid_t pid, cimg_error_t *err)
{
  char path[64];
  snprintf (path, sizeof path, "/proc/%d/root", (int)pid);
  int fd = open (path, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "container %.12s: open its root", ctr->id);
  /* The PID could have been recycled between the state check and the open. */
  int64_t want = cimg_json_int (ctr->state, "PidStart");
  if (want != 0 && cimg_pid_start_time (pid) != want)
    {
      close (fd);
      return cimg_error_set (err, ESRCH, "container %.12s is not running", ctr->id);
    }
  return fd;
}

static int
open_upper (struct cimg_store *s, const struct cimg_container *ctr, cimg_error_t *err)
{
  cleanup_free char *dir = cimg_container_dir (ctr);
  cleanup_free char *upper = xasprintf ("%s/upper", dir);
  int fd = openat (cimg_store_dirfd (s), upper, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return cimg_error_sys (err, "container %.12s: open its write layer", ctr->id);
  return fd;
}

/* ---------------------------------------------------------------- diff */

int
cmd_diff (struct cli *c, int argc, char **argv)
{
  int r;
  while ((r = cli_getopt (c, argc, argv, "", NULL)) != -1)
    return r == 'h' ? 0 : EXIT_USAGE;
  if (argc - optind != 1)
    return cli_usage_error (c, "\"%s\" requires exactly 1 argument.", c->prog);
  cleanup_store struct cimg_store *s = NULL;
  cleanup_container struct cimg_container *ctr = NULL;
  int rc = cli_one_container (c, argv[optind], CLI_CTR_MOUNT_NS, &s, &ctr);
  if (rc != 0)
    return rc;
  cimg_error_t err = { 0 };
  cleanup_close int ufd = open_upper (s, ctr, &err);
  if (ufd < 0)
    return cli_fail (&err);
  cleanup_close int lfd = open_view (s, ctr, VIEW_IMAGE, &err);
  if (lfd < 0 && cimg_error_is_set (&err))
    return cli_fail (&err);
  cleanup_strv char **ph = cimg_container_placeholders (ctr);
  struct cimg_change *v = NULL;
  size_t n = 0;
  if (cimg_container_changes (ufd, lfd, ph, &v, &n, &err) < 0)
    {
      cimg_error_wrap (&err, "diff %s", argv[optind]);
      return cli_fail (&err);
    }
  for (size_t i = 0; i < n; i++)
    printf ("%c %s\n", v[i].kind, v[i].path);
  cimg_changes_free (v, n);
  return fflush (stdout) == 0 ? 0 : EXIT_FAIL;
}

/* ---------------------------------------------------------------- commit */

static char *
join_command (json_t *cfg)
{
  size_t len = 1;
  const char *path = cimg_json_str (cfg, "Path") ?: "";
  len += strlen (path);
  json_t *args = json_object_get (cfg, "Args");
  size_t i;
  json_t *a;
  json_array_foreach (args, i, a) len += strlen (json_string_value (a) ?: "") + 1;
  char *s = xzalloc (len);
  strcat (s, path);
  json_array_foreach (args, i, a)
  {
    strcat (s, " ");
    strcat (s, json_string_value (a) ?: "");
  }
  return s;
}

static bool
env_has_key (json_t *env, const char *key)
{
  size_t klen = strlen (key), i;
  json_t *e;
  json_array_foreach (env, i, e)
  {
    const char *v = json_string_value (e);
    if (v && strncmp (v, key, klen) == 0 && v[klen] == '=')
      return true;
  }
  return false;
}

/* The container's Env is the process environment run resolved: besides the image's Env and
   -e, it holds what the runtime adds for every container (HOSTNAME, TERM with -t, HOME last
   when unset), which Docker adds to the process only and does not commit. Those are taken out
   again when the image did not set them itself: HOSTNAME when it is the container's hostname,
   TERM=xterm with a tty, and HOME when it is the last entry (where run appends it). */
static void
strip_runtime_env (json_t *cc, json_t *image_cc, json_t *record)
{
  json_t *env = json_object_get (cc, "Env");
  if (!json_is_array (env))
    return;
  json_t *ienv = json_object_get (image_cc, "Env");
  const char *hostname = cimg_json_str (record, "Hostname");
  bool tty = json_is_true (json_object_get (json_object_get (record, "Config"), "Tty"));
  json_t *out = json_array ();
  size_t n = json_array_size (env), i;
  json_t *e;
  json_array_foreach (env, i, e)
  {
    const char *v = json_string_value (e);
    if (v == NULL)
      continue;
    if (cimg_str_has_prefix (v, "HOSTNAME=") && !env_has_key (ienv, "HOSTNAME") && hostname
        && strcmp (v + 9, hostname) == 0)
      continue;
    if (tty && strcmp (v, "TERM=xterm") == 0 && !env_has_key (ienv, "TERM"))
      continue;
    if (i == n - 1 && cimg_str_has_prefix (v, "HOME=") && !env_has_key (ienv, "HOME"))
      continue;
    json_array_append (out, e);
  }
  json_object_set_new (cc, "Env", out);
}

/* Docker's commit --pause (the default): the container's processes are frozen while its write
   layer is read, so that the layer is one instant of it and not files caught half-written.
   The store lock is taken (shared, as the commit takes it) before freezing, so that the
   container never waits frozen for a gc or check to finish. The signals that end cimg are
   held until the thaw: the commit then finishes, as Docker's daemon finishes it when its
   client is interrupted, and the container is never left frozen by a ctrl-c. *cg is NULL when
   the container has no cgroup any more (it has exited: nothing writes). */
static int
pause_container (struct cimg_store *s, const struct cimg_container *ctr, struct cimg_cgroup **cg,
                 sigset_t *old_mask, cimg_error_t *err)
{
  *cg = NULL;
  sigset_t held;
  sigemptyset (&held);
  static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };
  for (size_t i = 0; i < ARRAY_SIZE (sigs); i++)
    sigaddset (&held, sigs[i]);
  sigprocmask (SIG_BLOCK, &held, old_mask);
  if (cimg_store_lock (s, CIMG_LOCK_SHARED, err) < 0)
    {
      sigprocmask (SIG_SETMASK, old_mask, NULL);
      return -1;
    }
  cimg_error_t e = { 0 };
  struct cimg_cgroup *g = cimg_cgroup_open (ctr->id, &e);
  if (g == NULL && e.code == ENOENT)
    {
      cimg_error_clear (&e);
      cimg_store_unlock (s);
      sigprocmask (SIG_SETMASK, old_mask, NULL);
      return 0;
    }
  if (g == NULL || cimg_cgroup_freeze (g, true, &e) < 0)
    {
      cimg_cgroup_free (g);
      cimg_store_unlock (s);
      sigprocmask (SIG_SETMASK, old_mask, NULL);
      *err = e;
      return -1;
    }
  *cg = g;
  return 0;
}

/* Thaw what pause_container froze, release the lock, let held signals in; frees cg. */
static int
unpause_container (struct cimg_store *s, struct cimg_cgroup *cg, const sigset_t *old_mask,
                   cimg_error_t *err)
{
  int rc = cimg_cgroup_freeze (cg, false, err);
  cimg_cgroup_free (cg);
  cimg_store_unlock (s);
  sigprocmask (SIG_SETMASK, old_mask, NULL);
  return rc;
}

int
cmd_commit (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "author", required_argument, NULL, 'a' },
                                            { "change", required_argument, NULL, 'c' },
                                            { "message", required_argument, NULL, 'm' },
                                            { "pause", optional_argument, NULL, 'p' },
                                            { 0 } };
  const char *author = NULL, *message = NULL;
  cleanup_strv char **changes = NULL;
  bool pause = true;
  int r;
  while ((r = cli_getopt (c, argc, argv, "a:c:m:p", longopts)) != -1)
    switch (r)
      {
      case 'a':
        author = optarg;
        break;
      case 'c':
        cimg_strv_append (&changes, optarg);
        break;
      case 'm':
        message = optarg;
        break;
      case 'p':
        if (optarg && strcmp (optarg, "true") && strcmp (optarg, "false"))
          return cli_usage_error (c, "invalid argument \"%s\" for \"-p, --pause\" flag", optarg);
        pause = optarg == NULL || strcmp (optarg, "true") == 0;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (argc - optind < 1 || argc - optind > 2)
    return cli_usage_error (c, "\"%s\" requires at least 1 and at most 2 arguments.", c->prog);
  const char *tag = argc - optind == 2 ? argv[optind + 1] : NULL;
  cimg_error_t err = { 0 };
  if (tag != NULL)
    {
      /* Refused before the container is looked up and paused, as Docker's CLI does. */
      cleanup_ref struct cimg_ref *ref = cimg_ref_parse_tag (tag, &err);
      if (ref == NULL)
        {
          cimg_error_wrap (&err, "commit %s", argv[optind]);
          return cli_fail (&err);
        }
    }
  cleanup_store struct cimg_store *s = NULL;
  cleanup_container struct cimg_container *ctr = NULL;
  int rc = cli_one_container (c, argv[optind], CLI_CTR_MOUNT_NS, &s, &ctr);
  if (rc != 0)
    return rc;
  const char *image_id = cimg_json_str (ctr->config, "Image");
  cleanup_image struct cimg_image *base
      = image_id ? cimg_store_find_image (s, image_id, &err) : NULL;
  if (base == NULL)
    {
      if (!cimg_error_is_set (&err))
        cimg_error_set (&err, ENOENT, "container %.12s has no image", ctr->id);
      cimg_error_wrap (&err, "commit %s", argv[optind]);
      return cli_fail (&err);
    }

  /* The config as the container ran, over the image's: what Docker's commit records. */
  cleanup_json json_t *cc = json_deep_copy (json_object_get (base->config, "config"));
  if (!json_is_object (cc))
    {
      json_decref (cc);
      cc = json_object ();
    }
  json_t *ran = json_object_get (ctr->config, "Config");
  static const char *const fields[] = { "Cmd", "Entrypoint", "Env", "WorkingDir", "User" };
  for (size_t i = 0; i < ARRAY_SIZE (fields); i++)
    {
      json_t *v = json_object_get (ran, fields[i]);
      if (v != NULL)
        json_object_set (cc, fields[i], v);
    }
  strip_runtime_env (cc, json_object_get (base->config, "config"), ctr->config);
  if (cimg_config_apply_changes (cc, changes, &err) < 0)
    {
      cimg_error_wrap (&err, "commit %s", argv[optind]);
      return cli_fail (&err);
    }

  cleanup_close int ufd = open_upper (s, ctr, &err);
  if (ufd < 0)
    return cli_fail (&err);
  cleanup_close int lfd = open_view (s, ctr, VIEW_IMAGE, &err);
  if (lfd < 0 && cimg_error_is_set (&err))
    return cli_fail (&err);
  cleanup_free char *dir = cimg_container_dir (ctr);
  cleanup_close int dfd
      = openat (cimg_store_dirfd (s), dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dfd < 0)
    {
      cimg_error_sys (&err, "container %.12s", ctr->id);
      return cli_fail (&err);
    }
  cleanup_strv char **ph = cimg_container_placeholders (ctr);
  cleanup_free char *created_by = join_command (ctr->config);
  struct cimg_commit_opts o = {
    .container_id = ctr->id,
    .config = cc,
    .created_by = created_by,
    .comment = message,
    .author = author,
    .tag = tag,
  };
  char id[CIMG_DIGEST_BUFSIZE];
  struct cimg_cgroup *cg = NULL;
  sigset_t old_mask;
  if (pause && cimg_container_pid (ctr) > 0 && pause_container (s, ctr, &cg, &old_mask, &err) < 0)
    {
      cimg_error_wrap (&err, "commit %s: pause", argv[optind]);
      return cli_fail (&err);
    }
  rc = cimg_container_commit (s, base, ufd, lfd, dfd, ph, &o, id, &err);
  bool thawed = true;
  if (cg != NULL)
    {
      cimg_error_t terr = { 0 };
      if (unpause_container (s, cg, &old_mask, &terr) < 0)
        {
          thawed = false;
          cimg_error_wrap (&terr, "commit %s: the container stays frozen", argv[optind]);
          cli_fail (&terr);
        }
    }
  if (rc < 0)
    {
      cimg_error_wrap (&err, "commit %s", argv[optind]);
      return cli_fail (&err);
    }
  /* The image is there even when the thaw failed: its ID is printed all the same. */
  printf ("%s\n", id);
  return thawed ? 0 : EXIT_FAIL;
}

/* ---------------------------------------------------------------- export */

struct fd_out
{
  int fd;
  const char *name;
};

static int
fd_write (void *data, const void *buf, size_t len, cimg_error_t *err)
{
  struct fd_out *o = data;
  if (cimg_write_all (o->fd, buf, len) < 0)
    return cimg_error_sys (err, "write %s", o->name);
  return 0;
}

int
cmd_export (struct cli *c, int argc, char **argv)
{
  cleanup_cli_output struct cli_output out = { 0 };
  int r = cli_output_args (c, argc, argv, 1, true, &out);
  if (r != CLI_CONTINUE)
    return r;
  cimg_error_t err = { 0 };
  cleanup_store struct cimg_store *s = NULL;
  cleanup_container struct cimg_container *ctr = NULL;
  int rc = cli_one_container (c, argv[optind], CLI_CTR_MOUNT_NS, &s, &ctr);
  if (rc != 0)
    return rc;
  cleanup_close int vfd = open_view (s, ctr, VIEW_MERGED_RO, &err);
  if (vfd < 0)
    return cli_fail (&err);
  struct fd_out o = { .fd = out.fd, .name = out.path ? out.path : "stdout" };
  if (cimg_layer_pack (vfd, 0, fd_write, &o, &err) < 0 || cli_output_commit (&out, &err) < 0)
    {
      cimg_error_wrap (&err, "export %s", argv[optind]);
      return cli_fail (&err);
    }
  return 0;
}

/* ---------------------------------------------------------------- cp: copying trees */

/* Refuse to write into the kernel's filesystems of a running container (/proc, /sys): they
   are the host's kernel, not the container's files. */
static int
check_writable_fs (int fd, const char *desc, cimg_error_t *err)
{
  struct statfs sf;
  if (fstatfs (fd, &sf) == 0
      && (sf.f_type == PROC_SUPER_MAGIC || sf.f_type == SYSFS_MAGIC
          || sf.f_type == CGROUP_SUPER_MAGIC || sf.f_type == CGROUP2_SUPER_MAGIC))
    return cimg_error_set (err, EPERM, "%s: cannot copy into a kernel filesystem", desc);
  return 0;
}

struct cp_opts
{
  bool keep_owner; /* -a: the source's uid/gid; else uid/gid below */
  uid_t uid;
  gid_t gid;
  bool guard; /* refuse to write into kernel filesystems (into a running container) */
  char *buf;
};

static int
reopen (int fd, int flags)
{
  char p[64];
  snprintf (p, sizeof p, "/proc/self/fd/%d", fd);
  return open (p, flags | O_CLOEXEC);
}

static int
set_owner_mode_times (struct cp_opts *o, int fd, const struct stat *st, const char *what,
                      cimg_error_t *err)
{
  uid_t u = o->keep_owner ? st->st_uid : o->uid;
  gid_t g = o->keep_owner ? st->st_gid : o->gid;
  if (fchown (fd, u, g) < 0)
    return cimg_error_sys (err, "chown %s", what);
  if (fchmod (fd, st->st_mode & 07777) < 0)
    return cimg_error_sys (err, "chmod %s", what);
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  if (futimens (fd, ts) < 0)
    return cimg_error_sys (err, "set times of %s", what);
  return 0;
}

/* Make room for a non-directory named name in dfd: an existing non-directory is removed (never
   written through: it may be a symlink), an existing directory is an error. */
static int
clear_for_file (int dfd, const char *name, const char *what, cimg_error_t *err)
{
  struct stat st;
  if (fstatat (dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
    return errno == ENOENT ? 0 : cimg_error_sys (err, "%s", what);
  if (S_ISDIR (st.st_mode))
    return cimg_error_set (err, EISDIR, "cannot overwrite directory \"%s\" with non-directory",
                           what);
  if (unlinkat (dfd, name, 0) < 0)
    return cimg_error_sys (err, "remove %s", what);
  return 0;
}

static int copy_node (struct cp_opts *o, int sfd, const struct stat *st, int dfd, const char *name,
                      const char *what, cimg_error_t *err);

static int
copy_data (struct cp_opts *o, int in, int out, const char *what, cimg_error_t *err)
{
  for (;;)
    {
      ssize_t n = read (in, o->buf, COPY_BUFSIZE);
      if (n < 0)
        {
          if (errno == EINTR)
            continue;
          return cimg_error_sys (err, "read %s", what);
        }
      if (n == 0)
        return 0;
      if (cimg_write_all (out, o->buf, (size_t)n) < 0)
        return cimg_error_sys (err, "write %s", what);
    }
}

static int
copy_dir (struct cp_opts *o, int sfd, const struct stat *st, int dfd, const char *name,
          const char *what, cimg_error_t *err)
{
  struct stat dst;
  if (fstatat (dfd, name, &dst, AT_SYMLINK_NOFOLLOW) == 0)
    {
      if (!S_ISDIR (dst.st_mode))
        return cimg_error_set (err, ENOTDIR, "cannot overwrite non-directory \"%s\" with directory",
                               what);
    }
  else if (errno != ENOENT || mkdirat (dfd, name, 0700) < 0)
    return cimg_error_sys (err, "mkdir %s", what);
  cleanup_close int cfd = openat (dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (cfd < 0)
    return cimg_error_sys (err, "open %s", what);
  /* An existing directory may be a mount point of the container's (its /sys). */
  if (o->guard && check_writable_fs (cfd, what, err) < 0)
    return -1;
  cleanup_close int rfd = reopen (sfd, O_RDONLY | O_DIRECTORY);
  if (rfd < 0)
    return cimg_error_sys (err, "open %s", what);
  cleanup_dir DIR *d = fdopendir (rfd);
  if (d == NULL)
    return cimg_error_sys (err, "read %s", what);
  rfd = -1;
  struct dirent *de;
  errno = 0;
  while ((de = readdir (d)) != NULL)
    {
      if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
        continue;
      cleanup_free char *cwhat = xasprintf ("%s/%s", what, de->d_name);
      cleanup_close int chfd = openat (dirfd (d), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
      struct stat cst;
      if (chfd < 0 || fstat (chfd, &cst) < 0)
        return cimg_error_sys (err, "%s", cwhat);
      if (copy_node (o, chfd, &cst, cfd, de->d_name, cwhat, err) < 0)
        return -1;
      errno = 0;
    }
  if (errno != 0)
    return cimg_error_sys (err, "read %s", what);
  return set_owner_mode_times (o, cfd, st, what, err);
}

/* Copy the node sfd (O_PATH, not followed) with stat st to name in directory dfd. */
static int
copy_node (struct cp_opts *o, int sfd, const struct stat *st, int dfd, const char *name,
           const char *what, cimg_error_t *err)
{
  if (S_ISDIR (st->st_mode))
    return copy_dir (o, sfd, st, dfd, name, what, err);
  if (S_ISSOCK (st->st_mode))
    return 0;
  if (clear_for_file (dfd, name, what, err) < 0)
    return -1;
  uid_t u = o->keep_owner ? st->st_uid : o->uid;
  gid_t g = o->keep_owner ? st->st_gid : o->gid;
  if (S_ISREG (st->st_mode))
    {
      cleanup_close int in = reopen (sfd, O_RDONLY);
      if (in < 0)
        return cimg_error_sys (err, "open %s", what);
      cleanup_close int out
          = openat (dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (out < 0)
        return cimg_error_sys (err, "create %s", what);
      if (copy_data (o, in, out, what, err) < 0)
        return -1;
      return set_owner_mode_times (o, out, st, what, err);
    }
  if (S_ISLNK (st->st_mode))
    {
      char target[PATH_MAX + 1];
      ssize_t n = readlinkat (sfd, "", target, PATH_MAX);
      if (n < 0)
        return cimg_error_sys (err, "readlink %s", what);
      target[n] = '\0';
      if (symlinkat (target, dfd, name) < 0)
        return cimg_error_sys (err, "symlink %s", what);
    }
  else if (mknodat (dfd, name, st->st_mode & (S_IFMT | 07777), st->st_rdev) < 0)
    return cimg_error_sys (err, "mknod %s", what);
  if (fchownat (dfd, name, u, g, AT_SYMLINK_NOFOLLOW) < 0)
    return cimg_error_sys (err, "chown %s", what);
  if (!S_ISLNK (st->st_mode) && fchmodat (dfd, name, st->st_mode & 07777, 0) < 0)
    return cimg_error_sys (err, "chmod %s", what);
  struct timespec ts[2] = { st->st_atim, st->st_mtim };
  if (utimensat (dfd, name, ts, AT_SYMLINK_NOFOLLOW) < 0)
    return cimg_error_sys (err, "set times of %s", what);
  return 0;
}

/* ---------------------------------------------------------------- cp: tar streams */

static void
entry_freep (struct archive_entry **e)
{
  if (*e)
    archive_entry_free (*e);
}
#define cleanup_entry __attribute__ ((cleanup (entry_freep)))

static la_ssize_t
tar_out_cb (struct archive *a, void *data, const void *buf, size_t len)
{
  (void)a;
  if (cimg_write_all (*(int *)data, buf, len) < 0)
    return -1;
  return (la_ssize_t)len;
}

static int
strcmp_p (const void *a, const void *b)
{
  return strcmp (*(char *const *)a, *(char *const *)b);
}

static int
tar_node (struct archive *a, struct cp_opts *o, int sfd, const struct stat *st, const char *name,
          cimg_error_t *err)
{
  if (S_ISSOCK (st->st_mode))
    return 0;
  cleanup_entry struct archive_entry *e = archive_entry_new ();
  if (e == NULL)
    abort ();
  cleanup_free char *ename = S_ISDIR (st->st_mode) ? xasprintf ("%s/", name) : xstrdup (name);
  archive_entry_copy_pathname (e, ename);
  archive_entry_set_filetype (e, st->st_mode & S_IFMT);
  archive_entry_set_perm (e, st->st_mode & 07777);
  archive_entry_set_uid (e, st->st_uid);
  archive_entry_set_gid (e, st->st_gid);
  archive_entry_set_mtime (e, st->st_mtim.tv_sec, 0);
  cleanup_close int in = -1;
  if (S_ISREG (st->st_mode))
    {
      in = reopen (sfd, O_RDONLY);
      if (in < 0)
        return cimg_error_sys (err, "open %s", name);
      archive_entry_set_size (e, st->st_size);
    }
  else if (S_ISLNK (st->st_mode))
    {
      char target[PATH_MAX + 1];
      ssize_t n = readlinkat (sfd, "", target, PATH_MAX);
      if (n < 0)
        return cimg_error_sys (err, "readlink %s", name);
      target[n] = '\0';
      archive_entry_copy_symlink (e, target);
    }
  else if (S_ISCHR (st->st_mode) || S_ISBLK (st->st_mode))
    archive_entry_set_rdev (e, st->st_rdev);
  if (archive_write_header (a, e) < ARCHIVE_WARN)
    return cimg_error_set (err, EIO, "%s: %s", name, archive_error_string (a));
  if (in >= 0)
    {
      int64_t left = st->st_size;
      while (left > 0)
        {
          ssize_t n = read (in, o->buf, left < COPY_BUFSIZE ? (size_t)left : COPY_BUFSIZE);
          if (n < 0 && errno == EINTR)
            continue;
          if (n < 0)
            return cimg_error_sys (err, "read %s", name);
          if (n == 0)
            break; /* shrunk: libarchive pads the entry */
          if (archive_write_data (a, o->buf, (size_t)n) < 0)
            return cimg_error_set (err, EIO, "%s: %s", name, archive_error_string (a));
          left -= n;
        }
    }
  if (!S_ISDIR (st->st_mode))
    return 0;
  cleanup_close int rfd = reopen (sfd, O_RDONLY | O_DIRECTORY);
  if (rfd < 0)
    return cimg_error_sys (err, "open %s", name);
  cleanup_dir DIR *d = fdopendir (rfd);
  if (d == NULL)
    return cimg_error_sys (err, "read %s", name);
  rfd = -1;
  cleanup_strv char **names = NULL;
  size_t count = 0;
  struct dirent *de;
  while ((de = readdir (d)) != NULL)
    if (strcmp (de->d_name, ".") != 0 && strcmp (de->d_name, "..") != 0)
      {
        cimg_strv_append (&names, de->d_name);
        count++;
      }
  /* Sorted: the same tree gives the same stream. */
  if (count > 1)
    qsort (names, count, sizeof *names, strcmp_p);
  for (size_t i = 0; i < count; i++)
    {
      cleanup_free char *cname
          = strcmp (name, ".") == 0 ? xstrdup (names[i]) : xasprintf ("%s/%s", name, names[i]);
      cleanup_close int cfd = openat (dirfd (d), names[i], O_PATH | O_NOFOLLOW | O_CLOEXEC);
      struct stat cst;
      if (cfd < 0 || fstat (cfd, &cst) < 0)
        return cimg_error_sys (err, "%s", cname);
      if (tar_node (a, o, cfd, &cst, cname, err) < 0)
        return -1;
    }
  return 0;
}

/* Write the tree at sfd as a tar to fd; entries are named below top ("etc/passwd"), or, with
   top ".", are the directory's contents. */
static int
write_tar (struct cp_opts *o, int sfd, const struct stat *st, const char *top, int fd,
           cimg_error_t *err)
{
  struct archive *a = archive_write_new ();
  if (a == NULL)
    abort ();
  archive_write_set_format_pax_restricted (a);
  archive_write_set_bytes_in_last_block (a, 1);
  int rc = -1;
  if (archive_write_open (a, &fd, NULL, tar_out_cb, NULL) != ARCHIVE_OK)
    cimg_error_set (err, EIO, "write tar: %s", archive_error_string (a));
  else if (strcmp (top, ".") == 0 && S_ISDIR (st->st_mode))
    {
      /* The contents only: the directory's own entry is "./" (skipped), then its children. */
      rc = tar_node (a, o, sfd, st, ".", err);
    }
  else
    rc = tar_node (a, o, sfd, st, top, err);
  if (rc == 0 && archive_write_close (a) != ARCHIVE_OK)
    rc = cimg_error_set (err, EIO, "write tar: %s", archive_error_string (a));
  archive_write_free (a);
  return rc;
}

/* Clean a tar entry name: no leading "/" or "./", no "." parts; ".." is refused. Returns NULL
   for the root itself ("", "./"). */
static char *
clean_entry_name (const char *name, bool *bad)
{
  *bad = false;
  cleanup_free char *copy = xstrdup (name);
  char *out = xzalloc (strlen (name) + 2);
  char *save = NULL;
  for (char *t = strtok_r (copy, "/", &save); t; t = strtok_r (NULL, "/", &save))
    {
      if (strcmp (t, ".") == 0)
        continue;
      if (strcmp (t, "..") == 0)
        {
          *bad = true;
          free (out);
          return NULL;
        }
      if (*out)
        strcat (out, "/");
      strcat (out, t);
    }
  if (*out == '\0')
    {
      free (out);
      return NULL;
    }
  return out;
}

struct dir_time
{
  char *path;
  struct timespec mtime;
};

/* Extract the tar on fd into dest (a directory path inside rootfd). Every entry's parent is
   resolved inside rootfd, so a symlink the tar (or the container) put on the way cannot lead
   out of the container; the entry itself is never followed. */
static int
extract_tar (struct cp_opts *o, int fd, int rootfd, const char *dest, cimg_error_t *err)
{
  cleanup_archive_read struct archive *a = cimg_archive_read_fd (fd, err);
  if (a == NULL)
    return -1;
  struct dir_time *times = NULL;
  size_t ntimes = 0;
  int rc = 0;
  for (;;)
    {
      struct archive_entry *e;
      int r = archive_read_next_header (a, &e);
      if (r == ARCHIVE_EOF)
        break;
      if (r < ARCHIVE_WARN)
        {
          rc = cimg_error_set (err, EIO, "read tar: %s", archive_error_string (a));
          break;
        }
      bool bad;
      cleanup_free char *rel = clean_entry_name (archive_entry_pathname (e), &bad);
      if (bad)
        {
          rc = cimg_error_set (err, EINVAL, "entry \"%s\": path leaves the destination",
                               archive_entry_pathname (e));
          break;
        }
      if (rel == NULL)
        continue;
      cleanup_free char *path = xasprintf ("%s/%s", dest, rel);
      char *base = NULL, *to_free = NULL;
      cleanup_close int pfd = cimg_open_parent_in_root (rootfd, path, &base, &to_free);
      cleanup_free char *tf = to_free;
      if (pfd < 0)
        {
          rc = cimg_error_sys (err, "entry \"%s\"", rel);
          break;
        }
      if (o->guard && check_writable_fs (pfd, rel, err) < 0)
        {
          rc = -1;
          break;
        }
      struct stat st = { 0 };
      st.st_mode = archive_entry_mode (e);
      st.st_uid = (uid_t)archive_entry_uid (e);
      st.st_gid = (gid_t)archive_entry_gid (e);
      st.st_mtim.tv_sec = archive_entry_mtime (e);
      st.st_mtim.tv_nsec = archive_entry_mtime_nsec (e);
      st.st_atim = st.st_mtim;
      st.st_rdev = archive_entry_rdev (e);
      const char *hl = archive_entry_hardlink (e);
      if (hl != NULL)
        {
          cleanup_free char *hrel = clean_entry_name (hl, &bad);
          if (hrel == NULL)
            {
              rc = cimg_error_set (err, EINVAL, "entry \"%s\": bad hard link", rel);
              break;
            }
          cleanup_free char *hpath = xasprintf ("%s/%s", dest, hrel);
          cleanup_close int tfd = cimg_openat_in_root (rootfd, hpath, O_PATH | O_NOFOLLOW, 0);
          if (tfd < 0 || clear_for_file (pfd, base, rel, err) < 0
              || linkat (tfd, "", pfd, base, AT_EMPTY_PATH) < 0)
            {
              if (!cimg_error_is_set (err))
                cimg_error_sys (err, "entry \"%s\": link to \"%s\"", rel, hrel);
              rc = -1;
              break;
            }
          continue;
        }
      if (S_ISDIR (st.st_mode))
        {
          struct stat dst;
          if (fstatat (pfd, base, &dst, AT_SYMLINK_NOFOLLOW) == 0)
            {
              if (!S_ISDIR (dst.st_mode))
                {
                  rc = cimg_error_set (err, ENOTDIR,
                                       "cannot overwrite non-directory \"%s\" with directory", rel);
                  break;
                }
            }
          else if (errno != ENOENT || mkdirat (pfd, base, 0700) < 0)
            {
              rc = cimg_error_sys (err, "mkdir %s", rel);
              break;
            }
          cleanup_close int dfd
              = openat (pfd, base, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
          struct stat keep = st;
          keep.st_mtim.tv_nsec = UTIME_OMIT;
          keep.st_atim.tv_nsec = UTIME_OMIT;
          if (dfd < 0 || set_owner_mode_times (o, dfd, &keep, rel, err) < 0)
            {
              if (!cimg_error_is_set (err))
                cimg_error_sys (err, "open %s", rel);
              rc = -1;
              break;
            }
          /* Its time is set once everything below it is written. */
          times = xrealloc (times, (ntimes + 1) * sizeof *times);
          times[ntimes++] = (struct dir_time){ xstrdup (path), st.st_mtim };
          continue;
        }
      if (S_ISSOCK (st.st_mode))
        continue;
      if (clear_for_file (pfd, base, rel, err) < 0)
        {
          rc = -1;
          break;
        }
      if (S_ISREG (st.st_mode))
        {
          cleanup_close int out
              = openat (pfd, base, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
          if (out < 0)
            {
              rc = cimg_error_sys (err, "create %s", rel);
              break;
            }
          la_ssize_t n;
          while ((n = archive_read_data (a, o->buf, COPY_BUFSIZE)) > 0)
            if (cimg_write_all (out, o->buf, (size_t)n) < 0)
              break;
          if (n != 0)
            {
              rc = n < 0 ? cimg_error_set (err, EIO, "read tar: %s", archive_error_string (a))
                         : cimg_error_sys (err, "write %s", rel);
              break;
            }
          if (set_owner_mode_times (o, out, &st, rel, err) < 0)
            {
              rc = -1;
              break;
            }
          continue;
        }
      if (S_ISLNK (st.st_mode))
        {
          if (symlinkat (archive_entry_symlink (e) ?: "", pfd, base) < 0)
            {
              rc = cimg_error_sys (err, "symlink %s", rel);
              break;
            }
        }
      else if (mknodat (pfd, base, st.st_mode & (S_IFMT | 07777), st.st_rdev) < 0)
        {
          rc = cimg_error_sys (err, "mknod %s", rel);
          break;
        }
      uid_t u = o->keep_owner ? st.st_uid : o->uid;
      gid_t g = o->keep_owner ? st.st_gid : o->gid;
      struct timespec ts[2] = { st.st_atim, st.st_mtim };
      if (fchownat (pfd, base, u, g, AT_SYMLINK_NOFOLLOW) < 0
          || utimensat (pfd, base, ts, AT_SYMLINK_NOFOLLOW) < 0)
        {
          rc = cimg_error_sys (err, "set owner of %s", rel);
          break;
        }
    }
  for (size_t i = ntimes; i-- > 0;)
    {
      if (rc == 0)
        {
          cleanup_close int dfd
              = cimg_openat_in_root (rootfd, times[i].path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0);
          struct timespec ts[2] = { times[i].mtime, times[i].mtime };
          if (dfd >= 0)
            futimens (dfd, ts);
        }
      free (times[i].path);
    }
  free (times);
  return rc;
}

/* ---------------------------------------------------------------- cp: endpoints */

/* Split "CONTAINER:PATH" as Docker does: a path starting with "/" or "." is local even if it
   holds a ':'. */
static bool
split_container_arg (const char *arg, char **ctr, const char **path)
{
  if (arg[0] == '/' || arg[0] == '.')
    return false;
  const char *colon = strchr (arg, ':');
  if (colon == NULL || colon == arg)
    return false;
  *ctr = xstrndup (arg, (size_t)(colon - arg));
  *path = colon + 1;
  return true;
}

/* Path shapes that change the meaning of a copy: "…/." (the directory's contents) and a
   trailing "/" (must be a directory). */
static bool
ends_with_dot (const char *p)
{
  size_t n = strlen (p);
  return (n == 1 && p[0] == '.') || (n >= 2 && strcmp (p + n - 2, "/.") == 0);
}

static bool
ends_with_slash (const char *p)
{
  size_t n = strlen (p);
  return n > 0 && p[n - 1] == '/';
}

/* The last component of p ("" for "/"), newly allocated. */
static char *
base_name (const char *p)
{
  cleanup_free char *c = xstrdup (p);
  size_t n = strlen (c);
  while (n > 1 && c[n - 1] == '/')
    c[--n] = '\0';
  char *s = strrchr (c, '/');
  return xstrdup (s ? s + 1 : c);
}

/* Where a copy lands: dfd + name, after Docker's rules for an existing or missing
   destination. dst is the path given, resolved through open_dst_parent (in the container's
   root or on the host). */
struct dst
{
  int root;     /* container root fd, or AT_FDCWD for the host */
  bool in_root; /* resolve inside root */
  const char *path;
  const char *desc; /* "CONTAINER:PATH" or the host path, for messages */
};

static int
dst_open (const struct dst *d, const char *path, int flags)
{
  if (d->in_root)
    return cimg_openat_in_root (d->root, path, flags, 0);
  return open (path, flags | O_CLOEXEC);
}

/* Copy the node srcfd (O_PATH) to the destination d following Docker's rules. contents: the
   source was given as "DIR/.". */
static int
copy_to_resolved (struct cp_opts *o, int srcfd, const struct stat *st, const char *srcbase,
                  bool contents, const struct dst *d, cimg_error_t *err)
{
  struct stat dst;
  bool exists = false;
  {
    cleanup_close int fd = dst_open (d, d->path, O_PATH);
    if (fd >= 0 && fstat (fd, &dst) == 0)
      exists = true;
    else if (fd < 0 && errno != ENOENT)
      return cimg_error_sys (err, "%s", d->desc);
  }
  bool src_dir = S_ISDIR (st->st_mode);
  if (exists && S_ISDIR (dst.st_mode))
    {
      cleanup_close int dfd = dst_open (d, d->path, O_RDONLY | O_DIRECTORY);
      if (dfd < 0)
        return cimg_error_sys (err, "%s", d->desc);
      if (d->in_root && check_writable_fs (dfd, d->desc, err) < 0)
        return -1;
      if (src_dir && contents)
        {
          /* The contents merge into the existing directory. */
          cleanup_close int rfd = reopen (srcfd, O_RDONLY | O_DIRECTORY);
          cleanup_dir DIR *dir = rfd >= 0 ? fdopendir (rfd) : NULL;
          if (dir == NULL)
            return cimg_error_sys (err, "read source directory");
          rfd = -1;
          struct dirent *de;
          while ((de = readdir (dir)) != NULL)
            {
              if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
                continue;
              cleanup_free char *what = xasprintf ("%s/%s", d->desc, de->d_name);
              cleanup_close int cfd
                  = openat (dirfd (dir), de->d_name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
              struct stat cst;
              if (cfd < 0 || fstat (cfd, &cst) < 0)
                return cimg_error_sys (err, "%s", de->d_name);
              if (copy_node (o, cfd, &cst, dfd, de->d_name, what, err) < 0)
                return -1;
            }
          return 0;
        }
      if (*srcbase == '\0')
        return cimg_error_set (err, EINVAL, "cannot copy the root without \"/.\"");
      cleanup_free char *what = xasprintf ("%s/%s", d->desc, srcbase);
      return copy_node (o, srcfd, st, dfd, srcbase, what, err);
    }
  if (exists && src_dir)
    return cimg_error_set (err, ENOTDIR, "cannot copy a directory to a file: %s", d->desc);
  if (!exists && !src_dir && ends_with_slash (d->path))
    return cimg_error_set (err, ENOENT, "destination directory %s does not exist", d->desc);
  /* A file (new or replaced), or a new directory named by the destination. */
  char *base = NULL, *to_free = NULL;
  cleanup_close int pfd = -1;
  if (d->in_root)
    pfd = cimg_open_parent_in_root (d->root, d->path, &base, &to_free);
  else
    {
      to_free = xstrdup (d->path);
      size_t n = strlen (to_free);
      while (n > 1 && to_free[n - 1] == '/')
        to_free[--n] = '\0';
      char *slash = strrchr (to_free, '/');
      const char *parent = ".";
      if (slash)
        {
          *slash = '\0';
          base = slash + 1;
          parent = *to_free ? to_free : "/";
        }
      else
        base = to_free;
      pfd = open (parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
  cleanup_free char *tf = to_free;
  if (pfd < 0)
    {
      if (errno == ENOENT || errno == ENOTDIR)
        return cimg_error_set (err, ENOENT, "no such directory for %s", d->desc);
      return cimg_error_sys (err, "%s", d->desc);
    }
  if (d->in_root && check_writable_fs (pfd, d->desc, err) < 0)
    return -1;
  return copy_node (o, srcfd, st, pfd, base, d->desc, err);
}

/* As Docker, a destination that is a symlink is followed (up to 10 links): in the container
   its target is resolved inside the container's root like every other path, so a link to
   "/tmp/host-canary" names the container's /tmp/host-canary. */
static int
copy_to_dst (struct cp_opts *o, int srcfd, const struct stat *st, const char *srcbase,
             bool contents, const struct dst *d, cimg_error_t *err)
{
  cleanup_free char *path = xstrdup (d->path);
  for (int i = 0; i < 10; i++)
    {
      cleanup_close int fd = dst_open (d, path, O_PATH | O_NOFOLLOW);
      struct stat lst;
      if (fd < 0 || fstat (fd, &lst) < 0 || !S_ISLNK (lst.st_mode))
        break;
      char target[PATH_MAX + 1];
      ssize_t n = readlinkat (fd, "", target, PATH_MAX);
      if (n <= 0)
        break;
      target[n] = '\0';
      char *next;
      if (target[0] == '/')
        next = xstrdup (target);
      else
        {
          cleanup_free char *parent = xstrdup (path);
          size_t len = strlen (parent);
          while (len > 1 && parent[len - 1] == '/')
            parent[--len] = '\0';
          char *slash = strrchr (parent, '/');
          if (slash == NULL)
            next = xstrdup (target);
          else
            {
              slash[1] = '\0';
              next = xasprintf ("%s%s", parent, target);
            }
        }
      free (path);
      path = next;
    }
  struct dst r = *d;
  r.path = path;
  return copy_to_resolved (o, srcfd, st, srcbase, contents, &r, err);
}

/* ---------------------------------------------------------------- cp */

int
cmd_cp (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[] = { { "archive", no_argument, NULL, 'a' },
                                            { "follow-link", no_argument, NULL, 'L' },
                                            { "quiet", no_argument, NULL, 'q' },
                                            { 0 } };
  bool archive = false, follow = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "aLq", longopts)) != -1)
    switch (r)
      {
      case 'a':
        archive = true;
        break;
      case 'L':
        follow = true;
        break;
      case 'q':
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (argc - optind != 2)
    return cli_usage_error (c, "\"%s\" requires exactly 2 arguments.", c->prog);
  const char *src = argv[optind], *dest = argv[optind + 1];
  cleanup_free char *sctr = NULL, *dctr = NULL;
  const char *spath = NULL, *dpath = NULL;
  bool from = split_container_arg (src, &sctr, &spath);
  bool to = split_container_arg (dest, &dctr, &dpath);
  if (from && to)
    return cli_usage_error (c, "copying between containers is not supported");
  if (!from && !to)
    return cli_usage_error (c, "must specify at least one container source");
  if ((from && *spath == '\0') || (to && *dpath == '\0'))
    return cli_usage_error (c, "filesystem path in a container cannot be empty");
  cleanup_store struct cimg_store *s = NULL;
  cleanup_container struct cimg_container *ctr = NULL;
  int rc = cli_one_container (c, from ? sctr : dctr, CLI_CTR_MOUNT_NS, &s, &ctr);
  if (rc != 0)
    return rc;
  cimg_error_t err = { 0 };
  cleanup_free char *buf = xmalloc (COPY_BUFSIZE);
  struct cp_opts o = { .keep_owner = archive, .buf = buf };
  pid_t pid = cimg_container_pid (ctr);

  if (from)
    {
      /* Out of the container: to the caller's uid/gid unless -a. */
      o.uid = getuid ();
      o.gid = getgid ();
      cleanup_close int rootfd
          = pid > 0 ? open_proc_root (ctr, pid, &err) : open_view (s, ctr, VIEW_MERGED_RO, &err);
      if (rootfd < 0)
        return cli_fail (&err);
      cleanup_free char *abs = spath[0] == '/' ? xstrdup (spath) : xasprintf ("/%s", spath);
      int flags = O_PATH | (follow ? 0 : O_NOFOLLOW);
      /* "…/" and "…/." must name a directory; the final symlink is then followed. */
      if (ends_with_slash (abs) || ends_with_dot (abs))
        flags = O_PATH | O_DIRECTORY;
      cleanup_close int sfd = cimg_openat_in_root (rootfd, abs, flags, 0);
      struct stat st;
      if (sfd < 0 || fstat (sfd, &st) < 0)
        {
          if (errno == ENOENT)
            fprintf (stderr, "cimg: Could not find the file %s in container %s\n", spath, sctr);
          else
            fprintf (stderr, "cimg: %s:%s: %s\n", sctr, spath, strerror (errno));
          return EXIT_FAIL;
        }
      cleanup_free char *sbase = base_name (abs);
      bool contents = ends_with_dot (abs);
      if (strcmp (dest, "-") == 0)
        {
          if (write_tar (&o, sfd, &st, contents ? "." : (*sbase ? sbase : "."), 1, &err) < 0)
            return cli_fail (&err);
          return 0;
        }
      struct dst d = { .root = AT_FDCWD, .in_root = false, .path = dest, .desc = dest };
      if (copy_to_dst (&o, sfd, &st, sbase, contents, &d, &err) < 0)
        {
          cimg_error_wrap (&err, "copy %s", src);
          return cli_fail (&err);
        }
      return 0;
    }

  /* Into the container: root-owned unless -a (Docker: "UID:GID of the root user"). */
  o.uid = 0;
  o.gid = 0;
  o.guard = true;
  cleanup_close int lk = -1;
  cleanup_close int rootfd = -1;
  if (pid > 0)
    rootfd = open_proc_root (ctr, pid, &err);
  else
    {
      /* A stopped container's own overlay is mounted here: nothing else may run on its upper
         dir meanwhile, so the state is checked again under its lock. */
      lk = cimg_container_lock (s, ctr, &err);
      if (lk < 0 || cimg_container_reload (s, ctr, &err) < 0)
        return cli_fail (&err);
      pid = cimg_container_pid (ctr);
      rootfd = pid > 0 ? open_proc_root (ctr, pid, &err) : open_view (s, ctr, VIEW_MERGED_RW, &err);
    }
  if (rootfd < 0)
    return cli_fail (&err);
  if (json_is_true (
          json_object_get (json_object_get (ctr->config, "HostConfig"), "ReadonlyRootfs")))
    {
      fprintf (stderr, "cimg: container %s: its root filesystem is read-only\n", dctr);
      return EXIT_FAIL;
    }
  cleanup_free char *abs = dpath[0] == '/' ? xstrdup (dpath) : xasprintf ("/%s", dpath);
  cleanup_free char *desc = xasprintf ("%s:%s", dctr, dpath);
  if (strcmp (src, "-") == 0)
    {
      cleanup_close int dfd = cimg_openat_in_root (rootfd, abs, O_PATH, 0);
      struct stat st;
      if (dfd < 0 || fstat (dfd, &st) < 0)
        {
          if (errno == ENOENT)
            fprintf (stderr, "cimg: Could not find the file %s in container %s\n", dpath, dctr);
          else
            fprintf (stderr, "cimg: %s: %s\n", desc, strerror (errno));
          return EXIT_FAIL;
        }
      if (!S_ISDIR (st.st_mode))
        {
          fprintf (stderr, "cimg: destination \"%s\" must be a directory\n", desc);
          return EXIT_FAIL;
        }
      if (check_writable_fs (dfd, desc, &err) < 0 || extract_tar (&o, 0, rootfd, abs, &err) < 0)
        {
          cimg_error_wrap (&err, "copy to %s", desc);
          return cli_fail (&err);
        }
      return 0;
    }
  cleanup_close int sfd = open (src, O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW));
  if ((ends_with_slash (src) || ends_with_dot (src)) && sfd >= 0)
    {
      close (sfd);
      sfd = open (src, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
  struct stat st;
  if (sfd < 0 || fstat (sfd, &st) < 0)
    {
      fprintf (stderr, "cimg: %s: %s\n", src, strerror (errno));
      return EXIT_FAIL;
    }
  cleanup_free char *sbase = base_name (src);
  if (strcmp (sbase, ".") == 0 || strcmp (sbase, "..") == 0 || *sbase == '\0')
    {
      free (sbase);
      cleanup_free char *real = realpath (src, NULL);
      sbase = base_name (real ? real : src);
    }
  struct dst d = { .root = rootfd, .in_root = true, .path = abs, .desc = desc };
  if (copy_to_dst (&o, sfd, &st, sbase, ends_with_dot (src), &d, &err) < 0)
    {
      cimg_error_wrap (&err, "copy to %s", desc);
      return cli_fail (&err);
    }
  return 0;
}
