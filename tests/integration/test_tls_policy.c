/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TLS is never silently off, and its policy holds (issue 21), with real TLS servers started
 * here (redis-server, loopback, certificates from $RCACHE_TEST_TLS_DIR's CA, killed at exit):
 *  - tls_* options with a URL without TLS: RCACHE_EINVAL, never a plaintext connection;
 *  - an empty tls_server_name: RCACHE_EINVAL, never a handshake that checks no name;
 *  - a server requiring a client certificate, none given: RCACHE_ETLS with OpenSSL's reason
 *    (TLS 1.3 and 1.2), not "connection broken";
 *  - a certificate naming the host only in its subject's CN (no subjectAltName): refused;
 *  - a TLS 1.2 server offering only RSA key exchange with CBC-SHA1: refused by default,
 *    accepted with tls_ciphers set to allow it; a bad tls_ciphers fails rcache_open;
 *  - a pooled session the server ended (its idle timeout) is a broken connection: a GET
 *    on it is retried once on a fresh one and succeeds, no breaker opened (a session cut
 *    without close_notify: faults_test_tls e).
 */
#include <unistd.h>

#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

static const char *tls_dir;
static char dir[256];
static rp_server servers[8];
static int nservers;

/* Starts a TLS-only redis-server with certs from cert_dir (server.pem, server.key, ca.pem)
 * and up to 4 more arguments (NULL-terminated); its TLS port, or -1. Client certificates
 * are not asked for unless the arguments say otherwise. */
static int tls_server(const char *cert_dir, const char *a1, const char *a2, const char *a3,
                      const char *a4) {
  if (nservers == (int)(sizeof servers / sizeof servers[0])) return -1;
  const char *args[] = {a1, a2, a3, a4, NULL};
  rp_server *srv = &servers[nservers];
  if (rp_start(srv,
               &(rp_opts){
                   .tag = "tlspolicy", .port = RP_NO_TCP, .tls_dir = cert_dir, .args = args}) != 0)
    return -1;
  nservers++;
  return srv->tls_port;
}

/* Opens url with o and returns the health check's status; its error in err. */
static rcache_status health(const char *url, rcache_options *o, char *err, size_t len) {
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, o);
  if (s != RCACHE_OK) {
    snprintf(err, len, "open: %s", rcache_errmsg(NULL));
    return s;
  }
  rcache_health h;
  s = rcache_health_check(c, &h);
  snprintf(err, len, "%s", h.error);
  rcache_close(c);
  return s;
}

static void no_silent_plaintext(void) {
  const char *urls[] = {"redis://127.0.0.1:1", "unix:///tmp/nothing.sock",
                        "redis+sentinel://127.0.0.1:1/m"};
  for (int i = 0; i < 3; i++) {
    for (int which = 0; which < 4; which++) {
      rcache_options o;
      rcache_options_init(&o);
      if (which == 0) o.tls_ca_file = "/etc/ssl/ca.pem";
      if (which == 1) o.tls_insecure = true;
      if (which == 2) o.tls_server_name = "cache.internal";
      if (which == 3) o.tls_ciphers = "ECDHE+AESGCM";
      rcache *c = NULL;
      CHECK_EQ(rcache_open(&c, urls[i], &o), RCACHE_EINVAL);
      CHECK(c == NULL);
      CHECK_MSG(strstr(rcache_errmsg(NULL), "without TLS") != NULL, "%s", rcache_errmsg(NULL));
    }
  }
  rcache_options o; /* memory:// reaches no server: the same options are harmless there */
  rcache_options_init(&o);
  o.tls_ca_file = "/etc/ssl/ca.pem";
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "memory://", &o), RCACHE_OK);
  rcache_close(c);
}

/* tls_server_name "" is refused: OpenSSL's SSL_set1_host(ssl, "") clears the names to verify
 * and succeeds, so a certificate for any name, from a trusted CA, was accepted (the server
 * RCACHE_TEST_URL_TLS_OTHER names only another host: with "" it answered, health OK) */
