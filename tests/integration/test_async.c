/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The non-blocking API (issue 17, docs/async.md) on memory:// and real redis-servers
 * (RCACHE_TEST_URL_TCP, _CLUSTER, _SENTINEL, and a private server that this test pauses): callbacks
 * run exactly once, never before the starting call returns, on the loop's thread; an asynchronous
 * loader; single-flight shared by a blocking and an async caller; deadlines with a stalled server;
 * rcache_close with operations in flight; 1,000 operations in flight from one loop thread;
 * every operation's result as its blocking call's; a forked child's own machinery; the tagged
 * loader adding tags from the loop, objects, deletions by prefix and pattern, health.
 * (Every call's results through the async API are also checked by the contract suite's async
 * run, contract --async.)
 */
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "await.h"
#include "rcache/json.h"
#include "rcache/rcache.h"
#include "support/redis_proc.h"
#include "test.h"

static char ns[64];
static pthread_t loop_thread;

static int64_t now_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static rcache *open_url(const char *url, int threads, int timeout_ms) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = ns;
  o.async_threads = threads;
  if (timeout_ms) {
    o.connect_timeout_ms = timeout_ms;
    o.command_timeout_ms = timeout_ms;
    o.breaker_failures = 1000000; /* every call goes to the stalled server: no fast fail */
  }
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, &o);
  CHECK_MSG(s == RCACHE_OK, "open %s: %s %s", url, rcache_strerror(s), rcache_errmsg(NULL));
  return c;
}

/* ---- a loop: poll on the descriptor with rcache's timeout ----------------------------------- */

static int64_t longest_us; /* the longest rcache_async_process() call seen */

/* Runs the loop until *done reaches want, or (a bound so a bug cannot hang the test) limit_ms
 * passed. Returns true when it got there. */
static bool pump(rcache *c, const atomic_int *done, int want, int limit_ms) {
  int64_t end = now_us() + (int64_t)limit_ms * 1000;
  static await_turn_times m = {.sched_fd = -1}; /* (the main thread's: every loop is) */
  while (atomic_load(done) < want && now_us() < end) {
    await_async_turn(c, 100, &m);
    if (m.took_ns / 1000 > longest_us) longest_us = m.took_ns / 1000;
  }
  return atomic_load(done) >= want;
}

/* ---- one operation's record ---------------------------------------------------------------- */

typedef struct rec {
  atomic_int *done; /* bumped by every callback */
  int calls;
  bool returned; /* set once the starting call returned */
  bool early;    /* a callback ran before that */
  bool wrong_thread;
  rcache_status s;
  rcache_value v;
  int64_t i;
  bool b;
  double d;
  char *str;
  json_t *j;
  int64_t at_us; /* when the callback ran */
} rec;

static void seen(rec *r, rcache_status s) {
  if (!r->returned) r->early = true;
  if (!pthread_equal(pthread_self(), loop_thread)) r->wrong_thread = true;
  r->calls++;
  r->s = s;
  r->at_us = now_us();
  if (r->done) atomic_fetch_add(r->done, 1);
}

static void on_status(void *ud, rcache_status s) {
  seen(ud, s);
}
static void on_value(void *ud, rcache_status s, rcache_value v) {
  rec *r = ud;
  rcache_value_free(&r->v);
  r->v = v;
  seen(r, s);
}
static void on_int(void *ud, rcache_status s, int64_t v) {
  ((rec *)ud)->i = v;
  seen(ud, s);
}
static void on_bool(void *ud, rcache_status s, bool v) {
  ((rec *)ud)->b = v;
  seen(ud, s);
}
static void on_rate(void *ud, rcache_status s, bool allowed, int64_t count) {
  ((rec *)ud)->b = allowed;
  ((rec *)ud)->i = count;
  seen(ud, s);
}
static void on_str(void *ud, rcache_status s, char *str) {
  free(((rec *)ud)->str);
  ((rec *)ud)->str = str;
  seen(ud, s);
}
static void on_double(void *ud, rcache_status s, double v) {
  ((rec *)ud)->d = v;
  seen(ud, s);
}
static void on_json(void *ud, rcache_status s, json_t *v) {
  rec *r = ud;
  if (r->j) json_decref(r->j);
  r->j = v;
  seen(r, s);
}

static void on_count(void *ud, rcache_status s, uint64_t n) {
  ((rec *)ud)->i = (int64_t)n;
  seen(ud, s);
}
static void on_health(void *ud, rcache_status s, const rcache_health *h) {
  rec *r = ud;
  r->b = h->healthy;
  free(r->str);
  r->str = strdup(h->error);
  r->i = (int64_t)strlen(h->mode);
  seen(r, s);
}

static void rec_free(rec *r) {
  rcache_value_free(&r->v);
  free(r->str);
  if (r->j) json_decref(r->j);
  r->str = NULL;
  r->j = NULL;
}

