/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The near cache when Redis goes away (issue 6, item 4), against a redis-server this test
 * starts itself (tests/support/redis_proc.h) on 127.0.0.1:
 *  - a server that stops answering (SIGSTOP): the listener's PING gets no reply within
 *    command_timeout_ms, the near cache is flushed and serves nothing, with no call made;
 *  - a server that dies: flushed at once, reads answer RCACHE_EUNAVAILABLE (never a near
 *    value); after a restart on the same port the near cache serves again, fresh values.
 */
#include <stdint.h>
#include <time.h>

#include "await.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

static rp_server srv;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void raw_set(const char *k, const char *v) {
  CHECK(rp_do(&srv, "SET %s %s", k, v));
}

static rcache_stats stats(rcache *c) {
  rcache_stats s;
  rcache_get_stats(c, &s);
  return s;
}

/* Reads until a read is a near hit giving want; false after AWAIT_MS. */
static bool near_hit(rcache *c, const char *key, const char *want) {
  for (int64_t t0 = rp_now_ms(); rp_now_ms() - t0 < AWAIT_MS;) {
    uint64_t h = stats(c).near_hits;
    rcache_value v = {NULL, 0};
    bool ok = rcache_get(c, key, &v) == RCACHE_OK && strcmp(v.data, want) == 0;
    rcache_value_free(&v);
    if (ok && stats(c).near_hits > h) return true;
    rp_sleep_ms(5);
  }
  return false;
}

static rcache *open_near(void) {
  char url[64];
  rp_url(&srv, url, sizeof url, NULL);
  rcache_options o;
  rcache_options_init(&o);
  o.near_cache_bytes = 1 << 20;
  o.command_timeout_ms = 200;
  o.connect_timeout_ms = 200;
  o.reconnect_min_ms = 10;
  o.reconnect_max_ms = 100;
  o.log_level = RCACHE_LOG_ERROR;
  rcache *c = NULL;
  CHECK(rcache_open(&c, url, &o) == RCACHE_OK);
  if (!c) exit(1);
  return c;
}

static void test_stopped(void) {
  rcache *c = open_near();
  raw_set("k", "1");
  CHECK(near_hit(c, "k", "1"));
  uint64_t fl = stats(c).near_flushes;
  rp_pause(&srv);
  /* no call on the handle: only the listener's PING (every 500 ms, 200 ms to answer) can
   * notice */
  rp_sleep_ms(1200);
  CHECK_MSG(stats(c).near_flushes > fl, "flushes %llu -> %llu", (unsigned long long)fl,
            (unsigned long long)stats(c).near_flushes);
  rcache_value v = {NULL, 0};
  uint64_t hits = stats(c).near_hits;
  int64_t t0 = now_us();
  rcache_status s = rcache_get(c, "k", &v);
  int64_t took = now_us() - t0;
  CHECK_EQ(s, RCACHE_EUNAVAILABLE); /* not the near value */
  CHECK_EQ(stats(c).near_hits, hits);
  CHECK_MSG(took < 200000 + 300000, "get took %lld us", (long long)took);
  rcache_value_free(&v);
  rp_resume(&srv);
  raw_set("k", "2");
  CHECK(near_hit(c, "k", "2")); /* back, with the value of now */
  rcache_close(c);
}

static void test_killed(void) {
  rcache *c = open_near();
  raw_set("k", "3");
  CHECK(near_hit(c, "k", "3"));
  uint64_t fl = stats(c).near_flushes;
  rp_kill(&srv);
  int64_t t0 = now_us();
  while (stats(c).near_flushes == fl && now_us() - t0 < 1000000)
    rp_sleep_ms(1);
  CHECK(stats(c).near_flushes > fl);
  CHECK_MSG(now_us() - t0 < 100000, "flushed %lld us after the server died",
            (long long)(now_us() - t0));
  for (int i = 0; i < 20; i++) { /* while it is down: never a near value */
    rcache_value v = {NULL, 0};
    CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
    rcache_value_free(&v);
    rp_sleep_ms(10);
  }
  CHECK(rp_launch(&srv, false) == 0); /* an empty server on the same port */
  raw_set("k", "4");
  CHECK(near_hit(c, "k", "4"));
  rcache_stats s = stats(c);
  CHECK(s.available);
  rcache_close(c);
}

int main(void) {
  if (rp_start(&srv, &(rp_opts){.tag = "near-outage"}) != 0) {
    CHECK_MSG(false, "could not start a private redis-server");
    return test_report("test_near_outage");
  }
  test_stopped();
  test_killed();
  rp_destroy(&srv);
  return test_report("test_near_outage");
}
