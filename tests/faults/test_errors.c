/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario 6: the server is up but answers errors, each triggered for real:
 *  - OOM:      CONFIG SET maxmemory 1 with noeviction: writes answer -OOM;
 *  - READONLY: REPLICAOF another server: writes answer -READONLY;
 *  - BUSY:     a Lua script that never ends (busy threshold 100 ms), then SCRIPT KILL;
 *  - LOADING:  DEBUG RELOAD of a dataset loaded slowly (key-load-delay), during which the
 *              server answers -LOADING.
 * docs/errors.md: OOM and READONLY are RCACHE_ESERVER for the writes that hit them (the
 * server is there and answering: reads keep using the cache, nothing is declared
 * unavailable); LOADING and BUSY mean "cannot serve now": RCACHE_EUNAVAILABLE with the
 * fallback rules, an outage logged once each way, recovery within reconnect_max_ms + 1 s.
 */
#include "scenario.h"

/* A phase in which the server answers writes with an error reply (OOM, READONLY). */
static void write_errors(scen *x, const char *what, const char *needle, bool (*on)(scen *),
                         bool (*off)(scen *)) {
  load_counts a, b, d;
  rcache_stats s0, s1;
  load_allow(x->l, OP_SET, RCACHE_ESERVER, true);
  load_allow(x->l, OP_INCR, RCACHE_ESERVER, true);
  rcache_get_stats(x->c, &s0);
  load_snapshot(x->l, &a);
  int64_t t0 = load_now_us();
  CHECK_MSG(on(x), "%s: could not trigger", what);
  sc_sleep_ms(1500);
  /* from here too: the status and the server's text */
  rcache_status s = rcache_set(x->c, "errors:probe", "v", 1, 60);
  CHECK_MSG(s == RCACHE_ESERVER, "%s: set returned %s", what, rcache_strerror(s));
  CHECK_MSG(strstr(rcache_errmsg(x->c), needle) != NULL, "%s: errmsg \"%s\" lacks \"%s\"", what,
            rcache_errmsg(x->c), needle);
  int64_t n = 7;
  s = rcache_incr(x->c, "errors:n", 1, &n);
  CHECK_MSG(s == RCACHE_ESERVER && n == 0, "%s: incr returned %s, %lld", what, rcache_strerror(s),
            (long long)n);
  rcache_value v;
  s = rcache_get(x->c, "errors:probe", &v);
  CHECK_MSG(s == RCACHE_OK || s == RCACHE_MISS, "%s: get returned %s", what, rcache_strerror(s));
  rcache_value_free(&v);
  load_snapshot(x->l, &b);
  load_diff(&a, &b, &d);
  load_print(what, &d);
  sc_print_stats(x, what);
  rcache_get_stats(x->c, &s1);
  CHECK_MSG(sc_status(&d, OP_SET, RCACHE_ESERVER) > 0, "%s: no set saw the error", what);
  CHECK_MSG(sc_status(&d, OP_INCR, RCACHE_ESERVER) > 0, "%s: no incr saw the error", what);
  CHECK_MSG(sc_status(&d, OP_GET, RCACHE_OK) + sc_status(&d, OP_GET, RCACHE_MISS) > 0,
            "%s: reads stopped using the cache", what);
  CHECK_MSG(sc_status(&d, OP_GOS, RCACHE_OK) == d.calls[OP_GOS], "%s: get_or_set failed", what);
  /* the server is there: not an outage */
  CHECK_MSG(s1.available, "%s: declared unavailable", what);
  CHECK_EQ(s1.breaker_opens, s0.breaker_opens);
  sc_check_log(x, 0, 0, t0, what);
  sc_check_health(x, true, what);
  CHECK_MSG(off(x), "%s: could not end", what);
  sc_sleep_ms(200);
  load_allow(x->l, OP_SET, RCACHE_ESERVER, false);
  load_allow(x->l, OP_INCR, RCACHE_ESERVER, false);
  CHECK_EQ(rcache_set(x->c, "errors:probe", "v", 1, 60), RCACHE_OK);
  sc_sleep_ms(300);
}

static bool oom_on(scen *x) {
  return rp_do(&x->s, "CONFIG SET maxmemory-policy noeviction") &&
         rp_do(&x->s, "CONFIG SET maxmemory 1");
}

static bool oom_off(scen *x) {
  return rp_do(&x->s, "CONFIG SET maxmemory 0");
}

/* The REPLICAOF target. It has a password our server does not know, so the replication
 * handshake keeps failing and never replaces the dataset (no full sync, no -LOADING):
 * what remains is a replica answering reads and refusing writes with -READONLY. */
static rp_server master;

static bool readonly_on(scen *x) {
  if (rp_start(&master, &(rp_opts){.password = "master-only-pw"}) != 0) return false;
  return rp_do(&x->s, "REPLICAOF 127.0.0.1 %d", master.port);
}

static bool readonly_off(scen *x) {
  bool ok = rp_do(&x->s, "REPLICAOF NO ONE");
  rp_destroy(&master);
  return ok;
}

/* A phase in which the server cannot serve (BUSY, LOADING). start() triggers it and
 * returns a connection to finish() it with; the outage ends when finish() returns. */