/* Starts an operation (the expression st, whose ud is r), checks the rules around it. */
#define START_OK(r, st)                                                                            \
  do {                                                                                             \
    rcache_status _s = (st);                                                                       \
    CHECK_MSG(_s == RCACHE_OK, "%s: %s", #st, rcache_strerror(_s));                                \
    CHECK((r)->calls == 0); /* not run by the starting call */                                     \
    (r)->returned = true;                                                                          \
  } while (0)

/* START_OK on r[k], k++ (r and k: the caller's) */
#define NEXT(st)                                                                                   \
  do {                                                                                             \
    START_OK(&r[k], st);                                                                           \
    k++;                                                                                           \
  } while (0)

static void check_once(const rec *r, int n) {
  for (int i = 0; i < n; i++) {
    CHECK_EQ(r[i].calls, 1);
    CHECK(!r[i].early);
    CHECK(!r[i].wrong_thread);
  }
}

/* ---- the basics: get, set, delete, immediate errors ------------------------------------------ */

static void test_basics(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  CHECK(rcache_async_timeout_ms(c) == -1); /* nothing yet */
  int fd = rcache_async_fd(c);
  CHECK(fd >= 0);
  CHECK_EQ(rcache_async_fd(c), fd);
  atomic_int done = 0;
  rec r[6] = {0};
  for (int i = 0; i < 6; i++)
    r[i].done = &done;
  START_OK(&r[0], rcache_set_async(c, "a:k", "hello", 5, 60, on_status, &r[0]));
  CHECK(rcache_async_timeout_ms(c) >= 0);
  CHECK(pump(c, &done, 1, 10000));
  CHECK_EQ(r[0].s, RCACHE_OK);
  START_OK(&r[1], rcache_get_async(c, "a:k", on_value, &r[1]));
  START_OK(&r[2], rcache_get_async(c, "a:absent", on_value, &r[2]));
  CHECK(pump(c, &done, 3, 10000)); /* operations in flight run in any order */
  START_OK(&r[3], rcache_delete_async(c, "a:k", on_status, &r[3]));
  CHECK(pump(c, &done, 4, 10000));
  START_OK(&r[4], rcache_delete_async(c, "a:k", on_status, &r[4]));
  /* what the blocking call would say about a bad argument comes through the callback */
  START_OK(&r[5], rcache_get_async(c, "", on_value, &r[5]));
  CHECK(pump(c, &done, 6, 10000));
  CHECK_EQ(r[1].s, RCACHE_OK);
  CHECK(r[1].v.len == 5 && r[1].v.data && memcmp(r[1].v.data, "hello", 5) == 0);
  CHECK_EQ(r[2].s, RCACHE_MISS);
  CHECK(r[2].v.data == NULL);
  CHECK_EQ(r[3].s, RCACHE_OK);
  CHECK_EQ(r[4].s, RCACHE_MISS);
  CHECK_EQ(r[5].s, RCACHE_EINVAL);
  rcache_async_process(c); /* nothing more ever comes */
  check_once(r, 6);
  for (int i = 0; i < 6; i++)
    rec_free(&r[i]);

  /* immediate errors: no callback */
  rec x = {.done = &done};
  CHECK_EQ(rcache_get_async(NULL, "k", on_value, &x), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_async(c, NULL, on_value, &x), RCACHE_EINVAL);
  CHECK_EQ(rcache_set_async(c, "k", NULL, 3, 0, on_status, &x), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_or_set_async(c, "k", 0, NULL, NULL, on_value, &x), RCACHE_EINVAL);
  CHECK_EQ(rcache_async_fd(NULL), -1);
  CHECK_EQ(rcache_async_process(NULL), 0);
  CHECK_EQ(rcache_async_timeout_ms(NULL), -1);
  /* a NULL callback: the write happens, the result is dropped */
  CHECK_EQ(rcache_set_async(c, "a:nocb", "x", 1, 60, NULL, NULL), RCACHE_OK);
  for (int64_t end = now_us() + 10000000; rcache_async_timeout_ms(c) != -1 && now_us() < end;)
    await_async_turn(c, 10, NULL); /* until it is done */
  CHECK_EQ(rcache_async_timeout_ms(c), -1);
  rec g = {.done = &done};
  int before = atomic_load(&done);
  START_OK(&g, rcache_get_async(c, "a:nocb", on_value, &g));
  CHECK(pump(c, &done, before + 1, 10000));
  CHECK_EQ(g.s, RCACHE_OK);
  rec_free(&g);
  rcache_async_process(c);
  CHECK_EQ(x.calls, 0);
  rcache_close(c);
}

/* ---- get_or_set with an asynchronous loader -------------------------------------------------- */

typedef struct lctx {
  atomic_int calls;
  rcache_load *pending; /* a load to finish later, from the loop */
  bool fail, now;       /* fail it; finish it inside the loader */
  char key[64];
} lctx;

static void finish(lctx *l, rcache_load *ld) {
  if (l->fail) {
    rcache_load_done(ld, RCACHE_EIO, NULL);
    return;
  }
  rcache_value v = {strdup("loaded"), 6};
  rcache_load_done(ld, RCACHE_OK, &v);
  CHECK(v.data == NULL); /* taken over */
}

static void loader(void *ud, const char *key, rcache_load *ld) {
  lctx *l = ud;
  atomic_fetch_add(&l->calls, 1);
  if (!pthread_equal(pthread_self(), loop_thread)) l->fail = true; /* seen as a wrong value */
  snprintf(l->key, sizeof l->key, "%s", key);
  if (l->now)
    finish(l, ld);
  else
    l->pending = ld; /* a database query in flight on the same loop */
}

/* Runs the loop until a loader has been called and left its load in *ld (10 s at most). */
static void wait_load(rcache *c, rcache_load *const *ld) {
  int64_t end = now_us() + 10000000;
  while (!*ld && now_us() < end)
    await_async_turn(c, 100, NULL);
}

static void test_get_or_set(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  atomic_int done = 0;
  lctx l = {0};
  rec r[4] = {0};
  for (int i = 0; i < 4; i++)
    r[i].done = &done;
  rcache_delete(c, "gos:k");
  START_OK(&r[0], rcache_get_or_set_async(c, "gos:k", 60, loader, &l, on_value, &r[0]));
  /* the loader runs on the loop, then the operation waits for it without a deadline */
  wait_load(c, &l.pending);
  CHECK(l.pending != NULL);
  CHECK_STR(l.key, "gos:k");
  CHECK_EQ(rcache_async_timeout_ms(c), -1); /* only a load out: no deadline to watch */
  CHECK_EQ(r[0].calls, 0);
  if (l.pending) finish(&l, l.pending);
  CHECK(pump(c, &done, 1, 10000));
  CHECK_EQ(r[0].s, RCACHE_OK);
  CHECK(r[0].v.len == 6 && memcmp(r[0].v.data, "loaded", 6) == 0);
  /* cached now: no loader */
  START_OK(&r[1], rcache_get_or_set_async(c, "gos:k", 60, loader, &l, on_value, &r[1]));
  CHECK(pump(c, &done, 2, 10000));
  CHECK_EQ(r[1].s, RCACHE_OK);
  CHECK_EQ(atomic_load(&l.calls), 1);
  /* a loader that finishes at once, and one that fails */
  lctx now = {.now = true}, bad = {.now = true, .fail = true};
  rcache_delete(c, "gos:n");
  rcache_delete(c, "gos:f");
  START_OK(&r[2], rcache_get_or_set_async(c, "gos:n", 60, loader, &now, on_value, &r[2]));
  START_OK(&r[3], rcache_get_or_set_async(c, "gos:f", 60, loader, &bad, on_value, &r[3]));
  CHECK(pump(c, &done, 4, 10000));
  CHECK_EQ(r[2].s, RCACHE_OK);
  CHECK(r[2].v.len == 6 && memcmp(r[2].v.data, "loaded", 6) == 0);
  CHECK_EQ(r[3].s, RCACHE_ELOADER);
  CHECK(r[3].v.data == NULL);
  rcache_value v = {0};
  CHECK_EQ(rcache_get(c, "gos:f", &v), RCACHE_MISS); /* nothing cached */
  check_once(r, 4);
  for (int i = 0; i < 4; i++)
    rec_free(&r[i]);
  rcache_close(c);
}

/* ---- single-flight shared by a blocking and an async caller ---------------------------------- */

static atomic_int sf_loads, sf_in_loader;

static rcache_status slow_loader(void *ud, rcache_value *out) {
  (void)ud;
  atomic_fetch_add(&sf_loads, 1);
  atomic_store(&sf_in_loader, 1);
  usleep(300 * 1000); /* long enough for the async caller to join the flight */
  out->data = strdup("blocking");
  out->len = 8;
  return RCACHE_OK;
}

static rcache_status sf_status;

static void *blocking_caller(void *arg) {
  rcache_value v = {0};
  sf_status = rcache_get_or_set(arg, "sf:k", 60, slow_loader, NULL, &v); /* checked after join */
  rcache_value_free(&v);
  return NULL;
}

static void test_single_flight(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  rcache_delete(c, "sf:k");
  atomic_store(&sf_loads, 0);
  atomic_store(&sf_in_loader, 0);
  pthread_t th;
  pthread_create(&th, NULL, blocking_caller, c);
  for (int i = 0; i < 5000 && !atomic_load(&sf_in_loader); i++)
    usleep(1000);
  CHECK(atomic_load(&sf_in_loader));
  atomic_int done = 0;
  lctx l = {.now = true};
  rec r = {.done = &done};
  START_OK(&r, rcache_get_or_set_async(c, "sf:k", 60, loader, &l, on_value, &r));
  CHECK(pump(c, &done, 1, 10000));
  pthread_join(th, NULL);
  CHECK_EQ(sf_status, RCACHE_OK);
  CHECK_EQ(r.s, RCACHE_OK);
  CHECK(r.v.len == 8 && memcmp(r.v.data, "blocking", 8) == 0);
  CHECK_EQ(atomic_load(&sf_loads) + atomic_load(&l.calls), 1); /* one loader in all */
  check_once(&r, 1);
  rec_free(&r);
  rcache_close(c);
}

/* ---- 1,000 operations in flight from one loop thread ----------------------------------------- */

#define MANY 1000

static void test_thousand(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  static rec r[MANY];
  memset(r, 0, sizeof r);
  atomic_int done = 0;
  longest_us = 0;
  char key[32];
  for (int i = 0; i < MANY; i++) {
    r[i].done = &done;
    snprintf(key, sizeof key, "k:%d", i % 100);
    if (i % 2)
      START_OK(&r[i], rcache_get_async(c, key, on_value, &r[i]));
    else
      START_OK(&r[i], rcache_set_async(c, key, key, strlen(key), 60, on_status, &r[i]));
  }
  int64_t t0 = now_us();
  CHECK(pump(c, &done, MANY, 60000));
  int64_t took = now_us() - t0;
  rcache_async_process(c);
  check_once(r, MANY);
  int bad = 0;
  for (int i = 0; i < MANY; i++) {
    if (r[i].s != RCACHE_OK && r[i].s != RCACHE_MISS) bad++;
    rec_free(&r[i]);
  }
  CHECK_EQ(bad, 0);
  printf("%s: 1000 ops in flight: %.1f ms in all, longest rcache_async_process %.3f ms\n", url,
         took / 1000.0, longest_us / 1000.0);
  rcache_close(c);
}

/* ---- GETs driven by the loop ------------------------------------------------------------------
 */

/* With one worker, held by a get_or_set whose load stays pending, 1,000 GETs of 100 keys still
 * complete, each with its own key's value: GETs on a one-server handle without a near cache need
 * no worker once the loop connection is open (docs/async.md, "The loop's own I/O"). A GET that
 * needed a worker would wait for the load, which this test finishes only afterwards. */
static void test_loop_gets(const char *url) {
  rcache *c = open_url(url, 1, 0);
  if (!c) return;
  char key[32], val[32];
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "lg:%d", i);
    snprintf(val, sizeof val, "value-%d", i);
    CHECK_EQ(rcache_set(c, key, val, strlen(val), 60), RCACHE_OK);
  }
  /* the first GET asks a worker to open the loop connection, and runs on the worker after it */
  atomic_int done = 0;
  rec first = {.done = &done};
  START_OK(&first, rcache_get_async(c, "lg:0", on_value, &first));
  CHECK(pump(c, &done, 1, 10000));
  CHECK_EQ(first.s, RCACHE_OK);
  rec_free(&first);
  rcache_async_process(c); /* the loop takes the connection the worker opened */
  /* the one worker, held */
  lctx l = {0};
  rec held = {.done = &done};
  rcache_delete(c, "lg:held");
  START_OK(&held, rcache_get_or_set_async(c, "lg:held", 60, loader, &l, on_value, &held));
  wait_load(c, &l.pending);
  CHECK(l.pending != NULL);
  static rec r[MANY];
  memset(r, 0, sizeof r);
  atomic_int got = 0;
  for (int i = 0; i < MANY; i++) {
    r[i].done = &got;
    snprintf(key, sizeof key, "lg:%d", i % 100);
    START_OK(&r[i], rcache_get_async(c, key, on_value, &r[i]));
  }
  CHECK(pump(c, &got, MANY, 20000));
  check_once(r, MANY);
  int wrong = 0;
  for (int i = 0; i < MANY; i++) {
    snprintf(val, sizeof val, "value-%d", i % 100);
    if (r[i].s != RCACHE_OK || r[i].v.len != strlen(val) || memcmp(r[i].v.data, val, r[i].v.len)) {
      if (wrong++ < 3)
        fprintf(stderr, "%s: GET %d of lg:%d: %s, %.*s\n", url, i, i % 100, rcache_strerror(r[i].s),
                (int)r[i].v.len, r[i].v.data ? r[i].v.data : "");
    }
    rec_free(&r[i]);
  }
  CHECK_EQ(wrong, 0);
  CHECK_EQ(held.calls, 0); /* the worker was held all along */
  finish(&l, l.pending);
  CHECK(pump(c, &done, 2, 10000));
  CHECK_EQ(held.s, RCACHE_OK);
  rec_free(&held);
  rcache_close(c);
}

