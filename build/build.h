/* build: Dockerfiles. The parser, Docker's word expansion, .dockerignore matching and the
   --dry-run plan. See docs/build.md for the grammar and the few places cimg differs. */
#ifndef CIMG_BUILD_H
#define CIMG_BUILD_H

#include "util/util.h"

/* ---------------------------------------------------------------- word expansion */

/* Expand word as Docker's shell lexer (buildkit ProcessWord): $VAR, ${VAR}, ${VAR:-x},
   ${VAR-x}, ${VAR:+x}, ${VAR+x}, ${VAR:?msg}, ${VAR?msg}, ${VAR#pat}, ${VAR##pat}, ${VAR%pat},
   ${VAR%%pat}, ${VAR/pat/repl}, ${VAR//pat/repl}; quotes are removed, escape is '\\' or '`'.
   env is a NULL-terminated "KEY=VALUE" vector (an entry without '=' is set and empty; a later
   entry overrides an earlier one); NULL means empty. On success *out is newly allocated and 0
   is returned; on error -1 with err set ("failed to process \"…\": …"). */
int cimg_build_expand_word (const char *word, int escape, char *const *env, char **out,
                            cimg_error_t *err);
/* As cimg_build_expand_word, but split into words after expansion as Docker splits shell-form
   arguments (ProcessWords): unquoted white space, also white space that comes out of a
   variable, separates words. *out is a newly allocated NULL-terminated vector. */
int cimg_build_expand_words (const char *word, int escape, char *const *env, char ***out,
                             cimg_error_t *err);

/* ---------------------------------------------------------------- heredocs, platforms, mounts */

/* Expand a COPY/ADD heredoc body (one whose delimiter was not quoted) as BuildKit does: the
   variables of env expand, quotes are plain characters, '\\' escapes the next character.
   Returns 0 and a newly allocated *out, or -1 with err set. */
int cimg_build_expand_heredoc (const char *body, char *const *env, char **out, cimg_error_t *err);

struct cimg_platform
{
  char os[16], arch[24], variant[16]; /* "linux", "arm64", "" */
};
/* Parse "os/arch[/variant]" (or "arch") and normalise it as containerd does (x86_64 → amd64,
   aarch64 → arm64, arm64/v8 → arm64, arm → arm/v7). -1 with err set when malformed. */
int cimg_build_platform_parse (const char *s, struct cimg_platform *p, cimg_error_t *err);
/* This machine's platform. */
void cimg_build_platform_host (struct cimg_platform *p);
/* "os/arch[/variant]", newly allocated. */
char *cimg_build_platform_string (const struct cimg_platform *p);
/* The ARGs BuildKit predefines: BUILDPLATFORM BUILDOS BUILDARCH BUILDVARIANT TARGETPLATFORM
   TARGETOS TARGETARCH TARGETVARIANT, as a newly allocated "K=V" vector. */
char **cimg_build_platform_args (const struct cimg_platform *build,
                                 const struct cimg_platform *target);

enum cimg_build_mount_type
{
  CIMG_BUILD_MOUNT_BIND = 0,
  CIMG_BUILD_MOUNT_CACHE,
  CIMG_BUILD_MOUNT_TMPFS,
  CIMG_BUILD_MOUNT_SECRET,
};
enum cimg_build_sharing
{
  CIMG_BUILD_SHARING_SHARED = 0,
  CIMG_BUILD_SHARING_PRIVATE,
  CIMG_BUILD_SHARING_LOCKED,
};
/* One RUN --mount=… after parsing, BuildKit's defaults applied: bind is read-only and sources
   "." of the context; cache's id is its target, sharing shared, mode 0755; secret's id is the
   target's base name, its target /run/secrets/<id>, mode 0400, not required. */
struct cimg_build_mount
{
  enum cimg_build_mount_type type;
  char *target, *source, *from, *id, *env; /* NULL when not given */
  int readonly;                            /* 0 or 1 after parsing */
  bool required;
  enum cimg_build_sharing sharing;
  unsigned mode, uid, gid;
  long long size; /* tmpfs: bytes, 0: no limit */
};
/* Parse the value of --mount ("type=cache,target=/root/.cache"). -1 with err set for an unknown
   type ("unsupported mount type \"x\""), an unknown key, a bad value or a missing target. */
int cimg_build_mount_parse (const char *spec, struct cimg_build_mount *m, cimg_error_t *err);
void cimg_build_mount_clear (struct cimg_build_mount *m);

/* ---------------------------------------------------------------- Dockerfile */

struct cimg_heredoc
{
  char *name;    /* the delimiter, quotes removed: "EOF" */
  char *content; /* the body, lines with their "\n"; leading tabs already gone for <<- */
  bool expand;   /* false when the delimiter was quoted (<<"EOF", <<'EOF'): no expansion */
  bool chomp;    /* <<- */
  unsigned fd;   /* 3<<EOF gives 3; 0 when none was written */
};

