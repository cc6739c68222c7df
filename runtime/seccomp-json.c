/* runtime/seccomp-json.c: --security-opt seccomp=PROFILE.json, a seccomp profile in Docker's
   JSON format (moby's profiles/seccomp types), compiled with libseccomp into the same program
   as the built-in default profile (runtime/seccomp.c), so that the spawner loads either with
   cimg_seccomp_load.

   What Docker (moby's setupSeccomp) and runc do with a profile, done here in one pass:
   - the architectures: "architectures" as listed, or from "archMap" the entry of the native
     architecture and its subArchitectures (both at once is an error); none: the native one;
   - each syscalls[] entry is kept or dropped by its "includes" and "excludes": caps (the
     container's bounding set; includes wants all of them, excludes drops on any), arches (the
     native architecture's Go name: amd64, arm64, …) and minKernel ("<kernel>.<major>");
   - a kept entry adds a rule per name (names unknown to libseccomp are skipped) unless its
     action is the default one; args on the same index twice make one rule per condition
     (runc's "old behaviour": they are ORed), else one rule with every condition (ANDed);
   - errnoRet and defaultErrnoRet default to EPERM (ERRNO, TRACE).
   Syscalls newer than the profile answer ENOSYS when the default action is an errno other than
   ENOSYS (runc: not for ALLOW, LOG, TRACE): the loader's second filter, above the highest
   native syscall number the kept entries name. For KILL and TRAP defaults the stacked ENOSYS
   filter could not win (the kernel keeps the highest-precedence action), so there is none.

   Stricter than Docker on purpose: every entry is checked (also those its includes drop), a
   type that Go would refuse is an error, and every error names the field. Not supported
   (errors): SCMP_ACT_NOTIFY and listenerPath (no listener), flags other than
   SECCOMP_FILTER_FLAG_TSYNC (which changes nothing for the single-threaded process that loads
   the filter). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "runtime/confine.h"
#include "runtime/confine-internal.h"

#define MAX_ARGS 6

static void
ctx_releasep (scmp_filter_ctx *ctx)
{
  if (*ctx)
    seccomp_release (*ctx);
}

/* "seccomp profile: <fmt>", EINVAL. Returns -1. */
__attribute__ ((format (printf, 2, 3))) static int
bad (cimg_error_t *err, const char *fmt, ...)
{
  va_list ap;
  va_start (ap, fmt);
  char *m = NULL;
  if (vasprintf (&m, fmt, ap) < 0)
    m = NULL;
  va_end (ap);
  cimg_error_set (err, EINVAL, "seccomp profile: %s", m ? m : "invalid");
  free (m);
  return -1;
}

/* obj's member key, as Go's encoding/json finds it: the exact key, else one that differs only
   in case. JSON null counts as missing (Go leaves the field at its zero value). */
static json_t *
member (json_t *obj, const char *key)
{
  json_t *v = json_object_get (obj, key);
  if (v == NULL)
    {
      const char *k;
      json_t *x;
      json_object_foreach (obj, k, x)
      {
        if (strcasecmp (k, key) == 0)
          {
            v = x;
            break;
          }
      }
    }
  return json_is_null (v) ? NULL : v;
}

static const char *
json_type_name (const json_t *v)
{
  switch (json_typeof (v))
    {
    case JSON_OBJECT:
      return "an object";
    case JSON_ARRAY:
      return "an array";
    case JSON_STRING:
      return "a string";
    case JSON_INTEGER:
    case JSON_REAL:
      return "a number";
    case JSON_TRUE:
    case JSON_FALSE:
      return "a boolean";
    default:
      return "null";
    }
}

/* The name of member key of the object at `at` ("" for the root), for messages. */
static const char *
field (char *buf, size_t size, const char *at, const char *key)
{
  snprintf (buf, size, "%s%s%s", at, *at ? "." : "", key);
  return buf;
}

