/* The Dockerfile parser: Docker's grammar as buildkit's frontend/dockerfile/parser reads it
   (directives, continuations, heredocs, the per-instruction argument forms) and the checks its
   instructions package makes, so that a Dockerfile Docker refuses is refused here, at the same
   line and with the same words. */
#include "build/build-internal.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

/* ---------------------------------------------------------------- state */

struct parser
{
  const char *name;
  const char *text;
  size_t len, pos; /* pos: start of the next physical line */
  int lineno;      /* physical lines consumed */
  int escape;
  bool directives_done;
  bool seen_escape, seen_syntax;
  char *syntax;
  char **warnings;
  cimg_error_t *err;
};

/* The next physical line, with its line ending; false at the end. */
static bool
next_line (struct parser *p, const char **line, size_t *n)
{
  if (p->pos >= p->len)
    return false;
  const char *s = p->text + p->pos;
  const char *nl = memchr (s, '\n', p->len - p->pos);
  size_t k = nl ? (size_t)(nl - s) + 1 : p->len - p->pos;
  *line = s;
  *n = k;
  p->pos += k;
  return true;
}

static size_t
trim_newline (const char *s, size_t n)
{
  while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
    n--;
  return n;
}

/* Skip leading white space as Go's unicode.IsSpace sees it. */
static size_t
skip_space (const char *s, size_t n)
{
  size_t i = 0;
  while (i < n)
    {
      uint32_t r;
      size_t k = utf8_decode (s + i, n - i, &r);
      if (!rune_is_space (r))
        break;
      i += k;
    }
  return i;
}

static bool
is_comment (const char *s, size_t n)
{
  n = trim_newline (s, n);
  size_t i = skip_space (s, n);
  return i < n && s[i] == '#';
}

