/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario 1: the server is down when the handle is opened, then started.
 * rcache_open must succeed at once (its first connect is made in the background, and opens
 * the breaker when refused); every call answers by the fallback
 * rules without waiting (the breaker is open: no connect per call); the prober connects
 * in the background once the server is there, and the cache is used again within
 * reconnect_max_ms + 1 s. rate_limit fails open, or closed when configured.
 */
#include "scenario.h"

#define PASSWORD "down-at-open-pw-Zq8"

static void fail_closed(rcache_options *o) {
  o->rate_limit_fail_closed = true;
}

/* With the breaker open a call is one atomic load: time many from one thread. */
static void check_fast_fail(scen *x) {
  const int n = 20000;
  rcache_value v;
  int unavailable = 0;
  int64_t t = load_now_us();
  for (int i = 0; i < n; i++) {
    if (rcache_get(x->c, "fast", &v) == RCACHE_EUNAVAILABLE) unavailable++;
  }
  double us = (double)(load_now_us() - t) / n;
  printf("[%6.2f s] open breaker: %.3f us per get (%d/%d unavailable)\n", sc_elapsed(x), us,
         unavailable, n);
  CHECK_EQ(unavailable, n);
  /* "well under a microsecond" in a plain build; generous for sanitizers and a busy box:
   * a connect attempt or a wait per call would cost far more */
  CHECK_MSG(us < 50.0, "a call with the breaker open took %.3f us on average", us);
}

static void check_rate_limit(scen *x) {
  bool allowed = false;
  int64_t count = 99;
  CHECK_EQ(rcache_rate_limit(x->c, "rl", 10, 60, &allowed, &count), RCACHE_EUNAVAILABLE);
  CHECK(allowed == true && count == 0); /* fails open by default */
  rcache *closed = NULL;
  rcache_options o;
  logcap log; /* its own: this handle's outage is its own line */
  logcap_init(&log);
  load_options(&o, &log);
  fail_closed(&o);
  CHECK(rcache_open(&closed, x->url, &o) == RCACHE_OK);
  if (!closed) {
    logcap_destroy(&log);
    return;
  }
  /* its first contact, made in the background, is refused and logs the outage (one line);
   * a health check waits for it, so that rcache_close does not abandon it first */
  rcache_health h;
  CHECK(rcache_health_check(closed, &h) != RCACHE_OK);
  allowed = true;
  count = 99;
  CHECK_EQ(rcache_rate_limit(closed, "rl", 10, 60, &allowed, &count), RCACHE_EUNAVAILABLE);
  CHECK(allowed == false && count == 0);
  int64_t n = 5;
  CHECK_EQ(rcache_incr(closed, "n", 1, &n), RCACHE_EUNAVAILABLE);
  CHECK_EQ(n, 0); /* never a made-up count */
  rcache_close(closed);
  CHECK_EQ(logcap_count(&log, LOG_DOWN, 0), 1);
  CHECK_EQ(logcap_count(&log, PASSWORD, 0), 0);
  logcap_destroy(&log);
}

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_down_at_open");
  x.password = PASSWORD;
  CHECK(rp_init(&x.s, &(rp_opts){.password = PASSWORD}) ==
        0); /* port and directory, nothing listening */
  rp_url(&x.s, x.url, sizeof x.url, NULL);
  if (!sc_open(&x, NULL)) {
    sc_end(&x);
    return test_report(x.name);
  }

  /* down from the start: the first contact, made in the background, was refused (a
   * health check waits for it) and opened the breaker */
  sc_check_health(&x, false, "down at open");
  rcache_stats st;
  rcache_get_stats(x.c, &st);
  CHECK(!st.available);
  CHECK(st.breaker_state != RCACHE_BREAKER_CLOSED);
  check_fast_fail(&x);
  check_rate_limit(&x);

  x.l = load_start(x.c, "open");
  CHECK(x.l != NULL);
  if (!x.l) {
    sc_end(&x);
    return test_report(x.name);
  }
  load_counts a, b, d;
  load_snapshot(x.l, &a);
  sc_sleep_ms(2500);
  load_snapshot(x.l, &b);
  load_diff(&a, &b, &d);
  load_print("server down", &d);
  sc_print_stats(&x, "server down");
  sc_check_fallback_phase(&d, "server down");
  CHECK_MSG(d.remote_ok == 0, "%llu calls used a cache that is not there",
            (unsigned long long)d.remote_ok);
  rcache_get_stats(x.c, &st);
  CHECK(!st.available);
  CHECK(st.fallbacks > 0);
  CHECK(st.errors > 0);
  CHECK(st.breaker_opens >= 1);
  /* exponential backoff from 50 ms to 500 ms with full jitter: about a dozen probes in
   * 2.5 s; far more would be hammering a server that is down */
  CHECK_MSG(st.reconnect_attempts >= 3 && st.reconnect_attempts <= 40,
            "%llu reconnect attempts in 2.5 s", (unsigned long long)st.reconnect_attempts);
  sc_check_health(&x, false, "still down");
  sc_check_log(&x, 1, 0, 0, "while down");

  /* the server arrives */
  CHECK(rp_launch(&x.s, false) == 0);
  int64_t up = load_now_us();
  sc_check_recovered(&x, up, "server started");
  sc_sleep_ms(1000);
  load_snapshot(x.l, &a);
  sc_sleep_ms(1000);
  load_snapshot(x.l, &b);
  load_diff(&a, &b, &d);
  load_print("server up", &d);
  sc_print_stats(&x, "server up");
  CHECK(d.remote_ok > 0);
  CHECK_MSG(sc_unavail(&d, OP_GET) == 0, "%llu gets fell back with the server up",
            (unsigned long long)sc_unavail(&d, OP_GET));
  rcache_get_stats(x.c, &st);
  CHECK(st.available && st.breaker_state == RCACHE_BREAKER_CLOSED);
  CHECK(st.hits > 0 && st.sets > 0);
  CHECK(st.latency_p50_ms > 0 && st.latency_p99_ms >= st.latency_p50_ms);
  sc_check_log(&x, 1, 1, 0, "whole run");
  /* the line names the server, with the password masked */
  char where[64];
  snprintf(where, sizeof where, "127.0.0.1:%d", x.s.port);
  CHECK(logcap_count(&x.log, where, 0) >= 1);
  sc_end(&x);
  return test_report(x.name);
}