/* A string member (NULL when missing). */
static int
get_string (json_t *obj, const char *key, const char *at, const char **out, cimg_error_t *err)
{
  json_t *v = member (obj, key);
  char f[256];
  *out = NULL;
  if (v == NULL)
    return 0;
  if (!json_is_string (v))
    return bad (err, "%s: expected a string, got %s", field (f, sizeof f, at, key),
                json_type_name (v));
  *out = json_string_value (v);
  return 0;
}

/* An array member (NULL when missing). */
static int
get_array (json_t *obj, const char *key, const char *at, json_t **out, cimg_error_t *err)
{
  json_t *v = member (obj, key);
  char f[256];
  *out = NULL;
  if (v == NULL)
    return 0;
  if (!json_is_array (v))
    return bad (err, "%s: expected an array, got %s", field (f, sizeof f, at, key),
                json_type_name (v));
  *out = v;
  return 0;
}

/* An unsigned integer member, at most max; *set (when not NULL) false when missing. */
static int
get_uint (json_t *obj, const char *key, const char *at, uint64_t max, uint64_t *out, bool *set,
          cimg_error_t *err)
{
  json_t *v = member (obj, key);
  char f[256];
  *out = 0;
  if (set)
    *set = v != NULL;
  if (v == NULL)
    return 0;
  if (!json_is_integer (v) || json_integer_value (v) < 0)
    return bad (err, "%s: expected an unsigned integer, got %s", field (f, sizeof f, at, key),
                json_is_integer (v) ? "a negative number" : json_type_name (v));
  if ((uint64_t)json_integer_value (v) > max)
    return bad (err, "%s: %lld is out of range (0 to %llu)", field (f, sizeof f, at, key),
                (long long)json_integer_value (v), (unsigned long long)max);
  *out = (uint64_t)json_integer_value (v);
  return 0;
}

/* Every element of arr is a string. */
static int
check_strings (json_t *arr, const char *at, cimg_error_t *err)
{
  size_t i;
  json_t *v;
  json_array_foreach (arr, i, v)
  {
    if (!json_is_string (v))
      return bad (err, "%s[%zu]: expected a string, got %s", at, i, json_type_name (v));
  }
  return 0;
}

static bool
array_has (json_t *arr, const char *s)
{
  size_t i;
  json_t *v;
  json_array_foreach (arr, i, v)
  {
    if (strcmp (json_string_value (v), s) == 0)
      return true;
  }
  return false;
}

/* ---------------------------------------------------------------- names */

/* Docker's action names. KILL is KILL_THREAD, as in runc and libseccomp. */
enum kind
{
  K_KILL_THREAD,
  K_KILL_PROCESS,
  K_TRAP,
  K_ERRNO,
  K_TRACE,
  K_LOG,
  K_ALLOW,
  K_NOTIFY,
};
static const struct
{
  const char *name;
  enum kind kind;
} actions[] = {
  { "SCMP_ACT_KILL", K_KILL_THREAD },
  { "SCMP_ACT_KILL_THREAD", K_KILL_THREAD },
  { "SCMP_ACT_KILL_PROCESS", K_KILL_PROCESS },
  { "SCMP_ACT_TRAP", K_TRAP },
  { "SCMP_ACT_ERRNO", K_ERRNO },
  { "SCMP_ACT_TRACE", K_TRACE },
  { "SCMP_ACT_LOG", K_LOG },
  { "SCMP_ACT_ALLOW", K_ALLOW },
  { "SCMP_ACT_NOTIFY", K_NOTIFY },
};

static const struct
{
  const char *name;
  enum scmp_compare op;
} operators[] = {
  { "SCMP_CMP_NE", SCMP_CMP_NE },
  { "SCMP_CMP_LT", SCMP_CMP_LT },
  { "SCMP_CMP_LE", SCMP_CMP_LE },
  { "SCMP_CMP_EQ", SCMP_CMP_EQ },
  { "SCMP_CMP_GE", SCMP_CMP_GE },
  { "SCMP_CMP_GT", SCMP_CMP_GT },
  { "SCMP_CMP_MASKED_EQ", SCMP_CMP_MASKED_EQ },
};