/* ---- the other operations: as their blocking calls ------------------------------------------- */

static void test_operations(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  atomic_int done = 0;
  enum { N = 20 };
  rec r[N] = {0};
  for (int i = 0; i < N; i++)
    r[i].done = &done;
  const char *keys[] = {"op:m1", "op:m2"};
  rcache_value vals[] = {{"one", 3}, {"two", 3}};
  rcache_delete(c, "op:n");
  rcache_delete(c, "op:w");
  rcache_delete(c, "op:x");
  /* r[0..6]: writes; then r[7..16], checked in that order below */
  int k = 0;
  NEXT(rcache_incr_async(c, "op:n", 5, on_int, &r[k]));
  NEXT(rcache_set_many_async(c, keys, vals, 2, 60, on_status, &r[k]));
  NEXT(rcache_set_str_async(c, "op:s", "text", 60, on_status, &r[k]));
  NEXT(rcache_set_i64_async(c, "op:i", -42, 60, on_status, &r[k]));
  NEXT(rcache_set_double_async(c, "op:d", 0.1, 60, on_status, &r[k]));
  json_t *j = json_pack("{s:i}", "a", 1);
  NEXT(rcache_set_json_async(c, "op:j", j, 60, on_status, &r[k]));
  json_decref(j); /* copied */
  NEXT(rcache_incr_expire_async(c, "op:w", 1, 100, on_int, &r[k]));
  CHECK(pump(c, &done, k, 10000)); /* operations in flight run in any order: writes first */
  NEXT(rcache_decr_async(c, "op:n", 2, on_int, &r[k]));
  NEXT(rcache_rate_limit_async(c, "op:rl", 10, 60, on_rate, &r[k]));
  NEXT(rcache_exists_async(c, "op:s", on_bool, &r[k]));
  NEXT(rcache_ttl_async(c, "op:w", on_int, &r[k]));
  NEXT(rcache_get_str_async(c, "op:s", on_str, &r[k]));
  NEXT(rcache_get_i64_async(c, "op:i", on_int, &r[k]));
  NEXT(rcache_get_double_async(c, "op:d", on_double, &r[k]));
  NEXT(rcache_get_json_async(c, "op:j", on_json, &r[k]));
  NEXT(rcache_exists_async(c, "op:x", on_bool, &r[k]));
  lctx l = {.now = true};
  NEXT(rcache_get_or_set_json_async(c, "op:j", 60, loader, &l, on_json, &r[k]));
  CHECK(pump(c, &done, k, 10000));
  CHECK_EQ(r[0].s, RCACHE_OK);
  CHECK_EQ(r[0].i, 5);
  for (int i = 1; i <= 5; i++)
    CHECK_EQ(r[i].s, RCACHE_OK);
  CHECK_EQ(r[6].i, 1);
  CHECK_EQ(r[7].s, RCACHE_OK);
  CHECK_EQ(r[7].i, 3);
  CHECK(r[8].s == RCACHE_OK && r[8].b && r[8].i >= 1);
  CHECK(r[9].s == RCACHE_OK && r[9].b);
  CHECK(r[10].s == RCACHE_OK && r[10].i > 0 && r[10].i <= 100);
  CHECK_STR(r[11].str, "text");
  CHECK(r[12].s == RCACHE_OK && r[12].i == -42);
  CHECK(r[13].s == RCACHE_OK && r[13].d == 0.1);
  CHECK(r[14].s == RCACHE_OK && r[14].j && json_integer_value(json_object_get(r[14].j, "a")) == 1);
  CHECK(r[15].s == RCACHE_OK && !r[15].b);
  CHECK(r[16].s == RCACHE_OK && r[16].j && json_is_object(r[16].j));
  CHECK_EQ(atomic_load(&l.calls), 0); /* cached: no loader */

  check_once(r, k);
  for (int i = 0; i < N; i++)
    rec_free(&r[i]);
  rcache_close(c);
}

