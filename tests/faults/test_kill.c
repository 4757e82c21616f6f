/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario 2: the server is killed (SIGKILL) under load and restarted on the same
 * port, twice. Each outage: calls fall back within their deadline, the breaker opens,
 * the prober reconnects once the server is back (with its data gone: no persistence),
 * the cache is used again within reconnect_max_ms + 1 s, and the log has one line for the
 * outage and one for the recovery. The URL carries a password that must never be logged.
 */
#include "scenario.h"

#define PASSWORD "kill-pw-8hJ2"

static void outage(scen *x, int n, int down_ms) {
  char what[64];
  load_counts a, b, d;
  rcache_stats s0, s1;
  rcache_get_stats(x->c, &s0);
  load_snapshot(x->l, &a);
  int64_t t_kill = load_now_us();
  rp_kill(&x->s);
  snprintf(what, sizeof what, "outage %d (killed)", n);
  int64_t ms = load_wait_available(x->c, false, t_kill, SC_CALL_MS);
  CHECK_MSG(ms >= 0, "%s: the breaker did not open within %d ms", what, SC_CALL_MS);
  printf("[%6.2f s] %s: breaker open after %lld ms\n", sc_elapsed(x), what, (long long)ms);
  sc_sleep_ms(down_ms);
  sc_check_health(x, false, what);
  load_snapshot(x->l, &b);
  load_diff(&a, &b, &d);
  load_print(what, &d);
  sc_print_stats(x, what);
  sc_check_fallback_phase(&d, what);
  rcache_get_stats(x->c, &s1);
  CHECK(s1.fallbacks > s0.fallbacks);
  CHECK_EQ(s1.breaker_opens, s0.breaker_opens + 1);
  CHECK(s1.reconnect_attempts > s0.reconnect_attempts);
  CHECK(!s1.available);
  sc_check_log(x, 1, 0, t_kill, what);

  CHECK(rp_restart(&x->s, false) == 0);
  int64_t t_up = load_now_us();
  snprintf(what, sizeof what, "outage %d (restarted)", n);
  sc_check_recovered(x, t_up, what);
  sc_sleep_ms(300);
  sc_check_log(x, 1, 1, t_kill, what);
  /* "available again after N s": the outage it reports is the one that happened */
  char line[512];
  double s = -1;
  if (logcap_find(&x->log, LOG_UP, t_kill, line, sizeof line)) {
    const char *p = strstr(line, "after ");
    if (p) sscanf(p, "after %lf s", &s);
  }
  double real_s = (double)(t_up - t_kill) / 1e6;
  CHECK_MSG(s >= real_s - 0.15 && s <= real_s + SC_RECOVERY_MS / 1000.0,
            "%s: logged an outage of %.2f s, it lasted %.2f s (+ reconnect)", what, s, real_s);
}

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_kill");
  x.password = PASSWORD;
  if (rp_start(&x.s, &(rp_opts){.password = PASSWORD}) != 0) {
    CHECK(!"server start");
    return test_report(x.name);
  }
  rp_url(&x.s, x.url, sizeof x.url, "?pool=8");
  if (!sc_open(&x, NULL) || !(x.l = load_start(x.c, "kill"))) {
    CHECK(x.c && x.l);
    sc_end(&x);
    return test_report(x.name);
  }
  sc_sleep_ms(1000);
  load_counts a;
  load_snapshot(x.l, &a);
  load_print("healthy", &a);
  sc_print_stats(&x, "healthy");
  CHECK(a.remote_ok > 0);
  /* 64 callers on 8 connections: the kills below also hit pipelined calls */
  CHECK_MSG(a.shared > 0, "no call of the load ever shared a connection");
  sc_check_log(&x, 0, 0, 0, "healthy");

  outage(&x, 1, 2000);
  sc_sleep_ms(700);
  outage(&x, 2, 1200);
  sc_sleep_ms(700);

  /* after both outages: in use, two lines each way in all */
  load_counts b, d;
  load_snapshot(x.l, &a);
  sc_sleep_ms(500);
  load_snapshot(x.l, &b);
  load_diff(&a, &b, &d);
  CHECK(d.remote_ok > 0);
  CHECK_EQ(sc_unavail(&d, OP_GET), 0);
  sc_check_log(&x, 2, 2, 0, "whole run");
  CHECK(logcap_total(&x.log) == 4);
  sc_end(&x);
  return test_report(x.name);
}
