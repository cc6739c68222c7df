/* cimg run, ps, rm. run resolves the image config and the flags into a container record
   (config.json, as Docker's inspect names its fields), then the record into a runtime spec:
   the lifecycle commands (start) rebuild the same spec from the same record. */
#include "cli/cli.h"
#include "runtime/user.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runtime/monitor.h"
#include "runtime/runtime.h"
#include "store/container.h"

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct run_opts
{
  char **env, **env_files, **cap_add, **cap_drop, **group_add, **security_opt;
  const char *entrypoint, *hostname, *name, *network, *user, *workdir;
  bool interactive, tty, rm, privileged, read_only, detach;
  const char *restart;
  int64_t memory, memory_swap, cpu_shares, cpu_quota, cpu_period, pids_limit, shm_size;
  double cpus;
  bool memory_swap_set;
  char **volumes, **tmpfs, **ulimits, **devices, **rates[4];
  const char *cidfile, *cpuset_cpus, *cpuset_mems;
  int64_t memory_reservation, memory_swappiness, kernel_memory, blkio_weight;
  bool oom_kill_disable;
};

static void
run_opts_clear (struct run_opts *o)
{
  cimg_strv_free (o->env);
  cimg_strv_free (o->env_files);
  cimg_strv_free (o->cap_add);
  cimg_strv_free (o->cap_drop);
  cimg_strv_free (o->group_add);
  cimg_strv_free (o->security_opt);
  cimg_strv_free (o->volumes);
  cimg_strv_free (o->tmpfs);
  cimg_strv_free (o->ulimits);
  cimg_strv_free (o->devices);
  for (size_t i = 0; i < 4; i++)
    cimg_strv_free (o->rates[i]);
}

/* Docker's RAMInBytes: a decimal number with an optional binary unit (b, k, m, g, t, p; with
   or without a trailing "b"; any case). */
static int
parse_bytes (const char *s, int64_t *out)
{
  char *end;
  errno = 0;
  double v = strtod (s, &end);
  if (end == s || errno || v < 0 || v != v)
    return -1;
  cleanup_free char *unit = xstrdup (end);
  for (char *p = unit; *p; p++)
    *p = (char)tolower ((unsigned char)*p);
  static const char *const units[] = { "", "k", "m", "g", "t", "p" };
  double mul = -1;
  for (size_t i = 0; i < ARRAY_SIZE (units); i++)
    {
      char a[4], b[4];
      snprintf (a, sizeof a, "%s", units[i]);
      snprintf (b, sizeof b, "%sb", units[i]);
      if (strcmp (unit, a) == 0 || strcmp (unit, b) == 0)
        {
          mul = 1;
          for (size_t k = 0; k < i; k++)
            mul *= 1024;
        }
    }
  if (mul < 0 || v * mul > 9.2e18)
    return -1;
  *out = (int64_t)(v * mul);
  return 0;
}

static int
parse_int (const char *s, int64_t *out)
{
  char *end;
  errno = 0;
  long long v = strtoll (s, &end, 10);
  if (end == s || *end || errno)
    return -1;
  *out = v;
  return 0;
}

/* Split "a,b" list flags (--cap-add NET_ADMIN,SYS_TIME) as Docker's list options don't; one
   value per flag is the norm, but commas are accepted for caps. */
static void
append_list (char ***v, const char *s)
{
  cleanup_free char *copy = xstrdup (s);
  char *save = NULL;
  for (char *t = strtok_r (copy, ",", &save); t; t = strtok_r (NULL, ",", &save))
    cimg_strv_append (v, t);
}

static int
bad_value (struct cli *c, const char *v, const char *flag, const char *why)
{
  cli_usage_error (c, "invalid argument \"%s\" for \"%s\" flag: %s", v, flag, why);
  return -1;
}

enum
{
  O_HELP = 0x100,
  O_CAP_ADD,
  O_CAP_DROP,
  O_CPU_PERIOD,
  O_CPU_QUOTA,
  O_CPUS,
  O_ENTRYPOINT,
  O_ENV_FILE,
  O_GROUP_ADD,
  O_MEMORY_SWAP,
  O_NAME,
  O_NETWORK,
  O_PIDS_LIMIT,
  O_PRIVILEGED,
  O_READ_ONLY,
  O_RM,
  O_SECURITY_OPT,
  O_SHM_SIZE,
  O_VOLUME,
  O_TMPFS,
  O_ULIMIT,
  O_DEVICE,
  O_READ_BPS,
  O_WRITE_BPS,
  O_READ_IOPS,
  O_WRITE_IOPS,
  O_CIDFILE,
  O_CPUSET_CPUS,
  O_CPUSET_MEMS,
  O_MEMORY_RESERVATION,
  O_MEMORY_SWAPPINESS,
  O_KERNEL_MEMORY,
  O_OOM_KILL_DISABLE,
  O_BLKIO_WEIGHT,
  O_RESTART,
};

static int
parse_run (struct cli *c, int argc, char **argv, struct run_opts *o)
{
  static const struct option longopts[] = {
    { "help", no_argument, NULL, O_HELP },
    { "cap-add", required_argument, NULL, O_CAP_ADD },
    { "cap-drop", required_argument, NULL, O_CAP_DROP },
    { "cpu-period", required_argument, NULL, O_CPU_PERIOD },
    { "cpu-quota", required_argument, NULL, O_CPU_QUOTA },
    { "cpu-shares", required_argument, NULL, 'c' },
    { "cpus", required_argument, NULL, O_CPUS },
    { "entrypoint", required_argument, NULL, O_ENTRYPOINT },
    { "env", required_argument, NULL, 'e' },
    { "env-file", required_argument, NULL, O_ENV_FILE },
    { "group-add", required_argument, NULL, O_GROUP_ADD },
    { "hostname", required_argument, NULL, 'h' },
    { "interactive", no_argument, NULL, 'i' },
    { "memory", required_argument, NULL, 'm' },
    { "memory-swap", required_argument, NULL, O_MEMORY_SWAP },
    { "name", required_argument, NULL, O_NAME },
    { "network", required_argument, NULL, O_NETWORK },
    { "net", required_argument, NULL, O_NETWORK },
    { "pids-limit", required_argument, NULL, O_PIDS_LIMIT },
    { "privileged", no_argument, NULL, O_PRIVILEGED },
    { "read-only", no_argument, NULL, O_READ_ONLY },
    { "rm", no_argument, NULL, O_RM },
    { "security-opt", required_argument, NULL, O_SECURITY_OPT },
    { "shm-size", required_argument, NULL, O_SHM_SIZE },
    { "volume", required_argument, NULL, 'v' },
    { "tmpfs", required_argument, NULL, O_TMPFS },
    { "ulimit", required_argument, NULL, O_ULIMIT },
    { "device", required_argument, NULL, O_DEVICE },
    { "device-read-bps", required_argument, NULL, O_READ_BPS },
    { "device-write-bps", required_argument, NULL, O_WRITE_BPS },
    { "device-read-iops", required_argument, NULL, O_READ_IOPS },
    { "device-write-iops", required_argument, NULL, O_WRITE_IOPS },
    { "cidfile", required_argument, NULL, O_CIDFILE },
    { "cpuset-cpus", required_argument, NULL, O_CPUSET_CPUS },
    { "cpuset-mems", required_argument, NULL, O_CPUSET_MEMS },
    { "memory-reservation", required_argument, NULL, O_MEMORY_RESERVATION },
    { "memory-swappiness", required_argument, NULL, O_MEMORY_SWAPPINESS },
    { "kernel-memory", required_argument, NULL, O_KERNEL_MEMORY },
    { "oom-kill-disable", no_argument, NULL, O_OOM_KILL_DISABLE },
    { "blkio-weight", required_argument, NULL, O_BLKIO_WEIGHT },
    { "detach", no_argument, NULL, 'd' },
    { "restart", required_argument, NULL, O_RESTART },
    { "tty", no_argument, NULL, 't' },
    { "user", required_argument, NULL, 'u' },
    { "workdir", required_argument, NULL, 'w' },
    { 0 },
  };
  /* "+": options end at the first non-option (the image); what follows is the command. */
  int r;
  while ((r = getopt_long (argc, argv, "+:c:de:h:im:tu:v:w:", longopts, NULL)) != -1)
    {
      const char *a = optarg;
      switch (r)
        {
        case O_HELP:
          cli_print_help (c);
          return 1;
        case O_CAP_ADD:
          append_list (&o->cap_add, a);
          break;
        case O_CAP_DROP:
          append_list (&o->cap_drop, a);
          break;
        case O_CPU_PERIOD:
          if (parse_int (a, &o->cpu_period) < 0)
            return bad_value (c, a, "--cpu-period", "invalid syntax");
          break;
        case O_CPU_QUOTA:
          if (parse_int (a, &o->cpu_quota) < 0)
            return bad_value (c, a, "--cpu-quota", "invalid syntax");
          break;
        case 'c':
          if (parse_int (a, &o->cpu_shares) < 0)
            return bad_value (c, a, "-c, --cpu-shares", "invalid syntax");
          break;
        case O_CPUS:
          {
            char *end;
            o->cpus = strtod (a, &end);
            if (end == a || *end || !(o->cpus >= 0))
              return bad_value (c, a, "--cpus", "invalid syntax");
            break;
          }
        case O_ENTRYPOINT:
          o->entrypoint = a;
          break;
        case 'e':
          cimg_strv_append (&o->env, a);
          break;
        case O_ENV_FILE:
          cimg_strv_append (&o->env_files, a);
          break;
        case O_GROUP_ADD:
          cimg_strv_append (&o->group_add, a);
          break;
        case 'h':
          o->hostname = a;
          break;
        case 'i':
          o->interactive = true;
          break;
        case 'd':
          o->detach = true;
          break;
        case O_RESTART:
          o->restart = a;
          break;
        case 'm':
          if (parse_bytes (a, &o->memory) < 0)
            return bad_value (c, a, "-m, --memory", "invalid size");
          break;
        case O_MEMORY_SWAP:
          o->memory_swap_set = true;
          if (strcmp (a, "-1") == 0)
            o->memory_swap = -1;
          else if (parse_bytes (a, &o->memory_swap) < 0)
            return bad_value (c, a, "--memory-swap", "invalid size");
          break;
        case O_NAME:
          o->name = a;
          break;
        case O_NETWORK:
          o->network = a;
          break;
        case O_PIDS_LIMIT:
          if (parse_int (a, &o->pids_limit) < 0)
            return bad_value (c, a, "--pids-limit", "invalid syntax");
          break;
        case O_PRIVILEGED:
          o->privileged = true;
          break;
        case O_READ_ONLY:
          o->read_only = true;
          break;
        case O_RM:
          o->rm = true;
          break;
        case O_SECURITY_OPT:
          cimg_strv_append (&o->security_opt, a);
          break;
        case O_SHM_SIZE:
          if (parse_bytes (a, &o->shm_size) < 0 || o->shm_size == 0)
            return bad_value (c, a, "--shm-size", "invalid size");
          break;
        case 't':
          o->tty = true;
          break;
        case 'v':
          cimg_strv_append (&o->volumes, a);
          break;
        case O_TMPFS:
          cimg_strv_append (&o->tmpfs, a);
          break;
        case O_ULIMIT:
          cimg_strv_append (&o->ulimits, a);
          break;
        case O_DEVICE:
          cimg_strv_append (&o->devices, a);
          break;
        case O_READ_BPS:
        case O_WRITE_BPS:
        case O_READ_IOPS:
        case O_WRITE_IOPS:
          cimg_strv_append (&o->rates[r - O_READ_BPS], a);
          break;
        case O_CIDFILE:
          o->cidfile = a;
          break;
        case O_CPUSET_CPUS:
          o->cpuset_cpus = a;
          break;
        case O_CPUSET_MEMS:
          o->cpuset_mems = a;
          break;
        case O_MEMORY_RESERVATION:
          if (parse_bytes (a, &o->memory_reservation) < 0)
            return bad_value (c, a, "--memory-reservation", "invalid size");
          break;
        case O_MEMORY_SWAPPINESS:
          if (parse_int (a, &o->memory_swappiness) < 0)
            return bad_value (c, a, "--memory-swappiness", "invalid syntax");
          if (o->memory_swappiness != -1
              && (o->memory_swappiness < 0 || o->memory_swappiness > 100))
            {
              cli_usage_error (c, "invalid value: %lld, valid memory swappiness range is 0-100",
                               (long long)o->memory_swappiness);
              return -1;
            }
          break;
        case O_KERNEL_MEMORY:
          if (parse_bytes (a, &o->kernel_memory) < 0)
            return bad_value (c, a, "--kernel-memory", "invalid size");
          break;
        case O_OOM_KILL_DISABLE:
          o->oom_kill_disable = true;
          break;
        case O_BLKIO_WEIGHT:
          if (parse_int (a, &o->blkio_weight) < 0)
            return bad_value (c, a, "--blkio-weight", "invalid syntax");
          break;
        case 'u':
          o->user = a;
          break;
        case 'w':
          o->workdir = a;
          break;
        case ':':
          cli_usage_error (c, "flag needs an argument: %s", argv[optind - 1]);
          return -1;
        default:
          if (optopt && optopt < 0x100)
            cli_usage_error (c, "unknown shorthand flag: '%c' in -%c", optopt, optopt);
          else
            cli_usage_error (c, "unknown flag: %s", argv[optind - 1]);
          return -1;
        }
    }
  return 0;
}

