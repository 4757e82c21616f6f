/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Implicit pipelining (issue 16): many threads on one handle share its pool_size
 * connections, and no caller ever gets another caller's reply. On a private server (the
 * test pauses it with CLIENT PAUSE):
 *  a) 64 threads on 2 connections, set + get + incr of their own keys with values of
 *     many sizes (one thread with 1 MiB values): every get answers exactly what its thread
 *     wrote, every counter ends at its count, and the server never saw more than 2
 *     connections of the handle;
 *  b) sharing, shown by behaviour: while the server is paused, 16 callers on 1 connection
 *     with an acquire bound (connect_timeout_ms) far shorter than the pause all get their
 *     answers once it ends: they joined busy connections. With pipeline_depth = 1 (no
 *     pipelining) the same callers time out waiting for a connection, which shows the
 *     check can fail;
 *  c) deadlines stay per call: with the server paused for 3 s and a command timeout of
 *     200 ms, every queued and in-flight caller returns RCACHE_ETIMEOUT well before the
 *     pause ends (bounded at 2 s), callers that arrive while earlier ones time out (their
 *     replies dropped when they come: tombstones) get right values or a timeout, and
 *     after the pause every key reads right;
 *  d) one broken connection is one failure for the breaker: 7 SETs pipelined on one
 *     connection behind a GET (the engine's own jobs, written together while writes are
 *     paused), the connection killed: every SET fails, the breaker (3 failures) stays
 *     closed and the pool serves the next call. Before, each SET counted and the breaker
 *     opened.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exchange.h"
#include "handle.h"
#include "rcache/rcache.h"
#include "redis_proc.h"
#include "test.h"

static rp_server srv;
static char url[256];

static rcache *open_handle(int pool, int depth, int connect_ms, int command_ms) {
  rcache_options o;
  rcache_options_init(&o);
  o.pool_size = pool;
  o.pipeline_depth = depth;
  o.connect_timeout_ms = connect_ms;
  o.command_timeout_ms = command_ms;
  o.client_name = "rcache-pipe";
  o.breaker_failures = 1000000; /* the timeouts here are the subject, not an outage */
  o.breaker_failure_rate = 0;   /* off */
  o.max_value_bytes = (size_t)2 << 20;
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_MSG(s == RCACHE_OK, "open: %s", rcache_strerror(s));
  return c;
}

/* How many connections named rcache-pipe the server has now. */
static int handle_conns(void) {
  redisReply *r = rp_command(&srv, "CLIENT LIST");
  int n = 0;
  if (r && r->type == REDIS_REPLY_STRING)
    for (const char *p = r->str; (p = strstr(p, "name=rcache-pipe ")); p++)
      n++;
  if (r) freeReplyObject(r);
  return n;
}

/* ---- a) many threads, two connections -------------------------------------------------------- */

#define THREADS 64
#define ROUNDS 150

typedef struct worker {
  rcache *c;
  int id;
  int ok, wrong, failed, max_conns;
  int64_t counter;
} worker;

static atomic_int running;

/* A value for (thread, round): its size varies, its bytes say whose it is. */
static size_t make_value(char *buf, size_t cap, int id, int round) {
  size_t len = id == 0 ? (size_t)1 << 20 : (size_t)(16 + (round * 37 + id * 101) % 3000);
  if (len > cap) len = cap;
  int head = snprintf(buf, cap, "%d:%d:", id, round);
  for (size_t i = (size_t)head; i < len; i++)
    buf[i] = (char)('a' + (i * 7 + (size_t)id + (size_t)round) % 26);
  return len;
}

static void *work(void *arg) {
  worker *w = arg;
  size_t cap = (size_t)1 << 20;
  char *val = malloc(cap);
  for (int i = 0; i < ROUNDS && val; i++) {
    char key[64], ckey[64];
    snprintf(key, sizeof key, "pipe:%d:%d", w->id, i % 8);
    snprintf(ckey, sizeof ckey, "pipe:n:%d", w->id);
    size_t len = make_value(val, cap, w->id, i);
    rcache_status s = rcache_set(w->c, key, val, len, 60);
    rcache_value v = {0};
    rcache_status g = rcache_get(w->c, key, &v);
    int64_t n = 0;
    rcache_status inc = rcache_incr_expire(w->c, ckey, 1, 60, &n);
    if (s == RCACHE_OK && g == RCACHE_OK && v.len == len && memcmp(v.data, val, len) == 0)
      w->ok++;
    else if (g == RCACHE_OK) {
      if (w->wrong++ < 3)
        fprintf(stderr, "  thread %d: %s answered %zu bytes '%.20s' (set %d)\n", w->id, key, v.len,
                v.data ? v.data : "", s);
    } else if (w->failed++ < 3) {
      fprintf(stderr, "  thread %d: set %d, get %d: %s\n", w->id, s, g, rcache_errmsg(w->c));
    }
    if (inc == RCACHE_OK) {
      if (n != w->counter + 1 && w->wrong++ < 3)
        fprintf(stderr, "  thread %d: counter %lld after %lld\n", w->id, (long long)n,
                (long long)w->counter);
      w->counter = n;
    } else
      w->failed++;
    rcache_value_free(&v);
  }
  free(val);
  atomic_fetch_sub(&running, 1);
  return NULL;
}

