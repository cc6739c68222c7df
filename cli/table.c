#include "cli/cli.h"

#include <stdarg.h>
#include <string.h>

struct table
{
  size_t ncols, nrows;
  char **cells; /* row-major */
};

/* Display width: one column per UTF-8 code point (COMMAND may end in "…"). */
static size_t
width (const char *s)
{
  size_t n = 0;
  for (; *s; s++)
    n += ((unsigned char)*s & 0xc0) != 0x80;
  return n;
}

struct table *
table_new (size_t ncols)
{
  struct table *t = xzalloc (sizeof *t);
  t->ncols = ncols;
  return t;
}

void
table_add (struct table *t, ...)
{
  va_list ap;
  va_start (ap, t);
  t->cells = xrealloc (t->cells, (t->nrows + 1) * t->ncols * sizeof (char *));
  for (size_t i = 0; i < t->ncols; i++)
    {
      const char *s = va_arg (ap, const char *);
      t->cells[t->nrows * t->ncols + i] = xstrdup (s ? s : "");
    }
  va_end (ap);
  t->nrows++;
}

void
table_print (struct table *t, FILE *out)
{
  /* Docker's tabwriter.NewWriter (out, 10, 1, 3, ' ', 0): a cell is at least 10 wide, and
     three spaces wider than its longest text; the last column is not padded. */
  size_t w[t->ncols ? t->ncols : 1];
  for (size_t c = 0; c < t->ncols; c++)
    {
      w[c] = 10;
      for (size_t r = 0; r < t->nrows; r++)
        {
          size_t len = width (t->cells[r * t->ncols + c]) + 3;
          if (len > w[c])
            w[c] = len;
        }
    }
  for (size_t r = 0; r < t->nrows; r++)
    {
      for (size_t c = 0; c < t->ncols; c++)
        {
          const char *s = t->cells[r * t->ncols + c];
          fputs (s, out);
          if (c + 1 < t->ncols)
            for (size_t k = width (s); k < w[c]; k++)
              fputc (' ', out);
        }
      fputc ('\n', out);
    }
}

void
table_free (struct table *t)
{
  if (t == NULL)
    return;
  for (size_t i = 0; i < t->nrows * t->ncols; i++)
    free (t->cells[i]);
  free (t->cells);
  free (t);
}