/* Go regexp \s: [\t\n\f\r ]. */
static bool
re_space (char c)
{
  return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* Parser directives ("# escape=`") count only before anything else: the first line that is
   not one ends the search, as does an unknown key. */
/* ^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$ */
static bool
directive_match (const char *s, size_t n, char **key, char **val)
{
  size_t i = 1;
  if (n == 0 || s[0] != '#')
    return false;
  while (i < n && re_space (s[i]))
    i++;
  size_t ks = i;
  if (i >= n || !isalpha ((unsigned char)s[i]))
    return false;
  while (i < n && isalnum ((unsigned char)s[i]))
    i++;
  size_t ke = i;
  while (i < n && re_space (s[i]))
    i++;
  if (i >= n || s[i] != '=')
    return false;
  i++;
  while (i < n && re_space (s[i]))
    i++;
  size_t ve = n;
  while (ve > i && re_space (s[ve - 1]))
    ve--;
  if (ve == i)
    return false;
  *key = xstrndup (s + ks, ke - ks);
  for (char *c = *key; *c; c++)
    *c = (char)tolower ((unsigned char)*c);
  *val = xstrndup (s + i, ve - i);
  return true;
}

/* Parser directives ("# escape=`") count only before anything else: the first line that is
   not one ends the search, as does an unknown key. */
static int
possible_directive (struct parser *p, const char *s, size_t n)
{
  cleanup_free char *key = NULL;
  cleanup_free char *val = NULL;
  if (p->directives_done)
    return 0;
  if (!directive_match (s, n, &key, &val))
    {
      p->directives_done = true;
      return 0;
    }
  bool *seen;
  if (strcmp (key, "escape") == 0)
    seen = &p->seen_escape;
  else if (strcmp (key, "syntax") == 0)
    seen = &p->seen_syntax;
  else if (strcmp (key, "check") == 0)
    return 0; /* buildkit's lint directive: valid, nothing for cimg to do */
  else
    {
      p->directives_done = true;
      return 0;
    }
  if (*seen)
    return cimg_error_set (p->err, EINVAL, "%s:%d: only one %s parser directive can be used",
                           p->name, p->lineno + 1, key);
  *seen = true;
  if (seen == &p->seen_escape)
    {
      if (strcmp (val, "`") != 0 && strcmp (val, "\\") != 0)
        return cimg_error_set (p->err, EINVAL,
                               "%s:%d: invalid escape token '%s' does not match ` or \\", p->name,
                               p->lineno + 1, val);
      p->escape = val[0];
    }
  else
    {
      free (p->syntax);
      p->syntax = steal_pointer (&val);
    }
  return 0;
}

/* processLine: newline gone, (first line of an instruction) leading space gone, directives
   looked for, a comment line emptied. */
static int
process_line (struct parser *p, const char *raw, size_t n, bool strip_left, char **out)
{
  n = trim_newline (raw, n);
  if (strip_left)
    {
      size_t i = skip_space (raw, n);
      raw += i;
      n -= i;
    }
  if (possible_directive (p, raw, n) < 0)
    return -1;
  if (n > 0 && raw[0] == '#')
    n = 0;
  *out = xstrndup (raw, n);
  return 0;
}

/* A line ends in the escape character (followed only by blanks) and so continues, unless that
   escape is itself escaped. The escape and the blanks are removed. Like Docker, "x \\\" with
   an escaped escape before the continuation is not seen as continued. */
static bool
trim_continuation (struct parser *p, char *line)
{
  size_t n = strlen (line);
  while (n > 0 && (line[n - 1] == ' ' || line[n - 1] == '\t'))
    n--;
  if (n == 0 || line[n - 1] != p->escape)
    return false;
  if (n >= 2 && line[n - 2] == p->escape)
    return false;
  line[n - 1] = '\0';
  return true;
}

static bool
line_blank (const char *s)
{
  size_t n = strlen (s);
  return skip_space (s, n) == n;
}

/* ---------------------------------------------------------------- small lexers */

/* Go's strings.Fields-like split on [\t\v\f\r ]+ (Docker's reWhitespace), after the text was
   trimmed. */
static char **
split_ws (const char *s)
{
  char **v = xzalloc (sizeof (char *));
  size_t i = 0, n = strlen (s);
  while (i < n)
    {
      size_t j = i;
      while (j < n && !strchr ("\t\v\f\r ", s[j]))
        j++;
      cleanup_free char *w = xstrndup (s + i, j - i);
      cimg_strv_append (&v, w);
      while (j < n && strchr ("\t\v\f\r ", s[j]))
        j++;
      i = j;
    }
  return v;
}

/* parseWords: words separated by white space, quotes and escapes kept as written (they are
   removed when the words are expanded). */
static char **
parse_words (const char *rest, int esc)
{
  enum
  {
    IN_SPACES,
    IN_WORD,
    IN_QUOTE
  } phase
      = IN_SPACES;
  char **words = xzalloc (sizeof (char *));
  struct sbuf word = { 0 };
  int quote = 0;
  bool blank_ok = false;
  size_t len = strlen (rest);
  size_t pos = 0, w = 0;
  uint32_t ch = 0;
  for (pos = 0; pos <= len; pos += w)
    {
      if (pos != len)
        w = utf8_decode (rest + pos, len - pos, &ch);
      if (phase == IN_SPACES)
        {
          if (pos == len)
            break;
          if (rune_is_space (ch))
            continue;
          phase = IN_WORD;
        }
      if (pos == len)
        {
          if (blank_ok || word.n > 0)
            cimg_strv_append (&words, word.p ? word.p : "");
          break;
        }
      if (phase == IN_WORD)
        {
          if (rune_is_space (ch))
            {
              phase = IN_SPACES;
              if (blank_ok || word.n > 0)
                cimg_strv_append (&words, word.p ? word.p : "");
              word.n = 0;
              if (word.p)
                word.p[0] = '\0';
              blank_ok = false;
              continue;
            }
          if (ch == '\'' || ch == '"')
            {
              quote = (int)ch;
              blank_ok = true;
              phase = IN_QUOTE;
            }
          if ((int)ch == esc)
            {
              if (pos + w == len)
                continue; /* an escape at the very end is dropped */
              sbuf_addn (&word, rest + pos, w);
              pos += w;
              w = utf8_decode (rest + pos, len - pos, &ch);
            }
          sbuf_addn (&word, rest + pos, w);
          continue;
        }
      /* IN_QUOTE */
      if ((int)ch == quote)
        phase = IN_WORD;
      if ((int)ch == esc && quote != '\'')
        {
          if (pos + w == len)
            {
              phase = IN_WORD;
              continue;
            }
          sbuf_addn (&word, rest + pos, w);
          pos += w;
          w = utf8_decode (rest + pos, len - pos, &ch);
        }
      sbuf_addn (&word, rest + pos, w);
    }
  free (word.p);
  return words;
}

/* extractBuilderFlags: the leading "--flag[=value]" words (quotes and '\' removed); "--" ends
   them. *rest points into line. Docker uses '\' here whatever the escape directive says. */
static char **
extract_flags (const char *line, const char **rest)
{
  enum
  {
    IN_SPACES,
    IN_WORD,
    IN_QUOTE
  } phase
      = IN_SPACES;
  char **words = xzalloc (sizeof (char *));
  struct sbuf word = { 0 };
  char quote = 0;
  bool blank_ok = false;
  size_t len = strlen (line);
  char ch = 0;
  *rest = line + len;
  for (size_t pos = 0; pos <= len; pos++)
    {
      if (pos != len)
        ch = line[pos];
      if (phase == IN_SPACES)
        {
          if (pos == len)
            break;
          if (isspace ((unsigned char)ch))
            continue;
          if (ch != '-' || pos + 1 == len || line[pos + 1] != '-')
            {
              *rest = line + pos;
              break;
            }
          phase = IN_WORD;
        }
      if (pos == len)
        {
          if ((word.p == NULL || strcmp (word.p, "--") != 0) && (blank_ok || word.n > 0))
            cimg_strv_append (&words, word.p ? word.p : "");
          break;
        }
      if (phase == IN_WORD)
        {
          if (isspace ((unsigned char)ch))
            {
              phase = IN_SPACES;
              if (word.p && strcmp (word.p, "--") == 0)
                {
                  *rest = line + pos;
                  break;
                }
              if (blank_ok || word.n > 0)
                cimg_strv_append (&words, word.p ? word.p : "");
              word.n = 0;
              if (word.p)
                word.p[0] = '\0';
              blank_ok = false;
              continue;
            }
          if (ch == '\'' || ch == '"')
            {
              quote = ch;
              blank_ok = true;
              phase = IN_QUOTE;
              continue;
            }
          if (ch == '\\')
            {
              if (pos + 1 == len)
                continue;
              ch = line[++pos];
            }
          sbuf_addc (&word, ch);
          continue;
        }
      if (ch == quote)
        {
          phase = IN_WORD;
          continue;
        }
      if (ch == '\\')
        {
          if (pos + 1 == len)
            {
              phase = IN_WORD;
              continue;
            }
          ch = line[++pos];
        }
      sbuf_addc (&word, ch);
    }
  free (word.p);
  return words;
}

static char *
trim_dup (const char *s)
{
  size_t n = strlen (s);
  size_t i = skip_space (s, n);
  size_t e = n;
  while (e > i)
    {
      /* Trailing ASCII white space; the rest of Unicode's spaces is rare enough at line ends. */
      if (!isspace ((unsigned char)s[e - 1]))
        break;
      e--;
    }
  return xstrndup (s + i, e - i);
}

/* ---------------------------------------------------------------- instructions */

static void
instr_clear (struct cimg_instruction *in)
{
  if (in == NULL)
    return;
  free (in->name);
  free (in->original);
  free (in->text);
  cimg_strv_free (in->flags);
  cimg_strv_free (in->args);
  for (size_t i = 0; i < in->n_heredocs; i++)
    {
      free (in->heredocs[i].name);
      free (in->heredocs[i].content);
    }
  free (in->heredocs);
  if (in->sub)
    {
      instr_clear (in->sub);
      free (in->sub);
    }
  *in = (struct cimg_instruction){ 0 };
}

/* parseJSON: 1 when text is a JSON array of strings, 0 when it is not JSON (shell form), -1
   (with msg) for an array with something else than strings, which Docker refuses. */
static int
parse_json (const char *text, char ***out, char **msg)
{
  size_t i = skip_space (text, strlen (text));
  if (text[i] != '[')
    return 0;
  json_error_t jerr;
  json_t *j = json_loads (text + i, 0, &jerr);
  if (j == NULL || !json_is_array (j))
    {
      json_decref (j);
      return 0;
    }
  char **v = xzalloc (sizeof (char *));
  size_t k;
  json_t *e;
  json_array_foreach (j, k, e)
  {
    if (!json_is_string (e))
      {
        cimg_strv_free (v);
        json_decref (j);
        *msg = xstrdup ("when using JSON array syntax, arrays must be comprised of strings only");
        return -1;
      }
    cimg_strv_append (&v, json_string_value (e));
  }
  json_decref (j);
  *out = v;
  return 1;
}

struct flag_spec
{
  const char *instr;
  const char *names; /* space-separated; a trailing '?' marks a boolean flag */
};

static const struct flag_spec flag_specs[] = {
  { "from", "platform" },
  { "run", "mount network security device" },
  { "copy", "from chown chmod link? parents? exclude" },
  { "add", "chown chmod link? checksum keep-git-dir? exclude unpack?" },
  { "healthcheck", "interval timeout start-period start-interval retries" },
};

/* BFlags.Parse: each flag is known for its instruction, given once, and has a value unless it
   is a boolean. */
static int
check_flags (const char *instr, char **flags, char **msg)
{
  const char *names = "";
  for (size_t i = 0; i < ARRAY_SIZE (flag_specs); i++)
    if (strcmp (flag_specs[i].instr, instr) == 0)
      names = flag_specs[i].names;
  for (size_t i = 0; flags[i]; i++)
    {
      const char *f = flags[i];
      if (strncmp (f, "--", 2) != 0)
        {
          *msg = xasprintf ("Arg should start with -- : %s", f);
          return -1;
        }
      f += 2;
      const char *eq = strchr (f, '=');
      cleanup_free char *name = eq ? xstrndup (f, (size_t)(eq - f)) : xstrdup (f);
      if (*name == '\0')
        {
          *msg = xasprintf ("Missing flag name: %s", flags[i]);
          return -1;
        }
      bool known = false, boolean = false;
      for (const char *s = names; *s;)
        {
          size_t n = strcspn (s, " ");
          bool b = n > 0 && s[n - 1] == '?';
          size_t m = b ? n - 1 : n;
          if (strlen (name) == m && strncmp (s, name, m) == 0)
            known = true, boolean = b;
          s += n;
          while (*s == ' ')
            s++;
        }
      if (!known)
        {
          *msg = xasprintf ("unknown flag: %s", name);
          return -1;
        }
      for (size_t j = 0; j < i; j++)
        {
          const char *g = flags[j] + 2;
          size_t gn = strcspn (g, "=");
          /* --mount and --exclude may be repeated. */
          if (gn == strlen (name) && strncmp (g, name, gn) == 0 && strcmp (name, "mount") != 0
              && strcmp (name, "exclude") != 0)
            {
              *msg = xasprintf ("Duplicate flag specified: %s", name);
              return -1;
            }
        }
      if (boolean)
        {
          if (eq && strcasecmp (eq + 1, "true") != 0 && strcasecmp (eq + 1, "false") != 0)
            {
              *msg = xasprintf ("expecting boolean value for flag %s, not: %s", name, eq + 1);
              return -1;
            }
        }
      else if (eq == NULL)
        {
          *msg = xasprintf ("Missing a value on flag: %s", name);
          return -1;
        }
    }
  return 0;
}

static const char *const known_instrs[]
    = { "add",        "arg",         "cmd",    "copy",       "entrypoint", "env", "expose",
        "from",       "healthcheck", "label",  "maintainer", "onbuild",    "run", "shell",
        "stopsignal", "user",        "volume", "workdir",    NULL };

static bool
stage_name_valid (const char *s)
{
  if (!(*s >= 'a' && *s <= 'z'))
    return false;
  for (s++; *s; s++)
    if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'
          || *s == '.'))
      return false;
  return true;
}

