/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario 5: a loopback TCP proxy between the library and the server (URL with a
 * password) misbehaves on demand, under load:
 *  a) black hole for 2.5 s: connections stay open, connects succeed, nothing comes back;
 *  b) half replies for 1.5 s: half of each reply, then the connection is closed;
 *  c) 50 ms of delay on every reply for 2 s: slow but within command_timeout_ms, so the
 *     cache stays in use and the latency percentiles show it;
 *  d) 400 ms of delay for 2 s: beyond command_timeout_ms, so calls time out and fall back.
 *  e) through a second proxy, one call in two failing (never two in a row): the breaker
 *     does not open on consecutive failures, and opens on the failure rate when that is
 *     configured.
 * Each outage (a, b, d): deadlines kept, fallbacks and breaker opens counted, one log line
 * each way, the cache used again within reconnect_max_ms + 1 s of the proxy passing again.
 */
#include "scenario.h"

#define PASSWORD "proxy-pw-Kx93"

static proxy *px;
static rcache *every; /* a handle without a breaker: sc_every_op() */

static void outage(scen *x, const char *what, proxy_mode m, int delay_ms, int for_ms,
                   bool expect_timeouts) {
  load_counts a, b, d;
  rcache_stats s0, s1;
  rcache_get_stats(x->c, &s0);
  load_snapshot(x->l, &a);
  uint64_t cut0 = proxy_cut(px);
  int64_t t0 = load_now_us();
  proxy_set_mode(px, m, delay_ms);
  int64_t ms = load_wait_available(x->c, false, t0, SC_CALL_MS);
  CHECK_MSG(ms >= 0, "%s: the breaker did not open within %d ms", what, SC_CALL_MS);
  printf("[%6.2f s] %s: breaker open after %lld ms\n", sc_elapsed(x), what, (long long)ms);
  if (m == PROXY_HALF) sc_every_op(x, every, what);
  if (m == PROXY_BLACKHOLE) {
    sc_open_during_fault(x, what);
    sc_close_mid_connect(x, what); /* the proxy accepts and never answers */
  }
  int half = for_ms / 2 - (int)((load_now_us() - t0) / 1000);
  if (half > 0) sc_sleep_ms(half);
  sc_check_health(x, false, what);
  int left = for_ms - (int)((load_now_us() - t0) / 1000);
  if (left > 0) sc_sleep_ms(left);
  load_snapshot(x->l, &b);
  load_diff(&a, &b, &d);
  load_print(what, &d);
  sc_print_stats(x, what);
  sc_check_fallback_phase(&d, what);
  rcache_get_stats(x->c, &s1);
  CHECK(s1.fallbacks > s0.fallbacks);
  CHECK_EQ(s1.breaker_opens, s0.breaker_opens + 1);
  CHECK(s1.reconnect_attempts > s0.reconnect_attempts);
  if (expect_timeouts) CHECK_MSG(s1.timeouts > s0.timeouts, "%s: no timeouts counted", what);
  if (m == PROXY_HALF) CHECK_MSG(proxy_cut(px) > cut0, "%s: no reply was cut", what);
  CHECK(!s1.available);
  sc_check_log(x, 1, 0, t0, what);

  proxy_set_mode(px, PROXY_PASS, 0);
  int64_t t_end = load_now_us();
  sc_check_recovered(x, t_end, what);
  sc_sleep_ms(300);
  sc_check_log(x, 1, 1, t0, what);
}

/* Slow but in time: the cache stays in use, nothing is declared unavailable. */
static void slow(scen *x) {
  load_counts a, b, d;
  rcache_stats s0, s1;
  rcache_get_stats(x->c, &s0);
  load_snapshot(x->l, &a);
  int64_t t0 = load_now_us();
  proxy_set_mode(px, PROXY_DELAY, 50);
  sc_sleep_ms(2000);
  load_snapshot(x->l, &b);
  load_diff(&a, &b, &d);
  load_print("50 ms delay", &d);
  sc_print_stats(x, "50 ms delay");
  rcache_get_stats(x->c, &s1);
  CHECK_MSG(d.remote_ok > 0, "the cache was not used with 50 ms of delay");
  CHECK_MSG(sc_unavail(&d, OP_GET) * 20 < d.calls[OP_GET],
            "%llu of %llu gets fell back with a 50 ms delay (command timeout %d ms)",
            (unsigned long long)sc_unavail(&d, OP_GET), (unsigned long long)d.calls[OP_GET],
            LOAD_COMMAND_TIMEOUT_MS);
  CHECK_EQ(s1.breaker_opens, s0.breaker_opens);
  sc_check_log(x, 0, 0, t0, "50 ms delay");
  CHECK_MSG(s1.latency_max_ms >= 50.0, "max %.2f ms does not show a 50 ms delay",
            s1.latency_max_ms);
  /* percentiles: a fresh handle whose every call went through the delay */
  rcache *fresh = NULL;
  rcache_options o;
  load_options(&o, NULL);
  CHECK(rcache_open(&fresh, x->url, &o) == RCACHE_OK);
  if (fresh) {
    rcache_value v;
    int ok = 0;
    for (int i = 0; i < 10; i++) {
      rcache_status st = rcache_get(fresh, "faults:proxy:k:1", &v);
      ok += st == RCACHE_OK || st == RCACHE_MISS;
      rcache_value_free(&v);
    }
    CHECK_EQ(ok, 10);
    rcache_stats fs;
    rcache_get_stats(fresh, &fs);
    printf("[%6.2f s] fresh handle through the delay: p50 %.2f p99 %.2f max %.2f ms\n",
           sc_elapsed(x), fs.latency_p50_ms, fs.latency_p99_ms, fs.latency_max_ms);
    CHECK_MSG(fs.latency_p50_ms >= 45.0 && fs.latency_p99_ms >= fs.latency_p50_ms,
              "p50 %.2f p99 %.2f ms do not show a 50 ms delay", fs.latency_p50_ms,
              fs.latency_p99_ms);
    rcache_close(fresh);
  }
  rcache_health h;
  CHECK_EQ(rcache_health_check(x->c, &h), RCACHE_OK);
  CHECK_MSG(h.latency_ms >= 45.0, "health latency %.2f ms through a 50 ms delay", h.latency_ms);
  proxy_set_mode(px, PROXY_PASS, 0);
  sc_sleep_ms(300);
}

