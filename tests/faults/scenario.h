/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * What every fault scenario shares: a server, a handle with the suite's options and a log
 * capture, the load, and the checks of the issue:
 *  - no call over its deadline, only documented statuses, values that belong to their key;
 *  - fallbacks (and breaker opens, reconnect attempts, timeouts where they apply) counted;
 *  - the cache used again within reconnect_max_ms + 1 s of the fault ending, and
 *    rcache_health_check() telling the truth by then;
 *  - one "unavailable" and one "available again" log line per outage, never a password.
 * Included by the test_*.c files only (it uses test.h's counters).
 */
#ifndef RCACHE_FAULTS_SCENARIO_H
#define RCACHE_FAULTS_SCENARIO_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cpu_wait.h"
#include "helper_load.h"
#include "helper_proxy.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

/* The cache must be in use again this long after a fault ends. */
#define SC_RECOVERY_MS (LOAD_RECONNECT_MAX_MS + 1000)
/* A whole call may take this long (one connect plus one command, plus the slack). */
#define SC_CALL_MS (LOAD_CONNECT_TIMEOUT_MS + LOAD_COMMAND_TIMEOUT_MS + LOAD_SLACK_MS)

typedef struct scen {
  const char *name;
  rp_server s;
  logcap log;
  rcache *c;
  load *l;
  char url[300];
  const char *password; /* must never appear in a log line; NULL = none */
  const proxy *px;      /* a proxy between the library and the server, or NULL */
  int64_t t0;
} scen;

static inline double sc_elapsed(const scen *x) {
  return (double)(load_now_us() - x->t0) / 1e6;
}

static inline void sc_sleep_ms(int ms) {
  usleep((useconds_t)ms * 1000);
}

static inline void sc_print_stats(scen *x, const char *label) {
  rcache_stats st;
  rcache_get_stats(x->c, &st);
  printf(
      "[%6.2f s] %-28s available=%d breaker=%d opens=%llu reconnects=%llu fallbacks=%llu "
      "timeouts=%llu errors=%llu hits=%llu misses=%llu sets=%llu p50=%.2f p99=%.2f max=%.1f ms\n",
      sc_elapsed(x), label, st.available, st.breaker_state, (unsigned long long)st.breaker_opens,
      (unsigned long long)st.reconnect_attempts, (unsigned long long)st.fallbacks,
      (unsigned long long)st.timeouts, (unsigned long long)st.errors, (unsigned long long)st.hits,
      (unsigned long long)st.misses, (unsigned long long)st.sets, st.latency_p50_ms,
      st.latency_p99_ms, st.latency_max_ms);
  fflush(stdout);
}

/* Opens the handle on x->url with the suite's options (plus `tweak` when non-NULL).
 * rcache_open must succeed whatever the server does, within one connect deadline. */
static inline bool sc_open(scen *x, void (*tweak)(rcache_options *)) {
  rcache_options o;
  load_options(&o, &x->log);
  o.key_prefix = "faults:";
  if (tweak) tweak(&o);
  int64_t t = load_now_us();
  rcache_status s = rcache_open(&x->c, x->url, &o);
  int64_t ms = (load_now_us() - t) / 1000;
  CHECK_MSG(s == RCACHE_OK, "rcache_open: %s (%s)", rcache_strerror(s), rcache_errmsg(NULL));
  CHECK_MSG(ms <= SC_CALL_MS, "rcache_open took %lld ms", (long long)ms);
  printf("[%6.2f s] opened in %lld ms (mode %s)\n", sc_elapsed(x), (long long)ms,
         x->c ? rcache_mode(x->c) : "-");
  return s == RCACHE_OK;
}

static inline void sc_begin(scen *x, const char *name) {
  memset(x, 0, sizeof *x);
  x->name = name;
  x->t0 = load_now_us();
  logcap_init(&x->log);
  load_watchdog(name, 120); /* each scenario takes < 20 s; a hang must not take 10 min */
}

/* Calls over the phase that did not use the cache (EUNAVAILABLE) for op. */
static inline uint64_t sc_unavail(const load_counts *d, int op) {
  return d->by_status[op][RCACHE_EUNAVAILABLE + LOAD_STATUS_BIAS];
}

static inline uint64_t sc_status(const load_counts *d, int op, rcache_status s) {
  return d->by_status[op][s + LOAD_STATUS_BIAS];
}

/* Health right now: must answer within one call deadline and say `want`. */
static inline void sc_check_health(scen *x, bool want, const char *when) {
  rcache_health h;
  int64_t t = load_now_us();
  rcache_status s = rcache_health_check(x->c, &h);
  int64_t ms = (load_now_us() - t) / 1000;
  CHECK_MSG(ms <= SC_CALL_MS, "%s: health check took %lld ms", when, (long long)ms);
  CHECK_MSG(h.healthy == want && (s == RCACHE_OK) == want,
            "%s: health says healthy=%d (%s: %s), expected %d", when, h.healthy, rcache_strerror(s),
            h.error, want);
  if (want) {
    CHECK_MSG(h.server_version[0] != '\0', "%s: no server version", when);
  } else {
    CHECK_MSG(h.error[0] != '\0', "%s: unhealthy without a reason", when);
  }
  if (x->password) CHECK_MSG(!strstr(h.error, x->password), "%s: password in health error", when);
  printf("[%6.2f s] health (%s): %s, %.2f ms, version \"%s\", error \"%s\" (%lld ms)\n",
         sc_elapsed(x), when, h.healthy ? "healthy" : "unhealthy", h.latency_ms, h.server_version,
         h.error, (long long)ms);
}

/* How soon health must be true again: a probe in flight when the fault ended may still
 * fail (it waits out its connect and PING deadlines), then the next one comes within one
 * backoff interval (reconnect_max_ms at most), and it too has its connect and PING deadlines
 * (a TLS handshake, slow under ThreadSanitizer: the bound without them was missed by 3 ms
 * once, "healthy after 1153 ms"). */
#define SC_HEALTH_MS                                                                               \
  (2 * (LOAD_CONNECT_TIMEOUT_MS + LOAD_COMMAND_TIMEOUT_MS) + LOAD_RECONNECT_MAX_MS + LOAD_SLACK_MS)

/* The fault ended at end_us. rcache_health_check() must tell the truth within one probe
 * interval (SC_HEALTH_MS); the cache must be in use again within SC_RECOVERY_MS, by a real
 * round trip from here and by the load's own calls. */
static inline void sc_check_recovered(scen *x, int64_t end_us, const char *what) {
  int64_t health_until = end_us + (int64_t)SC_HEALTH_MS * 1000;
  rcache_health h;
  bool healthy = false;
  while (!(healthy = rcache_health_check(x->c, &h) == RCACHE_OK) && load_now_us() < health_until)
    sc_sleep_ms(10);
  CHECK_MSG(healthy, "%s: health still says \"%s\" %d ms after the fault ended", what, h.error,
            SC_HEALTH_MS);
  int64_t health_ms = (load_now_us() - end_us) / 1000;
  int64_t ms = load_wait_used_again(x->c, end_us, SC_RECOVERY_MS);
  CHECK_MSG(ms >= 0, "%s: cache not used again within %d ms of the fault ending", what,
            SC_RECOVERY_MS);
  int64_t until = end_us + (int64_t)SC_RECOVERY_MS * 1000;
  while (x->l && load_last_remote_ok_us(x->l) <= end_us && load_now_us() < until)
    sc_sleep_ms(10);
  if (x->l) {
    int64_t last = load_last_remote_ok_us(x->l);
    CHECK_MSG(last > end_us, "%s: the load did not use the cache again within %d ms", what,
              SC_RECOVERY_MS);
    if (last > end_us)
      printf("[%6.2f s] %s: healthy after %lld ms, used again after %lld ms (load: %lld ms)\n",
             sc_elapsed(x), what, (long long)health_ms, (long long)ms,
             (long long)((last - end_us) / 1000));
  }
  sc_check_health(x, true, what);
}

/* The log: exactly `downs` "unavailable" and `ups` "available again" lines since since_us;
 * no line ever holds the password. */
static inline void sc_check_log(scen *x, int downs, int ups, int64_t since_us, const char *what) {
  int d = logcap_count(&x->log, LOG_DOWN, since_us), u = logcap_count(&x->log, LOG_UP, since_us);
  CHECK_MSG(d == downs, "%s: %d \"%s\" log lines, expected %d", what, d, LOG_DOWN, downs);
  CHECK_MSG(u == ups, "%s: %d \"%s\" log lines, expected %d", what, u, LOG_UP, ups);
  if (x->password) CHECK_MSG(logcap_count(&x->log, x->password, 0) == 0, "password in the log");
}

/* The whole run: the load's verdicts. */
static inline void sc_check_load(const load_counts *t) {
  CHECK_MSG(t->over_deadline == 0, "%llu calls over their deadline",
            (unsigned long long)t->over_deadline);
  CHECK_MSG(t->bad_status == 0, "%llu calls with an undocumented status",
            (unsigned long long)t->bad_status);
  CHECK_MSG(t->bad_value == 0, "%llu calls returned a value of another key",
            (unsigned long long)t->bad_value);
  for (int op = 0; op < OP_N; op++)
    CHECK_MSG(t->calls[op] > 0, "no %s calls", load_op_name(op));
}

/* Over a fault phase the cache was not used: reads fell back, get_or_set still answered. */
static inline void sc_check_fallback_phase(const load_counts *d, const char *what) {
  CHECK_MSG(sc_unavail(d, OP_GET) > 0, "%s: no get fell back", what);
  CHECK_MSG(sc_unavail(d, OP_SET) > 0, "%s: no set was dropped", what);
  CHECK_MSG(sc_unavail(d, OP_INCR) > 0, "%s: no incr fell back", what);
  CHECK_MSG(sc_status(d, OP_GOS, RCACHE_OK) > 0 && d->loader_calls > 0,
            "%s: get_or_set did not answer through its loader", what);
}

static inline void sc_end(scen *x) {
  if (x->l) {
    load_counts t;
    load_stop(x->l, &t, "whole run");
    x->l = NULL;
    sc_check_load(&t);
  }
  if (x->c) {
    sc_print_stats(x, "end");
    rcache_close(x->c);
    x->c = NULL;
  }
  logcap_print(&x->log, x->name);
  logcap_destroy(&x->log);
  rp_destroy(&x->s);
}

/* rcache_open while the fault is on: it must not fail and must not wait longer than one
 * connect (+ PING) deadline; the new handle answers by the fallback rules and closes
 * promptly. */
/* A handle opened while the fault is on, with the near cache off and on: open answers at
 * once (the first contact is made in the background), the first get answers
 * RCACHE_EUNAVAILABLE by its deadline, and close does not wait for the connects under way
 * (the first contact's, the prober's, the listener's). The bounds are the suite's call
 * budget; the durations are printed. */
static inline void sc_open_during_fault(scen *x, const char *what) {
  for (int near = 0; near <= 1; near++) {
    rcache_options o;
    load_options(&o, NULL);
    o.log_level = RCACHE_LOG_ERROR;
    if (near) o.near_cache_bytes = 1 << 20;
    rcache *h = NULL;
    int64_t t = load_now_us();
    rcache_status s = rcache_open(&h, x->url, &o);
    int64_t open_ms = (load_now_us() - t) / 1000;
    CHECK_MSG(s == RCACHE_OK, "%s: rcache_open failed: %s", what, rcache_strerror(s));
    CHECK_MSG(open_ms <= SC_CALL_MS, "%s: rcache_open took %lld ms", what, (long long)open_ms);
    if (!h) return;
    rcache_value v;
    t = load_now_us();
    s = rcache_get(h, "k", &v);
    int64_t get_ms = (load_now_us() - t) / 1000;
    CHECK_MSG(s == RCACHE_EUNAVAILABLE, "%s: get on a handle opened during the fault: %s", what,
              rcache_strerror(s));
    CHECK_MSG(get_ms <= SC_CALL_MS, "%s: get took %lld ms", what, (long long)get_ms);
    rcache_value_free(&v);
    t = load_now_us();
    rcache_close(h);
    int64_t close_ms = (load_now_us() - t) / 1000;
    CHECK_MSG(close_ms <= SC_CALL_MS, "%s: rcache_close took %lld ms", what, (long long)close_ms);
    printf("[%6.2f s] %s%s: opened in %lld ms, get %lld ms, closed in %lld ms\n", sc_elapsed(x),
           what, near ? " (near cache)" : "", (long long)open_ms, (long long)get_ms,
           (long long)close_ms);
  }
}

/* Open and close while the fault stalls the first contact, whose connect deadline is far
 * away (SC_FAR_CONNECT_MS): rcache_open returned before that contact gave up (the breaker
 * is still closed: with a synchronous first connect it would be open by now), and
 * rcache_close abandoned it (and the near cache's listener connect) instead of waiting it
 * out, without logging an outage. The far deadline is ~100x what open and close take;
 * durations are printed. */
#define SC_FAR_CONNECT_MS 20000
static inline void sc_close_mid_connect(scen *x, const char *what) {
  for (int near = 0; near <= 1; near++) {
    rcache_options o;
    logcap log;
    logcap_init(&log);
    load_options(&o, &log);
    o.connect_timeout_ms = SC_FAR_CONNECT_MS;
    if (near) o.near_cache_bytes = 1 << 20;
    rcache *h = NULL;
    int64_t t = load_now_us();
    rcache_status s = rcache_open(&h, x->url, &o);
    int64_t open_ms = (load_now_us() - t) / 1000;
    CHECK_MSG(s == RCACHE_OK, "%s: rcache_open failed: %s", what, rcache_strerror(s));
    if (!h) {
      logcap_destroy(&log);
      return;
    }
    rcache_stats st;
    rcache_get_stats(h, &st);
    CHECK_MSG(st.breaker_state == RCACHE_BREAKER_CLOSED,
              "%s: the first contact had already failed when rcache_open returned", what);
    t = load_now_us();
    rcache_close(h);
    int64_t close_ms = (load_now_us() - t) / 1000;
    CHECK_MSG(close_ms < SC_FAR_CONNECT_MS, "%s: rcache_close waited out a connect (%lld ms)", what,
              (long long)close_ms);
    CHECK_EQ(logcap_count(&log, LOG_DOWN, 0), 0); /* closing is no outage */
    logcap_destroy(&log);
    printf("[%6.2f s] %s%s, first contact under way: opened in %lld ms, closed in %lld ms\n",
           sc_elapsed(x), what, near ? " (near cache)" : "", (long long)open_ms,
           (long long)close_ms);
  }
}

/* ---- every public operation against a failing server, breaker disabled ----------------------- */

/* A second handle whose breaker never opens (breaker_failures huge: the threshold is
 * configurable), so that each call below really meets the fault instead of failing fast.
 * It is warmed (one pooled connection) before the fault by sc_every_op_open(). */
static inline void sc_no_breaker(rcache_options *o) {
  o->breaker_failures = 1000000;
}

static inline rcache *sc_every_op_open(scen *x) {
  rcache_options o;
  load_options(&o, NULL);
  o.log_fn = NULL;
  o.log_level = RCACHE_LOG_ERROR;
  o.key_prefix = "faults:every:";
  sc_no_breaker(&o);
  rcache *h = NULL;
  CHECK(rcache_open(&h, x->url, &o) == RCACHE_OK);
  if (h) CHECK_EQ(rcache_set(h, "warm", "1", 1, 60), RCACHE_OK);
  return h;
}

static inline rcache_status sc_loader(void *ud, rcache_value *out) {
  (void)ud;
  out->data = malloc(7);
  if (!out->data) return RCACHE_ENOMEM;
  memcpy(out->data, "loaded", 7);
  out->len = 6;
  return RCACHE_OK;
}

static inline bool sc_scan_cb(const char *key, size_t len, void *ud) {
  (void)key;
  (void)len;
  (void)ud;
  return true;
}

/* The time in us that the machine kept the parties to a call from running, in all: the
 * calling thread (its own schedstat, which also gives its time run in *run_us), the server
 * and the proxy between them (cpu_wait.h). A stall of the whole process is counted
 * separately (load_stalled_us). */
static inline int64_t sc_machine_wait_us(const scen *x, int *sched_fd, int64_t *run_us) {
  return cpu_sched_us(sched_fd, run_us) + cpu_wait_of_pid_us((long)x->s.pid) +
         (x->px ? proxy_cpu_wait_us(x->px) : 0);
}

/* Times one call: it must end within `budget` ms. It "waited out a deadline" when it slept
 * that long: its wall time less what it ran, less what the machine kept it or those serving
 * it from running (sc_machine_wait_us, or a stall of the whole process if longer), is most
 * of a command timeout. A loaded machine can stretch a call that failed fast to that
 * length; it cannot make it sleep that long. */
#define SC_TIMED(x, what, budget, call, expect)                                                    \
  do {                                                                                             \
    int64_t _run0, _run1, _wait = sc_machine_wait_us((x), &sched_fd, &_run0);                      \
    int64_t _t = load_now_us();                                                                    \
    rcache_status _s = (call);                                                                     \
    int64_t _end = load_now_us(), _ms = (_end - _t) / 1000;                                        \
    _wait = sc_machine_wait_us((x), &sched_fd, &_run1) - _wait;                                    \
    int64_t _stall = load_stalled_us((x)->l, _t, _end);                                            \
    int64_t _kept = _stall > _wait ? _stall : _wait;                                               \
    int64_t _slept = _end - _t - (_run1 - _run0) - _kept;                                          \
    CHECK_MSG(_ms <= (budget), "%s: %s took %lld ms (budget %d)", (what), #call, (long long)_ms,   \
              (int)(budget));                                                                      \
    CHECK_MSG(_s == (expect), "%s: %s returned %s, documented %s", (what), #call,                  \
              rcache_strerror(_s), rcache_strerror(expect));                                       \
    if (_ms > slowest) slowest = _ms;                                                              \
    if (_slept >= LOAD_COMMAND_TIMEOUT_MS * 3 / 4 * 1000) {                                        \
      waited++;                                                                                    \
    } else if (_ms >= LOAD_COMMAND_TIMEOUT_MS * 3 / 4) {                                           \
      printf("[%6.2f s] %s: %s took %lld ms, slept %lld ms of it (the machine kept it or "         \
             "those serving it from running %lld ms)\n",                                           \
             sc_elapsed(x), (what), #call, (long long)_ms, (long long)(_slept / 1000),             \
             (long long)(_kept / 1000));                                                           \
    }                                                                                              \
  } while (0)

/* Every operation once, while the server misbehaves: each within its deadline, each with
 * the status and outputs of docs/semantics.md "While the cache is unavailable". */
static inline void sc_every_op(scen *x, rcache *h, const char *what) {
  if (!h) return;
  int64_t slowest = 0, waited = 0, t0 = load_now_us();
  int sched_fd = -1; /* this thread's schedstat (SC_TIMED) */
  rcache_stats s0, s1;
  rcache_get_stats(h, &s0);
  rcache_value v = {(char *)"x", 1};
  SC_TIMED(x, what, SC_CALL_MS, rcache_get(h, "k", &v), RCACHE_EUNAVAILABLE);
  CHECK(v.data == NULL && v.len == 0);
  SC_TIMED(x, what, SC_CALL_MS, rcache_set(h, "k", "v", 1, 60), RCACHE_EUNAVAILABLE);
  SC_TIMED(x, what, SC_CALL_MS, rcache_delete(h, "k"), RCACHE_EUNAVAILABLE);
  bool e = true;
  SC_TIMED(x, what, SC_CALL_MS, rcache_exists(h, "k", &e), RCACHE_EUNAVAILABLE);
  CHECK(!e);
  int64_t n = 5;
  SC_TIMED(x, what, SC_CALL_MS, rcache_ttl(h, "k", &n), RCACHE_EUNAVAILABLE);
  CHECK_EQ(n, -2);
  n = 5;
  SC_TIMED(x, what, SC_CALL_MS, rcache_incr(h, "n", 1, &n), RCACHE_EUNAVAILABLE);
  CHECK_EQ(n, 0);
  n = 5;
  SC_TIMED(x, what, SC_CALL_MS, rcache_incr_expire(h, "n", 1, 10, &n), RCACHE_EUNAVAILABLE);
  CHECK_EQ(n, 0);
  bool allowed = false;
  n = 5;
  SC_TIMED(x, what, SC_CALL_MS, rcache_rate_limit(h, "rl", 1, 10, &allowed, &n),
           RCACHE_EUNAVAILABLE);
  CHECK(allowed && n == 0);
  /* a read and a write: two deadlines */
  SC_TIMED(x, what, 2 * SC_CALL_MS, rcache_get_or_set(h, "g", 60, sc_loader, NULL, &v), RCACHE_OK);
  CHECK(v.data && v.len == 6 && !strcmp(v.data, "loaded"));
  rcache_value_free(&v);
  const char *keys[3] = {"a", "b", "c"};
  rcache_value vals[3];
  rcache_status st[3];
  SC_TIMED(x, what, SC_CALL_MS, rcache_get_many(h, keys, 3, vals, st), RCACHE_EUNAVAILABLE);
  for (int i = 0; i < 3; i++) {
    CHECK(st[i] == RCACHE_EUNAVAILABLE && vals[i].data == NULL);
    vals[i] = (rcache_value){(char *)"v", 1};
  }
  SC_TIMED(x, what, SC_CALL_MS, rcache_set_many(h, keys, vals, 3, 60), RCACHE_EUNAVAILABLE);
  uint64_t del = 9;
  SC_TIMED(x, what, SC_CALL_MS, rcache_delete_prefix(h, "a", &del), RCACHE_EUNAVAILABLE);
  CHECK_EQ(del, 0);
  del = 9;
  SC_TIMED(x, what, SC_CALL_MS, rcache_delete_pattern(h, "a*", &del), RCACHE_EUNAVAILABLE);
  CHECK_EQ(del, 0);
  SC_TIMED(x, what, SC_CALL_MS, rcache_flush(h), RCACHE_EUNAVAILABLE);
  SC_TIMED(x, what, SC_CALL_MS, rcache_scan(h, "*", 0, sc_scan_cb, NULL), RCACHE_EUNAVAILABLE);
  rcache_health hh;
  SC_TIMED(x, what, SC_CALL_MS, rcache_health_check(h, &hh), RCACHE_EUNAVAILABLE);
  CHECK(!hh.healthy && hh.error[0]);
  if (sched_fd >= 0) close(sched_fd);
  rcache_get_stats(h, &s1);
  /* the breaker is configured out: every call above met the fault itself */
  CHECK_EQ(s1.breaker_opens, s0.breaker_opens);
  CHECK(s1.fallbacks > s0.fallbacks);
  printf("[%6.2f s] %s: every operation answered by the fallback rules in %lld ms, slowest "
         "%lld ms, %lld waited out a deadline (timeouts +%llu)\n",
         sc_elapsed(x), what, (long long)((load_now_us() - t0) / 1000), (long long)slowest,
         (long long)waited, (unsigned long long)(s1.timeouts - s0.timeouts));
  /* a call that waited out a deadline (connect/handshake or command) is a timeout */
  CHECK_MSG(s1.timeouts - s0.timeouts >= (uint64_t)waited,
            "%s: %lld calls waited out a deadline, stats.timeouts grew by %llu", what,
            (long long)waited, (unsigned long long)(s1.timeouts - s0.timeouts));
}

#endif