static char *
upper (const char *s)
{
  char *u = xstrdup (s);
  for (char *c = u; *c; c++)
    *c = (char)toupper ((unsigned char)*c);
  return u;
}

/* newNodeFromLine + the checks of buildkit's instructions.Parse. On error returns -1 with *msg
   (without the file:line prefix). */
static int
parse_instruction (struct parser *p, const char *line, struct cimg_instruction *in, char **msg)
{
  cleanup_free char *t = trim_dup (line);
  size_t cl = strcspn (t, "\t\v\f\r ");
  in->name = xstrndup (t, cl);
  for (char *c = in->name; *c; c++)
    *c = (char)tolower ((unsigned char)*c);
  in->original = xstrdup (line);
  const char *rest = "";
  const char *after = t + cl;
  after += strspn (after, "\t\v\f\r ");
  if (*after)
    in->flags = extract_flags (after, &rest);
  else
    in->flags = xzalloc (sizeof (char *));
  in->text = trim_dup (rest);
  const char *nm = in->name;
  cleanup_free char *NM = upper (nm);
  const char *text = in->text;

  bool known = false;
  for (size_t i = 0; known_instrs[i]; i++)
    known |= strcmp (known_instrs[i], nm) == 0;
  if (!known)
    {
      *msg = xasprintf ("unknown instruction: %s", NM);
      return -1;
    }
  if (check_flags (nm, in->flags, msg) < 0)
    return -1;

  size_t nargs;
  if (!strcmp (nm, "run") || !strcmp (nm, "cmd") || !strcmp (nm, "entrypoint")
      || !strcmp (nm, "shell"))
    {
      int r = *text ? parse_json (text, &in->args, msg) : 0;
      if (r < 0)
        return -1;
      in->json = r == 1;
      if (!in->json)
        {
          in->args = xzalloc (sizeof (char *));
          if (*text)
            cimg_strv_append (&in->args, text);
        }
      nargs = cimg_strv_len (in->args);
      if (!strcmp (nm, "shell"))
        {
          if (nargs == 0)
            goto at_least_one;
          if (!in->json)
            {
              *msg = xstrdup ("SHELL requires the arguments to be in JSON form");
              return -1;
            }
        }
      if (!strcmp (nm, "run") && nargs == 0 && !in->json)
        goto at_least_one;
      return 0;
    }
  if (!strcmp (nm, "copy") || !strcmp (nm, "add") || !strcmp (nm, "volume"))
    {
      int r = parse_json (text, &in->args, msg);
      if (r < 0)
        return -1;
      in->json = r == 1;
      if (!in->json)
        in->args = split_ws (text);
      nargs = cimg_strv_len (in->args);
      if (!strcmp (nm, "volume"))
        {
          if (nargs == 0)
            goto at_least_one;
          for (size_t i = 0; in->args[i]; i++)
            if (line_blank (in->args[i]))
              {
                *msg = xstrdup ("VOLUME specified can not be an empty string");
                return -1;
              }
          return 0;
        }
      if (nargs < 2)
        {
          *msg = xasprintf ("%s requires at least two arguments, but only one was provided. "
                            "Destination could not be determined",
                            NM);
          return -1;
        }
      return 0;
    }
  if (!strcmp (nm, "from") || !strcmp (nm, "expose"))
    {
      in->args = split_ws (text);
      nargs = cimg_strv_len (in->args);
      if (!strcmp (nm, "expose"))
        {
          if (nargs == 0)
            goto at_least_one;
          return 0;
        }
      if (nargs == 3 && strcasecmp (in->args[1], "as") == 0)
        {
          for (char *c = in->args[2]; *c; c++)
            *c = (char)tolower ((unsigned char)*c);
          if (!stage_name_valid (in->args[2]))
            {
              cleanup_free char *q = go_quote (in->args[2]);
              *msg = xasprintf ("invalid name for build stage: %s, name can't start with a number "
                                "or contain symbols",
                                q);
              return -1;
            }
        }
      else if (nargs != 1)
        {
          *msg = xstrdup ("FROM requires either one or three arguments");
          return -1;
        }
      return 0;
    }
  if (!strcmp (nm, "env") || !strcmp (nm, "label"))
    {
      cleanup_strv char **words = parse_words (text, p->escape);
      in->args = xzalloc (sizeof (char *));
      if (words[0] == NULL)
        goto at_least_one;
      if (strchr (words[0], '=') == NULL)
        {
          /* The legacy form "ENV name value": the rest of the line is the value. */
          size_t k = strcspn (text, "\t\v\f\r ");
          if (text[k] == '\0')
            {
              *msg = xasprintf ("%s must have two arguments", NM);
              return -1;
            }
          cleanup_free char *key = xstrndup (text, k);
          const char *v = text + k + strspn (text + k, "\t\v\f\r ");
          cimg_strv_append (&in->args, key);
          cimg_strv_append (&in->args, v);
        }
      else
        for (size_t i = 0; words[i]; i++)
          {
            char *eq = strchr (words[i], '=');
            if (eq == NULL)
              {
                cleanup_free char *q = go_quote (words[i]);
                *msg = xasprintf ("Syntax error - can't find = in %s. Must be of the form: "
                                  "name=value",
                                  q);
                return -1;
              }
            cleanup_free char *key = xstrndup (words[i], (size_t)(eq - words[i]));
            cimg_strv_append (&in->args, key);
            cimg_strv_append (&in->args, eq + 1);
          }
      for (size_t i = 0; in->args[i]; i += 2)
        if (in->args[i][0] == '\0')
          {
            *msg = xasprintf ("%s names can not be blank", NM);
            return -1;
          }
      return 0;
    }
  if (!strcmp (nm, "arg"))
    {
      in->args = parse_words (text, p->escape);
      if (in->args[0] == NULL)
        goto at_least_one;
      for (size_t i = 0; in->args[i]; i++)
        if (in->args[i][0] == '=')
          {
            *msg = xstrdup ("ARG names can not be blank");
            return -1;
          }
      return 0;
    }
  if (!strcmp (nm, "maintainer") || !strcmp (nm, "user") || !strcmp (nm, "workdir")
      || !strcmp (nm, "stopsignal"))
    {
      in->args = xzalloc (sizeof (char *));
      if (*text == '\0')
        {
          *msg = xasprintf ("%s requires exactly one argument", NM);
          return -1;
        }
      cimg_strv_append (&in->args, text);
      return 0;
    }
  if (!strcmp (nm, "healthcheck"))
    {
      in->args = xzalloc (sizeof (char *));
      size_t sep = strcspn (text, " \t\n\v\f\r");
      if (sep == 0)
        goto at_least_one;
      cleanup_free char *typ = xstrndup (text, sep);
      cleanup_free char *TYP = upper (typ);
      const char *cmd = text + sep + strspn (text + sep, " \t\n\v\f\r");
      cimg_strv_append (&in->args, TYP);
      if (strcmp (TYP, "NONE") == 0)
        {
          if (*cmd)
            {
              *msg = xstrdup ("HEALTHCHECK NONE takes no arguments");
              return -1;
            }
          return 0;
        }
      if (strcmp (TYP, "CMD") != 0)
        {
          cleanup_free char *q = go_quote (TYP);
          *msg = xasprintf ("Unknown type %s in HEALTHCHECK (try CMD)", q);
          return -1;
        }
      cleanup_strv char **c = NULL;
      int r = *cmd ? parse_json (cmd, &c, msg) : 0;
      if (r < 0)
        return -1;
      in->json = r == 1;
      if (in->json)
        for (size_t i = 0; c[i]; i++)
          cimg_strv_append (&in->args, c[i]);
      else if (*cmd)
        cimg_strv_append (&in->args, cmd);
      if (in->args[1] == NULL)
        {
          *msg = xstrdup ("Missing command after HEALTHCHECK CMD");
          return -1;
        }
      return 0;
    }
  /* onbuild */
  in->args = xzalloc (sizeof (char *));
  if (*text == '\0')
    goto at_least_one;
  {
    size_t k = strcspn (text, "\t\v\f\r ");
    cleanup_free char *trig = xstrndup (text, k);
    cleanup_free char *TRIG = upper (trig);
    if (strcmp (TRIG, "ONBUILD") == 0)
      {
        *msg = xstrdup ("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed");
        return -1;
      }
    if (strcmp (TRIG, "MAINTAINER") == 0 || strcmp (TRIG, "FROM") == 0)
      {
        *msg = xasprintf ("%s isn't allowed as an ONBUILD trigger", TRIG);
        return -1;
      }
    in->sub = xzalloc (sizeof *in->sub);
    return parse_instruction (p, text, in->sub, msg);
  }

at_least_one:
  *msg = xasprintf ("%s requires at least one argument", NM);
  return -1;
}

