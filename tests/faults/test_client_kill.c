/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario 4: the server closes the library's connections itself (CLIENT KILL TYPE
 * normal) every 100 ms for 4 s, under load. The server stays up, so the cache must keep
 * being used throughout: dead pooled connections are replaced, calls caught mid-flight
 * fall back within their deadline, no reply is ever handed to the wrong call, and any
 * outage the breaker declares is logged once and closed once (never a line per call).
 */
#include "scenario.h"

#define KILL_EVERY_MS 100
#define KILL_FOR_MS 4000
#define WINDOW_MS 500

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_client_kill");
  if (rp_start(&x.s, NULL) != 0) {
    CHECK(!"server start");
    return test_report(x.name);
  }
  rp_url(&x.s, x.url, sizeof x.url, NULL);
  if (!sc_open(&x, NULL) || !(x.l = load_start(x.c, "ckill"))) {
    CHECK(x.c && x.l);
    sc_end(&x);
    return test_report(x.name);
  }
  sc_sleep_ms(800);
  sc_print_stats(&x, "healthy");

  redisContext *killer = rp_connect(&x.s, 1000);
  CHECK(killer != NULL);
  load_counts a, b, d;
  rcache_stats s0, s1;
  rcache_get_stats(x.c, &s0);
  load_snapshot(x.l, &a);
  int64_t t_start = load_now_us();
  long long killed = 0, rounds = 0;
  while (killer && load_now_us() - t_start < (int64_t)KILL_FOR_MS * 1000) {
    redisReply *r = redisCommand(killer, "CLIENT KILL TYPE normal");
    CHECK(r && r->type == REDIS_REPLY_INTEGER);
    if (r && r->type == REDIS_REPLY_INTEGER) killed += r->integer;
    if (r) freeReplyObject(r);
    rounds++;
    sc_sleep_ms(KILL_EVERY_MS);
  }
  int64_t t_end = load_now_us();
  if (killer) redisFree(killer);
  load_snapshot(x.l, &b);
  load_diff(&a, &b, &d);
  load_print("connections killed", &d);
  sc_print_stats(&x, "connections killed");
  printf("[%6.2f s] %lld CLIENT KILL rounds closed %lld connections\n", sc_elapsed(&x), rounds,
         killed);
  CHECK_MSG(killed >= rounds / 2, "only %lld connections killed in %lld rounds", killed, rounds);
  rcache_get_stats(x.c, &s1);
  CHECK(s1.errors > s0.errors || s1.fallbacks > s0.fallbacks); /* the kills were felt */

  /* the cache kept working: every half second had calls that used it */
  int empty = 0;
  for (int64_t w = t_start; w + (int64_t)WINDOW_MS * 1000 <= t_end;
       w += (int64_t)WINDOW_MS * 1000) {
    uint64_t ok = load_remote_ok_between(x.l, w, w + (int64_t)WINDOW_MS * 1000);
    uint64_t fb = load_fallbacks_between(x.l, w, w + (int64_t)WINDOW_MS * 1000);
    printf("    window +%4lld ms: used the cache %llu, fell back %llu\n",
           (long long)((w - t_start) / 1000), (unsigned long long)ok, (unsigned long long)fb);
    if (ok == 0) empty++;
  }
  CHECK_MSG(empty == 0, "%d windows of %d ms without a single call using the cache", empty,
            WINDOW_MS);
  CHECK_MSG(d.remote_ok > d.calls[OP_GET] / 4, "the cache was barely used while up");

  /* after the kills: back to normal */
  sc_check_recovered(&x, t_end, "kills stopped");
  sc_sleep_ms(500);
  load_snapshot(x.l, &a);
  sc_sleep_ms(500);
  load_snapshot(x.l, &b);
  load_diff(&a, &b, &d);
  CHECK(d.remote_ok > 0);
  CHECK_EQ(sc_unavail(&d, OP_GET), 0);

  /* each outage the breaker declared was logged once and its end once */
  int downs = logcap_count(&x.log, LOG_DOWN, 0), ups = logcap_count(&x.log, LOG_UP, 0);
  rcache_get_stats(x.c, &s1);
  printf("[%6.2f s] breaker opened %llu times: %d \"%s\" and %d \"%s\" lines\n", sc_elapsed(&x),
         (unsigned long long)s1.breaker_opens, downs, LOG_DOWN, ups, LOG_UP);
  CHECK_EQ(downs, (long long)s1.breaker_opens);
  CHECK_EQ(ups, downs);
  CHECK_MSG(downs <= rounds, "%d outages logged for %lld kill rounds", downs, rounds);
  CHECK_EQ(logcap_total(&x.log), downs + ups);
  sc_end(&x);
  return test_report(x.name);
}
