/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The standalone Redis backend against real servers (issue 3): error mapping (wrong
 * password, ACL, certificates, WRONGTYPE, OOM, a server error's text), binary-safe keys
 * that can never inject a command, the connection set-up (SELECT, CLIENT SETNAME), the
 * pool under concurrency, and that rcache_open never fails because the server is down.
 */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "await.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

static const char *url_tcp;
static int port;

static redisContext *raw(void) {
  redisContext *r = redisConnect("127.0.0.1", port);
  if (!r || r->err) {
    fprintf(stderr, "raw connect to 127.0.0.1:%d failed\n", port);
    exit(1);
  }
  return r;
}

static rcache *open_url(const char *url, rcache_options *o) {
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, o);
  CHECK_MSG(s == RCACHE_OK, "open: %s %s", rcache_strerror(s), rcache_errmsg(NULL));
  return c;
}

/* Log lines, to check what they say and that they never carry a secret. */
static char logbuf[8192];
static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static void logger(int level, const char *msg, void *ud) {
  pthread_mutex_lock(&log_mu);
  size_t l = strlen(logbuf);
  snprintf(logbuf + l, sizeof logbuf - l, "%d %s\n", level, msg);
  pthread_mutex_unlock(&log_mu);
}

static void test_auth(void) {
  const char *pw = getenv("RCACHE_TEST_ACL_PASSWORD");
  CHECK(pw != NULL);
  char url[256];
  rcache_options o;
  rcache_options_init(&o);
  o.log_fn = logger;
  logbuf[0] = '\0';
  /* a wrong password: the handle opens (never fails because of the server), says why */
  snprintf(url, sizeof url, "redis://app:wrong-pw-xyz@127.0.0.1:%d?key_prefix=app:", port);
  rcache *c = open_url(url, &o);
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_EAUTH);
  CHECK(!h.healthy);
  CHECK_MSG(strstr(h.error, "WRONGPASS") || strstr(h.error, "auth"), "%s", h.error);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE); /* reads fall back */
  CHECK(strstr(logbuf, "wrong-pw-xyz") == NULL);
  CHECK(strstr(logbuf, "***") != NULL); /* the redacted URL is in the line */
  rcache_close(c);

  /* the right one, restricted by ACL to app:* */
  snprintf(url, sizeof url, "redis://app:%s@127.0.0.1:%d", pw, port);
  c = open_url(url, NULL);
  CHECK_EQ(rcache_set(c, "app:ok", "1", 1, 60), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "other:no", "1", 1, 60), RCACHE_EAUTH); /* NOPERM */
  CHECK(strstr(rcache_errmsg(c), "NOPERM") != NULL);
  rcache_close(c);
}

static void test_tls(void) {
  const char *dir = getenv("RCACHE_TEST_TLS_DIR"), *tport = getenv("RCACHE_TEST_TLS_PORT");
  CHECK(dir && tport);
  if (!dir || !tport) return;
  char url[512];
  rcache_health h;
  /* deadlines a loaded machine meets: the first contact's handshake (made in the background,
   * which the health checks wait for) must reach its verdict */
  rcache_options to;
  rcache_options_init(&to);
  to.connect_timeout_ms = AWAIT_MS;
  to.command_timeout_ms = AWAIT_MS;
  /* verified chain and host name */
  rcache *c = open_url(test_env_url("RCACHE_TEST_URL_TLS"), &to);
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "tls:k", "v", 1, 60), RCACHE_OK);
  rcache_close(c);
  /* an IP address is verified against the certificate's IP SAN */
  snprintf(url, sizeof url, "rediss://127.0.0.1:%s?tls_ca=%s/ca.pem", tport, dir);
  c = open_url(url, &to);
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  rcache_close(c);
  /* a certificate issued for another name */
  c = open_url(test_env_url("RCACHE_TEST_URL_TLS_OTHER"), &to);
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_ETLS);
  CHECK_MSG(strstr(h.error, "certificate") != NULL, "%s", h.error);
  rcache_close(c);
  /* an untrusted CA */
  snprintf(url, sizeof url, "rediss://localhost:%s?tls_ca=%s/rogue-ca.pem", tport, dir);
  c = open_url(url, NULL);
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_ETLS);
  rcache_close(c);
  /* a name the certificate does not carry, via tls_server_name */
  snprintf(url, sizeof url, "rediss://127.0.0.1:%s?tls_ca=%s/ca.pem&tls_server_name=evil.invalid",
           tport, dir);
  c = open_url(url, NULL);
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_ETLS);
  rcache_close(c);
  /* tls_insecure=1 only when asked, and logged as a warning */
  logbuf[0] = '\0';
  rcache_options o;
  rcache_options_init(&o);
  o.log_fn = logger;
  snprintf(url, sizeof url, "rediss://localhost:%s?tls_ca=%s/rogue-ca.pem&tls_insecure=1", tport,
           dir);
  c = open_url(url, &o);
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  CHECK(strstr(logbuf, "verification is OFF") != NULL);
  rcache_close(c);
  /* a client certificate (mutual TLS) */
  snprintf(url, sizeof url,
           "rediss://localhost:%s?tls_ca=%s/ca.pem&tls_cert=%s/client.pem&tls_key=%s/client.key",
           tport, dir, dir, dir);
  c = open_url(url, NULL);
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  rcache_close(c);
  /* a CA file that does not exist is a configuration error: rcache_open fails */
  snprintf(url, sizeof url, "rediss://localhost:%s?tls_ca=%s/nope.pem", tport, dir);
  c = NULL;
  CHECK_EQ(rcache_open(&c, url, NULL), RCACHE_ETLS);
  CHECK(c == NULL);
}