/* ---------------------------------------------------------------- heredocs */

/* ^(\d*)<<(-?)([^<]*)$ on one word of the line, and the delimiter it names. 1 when word is a
   heredoc, 0 when not. */
static int
heredoc_from_word (const char *word, struct cimg_heredoc *h, cimg_error_t *err)
{
  const char *s = word;
  while (*s >= '0' && *s <= '9')
    s++;
  if (strncmp (s, "<<", 2) != 0)
    return 0;
  unsigned fd = (unsigned)strtoul (word, NULL, 10);
  s += 2;
  bool chomp = *s == '-';
  if (chomp)
    s++;
  if (strchr (s, '<') != NULL || *s == '\0')
    return 0;
  /* Lex the delimiter with and without its quotes: if quote characters went away, part of it
     was quoted, and the body is not expanded. */
  struct build_lex_opts o = { .skip_unset = true };
  cleanup_strv char **words = NULL;
  if (build_expand (s, '\\', NULL, &o, NULL, &words, err) < 0)
    return -1;
  if (cimg_strv_len (words) != 1)
    return 0;
  o.raw_quotes = true;
  cleanup_strv char **raw = NULL;
  if (build_expand (s, '\\', NULL, &o, NULL, &raw, err) < 0)
    return -1;
  if (cimg_strv_len (raw) != 1)
    return cimg_error_set (err, EINVAL,
                           "internal lexing of heredoc produced inconsistent results: %s", s);
  size_t q1 = 0, q2 = 0;
  for (const char *c = words[0]; *c; c++)
    q1 += *c == '\'' || *c == '"';
  for (const char *c = raw[0]; *c; c++)
    q2 += *c == '\'' || *c == '"';
  *h = (struct cimg_heredoc){
    .name = xstrdup (words[0]),
    .expand = q1 == q2,
    .chomp = chomp,
    .fd = fd,
  };
  return 1;
}