/* The action in obj's member key ("action", "defaultAction"), with its errno from errno_key
   ("errnoRet", "defaultErrnoRet"; EPERM when missing). */
static int
parse_action (json_t *obj, const char *at, const char *key, const char *errno_key, uint32_t *act,
              enum kind *kind, cimg_error_t *err)
{
  const char *s;
  char f[256];
  if (get_string (obj, key, at, &s, err) < 0)
    return -1;
  if (s == NULL || *s == '\0')
    return bad (err, "%s: missing", field (f, sizeof f, at, key));
  size_t i;
  for (i = 0; i < ARRAY_SIZE (actions); i++)
    if (strcmp (actions[i].name, s) == 0)
      break;
  if (i == ARRAY_SIZE (actions))
    return bad (err, "%s: unknown action \"%s\"", field (f, sizeof f, at, key), s);
  *kind = actions[i].kind;
  if (*kind == K_NOTIFY)
    return bad (err, "%s: SCMP_ACT_NOTIFY is not supported (cimg has no seccomp agent)",
                field (f, sizeof f, at, key));
  /* The errno of ERRNO (the kernel caps it at 4095), the message of TRACE (16 bits); checked
     but ignored with the other actions, as runc ignores it. */
  uint64_t max = *kind == K_ERRNO ? 4095 : *kind == K_TRACE ? 0xffff : UINT64_MAX;
  uint64_t e;
  bool set;
  if (get_uint (obj, errno_key, at, max, &e, &set, err) < 0)
    return -1;
  if (!set)
    e = EPERM;
  switch (*kind)
    {
    case K_KILL_THREAD:
      *act = SCMP_ACT_KILL_THREAD;
      break;
    case K_KILL_PROCESS:
      *act = SCMP_ACT_KILL_PROCESS;
      break;
    case K_TRAP:
      *act = SCMP_ACT_TRAP;
      break;
    case K_ERRNO:
      *act = SCMP_ACT_ERRNO ((uint32_t)e);
      break;
    case K_TRACE:
      *act = SCMP_ACT_TRACE ((uint32_t)e);
      break;
    case K_LOG:
      *act = SCMP_ACT_LOG;
      break;
    case K_ALLOW:
    case K_NOTIFY:
      *act = SCMP_ACT_ALLOW;
      break;
    }
  return 0;
}

/* The native architecture as Docker names it in includes/excludes.arches (Go's GOARCH, with
   libseccomp's names where Go has none). */
static const char *
native_go_name (uint32_t arch)
{
  static const struct
  {
    uint32_t arch;
    const char *name;
  } names[] = {
    { SCMP_ARCH_X86, "x86" },
    { SCMP_ARCH_X86_64, "amd64" },
    { SCMP_ARCH_X32, "x32" },
    { SCMP_ARCH_ARM, "arm" },
    { SCMP_ARCH_AARCH64, "arm64" },
    { SCMP_ARCH_MIPS, "mips" },
    { SCMP_ARCH_MIPS64, "mips64" },
    { SCMP_ARCH_MIPS64N32, "mips64n32" },
    { SCMP_ARCH_MIPSEL, "mipsel" },
    { SCMP_ARCH_MIPSEL64, "mipsel64" },
    { SCMP_ARCH_MIPSEL64N32, "mipsel64n32" },
    { SCMP_ARCH_PPC, "ppc" },
    { SCMP_ARCH_PPC64, "ppc64" },
    { SCMP_ARCH_PPC64LE, "ppc64le" },
    { SCMP_ARCH_S390, "s390" },
    { SCMP_ARCH_S390X, "s390x" },
    { SCMP_ARCH_PARISC, "parisc" },
    { SCMP_ARCH_PARISC64, "parisc64" },
    { SCMP_ARCH_RISCV64, "riscv64" },
  };
  for (size_t i = 0; i < ARRAY_SIZE (names); i++)
    if (names[i].arch == arch)
      return names[i].name;
  return "";
}