static void cannot_serve(scen *x, const char *what, const char *needle,
                         redisContext *(*start)(scen *), bool (*finish)(scen *, redisContext *),
                         int for_ms) {
  load_counts a, b, d;
  rcache_stats s0, s1;
  rcache_get_stats(x->c, &s0);
  load_snapshot(x->l, &a);
  int64_t t0 = load_now_us();
  redisContext *busy = start(x);
  CHECK_MSG(busy != NULL, "%s: could not trigger", what);
  if (!busy) return;
  int64_t ms = load_wait_available(x->c, false, t0, SC_CALL_MS + for_ms / 2);
  CHECK_MSG(ms >= 0, "%s: not declared unavailable", what);
  printf("[%6.2f s] %s: breaker open after %lld ms\n", sc_elapsed(x), what, (long long)ms);
  sc_check_health(x, false, what);
  rcache_health h;
  rcache_health_check(x->c, &h);
  rcache_value v;
  rcache_status s = rcache_get(x->c, "errors:probe", &v);
  CHECK_MSG(s == RCACHE_EUNAVAILABLE, "%s: get returned %s", what, rcache_strerror(s));
  int64_t left = for_ms - (load_now_us() - t0) / 1000;
  if (left > 0) sc_sleep_ms((int)left);
  load_snapshot(x->l, &b);
  load_diff(&a, &b, &d);
  load_print(what, &d);
  sc_print_stats(x, what);
  sc_check_fallback_phase(&d, what);
  rcache_get_stats(x->c, &s1);
  CHECK(s1.fallbacks > s0.fallbacks);
  CHECK_EQ(s1.breaker_opens, s0.breaker_opens + 1);
  CHECK(s1.reconnect_attempts > s0.reconnect_attempts);
  sc_check_log(x, 1, 0, t0, what);
  /* the reason names the server's answer */
  CHECK_MSG(logcap_count(&x->log, needle, t0) == 1, "%s: the log line does not say %s", what,
            needle);
  CHECK_MSG(finish(x, busy), "%s: could not end", what);
  int64_t t_end = load_now_us();
  sc_check_recovered(x, t_end, what);
  sc_sleep_ms(300);
  sc_check_log(x, 1, 1, t0, what);
}

/* Sends a command without waiting for its reply. */
static redisContext *send_only(scen *x, const char *fmt, const char *arg) {
  redisContext *c = rp_connect(&x->s, 20000);
  if (!c) return NULL;
  int done = 0;
  if (redisAppendCommand(c, fmt, arg) != REDIS_OK) done = -1;
  while (done == 0) {
    if (redisBufferWrite(c, &done) != REDIS_OK) done = -1;
  }
  if (done < 0) {
    redisFree(c);
    return NULL;
  }
  return c;
}

static redisContext *busy_start(scen *x) {
  return send_only(x, "EVAL %s 0", "while true do end");
}

static bool busy_finish(scen *x, redisContext *busy) {
  bool killed = rp_do(&x->s, "SCRIPT KILL");
  redisReply *r = NULL;
  bool ok = redisGetReply(busy, (void **)&r) == REDIS_OK && r && r->type == REDIS_REPLY_ERROR;
  if (r) freeReplyObject(r);
  redisFree(busy);
  return killed && ok;
}

static redisContext *loading_start(scen *x) {
  /* 10000 keys at 150 us each: about 1.5 s of -LOADING */
  if (!rp_do(&x->s, "DEBUG POPULATE 10000 errors:pop 16") ||
      !rp_do(&x->s, "CONFIG SET key-load-delay 150"))
    return NULL;
  return send_only(x, "DEBUG %s", "RELOAD");
}

static bool loading_finish(scen *x, redisContext *reload) {
  redisReply *r = NULL;
  bool ok = redisGetReply(reload, (void **)&r) == REDIS_OK && r && r->type == REDIS_REPLY_STATUS;
  if (!ok) fprintf(stderr, "DEBUG RELOAD: %s\n", r ? r->str : reload->errstr);
  if (r) freeReplyObject(r);
  redisFree(reload);
  return ok && rp_do(&x->s, "CONFIG SET key-load-delay 0");
}

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_errors");
  const char *extra[] = {"--enable-debug-command",
                         "yes",
                         "--loading-process-events-interval-bytes",
                         "1024",
                         "--lua-time-limit",
                         "100",
                         NULL};
  if (rp_start(&x.s, &(rp_opts){.args = extra}) != 0) {
    CHECK(!"server start");
    return test_report(x.name);
  }
  rp_url(&x.s, x.url, sizeof x.url, NULL);
  if (!sc_open(&x, NULL) || !(x.l = load_start(x.c, "errors"))) {
    CHECK(x.c && x.l);
    sc_end(&x);
    return test_report(x.name);
  }
  sc_sleep_ms(700);
  sc_print_stats(&x, "healthy");

  write_errors(&x, "OOM", "OOM", oom_on, oom_off);
  write_errors(&x, "READONLY", "READONLY", readonly_on, readonly_off);
  cannot_serve(&x, "BUSY", "BUSY", busy_start, busy_finish, 1500);
  cannot_serve(&x, "LOADING", "LOADING", loading_start, loading_finish, 1200);

  sc_check_log(&x, 2, 2, 0, "whole run");
  CHECK_EQ(logcap_total(&x.log), 4);
  sc_end(&x);
  return test_report(x.name);
}
