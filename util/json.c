#include "util/util.h"

#include <errno.h>
#include <string.h>

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
