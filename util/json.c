#include "util/util.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>

json_t *
cimg_json_parse (const char *buf, size_t len, cimg_error_t *err)
{
  json_error_t je;
  json_t *j = json_loadb (buf, len, JSON_REJECT_DUPLICATES, &je);
  if (j == NULL)
    {
      cimg_error_set (err, EINVAL, "invalid JSON at line %d column %d: %s", je.line, je.column,
                      je.text);
      return NULL;
    }
  if (!json_is_object (j))
    {
      json_decref (j);
      cimg_error_set (err, EINVAL, "invalid JSON: not an object");
      return NULL;
    }
  return j;
}

json_t *
cimg_json_load_at (int dirfd, const char *name, size_t max, cimg_error_t *err)
{
  cleanup_free char *buf = NULL;
  size_t len = 0;
  if (cimg_read_file_at (dirfd, name, max, &buf, &len, err) < 0)
    return NULL;
  json_t *j = cimg_json_parse (buf, len, err);
  if (j == NULL)
    cimg_error_wrap (err, "%s", name);
  return j;
}

int
cimg_json_save_at (int dirfd, const char *name, json_t *j, cimg_error_t *err)
{
  cleanup_free char *s = json_dumps (j, JSON_COMPACT | JSON_SORT_KEYS);
  if (s == NULL)
    return cimg_error_set (err, ENOMEM, "encode %s", name);
  return cimg_write_file_atomic_at (dirfd, name, s, strlen (s), 0644, err);
}

const char *
cimg_json_str (json_t *obj, const char *key)
{
  json_t *v = json_object_get (obj, key);
  return json_is_string (v) ? json_string_value (v) : NULL;
}

int64_t
cimg_json_int (json_t *obj, const char *key)
{
  json_t *v = json_object_get (obj, key);
  return json_is_integer (v) ? (int64_t)json_integer_value (v) : 0;
}

json_t *
cimg_json_object_field (json_t *obj, const char *key)
{
  json_t *o = json_object_get (obj, key);
  if (!json_is_object (o))
    {
      o = json_object ();
      json_object_set_new (obj, key, o);
    }
  return o;
}

json_t *
cimg_json_from_strv (char *const *v)
{
  json_t *a = json_array ();
  for (size_t i = 0; v && v[i]; i++)
    json_array_append_new (a, json_string (v[i]));
  return a;
}

char **
cimg_json_to_strv (json_t *a)
{
  char **v = xzalloc (sizeof (char *));
  size_t i;
  json_t *e;
  json_array_foreach (a, i, e) if (json_is_string (e)) cimg_strv_append (&v, json_string_value (e));
  return v;
}

char *
cimg_json_port_key (const char *p)
{
  /* A port number has five digits at most; a range is two of them. */
  size_t digits = strspn (p, "0123456789");
  if (digits == 0 || digits > 5)
    return NULL;
  const char *s = p + digits;
  if (*s == '-')
    {
      size_t d2 = strspn (s + 1, "0123456789");
      if (d2 == 0 || d2 > 5)
        return NULL;
      s += 1 + d2;
    }
  int numlen = (int)(s - p);
  if (*s == '\0')
    return xasprintf ("%.*s/tcp", numlen, p);
  if (*s++ != '/')
    return NULL;
  if (strcasecmp (s, "tcp") != 0 && strcasecmp (s, "udp") != 0 && strcasecmp (s, "sctp") != 0)
    return NULL;
  cleanup_free char *proto = xstrdup (s);
  for (char *q = proto; *q; q++)
    *q = (char)tolower ((unsigned char)*q);
  return xasprintf ("%.*s/%s", numlen, p, proto);
}