/* "SCMP_ARCH_X86_64" → libseccomp's token; 0 when unknown (to this libseccomp). */
static uint32_t
arch_token (const char *name)
{
  static const char prefix[] = "SCMP_ARCH_";
  if (strncmp (name, prefix, sizeof prefix - 1) != 0)
    return 0;
  char lower[32];
  const char *s = name + sizeof prefix - 1;
  size_t n = strlen (s);
  if (n == 0 || n >= sizeof lower)
    return 0;
  for (size_t i = 0; i <= n; i++)
    lower[i] = (char)tolower ((unsigned char)s[i]);
  return seccomp_arch_resolve_name (lower);
}

static int
add_arch (scmp_filter_ctx ctx, const char *name, const char *at, cimg_error_t *err)
{
  uint32_t a = arch_token (name);
  if (a == 0)
    return bad (err, "%s: unknown architecture \"%s\"", at, name);
  int r = seccomp_arch_add (ctx, a);
  if (r < 0 && r != -EEXIST)
    return bad (err, "%s: add architecture %s: %s", at, name, strerror (-r));
  return 0;
}

/* ---------------------------------------------------------------- kernel versions */

/* moby's KernelVersion: "<kernel>.<major>", each 0..255, not 0.0; "" is unset. */
static int
parse_min_kernel (const char *s, const char *at, int *major, int *minor, cimg_error_t *err)
{
  unsigned a = 0, b = 0;
  int n = 0;
  if (*s == '\0')
    {
      *major = *minor = -1;
      return 0;
    }
  if (!isdigit ((unsigned char)s[0]) || sscanf (s, "%3u.%3u%n", &a, &b, &n) != 2 || s[n] != '\0'
      || !isdigit ((unsigned char)s[strcspn (s, ".") + 1]) || a > 255 || b > 255
      || (a == 0 && b == 0))
    return bad (err, "%s: invalid kernel version \"%s\", expected \"<kernel>.<major>\"", at, s);
  *major = (int)a;
  *minor = (int)b;
  return 0;
}

static void
running_kernel (int *major, int *minor)
{
  struct utsname u;
  *major = *minor = 0;
  if (uname (&u) == 0 && sscanf (u.release, "%d.%d", major, minor) != 2)
    *major = *minor = 0;
}

/* ---------------------------------------------------------------- the profile */

struct build
{
  scmp_filter_ctx ctx;
  uint64_t caps;           /* the container's bounding set, as a mask */
  uint32_t native;         /* seccomp_arch_native () */
  const char *native_name; /* its Docker (Go) name */
  int kmajor, kminor;      /* the running kernel */
  uint32_t def_act;
  int max_native; /* highest native syscall number of the kept entries */
  cimg_error_t *err;
};

/* includes or excludes of entry `at`: *match is whether each condition it gives holds, as moby
   reads them — for includes, all of them; for excludes, any of them. A missing filter matches
   for includes and not for excludes. */
