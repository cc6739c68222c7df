/* build: Dockerfile metadata instructions applied to a container config. The build's ENV, CMD,
   EXPOSE… and the --change lines of import and commit go through the same code, so that a
   change means what the same line means in a Dockerfile. See docs/build.md ("Config changes"). */
#ifndef CIMG_BUILD_CHANGE_H
#define CIMG_BUILD_CHANGE_H

#include "build/build.h"

/* How one metadata instruction is applied. */
struct cimg_meta_ctx
{
  int escape;   /* the Dockerfile's escape character, '\\' or '`' */
  char **env;   /* "K=V" the words expand against (build args, then Env); each ENV pair is set
                   here too, so that the pairs after it see it. Owned by the caller. */
  bool cmd_set; /* a CMD was applied before in this run: ENTRYPOINT keeps it (Docker resets a
                   Cmd that was not set in the same run); set by CMD */
};

/* Apply the metadata instruction in (ENV LABEL CMD ENTRYPOINT SHELL WORKDIR USER STOPSIGNAL
   EXPOSE VOLUME ONBUILD HEALTHCHECK; not MAINTAINER, which is no part of the container config)
   to cc, the "config" of an image config. When desc is not NULL it receives the text the build
   records in the history and the step cache key ("ENV A=b", "EXPOSE 80/tcp"; a leading '\001'
   means no blank after "#(nop)"). Returns 0, or -1 with err set ("EXPOSE: invalid port \"x\"")
   and cc possibly half-changed: the caller keeps a copy when that matters. */
int cimg_build_apply_meta (json_t *cc, const struct cimg_instruction *in, struct cimg_meta_ctx *m,
                           char **desc, cimg_error_t *err);

/* Apply one Docker --change line ("ENV A=b", "CMD [\"sh\"]", "EXPOSE 80/udp") to cc, the
   container config of an image, as `docker commit --change` and `docker import --change` do:
   the line is parsed by the Dockerfile parser (quotes, JSON form, both ENV forms) and its words
   expand against cc's Env. CMD ENTRYPOINT ENV EXPOSE HEALTHCHECK LABEL ONBUILD STOPSIGNAL USER
   VOLUME WORKDIR are accepted; any other instruction is an error that names it. */
int cimg_config_apply_change (json_t *cc, const char *line, cimg_error_t *err);
/* Apply the lines of changes (NULL-terminated, may be NULL) in order, as one run (a CMD before
   an ENTRYPOINT is kept). An error names the line: "change \"RUN x\": RUN is not a valid change
   command". */
int cimg_config_apply_changes (json_t *cc, char *const *changes, cimg_error_t *err);

/* ---------------------------------------------------------------- HEALTHCHECK */

/* The Healthcheck object of a HEALTHCHECK instruction, as BuildKit's parseHealthcheck makes it:
   {"Test": ["CMD-SHELL", "…"] | ["CMD", …] | ["NONE"], "Interval", "Timeout", "StartPeriod",
   "StartInterval" (nanoseconds), "Retries"}, a field left out when zero. --interval, --timeout,
   --start-period and --start-interval are Go durations, 0 or at least 1ms; --retries a 32-bit
   integer ≥ 0; an empty value is unset; NONE ignores them. Returns a new reference, or NULL with
   err set to BuildKit's message ("Interval \"timeout\" cannot be less than 1ms", "--retries
   cannot be negative (-1)", "strconv.ParseInt: parsing \"x\": invalid syntax"). */
json_t *cimg_build_healthcheck (const struct cimg_instruction *in, cimg_error_t *err);

/* ---------------------------------------------------------------- shared with build/exec.c */

/* Set k=v in the "K=V" vector *env (replacing an earlier k). */
void build_env_set (char ***env, const char *k, const char *v);
/* Clean an absolute path: no ".", "..", "//"; ".." stops at "/". Newly allocated. */
char *build_clean_abs (const char *p);
/* The instruction's name in upper case ("run" → "RUN"), newly allocated. */
char *build_upper_name (const char *n);
/* The command of RUN, CMD or ENTRYPOINT: the exec form as is, the shell form through cc's Shell
   (/bin/sh -c when it has none). A newly allocated vector. */
char **build_command_of (json_t *cc, const struct cimg_instruction *in);
/* v joined: as a compact JSON array when json, else with blanks. Newly allocated. */
char *build_join_args (char *const *v, bool json);

#endif
