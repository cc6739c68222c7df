/* Docker's word expansion: the semantics of buildkit's frontend/dockerfile/shell lexer, which is
   what `docker build` applies to ENV, ARG, LABEL, COPY, WORKDIR, … arguments. It is not a POSIX
   shell: no command substitution, no field splitting inside quotes, special parameters and
   positional parameters are always unset. The conformance data of buildkit's own tests is run
   by tests/unit/test_expand.c. */
#include "build/build-internal.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <wctype.h>

/* ---------------------------------------------------------------- small helpers */

void
sbuf_addn (struct sbuf *b, const char *s, size_t n)
{
  if (b->n + n + 1 > b->cap)
    {
      size_t cap = b->cap ? b->cap * 2 : 32;
      while (cap < b->n + n + 1)
        cap *= 2;
      b->p = xrealloc (b->p, cap);
      b->cap = cap;
    }
  if (n > 0)
    memcpy (b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
}

void
sbuf_adds (struct sbuf *b, const char *s)
{
  sbuf_addn (b, s, strlen (s));
}

void
sbuf_addc (struct sbuf *b, char c)
{
  sbuf_addn (b, &c, 1);
}

void
sbuf_addf (struct sbuf *b, const char *fmt, ...)
{
  va_list ap;
  char *s = NULL;
  va_start (ap, fmt);
  if (vasprintf (&s, fmt, ap) < 0)
    abort ();
  va_end (ap);
  sbuf_adds (b, s);
  free (s);
}

char *
sbuf_steal (struct sbuf *b)
{
  if (b->p == NULL)
    sbuf_addn (b, "", 0);
  char *p = b->p;
  *b = (struct sbuf){ 0 };
  return p;
}

size_t
utf8_decode (const char *str, size_t len, uint32_t *r)
{
  const unsigned char *s = (const unsigned char *)str;
  size_t n;
  uint32_t c;
  if (len == 0)
    {
      *r = 0xFFFD;
      return 0;
    }
  if (s[0] < 0x80)
    {
      *r = s[0];
      return 1;
    }
  if ((s[0] & 0xE0) == 0xC0)
    n = 2, c = s[0] & 0x1F;
  else if ((s[0] & 0xF0) == 0xE0)
    n = 3, c = s[0] & 0x0F;
  else if ((s[0] & 0xF8) == 0xF0)
    n = 4, c = s[0] & 0x07;
  else
    goto bad;
  if (n > len)
    goto bad;
  for (size_t i = 1; i < n; i++)
    {
      if ((s[i] & 0xC0) != 0x80)
        goto bad;
      c = (c << 6) | (s[i] & 0x3F);
    }
  *r = c;
  return n;
bad:
  *r = 0xFFFD;
  return 1;
}

bool
rune_is_space (uint32_t r)
{
  switch (r)
    {
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case ' ':
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return r >= 0x2000 && r <= 0x200A;
    }
}

char *
go_quote (const char *s)
{
  struct sbuf b = { 0 };
  sbuf_addc (&b, '"');
  for (; *s; s++)
    {
      unsigned char c = (unsigned char)*s;
      if (c == '"' || c == '\\')
        sbuf_addf (&b, "\\%c", c);
      else if (c == '\n')
        sbuf_adds (&b, "\\n");
      else if (c == '\t')
        sbuf_adds (&b, "\\t");
      else if (c == '\r')
        sbuf_adds (&b, "\\r");
      else if (c < 0x20 || c == 0x7f)
        sbuf_addf (&b, "\\x%02x", c);
      else
        sbuf_addc (&b, (char)c);
    }
  sbuf_addc (&b, '"');
  return sbuf_steal (&b);
}

/* Go's unicode.IsLetter/IsDigit for the runes beyond ASCII: glibc's C.UTF-8 classification is
   the closest thing at hand (its "alpha" class also holds the non-ASCII digits). Without that
   locale every non-ASCII rune counts as a letter, which is right for the scripts people use in
   variable names. */
static locale_t utf8_locale;
static pthread_once_t utf8_once = PTHREAD_ONCE_INIT;

static void
utf8_locale_init (void)
{
  utf8_locale = newlocale (LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
}

static bool
rune_is_alnum (uint32_t r)
{
  if (r < 0x80)
    return (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9');
  if (r == 0xFFFD)
    return false;
  pthread_once (&utf8_once, utf8_locale_init);
  if (utf8_locale == (locale_t)0)
    return true;
  return iswalnum_l ((wint_t)r, utf8_locale) != 0;
}

/* ---------------------------------------------------------------- the lexer */

#define LEX_EOF (-1)

struct lex
{
  const char *s;
  size_t pos, len;
  int esc;
  char *const *env;
  struct build_lex_opts o;
  bool raw_escapes; /* current value: ${v#…} and ${v%…} turn it on for their word */
  char *errmsg;     /* the first error, without the "failed to process" prefix */
};

/* The longest result of one expansion, in bytes. The fuzz build lowers it
   (tests/fuzz/CMakeLists.txt): an input that reaches the cap costs a fuzzer execution the whole
   cap in copying, and its mutations tend to reach it again. */
#ifndef CIMG_EXPAND_MAX
#define CIMG_EXPAND_MAX (1 << 20)
#endif

/* The split-into-words state of ProcessWords. */
struct words
{
  struct sbuf word;
  char **v;
  size_t n, cap; /* words in v, and room for them (v stays NULL-terminated) */
  bool in_word;
};

static void
words_push (struct words *w)
{
  /* Counted, not cimg_strv_append: a line of many expansions makes many words, and finding the
     end of v on every push was quadratic (the fuzzer's 25 s timeout). */
  if (w->n + 2 > w->cap)
    {
      w->cap = w->cap ? w->cap * 2 : 8;
      w->v = xrealloc (w->v, w->cap * sizeof *w->v);
    }
  w->v[w->n++] = xstrdup (w->word.p ? w->word.p : "");
  w->v[w->n] = NULL;
  w->word.n = 0;
  if (w->word.p)
    w->word.p[0] = '\0';
  w->in_word = false;
}

static void
words_add_raw (struct words *w, const char *s, size_t n)
{
  sbuf_addn (&w->word, s, n);
  w->in_word = true;
}

/* One rune that came unquoted: white space ends a word. */
static void
words_add_char (struct words *w, const char *s, size_t n, uint32_t r)
{
  if (rune_is_space (r))
    {
      if (w->in_word && w->word.n != 0)
        words_push (w);
    }
  else
    words_add_raw (w, s, n);
}

static void
words_add_string (struct words *w, const char *s)
{
  size_t len = strlen (s);
  for (size_t i = 0; i < len;)
    {
      uint32_t r;
      size_t n = utf8_decode (s + i, len - i, &r);
      words_add_char (w, s + i, n, r);
      i += n;
    }
}

static char **
words_finish (struct words *w)
{
  if (w->word.n > 0)
    words_push (w);
  free (w->word.p);
  w->word = (struct sbuf){ 0 };
  char **v = w->v;
  w->v = NULL;
  w->n = w->cap = 0;
  if (v == NULL)
    v = xzalloc (sizeof (char *));
  return v;
}

static void
words_clear (struct words *w)
{
  free (w->word.p);
  cimg_strv_free (w->v);
  *w = (struct words){ 0 };
}

static int
lex_peek (struct lex *l)
{
  if (l->pos >= l->len)
    return LEX_EOF;
  return (unsigned char)l->s[l->pos];
}

/* Consume one rune; *start and *n give its bytes. Returns its first byte (runes beyond ASCII
   are never special, so a byte is all the callers compare). */
static int
lex_next (struct lex *l, size_t *start, size_t *n, uint32_t *r)
{
  uint32_t dummy;
  if (l->pos >= l->len)
    return LEX_EOF;
  size_t k = utf8_decode (l->s + l->pos, l->len - l->pos, r ? r : &dummy);
  if (start)
    *start = l->pos;
  if (n)
    *n = k;
  int c = (unsigned char)l->s[l->pos];
  l->pos += k;
  return c;
}

static int lex_error (struct lex *l, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static int
lex_error (struct lex *l, const char *fmt, ...)
{
  va_list ap;
  if (l->errmsg == NULL)
    {
      va_start (ap, fmt);
      if (vasprintf (&l->errmsg, fmt, ap) < 0)
        abort ();
      va_end (ap);
    }
  return -1;
}

static const char *
lex_getenv (struct lex *l, const char *name, bool *found)
{
  size_t n = strlen (name);
  const char *val = NULL;
  /* The last entry wins, as when Docker builds its map from the list. */
  for (char *const *e = l->env; e && *e; e++)
    {
      if (strncmp (*e, name, n) == 0 && ((*e)[n] == '=' || (*e)[n] == '\0'))
        val = (*e)[n] == '=' ? *e + n + 1 : "";
    }
  *found = val != NULL;
  return val ? val : "";
}

static int process_dollar (struct lex *l, char **out);
static int process_single_quote (struct lex *l, char **out);
static int process_double_quote (struct lex *l, char **out);

/* Process up to stop (or the end when stop is LEX_EOF, which also makes a missing stop an
   error). Fills *out_word and, when out_words is not NULL, the split words. */
static int
process_stop_on (struct lex *l, int stop, bool raw_escapes, char **out_word, char ***out_words)
{
  struct sbuf result = { 0 };
  struct words w = { 0 };
  bool saved = l->raw_escapes;
  l->raw_escapes = raw_escapes;

  while (lex_peek (l) != LEX_EOF)
    {
      int ch = lex_peek (l);
      if (stop != LEX_EOF && ch == stop)
        {
          lex_next (l, NULL, NULL, NULL);
          l->raw_escapes = saved;
          *out_word = sbuf_steal (&result);
          if (out_words)
            *out_words = words_finish (&w);
          else
            words_clear (&w);
          return 0;
        }
      if (ch == '$' || (!l->o.skip_quotes && (ch == '\'' || ch == '"')))
        {
          char *tmp = NULL;
          int r = ch == '$'    ? process_dollar (l, &tmp)
                  : ch == '\'' ? process_single_quote (l, &tmp)
                               : process_double_quote (l, &tmp);
          if (r < 0)
            goto fail;
          sbuf_adds (&result, tmp);
          if (ch == '$')
            words_add_string (&w, tmp);
          else
            words_add_raw (&w, tmp, strlen (tmp));
          free (tmp);
          /* ${v//…} and repeated expansions of a long value grow a line by the square of its
             length: refused, not expanded into gigabytes (no Dockerfile needs this). */
          if (result.n > CIMG_EXPAND_MAX)
            {
              lex_error (l, "the expansion is longer than %d bytes", CIMG_EXPAND_MAX);
              goto fail;
            }
          continue;
        }
      size_t st, n;
      uint32_t r;
      ch = lex_next (l, &st, &n, &r);
      if (ch == l->esc)
        {
          if (l->raw_escapes)
            {
              words_add_raw (&w, l->s + st, n);
              sbuf_addn (&result, l->s + st, n);
            }
          /* The escape escapes the next character; at the very end it is dropped. */
          ch = lex_next (l, &st, &n, &r);
          if (ch == LEX_EOF)
            break;
          words_add_raw (&w, l->s + st, n);
        }
      else
        words_add_char (&w, l->s + st, n, r);
      sbuf_addn (&result, l->s + st, n);
    }
  if (stop != LEX_EOF)
    {
      lex_error (l, "unexpected end of statement while looking for matching %c", stop);
      goto fail;
    }
  l->raw_escapes = saved;
  *out_word = sbuf_steal (&result);
  if (out_words)
    *out_words = words_finish (&w);
  else
    words_clear (&w);
  return 0;

fail:
  l->raw_escapes = saved;
  free (result.p);
  words_clear (&w);
  return -1;
}

static int
process_single_quote (struct lex *l, char **out)
{
  /* Everything up to the next ' is literal; a ' cannot be escaped inside. */
  struct sbuf b = { 0 };
  size_t st, n;
  lex_next (l, &st, &n, NULL);
  if (l->o.raw_quotes)
    sbuf_addn (&b, l->s + st, n);
  for (;;)
    {
      int ch = lex_next (l, &st, &n, NULL);
      if (ch == LEX_EOF)
        {
          free (b.p);
          return lex_error (l, "unexpected end of statement while looking for matching "
                               "single-quote");
        }
      if (ch == '\'')
        {
          if (l->o.raw_quotes)
            sbuf_addn (&b, l->s + st, n);
          *out = sbuf_steal (&b);
          return 0;
        }
      sbuf_addn (&b, l->s + st, n);
    }
}

static int
process_double_quote (struct lex *l, char **out)
{
  /* Literal up to the next ", except $ expansions and the escape before ", $ and itself. */
  struct sbuf b = { 0 };
  size_t st, n;
  lex_next (l, &st, &n, NULL);
  if (l->o.raw_quotes)
    sbuf_addn (&b, l->s + st, n);
  for (;;)
    {
      int pk = lex_peek (l);
      if (pk == LEX_EOF)
        {
          free (b.p);
          return lex_error (l, "unexpected end of statement while looking for matching "
                               "double-quote");
        }
      if (pk == '"')
        {
          lex_next (l, &st, &n, NULL);
          if (l->o.raw_quotes)
            sbuf_addn (&b, l->s + st, n);
          *out = sbuf_steal (&b);
          return 0;
        }
      if (pk == '$')
        {
          char *v = NULL;
          if (process_dollar (l, &v) < 0)
            {
              free (b.p);
              return -1;
            }
          sbuf_adds (&b, v);
          free (v);
          continue;
        }
      int ch = lex_next (l, &st, &n, NULL);
      if (ch == l->esc)
        {
          if (l->raw_escapes)
            sbuf_addn (&b, l->s + st, n);
          pk = lex_peek (l);
          if (pk == LEX_EOF)
            continue; /* reported as the missing quote on the next turn */
          if (pk == '"' || pk == '$' || pk == l->esc)
            lex_next (l, &st, &n, NULL);
        }
      sbuf_addn (&b, l->s + st, n);
    }
}

static bool
is_special_param (int c)
{
  return c == '@' || c == '*' || c == '#' || c == '?' || c == '-' || c == '$' || c == '!'
         || c == '0';
}

/* A name: letters, digits and '_'; or all the digits of a positional parameter; or one special
   parameter character. Empty when none of these follows. */
static char *
process_name (struct lex *l)
{
  struct sbuf name = { 0 };
  while (lex_peek (l) != LEX_EOF)
    {
      int ch = lex_peek (l);
      if (name.n == 0 && ch >= '0' && ch <= '9')
        {
          while (lex_peek (l) >= '0' && lex_peek (l) <= '9')
            sbuf_addc (&name, (char)lex_next (l, NULL, NULL, NULL));
          return sbuf_steal (&name);
        }
      if (name.n == 0 && is_special_param (ch))
        {
          sbuf_addc (&name, (char)lex_next (l, NULL, NULL, NULL));
          return sbuf_steal (&name);
        }
      uint32_t r;
      size_t k = utf8_decode (l->s + l->pos, l->len - l->pos, &r);
      if (!rune_is_alnum (r) && r != '_')
        break;
      sbuf_addn (&name, l->s + l->pos, k);
      l->pos += k;
    }
  return sbuf_steal (&name);
}

/* ---------------------------------------------------------------- patterns of ${v#…} */

enum
{
  PT_LIT,
  PT_STAR,
  PT_ANY
};

struct ptok
{
  int kind;
  const char *s; /* PT_LIT: the rune's bytes */
  size_t n;
};

/* Compile a ${v#pattern} pattern as buildkit does: '*' any run, '?' one character (neither
   matches a newline, as in Go's regexp), '\' quotes '*', '?' and '\', and is dropped before
   '}' and '/'; brackets have no meaning. */
static int
pattern_compile (struct lex *l, const char *pat, struct ptok **out, size_t *nout)
{
  size_t len = strlen (pat), k = 0;
  struct ptok *t = xmalloc ((len + 1) * sizeof *t);
  for (size_t i = 0; i < len;)
    {
      uint32_t r;
      size_t n = utf8_decode (pat + i, len - i, &r);
      if (pat[i] == '*')
        t[k++] = (struct ptok){ PT_STAR, NULL, 0 };
      else if (pat[i] == '?')
        t[k++] = (struct ptok){ PT_ANY, NULL, 0 };
      else if (pat[i] == '\\')
        {
          if (i + 1 < len && (pat[i + 1] == '}' || pat[i + 1] == '/'))
            {
              i++;
              continue;
            }
          if (i + 1 >= len || (pat[i + 1] != '*' && pat[i + 1] != '?' && pat[i + 1] != '\\'))
            {
              free (t);
              if (i + 1 >= len)
                return lex_error (l, "invalid pattern (%s) in substitution: invalid escape '\\'",
                                  pat);
              uint32_t r2;
              size_t n2 = utf8_decode (pat + i + 1, len - i - 1, &r2);
              return lex_error (l, "invalid pattern (%s) in substitution: invalid escape '\\%.*s'",
                                pat, (int)n2, pat + i + 1);
            }
          t[k++] = (struct ptok){ PT_LIT, pat + i + 1, 1 };
          i += 2;
          continue;
        }
      else
        t[k++] = (struct ptok){ PT_LIT, pat + i, n };
      i += n;
    }
  *out = t;
  *nout = k;
  return 0;
}

/* Matching runs the pattern over the value once, as a set of threads (Thompson's construction):
   a thread is a token of the pattern and the offset its match started at. Two threads on the
   same token at the same offset have the same future, so only the one with the preferred start
   is kept, and an offset costs at most one step per token. Trying every start and every end
   instead was cubic: a 3 KB value took two minutes to expand (found by the expand fuzzer). */

#define PNONE SIZE_MAX
#define PSLOTS 5 /* a step moves a thread by one rune or literal, at most 4 bytes */

struct pslot
{
  size_t *start; /* per token 0..nt (nt: the whole pattern matched), PNONE when no thread */
  size_t lo, hi; /* the tokens that may hold a thread; lo > hi when none */
};

struct pscan
{
  const struct ptok *t;
  size_t nt;
  const char *v;
  size_t len;
  bool prefer_late;       /* keep the latest start of two threads, else the earliest */
  struct pslot s[PSLOTS]; /* the threads at offset p are in s[p % PSLOTS] */
  size_t pending;         /* the furthest offset a thread was put at */
};

static void
pscan_init (struct pscan *ps, const struct ptok *t, size_t nt, const char *v, bool prefer_late)
{
  *ps = (struct pscan){ .t = t, .nt = nt, .v = v, .len = strlen (v), .prefer_late = prefer_late };
  for (size_t i = 0; i < PSLOTS; i++)
    {
      ps->s[i].start = xmalloc ((nt + 1) * sizeof (size_t));
      for (size_t k = 0; k <= nt; k++)
        ps->s[i].start[k] = PNONE;
      ps->s[i].lo = 1;
      ps->s[i].hi = 0;
    }
}

static void
pscan_fini (struct pscan *ps)
{
  for (size_t i = 0; i < PSLOTS; i++)
    free (ps->s[i].start);
}

static void
pslot_clear (struct pslot *sl)
{
  for (size_t k = sl->lo; k <= sl->hi; k++)
    sl->start[k] = PNONE;
  sl->lo = 1;
  sl->hi = 0;
}

static void
pscan_reset (struct pscan *ps, size_t from)
{
  for (size_t i = 0; i < PSLOTS; i++)
    pslot_clear (&ps->s[i]);
  ps->pending = from;
}

static void
pscan_put (struct pscan *ps, size_t p, size_t k, size_t start)
{
  struct pslot *sl = &ps->s[p % PSLOTS];
  size_t *cur = &sl->start[k];
  if (*cur != PNONE && (ps->prefer_late ? start <= *cur : start >= *cur))
    return;
  *cur = start;
  if (sl->lo > sl->hi)
    sl->lo = sl->hi = k;
  else if (k < sl->lo)
    sl->lo = k;
  else if (k > sl->hi)
    sl->hi = k;
  if (p > ps->pending)
    ps->pending = p;
}

/* A '*' may match nothing: its threads also stand on the token after it. In token order, so
   that a run of stars passes a thread along in one sweep. */
static void
pscan_close (struct pscan *ps, size_t p)
{
  struct pslot *sl = &ps->s[p % PSLOTS];
  for (size_t k = sl->lo; k <= sl->hi && k < ps->nt; k++)
    if (sl->start[k] != PNONE && ps->t[k].kind == PT_STAR)
      pscan_put (ps, p, k + 1, sl->start[k]);
}

/* Moves the threads at offset p (< len) over the value's next rune or literal, then forgets
   them. Neither '*' nor '?' crosses a newline (Go's '.', which buildkit turns them into). */
static void
pscan_step (struct pscan *ps, size_t p)
{
  struct pslot *sl = &ps->s[p % PSLOTS];
  uint32_t r;
  size_t rn = utf8_decode (ps->v + p, ps->len - p, &r);
  bool nl = ps->v[p] == '\n';
  for (size_t k = sl->lo; k <= sl->hi && k < ps->nt; k++)
    {
      size_t st = sl->start[k];
      if (st == PNONE)
        continue;
      const struct ptok *t = &ps->t[k];
      if (t->kind == PT_LIT)
        {
          if (t->n <= ps->len - p && memcmp (ps->v + p, t->s, t->n) == 0)
            pscan_put (ps, p + t->n, k + 1, st);
        }
      else if (!nl)
        pscan_put (ps, p + rn, t->kind == PT_ANY ? k + 1 : k, st);
    }
  pslot_clear (sl);
}

static bool
rune_start (const char *s, size_t i)
{
  return ((unsigned char)s[i] & 0xC0) != 0x80;
}

/* A match may end only between runes. */
static bool
pscan_end_ok (const struct pscan *ps, size_t p)
{
  return p == ps->len || rune_start (ps->v, p);
}

/* The leftmost-longest match that starts at from or after it, at a rune boundary decoded from
   from (Go's leftmost-first with greedy stars gives the same match for these patterns: the
   tests compare with Go's regexp). False when there is none. */
static bool
pscan_find (struct pscan *ps, size_t from, size_t *ms, size_t *me)
{
  size_t best_s = PNONE, best_e = 0, next = from;
  pscan_reset (ps, from);
  for (size_t p = from; p <= ps->len; p++)
    {
      struct pslot *sl = &ps->s[p % PSLOTS];
      if (best_s == PNONE && p == next)
        {
          pscan_put (ps, p, 0, p);
          uint32_t r;
          if (p < ps->len)
            next = p + utf8_decode (ps->v + p, ps->len - p, &r);
        }
      pscan_close (ps, p);
      size_t st = sl->start[ps->nt];
      if (st != PNONE && st <= best_s && pscan_end_ok (ps, p))
        {
          best_s = st;
          best_e = p;
        }
      if (best_s != PNONE)
        for (size_t k = sl->lo; k <= sl->hi; k++)
          if (sl->start[k] != PNONE && sl->start[k] > best_s)
            sl->start[k] = PNONE; /* starts later than a match found: cannot win */
      if (p == ps->len)
        break;
      pscan_step (ps, p);
      if (best_s != PNONE && ps->pending <= p)
        break;
    }
  *ms = best_s;
  *me = best_e;
  return best_s != PNONE;
}

/* ${v#p}, ${v##p}: drop the shortest (longest) prefix that matches; ${v%p}, ${v%%p} the
   suffix. */
static int
trim_pattern (struct lex *l, const char *pat, const char *value, bool suffix, bool greedy,
              char **out)
{
  struct ptok *t = NULL;
  size_t nt;
  if (pattern_compile (l, pat, &t, &nt) < 0)
    return -1;
  /* A suffix: a thread starts at every rune and the match must reach the end; the shortest
     suffix is the latest start. A prefix: one thread from 0, the first or last end it reaches. */
  struct pscan ps;
  pscan_init (&ps, t, nt, value, suffix && !greedy);
  pscan_reset (&ps, 0);
  size_t len = ps.len, cut = PNONE;
  for (size_t p = 0; p <= len; p++)
    {
      struct pslot *sl = &ps.s[p % PSLOTS];
      if (suffix ? (p == len || rune_start (value, p)) : p == 0)
        pscan_put (&ps, p, 0, p);
      pscan_close (&ps, p);
      size_t st = sl->start[nt];
      if (st != PNONE && pscan_end_ok (&ps, p))
        {
          if (suffix && p == len)
            cut = st;
          else if (!suffix)
            {
              cut = p;
              if (!greedy)
                break;
            }
        }
      if (p == len)
        break;
      pscan_step (&ps, p);
      if (!suffix && ps.pending <= p)
        break;
    }
  pscan_fini (&ps);
  free (t);
  if (cut == PNONE)
    *out = xstrdup (value);
  else
    *out = suffix ? xstrndup (value, cut) : xstrdup (value + cut);
  return 0;
}

/* ${v/p/r} replaces the first match of p, ${v//p/r} every one, as Go's ReplaceAllString does
   (buildkit's): an empty match right after a match is not replaced, and the search moves on
   by at least one rune. */
static int
replace_pattern (struct lex *l, const char *pat, const char *repl, const char *value, bool all,
                 char **out)
{
  struct ptok *t = NULL;
  size_t nt;
  struct sbuf b = { 0 };
  if (pattern_compile (l, pat, &t, &nt) < 0)
    return -1;
  struct pscan ps;
  pscan_init (&ps, t, nt, value, false);
  size_t len = ps.len, search = 0, last_end = 0, ms, me;
  while (search <= len && pscan_find (&ps, search, &ms, &me))
    {
      sbuf_addn (&b, value + last_end, ms - last_end);
      if (me > last_end || ms == 0)
        sbuf_adds (&b, repl);
      last_end = me;
      /* The replacement may itself hold expansions of the value: checked here, before a
         megabyte value times a megabyte replacement is built. */
      if (b.n > CIMG_EXPAND_MAX)
        {
          free (b.p);
          pscan_fini (&ps);
          free (t);
          return lex_error (l, "the expansion is longer than %d bytes", CIMG_EXPAND_MAX);
        }
      if (!all)
        break;
      uint32_t r;
      size_t w = search < len ? utf8_decode (value + search, len - search, &r) : 1;
      search = search + w > me ? search + w : me;
    }
  sbuf_addn (&b, value + last_end, len - last_end);
  pscan_fini (&ps);
  free (t);
  *out = sbuf_steal (&b);
  return 0;
}

static int
process_dollar (struct lex *l, char **out)
{
  lex_next (l, NULL, NULL, NULL); /* '$' */
  if (lex_peek (l) != '{')
    {
      cleanup_free char *name = process_name (l);
      if (*name == '\0')
        {
          *out = xstrdup ("$");
          return 0;
        }
      bool found;
      const char *v = lex_getenv (l, name, &found);
      *out = !found && l->o.skip_unset ? xasprintf ("$%s", name) : xstrdup (v);
      return 0;
    }
  lex_next (l, NULL, NULL, NULL); /* '{' */
  int pk = lex_peek (l);
  if (pk == LEX_EOF)
    return lex_error (l, "syntax error: missing '}'");
  if (pk == '{' || pk == '}' || pk == ':')
    return lex_error (l, "syntax error: bad substitution");
  cleanup_free char *name = process_name (l);
  size_t st, n;
  int ch = lex_next (l, &st, &n, NULL);
  if (ch == LEX_EOF)
    return lex_error (l, "syntax error: missing '}'");
  struct sbuf chs = { 0 };
  sbuf_addn (&chs, l->s + st, n);
  cleanup_free char *chs_s = NULL;
  bool null_is_unset = false;
  bool found;
  const char *value;

  if (ch == '}')
    {
      free (chs.p);
      value = lex_getenv (l, name, &found);
      *out = !found && l->o.skip_unset ? xasprintf ("${%s}", name) : xstrdup (value);
      return 0;
    }
  if (ch == '/')
    {
      free (chs.p);
      bool all = lex_peek (l) == '/';
      if (all)
        lex_next (l, NULL, NULL, NULL);
      cleanup_free char *pat = NULL;
      cleanup_free char *repl = NULL;
      if (process_stop_on (l, '/', true, &pat, NULL) < 0)
        {
          if (lex_peek (l) == LEX_EOF)
            {
              free (l->errmsg);
              l->errmsg = NULL;
              return lex_error (l, "syntax error: missing '/' in ${}");
            }
          return -1;
        }
      if (process_stop_on (l, '}', true, &repl, NULL) < 0)
        {
          if (lex_peek (l) == LEX_EOF)
            {
              free (l->errmsg);
              l->errmsg = NULL;
              return lex_error (l, "syntax error: missing '}'");
            }
          return -1;
        }
      value = lex_getenv (l, name, &found);
      if (l->o.skip_unset && !found)
        {
          *out = xasprintf ("${%s/%s/%s}", name, pat, repl);
          return 0;
        }
      return replace_pattern (l, pat, repl, value, all, out);
    }
  if (ch == ':')
    {
      /* Whatever follows the ':' is taken as the modifier; only '-', '+', '?' (and, as
         buildkit allows, '#' and '%') are valid, which is checked after the word is read. */
      null_is_unset = true;
      ch = lex_next (l, &st, &n, NULL);
      if (ch != LEX_EOF)
        sbuf_addn (&chs, l->s + st, n);
    }
  else if (ch != '+' && ch != '-' && ch != '?' && ch != '#' && ch != '%')
    {
      chs_s = sbuf_steal (&chs);
      return lex_error (l, "unsupported modifier (%s) in substitution", chs_s);
    }
  chs_s = sbuf_steal (&chs);

  cleanup_free char *word = NULL;
  if (ch == LEX_EOF || process_stop_on (l, '}', ch == '#' || ch == '%', &word, NULL) < 0)
    {
      if (lex_peek (l) == LEX_EOF)
        {
          free (l->errmsg);
          l->errmsg = NULL;
          return lex_error (l, "syntax error: missing '}'");
        }
      return -1;
    }
  value = lex_getenv (l, name, &found);
  if (l->o.skip_unset && !found)
    {
      *out = xasprintf ("${%s%s%s}", name, chs_s, word);
      return 0;
    }
  bool empty = !found || (null_is_unset && *value == '\0');
  switch (ch)
    {
    case '-':
      *out = xstrdup (empty ? word : value);
      return 0;
    case '+':
      *out = xstrdup (empty ? "" : word);
      return 0;
    case '?':
      if (!found)
        return lex_error (l, "%s: %s", name, *word ? word : "is not allowed to be unset");
      if (null_is_unset && *value == '\0')
        return lex_error (l, "%s: %s", name, *word ? word : "is not allowed to be empty");
      *out = xstrdup (value);
      return 0;
    case '#':
    case '%':
      {
        const char *pat = word;
        bool greedy = false;
        if (*pat == ch)
          {
            greedy = true;
            pat++;
          }
        return trim_pattern (l, pat, value, ch == '%', greedy, out);
      }
    default:
      return lex_error (l, "unsupported modifier (%s) in substitution", chs_s);
    }
}

int
build_expand (const char *word, int escape, char *const *env, const struct build_lex_opts *o,
              char **out_word, char ***out_words, cimg_error_t *err)
{
  struct lex l = {
    .s = word,
    .len = strlen (word),
    .esc = escape ? escape : '\\',
    .env = env,
  };
  if (o)
    l.o = *o;
  char *w = NULL;
  char **v = NULL;
  if (process_stop_on (&l, LEX_EOF, l.o.raw_escapes, &w, out_words ? &v : NULL) < 0)
    {
      cleanup_free char *q = go_quote (word);
      cimg_error_set (err, EINVAL, "failed to process %s: %s", q,
                      l.errmsg ? l.errmsg : "syntax error");
      free (l.errmsg);
      return -1;
    }
  if (out_word)
    *out_word = w;
  else
    free (w);
  if (out_words)
    *out_words = v;
  return 0;
}

int
cimg_build_expand_word (const char *word, int escape, char *const *env, char **out,
                        cimg_error_t *err)
{
  return build_expand (word, escape, env, NULL, out, NULL, err);
}

int
cimg_build_expand_words (const char *word, int escape, char *const *env, char ***out,
                         cimg_error_t *err)
{
  return build_expand (word, escape, env, NULL, NULL, out, err);
}