static int
eval_filter (struct build *b, json_t *entry, const char *key, const char *at, bool *match)
{
  bool includes = strcmp (key, "includes") == 0;
  *match = includes;
  json_t *f = member (entry, key);
  if (f == NULL)
    return 0;
  char fat[64];
  snprintf (fat, sizeof fat, "%s.%s", at, key);
  if (!json_is_object (f))
    return bad (b->err, "%s: expected an object, got %s", fat, json_type_name (f));
  json_t *caps, *arches;
  const char *mk;
  if (get_array (f, "caps", fat, &caps, b->err) < 0
      || get_array (f, "arches", fat, &arches, b->err) < 0
      || get_string (f, "minKernel", fat, &mk, b->err) < 0)
    return -1;
  char sub[96];
  if (caps)
    {
      snprintf (sub, sizeof sub, "%s.caps", fat);
      if (check_strings (caps, sub, b->err) < 0)
        return -1;
    }
  if (arches)
    {
      snprintf (sub, sizeof sub, "%s.arches", fat);
      if (check_strings (arches, sub, b->err) < 0)
        return -1;
    }
  int kmaj = -1, kmin = -1;
  if (mk)
    {
      snprintf (sub, sizeof sub, "%s.minKernel", fat);
      if (parse_min_kernel (mk, sub, &kmaj, &kmin, b->err) < 0)
        return -1;
    }

  bool any = false, all = true;
  size_t i;
  json_t *v;
  /* A capability unknown to cimg is one the container does not hold (moby compares the names
     with the bounding set's). */
  json_array_foreach (caps, i, v)
  {
    int c = cimg_cap_from_name (json_string_value (v));
    bool held = c >= 0 && c < 64 && (b->caps & (UINT64_C (1) << c)) != 0;
    any |= held;
    all &= held;
  }
  if (arches && json_array_size (arches) > 0)
    {
      bool in = array_has (arches, b->native_name);
      any |= in;
      all &= in;
    }
  if (kmaj >= 0)
    {
      bool ge = b->kmajor > kmaj || (b->kmajor == kmaj && b->kminor >= kmin);
      any |= ge;
      all &= ge;
    }
  *match = includes ? all : any;
  return 0;
}

struct cond_set
{
  struct scmp_arg_cmp c[MAX_ARGS * 4];
  unsigned n;
  bool same_index; /* an index compared twice: one rule per condition (runc) */
};

static int
parse_args (struct build *b, json_t *entry, const char *at, struct cond_set *cs)
{
  json_t *args;
  cs->n = 0;
  cs->same_index = false;
  if (get_array (entry, "args", at, &args, b->err) < 0)
    return -1;
  if (args == NULL)
    return 0;
  if (json_array_size (args) > ARRAY_SIZE (cs->c))
    return bad (b->err, "%s.args: %zu conditions, at most %zu", at, json_array_size (args),
                ARRAY_SIZE (cs->c));
  unsigned seen[MAX_ARGS] = { 0 };
  size_t i;
  json_t *a;
  json_array_foreach (args, i, a)
  {
    char aat[96];
    snprintf (aat, sizeof aat, "%s.args[%zu]", at, i);
    if (!json_is_object (a))
      return bad (b->err, "%s: expected an object, got %s", aat, json_type_name (a));
    uint64_t index, value, value2;
    const char *op;
    /* As Go's decoder: a missing index or value is 0. */
    if (get_uint (a, "index", aat, MAX_ARGS - 1, &index, NULL, b->err) < 0
        || get_uint (a, "value", aat, UINT64_MAX, &value, NULL, b->err) < 0
        || get_uint (a, "valueTwo", aat, UINT64_MAX, &value2, NULL, b->err) < 0
        || get_string (a, "op", aat, &op, b->err) < 0)
      return -1;
    if (op == NULL)
      return bad (b->err, "%s.op: missing", aat);
    size_t k;
    for (k = 0; k < ARRAY_SIZE (operators); k++)
      if (strcmp (operators[k].name, op) == 0)
        break;
    if (k == ARRAY_SIZE (operators))
      return bad (b->err, "%s.op: unknown operator \"%s\"", aat, op);
    if (seen[index]++)
      cs->same_index = true;
    /* MASKED_EQ: (arg & value) == valueTwo; the others compare with value alone. */
    cs->c[cs->n++]
        = (struct scmp_arg_cmp){ .arg = (unsigned)index,
                                 .op = operators[k].op,
                                 .datum_a = value,
                                 .datum_b = operators[k].op == SCMP_CMP_MASKED_EQ ? value2 : 0 };
  }
  return 0;
}

