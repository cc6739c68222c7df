/* cimg login: check credentials against the registry, then keep them. */
#include "registry/registry-internal.h"

#include <errno.h>
#include <string.h>

int
cimg_registry_login (const char *server, const char *user, const char *password, cimg_error_t *err)
{
  cleanup_client struct reg_client *c = reg_client_new (server, "", "pull", err);
  if (c == NULL)
    return cimg_error_wrap (err, "login %s", server);
  /* The credentials to check, not the stored ones. */
  free (c->user), free (c->pass);
  c->user = xstrdup (user);
  c->pass = xstrdup (password);
  cleanup_free char *url = xasprintf ("%s/v2/", c->endpoint);
  struct reg_response r = { 0 };
  if (reg_request (c, "GET", url, NULL, NULL, 0, NULL, 1 << 20, &r, err) < 0)
    return cimg_error_wrap (err, "login %s", server);
  long status = r.status;
  cleanup_free char *m = reg_response_error (&r);
  reg_response_clear (&r);
  if (status == 401 || status == 403)
    return cimg_error_set (err, EACCES, "login %s: unauthorized: incorrect username or password",
                           server);
  if (status != 200)
    return cimg_error_set (err, EIO, "login %s: %s", server, m);
  if (reg_store_credentials (server, user, password, err) < 0)
    return cimg_error_wrap (err, "login %s: store credentials", server);
  return 0;
}