static void rate_tweak(rcache_options *o, double rate) {
  o->pool_size = 1; /* one connection: calls alternate exactly as the proxy does */
  o->breaker_failures = 3;
  o->breaker_failure_rate = rate;
  o->breaker_window = 10;
}

/* 40 incr (not idempotent: never retried) through a proxy failing every other reply. */
static void flaky_run(scen *x, int port, double rate, rcache_stats *st, int *ok, int *unavail) {
  rcache_options o;
  logcap log;
  logcap_init(&log);
  load_options(&o, &log);
  rate_tweak(&o, rate);
  char url[300];
  snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d", PASSWORD, port);
  rcache *h = NULL;
  *ok = *unavail = 0;
  memset(st, 0, sizeof *st);
  CHECK(rcache_open(&h, url, &o) == RCACHE_OK);
  if (!h) return;
  /* the first contact (made in the background: a health check waits for it) and the
   * handle's first PING may themselves meet a dropped reply: start from a closed breaker */
  rcache_health hh;
  rcache_health_check(h, &hh);
  CHECK(load_wait_available(h, true, load_now_us(), SC_RECOVERY_MS) >= 0);
  rcache_stats s0;
  rcache_get_stats(h, &s0);
  for (int i = 0; i < 40; i++) {
    int64_t n;
    int64_t t = load_now_us();
    rcache_status s = rcache_incr(h, "flaky:n", 1, &n);
    CHECK_MSG((load_now_us() - t) / 1000 <= SC_CALL_MS, "flaky incr took too long");
    if (s == RCACHE_OK)
      (*ok)++;
    else if (s == RCACHE_EUNAVAILABLE)
      (*unavail)++;
    else
      CHECK_MSG(0, "flaky incr: %s", rcache_strerror(s));
  }
  rcache_get_stats(h, st);
  rcache_close(h);
  CHECK_EQ(logcap_count(&log, LOG_DOWN, 0), (long long)st->breaker_opens);
  st->breaker_opens -= s0.breaker_opens; /* over the 40 calls */
  logcap_destroy(&log);
  printf("[%6.2f s] failure rate %.1f: %d ok, %d unavailable, breaker opened %llu times\n",
         sc_elapsed(x), rate, *ok, *unavail, (unsigned long long)st->breaker_opens);
}

static void failure_rate(scen *x) {
  proxy *flaky = proxy_start(x->s.port);
  CHECK(flaky != NULL);
  if (!flaky) return;
  proxy_set_mode(flaky, PROXY_FLAKY, 0);
  rcache_stats st;
  int ok, unavail;
  /* rate off: one failure at a time never reaches 3 in a row */
  flaky_run(x, proxy_port(flaky), 0, &st, &ok, &unavail);
  CHECK_EQ(st.breaker_opens, 0);
  CHECK_MSG(ok >= 15 && unavail >= 15, "the proxy did not alternate: %d ok, %d failed", ok,
            unavail);
  /* rate on: half of a 10-call window failed, more than 40 % */
  flaky_run(x, proxy_port(flaky), 0.4, &st, &ok, &unavail);
  CHECK_MSG(st.breaker_opens >= 1, "a 50 %% failure rate did not open the breaker");
  CHECK_MSG(ok >= 3 && unavail > ok, "%d ok, %d failed: the breaker opened too early or late", ok,
            unavail); /* a window of calls went through; once open, calls fail fast */
  proxy_stop(flaky);
}

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_proxy");
  x.password = PASSWORD;
  if (rp_start(&x.s, &(rp_opts){.password = PASSWORD}) != 0 || !(px = proxy_start(x.s.port))) {
    CHECK(!"server or proxy start");
    sc_end(&x);
    return test_report(x.name);
  }
  x.px = px;
  snprintf(x.url, sizeof x.url, "redis://:%s@127.0.0.1:%d", PASSWORD, proxy_port(px));
  if (!sc_open(&x, NULL) || !(x.l = load_start(x.c, "proxy"))) {
    CHECK(x.c && x.l);
    sc_end(&x);
    proxy_stop(px);
    return test_report(x.name);
  }
  every = sc_every_op_open(&x);
  sc_sleep_ms(800);
  sc_print_stats(&x, "healthy");
  CHECK(proxy_accepted(px) >= 1);

  outage(&x, "black hole", PROXY_BLACKHOLE, 0, 2500, true);
  outage(&x, "half replies", PROXY_HALF, 0, 1500, false);
  slow(&x);
  outage(&x, "400 ms delay", PROXY_DELAY, 400, 2000, true);
  failure_rate(&x);

  sc_check_log(&x, 3, 3, 0, "whole run");
  CHECK_EQ(logcap_total(&x.log), 6);
  char where[64];
  snprintf(where, sizeof where, "127.0.0.1:%d", proxy_port(px));
  CHECK_EQ(logcap_count(&x.log, where, 0), 6);
  CHECK_EQ(logcap_count(&x.log, ":***@", 0), 6); /* the URL is there, redacted */
  rcache_close(every);
  sc_end(&x); /* closes the handle before the proxy goes */
  proxy_stop(px);
  return test_report(x.name);
}
