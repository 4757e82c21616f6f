/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * get_or_set without stampedes (issue 5), on memory:// and on a real redis-server
 * (RCACHE_TEST_URL_TCP): single-flight, cross-process lease (with its holder killed),
 * XFetch early refresh, TTL jitter, stale-if-error, and loading while Redis is down.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "await.h"
#include "rcache/keys.h"
#include "rcache/rcache.h"
#include "test.h"

static char ns[64]; /* a namespace per run: servers are shared with other tests */

static int64_t now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static rcache *open_with(const char *url, rcache_options *o) {
  rcache *c = NULL;
  rcache_status s = rcache_open(&c, url, o);
  CHECK_MSG(s == RCACHE_OK, "open %s: %s %s", url, rcache_strerror(s), rcache_errmsg(NULL));
  return c;
}

static rcache_options opts(void) {
  rcache_options o;
  rcache_options_init(&o);
  o.key_prefix = ns;
  return o;
}

/* ---- a loader that counts, sleeps, and can fail ---------------------------------------------- */

typedef struct {
  atomic_int *calls; /* may live in shared memory across processes */
  int sleep_ms;
  bool fail;
  const char *value;
} loader_cfg;

static rcache_status loader(void *ud, rcache_value *out) {
  loader_cfg *l = ud;
  atomic_fetch_add(l->calls, 1);
  if (l->sleep_ms) usleep((useconds_t)l->sleep_ms * 1000);
  if (l->fail) return RCACHE_EIO;
  out->data = strdup(l->value);
  out->len = strlen(l->value);
  return RCACHE_OK;
}

/* A loader that acts on its handle (c) and counts its calls. */
typedef struct {
  rcache *c;
  atomic_int calls;
} handle_loader_cfg;

/* A loader that writes a key of the application's own, named as the lease key once was. */

static rcache_status side_loader(void *ud, rcache_value *out) {
  handle_loader_cfg *l = ud;
  atomic_fetch_add(&l->calls, 1);
  CHECK_EQ(rcache_set(l->c, "le:j:lock", "important", 9, 60), RCACHE_OK);
  out->data = strdup("v");
  out->len = 1;
  return RCACHE_OK;
}

/* ---- 64 threads, one cold key ---------------------------------------------------------------- */

typedef struct {
  rcache *c;
  loader_cfg *l;
  pthread_barrier_t *go;
  atomic_int *ok;
  const char *key;
} thr_arg;

static void *cold_reader(void *p) {
  thr_arg *a = p;
  pthread_barrier_wait(a->go);
  rcache_value v;
  if (rcache_get_or_set(a->c, a->key, 60, loader, a->l, &v) == RCACHE_OK &&
      strcmp(v.data, a->l->value) == 0)
    atomic_fetch_add(a->ok, 1);
  rcache_value_free(&v);
  return NULL;
}

static void run_threads(rcache *c, loader_cfg *l, const char *key, int n, atomic_int *ok) {
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, (unsigned)n);
  pthread_t t[64];
  thr_arg a = {c, l, &go, ok, key};
  for (int i = 0; i < n; i++)
    pthread_create(&t[i], NULL, cold_reader, &a);
  for (int i = 0; i < n; i++)
    pthread_join(t[i], NULL);
  pthread_barrier_destroy(&go);
}

static void test_single_flight(const char *url) {
  rcache_options o = opts();
  rcache *c = open_with(url, &o);
  if (!c) return;
  atomic_int calls = 0, ok = 0;
  loader_cfg l = {&calls, 50, false, "loaded"};
  run_threads(c, &l, "sf:cold", 64, &ok);
  CHECK_EQ(atomic_load(&calls), 1);
  CHECK_EQ(atomic_load(&ok), 64);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK(st.loads == 1 && st.coalesced >= 1);
  /* a failing loader: ELOADER, nothing cached */
  loader_cfg bad = {&calls, 0, true, ""};
  rcache_value v;
  CHECK_EQ(rcache_get_or_set(c, "sf:bad", 60, loader, &bad, &v), RCACHE_ELOADER);
  CHECK_EQ(rcache_get(c, "sf:bad", &v), RCACHE_MISS);
  rcache_close(c);
}