static void test_errors(void) {
  rcache *c = open_url(url_tcp, NULL);
  redisContext *r = raw();
  redisReply *x = redisCommand(r, "RPUSH rt:list a");
  freeReplyObject(x);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "rt:list", &v), RCACHE_ETYPE);
  CHECK(strstr(rcache_errmsg(c), "WRONGTYPE") != NULL);
  int64_t n;
  CHECK_EQ(rcache_incr(c, "rt:list", 1, &n), RCACHE_ETYPE);
  x = redisCommand(r, "SET rt:big 9223372036854775807");
  freeReplyObject(x);
  CHECK_EQ(rcache_incr(c, "rt:big", 1, &n), RCACHE_ERANGE);
  CHECK_EQ(rcache_incr_expire(c, "rt:big", 1, 10, &n), RCACHE_ERANGE);
  x = redisCommand(r, "DEL rt:list rt:big");
  freeReplyObject(x);
  rcache_close(c);
  redisFree(r);

  /* SELECT of a db the server does not have: the server's text reaches rcache_health */
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/99", port);
  c = open_url(url, NULL);
  rcache_health h;
  CHECK(rcache_health_check(c, &h) != RCACHE_OK);
  CHECK_MSG(strstr(h.error, "SELECT") != NULL, "%s", h.error);
  rcache_close(c);
}

/* On a private server (tests/support/redis_proc.h): maxmemory would disturb the shared one. */
static void test_oom(void) {
  rp_server n;
  bool up = rp_start(&n, &(rp_opts){.tag = "redis-oom"}) == 0;
  CHECK_MSG(up, "could not start a private redis-server");
  if (!up) return;
  char url[64];
  rp_url(&n, url, sizeof url, NULL);
  rcache *c = open_url(url, NULL);
  CHECK(rp_do(&n, "CONFIG SET maxmemory-policy noeviction"));
  CHECK(rp_do(&n, "CONFIG SET maxmemory 1"));
  CHECK_EQ(rcache_set(c, "k", "v", 1, 0), RCACHE_ESERVER);
  CHECK(strstr(rcache_errmsg(c), "OOM") != NULL);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_MISS); /* reads still work */
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK(st.available); /* an error reply is not an outage */
  CHECK(rp_do(&n, "CONFIG SET maxmemory 0"));
  CHECK_EQ(rcache_set(c, "k", "v", 1, 0), RCACHE_OK);
  rcache_close(c);
  rp_destroy(&n);
}

/* Keys are bytes: whatever they contain is one key, never a command. */
static void test_binary_keys(void) {
  rcache *c = open_url(url_tcp, NULL);
  const char *keys[] = {"bk:a key with spaces", "bk:crlf\r\nSET bk:injected 1\r\n",
                        "bk:*3\r\n$3\r\nSET\r\n$11\r\nbk:injected\r\n$1\r\n1\r\n", "bk:\"quoted\""};
  for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
    CHECK_EQ(rcache_set(c, keys[i], "v", 1, 60), RCACHE_OK);
    rcache_value v;
    CHECK_EQ(rcache_get(c, keys[i], &v), RCACHE_OK);
    CHECK(v.len == 1 && v.data[0] == 'v');
    rcache_value_free(&v);
  }
  redisContext *r = raw();
  redisReply *x = redisCommand(r, "EXISTS bk:injected");
  CHECK(x && x->type == REDIS_REPLY_INTEGER && x->integer == 0);
  freeReplyObject(x);
  x = redisCommand(r, "EXISTS %s", keys[1]); /* the exact bytes, as one key */
  CHECK(x && x->type == REDIS_REPLY_INTEGER && x->integer == 1);
  freeReplyObject(x);
  redisFree(r);
  uint64_t d = 0;
  CHECK_EQ(rcache_delete_prefix(c, "bk:", &d), RCACHE_OK);
  CHECK_EQ(d, 4);
  rcache_close(c);
}