static int
add_rules (struct build *b, const char *at, uint32_t act, const char *name,
           const struct cond_set *cs)
{
  int nr = seccomp_syscall_resolve_name (name);
  if (nr == __NR_SCMP_ERROR)
    return 0; /* unknown to libseccomp: skipped, as Docker does */
  /* Counted whatever the action (runc's ENOSYS stub counts every name of the profile). */
  if (nr > b->max_native)
    b->max_native = nr;
  /* The default action already: libseccomp refuses such a rule; runc skips it. */
  if (act == b->def_act)
    return 0;
  int r = 0;
  if (cs->same_index)
    for (unsigned i = 0; i < cs->n && r >= 0; i++)
      r = seccomp_rule_add_array (b->ctx, act, nr, 1, &cs->c[i]);
  else
    r = seccomp_rule_add_array (b->ctx, act, nr, cs->n, cs->n ? cs->c : NULL);
  /* A pseudo number: a syscall the native architecture lacks, absent from every architecture
     of the filter too. */
  if (r < 0 && nr < 0)
    return 0;
  if (r < 0)
    return cimg_error_set (b->err, -r, "seccomp profile: %s: rule for %s: %s", at, name,
                           strerror (-r));
  return 0;
}

static int
add_entry (struct build *b, json_t *entry, size_t idx)
{
  char at[48];
  snprintf (at, sizeof at, "syscalls[%zu]", idx);
  if (!json_is_object (entry))
    return bad (b->err, "%s: expected an object, got %s", at, json_type_name (entry));

  /* Everything is checked first, also for an entry that includes/excludes drop. */
  json_t *names;
  const char *name;
  if (get_array (entry, "names", at, &names, b->err) < 0
      || get_string (entry, "name", at, &name, b->err) < 0)
    return -1;
  if (name && *name && names && json_array_size (names) > 0)
    return bad (b->err, "%s: both \"name\" and \"names\" are given; use one", at);
  if ((name == NULL || *name == '\0') && (names == NULL || json_array_size (names) == 0))
    return bad (b->err, "%s.names: missing (a list of syscall names)", at);
  if (names)
    {
      char nat[64];
      snprintf (nat, sizeof nat, "%s.names", at);
      if (check_strings (names, nat, b->err) < 0)
        return -1;
    }
  uint32_t act;
  enum kind kind;
  if (parse_action (entry, at, "action", "errnoRet", &act, &kind, b->err) < 0)
    return -1;
  struct cond_set cs;
  if (parse_args (b, entry, at, &cs) < 0)
    return -1;
  bool inc, exc;
  if (eval_filter (b, entry, "includes", at, &inc) < 0
      || eval_filter (b, entry, "excludes", at, &exc) < 0)
    return -1;
  if (!inc || exc)
    return 0;

  if (name && *name && (names == NULL || json_array_size (names) == 0))
    return add_rules (b, at, act, name, &cs);
  size_t i;
  json_t *v;
  json_array_foreach (names, i, v)
  {
    if (add_rules (b, at, act, json_string_value (v), &cs) < 0)
      return -1;
  }
  return 0;
}

static int
add_architectures (struct build *b, json_t *root)
{
  json_t *list, *map;
  if (get_array (root, "architectures", "", &list, b->err) < 0
      || get_array (root, "archMap", "", &map, b->err) < 0)
    return -1;
  if (list && json_array_size (list) > 0 && map && json_array_size (map) > 0)
    return bad (b->err, "archMap: \"architectures\" and \"archMap\" are both given; use one");
  size_t i;
  json_t *v;
  char at[48];
  json_array_foreach (list, i, v)
  {
    snprintf (at, sizeof at, "architectures[%zu]", i);
    if (!json_is_string (v))
      return bad (b->err, "%s: expected a string, got %s", at, json_type_name (v));
    if (add_arch (b->ctx, json_string_value (v), at, b->err) < 0)
      return -1;
  }
  bool done = false;
  json_array_foreach (map, i, v)
  {
    snprintf (at, sizeof at, "archMap[%zu]", i);
    if (!json_is_object (v))
      return bad (b->err, "%s: expected an object, got %s", at, json_type_name (v));
    const char *arch;
    json_t *subs;
    if (get_string (v, "architecture", at, &arch, b->err) < 0
        || get_array (v, "subArchitectures", at, &subs, b->err) < 0)
      return -1;
    if (arch == NULL)
      return bad (b->err, "%s.architecture: missing", at);
    char sat[80];
    snprintf (sat, sizeof sat, "%s.subArchitectures", at);
    if (subs && check_strings (subs, sat, b->err) < 0)
      return -1;
    /* Only the native architecture's entry is used (names of other entries may be newer than
       this libseccomp: not an error). */
    if (done || arch_token (arch) != b->native)
      continue;
    done = true;
    char aat[96];
    snprintf (aat, sizeof aat, "%s.architecture", at);
    if (add_arch (b->ctx, arch, aat, b->err) < 0)
      return -1;
    size_t j;
    json_t *s;
    json_array_foreach (subs, j, s)
    {
      char one[112];
      snprintf (one, sizeof one, "%s[%zu]", sat, j);
      if (add_arch (b->ctx, json_string_value (s), one, b->err) < 0)
        return -1;
    }
  }
  return 0;
}