/* get_many's callback: keeps the values (they are its own) and statuses. */
typedef struct manyrec {
  rec r;
  rcache_value vals[3];
  rcache_status sts[3];
  size_t n;
} manyrec;

static void on_many(void *ud, rcache_status s, rcache_value *vals, const rcache_status *sts,
                    size_t n) {
  manyrec *m = ud;
  m->n = n;
  for (size_t i = 0; i < n && i < 3; i++) {
    m->vals[i] = vals[i];
    m->sts[i] = sts[i];
  }
  seen(&m->r, s);
}

static void test_batches(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  atomic_int done = 0;
  const char *keys[] = {"b:1", "b:2", "b:3"};
  rcache_value vals[] = {{"one", 3}, {"two", 3}};
  rcache_delete(c, "b:3");
  rec w = {.done = &done};
  START_OK(&w, rcache_set_many_async(c, keys, vals, 2, 60, on_status, &w));
  CHECK(pump(c, &done, 1, 10000));
  CHECK_EQ(w.s, RCACHE_OK);
  manyrec m = {.r = {.done = &done}};
  START_OK(&m.r, rcache_get_many_async(c, keys, 3, on_many, &m));
  CHECK(pump(c, &done, 2, 10000));
  CHECK_EQ(m.r.s, RCACHE_OK);
  CHECK_EQ(m.n, 3);
  CHECK(m.sts[0] == RCACHE_OK && m.vals[0].len == 3 && memcmp(m.vals[0].data, "one", 3) == 0);
  CHECK(m.sts[1] == RCACHE_OK && m.vals[1].len == 3 && memcmp(m.vals[1].data, "two", 3) == 0);
  CHECK(m.sts[2] == RCACHE_MISS && m.vals[2].data == NULL);
  for (int i = 0; i < 3; i++)
    rcache_value_free(&m.vals[i]);
  const char *nul[] = {"b:1", NULL};
  CHECK_EQ(rcache_get_many_async(c, nul, 2, on_many, &m), RCACHE_EINVAL);
  check_once(&w, 1);
  check_once(&m.r, 1);
  rcache_close(c);
}

