/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Sentinel over TLS (rediss+sentinel://), on private servers started here with the test
 * certificates of scripts/servers.d/10-tls.sh: a master with a TLS port and a sentinel that
 * listens on TLS only and monitors the master over TLS. rcache reaches the sentinel and the
 * master over TLS, verifying both certificates; with an untrusted CA it stays in fallback.
 * Deadlines are generous (AWAIT_MS): the handshakes must reach a verdict on a loaded
 * machine, and the test waits for the state it asserts on (await.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "await.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

#define GROUP "tls-group"

int main(void) {
  const char *dir = test_env_url("RCACHE_TEST_TLS_DIR");
  char ca[300], conf[400];
  snprintf(ca, sizeof ca, "%s/ca.pem", dir);
  rp_server master, sentinel;
  if (rp_start(&master, &(rp_opts){.tag = "st-master", .tls_dir = dir}) != 0) {
    CHECK_MSG(0, "could not start the master");
    return test_report("test_sentinel_tls");
  }
  /* TLS only, and the master monitored over TLS */
  snprintf(conf, sizeof conf, "tls-replication yes\nsentinel monitor " GROUP " 127.0.0.1 %d 1\n",
           master.tls_port);
  CHECK(rp_start(&sentinel, &(rp_opts){.tag = "st-sentinel",
                                       .port = RP_NO_TCP,
                                       .tls_dir = dir,
                                       .sentinel = true,
                                       .conf = conf}) == 0);

  char url[600];
  snprintf(url, sizeof url,
           "rediss+sentinel://127.0.0.1:%d/" GROUP
           "?tls_ca=%s&connect_timeout_ms=%d&command_timeout_ms=%d",
           sentinel.tls_port, ca, AWAIT_MS, AWAIT_MS);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  CHECK_STR(rcache_mode(c), "sentinel");
  rcache_health h;
  /* the first contact (sentinel asked, master connected, both over TLS) is in the background */
  rcache_status s = await_healthy(c, &h, AWAIT_MS);
  CHECK_MSG(s == RCACHE_OK, "not healthy within %d ms: %s", AWAIT_MS, h.error);
  CHECK_EQ(rcache_set(c, "over-tls", "yes", 3, 60), RCACHE_OK);
  CHECK(rp_reply_has(rp_cmd(master.port, "GET over-tls"), "yes")); /* on the master */
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache_get(c, "over-tls", &v), RCACHE_OK);
  CHECK(v.len == 3 && memcmp(v.data, "yes", 3) == 0);
  rcache_value_free(&v);
  rcache_close(c);

  /* a CA that signed neither: the sentinel is refused, the handle stays in fallback */
  snprintf(url, sizeof url,
           "rediss+sentinel://127.0.0.1:%d/" GROUP "?tls_ca=%s/rogue-ca.pem&connect_timeout_ms=%d",
           sentinel.tls_port, dir, AWAIT_MS);
  c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  CHECK_EQ(rcache_get(c, "over-tls", &v), RCACHE_EUNAVAILABLE);
  s = rcache_health_check(c, &h);
  CHECK_MSG(s != RCACHE_OK && (strstr(h.error, "certificate") || strstr(h.error, "TLS")), "%d %s",
            s, h.error);
  rcache_close(c);
  return test_report("test_sentinel_tls");
}