static bool
can_contain_heredoc (const struct cimg_instruction *in)
{
  if (strcmp (in->name, "onbuild") == 0 && in->sub)
    in = in->sub;
  if (strcmp (in->name, "run") && strcmp (in->name, "copy") && strcmp (in->name, "add"))
    return false;
  return !in->json;
}

static char *
strip_leading_tabs (const char *s)
{
  struct sbuf b = { 0 };
  bool bol = true;
  for (; *s; s++)
    {
      if (bol && *s == '\t')
        continue;
      bol = *s == '\n';
      sbuf_addc (&b, *s);
    }
  return sbuf_steal (&b);
}

static int
read_heredocs (struct parser *p, const char *line, struct cimg_instruction *in, int start)
{
  struct build_lex_opts o = { .raw_quotes = true, .raw_escapes = true, .skip_unset = true };
  cleanup_strv char **words = NULL;
  cimg_error_t lerr = { 0 };
  /* A line that does not lex (an unmatched quote) has no heredocs, as in Docker. */
  if (build_expand (line, '\\', NULL, &o, NULL, &words, &lerr) < 0)
    {
      cimg_error_clear (&lerr);
      return 0;
    }
  for (size_t i = 0; words[i]; i++)
    {
      struct cimg_heredoc h;
      int r = heredoc_from_word (words[i], &h, p->err);
      if (r < 0)
        return cimg_error_wrap (p->err, "%s:%d", p->name, start);
      if (r == 0)
        continue;
      struct sbuf body = { 0 };
      bool terminated = false;
      const char *l;
      size_t n;
      while (next_line (p, &l, &n))
        {
          p->lineno++;
          size_t m = trim_newline (l, n);
          const char *t = l;
          if (h.chomp)
            while (m > 0 && *t == '\t')
              t++, m--;
          if (m == strlen (h.name) && memcmp (t, h.name, m) == 0)
            {
              terminated = true;
              break;
            }
          sbuf_addn (&body, l, n);
        }
      char *content = sbuf_steal (&body);
      if (h.chomp)
        {
          char *c = strip_leading_tabs (content);
          free (content);
          content = c;
        }
      h.content = content;
      in->heredocs = xrealloc (in->heredocs, (in->n_heredocs + 1) * sizeof *in->heredocs);
      in->heredocs[in->n_heredocs++] = h;
      if (!terminated)
        {
          cleanup_free char *q = go_quote (h.name);
          return cimg_error_set (p->err, EINVAL, "%s:%d: unterminated heredoc %s", p->name, start,
                                 q);
        }
    }
  return 0;
}

