/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Cluster detection after open (issue 15, point 3), on a private 3-master cluster:
 *  a) a one-seed URL whose seed is stalled (SIGSTOP) during rcache_open opens as
 *     standalone; once the seed resumes, every key (on every master) works within 3 s, the
 *     handle says "cluster", and no get ever answers RCACHE_OK with a wrong value (near
 *     cache off and on);
 *  b) a handle that stays standalone on a cluster node (its ACL user may not run INFO, so
 *     it cannot tell) gets MOVED for keys of other masters: rcache_health_check is not
 *     healthy and says why.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "await.h"
#include "backends/slot.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

#define NKEYS 30

static rp_cluster cl;

/* set + get of every key: how many were right; *wrong counts values not ours as OK. */
static int round_trip(rcache *c, int *wrong) {
  int ok = 0;
  for (int i = 0; i < NKEYS; i++) {
    char key[32], val[32];
    snprintf(key, sizeof key, "detect:%d", i);
    snprintf(val, sizeof val, "value-%d", i);
    rcache_status s = rcache_set(c, key, val, strlen(val), 300);
    rcache_value v = {0};
    rcache_status g = rcache_get(c, key, &v);
    if (g == RCACHE_OK && v.len == strlen(val) && memcmp(v.data, val, v.len) == 0)
      ok += s == RCACHE_OK;
    else if (g == RCACHE_OK)
      (*wrong)++;
    rcache_value_free(&v);
  }
  return ok;
}

static void stalled_seed(bool near) {
  rcache_options o;
  rcache_options_init(&o);
  if (near) o.near_cache_bytes = 1 << 20;
  o.connect_timeout_ms = 200;
  o.command_timeout_ms = 500;
  o.reconnect_max_ms = 1000;
  char url[160];
  rp_cluster_url(&cl, 0, url, sizeof url, NULL);
  kill(cl.node[0].pid, SIGSTOP);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (!c) {
    kill(cl.node[0].pid, SIGCONT);
    return;
  }
  CHECK_STR(rcache_mode(c), "standalone"); /* it could not be asked */
  rp_sleep_ms(500);
  kill(cl.node[0].pid, SIGCONT);
  int64_t t0 = rp_now_ms(), took = -1;
  int wrong = 0, last = 0, unhealthy_moved = 0;
  while (took < 0 && rp_now_ms() - t0 < 6000) {
    rcache_health h;
    rcache_health_check(c, &h);
    if (h.healthy && strcmp(h.mode, "standalone") == 0 && round_trip(c, &wrong) < NKEYS)
      unhealthy_moved++; /* healthy, yet keys are not answered */
    last = round_trip(c, &wrong);
    if (last == NKEYS)
      took = rp_now_ms() - t0;
    else
      rp_sleep_ms(20);
  }
  printf("stalled seed%s: every key right %lld ms after it resumed (mode %s)\n",
         near ? " (near cache on)" : "", (long long)took, rcache_mode(c));
  CHECK_MSG(took >= 0 && took <= 3000, "keys right after %lld ms (%d/%d at the end)",
            (long long)took, last, NKEYS);
  CHECK_EQ(wrong, 0);
  CHECK_EQ(unhealthy_moved, 0);
  CHECK_STR(rcache_mode(c), "cluster");
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  CHECK(h.healthy);
  rcache_close(c);
}

static void standalone_on_a_node(void) {
  for (int i = 0; i < cl.n; i++)
    CHECK(rp_ok(rp_cmd(cl.node[i].port, "ACL SETUSER noinfo on >noinfo-pw ~* +@all -info")));
  char url[160];
  snprintf(url, sizeof url, "redis://noinfo:noinfo-pw@127.0.0.1:%d", cl.node[0].port);
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_OK);
  if (!c) return;
  rcache_health h; /* healthy: its first contact, made in the background, could not ask INFO */
  rcache_status hs = await_healthy(c, &h, AWAIT_MS);
  CHECK_MSG(hs == RCACHE_OK, "not healthy within %d ms: %s", AWAIT_MS, h.error);
  CHECK_STR(rcache_mode(c), "standalone");
  int elsewhere = -1;
  for (int i = 0; i < 100 && elsewhere < 0; i++) {
    char key[32];
    snprintf(key, sizeof key, "detect:%d", i);
    if (rp_cluster_owner(&cl, rcache__slot(key, strlen(key))) != 0) elsewhere = i;
  }
  CHECK(elsewhere >= 0);
  char key[32];
  snprintf(key, sizeof key, "detect:%d", elsewhere);
  rcache_value v = {0};
  CHECK_EQ(rcache_get(c, key, &v), RCACHE_ESERVER); /* MOVED */
  rcache_value_free(&v);
  CHECK(rcache_health_check(c, &h) != RCACHE_OK);
  CHECK(!h.healthy);
  CHECK_MSG(strstr(h.error, "MOVED") != NULL, "health error: %s", h.error);
  printf("standalone on a cluster node: health \"%s\"\n", h.error);
  rcache_close(c);
}

int main(void) {
  if (rp_cluster_start(&cl, 3, 0, 15000, NULL) != 0) {
    CHECK_MSG(0, "could not start the private cluster");
    return test_report("test_cluster_detect");
  }
  stalled_seed(false);
  stalled_seed(true);
  standalone_on_a_node();
  return test_report("test_cluster_detect");
}
