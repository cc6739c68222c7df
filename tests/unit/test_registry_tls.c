/* Unit tests for the per-registry TLS material (registry/tls.c): the certificates directory
   of a registry as Docker lays it out ($CIMG_CERTS_DIR/HOST:PORT/ *.crt, NAME.cert +
   NAME.key), and which transfer failures are final. */

#include <errno.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/registry-internal.h"

static char base[64];

static void
put (const char *host, const char *name, const char *text)
{
  cleanup_free char *dir = xasprintf ("%s/%s", base, host);
  mkdir (dir, 0755);
  cleanup_free char *path = xasprintf ("%s/%s", dir, name);
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  assert_true (fd >= 0);
  assert_int_equal (write (fd, text, strlen (text)), (ssize_t)strlen (text));
  close (fd);
}

static int
setup (void **state)
{
  (void)state;
  snprintf (base, sizeof base, "/tmp/cimg-test-tls-XXXXXX");
  if (mkdtemp (base) == NULL)
    return -1;
  setenv ("CIMG_CERTS_DIR", base, 1);
  return 0;
}

static int
teardown (void **state)
{
  (void)state;
  cimg_error_t err = { 0 };
  cimg_rm_rf_at (AT_FDCWD, base, &err);
  cimg_error_clear (&err);
  unsetenv ("CIMG_CERTS_DIR");
  return 0;
}

static void
test_no_directory (void **state)
{
  (void)state;
  struct reg_tls t;
  cimg_error_t err = { 0 };
  assert_int_equal (reg_tls_load ("example.com:5000", NULL, &t, &err), 0);
  assert_null (t.dir);
  assert_null (t.ca_pem);
  assert_null (t.client_cert);
  /* Names that would leave the certificates directory are never looked up. */
  assert_int_equal (reg_tls_load ("..", NULL, &t, &err), 0);
  assert_null (t.dir);
  assert_int_equal (reg_tls_load ("a/../../etc", NULL, &t, &err), 0);
  assert_null (t.dir);
  cimg_error_clear (&err);
}

static void
test_cas_added_to_the_system_ones (void **state)
{
  (void)state;
  put ("reg:5000", "b.crt", "CA-B");
  put ("reg:5000", "a.crt", "CA-A\n");
  put ("reg:5000", "README", "not a certificate");
  cleanup_free char *sys = xasprintf ("%s/system.pem", base);
  put ("", "system.pem", "SYSTEM");
  struct reg_tls t;
  cimg_error_t err = { 0 };
  assert_int_equal (reg_tls_load ("reg:5000", sys, &t, &err), 0);
  assert_non_null (t.dir);
  assert_non_null (t.ca_pem);
  /* The system bundle first, then the directory's CAs in name order, each ending a line. */
  assert_string_equal (t.ca_pem, "SYSTEM\nCA-A\n\nCA-B\n");
  assert_int_equal (t.ca_len, strlen (t.ca_pem));
  assert_null (t.client_cert);
  reg_tls_clear (&t);

  /* A directory without CAs leaves libcurl's defaults alone. */
  put ("other:1", "README", "x");
  assert_int_equal (reg_tls_load ("other:1", sys, &t, &err), 0);
  assert_non_null (t.dir);
  assert_null (t.ca_pem);
  reg_tls_clear (&t);
}

static void
test_client_certificates (void **state)
{
  (void)state;
  struct reg_tls t;
  cimg_error_t err = { 0 };
  put ("c:1", "client.cert", "CERT");
  assert_int_equal (reg_tls_load ("c:1", NULL, &t, &err), -1);
  assert_non_null (strstr (err.msg, "missing key"));
  assert_non_null (strstr (err.msg, "client.key"));
  assert_null (t.dir);
  cimg_error_clear (&err);

  put ("k:1", "client.key", "KEY");
  assert_int_equal (reg_tls_load ("k:1", NULL, &t, &err), -1);
  assert_non_null (strstr (err.msg, "missing client certificate"));
  cimg_error_clear (&err);

  put ("c:1", "client.key", "KEY");
  assert_int_equal (reg_tls_load ("c:1", NULL, &t, &err), 0);
  assert_non_null (strstr (t.client_cert, "/c:1/client.cert"));
  assert_non_null (strstr (t.client_key, "/c:1/client.key"));
  reg_tls_clear (&t);
}

static void
test_final_errors (void **state)
{
  (void)state;
  assert_true (reg_curl_error_final (CURLE_PEER_FAILED_VERIFICATION, ""));
  assert_true (reg_curl_error_final (CURLE_SSL_CERTPROBLEM, NULL));
  assert_true (reg_curl_error_final (CURLE_RECV_ERROR, "sslv3 alert bad certificate"));
  assert_true (reg_curl_error_final (CURLE_SSL_CONNECT_ERROR, "tlsv13 alert certificate required"));
  /* Worth another try: a connection that broke, a handshake cut short. */
  assert_false (reg_curl_error_final (CURLE_RECV_ERROR, "Connection reset by peer"));
  assert_false (reg_curl_error_final (CURLE_SSL_CONNECT_ERROR, "wrong version number"));
  assert_false (reg_curl_error_final (CURLE_COULDNT_CONNECT, ""));
}

int
main (void)
{
  const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown (test_no_directory, setup, teardown),
    cmocka_unit_test_setup_teardown (test_cas_added_to_the_system_ones, setup, teardown),
    cmocka_unit_test_setup_teardown (test_client_certificates, setup, teardown),
    cmocka_unit_test_setup_teardown (test_final_errors, setup, teardown),
  };
  return cmocka_run_group_tests (tests, NULL, NULL);
}