/* ---------------------------------------------------------------- the file */

void
cimg_dockerfile_free (struct cimg_dockerfile *df)
{
  if (df == NULL)
    return;
  for (size_t i = 0; i < df->n_instrs; i++)
    instr_clear (&df->instrs[i]);
  free (df->instrs);
  free (df->name);
  free (df->syntax);
  cimg_strv_free (df->warnings);
  free (df);
}

void
cimg_dockerfile_freep (struct cimg_dockerfile **df)
{
  cimg_dockerfile_free (*df);
  *df = NULL;
}

struct cimg_dockerfile *
cimg_build_parse (const char *name, const char *text, size_t len, cimg_error_t *err)
{
  struct parser p = {
    .name = name ? name : "Dockerfile",
    .text = text,
    .len = len,
    .escape = '\\',
    .err = err,
  };
  cleanup_dockerfile struct cimg_dockerfile *df = xzalloc (sizeof *df);
  df->name = xstrdup (p.name);
  df->warnings = xzalloc (sizeof (char *));
  if (len >= 3 && memcmp (text, "\xEF\xBB\xBF", 3) == 0)
    p.pos = 3;

  const char *raw;
  size_t n;
  while (next_line (&p, &raw, &n))
    {
      cleanup_free char *line = NULL;
      if (process_line (&p, raw, n, true, &line) < 0)
        goto fail;
      p.lineno++;
      int start = p.lineno;
      bool cont = trim_continuation (&p, line);
      if (!cont && *line == '\0')
        continue;
      bool empty_cont = false;
      struct sbuf joined = { 0 };
      sbuf_adds (&joined, line);
      while (cont && next_line (&p, &raw, &n))
        {
          cleanup_free char *l = NULL;
          if (process_line (&p, raw, n, false, &l) < 0)
            {
              free (joined.p);
              goto fail;
            }
          p.lineno++;
          if (is_comment (raw, n))
            continue;
          if (line_blank (l))
            {
              empty_cont = true;
              continue;
            }
          cont = trim_continuation (&p, l);
          sbuf_adds (&joined, l);
        }
      free (line);
      line = sbuf_steal (&joined);
      if (empty_cont)
        {
          cleanup_free char *w = xasprintf ("%s:%d: empty continuation line", p.name, start);
          cimg_strv_append (&df->warnings, w);
        }

      struct cimg_instruction in = { 0 };
      cleanup_free char *msg = NULL;
      if (parse_instruction (&p, line, &in, &msg) < 0)
        {
          cimg_error_set (err, EINVAL, "%s:%d: %s", p.name, start, msg);
          instr_clear (&in);
          goto fail;
        }
      if (can_contain_heredoc (&in) && read_heredocs (&p, line, &in, start) < 0)
        {
          instr_clear (&in);
          goto fail;
        }
      in.line = start;
      in.end_line = p.lineno;
      if (in.sub)
        {
          in.sub->line = in.line;
          in.sub->end_line = in.end_line;
        }
      df->instrs = xrealloc (df->instrs, (df->n_instrs + 1) * sizeof *df->instrs);
      df->instrs[df->n_instrs++] = in;
    }
  if (df->n_instrs == 0)
    {
      cimg_error_set (err, EINVAL, "%s:%d: file with no instructions", p.name, p.lineno);
      goto fail;
    }
  df->escape = p.escape;
  df->syntax = steal_pointer (&p.syntax);
  return steal_pointer (&df);
fail:
  free (p.syntax);
  return NULL;
}

const char *
cimg_build_flag_value (const struct cimg_instruction *in, const char *name)
{
  size_t n = strlen (name);
  for (size_t i = 0; in->flags[i]; i++)
    if (strncmp (in->flags[i], "--", 2) == 0 && strncmp (in->flags[i] + 2, name, n) == 0
        && in->flags[i][2 + n] == '=')
      return in->flags[i] + 3 + n;
  return NULL;
}