static void empty_server_name(void) {
  const char *url = test_env_url("RCACHE_TEST_URL_TLS_OTHER");
  char err[300];
  rcache_options o;
  rcache_options_init(&o);
  rcache_status s = health(url, &o, err, sizeof err);
  CHECK_MSG(s == RCACHE_ETLS, "another host's certificate: %s: %s", rcache_strerror(s), err);
  o.tls_server_name = "";
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_EINVAL);
  CHECK_MSG(strstr(rcache_errmsg(NULL), "tls_server_name is empty"), "%s", rcache_errmsg(NULL));
  rcache_close(c);
}

static void client_cert_required(void) {
  char url[600], err[300];
  const char *protos[] = {"TLSv1.3", "TLSv1.2"};
  for (int i = 0; i < 2; i++) {
    int port = tls_server(tls_dir, "--tls-auth-clients", "yes", "--tls-protocols", protos[i]);
    CHECK_MSG(port > 0, "TLS server (%s) did not start", protos[i]);
    if (port <= 0) return;
    snprintf(url, sizeof url, "rediss://localhost:%d?tls_ca=%s/ca.pem", port, tls_dir);
    rcache_status s = health(url, NULL, err, sizeof err);
    printf("%s, no client certificate: %s: %s\n", protos[i], rcache_strerror(s), err);
    CHECK_MSG(s == RCACHE_ETLS, "%s: %s: %s", protos[i], rcache_strerror(s), err);
    CHECK_MSG(strstr(err, "TLS") && !strstr(err, "broken"), "%s: %s", protos[i], err);
    snprintf(url, sizeof url,
             "rediss://localhost:%d?tls_ca=%s/ca.pem&tls_cert=%s/client.pem&tls_key=%s/"
             "client.key",
             port, tls_dir, tls_dir, tls_dir);
    s = health(url, NULL, err, sizeof err);
    CHECK_MSG(s == RCACHE_OK, "%s with a client certificate: %s: %s", protos[i], rcache_strerror(s),
              err);
  }
}