/* ---- deadlines with a stalled server, and rcache_close with operations in flight --------------
 */

static void test_stalled(void) {
  rp_server srv;
  if (rp_start(&srv, NULL) != 0) {
    CHECK(!"a private redis-server");
    return;
  }
  char url[128];
  rp_url(&srv, url, sizeof url, NULL);
  enum { TIMEOUT_MS = 200, OPS = 64 };
  rcache *c = open_url(url, 2, TIMEOUT_MS); /* 2 workers, 64 operations */
  if (!c) return;
  CHECK_EQ(rcache_set(c, "st:k", "v", 1, 60), RCACHE_OK); /* connected */
  rp_pause(&srv);
  static rec r[OPS];
  memset(r, 0, sizeof r);
  atomic_int done = 0;
  int64_t t0 = now_us();
  for (int i = 0; i < OPS; i++) {
    r[i].done = &done;
    START_OK(&r[i], rcache_get_async(c, "st:k", on_value, &r[i]));
  }
  /* the operations a worker never took complete by their deadline all the same */
  CHECK(pump(c, &done, OPS, 30000));
  int64_t deadline = t0 + 3 * TIMEOUT_MS * 1000, late = 0; /* connect + 2 x command */
  int unavailable = 0;
  for (int i = 0; i < OPS; i++) {
    if (r[i].s == RCACHE_EUNAVAILABLE) unavailable++;
    if (r[i].at_us - deadline > late) late = r[i].at_us - deadline;
  }
  CHECK_EQ(unavailable, OPS);
  check_once(r, OPS);
  printf("stalled server: %d operations on 2 workers, last callback %.1f ms after the "
         "deadline\n",
         OPS, late / 1000.0);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK(st.timeouts > 0 && st.fallbacks > 0);

  /* health and a deletion against the stalled server: unhealthy, unavailable, by their deadline */
  rec hr[2] = {{.done = &done}, {.done = &done}};
  int before = atomic_load(&done);
  int64_t h0 = now_us();
  START_OK(&hr[0], rcache_health_check_async(c, on_health, &hr[0]));
  START_OK(&hr[1], rcache_delete_prefix_async(c, "st:", on_count, &hr[1]));
  CHECK(pump(c, &done, before + 2, 30000));
  CHECK(hr[0].s == RCACHE_EUNAVAILABLE && !hr[0].b && hr[0].str && hr[0].str[0] != '\0');
  CHECK(hr[1].s == RCACHE_EUNAVAILABLE && hr[1].i == 0);
  printf("stalled server: health and delete_prefix answered %.1f ms after their start (deadlines "
         "%d and %d ms)\n",
         (double)(now_us() - h0) / 1000.0, 3 * TIMEOUT_MS, 6 * TIMEOUT_MS);
  check_once(hr, 2);
  rec_free(&hr[0]);
  rec_free(&hr[1]);

  /* nothing in flight: no timer. An operation started then (one that cannot finish: the
   * server is paused) makes the descriptor readable at once, so the loop re-arms its timer */
  int fd = rcache_async_fd(c);
  rcache_async_process(c); /* drains the descriptor */
  CHECK_EQ(rcache_async_timeout_ms(c), -1);
  struct pollfd p = {.fd = fd, .events = POLLIN};
  CHECK_EQ(poll(&p, 1, 0), 0);
  memset(r, 0, sizeof r);
  atomic_store(&done, 0);
  r[0].done = &done;
  START_OK(&r[0], rcache_set_async(c, "st:k", "w", 1, 60, on_status, &r[0]));
  CHECK_EQ(poll(&p, 1, 0), 1);
  int64_t t = rcache_async_timeout_ms(c);
  CHECK(t >= 0 && t <= 3 * TIMEOUT_MS /* connect + 2 x command */);

  /* close with operations queued and running: every callback runs in rcache_close */
  for (int i = 1; i < 20; i++) {
    r[i].done = &done;
    START_OK(&r[i], rcache_set_async(c, "st:k", "w", 1, 60, on_status, &r[i]));
  }
  lctx l = {0};
  rec g = {.done = &done};
  START_OK(&g, rcache_get_or_set_async(c, "st:g", 60, loader, &l, on_value, &g));
  rcache_close(c);
  CHECK_EQ(atomic_load(&done), 21);
  for (int i = 0; i < 20; i++)
    CHECK_EQ(r[i].s, RCACHE_EUNAVAILABLE);
  CHECK_EQ(g.s, RCACHE_EUNAVAILABLE);
  check_once(r, 20);
  check_once(&g, 1);
  if (l.pending) rcache_load_done(l.pending, RCACHE_EIO, NULL); /* after close: only frees */
  rp_resume(&srv);
  rp_destroy(&srv);
}

