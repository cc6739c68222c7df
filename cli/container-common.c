/* What the commands on containers share: finding the one container a command is about, and
   the values of their flags in seconds. */
#include "cli/cli.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "build/build-exec.h"
#include "store/container.h"

int
cli_one_container (struct cli *c, const char *ref, unsigned flags, struct cimg_store **s_out,
                   struct cimg_container **ctr_out)
{
  *s_out = NULL;
  *ctr_out = NULL;
  cimg_error_t err = { 0 };
  /* First, before the store is opened: whatever the command mounts later stays in this
     process's namespace and goes with it, however it exits. */
  if ((flags & CLI_CTR_MOUNT_NS) && cimg_build_enter_mount_namespace (&err) < 0)
    return cli_fail (&err);
  cleanup_store struct cimg_store *s = cli_open_store (c);
  if (s == NULL)
    return EXIT_FAIL;
  struct cimg_container *ctr = cimg_container_find (s, ref, &err);
  if (ctr == NULL)
    return cli_fail (&err);
  *ctr_out = ctr;
  *s_out = steal_pointer (&s);
  return 0;
}

int
cli_parse_seconds (struct cli *c, const char *flag, const char *value, bool allow_forever,
                   int64_t *out)
{
  /* As Go's strconv.ParseInt, which Docker's flags use: an optional sign and decimal digits,
     nothing around them (strtoll alone would take leading blanks). */
  const char *digits = value + (value[0] == '+' || value[0] == '-');
  char *end = NULL;
  errno = 0;
  long long v = *digits >= '0' && *digits <= '9' ? strtoll (value, &end, 10) : 0;
  if (end == NULL || *end != '\0')
    return cli_usage_error (c, "invalid argument \"%s\" for \"%s\" flag: not a number of seconds",
                            value, flag);
  /* INT_MAX seconds (68 years) is more than any wait means; the bound keeps the
     milliseconds the callers compute from overflowing. */
  if (errno == ERANGE || v > INT_MAX)
    return cli_usage_error (c, "invalid argument \"%s\" for \"%s\" flag: value out of range", value,
                            flag);
  if (v < 0 && !(allow_forever && v == -1))
    return cli_usage_error (c, "invalid argument \"%s\" for \"%s\" flag: %s", value, flag,
                            allow_forever ? "seconds must be 0 or more, or -1 to wait without limit"
                                          : "seconds must be 0 or more");
  *out = v;
  return 0;
}