/* One instruction. args depend on the instruction, as Docker's parser gives them:
     json == true (RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD, VOLUME, HEALTHCHECK CMD in exec form):
       the strings of the JSON array
     RUN, CMD, ENTRYPOINT, SHELL in shell form; MAINTAINER, USER, WORKDIR, STOPSIGNAL:
       one string, the text as written (after the flags)
     COPY, ADD, VOLUME (shell form), FROM, EXPOSE: the text split at white space
     ENV, LABEL: key, value, key, value, … (values as written, quotes kept; expansion comes later)
     ARG: one "name" or "name=value" word each (quotes kept)
     HEALTHCHECK: "NONE", or "CMD" followed by the command as for CMD
     ONBUILD: none; sub is the wrapped instruction */
struct cimg_instruction
{
  int line;       /* first line of the instruction, 1-based */
  int end_line;   /* last line, heredoc bodies included */
  char *name;     /* lower case: "run" */
  char *original; /* the logical line, continuations joined */
  char *text;     /* the arguments as written after the flags */
  char **flags;   /* "--from=build", quotes removed; never NULL */
  char **args;    /* see above; never NULL */
  bool json;      /* args came from a JSON array */
  struct cimg_heredoc *heredocs;
  size_t n_heredocs;
  struct cimg_instruction *sub; /* ONBUILD's instruction, else NULL */
};

struct cimg_dockerfile
{
  char *name;   /* as given to the parser, used in messages: "Dockerfile" */
  int escape;   /* '\\' or '`' */
  char *syntax; /* the "# syntax=" directive or NULL */
  struct cimg_instruction *instrs;
  size_t n_instrs;
  char **warnings; /* "Dockerfile:4: empty continuation line", …; never NULL */
};

/* Parse a Dockerfile. name is used in messages ("Dockerfile:7: unknown instruction: RUNN").
   Returns NULL and sets err on the first error. text need not be NUL-terminated. */
struct cimg_dockerfile *cimg_build_parse (const char *name, const char *text, size_t len,
                                          cimg_error_t *err);
void cimg_dockerfile_free (struct cimg_dockerfile *df);
void cimg_dockerfile_freep (struct cimg_dockerfile **df);
#define cleanup_dockerfile __attribute__ ((cleanup (cimg_dockerfile_freep)))

/* ---------------------------------------------------------------- .dockerignore */

/* Patterns as moby/patternmatcher reads them: Go filepath.Match syntax plus "**", "!"
   exceptions, the last matching line wins, a path is also excluded when one of its parent
   directories is. */
struct cimg_dockerignore;

/* Parse the text of a .dockerignore (comments, blank lines, BOM, "/" and "./" cleaned). Returns
   NULL and sets err for a bad pattern ("syntax error in pattern", "illegal exclusion …"). */
struct cimg_dockerignore *cimg_dockerignore_parse (const char *text, size_t len, cimg_error_t *err);
/* Build from patterns already read (e.g. given on the command line). */
struct cimg_dockerignore *cimg_dockerignore_new (char *const *patterns, cimg_error_t *err);
void cimg_dockerignore_free (struct cimg_dockerignore *di);
void cimg_dockerignore_freep (struct cimg_dockerignore **di);
#define cleanup_dockerignore __attribute__ ((cleanup (cimg_dockerignore_freep)))
/* The patterns after cleaning, "!" kept: NULL-terminated, owned by di. */
char *const *cimg_dockerignore_patterns (const struct cimg_dockerignore *di);
/* True when path (relative to the context, "/"-separated; cleaned here) is excluded. "." is
   never excluded. */
bool cimg_dockerignore_excluded (const struct cimg_dockerignore *di, const char *path);
/* For an excluded directory: true when an exception ("!…") may re-include something below it,
   so the walk must still enter it. */
bool cimg_dockerignore_must_walk (const struct cimg_dockerignore *di, const char *dir);
/* True for the paths a build always sends whatever .dockerignore says: the Dockerfile used
   (dockerfile, relative to the context, may be NULL for "Dockerfile") and ".dockerignore". */
bool cimg_dockerignore_always_kept (const char *path, const char *dockerfile);

/* ---------------------------------------------------------------- plan */

/* The --dry-run plan of df: one line per instruction, "Dockerfile:LINE NAME [FLAGS] ARGS",
   with a header line per stage ("# stage 1 \"build\"", "… (skipped)" when target does not need
   it). FROM lines show the base after the ARGs before the first FROM and build_args ("K=V",
   NULL-terminated, may be NULL) were applied. target NULL means the last stage. Returns 0 and a
   newly allocated *out, or -1 with err set (unknown target, bad FROM expansion). */
int cimg_build_plan (const struct cimg_dockerfile *df, char *const *build_args, const char *target,
                     char **out, cimg_error_t *err);

#endif