/* ---- 4 processes × 16 threads with the lease ------------------------------------------------- */

typedef struct {
  atomic_int calls;
  atomic_int ready;
  atomic_int go;
  atomic_int ok;
  atomic_int started; /* set by the doomed lease holder's loader */
} shared_t;

static shared_t *shm;

_Noreturn static void hang(void) {
  for (;;)
    pause(); /* killed mid-load */
}

static rcache_status hanging_loader(void *ud, rcache_value *out) {
  (void)ud;
  (void)out;
  atomic_fetch_add(&shm->calls, 1);
  atomic_store(&shm->started, 1);
  hang();
}

static void child(const char *url, const char *key, int threads) {
  rcache_options o = opts();
  o.lease = true;
  o.lease_ms = 1000;
  rcache *c = NULL;
  if (rcache_open(&c, url, &o) != RCACHE_OK) _exit(2);
  loader_cfg l = {&shm->calls, 200, false, "leased"};
  atomic_fetch_add(&shm->ready, 1);
  while (!atomic_load(&shm->go))
    usleep(1000);
  atomic_int ok = 0;
  run_threads(c, &l, key, threads, &ok);
  atomic_fetch_add(&shm->ok, atomic_load(&ok));
  rcache_close(c);
  _exit(0);
}

static void reap(pid_t *p, int n) {
  for (int i = 0; i < n; i++)
    waitpid(p[i], NULL, 0);
}

/* The lease's edges: a process waiting on another's lease never takes a value in its stale
 * tail (logically expired) as the answer; the lease key is rcache's own (__rc:lease:), so an
 * application key named <key>:lock is neither waited on nor deleted. */
