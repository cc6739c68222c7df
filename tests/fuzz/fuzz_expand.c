/* Docker's word expansion. Input: one control byte (escape character and which entry point),
   the word up to the first newline, then "KEY=VALUE" lines for the environment. */
#include "build/build.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  if (size < 1)
    return 0;
  int escape = (data[0] & 1) ? '`' : '\\';
  bool words = data[0] & 2;
  char *text = xstrndup ((const char *)data + 1, size - 1);
  char *nl = strchr (text, '\n');
  char **env = NULL;
  size_t n = 0;
  if (nl)
    {
      *nl = '\0';
      for (char *line = nl + 1; line && *line;)
        {
          char *next = strchr (line, '\n');
          if (next)
            *next++ = '\0';
          env = xrealloc (env, (n + 2) * sizeof *env);
          env[n++] = line;
          env[n] = NULL;
          line = next;
        }
    }
  cimg_error_t err = { 0 };
  if (words)
    {
      char **out = NULL;
      if (cimg_build_expand_words (text, escape, env, &out, &err) == 0)
        cimg_strv_free (out);
    }
  else
    {
      char *out = NULL;
      if (cimg_build_expand_word (text, escape, env, &out, &err) == 0)
        free (out);
    }
  cimg_error_clear (&err);
  free (env);
  free (text);
  return 0;
}
