/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario 8: the same over a Unix socket (unix://), whose transport differs from
 * TCP: the server paused with SIGSTOP for 2 s (connects still complete, nothing answers),
 * then SIGKILLed (the socket file stays behind: connects are refused) and restarted.
 * Deadlines, statuses, recovery and one log line each way, as everywhere.
 */
#include "scenario.h"

static void phase_done(scen *x, const char *what, int64_t t0, rcache_stats *s0, load_counts *a) {
  load_counts b, d;
  rcache_stats s1;
  load_snapshot(x->l, &b);
  load_diff(a, &b, &d);
  load_print(what, &d);
  sc_print_stats(x, what);
  sc_check_fallback_phase(&d, what);
  rcache_get_stats(x->c, &s1);
  CHECK(s1.fallbacks > s0->fallbacks);
  CHECK_EQ(s1.breaker_opens, s0->breaker_opens + 1);
  CHECK(s1.reconnect_attempts > s0->reconnect_attempts);
  CHECK(!s1.available);
  sc_check_log(x, 1, 0, t0, what);
}

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_unix");
  if (rp_start(&x.s, &(rp_opts){.unix_socket = true}) != 0) {
    CHECK(!"server start");
    sc_end(&x);
    return test_report(x.name);
  }
  snprintf(x.url, sizeof x.url, "unix://%s", x.s.sock);
  if (!sc_open(&x, NULL) || !(x.l = load_start(x.c, "unix"))) {
    CHECK(x.c && x.l);
    sc_end(&x);
    return test_report(x.name);
  }
  sc_sleep_ms(800);
  load_counts a;
  load_snapshot(x.l, &a);
  sc_print_stats(&x, "healthy");
  CHECK_MSG(a.remote_ok > 0, "the cache was not used over the Unix socket");

  /* paused */
  rcache_stats s0;
  rcache_get_stats(x.c, &s0);
  int64_t t0 = load_now_us();
  rp_pause(&x.s);
  int64_t ms = load_wait_available(x.c, false, t0, SC_CALL_MS);
  CHECK_MSG(ms >= 0, "paused: the breaker did not open within %d ms", SC_CALL_MS);
  sc_sleep_ms(1000);
  sc_check_health(&x, false, "paused");
  sc_sleep_ms(2000 - (int)((load_now_us() - t0) / 1000) > 0
                  ? 2000 - (int)((load_now_us() - t0) / 1000)
                  : 0);
  phase_done(&x, "paused", t0, &s0, &a);
  rcache_get_stats(x.c, &s0);
  CHECK(s0.timeouts > 0);
  rp_resume(&x.s);
  sc_check_recovered(&x, load_now_us(), "continued");
  sc_sleep_ms(300);
  sc_check_log(&x, 1, 1, t0, "paused");

  /* killed: the socket file stays, connects are refused; then restarted */
  load_snapshot(x.l, &a);
  rcache_get_stats(x.c, &s0);
  t0 = load_now_us();
  rp_kill(&x.s);
  ms = load_wait_available(x.c, false, t0, SC_CALL_MS);
  CHECK_MSG(ms >= 0, "killed: the breaker did not open within %d ms", SC_CALL_MS);
  sc_sleep_ms(1500);
  sc_check_health(&x, false, "killed");
  phase_done(&x, "killed", t0, &s0, &a);
  CHECK(rp_restart(&x.s, false) == 0);
  sc_check_recovered(&x, load_now_us(), "restarted");
  sc_sleep_ms(300);
  sc_check_log(&x, 1, 1, t0, "killed");

  sc_check_log(&x, 2, 2, 0, "whole run");
  CHECK_EQ(logcap_total(&x.log), 4);
  CHECK_EQ(logcap_count(&x.log, x.s.sock, 0), 4); /* the lines name the socket */
  sc_end(&x);
  return test_report(x.name);
}
