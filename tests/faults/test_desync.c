/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Bytes nobody asked for (issue 15, point 2): a loopback proxy in front of the server
 * injects replies into the server→client stream, as a broken server, a middlebox or a
 * connection left out of step would. Whatever the moment, no call answers RCACHE_OK with
 * a value that is not the key's, the connection that carried the junk is closed (a new
 * one is accepted by the proxy), the breaker counts it as a transport failure, and the
 * calls that follow are right:
 *  a) junk arriving while the connection is idle (a late reply): found before the next
 *     call uses the connection;
 *  b) an integer reply in front of a GET's reply: a type GET cannot get;
 *  c) a string reply right after a GET's reply (in the same write): bytes left over.
 * Then the same three through rcache_get_async, whose GETs the loop drives on a connection
 * of its own (docs/async.md, "The loop's own I/O"): a reply is taken only for a request
 * written whole and unanswered, of a type GET can get; junk closes that connection. And:
 *  d) that connection lost after an INCRBY was written, before its reply: the increment may
 *     have been applied, so it is not run again (unavailable, as the blocking call says), and
 *     the counter moved once.
 * Last, e) calls written together whose connection fails on the reply of one of them (too
 * large): the others ran; an UNLINK among them must not run again (its second run would
 * answer "absent" for the key the first deleted): never RCACHE_MISS for a key that existed.
 * And f) a callback that forks, with replies on their way and a request buffered: the
 * child, back in rcache_async_process, must not read or write the parent's loop connection
 * (the parent would then take the child's replies for its own).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "await.h"
#include "helper_proxy.h"
#include "rcache/rcache.h"
#include "test.h"

static rcache *c;
static proxy *px;
static bool async_mode; /* the gets go through rcache_get_async and a loop */

static void sleep_ms(int ms) {
  struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* One get of key: true when it is exactly want; a non-OK status is allowed only when
 * allow_fail. Never another value as RCACHE_OK. */
typedef struct got {
  int calls;
  rcache_status s;
  rcache_value v;
} got;

static void on_got(void *ud, rcache_status s, rcache_value v) {
  got *g = ud;
  g->calls++;
  g->s = s;
  g->v = v;
}

/* rcache_get through the non-blocking API: started, then a loop on rcache_async_fd until the
 * callback ran (10 s at most: a lost callback fails the test, it does not hang it). */
static rcache_status get_async(const char *key, rcache_value *v) {
  got g = {0};
  rcache_status s = rcache_get_async(c, key, on_got, &g);
  if (s != RCACHE_OK) return s;
  for (int i = 0; i < 1000 && !g.calls; i++)
    await_async_turn(c, 10, NULL);
  CHECK_MSG(g.calls == 1, "get_async %s: %d callbacks", key, g.calls);
  *v = g.v;
  return g.calls ? g.s : RCACHE_EUNAVAILABLE;
}

static bool get_is(const char *key, const char *want, bool allow_fail, const char *what) {
  rcache_value v = {0};
  rcache_status s = async_mode ? get_async(key, &v) : rcache_get(c, key, &v);
  bool right = s == RCACHE_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0;
  CHECK_MSG(right || (allow_fail && s != RCACHE_OK), "%s: get %s: status %d, value '%.*s'", what,
            key, s, s == RCACHE_OK ? (int)v.len : 0, s == RCACHE_OK ? v.data : "");
  rcache_value_free(&v);
  return right;
}

/* Every key right within 3 s (the breaker may have opened: the prober brings it back). */
static void all_right_again(const char *what) {
  bool ok = false;
  for (int i = 0; i < 300 && !ok; i++) {
    ok = true;
    for (int k = 0; k < 5 && ok; k++) {
      char key[16], val[16];
      snprintf(key, sizeof key, "ds:%d", k);
      snprintf(val, sizeof val, "value-%d", k);
      ok = get_is(key, val, true, what);
    }
    if (!ok) sleep_ms(10);
  }
  CHECK_MSG(ok, "%s: the keys were not answered right again within 3 s", what);
  for (int k = 0; k < 5; k++) { /* and then every call is */
    char key[16], val[16];
    snprintf(key, sizeof key, "ds:%d", k);
    snprintf(val, sizeof val, "value-%d", k);
    get_is(key, val, false, what);
  }
}

static void on_int(void *ud, rcache_status s, int64_t v) {
  got *g = ud;
  g->calls++;
  g->s = s;
  (void)v;
}

/* d) above, on the loop connection (async_mode): its INCRBY's reply cut in half. */
static void lost_incr(void) {
  const char *what = "async d) the connection lost after an INCRBY was written";
  CHECK_EQ(rcache_set(c, "ds:n", "10", 2, 300), RCACHE_OK);
  all_right_again(what); /* and the loop connection up */
  uint64_t acc0 = proxy_accepted(px);
  proxy_set_mode(px, PROXY_HALF, 0);
  got g = {0};
  CHECK_EQ(rcache_incr_async(c, "ds:n", 1, on_int, &g), RCACHE_OK);
  for (int i = 0; i < 1000 && !g.calls; i++)
    await_async_turn(c, 10, NULL);
  proxy_set_mode(px, PROXY_PASS, 0);
  CHECK_MSG(g.calls == 1, "%s: %d callbacks", what, g.calls);
  CHECK_MSG(g.s == RCACHE_EUNAVAILABLE, "%s: %s", what, rcache_strerror(g.s));
  int64_t n = 0;
  rcache_status s = RCACHE_EUNAVAILABLE;
  for (int i = 0; i < 300 && s != RCACHE_OK; i++) { /* the breaker opened: the prober closes it */
    s = rcache_get_i64(c, "ds:n", &n);
    if (s != RCACHE_OK) sleep_ms(10);
  }
  CHECK_EQ(s, RCACHE_OK);
  CHECK_MSG(n == 11, "%s: the counter is %lld, not 11", what, (long long)n);
  CHECK_MSG(proxy_accepted(px) > acc0, "%s: the cut connection was kept", what);
  printf("%s: unavailable, counter 10 -> %lld\n", what, (long long)n);
}

static void scenario(const char *what, const char *junk, proxy_inject_when when) {
  rcache_stats s0, s1;
  rcache_get_stats(c, &s0);
  uint64_t acc0 = proxy_accepted(px), inj0 = proxy_injected(px);
  proxy_inject(px, junk, strlen(junk), when);
  if (when == PROXY_INJECT_NOW) {
    for (int i = 0; i < 100 && proxy_injected(px) == inj0; i++)
      sleep_ms(5);
    sleep_ms(20); /* sent: now in the client's socket buffer */
  }
  /* the calls right after: the value of their own key, or a failure; never another */
  for (int k = 0; k < 5; k++) {
    char key[16], val[16];
    snprintf(key, sizeof key, "ds:%d", k);
    snprintf(val, sizeof val, "value-%d", k);
    get_is(key, val, true, what);
  }
  CHECK_MSG(proxy_injected(px) == inj0 + 1, "%s: the junk was not delivered", what);
  all_right_again(what);
  rcache_get_stats(c, &s1);
  CHECK_MSG(proxy_accepted(px) > acc0, "%s: the connection with the junk was kept", what);
  if (when != PROXY_INJECT_NOW) /* a desynchronised exchange is a transport failure */
    CHECK_MSG(s1.breaker_opens > s0.breaker_opens, "%s: the breaker did not count it", what);
  printf("%s: %llu new connection(s), breaker opens %llu -> %llu\n", what,
         (unsigned long long)(proxy_accepted(px) - acc0), (unsigned long long)s0.breaker_opens,
         (unsigned long long)s1.breaker_opens);
}

typedef struct {
  rcache *h;
  int after_ms;
  const char *key;
  bool del;
  rcache_status s;
} caller;

static void *call_one(void *arg) {
  caller *k = arg;
  sleep_ms(k->after_ms);
  rcache_value v;
  if (k->del) {
    k->s = rcache_delete(k->h, k->key);
  } else {
    k->s = rcache_get(k->h, k->key, &v);
    if (k->s == RCACHE_OK) rcache_value_free(&v);
  }
  return NULL;
}

/* e) above. One connection, replies held 300 ms by the proxy: a GET leads; a GET of a value
 * over max_value_bytes and an UNLINK queue behind it and go out together when it is
 * answered; the large reply fails the connection. */
static void sibling_too_large(const char *url) {
  const char *what = "e) an UNLINK written with a call whose reply is too large";
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 1;
  o.pipeline_depth = 8;
  o.max_value_bytes = 1024;
  o.command_timeout_ms = 3000;
  rcache *h = NULL;
  CHECK_EQ(rcache_open(&h, url, &o), RCACHE_OK);
  if (!h) return;
  static char big[64 << 10]; /* over max_value_bytes and its reply's slack */
  memset(big, 'x', sizeof big);
  CHECK_EQ(rcache_set(c, "ds:big", big, sizeof big, 300), RCACHE_OK); /* (c: no such limit) */
  CHECK_EQ(rcache_set(h, "ds:small", "s", 1, 300), RCACHE_OK);
  for (int round = 0; round < 3; round++) {
    CHECK_EQ(rcache_set(h, "ds:victim", "v", 1, 300), RCACHE_OK);
    rcache_value v;
    CHECK_EQ(rcache_get(h, "ds:small", &v), RCACHE_OK); /* the connection has served */
    rcache_value_free(&v);
    proxy_set_mode(px, PROXY_DELAY, 300);
    caller k[3] = {{h, 0, "ds:small", false, RCACHE_OK},
                   {h, 60, "ds:big", false, RCACHE_OK},
                   {h, 120, "ds:victim", true, RCACHE_OK}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
      pthread_create(&t[i], NULL, call_one, &k[i]);
    for (int i = 0; i < 3; i++)
      pthread_join(t[i], NULL);
    proxy_set_mode(px, PROXY_PASS, 0);
    CHECK_MSG(k[1].s == RCACHE_ETOOBIG, "%s: the large value read as %s", what,
              rcache_strerror(k[1].s));
    CHECK_MSG(k[2].s != RCACHE_MISS, "%s, round %d: the delete of an existing key said MISS", what,
              round);
    int64_t ttl = 0; /* whatever it said, the key is gone (it ran) */
    rcache_status s = RCACHE_EUNAVAILABLE;
    for (int i = 0; i < 300 && s == RCACHE_EUNAVAILABLE; i++) {
      s = rcache_ttl(c, "ds:victim", &ttl);
      if (s == RCACHE_EUNAVAILABLE) sleep_ms(10);
    }
    CHECK_MSG(s == RCACHE_OK && ttl == -2, "%s: victim after the delete: %s, ttl %lld", what,
              rcache_strerror(s), (long long)ttl);
    printf("%s, round %d: delete said %s\n", what, round, rcache_strerror(k[2].s));
  }
  rcache_close(h);
}

static int fk_pending, fk_wrong, fk_failed;
static pid_t fk_child = -1;

static void fk_got(void *ud, rcache_status s, rcache_value v) {
  const char *key = ud; /* "ds:N" holds "value-N" */
  char want[16];
  snprintf(want, sizeof want, "value-%s", key + 3);
  if (s == RCACHE_OK && (v.len != strlen(want) || memcmp(v.data, want, v.len) != 0)) fk_wrong++;
  if (s == RCACHE_MISS) fk_wrong++; /* every key exists */
  if (s != RCACHE_OK && s != RCACHE_MISS) fk_failed++;
  if (s == RCACHE_OK) rcache_value_free(&v);
  fk_pending--;
}

static void fk_forking(void *ud, rcache_status s, rcache_value v) {
  fk_got(ud, s, v);
  fk_pending++;
  CHECK_EQ(rcache_get_async(c, "ds:2", fk_got, "ds:2"), RCACHE_OK); /* buffered, not written */
  fflush(stdout);
  fk_child = fork();
  if (fk_child == 0) sleep_ms(50); /* then back into rcache_async_process, in the child */
}

static void fk_run(int loops, const char *key) {
  for (int i = 0; i < loops; i++) {
    if (key) {
      fk_pending++;
      CHECK_EQ(rcache_get_async(c, key, fk_got, (void *)key), RCACHE_OK);
    }
    await_async_wait(c, 2);
    sleep_ms(1); /* replies pile up: the forking callback has more after it */
    rcache_async_process(c);
    if (fk_child == 0) _exit(0); /* the child: back from rcache_async_process, done */
  }
}

/* f) above, the replies held 20 ms by the proxy so that some are on their way. */
static void fork_in_callback(void) {
  const char *what = "f) a callback that forks";
  all_right_again(what);
  proxy_set_mode(px, PROXY_DELAY, 20);
  fk_pending = 1;
  CHECK_EQ(rcache_get_async(c, "ds:1", fk_got, "ds:1"), RCACHE_OK);
  fk_run(50, NULL);
  fk_pending++;
  CHECK_EQ(rcache_get_async(c, "ds:1", fk_forking, "ds:1"), RCACHE_OK);
  fk_run(300, "ds:3");
  for (int i = 0; i < 500 && fk_pending > 0; i++)
    fk_run(1, NULL);
  CHECK(fk_child > 0);
  int st = 0;
  if (fk_child > 0) waitpid(fk_child, &st, 0);
  proxy_set_mode(px, PROXY_PASS, 0);
  CHECK_MSG(fk_pending == 0, "%s: %d callbacks missing", what, fk_pending);
  CHECK_MSG(fk_wrong == 0, "%s: %d wrong answers in the parent (%d failed)", what, fk_wrong,
            fk_failed);
  CHECK_MSG(fk_failed == 0, "%s: %d calls failed in the parent", what, fk_failed);
  printf("%s: %d wrong answers, %d failed in the parent\n", what, fk_wrong, fk_failed);
}

int main(void) {
  const char *port = getenv("RCACHE_TEST_PORT");
  if (!port || !*port) {
    fprintf(stderr, "FAIL: RCACHE_TEST_PORT is not set\n");
    return test_report("test_desync") | 1;
  }
  px = proxy_start(atoi(port));
  CHECK(px != NULL);
  if (!px) return test_report("test_desync");
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = 1;         /* one connection: the junk is surely on the one used next */
  o.breaker_failures = 1;  /* one transport failure opens it: counted, visibly */
  o.reconnect_min_ms = 20; /* and the prober closes it soon */
  o.reconnect_max_ms = 200;
  char url[96];
  snprintf(url, sizeof url, "redis://127.0.0.1:%d?key_prefix=desync:", proxy_port(px));
  CHECK_EQ(rcache_open(&c, url, &o), RCACHE_OK);
  for (int k = 0; k < 5; k++) {
    char key[16], val[16];
    snprintf(key, sizeof key, "ds:%d", k);
    snprintf(val, sizeof val, "value-%d", k);
    CHECK_EQ(rcache_set(c, key, val, strlen(val), 300), RCACHE_OK);
  }
  all_right_again("warm-up");
  scenario("a) junk on the idle connection", "$5\r\nWRONG\r\n", PROXY_INJECT_NOW);
  scenario("b) an integer before a GET's reply", ":7\r\n", PROXY_INJECT_BEFORE);
  scenario("c) a string after a GET's reply", "$5\r\nWRONG\r\n", PROXY_INJECT_AFTER);
  /* the same, the gets driven by the loop: the first one has a worker open the loop
   * connection, the next ones go on it */
  async_mode = true;
  all_right_again("async warm-up");
  scenario("async a) junk on the idle loop connection", "$5\r\nWRONG\r\n", PROXY_INJECT_NOW);
  scenario("async b) an integer before a GET's reply", ":7\r\n", PROXY_INJECT_BEFORE);
  scenario("async c) a string after a GET's reply", "$5\r\nWRONG\r\n", PROXY_INJECT_AFTER);
  lost_incr();
  fork_in_callback();
  async_mode = false;
  sibling_too_large(url);
  rcache_close(c);
  proxy_stop(px);
  return test_report("test_desync");
}