static void many_threads(void) {
  rcache *c = open_handle(2, 32, 2000, 5000);
  if (!c) return;
  pthread_t th[THREADS];
  worker w[THREADS];
  atomic_store(&running, THREADS);
  for (int i = 0; i < THREADS; i++) {
    w[i] = (worker){.c = c, .id = i};
    pthread_create(&th[i], NULL, work, &w[i]);
  }
  int most = 0;
  while (atomic_load(&running) > 0) { /* the handle's connections, seen by the server */
    int n = handle_conns();
    if (n > most) most = n;
    rp_sleep_ms(20);
  }
  int ok = 0, wrong = 0, failed = 0;
  for (int i = 0; i < THREADS; i++) {
    pthread_join(th[i], NULL);
    ok += w[i].ok;
    wrong += w[i].wrong;
    failed += w[i].failed;
    CHECK_MSG(w[i].counter == ROUNDS, "thread %d: its counter is %lld after %d increments", i,
              (long long)w[i].counter, ROUNDS);
  }
  CHECK_MSG(wrong == 0, "%d wrong answers", wrong);
  CHECK_MSG(failed == 0, "%d failed calls", failed);
  CHECK_EQ(ok, THREADS * ROUNDS);
  CHECK_MSG(most >= 1 && most <= 2, "the server saw %d connections of the handle (pool_size 2)",
            most);
  rcache_close(c);
}

/* ---- b) and c): the server paused ------------------------------------------------------------ */

typedef struct caller {
  rcache *c;
  int id;
  rcache_status s;
  bool right;
  int64_t took_ms;
} caller;

static void *get_one(void *arg) {
  caller *k = arg;
  char key[32], want[32];
  snprintf(key, sizeof key, "paused:%d", k->id);
  snprintf(want, sizeof want, "value-%d", k->id);
  rcache_value v = {0};
  int64_t t0 = rp_now_ms();
  k->s = rcache_get(k->c, key, &v);
  k->took_ms = rp_now_ms() - t0;
  k->right = k->s == RCACHE_OK && v.len == strlen(want) && memcmp(v.data, want, v.len) == 0;
  rcache_value_free(&v);
  return NULL;
}

#define CALLERS 16

static void seed_keys(rcache *c) {
  for (int i = 0; i < CALLERS; i++) {
    char key[32], val[32];
    snprintf(key, sizeof key, "paused:%d", i);
    snprintf(val, sizeof val, "value-%d", i);
    CHECK(rcache_set(c, key, val, strlen(val), 600) == RCACHE_OK);
  }
}

/* Starts n callers (the first `early` of them before the others, by early_ms), waits
 * for all. */
static void run_callers(rcache *c, caller *k, int n, int early, int early_ms) {
  pthread_t th[CALLERS];
  for (int i = 0; i < n; i++) {
    if (i == early && early_ms) rp_sleep_ms(early_ms);
    k[i] = (caller){.c = c, .id = i};
    pthread_create(&th[i], NULL, get_one, &k[i]);
  }
  for (int i = 0; i < n; i++)
    pthread_join(th[i], NULL);
}