/* close with a loader out on the loop: the operation completes in close, the load's handle
 * stays valid until rcache_load_done */
static void test_close_loader(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  rcache_delete(c, "cl:k");
  atomic_int done = 0;
  lctx l = {0};
  rec g = {.done = &done};
  START_OK(&g, rcache_get_or_set_async(c, "cl:k", 60, loader, &l, on_value, &g));
  wait_load(c, &l.pending);
  CHECK(l.pending != NULL);
  rcache_close(c);
  CHECK_EQ(g.calls, 1);
  CHECK_EQ(g.s, RCACHE_EUNAVAILABLE);
  if (l.pending) finish(&l, l.pending);
  rec_free(&g);
}

/* ---- tags: the loader adds a tag from a later turn of the loop ------------------------------- */

/* A tagged or object loader's load, held to be finished from a later turn of the loop. */
typedef struct tload {
  int calls;
  rcache_tags *tags;
  void *obj;
  rcache_load *ld;
} tload;

static void tagged_loader(void *ud, const char *key, rcache_tags *tags, rcache_load *ld) {
  (void)key;
  tload *t = ud;
  t->calls++;
  if (!pthread_equal(pthread_self(), loop_thread)) t->calls += 100; /* seen as a wrong count */
  t->tags = tags;
  t->ld = ld; /* finished later, from the loop */
}

