/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sentinel over TLS (rediss+sentinel://), on private servers started here with the test
 * certificates of scripts/servers.d/10-tls.sh: a master with a TLS port and a sentinel that
 * listens on TLS only and monitors the master over TLS. rcache reaches the sentinel and the
 * master over TLS, verifying both certificates; with an untrusted CA it stays in fallback.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rcache/rcache.h"
#include "test.h"
#include "test_cluster_procs.h"

#define GROUP "tls-group"

int main(void) {
  const char *dir = test_env_url("RCACHE_TEST_TLS_DIR");
  char cert[300], key[300], ca[300], tport[16];
  snprintf(cert, sizeof cert, "%s/server.pem", dir);
  snprintf(key, sizeof key, "%s/server.key", dir);
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  int mtls = pr_free_port();
  snprintf(tport, sizeof tport, "%d", mtls);
  pr_node master, sentinel;
  const char *mextra[] = {"--tls-port",
                          tport,
                          "--tls-cert-file",
                          cert,
                          "--tls-key-file",
                          key,
                          "--tls-ca-cert-file",
                          ca,
                          "--tls-auth-clients",
                          "no",
                          NULL};
  if (pr_start_node(&master, "st-master", mextra) != 0) {
    CHECK_MSG(0, "could not start the master");
    return test_report("test_sentinel_tls");
  }
  memset(&sentinel, 0, sizeof sentinel);
  CHECK_EQ(pr_mkdir(sentinel.dir, sizeof sentinel.dir, "st-sentinel"), 0);
  sentinel.port = pr_free_port();
  char conf[300];
  snprintf(conf, sizeof conf, "%s/sentinel.conf", sentinel.dir);
  FILE *f = fopen(conf, "w");
  CHECK(f != NULL);
  if (!f) return test_report("test_sentinel_tls");
  fprintf(f,
          "bind 127.0.0.1\nport 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\n"
          "tls-ca-cert-file %s\ntls-auth-clients no\ntls-replication yes\ndir %s\n"
          "logfile %s/sentinel.log\nsentinel monitor " GROUP " 127.0.0.1 %d 1\n",
          sentinel.port, cert, key, ca, sentinel.dir, sentinel.dir, mtls);
  fclose(f);
  const char *argv[] = {"redis-server", conf, "--sentinel", NULL};
  sentinel.pid = pr_spawn((char *const *)argv, sentinel.dir, true);
  CHECK(pr_wait_listening(&sentinel, 5000) == 1);

  char url[600];
  snprintf(url, sizeof url, "rediss+sentinel://127.0.0.1:%d/" GROUP "?tls_ca=%s", sentinel.port,
           ca);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  CHECK_STR(rcache_mode(c), "sentinel");
  rcache_health h;
  rcache_status s = RCACHE_EUNAVAILABLE;
  for (int64_t t0 = pr_now_ms(); pr_now_ms() - t0 < 5000; pr_sleep_ms(50))
    if ((s = rcache_health_check(c, &h)) == RCACHE_OK) break;
  CHECK_MSG(s == RCACHE_OK, "%s", h.error);
  CHECK_EQ(rcache_set(c, "over-tls", "yes", 3, 60), RCACHE_OK);
  CHECK(pr_reply_has(pr_cmd(master.port, "GET over-tls"), "yes")); /* on the master */
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache_get(c, "over-tls", &v), RCACHE_OK);
  CHECK(v.len == 3 && memcmp(v.data, "yes", 3) == 0);
  rcache_value_free(&v);
  rcache_close(c);

  /* a CA that signed neither: the sentinel is refused, the handle stays in fallback */
  snprintf(url, sizeof url,
           "rediss+sentinel://127.0.0.1:%d/" GROUP "?tls_ca=%s/rogue-ca.pem&connect_timeout_ms=300",
           sentinel.port, dir);
  c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  CHECK_EQ(rcache_get(c, "over-tls", &v), RCACHE_EUNAVAILABLE);
  s = rcache_health_check(c, &h);
  CHECK_MSG(s != RCACHE_OK && (strstr(h.error, "certificate") || strstr(h.error, "TLS")), "%d %s",
            s, h.error);
  rcache_close(c);
  return test_report("test_sentinel_tls");
}