/* CLIENT SETNAME and SELECT happen on every new connection. */
static void test_setup(void) {
  char url[128];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d/3?client_name=rcache-setup-test", port);
  rcache *c = open_url(url, NULL);
  CHECK_EQ(rcache_set(c, "setup:k", "v", 1, 60), RCACHE_OK);
  redisContext *r = raw();
  redisReply *x = redisCommand(r, "CLIENT LIST");
  CHECK(x && x->type == REDIS_REPLY_STRING && strstr(x->str, "name=rcache-setup-test") &&
        strstr(x->str, "db=3"));
  freeReplyObject(x);
  x = redisCommand(r, "EXISTS setup:k"); /* db 0: not there */
  CHECK(x && x->integer == 0);
  freeReplyObject(x);
  freeReplyObject(redisCommand(r, "SELECT 3"));
  x = redisCommand(r, "EXISTS setup:k");
  CHECK(x && x->integer == 1);
  freeReplyObject(x);
  freeReplyObject(redisCommand(r, "DEL setup:k"));
  redisFree(r);
  rcache_close(c);
}

/* 32 threads through a pool of 4: every call served, connections bounded. */
static rcache *pool_c;
static atomic_int pool_ok;
static void *pool_worker(void *arg) {
  char key[32];
  snprintf(key, sizeof key, "pool:%d", (int)(intptr_t)arg);
  for (int i = 0; i < 200; i++) {
    int64_t n;
    if (rcache_incr(pool_c, key, 1, &n) == RCACHE_OK && n == i + 1) atomic_fetch_add(&pool_ok, 1);
  }
  return NULL;
}

static void test_pool(void) {
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 4;
  o.key_prefix = "pooltest:";
  char name[64]; /* other tests share the server: count this handle's connections only */
  snprintf(name, sizeof name, "rcache-pooltest-%d", (int)getpid());
  o.client_name = name;
  o.command_timeout_ms = 2000;
  pool_c = open_url(url_tcp, &o);
  pthread_t t[32];
  for (int i = 0; i < 32; i++)
    pthread_create(&t[i], NULL, pool_worker, (void *)(intptr_t)i);
  for (int i = 0; i < 32; i++)
    pthread_join(t[i], NULL);
  CHECK_EQ(atomic_load(&pool_ok), 32 * 200);
  /* counted once the 32 threads are done: the pool keeps what it opened (idle connections
   * are not closed), so this is every connection the burst needed. (Counted while they
   * started, as before, it could be 0: under ASan none had connected yet.) */
  redisContext *r = raw();
  redisReply *x = redisCommand(r, "CLIENT LIST");
  int conns = 0;
  char needle[80];
  snprintf(needle, sizeof needle, "name=%s ", name);
  for (const char *p = x->str; (p = strstr(p, needle)); p++)
    conns++;
  freeReplyObject(x);
  CHECK_MSG(conns >= 1 && conns <= 4, "%d connections named %s", conns, name);
  uint64_t d;
  rcache_flush(pool_c);
  (void)d;
  redisFree(r);
  rcache_close(pool_c);
}

/* The per-server gauges (rcache_get_server_stats) against a private server that is paused:
 * a call stuck on the only connection is "busy", a second one "waiting", and both are
 * gone once the server answers again. Polled, never timed. */
static rcache *gauge_c;
static void *gauge_get(void *arg) {
  rcache_value v;
  rcache_status s = rcache_get(gauge_c, (const char *)arg, &v);
  if (s == RCACHE_OK) rcache_value_free(&v);
  return (void *)(intptr_t)s;
}

static bool gauges_reach(rcache *c, unsigned busy, unsigned calls, unsigned waiting,
                         rcache_server_stats *g) {
  for (int i = 0; i < 1000; i++) { /* ≤ 10 s */
    if (rcache_get_server_stats(c, 0, g) == RCACHE_OK && g->busy == busy && g->calls == calls &&
        g->waiting == waiting)
      return true;
    rp_sleep_ms(10);
  }
  return false;
}

#define GAUGES(c, b, k, w, g)                                                                      \
  CHECK_MSG(gauges_reach(c, b, k, w, g), "busy %u calls %u waiting %u, not %d %d %d", (g)->busy,   \
            (g)->calls, (g)->waiting, b, k, w)