static void cn_only_certificate(void) {
  char cmd[2048], cert[300], key[300], ca[300], url[600], err[300];
  snprintf(cert, sizeof cert, "%s/server.pem", dir); /* the names rp_opts.tls_dir wants */
  snprintf(key, sizeof key, "%s/server.key", dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", tls_dir);
  char link[300];
  snprintf(link, sizeof link, "%s/ca.pem", dir);
  CHECK(symlink(ca, link) == 0);
  snprintf(cmd, sizeof cmd,
           "openssl req -newkey rsa:2048 -nodes -keyout %s -subj /CN=localhost -out %s/cn.csr "
           ">/dev/null 2>&1 && openssl x509 -req -in %s/cn.csr -CA %s/ca.pem -CAkey %s/ca.key "
           "-CAserial %s/ca.srl -CAcreateserial -days 1 -out %s >/dev/null 2>&1",
           key, dir, dir, tls_dir, tls_dir, dir, cert);
  CHECK_MSG(system(cmd) == 0, "could not make the CN-only certificate");
  int port = tls_server(dir, NULL, NULL, NULL, NULL);
  CHECK_MSG(port > 0, "TLS server with the CN-only certificate did not start");
  if (port <= 0) return;
  snprintf(url, sizeof url, "rediss://localhost:%d?tls_ca=%s/ca.pem", port, tls_dir);
  rcache_status s = health(url, NULL, err, sizeof err);
  printf("CN-only certificate: %s: %s\n", rcache_strerror(s), err);
  CHECK_MSG(s == RCACHE_ETLS, "%s: %s", rcache_strerror(s), err);
  CHECK_MSG(strstr(err, "hostname mismatch") != NULL, "%s", err);
  /* the certificate is otherwise good: only the name check refuses it */
  snprintf(url, sizeof url, "rediss://localhost:%d?tls_ca=%s/ca.pem&tls_insecure=1", port, tls_dir);
  CHECK_EQ(health(url, NULL, err, sizeof err), RCACHE_OK);
}

static void cipher_policy(void) {
  char url[600], err[300];
  int weak = tls_server(tls_dir, "--tls-protocols", "TLSv1.2", "--tls-ciphers", "AES128-SHA");
  int good = tls_server(tls_dir, "--tls-protocols", "TLSv1.2", NULL, NULL);
  CHECK_MSG(weak > 0 && good > 0, "TLS 1.2 servers did not start");
  if (weak <= 0 || good <= 0) return;
  snprintf(url, sizeof url, "rediss://localhost:%d?tls_ca=%s/ca.pem", weak, tls_dir);
  rcache_status s = health(url, NULL, err, sizeof err);
  printf("TLS 1.2 server offering only AES128-SHA: %s: %s\n", rcache_strerror(s), err);
  CHECK_MSG(s == RCACHE_ETLS, "%s: %s", rcache_strerror(s), err);
  rcache_options o; /* overridable, for a server that cannot do better */
  rcache_options_init(&o);
  o.tls_ciphers = "AES128-SHA";
  CHECK_EQ(health(url, &o, err, sizeof err), RCACHE_OK);
  /* the same, in the URL */
  snprintf(url, sizeof url, "rediss://localhost:%d?tls_ca=%s/ca.pem&tls_ciphers=AES128-SHA", weak,
           tls_dir);
  CHECK_EQ(health(url, NULL, err, sizeof err), RCACHE_OK);
  /* a TLS 1.2 server with its defaults agrees on a forward-secret AEAD suite */
  snprintf(url, sizeof url, "rediss://localhost:%d?tls_ca=%s/ca.pem", good, tls_dir);
  CHECK_EQ(health(url, NULL, err, sizeof err), RCACHE_OK);
  /* a list that selects nothing fails at open, with OpenSSL's reason */
  o.tls_ciphers = "NOSUCHCIPHER";
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_ETLS);
  CHECK_MSG(strstr(rcache_errmsg(NULL), "tls_ciphers") != NULL, "%s", rcache_errmsg(NULL));
  o.tls_ciphers = NULL;
  o.tls_ciphersuites = "NOSUCHSUITE";
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_ETLS);
}

static void session_dropped(void) {
  char url[600];
  int port = tls_server(tls_dir, "--timeout", "1", NULL, NULL);
  CHECK_MSG(port > 0, "TLS server with an idle timeout did not start");
  if (port <= 0) return;
  snprintf(url, sizeof url, "rediss://localhost:%d?tls_ca=%s/ca.pem", port, tls_dir);
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 1;
  o.breaker_failures = 1;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_MSG(s == RCACHE_OK, "open: %s", rcache_errmsg(NULL));
  if (s != RCACHE_OK) return;
  CHECK_EQ(rcache_set(c, "k", "v", 1, 60000), RCACHE_OK);
  usleep(2500 * 1000); /* the server's idle timeout (1 s) closes the pooled connection */
  rcache_value v = {0};
  s = rcache_get(c, "k", &v);
  printf("GET after the server ended the session: %s (%s)\n", rcache_strerror(s),
         s == RCACHE_OK ? "" : rcache_errmsg(c));
  CHECK_MSG(s == RCACHE_OK && v.len == 1, "%s: %s", rcache_strerror(s), rcache_errmsg(c));
  rcache_value_free(&v);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK_EQ(st.breaker_opens, 0);
  rcache_close(c);
}

int main(void) {
  setvbuf(stdout, NULL, _IOLBF, 0);
  tls_dir = test_env_url("RCACHE_TEST_TLS_DIR");
  if (rp_mkdir(dir, sizeof dir, "rcache-tlspolicy") != 0) {
    CHECK_MSG(false, "cannot make a directory");
    return test_report("test_tls_policy");
  }
  no_silent_plaintext();
  empty_server_name();
  client_cert_required();
  cn_only_certificate();
  cipher_policy();
  session_dropped();
  for (int i = 0; i < nservers; i++)
    rp_destroy(&servers[i]);
  rp_remove_dir(dir);
  return test_report("test_tls_policy");
}
