/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario 3: the server is paused with SIGSTOP for 3 s under load, then continued.
 * Nothing is refused: connections stay open and connects still complete (the kernel's
 * backlog), but no byte comes back. Every call must still return within its deadline
 * (timeouts counted), the breaker must open so that calls stop waiting, and once the
 * server runs again the cache is used within reconnect_max_ms + 1 s. The replies the
 * server finally sends for the timed-out commands must never reach a later call: the
 * load checks every value against its key.
 */
#include "scenario.h"

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_sigstop");
  if (rp_start(&x.s, NULL) != 0) {
    CHECK(!"server start");
    return test_report(x.name);
  }
  rp_url(&x.s, x.url, sizeof x.url, NULL);
  if (!sc_open(&x, NULL) || !(x.l = load_start(x.c, "stop"))) {
    CHECK(x.c && x.l);
    sc_end(&x);
    return test_report(x.name);
  }
  sc_sleep_ms(1000);
  rcache *every = sc_every_op_open(&x);
  /* a handle closed in the middle of the pause, its prober probing: close must not hang */
  rcache *closer = NULL;
  rcache_options co;
  load_options(&co, NULL);
  co.breaker_failures = 1;
  co.log_level = RCACHE_LOG_ERROR;
  CHECK(rcache_open(&closer, x.url, &co) == RCACHE_OK);
  if (closer) CHECK_EQ(rcache_set(closer, "closer", "1", 1, 60), RCACHE_OK);
  load_counts a, b, d;
  load_snapshot(x.l, &a);
  load_print("healthy", &a);
  sc_print_stats(&x, "healthy");
  CHECK(a.remote_ok > 0);

  rcache_stats s0, s1;
  rcache_get_stats(x.c, &s0);
  int64_t t_stop = load_now_us();
  rp_pause(&x.s);
  /* the breaker opens once enough calls have timed out: one command deadline, plus slack */
  int64_t ms = load_wait_available(x.c, false, t_stop, SC_CALL_MS);
  CHECK_MSG(ms >= 0, "the breaker did not open within %d ms of SIGSTOP", SC_CALL_MS);
  printf("[%6.2f s] paused: breaker open after %lld ms\n", sc_elapsed(&x), (long long)ms);
  sc_every_op(&x, every, "paused");
  sc_open_during_fault(&x, "paused");
  sc_close_mid_connect(&x, "paused");
  if (closer) {
    rcache_value v;
    CHECK_EQ(rcache_get(closer, "closer", &v), RCACHE_EUNAVAILABLE); /* opens its breaker */
    sc_sleep_ms(100); /* let its prober start a probe, which the paused server stalls */
    int64_t t = load_now_us();
    rcache_close(closer);
    int64_t took = (load_now_us() - t) / 1000;
    printf("[%6.2f s] rcache_close during the pause: %lld ms\n", sc_elapsed(&x), (long long)took);
    CHECK_MSG(took <= SC_CALL_MS, "rcache_close took %lld ms while the server was paused",
              (long long)took);
  }
  sc_check_health(&x, false, "paused"); /* must not hang either */
  int left = 3000 - (int)((load_now_us() - t_stop) / 1000);
  if (left > 0) sc_sleep_ms(left);
  load_snapshot(x.l, &b);
  load_diff(&a, &b, &d);
  load_print("paused", &d);
  sc_print_stats(&x, "paused");
  sc_check_fallback_phase(&d, "paused");
  rcache_get_stats(x.c, &s1);
  CHECK(s1.timeouts > s0.timeouts);
  CHECK(s1.fallbacks > s0.fallbacks);
  CHECK(s1.errors > s0.errors);
  CHECK_EQ(s1.breaker_opens, s0.breaker_opens + 1);
  CHECK(s1.reconnect_attempts > s0.reconnect_attempts);
  CHECK(!s1.available);
  /* the paused server does not answer: calls over the pause used no cache after the
   * breaker opened (a few may have completed just before the stop) */
  CHECK_MSG(load_remote_ok_between(x.l, t_stop + (int64_t)SC_CALL_MS * 1000, load_now_us()) == 0,
            "calls used a paused server");
  sc_check_log(&x, 1, 0, t_stop, "paused");

  rp_resume(&x.s);
  int64_t t_cont = load_now_us();
  /* the handle without a breaker recovers by itself too */
  if (every) {
    int64_t ok = load_wait_used_again(every, t_cont, SC_RECOVERY_MS);
    CHECK_MSG(ok >= 0, "the breaker-less handle did not recover");
    rcache_close(every);
  }
  sc_check_recovered(&x, t_cont, "continued");
  sc_sleep_ms(1000);
  load_snapshot(x.l, &a);
  sc_sleep_ms(1000);
  load_snapshot(x.l, &b);
  load_diff(&a, &b, &d);
  load_print("continued", &d);
  CHECK(d.remote_ok > 0);
  CHECK_EQ(sc_unavail(&d, OP_GET), 0);
  rcache_get_stats(x.c, &s1);
  /* remote latency percentiles cover the pause: the slowest call waited a deadline */
  CHECK_MSG(s1.latency_max_ms >= LOAD_COMMAND_TIMEOUT_MS * 0.9,
            "latency_max_ms %.1f does not show the stalled calls", s1.latency_max_ms);
  sc_check_log(&x, 1, 1, 0, "whole run");
  CHECK_EQ(logcap_total(&x.log), 2);
  sc_end(&x);
  return test_report(x.name);
}