static void test_lease_edges(const char *url) {
  rcache_options o = opts();
  o.lease = true;
  o.lease_ms = 300;
  o.stale_window_s = 60;
  rcache *c = open_with(url, &o);
  if (!c) return;
  atomic_int calls = 0;
  loader_cfg l = {&calls, 0, false, "new"};
  CHECK_EQ(rcache_set(c, "le:k", "old", 3, 30), RCACHE_OK);         /* 30 s left of a 60 s window */
  CHECK_EQ(rcache_set(c, "__rc:lease:le:k", "1", 1, 1), RCACHE_OK); /* another's, for 1 s */
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache_get_or_set(c, "le:k", 60, loader, &l, &v), RCACHE_OK);
  CHECK_MSG(v.data && strcmp(v.data, "new") == 0, "a waiter on another's lease answered '%s'",
            v.data ? v.data : "(null)");
  CHECK_EQ(atomic_load(&calls), 1);
  rcache_value_free(&v);
  handle_loader_cfg side = {.c = c};
  CHECK_EQ(rcache_get_or_set(c, "le:j", 60, side_loader, &side, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(atomic_load(&side.calls), 1);
  CHECK_EQ(rcache_get(c, "le:j:lock", &v), RCACHE_OK); /* not released as a lease */
  CHECK(v.data && strcmp(v.data, "important") == 0);
  rcache_value_free(&v);
  rcache_close(c);
}

static void test_lease(const char *url) {
  shm = mmap(NULL, sizeof *shm, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  memset(shm, 0, sizeof *shm);
  pid_t p[4];
  for (int i = 0; i < 4; i++)
    if ((p[i] = fork()) == 0) child(url, "lease:cold", 16);
  while (atomic_load(&shm->ready) < 4)
    usleep(1000);
  atomic_store(&shm->go, 1);
  reap(p, 4);
  CHECK_EQ(atomic_load(&shm->calls), 1);
  CHECK_EQ(atomic_load(&shm->ok), 64);

  /* the lease holder dies mid-load: the lease expires and the key is loaded once more */
  memset(shm, 0, sizeof *shm);
  pid_t holder = fork();
  if (holder == 0) {
    rcache_options o = opts();
    o.lease = true;
    o.lease_ms = 1000;
    rcache *c = NULL;
    if (rcache_open(&c, url, &o) != RCACHE_OK) _exit(2);
    rcache_value v;
    rcache_get_or_set(c, "lease:dies", 60, hanging_loader, NULL, &v);
    _exit(3);
  }
  while (!atomic_load(&shm->started))
    usleep(1000);
  for (int i = 0; i < 3; i++)
    if ((p[i] = fork()) == 0) child(url, "lease:dies", 16);
  while (atomic_load(&shm->ready) < 3)
    usleep(1000);
  int64_t t0 = now_ms();
  kill(holder, SIGKILL);
  waitpid(holder, NULL, 0);
  atomic_store(&shm->go, 1);
  reap(p, 3);
  int64_t took = now_ms() - t0;
  CHECK_EQ(atomic_load(&shm->calls), 2); /* the dead holder's start + exactly one more */
  CHECK_EQ(atomic_load(&shm->ok), 48);
  CHECK_MSG(took < 1000 + 200 + 1500, "reloaded after %lld ms (lease 1000 ms)", (long long)took);
  munmap(shm, sizeof *shm);
}

/* ---- early refresh --------------------------------------------------------------------------- */

typedef struct {
  rcache *c;
  loader_cfg *l;
  int64_t until;
  atomic_int *bad;
} reader_arg;

static void *steady_reader(void *p) {
  reader_arg *a = p;
  while (now_ms() < a->until) {
    rcache_value v;
    if (rcache_get_or_set(a->c, "xf:hot", 2, loader, a->l, &v) != RCACHE_OK)
      atomic_fetch_add(a->bad, 1);
    rcache_value_free(&v);
    usleep(8000); /* 8 threads × 125/s = 1,000 reads a second */
  }
  return NULL;
}

static void test_early_refresh(const char *url) {
  rcache_options o = opts();
  o.early_refresh_beta = 4;
  rcache *c = open_with(url, &o);
  if (!c) return;
  atomic_int calls = 0, bad = 0;
  loader_cfg l = {&calls, 5, false, "fresh"};
  /* the cold read first, so that "misses once" means the key never went missing again
   * (8 threads starting together on a cold key would each count their own first miss) */
  rcache_value v0;
  CHECK_EQ(rcache_get_or_set(c, "xf:hot", 2, loader, &l, &v0), RCACHE_OK);
  rcache_value_free(&v0);
  reader_arg a = {c, &l, now_ms() + 10000, &bad};
  pthread_t t[8];
  for (int i = 0; i < 8; i++)
    pthread_create(&t[i], NULL, steady_reader, &a);
  for (int i = 0; i < 8; i++)
    pthread_join(t[i], NULL);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK_EQ(atomic_load(&bad), 0);
  CHECK_MSG(st.misses == 1, "misses %llu (only the first read should miss)",
            (unsigned long long)st.misses);
  /* 10 s at a 2 s TTL: about 5 loads (1 cold + ~4-5 early refreshes) */
  int n = atomic_load(&calls);
  CHECK_MSG(n >= 4 && n <= 9, "loader ran %d times in 10 s with a 2 s TTL", n);
  CHECK(st.early_refreshes >= 3);
  rcache_close(c);
}

/* ---- TTL jitter ------------------------------------------------------------------------------ */

static void test_jitter(const char *url) {
  rcache_options o = opts();
  o.ttl_jitter = 0.1;
  rcache *c = open_with(url, &o);
  if (!c) return;
  enum { N = 10000 };
  const char **keys = calloc(N, sizeof *keys);
  rcache_value *vals = calloc(N, sizeof *vals);
  char(*names)[32] = calloc(N, sizeof *names);
  for (int i = 0; i < N; i++) {
    snprintf(names[i], sizeof names[i], "jit:%d", i);
    keys[i] = names[i];
    vals[i] = (rcache_value){"x", 1};
  }
  time_t set_at = time(NULL);
  CHECK_EQ(rcache_set_many(c, keys, vals, N, 1000), RCACHE_OK);
  int bins[4] = {0}, outside = 0;
  int64_t lo = INT64_MAX, hi = 0;
  for (int i = 0; i < N; i++) {
    int64_t t;
    rcache_status st = rcache_ttl(c, keys[i], &t);
    /* a read a loaded machine stalled past its deadline is asked again (at most twice more):
     * this test is about the spread of TTLs, not latency */
    for (int tries = 0; tries < 2 && (st == RCACHE_ETIMEOUT || st == RCACHE_EUNAVAILABLE);
         tries++) {
      usleep(300 * 1000);
      st = rcache_ttl(c, keys[i], &t);
    }
    if (st != RCACHE_OK) {
      outside++;
      continue;
    }
    /* the TTL counts down while 10,000 reads go by (seconds under TSan on a busy machine) */
    int64_t aged = (int64_t)(time(NULL) - set_at) + 1;
    lo = t < lo ? t : lo;
    hi = t > hi ? t : hi;
    if (t + aged < 900 || t > 1101)
      outside++;
    else
      bins[t < 950 ? 0 : t < 1000 ? 1 : t < 1050 ? 2 : 3]++;
  }
  CHECK_EQ(outside, 0);
  CHECK_MSG(lo <= 910 && hi >= 1090, "TTLs spread over [%lld, %lld] s, expected ±10%% of 1000",
            (long long)lo, (long long)hi);
  for (int b = 0; b < 4; b++)
    CHECK_MSG(bins[b] > N / 8, "quarter %d holds %d of %d", b, bins[b], N);
  uint64_t n;
  rcache_delete_prefix(c, "jit:", &n);
  free(keys);
  free(vals);
  free(names);
  rcache_close(c);
}

/* ---- stale-if-error -------------------------------------------------------------------------- */

static void test_stale(const char *url) {
  rcache_options o = opts();
  o.stale_window_s = 2;
  rcache *c = open_with(url, &o);
  if (!c) return;
  atomic_int calls = 0;
  loader_cfg good = {&calls, 0, false, "v1"}, bad = {&calls, 0, true, ""};
  rcache_value v;
  CHECK_EQ(rcache_get_or_set(c, "st:k", 1, loader, &good, &v), RCACHE_OK);
  rcache_value_free(&v);
  int64_t t;
  CHECK(rcache_ttl(c, "st:k", &t) == RCACHE_OK && t >= 2 && t <= 3); /* 1 s + 2 s stored */
  usleep(1300 * 1000); /* logically expired, inside the stale window */
  /* plain reads see the stored value (only get_or_set knows it is stale: a counter or a
   * rcache_set value is never extended, so plain reads cannot tell them apart) */
  CHECK_EQ(rcache_get(c, "st:k", &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get_or_set(c, "st:k", 1, loader, &bad, &v), RCACHE_OK);
  CHECK(v.data && strcmp(v.data, "v1") == 0);
  rcache_value_free(&v);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK_EQ(st.stale_served, 1);
  /* a working loader replaces a stale value at once */
  CHECK_EQ(rcache_get_or_set(c, "st:k", 1, loader, &good, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(atomic_load(&calls), 3);
  /* a counter with a TTL is never misread as stale */
  int64_t n;
  CHECK_EQ(rcache_incr_expire(c, "st:n", 1, 10, &n), RCACHE_OK);
  CHECK(rcache_ttl(c, "st:n", &t) == RCACHE_OK && t >= 9 && t <= 10);
  CHECK_EQ(rcache_get(c, "st:n", &v), RCACHE_OK);
  rcache_value_free(&v);
  usleep(3300 * 1000); /* past logical TTL + stale window */
  CHECK_EQ(rcache_get_or_set(c, "st:k", 1, loader, &bad, &v), RCACHE_ELOADER);
  rcache_close(c);
}

/* ---- a loader that asks for its own key --------------------------------------------------- */

typedef struct {
  rcache *c;
  atomic_int calls;
  char inner[16]; /* what the nested call answered */
} nested_cfg;

static rcache_status inner_loader(void *ud, rcache_value *out) {
  (void)ud;
  out->data = strdup("inner");
  out->len = 5;
  return RCACHE_OK;
}

/* The loader of "ns:k" asks for "ns:k" itself (say, a fallback path of the application): the
 * flight it waits for is its own caller's, which cannot end before it returns. */
static rcache_status outer_loader(void *ud, rcache_value *out) {
  nested_cfg *l = ud;
  atomic_fetch_add(&l->calls, 1);
  rcache_value v = {NULL, 0};
  if (rcache_get_or_set(l->c, "ns:k", 60, inner_loader, NULL, &v) == RCACHE_OK && v.data)
    snprintf(l->inner, sizeof l->inner, "%s", v.data);
  rcache_value_free(&v);
  out->data = strdup("outer");
  out->len = 5;
  return RCACHE_OK;
}

/* A nested call for the key this thread is loading does not wait flight_wait_ms for itself
 * (that is for another thread's load): it loads at once, as it would after the wait. */
static void test_nested(const char *url) {
  rcache_options o = opts();
  o.flight_wait_ms = 60000; /* waiting for itself: a minute per nested call */
  rcache *c = open_with(url, &o);
  if (!c) return;
  nested_cfg l = {.c = c};
  rcache_value v = {NULL, 0};
  CHECK_EQ(rcache_get_or_set(c, "ns:k", 60, outer_loader, &l, &v), RCACHE_OK);
  CHECK(v.data && strcmp(v.data, "outer") == 0);
  rcache_value_free(&v);
  CHECK_EQ(atomic_load(&l.calls), 1);
  CHECK_MSG(strcmp(l.inner, "inner") == 0, "nested call answered '%s'", l.inner);
  rcache_stats st;
  rcache_get_stats(c, &st);
  CHECK_EQ(st.coalesced, 0); /* it waited for nobody */
  CHECK_EQ(st.loads, 2);
  rcache_close(c);
}

/* ---- rcache_clear racing a load ------------------------------------------------------------- */

/* The data is read ("old"), then someone changes it and clears the namespace before the
 * load returns. */
static rcache_status clearing_loader(void *ud, rcache_value *out) {
  handle_loader_cfg *l = ud;
  atomic_fetch_add(&l->calls, 1);
  CHECK_EQ(rcache_clear(l->c), RCACHE_OK);
  out->data = strdup("old");
  out->len = 3;
  return RCACHE_OK;
}

/* A value loaded before an rcache_clear that returned OK is the loading call's answer, never
 * cached past the clear (as rcache_get_or_set_tagged's up-front tags): the first clear of a
 * namespace and a later one, with and without a near cache. */
static void test_clear_race(const char *url, bool near) {
  char sub[96];
  snprintf(sub, sizeof sub, "%sclr%d:", ns, (int)near);
  rcache_options o = opts();
  o.key_prefix = sub;
  if (near) o.near_cache_bytes = 1 << 20;
  rcache *c = open_with(url, &o);
  if (!c) return;
  handle_loader_cfg l = {.c = c};
  for (int round = 0; round < 2; round++) {
    rcache_value v = {NULL, 0};
    CHECK_EQ(rcache_get_or_set(c, "cr:k", 60, clearing_loader, &l, &v), RCACHE_OK);
    CHECK(v.data && strcmp(v.data, "old") == 0); /* right for the call that loaded it */
    rcache_value_free(&v);
    rcache_status s = rcache_get(c, "cr:k", &v);
    CHECK_MSG(s == RCACHE_MISS, "round %d: %s after the clear: '%s'", round, rcache_strerror(s),
              v.data ? v.data : "");
    rcache_value_free(&v);
  }
  CHECK_EQ(atomic_load(&l.calls), 2);
  rcache_flush(c);
  rcache_close(c);
}

/* ---- an invalidation racing a load ---------------------------------------------------------- */

/* A's loader: it has read the data ("old") and is held until the test lets it go. */
typedef struct {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool started, release;
  atomic_int calls;
} gate_cfg;

static void gate_hold(gate_cfg *g) {
  atomic_fetch_add(&g->calls, 1);
  pthread_mutex_lock(&g->mu);
  g->started = true;
  pthread_cond_broadcast(&g->cv);
  while (!g->release)
    pthread_cond_wait(&g->cv, &g->mu);
  pthread_mutex_unlock(&g->mu);
}

static rcache_status gated_loader(void *ud, rcache_value *out) {
  gate_hold(ud);
  out->data = strdup("old");
  out->len = 3;
  return RCACHE_OK;
}

static rcache_status gated_tagged_loader(void *ud, rcache_value *out, rcache_tags *tags) {
  (void)tags;
  return gated_loader(ud, out);
}

static rcache_status new_tagged_loader(void *ud, rcache_value *out, rcache_tags *tags) {
  (void)tags;
  return loader(ud, out);
}

/* Waits until *flag (under g->mu) or the bound: a bound, not a synchronisation. */
static bool gate_await(gate_cfg *g, const bool *flag, int ms) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += ms / 1000;
  ts.tv_nsec += (long)(ms % 1000) * 1000000L;
  if (ts.tv_nsec >= 1000000000L) {
    ts.tv_sec++;
    ts.tv_nsec -= 1000000000L;
  }
  pthread_mutex_lock(&g->mu);
  while (!*flag)
    if (pthread_cond_timedwait(&g->cv, &g->mu, &ts) != 0) break;
  bool ok = *flag;
  pthread_mutex_unlock(&g->mu);
  return ok;
}

typedef enum {
  INV_DELETE,
  INV_PREFIX,
  INV_PATTERN,
  INV_FLUSH,
  INV_CLEAR,
  INV_TAG,
  INV_USER,
  INV_DELETE_ASYNC,
  INV_SET, /* the application writes the new data itself: the load must not store over it */
  INV_SET_MANY,
  INV_SET_ASYNC,
  INV_SET_TAGGED,
  INV_N
} inv_kind;
static const char *const inv_name[INV_N] = {"delete",          "delete_prefix", "delete_pattern",
                                            "flush",           "clear",         "invalidate_tag",
                                            "invalidate_user", "delete_async",  "set",
                                            "set_many",        "set_async",     "set_tagged"};

static void on_deleted(void *ud, rcache_status s) {
  *(rcache_status *)ud = s;
}

/* rcache_delete_async (or rcache_set_async of "new"), its callback awaited, on a loop
 * connection brought up first: the loop sends that UNLINK (SET) itself */
static rcache_status delete_async(rcache *c, const char *key, bool set) {
  CHECK(await_async_warm(c, "inv:warm", 10000));
  rcache_status s = RCACHE_EINVAL,
                started = set ? rcache_set_async(c, key, "new", 3, 60, on_deleted, &s)
                              : rcache_delete_async(c, key, on_deleted, &s);
  for (int64_t t0 = await_now_ms();
       started == RCACHE_OK && s == RCACHE_EINVAL && await_now_ms() - t0 < AWAIT_MS;)
    await_async_turn(c, 100, NULL);
  return started == RCACHE_OK ? s : started;
}

typedef struct {
  rcache *c;
  const char *key;
  bool tagged;
  gate_cfg *g;   /* A: the gated loader */
  loader_cfg *l; /* B: loads "new" */
  rcache_status s;
  rcache_value v;
  gate_cfg *sig; /* B: where it says it is done */
  bool done;     /* under sig->mu */
} inv_call;

static void *inv_caller(void *p) {
  inv_call *a = p;
  const char *tag[] = {"invtag"};
  if (a->tagged)
    a->s = rcache_get_or_set_tagged(a->c, a->key, 60, tag, 1,
                                    a->g ? gated_tagged_loader : new_tagged_loader,
                                    a->g ? (void *)a->g : (void *)a->l, &a->v);
  else
    a->s = a->g ? rcache_get_or_set(a->c, a->key, 60, gated_loader, a->g, &a->v)
                : rcache_get_or_set(a->c, a->key, 60, loader, a->l, &a->v);
  return NULL;
}

static void *inv_caller_b(void *p) {
  inv_call *a = p;
  inv_caller(p);
  pthread_mutex_lock(&a->sig->mu);
  a->done = true;
  pthread_cond_broadcast(&a->sig->cv);
  pthread_mutex_unlock(&a->sig->mu);
  return NULL;
}

static rcache_status invalidate(rcache *c, inv_kind kind, const char *key) {
  uint64_t n = 0;
  switch (kind) {
  case INV_DELETE:
    return rcache_delete(c, key);
  case INV_PREFIX:
    return rcache_delete_prefix(c, "inv:", &n);
  case INV_PATTERN:
    return rcache_delete_pattern(c, "inv:*:k", &n);
  case INV_FLUSH:
    return rcache_flush(c);
  case INV_CLEAR:
    return rcache_clear(c);
  case INV_TAG:
    return rcache_invalidate_tag(c, "invtag");
  case INV_USER:
    return rcache_invalidate_user(c, "77", &n);
  case INV_DELETE_ASYNC:
    return delete_async(c, key, false);
  case INV_SET:
    return rcache_set(c, key, "new", 3, 60);
  case INV_SET_MANY:
    return rcache_set_many(c, &key, &(rcache_value){(char *)"new", 3}, 1, 60);
  case INV_SET_ASYNC:
    return delete_async(c, key, true);
  case INV_SET_TAGGED:
    return rcache_set_tagged(c, key, "new", 3, 60, (const char *[]){"invtag"}, 1);
  default:
    return RCACHE_EINVAL;
  }
}

/* Thread A's get_or_set misses and its loader reads "old"; while it runs the data changes and
 * an invalidation covering the key returns OK. Thread B's get_or_set, which starts after that,
 * must not be handed A's "old": it loads "new" itself, at once. A's caller gets "old" (its
 * call started before the invalidation), but the cache must not keep it. */
static void inv_round(rcache *c, inv_kind kind, int round, bool near) {
  char key[64];
  if (kind == INV_USER)
    snprintf(key, sizeof key, "user:77:r%d", round);
  else
    snprintf(key, sizeof key, "inv:%d%d:k", round, (int)kind);
  bool tagged = kind == INV_TAG || kind == INV_SET_TAGGED;
  gate_cfg g = {.started = false};
  pthread_mutex_init(&g.mu, NULL);
  pthread_cond_init(&g.cv, NULL);
  atomic_int calls = 0;
  loader_cfg l = {&calls, 0, false, "new"};
  inv_call a = {c, key, tagged, &g, NULL, RCACHE_OK, {NULL, 0}, NULL, false};
  inv_call b = {c, key, tagged, NULL, &l, RCACHE_OK, {NULL, 0}, &g, false};
  pthread_t ta, tb;
  pthread_create(&ta, NULL, inv_caller, &a);
  CHECK_MSG(gate_await(&g, &g.started, 10000), "%s: A's loader never ran", inv_name[kind]);
  rcache_status s = invalidate(c, kind, key);
  CHECK_MSG(s == RCACHE_OK ||
                ((kind == INV_DELETE || kind == INV_DELETE_ASYNC) && s == RCACHE_MISS),
            "%s: %s", inv_name[kind], rcache_strerror(s));
  pthread_create(&tb, NULL, inv_caller_b, &b);
  /* B must not wait for A's load: generous bound (A is held until B answers or it passes) */
  bool b_alone = gate_await(&g, &b.done, 5000);
  pthread_mutex_lock(&g.mu);
  g.release = true;
  pthread_cond_broadcast(&g.cv);
  pthread_mutex_unlock(&g.mu);
  pthread_join(tb, NULL);
  pthread_join(ta, NULL);
  const char *what = near ? "near" : "plain";
  CHECK_MSG(b_alone, "%s/%s: B waited for the load that started before the invalidation",
            inv_name[kind], what);
  CHECK_MSG(b.s == RCACHE_OK && b.v.data && strcmp(b.v.data, "new") == 0, "%s/%s: B got %s '%s'",
            inv_name[kind], what, rcache_strerror(b.s), b.v.data ? b.v.data : "");
  /* after a set, B reads the application's "new" (or loads it, if it was not stored) */
  CHECK_MSG(atomic_load(&calls) == 1 || (kind >= INV_SET && atomic_load(&calls) == 0),
            "%s/%s: B's loader ran %d times", inv_name[kind], what, atomic_load(&calls));
  CHECK_MSG(a.s == RCACHE_OK && a.v.data && strcmp(a.v.data, "old") == 0, "%s/%s: A got %s '%s'",
            inv_name[kind], what, rcache_strerror(a.s), a.v.data ? a.v.data : "");
  rcache_value v = {NULL, 0};
  s = rcache_get(c, key, &v);
  CHECK_MSG(s != RCACHE_OK || (v.data && strcmp(v.data, "old") != 0),
            "%s/%s: the cache kept A's '%s' after the invalidation", inv_name[kind], what,
            v.data ? v.data : "");
  rcache_value_free(&v);
  rcache_value_free(&a.v);
  rcache_value_free(&b.v);
  pthread_cond_destroy(&g.cv);
  pthread_mutex_destroy(&g.mu);
}

static void test_invalidate_race(const char *url, bool near) {
  char sub[96];
  snprintf(sub, sizeof sub, "%sinv%d:", ns, (int)near);
  rcache_options o = opts();
  o.key_prefix = sub;
  o.flight_wait_ms = 60000; /* a B that joins A's flight waits for A, however long it takes */
  if (near) o.near_cache_bytes = 1 << 20;
  rcache *c = open_with(url, &o);
  if (!c) return;
  for (int round = 0; round < 2; round++) /* the second: after the first has cached keys */
    for (int kind = 0; kind < INV_N; kind++)
      inv_round(c, (inv_kind)kind, round, near);
  rcache_flush(c);
  rcache_close(c);
}

/* ---- Redis down: the loader still answers ---------------------------------------------------- */

static void test_down(void) {
  rcache_options o = opts();
  o.connect_timeout_ms = 200;
  o.command_timeout_ms = 200;
  /* port 1 on loopback: nothing listens there, connections are refused at once */
  rcache *c = open_with("redis://127.0.0.1:1", &o);
  if (!c) return;
  atomic_int calls = 0;
  loader_cfg l = {&calls, 0, false, "from-db"};
  rcache_value v;
  CHECK_EQ(rcache_get_or_set(c, "down:k", 60, loader, &l, &v), RCACHE_OK);
  CHECK(v.data && strcmp(v.data, "from-db") == 0);
  rcache_value_free(&v);
  CHECK_EQ(rcache_get_or_set(c, "down:k", 60, loader, &l, &v), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(atomic_load(&calls), 2);
  rcache_close(c);
}

int main(void) {
  snprintf(ns, sizeof ns, "gos%d:", (int)getpid());
  const char *tcp = test_env_url("RCACHE_TEST_URL_TCP");
  const char *urls[] = {"memory://", tcp};
  for (int i = 0; i < 2; i++) {
    fprintf(stderr, "-- %s\n", urls[i]);
    test_single_flight(urls[i]);
    test_jitter(urls[i]);
    test_stale(urls[i]);
    test_early_refresh(urls[i]);
    test_nested(urls[i]);
    test_clear_race(urls[i], false);
    test_clear_race(urls[i], true);
    test_invalidate_race(urls[i], false);
    test_invalidate_race(urls[i], true);
  }
  test_lease(tcp); /* across processes: needs a shared store */
  test_lease_edges(tcp);
  test_down();
  rcache *c = open_with(tcp, NULL);
  if (c) {
    uint64_t n;
    rcache_delete_prefix(c, ns, &n);
    rcache_close(c);
  }
  return test_report("test_getorset");
}
