/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The near cache on the shared cluster: it serves (hits counted) for keys on every master,
 * and each master's invalidations reach it: a key changed behind its back (raw SET on the
 * owning master) is seen by the next reads within a bounded time, on every master.
 * rcache_open returns before its first contact (which finds the cluster) and the masters'
 * listeners subscribe in their own threads: the test waits for each state it asserts on
 * (await.h), bounded by AWAIT_MS.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "await.h"
#include "backends/slot.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

#define NKEYS 30

static int slot_port[RCACHE__SLOTS];

static bool load_slots(int port) {
  redisReply *r = rp_cmd(port, "CLUSTER SLOTS");
  if (!r || r->type != REDIS_REPLY_ARRAY) {
    if (r) freeReplyObject(r);
    return false;
  }
  for (size_t j = 0; j < r->elements; j++) {
    redisReply *e = r->element[j];
    for (long long s = e->element[0]->integer; s <= e->element[1]->integer; s++)
      slot_port[s] = (int)e->element[2]->element[1]->integer;
  }
  freeReplyObject(r);
  return true;
}

int main(void) {
  const char *url = test_env_url("RCACHE_TEST_URL_CLUSTER");
  int port = atoi(strrchr(url, ':') + 1);
  CHECK(load_slots(port));
  char prefix[64];
  snprintf(prefix, sizeof prefix, "tcn%d:", (int)getpid());
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = prefix;
  o.near_cache_bytes = 4u << 20;
  /* a loaded machine's slow replies are not outages: a listener whose PING times out is
   * replaced and the table flushed, as documented, which is not what this test is about */
  o.connect_timeout_ms = AWAIT_MS;
  o.command_timeout_ms = AWAIT_MS;
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  rcache_health h;
  rcache_status hs = await_healthy(c, &h, AWAIT_MS); /* it finds the cluster, in the background */
  CHECK_MSG(hs == RCACHE_OK, "not healthy within %d ms: %s", AWAIT_MS, h.error);
  CHECK_STR(rcache_mode(c), "cluster");

  char k[64], full[128];
  int masters_seen[3] = {0}, nm = 0;
  for (int i = 0; i < NKEYS; i++) {
    snprintf(k, sizeof k, "near:%d", i);
    snprintf(full, sizeof full, "%s%s", prefix, k);
    int p = slot_port[rcache__slot(full, strlen(full))];
    bool seen = false;
    for (int j = 0; j < nm; j++)
      seen = seen || masters_seen[j] == p;
    if (!seen && nm < 3) masters_seen[nm++] = p;
    CHECK_EQ(rcache_set(c, k, "one", 3, 300), RCACHE_OK);
    rcache_value got = {NULL, 0};
    CHECK_EQ(rcache_get(c, k, &got), RCACHE_OK); /* remote, fills the near cache */
    rcache_value_free(&got);
  }
  CHECK_EQ(nm, 3);
  /* the near cache serves once every master's listener is subscribed */
  CHECK_MSG(await_near(c, "near:0", AWAIT_MS), "the near cache did not serve within %d ms",
            AWAIT_MS);
  /* every key's second read is a near hit. A pass during which the table was flushed (a
   * listener or a connection lost: the documented reaction) proves nothing and is made
   * again, within the bound */
  uint64_t hits = 0;
  bool clean = false;
  for (int64_t t0 = rp_now_ms(); !clean && rp_now_ms() - t0 < AWAIT_MS;) {
    rcache_stats start, before, after;
    rcache_get_stats(c, &start);
    for (int i = 0; i < NKEYS; i++) { /* the first read of the pass fills the near cache */
      snprintf(k, sizeof k, "near:%d", i);
      rcache_value got = {NULL, 0};
      CHECK_EQ(rcache_get(c, k, &got), RCACHE_OK);
      rcache_value_free(&got);
    }
    rcache_get_stats(c, &before);
    for (int i = 0; i < NKEYS; i++) {
      snprintf(k, sizeof k, "near:%d", i);
      rcache_value got = {NULL, 0};
      CHECK_EQ(rcache_get(c, k, &got), RCACHE_OK);
      CHECK(got.len == 3 && memcmp(got.data, "one", 3) == 0);
      rcache_value_free(&got);
    }
    rcache_get_stats(c, &after);
    hits = after.near_hits - before.near_hits;
    clean = after.near_flushes == start.near_flushes;
    if (!clean) printf("the near table was flushed during a pass: again\n");
  }
  printf("near hits for %d keys on 3 masters: %llu\n", NKEYS, (unsigned long long)hits);
  CHECK_MSG(clean, "the near table was flushed during every pass for %d ms", AWAIT_MS);
  CHECK_EQ(hits, NKEYS);

  /* changed behind rcache's back on each owning master: every key seen new, soon */
  for (int i = 0; i < NKEYS; i++) {
    snprintf(full, sizeof full, "%snear:%d", prefix, i);
    CHECK(rp_ok(rp_cmd(slot_port[rcache__slot(full, strlen(full))], "SET %s two", full)));
  }
  int64_t t0 = rp_now_ms();
  int fresh = 0;
  while (rp_now_ms() - t0 < AWAIT_MS) {
    fresh = 0;
    for (int i = 0; i < NKEYS; i++) {
      snprintf(k, sizeof k, "near:%d", i);
      rcache_value got = {NULL, 0};
      if (rcache_get(c, k, &got) == RCACHE_OK && got.len == 3 && memcmp(got.data, "two", 3) == 0)
        fresh++;
      rcache_value_free(&got);
    }
    if (fresh == NKEYS) break;
    rp_sleep_ms(5);
  }
  printf("all %d keys seen changed after %lld ms\n", fresh, (long long)(rp_now_ms() - t0));
  CHECK_EQ(fresh, NKEYS);
  CHECK_EQ(rcache_flush(c), RCACHE_OK);
  rcache_close(c);
  return test_report("test_cluster_near");
}