static void shared_while_paused(int depth, bool expect_shared) {
  /* one connection (made before the pause: a new one could not be set up during it),
   * waited for no longer than 100 ms; the server is paused for 1 s */
  rcache *c = open_handle(1, depth, 100, 5000);
  if (!c) return;
  seed_keys(c);
  CHECK(rp_do(&srv, "CLIENT PAUSE 1000 ALL"));
  caller k[CALLERS];
  run_callers(c, k, CALLERS, 0, 0);
  int right = 0, wrong = 0;
  for (int i = 0; i < CALLERS; i++) {
    right += k[i].right;
    wrong += k[i].s == RCACHE_OK && !k[i].right;
    if (expect_shared && !k[i].right)
      fprintf(stderr, "  caller %d: status %d after %lld ms: %s\n", i, k[i].s,
              (long long)k[i].took_ms, rcache_errmsg(c));
  }
  CHECK_MSG(wrong == 0, "depth %d: %d wrong answers", depth, wrong);
  if (expect_shared)
    CHECK_MSG(right == CALLERS, "depth %d: %d of %d callers answered right", depth, right, CALLERS);
  else /* the connection is held through the pause: the others found none in 100 ms */
    CHECK_MSG(right <= 2, "depth %d (no pipelining): %d of %d callers answered right", depth, right,
              CALLERS);
  CHECK(rp_do(&srv, "CLIENT UNPAUSE"));
  rcache_close(c);
}

static void deadlines_while_paused(void) {
  rcache *c = open_handle(2, 32, 1000, 200);
  if (!c) return;
  seed_keys(c);
  CHECK(rp_do(&srv, "CLIENT PAUSE 3000 ALL"));
  int64_t t0 = rp_now_ms();
  caller k[CALLERS];
  run_callers(c, k, CALLERS, 0, 0);
  for (int i = 0; i < CALLERS; i++) {
    CHECK_MSG(k[i].s == RCACHE_EUNAVAILABLE, "caller %d: status %d during the pause", i, k[i].s);
    CHECK_MSG(k[i].took_ms < 2000, "caller %d returned after %lld ms (command timeout 200 ms)", i,
              (long long)k[i].took_ms);
  }
  /* callers arriving around the end of the pause, half 150 ms before the others, while
   * earlier ones leave: right, or a timeout; never another's value */
  int64_t wait = t0 + 2850 - rp_now_ms();
  if (wait > 0) rp_sleep_ms((int)wait);
  caller k2[CALLERS];
  run_callers(c, k2, CALLERS, CALLERS / 2, 150);
  for (int i = 0; i < CALLERS; i++)
    CHECK_MSG(k2[i].right || k2[i].s == RCACHE_EUNAVAILABLE,
              "caller %d around the end of the pause: status %d, right %d", i, k2[i].s,
              k2[i].right);
  CHECK(rp_do(&srv, "CLIENT UNPAUSE"));
  caller k3[CALLERS];
  run_callers(c, k3, CALLERS, 0, 0);
  for (int i = 0; i < CALLERS; i++)
    CHECK_MSG(k3[i].right, "caller %d after the pause: status %d", i, k3[i].s);
  rcache_close(c);
}

/* ---- d) a broken connection is one failure ------------------------------------------------ */

#define PIPELINED 8

typedef struct killed_jobs {
  rcache *c;
  rcache__pool *p;
  rcache__job jobs[PIPELINED];
} killed_jobs;

static void *run_jobs(void *arg) {
  killed_jobs *kj = arg;
  rcache__exchange_all(&kj->c->ctx, kj->jobs, PIPELINED);
  return NULL;
}

/* The query buffer bytes of the server's connections named rcache-pipe (the pool's). */
static long pool_qbuf(void) {
  redisReply *r = rp_command(&srv, "CLIENT LIST");
  long q = 0;
  if (r && r->type == REDIS_REPLY_STRING)
    for (const char *p = r->str; (p = strstr(p, "name=rcache-pipe ")); p++) {
      const char *f = strstr(p, " qbuf=");
      if (f) q += atol(f + 6);
    }
  if (r) freeReplyObject(r);
  return q;
}