static int
check_unsupported (struct build *b, json_t *root)
{
  json_t *flags;
  const char *listener;
  if (get_array (root, "flags", "", &flags, b->err) < 0
      || get_string (root, "listenerPath", "", &listener, b->err) < 0)
    return -1;
  if (listener && *listener)
    return bad (b->err, "listenerPath: not supported (cimg has no seccomp agent)");
  if (flags && check_strings (flags, "flags", b->err) < 0)
    return -1;
  size_t i;
  json_t *v;
  json_array_foreach (flags, i, v)
  {
    const char *f = json_string_value (v);
    if (strcmp (f, "SECCOMP_FILTER_FLAG_TSYNC") != 0)
      return bad (b->err, "flags[%zu]: %s is not supported", i, f);
  }
  return 0;
}

int
cimg_seccomp_prepare_json (const char *json_text, size_t len, char *const *caps,
                           struct cimg_seccomp_prog **out, cimg_error_t *err)
{
  *out = NULL;
  if (len > CIMG_SECCOMP_PROFILE_MAX)
    return cimg_error_set (err, EFBIG, "seccomp profile: %zu bytes, over the limit of %d", len,
                           CIMG_SECCOMP_PROFILE_MAX);
  uint64_t capmask;
  if (cimg_caps_to_mask (caps, &capmask, err) < 0)
    return cimg_error_wrap (err, "seccomp profile");
  cleanup_json json_t *root = cimg_json_parse (json_text, len, err);
  if (root == NULL)
    return cimg_error_wrap (err, "seccomp profile");

  struct build b
      = { .caps = capmask, .native = seccomp_arch_native (), .max_native = -1, .err = err };
  b.native_name = native_go_name (b.native);
  running_kernel (&b.kmajor, &b.kminor);

  json_t *syscalls;
  const char *def;
  if (get_array (root, "syscalls", "", &syscalls, err) < 0
      || get_string (root, "defaultAction", "", &def, err) < 0)
    return -1;
  /* As moby: no default action and no syscalls is no filter at all. */
  if ((def == NULL || *def == '\0') && (syscalls == NULL || json_array_size (syscalls) == 0))
    return 0;
  enum kind def_kind;
  if (parse_action (root, "", "defaultAction", "defaultErrnoRet", &b.def_act, &def_kind, err) < 0)
    return -1;
  if (check_unsupported (&b, root) < 0)
    return -1;

  __attribute__ ((cleanup (ctx_releasep))) scmp_filter_ctx ctx = seccomp_init (b.def_act);
  if (ctx == NULL)
    return bad (err, "defaultAction: %s is not supported by this kernel or libseccomp", def);
  b.ctx = ctx;
  /* The caller of cimg_seccomp_load decides about NO_NEW_PRIVS, as for the default profile;
     and the same binary search on the syscall number (see seccomp.c). */
  int r = seccomp_attr_set (ctx, SCMP_FLTATR_CTL_NNP, 0);
  if (r < 0)
    return cimg_error_set (err, -r, "seccomp: unset NO_NEW_PRIVS attribute: %s", strerror (-r));
  seccomp_attr_set (ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);

