/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Fault scenario 7: the same faults over TLS (rediss://, certificate verified against a CA
 * made here, host 127.0.0.1 checked against the certificate's IP address), where a stall
 * can also hit the handshake:
 *  a) black hole: established TLS sessions stall, and new connections complete TCP but
 *     never the handshake: the handshake must be bounded by connect_timeout_ms;
 *  b) half replies: TLS records and handshakes cut in the middle: a transient failure of
 *     the network, so the documented fallback (EUNAVAILABLE), not a certificate error;
 *  c) 400 ms of delay: timeouts;
 *  d) the server paused with SIGSTOP for 2 s.
 * Same checks as everywhere: deadlines, statuses, recovery, one log line each way.
 * And, without load, through a proxy of its own: e) a session cut in the middle of a record
 * (no close_notify: OpenSSL's "unexpected eof") is a broken connection, not a certificate
 * problem: the breaker it opens logs a warning, not an error, and strict_config answers
 * EUNAVAILABLE, not ETLS.
 */
#include "scenario.h"

static proxy *px;
static char certs[200];

/* A CA and a server certificate for localhost / 127.0.0.1, with openssl (EC: quick). */
static bool make_certs(void) {
  if (rp_mkdir(certs, sizeof certs, "faults-tls") != 0) return false;
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "cd '%s' && "
           "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout ca.key -subj '/CN=faults CA' -days 2 -out ca.pem && "
           "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
           "-keyout server.key -subj '/CN=localhost' -out server.csr && "
           "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=serverAuth\\n' "
           ">server.ext && "
           "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
           "-extfile server.ext -out server.pem",
           certs);
  strcat(cmd, " >openssl.log 2>&1");
  int rc = system(cmd);
  if (rc != 0) fprintf(stderr, "openssl failed (%d): see %s/openssl.log\n", rc, certs);
  return rc == 0;
}

static void outage(scen *x, const char *what, proxy_mode m, int delay_ms, int for_ms) {
  load_counts a, b, d;
  rcache_stats s0, s1;
  rcache_get_stats(x->c, &s0);
  load_snapshot(x->l, &a);
  int64_t t0 = load_now_us();
  if (m == PROXY_PASS) {
    rp_pause(&x->s);
  } else {
    proxy_set_mode(px, m, delay_ms);
  }
  int64_t ms = load_wait_available(x->c, false, t0, SC_CALL_MS);
  CHECK_MSG(ms >= 0, "%s: the breaker did not open within %d ms", what, SC_CALL_MS);
  printf("[%6.2f s] %s: breaker open after %lld ms\n", sc_elapsed(x), what, (long long)ms);
  if (m == PROXY_BLACKHOLE) sc_open_during_fault(x, what); /* the handshake stalls */
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
  CHECK(!s1.available);
  sc_check_log(x, 1, 0, t0, what);
  if (m == PROXY_PASS) {
    rp_resume(&x->s);
  } else {
    proxy_set_mode(px, PROXY_PASS, 0);
  }
  int64_t t_end = load_now_us();
  sc_check_recovered(x, t_end, what);
  sc_sleep_ms(300);
  sc_check_log(x, 1, 1, t0, what);
}

/* The level of the log's "cache unavailable" line: ERROR for a configuration error (a
 * certificate, a password), WARN for an outage. */
static void cut_log(int level, const char *msg, void *ud) {
  if (strstr(msg, "cache unavailable:")) *(int *)ud = level;
}

static void session_cut(scen *x, const char *ca) {
  proxy *cut = proxy_start(x->s.tls_port);
  CHECK_MSG(cut != NULL, "second proxy");
  if (!cut) return;
  char url[600];
  snprintf(url, sizeof url, "rediss://127.0.0.1:%d?tls_ca=%s", proxy_port(cut), ca);
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 1;
  o.breaker_failures = 1;
  o.strict_config = true;
  o.key_prefix = "faults:cut:";
  int level = -1;
  o.log_fn = cut_log;
  o.log_ud = &level;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_MSG(s == RCACHE_OK, "open: %s", rcache_errmsg(NULL));
  if (s == RCACHE_OK) {
    CHECK_EQ(rcache_set(c, "k", "value", 5, 60000), RCACHE_OK);
    proxy_set_mode(cut, PROXY_HALF, 0);
    rcache_value v = {0};
    int64_t n = 0; /* not retried on a fresh connection, as a GET would be: the cut is its own */
    s = rcache_incr(c, "n", 1, &n); /* its reply cut mid-record, then the connection closed */
    printf("e) INCR on a session cut mid-record: %s: %s\n", rcache_strerror(s), rcache_errmsg(c));
    CHECK_EQ(s, RCACHE_EUNAVAILABLE);
    CHECK_MSG(level == RCACHE_LOG_WARN,
              "the breaker's 'cache unavailable' line has level %d (0 error, 1 warning, -1 none)",
              level);
    s = rcache_get(c, "k", &v); /* the breaker's answer, with its cause */
    printf("e) the breaker's answer: %s: %s\n", rcache_strerror(s), rcache_errmsg(c));
    CHECK_MSG(s == RCACHE_EUNAVAILABLE, "a cut session reported as %s: %s", rcache_strerror(s),
              rcache_errmsg(c));
    CHECK(proxy_cut(cut) >= 1);
    rcache_value_free(&v);
    rcache_close(c);
  }
  proxy_stop(cut);
}

int main(void) {
  scen x;
  sc_begin(&x, "faults_test_tls");
  char ca[256];
  if (!make_certs()) {
    CHECK(!"certificates");
    sc_end(&x);
    if (certs[0]) rp_remove_dir(certs);
    return test_report(x.name);
  }
  snprintf(ca, sizeof ca, "%s/ca.pem", certs);
  /* the plain port is for the test's own control connections; rcache uses the TLS one */
  if (rp_start(&x.s, &(rp_opts){.tls_dir = certs}) != 0 || !(px = proxy_start(x.s.tls_port))) {
    CHECK(!"server or proxy start");
    sc_end(&x);
    rp_remove_dir(certs);
    return test_report(x.name);
  }
  snprintf(x.url, sizeof x.url, "rediss://127.0.0.1:%d?tls_ca=%s", proxy_port(px), ca);
  if (!sc_open(&x, NULL) || !(x.l = load_start(x.c, "tls"))) {
    CHECK(x.c && x.l);
    sc_end(&x);
    proxy_stop(px);
    rp_remove_dir(certs);
    return test_report(x.name);
  }
  sc_sleep_ms(800);
  load_counts a;
  load_snapshot(x.l, &a);
  sc_print_stats(&x, "healthy");
  CHECK_MSG(a.remote_ok > 0, "the cache was not used over TLS");
  sc_check_health(&x, true, "healthy");

  outage(&x, "TLS black hole", PROXY_BLACKHOLE, 0, 2000);
  outage(&x, "TLS half replies", PROXY_HALF, 0, 1500);
  outage(&x, "TLS 400 ms delay", PROXY_DELAY, 400, 1500);
  outage(&x, "TLS server paused", PROXY_PASS, 0, 2000);

  sc_check_log(&x, 4, 4, 0, "whole run");
  CHECK_EQ(logcap_total(&x.log), 8);
  session_cut(&x, ca);
  sc_end(&x);
  proxy_stop(px);
  rp_remove_dir(certs);
  return test_report(x.name);
}