/* pipeline_depth 1: the second call waits for the connection; else it queues on it. */
static void server_gauges(rp_server *srv, const char *url, int depth) {
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 1;
  o.pipeline_depth = depth;
  o.connect_timeout_ms = 30000; /* the waiting call waits for the connection this long */
  o.command_timeout_ms = 30000; /* longer than the polls below: the calls stay stuck */
  gauge_c = open_url(url, &o);
  CHECK_EQ(rcache_set(gauge_c, "g", "v", 1, 0), RCACHE_OK);
  rcache_server_stats g;
  CHECK_EQ(rcache_get_server_stats(gauge_c, 0, &g), RCACHE_OK);
  CHECK_EQ(g.size, sizeof g);
  char want[64];
  snprintf(want, sizeof want, "127.0.0.1:%d", srv->port);
  CHECK_STR(g.server, want);
  CHECK_EQ(g.breaker_state, RCACHE_BREAKER_CLOSED);
  CHECK_EQ(g.connections, 1);
  GAUGES(gauge_c, 0, 0, 0, &g);
  CHECK_EQ(rcache_get_server_stats(gauge_c, 1, &g), RCACHE_MISS);
  CHECK_EQ(g.connections, 0);

  rp_pause(srv);
  pthread_t t1, t2;
  pthread_create(&t1, NULL, gauge_get, "g");
  GAUGES(gauge_c, 1, 1, 0, &g);
  pthread_create(&t2, NULL, gauge_get, "g");
  if (depth == 1)
    GAUGES(gauge_c, 1, 1, 1, &g);
  else
    GAUGES(gauge_c, 1, 2, 0, &g);
  size_t need = rcache_metrics_prometheus(gauge_c, NULL, 0);
  char *text = malloc(need + 1);
  if (text) {
    rcache_metrics_prometheus(gauge_c, text, need + 1);
    char line[128];
    snprintf(line, sizeof line, "rcache_server_calls{client=\"rcache\",server=\"%s\"} %d\n", want,
             depth == 1 ? 1 : 2);
    CHECK_MSG(strstr(text, line) != NULL, "no %s", line);
    snprintf(line, sizeof line, "rcache_server_calls_waiting{client=\"rcache\",server=\"%s\"} %d\n",
             want, depth == 1 ? 1 : 0);
    CHECK_MSG(strstr(text, line) != NULL, "no %s", line);
    free(text);
  }
  rp_resume(srv);
  void *r1, *r2;
  pthread_join(t1, &r1);
  pthread_join(t2, &r2);
  CHECK_EQ((rcache_status)(intptr_t)r1, RCACHE_OK);
  CHECK_EQ((rcache_status)(intptr_t)r2, RCACHE_OK);
  GAUGES(gauge_c, 0, 0, 0, &g);
  CHECK_EQ(g.connections, 1);
  rcache_close(gauge_c);
}

static void test_server_gauges(void) {
  rp_server srv;
  if (rp_start(&srv, &(rp_opts){.tag = "gauges"}) != 0) {
    CHECK_MSG(false, "could not start a private server");
    return;
  }
  char url[256];
  rp_url(&srv, url, sizeof url, NULL);
  server_gauges(&srv, url, 32);
  server_gauges(&srv, url, 1);
  rp_destroy(&srv);
}

/* Down at open: rcache_open succeeds at once, calls fall back fast. */
static void test_down_at_open(void) {
  rcache_options o;
  rcache_options_init(&o);
  o.log_fn = logger;
  rcache *c = open_url("redis://127.0.0.1:1", &o);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_EUNAVAILABLE);
  CHECK_EQ(rcache_set(c, "k", "v", 1, 0), RCACHE_EUNAVAILABLE);
  int64_t n;
  CHECK_EQ(rcache_incr(c, "k", 1, &n), RCACHE_EUNAVAILABLE);
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_EUNAVAILABLE);
  CHECK_MSG(strstr(h.error, "refused") != NULL, "%s", h.error);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK(!st.available);
  CHECK_EQ(st.breaker_state, RCACHE_BREAKER_OPEN);
  CHECK(st.fallbacks >= 3);
  rcache_server_stats g;
  CHECK_EQ(rcache_get_server_stats(c, 0, &g), RCACHE_OK);
  CHECK_STR(g.server, "127.0.0.1:1");
  CHECK_EQ(g.breaker_state, RCACHE_BREAKER_OPEN);
  CHECK_EQ(g.connections, 0);
  rcache_close(c);
}

int main(void) {
  url_tcp = test_env_url("RCACHE_TEST_URL_TCP");
  port = atoi(test_env_url("RCACHE_TEST_PORT"));
  test_errors();
  test_binary_keys();
  test_setup();
  test_pool();
  test_server_gauges();
  test_auth();
  test_tls();
  test_oom();
  test_down_at_open();
  return test_report("test_redis");
}