static void test_tags(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  atomic_int done = 0;
  rec r[8] = {0};
  for (int i = 0; i < 8; i++)
    r[i].done = &done;
  const char *up[] = {"up"};
  rcache_delete(c, "tg:k");
  tload t = {0};
  START_OK(&r[0], rcache_get_or_set_tagged_async(c, "tg:k", 60, up, 1, tagged_loader, &t, on_value,
                                                 &r[0]));
  wait_load(c, &t.ld);
  CHECK(t.ld != NULL);
  if (t.ld) { /* a later turn of the loop: the query answered */
    CHECK_EQ(rcache_tags_add(t.tags, "later"), RCACHE_OK);
    rcache_value v = {strdup("tagged"), 6};
    rcache_load_done(t.ld, RCACHE_OK, &v);
  }
  CHECK(pump(c, &done, 1, 10000));
  CHECK_EQ(t.calls, 1);
  CHECK(r[0].s == RCACHE_OK && r[0].v.len == 6 && memcmp(r[0].v.data, "tagged", 6) == 0);
  START_OK(&r[1], rcache_get_tagged_async(c, "tg:k", up, 1, on_value, &r[1]));
  CHECK(pump(c, &done, 2, 10000));
  CHECK(r[1].s == RCACHE_OK && r[1].v.len == 6);
  /* the tag added on the loop was stamped: invalidating it makes the value a miss */
  START_OK(&r[2], rcache_invalidate_tag_async(c, "later", on_status, &r[2]));
  CHECK(pump(c, &done, 3, 10000));
  CHECK_EQ(r[2].s, RCACHE_OK);
  START_OK(&r[3], rcache_get_async(c, "tg:k", on_value, &r[3]));
  CHECK(pump(c, &done, 4, 10000));
  CHECK_EQ(r[3].s, RCACHE_MISS);
  /* set_tagged and clear */
  START_OK(&r[4], rcache_set_tagged_async(c, "tg:s", "v", 1, 60, up, 1, on_status, &r[4]));
  CHECK(pump(c, &done, 5, 10000));
  CHECK_EQ(r[4].s, RCACHE_OK);
  START_OK(&r[5], rcache_clear_async(c, on_status, &r[5]));
  CHECK(pump(c, &done, 6, 10000));
  CHECK_EQ(r[5].s, RCACHE_OK);
  START_OK(&r[6], rcache_get_tagged_async(c, "tg:s", up, 1, on_value, &r[6]));
  CHECK(pump(c, &done, 7, 10000));
  CHECK_EQ(r[6].s, RCACHE_MISS);
  /* what cannot be copied is refused at once; what the blocking call judges comes later */
  const char *nul[] = {NULL};
  CHECK_EQ(rcache_get_tagged_async(c, "tg:k", nul, 1, on_value, &r[7]), RCACHE_EINVAL);
  CHECK_EQ(rcache_get_tagged_async(c, "tg:k", NULL, 1, on_value, &r[7]), RCACHE_EINVAL);
  CHECK_EQ(rcache_invalidate_tag_async(c, NULL, on_status, &r[7]), RCACHE_EINVAL);
  const char *empty[] = {""};
  START_OK(&r[7], rcache_set_tagged_async(c, "tg:e", "v", 1, 60, empty, 1, on_status, &r[7]));
  CHECK(pump(c, &done, 8, 10000));
  CHECK_EQ(r[7].s, RCACHE_EINVAL);
  check_once(r, 8);
  for (int i = 0; i < 8; i++)
    rec_free(&r[i]);

  /* close with a tagged loader out: its tags stay usable until rcache_load_done */
  tload t2 = {0};
  rec g = {.done = &done};
  rcache_delete(c, "tg:c");
  START_OK(
      &g, rcache_get_or_set_tagged_async(c, "tg:c", 60, NULL, 0, tagged_loader, &t2, on_value, &g));
  wait_load(c, &t2.ld);
  CHECK(t2.ld != NULL);
  rcache_close(c);
  CHECK_EQ(g.calls, 1);
  CHECK_EQ(g.s, RCACHE_EUNAVAILABLE);
  if (t2.ld) {
    CHECK_EQ(rcache_tags_add(t2.tags, "after-close"), RCACHE_OK);
    rcache_load_done(t2.ld, RCACHE_OK, NULL); /* only frees */
  }
  rec_free(&g);
}

/* ---- objects: encoded at the start, decoded for the callback --------------------------------- */

typedef struct point {
  int x, y;
} point;

static rcache_status pt_encode(const void *obj, rcache_value *out, void *ud) {
  (void)ud;
  const point *p = obj;
  char buf[64];
  int n = snprintf(buf, sizeof buf, "%d,%d", p->x, p->y);
  if (p->x < 0) return RCACHE_EIO; /* an encoder that fails */
  out->data = strdup(buf);
  out->len = (size_t)n;
  return out->data ? RCACHE_OK : RCACHE_ENOMEM;
}

static rcache_status pt_decode(const char *data, size_t len, void *obj, void *ud) {
  (void)ud;
  (void)len;
  point *p = obj;
  return sscanf(data, "%d,%d", &p->x, &p->y) == 2 ? RCACHE_OK : RCACHE_EDECODE;
}

static void obj_loader(void *ud, const char *key, void *obj, rcache_load *ld) {
  (void)key;
  tload *l = ud;
  l->calls++;
  l->obj = obj;
  l->ld = ld;
}

static void test_objects(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  atomic_int done = 0;
  rec r[5] = {0};
  for (int i = 0; i < 5; i++)
    r[i].done = &done;
  const rcache_codec codec = {pt_encode, pt_decode, NULL};
  point p = {1, 2};
  START_OK(&r[0], rcache_set_obj_async(c, "ob:p", &codec, &p, 60, on_status, &r[0]));
  p.x = 99; /* encoded by the starting call already */
  CHECK(pump(c, &done, 1, 10000));
  CHECK_EQ(r[0].s, RCACHE_OK);
  point q = {0, 0};
  START_OK(&r[1], rcache_get_obj_async(c, "ob:p", &codec, &q, on_status, &r[1]));
  CHECK(pump(c, &done, 2, 10000));
  CHECK(r[1].s == RCACHE_OK && q.x == 1 && q.y == 2);
  point bad = {-1, 0};
  START_OK(&r[2], rcache_set_obj_async(c, "ob:b", &codec, &bad, 60, on_status, &r[2]));
  CHECK(pump(c, &done, 3, 10000));
  CHECK_EQ(r[2].s, RCACHE_EIO); /* as rcache_set_obj returns the encoder's error */
  /* get_or_set_obj: the loader fills the object on the loop, later */
  rcache_delete(c, "ob:g");
  tload l = {0};
  point g = {0, 0};
  START_OK(&r[3], rcache_get_or_set_obj_async(c, "ob:g", 60, &codec, obj_loader, &l, &g, on_status,
                                              &r[3]));
  wait_load(c, &l.ld);
  CHECK(l.ld != NULL && l.obj == &g);
  if (l.ld) {
    g = (point){7, 8};
    rcache_load_done(l.ld, RCACHE_OK, NULL);
  }
  CHECK(pump(c, &done, 4, 10000));
  CHECK(r[3].s == RCACHE_OK && g.x == 7 && g.y == 8);
  point h = {0, 0};
  CHECK_EQ(rcache_get_obj(c, "ob:g", &codec, &h), RCACHE_OK); /* cached, encoded */
  CHECK(h.x == 7 && h.y == 8);
  CHECK_EQ(rcache_get_obj_async(c, "ob:g", NULL, &h, on_status, &r[4]), RCACHE_EINVAL);
  CHECK_EQ(l.calls, 1);
  check_once(r, 4);
  CHECK_EQ(r[4].calls, 0);
  rcache_close(c);
}

