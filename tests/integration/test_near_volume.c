/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * 1,000,000 invalidations through the near cache's listener with no flush (issue 21): the
 * listener's reply budget was never reset, so against a legitimate Redis it failed with
 * "Out of memory" every ~65,000 invalidations, flushed the near cache and reconnected.
 *
 * Against $RCACHE_TEST_URL_TCP: the handle reads KEYS keys (MGET: Redis now tracks them on
 * the handle's data connections), a raw connection overwrites them all in one pipeline (one
 * invalidation each, after which Redis forgets them), ROUNDS times; then near_invalidations
 * must reach 1,000,000 while near_flushes stays where it was after open.
 */
#include <hiredis/hiredis.h>
#include <unistd.h>

#include "rcache/rcache.h"
#include "test.h"

#define KEYS 10000
#define ROUNDS 100

static char names[KEYS][32];
static const char *keys[KEYS];
static rcache_value vals[KEYS];
static rcache_status sts[KEYS];

/* Overwrites every key (with the handle's prefix) in one pipeline. */
static bool overwrite(redisContext *r, const char *prefix) {
  for (int i = 0; i < KEYS; i++)
    redisAppendCommand(r, "SET %s%s v", prefix, names[i]);
  bool ok = true;
  for (int i = 0; i < KEYS; i++) {
    redisReply *rep = NULL;
    if (redisGetReply(r, (void **)&rep) != REDIS_OK || !rep || rep->type == REDIS_REPLY_ERROR)
      ok = false;
    if (rep) freeReplyObject(rep);
  }
  return ok;
}

int main(void) {
  const char *url = test_env_url("RCACHE_TEST_URL_TCP");
  const char *p = getenv("RCACHE_TEST_PORT");
  redisContext *r = redisConnect("127.0.0.1", p ? atoi(p) : 0);
  if (!r || r->err) {
    CHECK_MSG(false, "raw connection to port %s failed", p ? p : "(unset)");
    return test_report("test_near_volume");
  }
  char prefix[64];
  snprintf(prefix, sizeof prefix, "nearvol:%d:", (int)getpid());
  for (int i = 0; i < KEYS; i++) {
    snprintf(names[i], sizeof names[i], "k%d", i);
    keys[i] = names[i];
  }
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = prefix;
  o.near_cache_bytes = 4u << 20;
  o.command_timeout_ms = 5000;
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  if (!c) return test_report("test_near_volume");
  CHECK(overwrite(r, prefix));
  rcache_stats st;
  rcache_get_stats(c, &st);
  uint64_t flushes0 = st.near_flushes, inv0 = st.near_invalidations;

  for (int round = 0; round < ROUNDS; round++) {
    rcache_status s = rcache_get_many(c, keys, KEYS, vals, sts);
    CHECK_MSG(s == RCACHE_OK, "round %d: %s %s", round, rcache_strerror(s), rcache_errmsg(c));
    for (int i = 0; i < KEYS; i++)
      rcache_value_free(&vals[i]);
    if (!overwrite(r, prefix)) {
      CHECK_MSG(false, "round %d: overwrite failed", round);
      break;
    }
  }
  /* the last invalidations are in flight: wait for them (at most 30 s) */
  for (int i = 0; i < 3000; i++) {
    rcache_get_stats(c, &st);
    if (st.near_invalidations - inv0 >= (uint64_t)KEYS * ROUNDS) break;
    usleep(10000);
  }
  rcache_get_stats(c, &st);
  printf("%llu invalidations, %llu flushes\n", (unsigned long long)(st.near_invalidations - inv0),
         (unsigned long long)(st.near_flushes - flushes0));
  CHECK(st.near_invalidations - inv0 >= (uint64_t)KEYS * ROUNDS);
  CHECK_EQ(st.near_flushes, flushes0);

  CHECK_EQ(rcache_flush(c), RCACHE_OK);
  rcache_close(c);
  redisFree(r);
  return test_report("test_near_volume");
}