static void broken_connection_is_one_failure(void) {
  rcache_options o;
  rcache_options_init(&o);
  o.client_name = "rcache-pipe";
  o.pool_size = 1; /* every job on one connection */
  o.breaker_failures = 3;
  o.command_timeout_ms = 10000; /* the kill ends the calls, not a deadline */
  o.connect_timeout_ms = 2000;
  killed_jobs kj = {0};
  CHECK_EQ(rcache_open(&kj.c, url, &o), RCACHE_OK);
  if (!kj.c) return;
  /* a pool of the handle's own kind, whose calls this test makes itself */
  rcache__conn_setup setup = {.ctx = &kj.c->ctx};
  rcache__addr addr = {.host = "127.0.0.1", .port = srv.port};
  CHECK_EQ(rcache__pool_new(&kj.c->ctx, &setup, &addr, &kj.p), RCACHE_OK);
  CHECK_EQ(rcache__pool_warm(kj.p), RCACHE_OK); /* one idle connection */
  uint64_t opens0 = atomic_load(&kj.c->ctx.n.breaker_opens);
  rcache__cmds b[PIPELINED];
  redisReply *rep[PIPELINED][1];
  char val[1024];
  memset(val, 'v', sizeof val);
  /* a GET first, written alone as it is submitted; its caller writes the 7 SETs together as
   * it goes on to read the GET's reply (the server answers it, then reads the SETs in one go
   * and holds them: writes are paused) */
  for (int i = 0; i < PIPELINED; i++) {
    char key[32];
    snprintf(key, sizeof key, "one-failure:%d", i);
    b[i] = (rcache__cmds){0};
    CHECK_EQ(rcache__cmds_add(&b[i], i ? 3 : 2, (const char *[]){i ? "SET" : "GET", key, val},
                              (size_t[]){3, strlen(key), sizeof val}),
             RCACHE_OK);
    rcache__cmds_expect(&b[i], i ? RCACHE__R_OK : RCACHE__R_STR | RCACHE__R_NIL);
    /* SETs are not idempotent: not run again on a fresh connection, each one's failure is
     * told (before) */
    kj.jobs[i] = (rcache__job){.pool = kj.p, .b = &b[i], .rep = rep[i], .idempotent = !i};
  }
  /* the handle's first contact (in the background) over, or exchanges would wait for it */
  int64_t first_by = rp_now_ms() + 5000;
  while (atomic_load(&kj.c->ctx.first_going) && rp_now_ms() < first_by)
    rp_sleep_ms(5);
  CHECK(!atomic_load(&kj.c->ctx.first_going));
  CHECK(rp_do(&srv, "CLIENT PAUSE 20000 WRITE"));
  pthread_t th;
  pthread_create(&th, NULL, run_jobs, &kj);
  /* the first SET is parsed and held; the others wait in its query buffer */
  int64_t until = rp_now_ms() + 10000;
  long q;
  while ((q = pool_qbuf()) < (PIPELINED - 2) * (long)sizeof val && rp_now_ms() < until)
    rp_sleep_ms(5);
  CHECK_MSG(q >= (PIPELINED - 2) * (long)sizeof val, "the SETs did not reach the server (%ld)", q);
  CHECK(rp_do(&srv, "CLIENT KILL TYPE normal SKIPME yes"));
  pthread_join(th, NULL);
  CHECK(rp_do(&srv, "CLIENT UNPAUSE"));
  CHECK_MSG(kj.jobs[0].s == RCACHE_OK, "the GET: %s", rcache_strerror(kj.jobs[0].s));
  if (kj.jobs[0].s == RCACHE_OK) freeReplyObject(rep[0][0]);
  for (int i = 1; i < PIPELINED; i++)
    CHECK_MSG(kj.jobs[i].s == RCACHE_EUNAVAILABLE, "SET %d on the killed connection: %s", i,
              rcache_strerror(kj.jobs[i].s));
  uint64_t opens = atomic_load(&kj.c->ctx.n.breaker_opens) - opens0;
  CHECK_MSG(opens == 0, "one killed connection opened the breaker (%llu opens)",
            (unsigned long long)opens);
  CHECK_EQ(rcache__pool_breaker_state(kj.p), RCACHE_BREAKER_CLOSED);
  /* and the pool serves the next call on a fresh connection */
  rcache__cmds g = {0};
  redisReply *r = NULL;
  CHECK_EQ(rcache__cmds_addv(&g, "GET", "one-failure:0", NULL), RCACHE_OK);
  rcache__cmds_expect(&g, RCACHE__R_STR | RCACHE__R_NIL);
  CHECK_EQ(rcache__exchange(&kj.c->ctx, kj.p, &g, &r, true), RCACHE_OK);
  if (r) freeReplyObject(r);
  rcache__cmds_free(&g);
  for (int i = 0; i < PIPELINED; i++)
    rcache__cmds_free(&b[i]);
  rcache__pool_free(kj.p);
  rcache_close(kj.c);
}

int main(void) {
  if (rp_start(&srv, NULL) != 0) {
    CHECK_MSG(false, "could not start a redis-server");
    return test_report("integration_test_pipeline");
  }
  rp_url(&srv, url, sizeof url, "");
  many_threads();
  shared_while_paused(32, true);
  shared_while_paused(1, false);
  deadlines_while_paused();
  broken_connection_is_one_failure();
  rp_destroy(&srv);
  return test_report("integration_test_pipeline");
}