/* ---- deletions by prefix and pattern, health ------------------------------------------------ */

static void test_deletes_health(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  atomic_int done = 0;
  rec r[4] = {0};
  for (int i = 0; i < 4; i++)
    r[i].done = &done;
  char key[32];
  for (int i = 0; i < 5; i++) {
    snprintf(key, sizeof key, "dp:%d", i);
    CHECK_EQ(rcache_set(c, key, "v", 1, 60), RCACHE_OK);
  }
  CHECK_EQ(rcache_set(c, "dq:x", "v", 1, 60), RCACHE_OK);
  START_OK(&r[0], rcache_delete_prefix_async(c, "dp:", on_count, &r[0]));
  START_OK(&r[1], rcache_delete_pattern_async(c, "dq:*", on_count, &r[1]));
  START_OK(&r[2], rcache_health_check_async(c, on_health, &r[2]));
  START_OK(&r[3], rcache_delete_prefix_async(c, "", on_count, &r[3]));
  CHECK(pump(c, &done, 4, 10000));
  CHECK(r[0].s == RCACHE_OK && r[0].i == 5);
  CHECK(r[1].s == RCACHE_OK && r[1].i == 1);
  CHECK(r[2].s == RCACHE_OK && r[2].b && r[2].str && r[2].str[0] == '\0' && r[2].i > 0);
  CHECK_EQ(r[3].s, RCACHE_EINVAL); /* the blocking call's answer to an empty prefix */
  CHECK_EQ(rcache_delete_prefix_async(c, NULL, on_count, &r[3]), RCACHE_EINVAL);
  check_once(r, 4);
  for (int i = 0; i < 4; i++)
    rec_free(&r[i]);
  rcache_close(c);
}

/* ---- fork: the child's machinery is its own -------------------------------------------------- */

static void test_fork(const char *url) {
  rcache *c = open_url(url, 0, 0);
  if (!c) return;
  atomic_int done = 0;
  rec r = {.done = &done};
  START_OK(&r, rcache_set_async(c, "f:k", "p", 1, 60, on_status, &r));
  CHECK(pump(c, &done, 1, 10000));
  pid_t pid = fork();
  if (pid == 0) {
    loop_thread = pthread_self();
    atomic_int d = 0;
    rec x = {.done = &d, .returned = true};
    int ok = rcache_get_async(c, "f:k", on_value, &x) == RCACHE_OK && pump(c, &d, 1, 10000) &&
             x.s == RCACHE_OK && x.v.len == 1 && x.v.data[0] == 'p';
    rcache_value_free(&x.v);
    rcache_close(c);
    _exit(ok ? 0 : 1);
  }
  int st = 0;
  CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
  CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  /* the parent's machinery is untouched */
  rec g = {.done = &done};
  START_OK(&g, rcache_get_async(c, "f:k", on_value, &g));
  CHECK(pump(c, &done, 2, 10000));
  CHECK_EQ(g.s, RCACHE_OK);
  rec_free(&g);
  rcache_close(c);
}

int main(void) {
  snprintf(ns, sizeof ns, "async-%ld:", (long)getpid());
  loop_thread = pthread_self();
  const char *tcp = test_env_url("RCACHE_TEST_URL_TCP");
  const char *urls[] = {"memory://", tcp};
  for (int i = 0; i < 2; i++) {
    test_basics(urls[i]);
    test_get_or_set(urls[i]);
    test_single_flight(urls[i]);
    test_operations(urls[i]);
    test_batches(urls[i]);
    test_thousand(urls[i]);
    test_close_loader(urls[i]);
    test_tags(urls[i]);
    test_objects(urls[i]);
    test_deletes_health(urls[i]);
  }
  /* Cluster and Sentinel: the topologies are the blocking calls' own */
  const char *more[] = {test_env_url("RCACHE_TEST_URL_CLUSTER"),
                        test_env_url("RCACHE_TEST_URL_SENTINEL")};
  for (int i = 0; i < 2; i++) {
    test_basics(more[i]);
    test_get_or_set(more[i]);
    test_operations(more[i]);
    test_batches(more[i]);
  }
  test_loop_gets(tcp);
  test_loop_gets(test_env_url("RCACHE_TEST_URL_UNIX"));
  test_loop_gets(test_env_url("RCACHE_TEST_URL_TLS"));
  test_loop_gets(more[1]); /* Sentinel */
  test_fork(tcp);
  test_stalled();
  return test_report("test_async");
}
