/* build internals shared by parser.c, expand.c, dockerignore.c and plan.c. */
#ifndef CIMG_BUILD_INTERNAL_H
#define CIMG_BUILD_INTERNAL_H

#include "build/build.h"

/* A growable string. */
struct sbuf
{
  char *p;
  size_t n, cap;
};
void sbuf_addn (struct sbuf *b, const char *s, size_t n);
void sbuf_adds (struct sbuf *b, const char *s);
void sbuf_addc (struct sbuf *b, char c);
void sbuf_addf (struct sbuf *b, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
/* The NUL-terminated string (never NULL); ownership passes to the caller. */
char *sbuf_steal (struct sbuf *b);

/* Lexer modes the parser needs to find heredoc delimiters as buildkit does. */
struct build_lex_opts
{
  bool raw_quotes;  /* keep quote characters in the result */
  bool raw_escapes; /* keep escape characters in the result */
  bool skip_unset;  /* leave $VAR / ${VAR…} of unset variables as written */
  bool skip_quotes; /* quotes are plain characters (BuildKit's SkipProcessQuotes: heredoc bodies) */
};
int build_expand (const char *word, int escape, char *const *env, const struct build_lex_opts *o,
                  char **out_word, char ***out_words, cimg_error_t *err);

/* Decode one UTF-8 rune at s (len bytes left); returns its length (1 for a bad byte, whose
   value is then 0xFFFD). */
size_t utf8_decode (const char *s, size_t len, uint32_t *r);
/* Go's unicode.IsSpace. */
bool rune_is_space (uint32_t r);

/* Go's strconv.Quote, enough for messages. Newly allocated. */
char *go_quote (const char *s);
/* The value of an instruction's --NAME=VALUE flag, or NULL (the parser refuses repeats). */
const char *cimg_build_flag_value (const struct cimg_instruction *in, const char *name);

#endif
