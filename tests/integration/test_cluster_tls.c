/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Redis Cluster over TLS (rediss://), on a private 3-master cluster started here with the
 * test certificates of scripts/servers.d/10-tls.sh: TLS ports, TLS cluster bus. rcache
 * detects the cluster through the TLS seed, takes each master's TLS port from CLUSTER
 * SHARDS, verifies every node's certificate (issued for 127.0.0.1 by the test CA), and the
 * keys land on their masters. A CA that did not sign the nodes' certificates is refused.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "await.h"
#include "backends/slot.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

/* rcache_open returns before its first contact with the server, which asks whether it is a
 * cluster node; a health check waits for that contact, and asks again if it could not ask
 * (on a loaded machine a connect can time out): healthy means the cluster was found. */
static void wait_first_contact(rcache *c) {
  rcache_health h;
  rcache_status s = await_healthy(c, &h, AWAIT_MS);
  CHECK_MSG(s == RCACHE_OK, "not healthy within %d ms: %s", AWAIT_MS, h.error);
}

int main(void) {
  const char *dir = test_env_url("RCACHE_TEST_TLS_DIR");
  rp_cluster cl;
  if (rp_cluster_start(&cl, 3, 0, 2000, dir) != 0) {
    CHECK_MSG(0, "could not start the private TLS cluster");
    return test_report("test_cluster_tls");
  }
  char url[512];
  snprintf(url, sizeof url, "rediss://127.0.0.1:%d?tls_ca=%s/ca.pem", cl.node[0].tls_port, dir);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  wait_first_contact(c); /* it finds the cluster, in the background */
  CHECK_STR(rcache_mode(c), "cluster");
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);

  char k[64], v[64];
  int stored = 0, on_master[3] = {0};
  for (int i = 0; i < 120; i++) {
    snprintf(k, sizeof k, "tls:%d", i);
    snprintf(v, sizeof v, "v%d", i);
    CHECK_EQ(rcache_set(c, k, v, strlen(v), 60), RCACHE_OK);
    int owner = rp_cluster_owner(&cl, rcache__slot(k, strlen(k)));
    CHECK(owner >= 0 && owner < 3);
    if (owner >= 0 && owner < 3) {
      on_master[owner]++;
      /* raw, on the owner's plain port: the key is there */
      if (rp_reply_has(rp_cmd(cl.node[owner].port, "GET %s", k), v)) stored++;
    }
  }
  CHECK_EQ(stored, 120);
  CHECK(on_master[0] > 0 && on_master[1] > 0 && on_master[2] > 0);
  const char *keys[3] = {"tls:1", "tls:2", "tls:3"};
  rcache_value vals[3];
  rcache_status st[3];
  CHECK_EQ(rcache_get_many(c, keys, 3, vals, st), RCACHE_OK);
  for (int i = 0; i < 3; i++) {
    CHECK_EQ(st[i], RCACHE_OK);
    rcache_value_free(&vals[i]);
  }
  uint64_t n = 0;
  CHECK_EQ(rcache_delete_prefix(c, "tls:", &n), RCACHE_OK);
  CHECK_EQ(n, 120);
  rcache_close(c);

  /* an untrusted CA: no node is usable, the handle stays in fallback mode */
  snprintf(url, sizeof url, "rediss://127.0.0.1:%d?tls_ca=%s/rogue-ca.pem&connect_timeout_ms=300",
           cl.node[0].tls_port, dir);
  c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  rcache_value x = {NULL, 0};
  CHECK_EQ(rcache_get(c, "tls:1", &x), RCACHE_EUNAVAILABLE);
  CHECK(rcache_health_check(c, &h) != RCACHE_OK);
  rcache_close(c);
  return test_report("test_cluster_tls");
}