  if (add_architectures (&b, root) < 0)
    return -1;
  size_t i;
  json_t *entry;
  json_array_foreach (syscalls, i, entry)
  {
    if (add_entry (&b, entry, i) < 0)
      return -1;
  }

  /* runc's rule for its ENOSYS stub: only when the default is an errno, and not ENOSYS. */
  bool enosys = def_kind == K_ERRNO && b.def_act != SCMP_ACT_ERRNO (ENOSYS);
  *out = cimg_seccomp_prog_from_ctx (ctx, b.native, enosys ? b.max_native : -1, err);
  return *out ? 0 : -1;
}

int
cimg_seccomp_read_profile (const char *path, char **text, size_t *len, cimg_error_t *err)
{
  *text = NULL;
  *len = 0;
  /* O_NONBLOCK: a FIFO named by mistake must not hang the run (fstat refuses it next). */
  cleanup_close int fd = open (path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  struct stat st;
  if (fd < 0)
    return cimg_error_sys (err, "seccomp profile %s", path);
  if (fstat (fd, &st) < 0)
    return cimg_error_sys (err, "seccomp profile %s", path);
  if (!S_ISREG (st.st_mode))
    return cimg_error_set (err, EINVAL, "seccomp profile %s: not a regular file", path);
  if (st.st_size > CIMG_SECCOMP_PROFILE_MAX)
    return cimg_error_set (err, EFBIG, "seccomp profile %s: %lld bytes, over the limit of %d", path,
                           (long long)st.st_size, CIMG_SECCOMP_PROFILE_MAX);
  /* Up to one byte more than the limit, so that a file that grew since fstat is caught. */
  const size_t most = CIMG_SECCOMP_PROFILE_MAX + 1;
  size_t have = (size_t)st.st_size + 1, n = 0;
  cleanup_free char *buf = xmalloc (have + 1);
  for (;;)
    {
      if (n == have)
        {
          if (have >= most)
            break;
          have = have * 2 > most ? most : have * 2;
          buf = xrealloc (buf, have + 1);
        }
      ssize_t r = read (fd, buf + n, have - n);
      if (r < 0 && errno == EINTR)
        continue;
      if (r < 0)
        return cimg_error_sys (err, "seccomp profile %s: read", path);
      if (r == 0)
        break;
      n += (size_t)r;
    }
  if (n > CIMG_SECCOMP_PROFILE_MAX)
    return cimg_error_set (err, EFBIG, "seccomp profile %s: over the limit of %d bytes", path,
                           CIMG_SECCOMP_PROFILE_MAX);
  buf[n] = '\0';
  *text = steal_pointer (&buf);
  *len = n;
  return 0;
}

int
cimg_seccomp_prepare_json_file (const char *path, char *const *caps, struct cimg_seccomp_prog **out,
                                cimg_error_t *err)
{
  *out = NULL;
  cleanup_free char *buf = NULL;
  size_t n;
  if (cimg_seccomp_read_profile (path, &buf, &n, err) < 0)
    return -1;
  cimg_error_t inner = { 0 };
  if (cimg_seccomp_prepare_json (buf, n, caps, out, &inner) < 0)
    {
      /* "seccomp profile: x" → "seccomp profile <path>: x". */
      static const char prefix[] = "seccomp profile: ";
      const char *m = inner.msg ? inner.msg : "";
      if (strncmp (m, prefix, sizeof prefix - 1) == 0)
        m += sizeof prefix - 1;
      cimg_error_set (err, inner.code, "seccomp profile %s: %s", path, m);
      cimg_error_clear (&inner);
      return -1;
    }
  return 0;
}

int
cimg_seccomp_prepare_for (int store_dirfd, const char *profile_json, char *const *caps,
                          struct cimg_seccomp_prog **out, cimg_error_t *err)
{
  if (profile_json)
    return cimg_seccomp_prepare_json (profile_json, strlen (profile_json), caps, out, err);
  return cimg_seccomp_prepare (store_dirfd, caps, out, err);
}