/* ---------------------------------------------------------------- image config → record */

/* Set K=V in env, replacing an entry with the same key. */
static void
env_set (char ***env, const char *kv)
{
  const char *eq = strchr (kv, '=');
  size_t klen = eq ? (size_t)(eq - kv) : strlen (kv);
  for (size_t i = 0; *env && (*env)[i]; i++)
    if (strncmp ((*env)[i], kv, klen) == 0 && (*env)[i][klen] == '=')
      {
        free ((*env)[i]);
        (*env)[i] = xstrdup (kv);
        return;
      }
  cimg_strv_append (env, kv);
}

static bool
env_has (char **env, const char *key)
{
  size_t n = strlen (key);
  for (size_t i = 0; env && env[i]; i++)
    if (strncmp (env[i], key, n) == 0 && env[i][n] == '=')
      return true;
  return false;
}

/* -e K=V, or -e K (taken from cimg's environment when set there, else dropped). */
static void
env_add_arg (char ***env, const char *a)
{
  if (strchr (a, '='))
    env_set (env, a);
  else if (getenv (a))
    {
      cleanup_free char *kv = xasprintf ("%s=%s", a, getenv (a));
      env_set (env, kv);
    }
}

static int
read_env_file (const char *path, char ***env, cimg_error_t *err)
{
  cleanup_free char *buf = NULL;
  size_t len;
  if (cimg_read_file_at (AT_FDCWD, path, 1 << 20, &buf, &len, err) < 0)
    return -1;
  char *save = NULL;
  for (char *line = strtok_r (buf, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
    {
      size_t n = strlen (line);
      if (n && line[n - 1] == '\r')
        line[--n] = '\0';
      while (*line == ' ' || *line == '\t')
        line++;
      if (*line == '\0' || *line == '#')
        continue;
      env_add_arg (env, line);
    }
  return 0;
}

/* Fields of a passwd/group line: name:x:id:… */
static int
check_security_opts (struct run_opts *o, bool *seccomp, bool *nnp, char **profile,
                     cimg_error_t *err)
{
  for (size_t i = 0; o->security_opt && o->security_opt[i]; i++)
    {
      const char *s = o->security_opt[i];
      if (strcmp (s, "no-new-privileges") == 0 || strcmp (s, "no-new-privileges:true") == 0
          || strcmp (s, "no-new-privileges=true") == 0)
        *nnp = true;
      else if (strcmp (s, "no-new-privileges:false") == 0
               || strcmp (s, "no-new-privileges=false") == 0)
        *nnp = false;
      else if (strcmp (s, "seccomp=unconfined") == 0 || strcmp (s, "seccomp:unconfined") == 0)
        *seccomp = false;
      else if (cimg_str_has_prefix (s, "seccomp=") || cimg_str_has_prefix (s, "seccomp:"))
        {
          size_t len = 0;
          free (*profile);
          *profile = NULL;
          if (cimg_seccomp_read_profile (s + 8, profile, &len, err) < 0)
            return cimg_error_wrap (err, "--security-opt %s", s);
          /* Compiled once here so that a bad profile is refused before anything is created. */
          cleanup_seccomp_prog struct cimg_seccomp_prog *check = NULL;
          if (cimg_seccomp_prepare_json (*profile, len, NULL, &check, err) < 0)
            return cimg_error_wrap (err, "--security-opt %s", s);
        }
      else
        return cimg_error_set (err, EINVAL, "invalid --security-opt: \"%s\"", s);
    }
  return 0;
}

static int
check_limits (struct run_opts *o, struct cimg_limits *l, int64_t *nano_cpus, cimg_error_t *err)
{
  if (o->memory && o->memory < 6 * 1024 * 1024)
    return cimg_error_set (err, EINVAL, "Minimum memory limit allowed is 6MB");
  if (o->memory_swap_set && o->memory_swap != -1 && o->memory_swap != 0)
    {
      if (o->memory == 0)
        return cimg_error_set (err, EINVAL,
                               "You should always set the Memory limit when using Memoryswap "
                               "limit, see usage");
      if (o->memory_swap < o->memory)
        return cimg_error_set (err, EINVAL,
                               "Minimum memoryswap limit should be larger than memory limit, see "
                               "usage");
    }
  if (o->cpus != 0)
    {
      long ncpu = sysconf (_SC_NPROCESSORS_ONLN);
      if (o->cpus < 0.01 || o->cpus > (double)ncpu)
        return cimg_error_set (err, EINVAL,
                               "Range of CPUs is from 0.01 to %ld.00, as there are only %ld CPUs "
                               "available",
                               ncpu, ncpu);
      if (o->cpu_period || o->cpu_quota)
        return cimg_error_set (err, EINVAL,
                               "Conflicting options: Nano CPUs and CPU Period/Quota cannot both "
                               "be set");
    }
  if (o->cpu_period && (o->cpu_period < 1000 || o->cpu_period > 1000000))
    return cimg_error_set (err, EINVAL,
                           "CPU cfs period can not be less than 1ms (i.e. 1000) or "
                           "larger than 1s (i.e. 1000000)");
  if (o->cpu_quota && o->cpu_quota > 0 && o->cpu_quota < 1000)
    return cimg_error_set (err, EINVAL, "CPU cfs quota can not be less than 1ms (i.e. 1000)");
  l->memory = o->memory;
  l->memory_swap = o->memory_swap_set ? o->memory_swap : 0;
  l->cpu_shares = o->cpu_shares;
  l->cpu_period = o->cpu_period;
  l->cpu_quota = o->cpu_quota;
  *nano_cpus = (int64_t)(o->cpus * 1e9 + 0.5);
  if (o->cpus != 0)
    {
      l->cpu_period = 100000;
      l->cpu_quota = (int64_t)(o->cpus * 100000 + 0.5);
    }
  l->pids_limit = o->pids_limit > 0 ? o->pids_limit : 0;
  return 0;
}

/* Open each layer's diff dir (top-most first) for reading files of the image. */
static int *
open_layers (struct cimg_store *s, const struct cimg_image *img, cimg_error_t *err)
{
  int *fds = xzalloc ((img->n_layers + 1) * sizeof (int));
  for (size_t i = 0; i < img->n_layers; i++)
    {
      cleanup_free char *p
          = cimg_store_layer_diff_path (img->layers[img->n_layers - 1 - i].chain_id);
      fds[i] = openat (cimg_store_dirfd (s), p, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (fds[i] < 0)
        {
          cimg_error_sys (err, "layer %s", img->layers[img->n_layers - 1 - i].chain_id);
          for (size_t j = 0; j < i; j++)
            close (fds[j]);
          free (fds);
          return NULL;
        }
    }
  return fds;
}

/* Build the record's config.json from the image and the flags. On error returns NULL with err
   set; *exit_code says what to exit with. */
static json_t *
resolve_config (struct cimg_store *s, struct cimg_image *img, const char *image_name,
                struct run_opts *o, char **cmd_args, int *exit_code, cimg_error_t *err)
{
  *exit_code = EXIT_USAGE;
  json_t *icfg = json_object_get (img->config, "config");

  /* The command: --entrypoint replaces the image's Entrypoint and drops its Cmd; COMMAND
     replaces Cmd. */
  cleanup_strv char **ep = NULL, **cmd = NULL;
  /* --entrypoint "" clears the image's Entrypoint; otherwise it is one word, not split. */
  if (o->entrypoint == NULL)
    ep = cimg_json_to_strv (json_object_get (icfg, "Entrypoint"));
  else
    {
      ep = xzalloc (sizeof (char *));
      if (o->entrypoint[0])
        cimg_strv_append (&ep, o->entrypoint);
    }
  if (cmd_args && cmd_args[0])
    for (size_t i = 0; cmd_args[i]; i++)
      cimg_strv_append (&cmd, cmd_args[i]);
  else if (!o->entrypoint)
    cmd = cimg_json_to_strv (json_object_get (icfg, "Cmd"));
  cleanup_strv char **args = NULL;
  for (size_t i = 0; ep && ep[i]; i++)
    cimg_strv_append (&args, ep[i]);
  for (size_t i = 0; cmd && cmd[i]; i++)
    cimg_strv_append (&args, cmd[i]);
  if (args == NULL || args[0] == NULL)
    {
      cimg_error_set (err, EINVAL, "No command specified");
      return NULL;
    }

  const char *workdir = o->workdir ? o->workdir : cimg_json_str (icfg, "WorkingDir");
  if (workdir == NULL || workdir[0] == '\0')
    workdir = "/";
  if (workdir[0] != '/')
    {
      cimg_error_set (err, EINVAL,
                      "the working directory '%s' is invalid, it needs to be an absolute path",
                      workdir);
      return NULL;
    }

  /* The user, looked up in the image's own /etc/passwd and /etc/group, read from the layers
     (resolved inside each layer, so that symlinks in the image cannot point at host files). */
  const char *user = o->user ? o->user : cimg_json_str (icfg, "User");
  struct cimg_user u = { 0 };
  {
    int *fds = open_layers (s, img, err);
    if (fds == NULL)
      return NULL;
    cleanup_free char *passwd = NULL, *group = NULL;
    int r1 = cimg_layers_read_file (fds, img->n_layers, "/etc/passwd", 4 << 20, &passwd, err);
    int r2 = r1 < 0
                 ? -1
                 : cimg_layers_read_file (fds, img->n_layers, "/etc/group", 4 << 20, &group, err);
    for (size_t i = 0; i < img->n_layers; i++)
      close (fds[i]);
    free (fds);
    if (r2 < 0 || cimg_user_resolve (user, passwd, group, o->group_add, &u, err) < 0)
      {
        cimg_user_clear (&u);
        return NULL;
      }
  }

  bool host_net = false;
  if (o->network && strcmp (o->network, "host") == 0)
    host_net = true;
  else if (o->network && strcmp (o->network, "none") != 0 && strcmp (o->network, "default") != 0
           && strcmp (o->network, "bridge") != 0)
    {
      cimg_user_clear (&u);
      cimg_error_set (err, ENOENT, "network %s not found", o->network);
      return NULL;
    }

  /* Environment, in Docker's order: PATH (if the image has none), HOSTNAME, TERM with a tty,
     the image's, then -e / --env-file, HOME last if still unset. Hostname is filled in by the
     caller once the ID is known; a placeholder keeps the order. */
  cleanup_strv char **env = NULL;
  json_t *ienv = json_object_get (icfg, "Env");
  cleanup_strv char **image_env = cimg_json_to_strv (ienv);
  if (!env_has (image_env, "PATH"))
    cimg_strv_append (&env, DEFAULT_PATH);
  cimg_strv_append (&env, "HOSTNAME=");
  if (o->tty)
    cimg_strv_append (&env, "TERM=xterm");
  for (size_t i = 0; image_env[i]; i++)
    env_set (&env, image_env[i]);
  for (size_t i = 0; o->env_files && o->env_files[i]; i++)
    if (read_env_file (o->env_files[i], &env, err) < 0)
      {
        cimg_user_clear (&u);
        cimg_error_wrap (err, "--env-file");
        return NULL;
      }
  for (size_t i = 0; o->env && o->env[i]; i++)
    env_add_arg (&env, o->env[i]);
  if (!env_has (env, "HOME"))
    {
      cleanup_free char *h = xasprintf ("HOME=%s", u.home);
      cimg_strv_append (&env, h);
    }

  bool seccomp = !o->privileged, nnp = false;
  cleanup_free char *profile = NULL;
  if (check_security_opts (o, &seccomp, &nnp, &profile, err) < 0)
    {
      cimg_user_clear (&u);
      return NULL;
    }
  if (o->privileged)
    {
      /* As Docker: --privileged runs without any seccomp filter, a profile file included. */
      free (profile);
      profile = NULL;
    }
  struct cimg_limits l = { 0 };
  int64_t nano_cpus = 0;
  if (check_limits (o, &l, &nano_cpus, err) < 0)
    {
      cimg_user_clear (&u);
      return NULL;
    }
  cleanup_strv char **caps = NULL;
  {
    char *all[] = { "ALL", NULL };
    caps = o->privileged ? cimg_caps_resolve (all, NULL, err)
                         : cimg_caps_resolve (o->cap_add, o->cap_drop, err);
    if (caps == NULL)
      {
        cimg_user_clear (&u);
        return NULL;
      }
  }

  json_t *groups = json_array ();
  for (size_t i = 0; u.groups && u.groups[i]; i++)
    json_array_append_new (groups, json_integer (strtoll (u.groups[i], NULL, 10)));
  cleanup_free char *lowers = NULL;
  json_t *layers = json_array ();
  for (size_t i = img->n_layers; i-- > 0;)
    {
      char *link = cimg_store_layer_link (s, img->layers[i].chain_id, err);
      if (link == NULL)
        {
          json_decref (groups);
          json_decref (layers);
          cimg_user_clear (&u);
          return NULL;
        }
      char *nl = lowers ? xasprintf ("%s:%s", lowers, link) : xstrdup (link);
      free (lowers);
      lowers = nl;
      free (link);
      json_array_append_new (layers, json_string (img->layers[i].chain_id));
    }

  json_t *config = json_pack (
      "{s:s, s:s, s:s, s:o, s:o, s:{s:s, s:o, s:o, s:o, s:s, s:b, s:b, s:s}, "
      "s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:b, s:o, s:b, s:I, s:s, s:b, s:o, "
      "s:o, s:b, s:b}, "
      "s:{s:I, s:I, s:o}, s:{s:s, s:{s:s, s:s, s:s, s:s}, s:o}}",
      "Image", img->id, "ImageName", image_name, "Path", args[0], "Args",
      cimg_json_from_strv (args + 1), "Hostname", json_null (), /* placeholder */
      "Config", "User", user ? user : "", "Env", cimg_json_from_strv (env), "Cmd",
      cimg_json_from_strv (cmd), "Entrypoint", cimg_json_from_strv (ep), "WorkingDir", workdir,
      "Tty", o->tty, "OpenStdin", o->interactive, "Image", image_name, "HostConfig", "Memory",
      (json_int_t)l.memory, "MemorySwap", (json_int_t)l.memory_swap, "NanoCpus",
      (json_int_t)nano_cpus, "CpuShares", (json_int_t)l.cpu_shares, "CpuQuota",
      (json_int_t)o->cpu_quota, "CpuPeriod", (json_int_t)o->cpu_period, "PidsLimit",
      (json_int_t)o->pids_limit, "CapAdd", cimg_json_from_strv (o->cap_add), "CapDrop",
      cimg_json_from_strv (o->cap_drop), "Privileged", o->privileged, "SecurityOpt",
      cimg_json_from_strv (o->security_opt), "ReadonlyRootfs", o->read_only, "ShmSize",
      (json_int_t)(o->shm_size ? o->shm_size : 64 << 20), "NetworkMode",
      host_net ? "host" : (o->network && strcmp (o->network, "none") == 0 ? "none" : "default"),
      "AutoRemove", o->rm, "GroupAdd", cimg_json_from_strv (o->group_add), "Capabilities",
      cimg_json_from_strv (caps), "Seccomp", seccomp, "NoNewPrivileges", nnp, "ProcessUser", "UID",
      (json_int_t)u.uid, "GID", (json_int_t)u.gid, "AdditionalGids", groups, "GraphDriver", "Name",
      "overlay", "Data", "LowerDir", lowers, "UpperDir", "upper", "WorkDir", "work", "MergedDir",
      "merged", "Layers", layers);
  cimg_user_clear (&u);
  if (config == NULL)
    {
      cimg_error_set (err, EINVAL, "internal error: building the container's config");
      return NULL;
    }
  /* Cpu period/quota as the cgroup gets them (with --cpus). */
  json_object_set_new (json_object_get (config, "HostConfig"), "CgroupCpuPeriod",
                       json_integer (l.cpu_period));
  json_object_set_new (json_object_get (config, "HostConfig"), "CgroupCpuQuota",
                       json_integer (l.cpu_quota));
  /* The profile's text, not its path: start and exec must confine as run did, even if the
     file changed or went away since. */
  if (profile)
    json_object_set_new (json_object_get (config, "HostConfig"), "SeccompProfile",
                         json_string (profile));
  *exit_code = 0;
  return config;
}

/* ---------------------------------------------------------------- options kept in HostConfig */

static const struct
{
  const char *name;
  int resource;
} rlimit_names[] = {
  { "core", RLIMIT_CORE },         { "cpu", RLIMIT_CPU },
  { "data", RLIMIT_DATA },         { "fsize", RLIMIT_FSIZE },
  { "locks", RLIMIT_LOCKS },       { "memlock", RLIMIT_MEMLOCK },
  { "msgqueue", RLIMIT_MSGQUEUE }, { "nice", RLIMIT_NICE },
  { "nofile", RLIMIT_NOFILE },     { "nproc", RLIMIT_NPROC },
  { "rss", RLIMIT_RSS },           { "rtprio", RLIMIT_RTPRIO },
  { "rttime", RLIMIT_RTTIME },     { "sigpending", RLIMIT_SIGPENDING },
  { "stack", RLIMIT_STACK },
};

static int
rlimit_resource (const char *name)
{
  for (size_t i = 0; i < ARRAY_SIZE (rlimit_names); i++)
    if (strcmp (rlimit_names[i].name, name) == 0)
      return rlimit_names[i].resource;
  return -1;
}

/* --ulimit name=soft[:hard] (-1: unlimited). */
static int
parse_ulimit (const char *v, json_t *out, cimg_error_t *err)
{
  const char *eq = strchr (v, '=');
  if (eq == NULL)
    return cimg_error_set (err, EINVAL, "invalid ulimit argument: %s", v);
  cleanup_free char *name = xstrndup (v, (size_t)(eq - v));
  if (rlimit_resource (name) < 0)
    return cimg_error_set (err, EINVAL, "invalid ulimit type: %s", name);
  cleanup_free char *vals = xstrdup (eq + 1);
  char *colon = strchr (vals, ':');
  if (colon)
    *colon++ = '\0';
  int64_t soft, hard;
  if (parse_int (vals, &soft) < 0 || parse_int (colon ? colon : vals, &hard) < 0)
    return cimg_error_set (err, EINVAL, "invalid ulimit argument: %s", v);
  if (soft != -1 && hard != -1 && soft > hard)
    return cimg_error_set (err, EINVAL,
                           "ulimit soft limit must be less than or equal to hard limit: %lld > "
                           "%lld",
                           (long long)soft, (long long)hard);
  json_array_append_new (out, json_pack ("{s:s, s:I, s:I}", "Name", name, "Soft", (json_int_t)soft,
                                         "Hard", (json_int_t)hard));
  return 0;
}

/* -v HOST:CTR[:ro|rw] (bind mounts of host paths; a missing host directory is created, as
   Docker does). */
static int
parse_volume (const char *v, json_t *out, cimg_error_t *err)
{
  cleanup_free char *copy = xstrdup (v);
  char *ctr = strchr (copy, ':');
  if (ctr == NULL || copy[0] != '/')
    return cimg_error_set (err, EINVAL,
                           "invalid volume specification: '%s' (HOST:CONTAINER[:ro] with an "
                           "absolute host path; named volumes are not supported)",
                           v);
  *ctr++ = '\0';
  char *mode = strchr (ctr, ':');
  if (mode)
    *mode++ = '\0';
  bool ro = false;
  if (mode && strcmp (mode, "ro") == 0)
    ro = true;
  else if (mode && strcmp (mode, "rw") != 0 && *mode)
    return cimg_error_set (err, EINVAL, "invalid mode: %s", mode);
  if (ctr[0] != '/')
    return cimg_error_set (err, EINVAL,
                           "invalid volume specification: '%s': the container path must be "
                           "absolute",
                           v);
  if (strcmp (ctr, "/") == 0)
    return cimg_error_set (err, EINVAL, "invalid specification: destination can't be '/'");
  struct stat st;
  if (stat (copy, &st) < 0)
    {
      if (errno != ENOENT || cimg_mkdir_p_at (AT_FDCWD, copy, 0755, err) < 0)
        return cimg_error_sys (err, "bind source %s", copy);
    }
  cleanup_free char *real = realpath (copy, NULL);
  if (real == NULL)
    return cimg_error_sys (err, "bind source %s", copy);
  json_array_append_new (out, json_pack ("{s:s, s:s, s:s, s:b}", "Type", "bind", "Source", real,
                                         "Destination", ctr, "RW", !ro));
  return 0;
}

/* --tmpfs PATH[:OPTIONS] (options as mount(8): ro, noexec, size=64m, mode=1777 …). */
static int
parse_tmpfs (const char *v, json_t *out, cimg_error_t *err)
{
  cleanup_free char *copy = xstrdup (v);
  char *opts = strchr (copy, ':');
  if (opts)
    *opts++ = '\0';
  if (copy[0] != '/' || strcmp (copy, "/") == 0)
    return cimg_error_set (err, EINVAL, "invalid tmpfs path: '%s' (must be absolute)", copy);
  json_array_append_new (out, json_pack ("{s:s, s:s, s:s}", "Type", "tmpfs", "Destination", copy,
                                         "Options", opts ? opts : ""));
  return 0;
}

/* --device HOST[:CTR[:PERMS]] */
static int
parse_device (const char *v, json_t *out, cimg_error_t *err)
{
  cleanup_free char *copy = xstrdup (v);
  char *ctr = strchr (copy, ':');
  if (ctr)
    *ctr++ = '\0';
  char *perms = ctr ? strchr (ctr, ':') : NULL;
  if (perms)
    *perms++ = '\0';
  if (ctr && *ctr && ctr[0] != '/')
    {
      /* HOST:PERMS */
      perms = ctr;
      ctr = NULL;
    }
  if (perms == NULL || *perms == '\0')
    perms = "rwm";
  for (const char *p = perms; *p; p++)
    if (*p != 'r' && *p != 'w' && *p != 'm')
      return cimg_error_set (err, EINVAL, "invalid device mode: %s", perms);
  struct stat st;
  if (stat (copy, &st) < 0)
    return cimg_error_sys (err,
                           "error gathering device information while adding custom device "
                           "\"%s\"",
                           copy);
  if (!S_ISCHR (st.st_mode) && !S_ISBLK (st.st_mode))
    return cimg_error_set (err, EINVAL, "%s is not a device node", copy);
  json_array_append_new (
      out,
      json_pack ("{s:s, s:s, s:s, s:s, s:I, s:I, s:I}", "PathOnHost", copy, "PathInContainer",
                 ctr && *ctr ? ctr : copy, "CgroupPermissions", perms, "Type",
                 S_ISBLK (st.st_mode) ? "b" : "c", "Major", (json_int_t)major (st.st_rdev), "Minor",
                 (json_int_t)minor (st.st_rdev), "Mode", (json_int_t)(st.st_mode & 07777)));
  return 0;
}

/* --device-{read,write}-{bps,iops} DEVICE:RATE (bps: with b/k/m/g units; iops: a number). */
static int
parse_rate (const char *v, int kind, json_t *out, cimg_error_t *err)
{
  const char *colon = strrchr (v, ':');
  if (colon == NULL)
    return cimg_error_set (err, EINVAL, "bad format %s: expected DEVICE:RATE", v);
  cleanup_free char *dev = xstrndup (v, (size_t)(colon - v));
  int64_t rate;
  bool bps = kind == CIMG_BLKIO_READ_BPS || kind == CIMG_BLKIO_WRITE_BPS;
  if ((bps ? parse_bytes (colon + 1, &rate) : parse_int (colon + 1, &rate)) < 0 || rate < 0)
    return cimg_error_set (err, EINVAL, "invalid rate for device: %s", v);
  struct stat st;
  if (stat (dev, &st) < 0)
    return cimg_error_sys (err, "%s", dev);
  if (!S_ISBLK (st.st_mode))
    return cimg_error_set (err, EINVAL, "%s is not a block device", dev);
  json_array_append_new (out, json_pack ("{s:i, s:s, s:I, s:I, s:I}", "Kind", kind, "Path", dev,
                                         "Major", (json_int_t)major (st.st_rdev), "Minor",
                                         (json_int_t)minor (st.st_rdev), "Rate", (json_int_t)rate));
  return 0;
}

static int
resolve_extras (struct run_opts *o, json_t *config, cimg_error_t *err)
{
  json_t *hc = json_object_get (config, "HostConfig");
  if (o->memory_reservation && o->memory && o->memory_reservation > o->memory)
    return cimg_error_set (err, EINVAL,
                           "Minimum memory limit can not be less than memory "
                           "reservation limit, see usage");
  if (o->blkio_weight && (o->blkio_weight < 10 || o->blkio_weight > 1000))
    return cimg_error_set (err, EINVAL, "Range of blkio weight is from 10 to 1000");
  enum cimg_restart_kind rk;
  int rmax;
  if (cimg_restart_parse (o->restart, &rk, &rmax, err) < 0)
    return -1;
  if (rk != CIMG_RESTART_NO && o->rm)
    return cimg_error_set (err, EINVAL, "Conflicting options: --restart and --rm");
  static const char *const policy_names[] = { [CIMG_RESTART_NO] = "no",
                                              [CIMG_RESTART_ON_FAILURE] = "on-failure",
                                              [CIMG_RESTART_ALWAYS] = "always",
                                              [CIMG_RESTART_UNLESS_STOPPED] = "unless-stopped" };
  json_object_set_new (
      hc, "RestartPolicy",
      json_pack ("{s:s, s:i}", "Name", policy_names[rk], "MaximumRetryCount", rmax));
  json_object_set_new (hc, "MemoryReservation", json_integer (o->memory_reservation));
  json_object_set_new (hc, "MemorySwappiness", json_integer (o->memory_swappiness));
  json_object_set_new (hc, "OomKillDisable", json_boolean (o->oom_kill_disable));
  json_object_set_new (hc, "KernelMemory", json_integer (o->kernel_memory));
  json_object_set_new (hc, "BlkioWeight", json_integer (o->blkio_weight));
  json_object_set_new (hc, "CpusetCpus", json_string (o->cpuset_cpus ? o->cpuset_cpus : ""));
  json_object_set_new (hc, "CpusetMems", json_string (o->cpuset_mems ? o->cpuset_mems : ""));
  json_t *ul = json_array (), *mounts = json_array (), *devs = json_array (),
         *rates = json_array ();
  json_object_set_new (hc, "Ulimits", ul);
  json_object_set_new (hc, "Mounts", mounts);
  json_object_set_new (hc, "Devices", devs);
  json_object_set_new (hc, "BlkioRates", rates);
  for (size_t i = 0; o->ulimits && o->ulimits[i]; i++)
    if (parse_ulimit (o->ulimits[i], ul, err) < 0)
      return -1;
  for (size_t i = 0; o->volumes && o->volumes[i]; i++)
    if (parse_volume (o->volumes[i], mounts, err) < 0)
      return -1;
  for (size_t i = 0; o->tmpfs && o->tmpfs[i]; i++)
    if (parse_tmpfs (o->tmpfs[i], mounts, err) < 0)
      return -1;
  for (size_t i = 0; o->devices && o->devices[i]; i++)
    if (parse_device (o->devices[i], devs, err) < 0)
      return -1;
  for (int k = 0; k < 4; k++)
    for (size_t i = 0; o->rates[k] && o->rates[k][i]; i++)
      if (parse_rate (o->rates[k][i], k, rates, err) < 0)
        return -1;
  return 0;
}

/* ---------------------------------------------------------------- record → spec */

static int
write_small (int dirfd, const char *name, const char *text, cimg_error_t *err)
{
  cleanup_close int fd
      = openat (dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0 || cimg_write_all (fd, text, strlen (text)) < 0)
    return cimg_error_sys (err, "write %s", name);
  return 0;
}

/* /etc/hostname, /etc/hosts, /etc/resolv.conf of the container, in its directory. */
static int
write_etc_files (struct cimg_store *s, struct cimg_container *c, const char *hostname,
                 bool host_net, cimg_error_t *err)
{
  cleanup_free char *dir = cimg_container_dir (c);
  cleanup_close int dfd = openat (cimg_store_dirfd (s), dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0)
    return cimg_error_sys (err, "open %s", dir);
  cleanup_free char *hn = xasprintf ("%s\n", hostname);
  if (write_small (dfd, "hostname", hn, err) < 0)
    return -1;
  cleanup_free char *hosts = NULL;
  if (host_net)
    {
      size_t len;
      cimg_error_t e = { 0 };
      if (cimg_read_file_at (AT_FDCWD, "/etc/hosts", 1 << 20, &hosts, &len, &e) < 0)
        cimg_error_clear (&e);
    }
  if (hosts == NULL)
    hosts = xasprintf ("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
                       "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
                       "ff02::2\tip6-allrouters\n127.0.1.1\t%s\n",
                       hostname);
  if (write_small (dfd, "hosts", hosts, err) < 0)
    return -1;
  /* The host's resolv.conf, unless (outside the host's network) it names a resolver on the
     host's loopback, which the container cannot reach: then Google's, as Docker does. */
  cleanup_free char *resolv = NULL;
  size_t len;
  cimg_error_t e = { 0 };
  if (cimg_read_file_at (AT_FDCWD, "/etc/resolv.conf", 1 << 20, &resolv, &len, &e) < 0)
    cimg_error_clear (&e);
  if (resolv && !host_net)
    {
      cleanup_free char *out = xstrdup ("");
      bool any = false;
      char *save = NULL;
      for (char *line = strtok_r (resolv, "\n", &save); line; line = strtok_r (NULL, "\n", &save))
        {
          char ns[256];
          if (sscanf (line, " nameserver %255s", ns) == 1
              && (cimg_str_has_prefix (ns, "127.") || strcmp (ns, "::1") == 0))
            continue;
          if (sscanf (line, " nameserver %255s", ns) == 1)
            any = true;
          char *n2 = xasprintf ("%s%s\n", out, line);
          free (out);
          out = n2;
        }
      free (resolv);
      resolv = any ? steal_pointer (&out)
                   : xasprintf ("%snameserver 8.8.8.8\nnameserver 8.8.4.4\n", out);
    }
  if (resolv == NULL)
    resolv = xstrdup ("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
  return write_small (dfd, "resolv.conf", resolv, err);
}

struct spec_storage
{
  struct cimg_spec spec;
  char **lowers, **args, **env, **caps;
  gid_t *groups;
  char *upper, *work, *merged;
  struct cimg_spec_mount *mounts;
  char **mount_src, **mount_data;
  struct cimg_spec_rlimit *rlimits;
  struct cimg_spec_device *devices;
  struct cimg_blkio_rate *rates;
};

static void
spec_storage_clear (struct spec_storage *st)
{
  cimg_strv_free (st->lowers);
  cimg_strv_free (st->args);
  cimg_strv_free (st->env);
  cimg_strv_free (st->caps);
  free (st->groups);
  free (st->upper);
  free (st->work);
  free (st->merged);
  cimg_strv_free (st->mount_src);
  cimg_strv_free (st->mount_data);
  free (st->mounts);
  free (st->rlimits);
  free (st->devices);
  free (st->rates);
}

/* tmpfs options: flags for the words mount(8) knows, the rest as data. Docker's defaults:
   nosuid, nodev, noexec. */
static char *
tmpfs_options (const char *opts, unsigned long *flags)
{
  static const struct
  {
    const char *word;
    unsigned long set, clear;
  } words[] = { { "ro", MS_RDONLY, 0 },   { "rw", 0, MS_RDONLY },     { "noexec", MS_NOEXEC, 0 },
                { "exec", 0, MS_NOEXEC }, { "nosuid", MS_NOSUID, 0 }, { "suid", 0, MS_NOSUID },
                { "nodev", MS_NODEV, 0 }, { "dev", 0, MS_NODEV } };
  *flags = MS_NOSUID | MS_NODEV | MS_NOEXEC;
  cleanup_free char *copy = xstrdup (opts ? opts : "");
  char *data = xstrdup (""), *save = NULL;
  for (char *t = strtok_r (copy, ",", &save); t; t = strtok_r (NULL, ",", &save))
    {
      bool known = false;
      for (size_t i = 0; i < ARRAY_SIZE (words); i++)
        if (strcmp (t, words[i].word) == 0)
          {
            *flags = (*flags | words[i].set) & ~words[i].clear;
            known = true;
          }
      if (!known)
        {
          char *n = xasprintf ("%s%s%s", data, *data ? "," : "", t);
          free (data);
          data = n;
        }
    }
  return data;
}

/* The runtime spec of a container record. Pointers into the record stay valid while c lives. */
static void
spec_from_record (struct cimg_store *s, struct cimg_container *c, struct spec_storage *st)
{
  json_t *cfg = c->config;
  json_t *ccfg = json_object_get (cfg, "Config");
  json_t *hc = json_object_get (cfg, "HostConfig");
  json_t *pu = json_object_get (cfg, "ProcessUser");
  json_t *gd = json_object_get (json_object_get (cfg, "GraphDriver"), "Data");
  struct cimg_spec *sp = &st->spec;
  memset (sp, 0, sizeof *sp);
  sp->id = c->id;
  sp->root_dirfd = cimg_store_dirfd (s);
  const char *lowers = cimg_json_str (gd, "LowerDir");
  append_list (&st->lowers, ""); /* non-NULL even for no layer */
  cimg_strv_free (st->lowers);
  st->lowers = NULL;
  if (lowers)
    {
      cleanup_free char *copy = xstrdup (lowers);
      char *save = NULL;
      for (char *t = strtok_r (copy, ":", &save); t; t = strtok_r (NULL, ":", &save))
        cimg_strv_append (&st->lowers, t);
    }
  if (st->lowers == NULL)
    {
      /* An image without layers (FROM scratch and nothing else): an overlay needs one lower
         dir; the container's own empty directory stands in for it. */
      cimg_strv_append (&st->lowers, "containers");
      free (st->lowers[0]);
      st->lowers[0] = xasprintf ("containers/%s/merged", c->id);
    }
  sp->lowers = st->lowers;
  st->upper = xasprintf ("containers/%s/upper", c->id);
  st->work = xasprintf ("containers/%s/work", c->id);
  st->merged = xasprintf ("containers/%s/merged", c->id);
  sp->upper = st->upper;
  sp->work = st->work;
  sp->merged = st->merged;
  sp->readonly_rootfs = json_is_true (json_object_get (hc, "ReadonlyRootfs"));
  sp->volatile_rootfs = json_is_true (json_object_get (hc, "AutoRemove"));
  sp->hostname = cimg_json_str (cfg, "Hostname");
  sp->network = strcmp (cimg_json_str (hc, "NetworkMode") ?: "", "host") == 0 ? CIMG_NET_HOST
                                                                              : CIMG_NET_PRIVATE;
  json_t *ms = json_object_get (hc, "Mounts");
  size_t nm = 3 + json_array_size (ms);
  st->mounts = xzalloc (nm * sizeof *st->mounts);
  static const char *const etc[] = { "hostname", "hosts", "resolv.conf" };
  static const char *const etc_dest[] = { "/etc/hostname", "/etc/hosts", "/etc/resolv.conf" };
  for (size_t i = 0; i < 3; i++)
    {
      cleanup_free char *src = xasprintf ("containers/%s/%s", c->id, etc[i]);
      cimg_strv_append (&st->mount_src, src);
      st->mounts[i] = (struct cimg_spec_mount){ .destination = etc_dest[i] };
    }
  for (size_t i = 0; i < 3; i++)
    st->mounts[i].source = st->mount_src[i];
  {
    size_t k;
    json_t *m;
    json_array_foreach (ms, k, m)
    {
      struct cimg_spec_mount *sm = &st->mounts[3 + k];
      sm->destination = cimg_json_str (m, "Destination");
      if (strcmp (cimg_json_str (m, "Type") ?: "", "tmpfs") == 0)
        {
          char *data = tmpfs_options (cimg_json_str (m, "Options"), &sm->flags);
          cimg_strv_append (&st->mount_data, data);
          free (data);
          sm->source = "tmpfs";
          sm->type = "tmpfs";
          sm->data = st->mount_data[cimg_strv_len (st->mount_data) - 1];
        }
      else
        {
          sm->source = cimg_json_str (m, "Source");
          sm->flags = json_is_false (json_object_get (m, "RW")) ? MS_RDONLY : 0;
        }
    }
  }
  sp->mounts = st->mounts;
  sp->n_mounts = nm;

  cimg_strv_append (&st->args, cimg_json_str (cfg, "Path"));
  json_t *a = json_object_get (cfg, "Args");
  size_t i;
  json_t *e;
  json_array_foreach (a, i, e) cimg_strv_append (&st->args, json_string_value (e));
  st->env = cimg_json_to_strv (json_object_get (ccfg, "Env"));
  st->caps = cimg_json_to_strv (json_object_get (hc, "Capabilities"));
  json_t *g = json_object_get (pu, "AdditionalGids");
  st->groups = xzalloc ((json_array_size (g) + 1) * sizeof (gid_t));
  json_array_foreach (g, i, e) st->groups[i] = (gid_t)json_integer_value (e);
  sp->process = (struct cimg_spec_process){
    .args = st->args,
    .env = st->env,
    .cwd = cimg_json_str (ccfg, "WorkingDir"),
    .uid = (uid_t)cimg_json_int (pu, "UID"),
    .gid = (gid_t)cimg_json_int (pu, "GID"),
    .groups = st->groups,
    .n_groups = json_array_size (g),
    .tty = json_is_true (json_object_get (ccfg, "Tty")),
    .stdin_open = json_is_true (json_object_get (ccfg, "OpenStdin")),
  };
  sp->limits = (struct cimg_limits){
    .memory = cimg_json_int (hc, "Memory"),
    .memory_swap = cimg_json_int (hc, "MemorySwap"),
    .cpu_shares = cimg_json_int (hc, "CpuShares"),
    .cpu_quota = cimg_json_int (hc, "CgroupCpuQuota"),
    .cpu_period = cimg_json_int (hc, "CgroupCpuPeriod"),
    .pids_limit = cimg_json_int (hc, "PidsLimit") > 0 ? cimg_json_int (hc, "PidsLimit") : 0,
  };
  sp->caps = st->caps;
  sp->privileged = json_is_true (json_object_get (hc, "Privileged"));
  sp->seccomp = json_is_true (json_object_get (hc, "Seccomp"));
  sp->seccomp_profile = cimg_json_str (hc, "SeccompProfile");
  sp->no_new_privileges = json_is_true (json_object_get (hc, "NoNewPrivileges"));
  sp->shm_size = cimg_json_int (hc, "ShmSize");

  json_t *ul = json_object_get (hc, "Ulimits");
  st->rlimits = xzalloc ((json_array_size (ul) + 1) * sizeof *st->rlimits);
  json_array_foreach (ul, i, e)
  {
    int64_t soft = cimg_json_int (e, "Soft"), hard = cimg_json_int (e, "Hard");
    st->rlimits[i] = (struct cimg_spec_rlimit){
      .resource = rlimit_resource (cimg_json_str (e, "Name") ?: ""),
      .soft = soft < 0 ? (unsigned long long)RLIM_INFINITY : (unsigned long long)soft,
      .hard = hard < 0 ? (unsigned long long)RLIM_INFINITY : (unsigned long long)hard,
    };
  }
  sp->process.rlimits = st->rlimits;
  sp->process.n_rlimits = json_array_size (ul);

  json_t *dv = json_object_get (hc, "Devices");
  st->devices = xzalloc ((json_array_size (dv) + 1) * sizeof *st->devices);
  json_array_foreach (dv, i, e)
  {
    const char *type = cimg_json_str (e, "Type");
    st->devices[i] = (struct cimg_spec_device){
      .path = cimg_json_str (e, "PathInContainer"),
      .type = type && type[0] == 'b' ? 'b' : 'c',
      .major = (unsigned)cimg_json_int (e, "Major"),
      .minor = (unsigned)cimg_json_int (e, "Minor"),
      .mode = (mode_t)cimg_json_int (e, "Mode"),
      .access = cimg_json_str (e, "CgroupPermissions"),
    };
  }
  sp->devices = st->devices;
  sp->n_devices = json_array_size (dv);

  json_t *br = json_object_get (hc, "BlkioRates");
  st->rates = xzalloc ((json_array_size (br) + 1) * sizeof *st->rates);
  json_array_foreach (br, i, e)
  {
    st->rates[i] = (struct cimg_blkio_rate){
      .kind = (enum cimg_blkio_rate_kind)cimg_json_int (e, "Kind"),
      .major = (unsigned)cimg_json_int (e, "Major"),
      .minor = (unsigned)cimg_json_int (e, "Minor"),
      .rate = (uint64_t)cimg_json_int (e, "Rate"),
    };
  }
  sp->limits.blkio_rates = st->rates;
  sp->limits.n_blkio_rates = json_array_size (br);
  sp->limits.blkio_weight = cimg_json_int (hc, "BlkioWeight");
  sp->limits.memory_reservation = cimg_json_int (hc, "MemoryReservation");
  int64_t swp = json_is_integer (json_object_get (hc, "MemorySwappiness"))
                    ? cimg_json_int (hc, "MemorySwappiness")
                    : -1;
  sp->limits.memory_swappiness_set = swp >= 0;
  sp->limits.memory_swappiness = swp >= 0 ? swp : 0;
  sp->limits.oom_kill_disable = json_is_true (json_object_get (hc, "OomKillDisable"));
  const char *cs = cimg_json_str (hc, "CpusetCpus"), *cm = cimg_json_str (hc, "CpusetMems");
  sp->limits.cpuset_cpus = cs && *cs ? cs : NULL;
  sp->limits.cpuset_mems = cm && *cm ? cm : NULL;
}

struct cimg_spec *
cli_spec_from_record (struct cimg_store *s, struct cimg_container *c, void **storage)
{
  struct spec_storage *st = xzalloc (sizeof *st);
  spec_from_record (s, c, st);
  *storage = st;
  return &st->spec;
}

void
cli_spec_free (void *storage)
{
  if (storage == NULL)
    return;
  spec_storage_clear (storage);
  free (storage);
}

/* ---------------------------------------------------------------- run */

struct started
{
  struct cimg_store *s;
  struct cimg_container *c;
  pid_t pid;
};

static int
on_started (void *data, pid_t pid, char *const *cgroup_dirs, cimg_error_t *err)
{
  struct started *st = data;
  st->pid = pid;
  return cimg_container_set_running_in (st->s, st->c, pid, cgroup_dirs, err);
}

struct tee
{
  struct cimg_log *lg;
  struct started *st;
};

/* A foreground run's output: to the caller's stdout or stderr at once, and to the log. When
   the caller's reader went away (`cimg run … | head -1`), the container, which wrote to that
   pipe itself before there was a log to copy to, would have got EPIPE and ended; it cannot see
   that through the copy, so it is killed rather than left running for nobody. */
static void
tee_output (void *data, int stream, const char *buf, size_t n)
{
  struct tee *t = data;
  if (cimg_write_all (stream == 2 ? 2 : 1, buf, n) < 0 && errno == EPIPE && t->st->pid > 0)
    kill (t->st->pid, SIGKILL);
  cimg_log_write (t->lg, stream, buf, n);
}

static void
remove_quietly (struct cimg_store *s, struct cimg_container *c)
{
  cimg_error_t e = { 0 };
  if (cimg_container_remove (s, c, &e) < 0)
    {
      fprintf (stderr, "cimg: %s\n", e.msg);
      cimg_error_clear (&e);
    }
}

int
cmd_run (struct cli *c, int argc, char **argv)
{
  __attribute__ ((cleanup (run_opts_clear))) struct run_opts o = { 0 };
  o.memory_swappiness = -1;
  optind = 1;
  int r = parse_run (c, argc, argv, &o);
  if (r != 0)
    return r > 0 ? 0 : EXIT_USAGE;
  if (optind >= argc)
    return cli_usage_error (c, "\"%s\" requires at least 1 argument.", c->prog);
  const char *image_name = argv[optind];
  char **cmd_args = argv + optind + 1;

  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_USAGE;
  cimg_error_t err = { 0 };
  /* Shared while the image is looked up and the record written: an rmi (exclusive) cannot
     delete the image between the two; once config.json names it, rmi refuses. */
  if (cimg_store_lock (s, CIMG_LOCK_SHARED, &err) < 0)
    {
      cli_fail (&err);
      return EXIT_USAGE;
    }
  cleanup_image struct cimg_image *img = cimg_store_find_image (s, image_name, &err);
  if (img == NULL)
    {
      cimg_error_clear (&err);
      fprintf (stderr, "cimg: Unable to find image '%s' locally\n", image_name);
      return EXIT_USAGE;
    }
  int code;
  cleanup_json json_t *config = resolve_config (s, img, image_name, &o, cmd_args, &code, &err);
  if (config == NULL || resolve_extras (&o, config, &err) < 0)
    {
      cli_fail (&err);
      return code ? code : EXIT_USAGE;
    }
  if (o.kernel_memory)
    fprintf (stderr, "WARNING: Specifying a kernel memory limit is deprecated and will be "
                     "removed in a future release. Limitation discarded.\n");
  if (o.oom_kill_disable && o.memory == 0)
    fprintf (stderr, "WARNING: Disabling the OOM killer on containers without setting a "
                     "'-m/--memory' limit may be dangerous.\n");
  cleanup_close int cidfd = -1;
  if (o.cidfile)
    {
      /* Created (exclusively) before the container, as Docker: a file already there means
         another container may be using it. */
      cidfd = open (o.cidfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
      if (cidfd < 0)
        {
          if (errno == EEXIST)
            fprintf (stderr,
                     "cimg: Container ID file found, make sure the other container isn't "
                     "running or delete %s\n",
                     o.cidfile);
          else
            fprintf (stderr, "cimg: --cidfile %s: %s\n", o.cidfile, strerror (errno));
          return EXIT_USAGE;
        }
    }
  /* The ID is chosen here: the default hostname is the short ID (the host's name with
     --network host), and config.json is written once, complete. */
  char id[65];
  cimg_random_hex64 (id);
  bool host_net = o.network && strcmp (o.network, "host") == 0;
  char hostname[256];
  if (o.hostname)
    snprintf (hostname, sizeof hostname, "%s", o.hostname);
  else if (host_net)
    gethostname (hostname, sizeof hostname - 1);
  else
    snprintf (hostname, sizeof hostname, "%.12s", id);
  json_object_set_new (config, "Hostname", json_string (hostname));
  json_t *env = json_object_get (json_object_get (config, "Config"), "Env");
  size_t i;
  json_t *e;
  json_array_foreach (env, i, e) if (strcmp (json_string_value (e), "HOSTNAME=") == 0)
  {
    cleanup_free char *kv = xasprintf ("HOSTNAME=%s", hostname);
    json_array_set_new (env, i, json_string (kv));
  }
  json_object_set_new (json_object_get (config, "Config"), "Hostname", json_string (hostname));
  /* Relative to the container's directory. */
  json_object_set_new (config, "HostnamePath", json_string ("hostname"));
  json_object_set_new (config, "HostsPath", json_string ("hosts"));
  json_object_set_new (config, "ResolvConfPath", json_string ("resolv.conf"));

  cleanup_container struct cimg_container *ctr
      = cimg_container_create (s, id, o.name, config, &err);
  if (ctr == NULL)
    {
      if (o.cidfile)
        unlink (o.cidfile);
      cli_fail (&err);
      return EXIT_USAGE;
    }
  cimg_store_unlock (s);
  if (cidfd >= 0)
    {
      if (cimg_write_all (cidfd, ctr->id, strlen (ctr->id)) < 0)
        fprintf (stderr, "cimg: write %s: %s\n", o.cidfile, strerror (errno));
      close (steal_fd (&cidfd));
    }
  cleanup_free char *dir = cimg_container_dir (ctr);
  if (write_etc_files (s, ctr, hostname, host_net, &err) < 0)
    {
      cli_fail (&err);
      remove_quietly (s, ctr);
      return EXIT_USAGE;
    }

  if (o.detach)
    {
      int drc = cli_start_detached (s, ctr, true, -1);
      if (drc == EXIT_USAGE && o.rm)
        remove_quietly (s, ctr);
      return drc;
    }

  struct spec_storage st = { 0 };
  spec_from_record (s, ctr, &st);
  struct started sd = { s, ctr, 0 };
  struct cimg_run_hooks hooks = { on_started, &sd };
  struct cimg_run_result res = { 0 };
  /* The log is written as a monitor writes it, so that `cimg logs` works after a foreground
     run, as in Docker. Not with --rm: the record (and its log) goes at the end anyway, and the
     plain run keeps the container's stdio on the caller's own fds, with no copy. */
  struct cimg_log *lg = NULL;
  if (!o.rm)
    {
      lg = cimg_log_open (s, ctr->id, &err);
      if (lg == NULL)
        {
          cli_fail (&err);
          remove_quietly (s, ctr);
          return EXIT_USAGE;
        }
    }
  struct tee tee = { lg, &sd };
  if (lg)
    r = cimg_runtime_run_captured (&st.spec, &hooks, tee_output, &tee, &res, &err);
  else
    r = cimg_runtime_run (&st.spec, &hooks, &res, &err);
  cimg_log_close (lg);
  spec_storage_clear (&st);
  int rc;
  if (r < 0)
    {
      /* Docker leaves a container that could not start in "created"; --rm removes it. */
      cli_fail (&err);
      rc = EXIT_USAGE;
    }
  else if (res.exec_error)
    {
      fprintf (stderr, "cimg: %s\n", res.exec_message);
      rc = res.exec_error;
    }
  else
    {
      rc = cimg_runtime_exit_code (res.status);
      if (res.oom_killed)
        fprintf (stderr, "cimg: the container was killed by the OOM killer: it reached its "
                         "memory limit\n");
    }
  if (r == 0 && !o.rm)
    {
      cimg_error_t e2 = { 0 };
      /* A record removed meanwhile (rm -f) is not an error of this run. */
      if (cimg_container_set_exited (s, ctr, rc, res.oom_killed, &e2) < 0 && e2.code != ENOENT)
        fprintf (stderr, "cimg: %s\n", e2.msg);
      cimg_error_clear (&e2);
    }
  cimg_run_result_clear (&res);
  if (o.rm && faccessat (cimg_store_dirfd (s), dir, F_OK, 0) == 0)
    remove_quietly (s, ctr);
  return rc;
}

int
cli_start_detached (struct cimg_store *s, struct cimg_container *ctr, bool print_id, int attach_fd)
{
  struct spec_storage st = { 0 };
  spec_from_record (s, ctr, &st);
  cimg_error_t err = { 0 };
  pid_t pid;
  int exec_error;
  cleanup_free char *exec_message = NULL;
  int r = cimg_monitor_start (s, ctr, &st.spec, attach_fd, &pid, &exec_error, &exec_message, &err);
  spec_storage_clear (&st);
  if (r < 0)
    {
      cli_fail (&err);
      return EXIT_USAGE;
    }
  if (exec_error)
    {
      fprintf (stderr, "cimg: %s\n", exec_message);
      return exec_error;
    }
  if (print_id)
    printf ("%s\n", ctr->id);
  return 0;
}

/* ---------------------------------------------------------------- ps */

static void
since (const char *rfc, char *out, size_t n)
{
  int64_t t;
  char d[64];
  if (rfc == NULL || cimg_time_parse_rfc3339 (rfc, &t) < 0 || t <= 0)
    {
      snprintf (out, n, "N/A");
      return;
    }
  int64_t delta = cimg_now () - t;
  cimg_human_duration (delta < 0 ? 0 : delta, d, sizeof d);
  snprintf (out, n, "%s", d);
}

static char *
command_of (struct cimg_container *ctr, bool no_trunc)
{
  cleanup_free char *s = xstrdup (cimg_json_str (ctr->config, "Path") ?: "");
  json_t *a = json_object_get (ctr->config, "Args");
  size_t i;
  json_t *e;
  json_array_foreach (a, i, e)
  {
    char *n = xasprintf ("%s %s", s, json_string_value (e));
    free (s);
    s = n;
  }
  /* Docker shows it quoted, cut to 20 characters with an ellipsis. */
  if (!no_trunc && strlen (s) > 20)
    {
      s[19] = '\0';
      return xasprintf ("\"%s…\"", s);
    }
  return xasprintf ("\"%s\"", s);
}

/* "created", "running", "restarting" (exited, its monitor about to start it again) or
   "exited". */
static const char *
ps_state (struct cimg_container *ctr)
{
  const char *status = cimg_container_status (ctr);
  if (strcmp (status, "exited") == 0 && json_is_true (json_object_get (ctr->state, "Restarting"))
      && cimg_monitor_pid (ctr) > 0)
    return "restarting";
  return status;
}

/* Docker's filters: values of one key are alternatives, different keys must all match. */
static bool
ps_match (struct cimg_store *s, struct cimg_container *ctr, char *const *filters)
{
  static const char *const keys[] = { "status", "name", "ancestor", "id" };
  for (size_t k = 0; k < ARRAY_SIZE (keys); k++)
    {
      bool seen = false, ok = false;
      size_t kl = strlen (keys[k]);
      for (size_t i = 0; filters && filters[i]; i++)
        {
          if (strncmp (filters[i], keys[k], kl) != 0 || filters[i][kl] != '=')
            continue;
          seen = true;
          const char *v = filters[i] + kl + 1;
          if (k == 0)
            ok |= strcmp (ps_state (ctr), v) == 0;
          else if (k == 1)
            ok |= strstr (cimg_container_name (ctr), v[0] == '/' ? v + 1 : v) != NULL;
          else if (k == 2)
            {
              const char *iname = cimg_json_str (ctr->config, "ImageName") ?: "";
              const char *iid = cimg_json_str (ctr->config, "Image") ?: "";
              bool m = strcmp (iname, v) == 0 || cimg_str_has_prefix (iid, v)
                       || (cimg_str_has_prefix (v, "sha256:") && strcmp (iid, v + 7) == 0);
              if (!m)
                {
                  cimg_error_t e = { 0 };
                  cleanup_image struct cimg_image *img = cimg_store_find_image (s, v, &e);
                  cimg_error_clear (&e);
                  m = img && strcmp (img->id, iid) == 0;
                }
              ok |= m;
            }
          else
            ok |= cimg_str_has_prefix (ctr->id, v);
        }
      if (seen && !ok)
        return false;
    }
  return true;
}

int
cmd_ps (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[]
      = { { "all", no_argument, NULL, 'a' },          { "quiet", no_argument, NULL, 'q' },
          { "no-trunc", no_argument, NULL, 'T' },     { "filter", required_argument, NULL, 'f' },
          { "format", required_argument, NULL, 'F' }, { 0 } };
  bool all = false, quiet = false, no_trunc = false, as_json = false;
  cleanup_strv char **filters = NULL;
  int r;
  while ((r = cli_getopt (c, argc, argv, "aqf:", longopts)) != -1)
    switch (r)
      {
      case 'a':
        all = true;
        break;
      case 'q':
        quiet = true;
        break;
      case 'T':
        no_trunc = true;
        break;
      case 'f':
        {
          static const char *const known[] = { "status=", "name=", "ancestor=", "id=" };
          bool ok = false;
          for (size_t i = 0; i < ARRAY_SIZE (known); i++)
            ok |= cimg_str_has_prefix (optarg, known[i]);
          if (!ok)
            return cli_usage_error (c, "invalid filter '%s'", optarg);
          if (cimg_str_has_prefix (optarg, "status="))
            {
              const char *v = optarg + 7;
              if (strcmp (v, "created") && strcmp (v, "running") && strcmp (v, "exited")
                  && strcmp (v, "restarting") && strcmp (v, "paused") && strcmp (v, "removing")
                  && strcmp (v, "dead"))
                return cli_usage_error (c, "invalid filter 'status=%s'", v);
              all = true; /* as Docker: a status filter looks at every container */
            }
          cimg_strv_append (&filters, optarg);
          break;
        }
      case 'F':
        if (strcmp (optarg, "json") != 0 && strcmp (optarg, "{{json .}}") != 0)
          return cli_usage_error (c, "unsupported --format \"%s\" (only json)", optarg);
        as_json = true;
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  if (optind < argc)
    return cli_usage_error (c, "\"%s\" accepts no arguments.", c->prog);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  cimg_error_t err = { 0 };
  struct cimg_container **v = NULL;
  size_t n = 0;
  /* The summaries hold every field read below (ps_state, ps_match, command_of, since). */
  if (cimg_container_list_brief (s, &v, &n, &err) < 0)
    return cli_fail (&err);
  struct table *t = quiet || as_json ? NULL : table_new (7);
  if (t)
    table_add (t, "CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "PORTS", "NAMES");
  for (size_t k = 0; k < n; k++)
    {
      struct cimg_container *ctr = v[k];
      const char *status = ps_state (ctr);
      bool running = strcmp (status, "running") == 0;
      if (!all && !running)
        continue;
      if (!ps_match (s, ctr, filters))
        continue;
      char id[80];
      snprintf (id, sizeof id, no_trunc ? "%s" : "%.12s", ctr->id);
      if (quiet)
        {
          printf ("%s\n", id);
          continue;
        }
      char created[96], st[128], d[64], ago[64];
      since (cimg_json_str (ctr->config, "Created"), ago, sizeof ago);
      snprintf (created, sizeof created, "%s ago", ago);
      if (running)
        {
          since (cimg_json_str (ctr->state, "StartedAt"), d, sizeof d);
          snprintf (st, sizeof st, "Up %s", d);
        }
      else if (strcmp (status, "exited") == 0 || strcmp (status, "restarting") == 0)
        {
          since (cimg_json_str (ctr->state, "FinishedAt"), d, sizeof d);
          snprintf (st, sizeof st, "%s (%d) %s ago", status[0] == 'e' ? "Exited" : "Restarting",
                    cimg_container_exit_code (ctr), d);
        }
      else
        snprintf (st, sizeof st, "Created");
      cleanup_free char *cmd = command_of (ctr, no_trunc);
      if (as_json)
        {
          cleanup_json json_t *o = json_pack (
              "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "Command", cmd, "CreatedAt",
              cimg_json_str (ctr->config, "Created") ?: "", "ID", id, "Image",
              cimg_json_str (ctr->config, "ImageName") ?: "", "Names", cimg_container_name (ctr),
              "Ports", "", "RunningFor", created, "State", status, "Status", st);
          cleanup_free char *text = o ? json_dumps (o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
          if (text)
            printf ("%s\n", text);
          continue;
        }
      table_add (t, id, cimg_json_str (ctr->config, "ImageName") ?: "", cmd, created, st, "",
                 cimg_container_name (ctr));
    }
  if (t)
    {
      table_print (t, stdout);
      table_free (t);
    }
  cimg_containers_free (v, n);
  return 0;
}

/* ---------------------------------------------------------------- rm */

static int
rm_cb (struct cimg_store *s, struct cimg_container *ctr, const char *name, void *data,
       cimg_error_t *err)
{
  (void)name;
  bool force = *(bool *)data;
  pid_t pid = cimg_container_pid (ctr);
  bool restarting = strcmp (ps_state (ctr), "restarting") == 0;
  if (pid > 0 || restarting)
    {
      if (!force)
        return cimg_error_set (err, EBUSY,
                               "You cannot remove a %s container %s. Stop the container before "
                               "attempting removal or force remove",
                               pid > 0 ? "running" : "restarting", ctr->id);
      if (cli_container_kill_all (s, ctr) < 0)
        return cimg_error_set (err, ETIMEDOUT, "container %.12s did not stop after SIGKILL",
                               ctr->id);
    }
  /* A cgroup left by a runner that was itself killed. */
  struct cimg_cgroup *cg = cimg_cgroup_open (ctr->id, err);
  cimg_error_clear (err);
  if (cg)
    {
      int r = cimg_cgroup_destroy (cg, err);
      cimg_cgroup_free (cg);
      if (r < 0)
        return -1;
    }
  cleanup_close int lk = cimg_container_lock (s, ctr, err);
  if (lk < 0 || cimg_container_remove (s, ctr, err) < 0)
    return -1;
  return 0;
}

int
cmd_rm (struct cli *c, int argc, char **argv)
{
  static const struct option longopts[]
      = { { "force", no_argument, NULL, 'f' }, { "volumes", no_argument, NULL, 'v' }, { 0 } };
  bool force = false;
  int r;
  while ((r = cli_getopt (c, argc, argv, "fv", longopts)) != -1)
    switch (r)
      {
      case 'f':
        force = true;
        break;
      case 'v':
        break;
      case 'h':
        return 0;
      default:
        return EXIT_USAGE;
      }
  return cli_each_container (c, argc, argv, true, rm_cb, &force);
}
