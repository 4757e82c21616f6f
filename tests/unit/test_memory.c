/* SPDX-License-Identifier: BSD-3-Clause */
/* memory:// internals: exact LRU order across shards and the byte bound, lazy and
 * periodic expiry, NX, PTTL, INCRBY details, binary keys, a scan callback that writes, and
 * many threads hammering a bounded store (its byte count must equal what it holds). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/memory.h"
#include "test.h"

static rcache__ctx ctx_bounded, ctx_unbounded;

static rcache__backend *open_store(rcache__ctx *ctx, int64_t max_bytes) {
  memset(ctx, 0, sizeof *ctx);
  rcache_options_init(&ctx->opt);
  ctx->prefix = (char *)"";
  ctx->url.max_bytes = max_bytes;
  rcache__backend *b = NULL;
  CHECK_EQ(rcache__memory_open(ctx, &b), RCACHE_OK);
  return b;
}

static rcache_status put(rcache__backend *b, const char *k, const char *v, int64_t ttl_ms) {
  return b->ops->set(b, k, strlen(k), v, strlen(v), ttl_ms, 0);
}

static bool present(rcache__backend *b, const char *k) { /* without touching the LRU */
  int64_t ms = 0;
  return b->ops->pttl(b, k, strlen(k), &ms) == RCACHE_OK && ms != -2;
}

static uint64_t keys_of(rcache__backend *b) {
  uint64_t k;
  rcache__memory_usage(b, &k, NULL, NULL);
  return k;
}

static uint64_t bytes_of(rcache__backend *b) {
  uint64_t n;
  rcache__memory_usage(b, NULL, &n, NULL);
  return n;
}

static void test_lru_order(void) {
  size_t c = rcache__memory_charge(2, 10);
  rcache__backend *b = open_store(&ctx_bounded, (int64_t)(3 * c));
  if (!b) return;
  const char *v = "0123456789";
  CHECK_EQ(put(b, "k1", v, 0), RCACHE_OK);
  CHECK_EQ(put(b, "k2", v, 0), RCACHE_OK);
  CHECK_EQ(put(b, "k3", v, 0), RCACHE_OK);
  CHECK_EQ(bytes_of(b), 3 * c);
  rcache_value out;
  CHECK_EQ(b->ops->get(b, "k1", 2, &out, NULL), RCACHE_OK); /* k1 becomes the newest */
  rcache_value_free(&out);
  CHECK_EQ(put(b, "k4", v, 0), RCACHE_OK); /* evicts k2, the least recently used */
  CHECK(!present(b, "k2"));
  CHECK(present(b, "k1") && present(b, "k3") && present(b, "k4"));
  CHECK_EQ(bytes_of(b), 3 * c);
  CHECK(b->ops->incr(b, "k3", 2, 0, 0, &(int64_t){0}) == RCACHE_ETYPE); /* no touch on error */
  CHECK_EQ(put(b, "k3", v, 0), RCACHE_OK); /* an overwrite is a use: k1 is now oldest */
  CHECK_EQ(put(b, "k5", v, 0), RCACHE_OK);
  CHECK(!present(b, "k1"));
  CHECK(present(b, "k3") && present(b, "k4") && present(b, "k5"));
  /* one value as large as two entries evicts the two oldest (k4, k3) */
  char big[256];
  size_t bl = 2 * c - rcache__memory_charge(2, 0);
  CHECK(bl < sizeof big);
  memset(big, 'b', bl);
  big[bl] = '\0';
  CHECK_EQ(put(b, "k6", big, 0), RCACHE_OK);
  CHECK(!present(b, "k4") && !present(b, "k3"));
  CHECK(present(b, "k5") && present(b, "k6"));
  CHECK(bytes_of(b) <= 3 * c);
  uint64_t ev;
  rcache__memory_usage(b, NULL, NULL, &ev);
  CHECK_EQ(ev, 4);
  /* too big for the whole store: refused, nothing evicted */
  char huge[200];
  memset(huge, 'h', sizeof huge - 1);
  huge[sizeof huge - 1] = '\0';
  CHECK(rcache__memory_charge(2, strlen(huge)) > 3 * c);
  CHECK_EQ(put(b, "k7", huge, 0), RCACHE_ETOOBIG);
  CHECK(present(b, "k5") && present(b, "k6") && !present(b, "k7"));
  rcache_value many[1] = {{huge, strlen(huge)}};
  const char *mk[1] = {"k8"};
  size_t ml[1] = {2};
  int64_t mt[1] = {0};
  CHECK_EQ(b->ops->set_many(b, mk, ml, many, 1, mt), RCACHE_ETOOBIG);
  /* deletes and flush give the bytes back */
  CHECK_EQ(b->ops->del(b, "k5", 2), RCACHE_OK);
  CHECK_EQ(bytes_of(b), rcache__memory_charge(2, bl));
  CHECK_EQ(b->ops->flushdb(b), RCACHE_OK);
  CHECK_EQ(bytes_of(b), 0);
  CHECK_EQ(keys_of(b), 0);
  b->ops->destroy(b);
}

/* Keys spread over every shard: the survivors are exactly the most recent ones. */
static void test_lru_across_shards(void) {
  const int keep = 100, total = 2000;
  size_t c = rcache__memory_charge(6, 8);
  rcache__backend *b = open_store(&ctx_bounded, (int64_t)(keep * c));
  if (!b) return;
  char k[16];
  for (int i = 0; i < total; i++) {
    snprintf(k, sizeof k, "k%05d", i);
    CHECK(put(b, k, "valvalva", 0) == RCACHE_OK);
    if (i == 50 || (i % 97 == 0 && i > 60)) { /* k00000 in use: it must survive */
      rcache_value v;
      CHECK_EQ(b->ops->get(b, "k00000", 6, &v, NULL), RCACHE_OK);
      rcache_value_free(&v);
    }
  }
  CHECK_EQ(keys_of(b), keep);
  CHECK_EQ(bytes_of(b), keep * c);
  int wrong = 0;
  for (int i = 1; i < total; i++) {
    snprintf(k, sizeof k, "k%05d", i);
    bool expect = i >= total - keep + 1;
    wrong += present(b, k) != expect;
  }
  CHECK_EQ(wrong, 0);
  CHECK(present(b, "k00000"));
  b->ops->destroy(b);
}

static void test_expiry(void) {
  rcache__backend *b = open_store(&ctx_unbounded, -1);
  if (!b) return;
  /* lazy: gone on access once past its deadline */
  CHECK_EQ(put(b, "short", "v", 1), RCACHE_OK);
  rcache__sleep_us(20000);
  rcache_value v;
  int64_t ms = 5;
  CHECK_EQ(b->ops->get(b, "short", 5, &v, &ms), RCACHE_MISS);
  CHECK_EQ(ms, -2);
  /* periodic: thousands of keys nobody reads are swept, memory comes back */
  char k[16];
  for (int i = 0; i < 3000; i++) {
    snprintf(k, sizeof k, "e%d", i);
    CHECK(put(b, k, "value", 30) == RCACHE_OK);
  }
  CHECK_EQ(put(b, "stays", "v", 0), RCACHE_OK);
  int64_t until = rcache__now_us() + 10 * 1000000;
  while (keys_of(b) > 1 && rcache__now_us() < until)
    rcache__sleep_us(10000);
  CHECK_EQ(keys_of(b), 1);
  CHECK_EQ(bytes_of(b), rcache__memory_charge(5, 1));
  CHECK(present(b, "stays"));
  /* pttl and get's pttl */
  CHECK_EQ(put(b, "t", "v", 5000), RCACHE_OK);
  CHECK_EQ(b->ops->get(b, "t", 1, &v, &ms), RCACHE_OK);
  rcache_value_free(&v);
  CHECK(ms > 4000 && ms <= 5000);
  CHECK_EQ(b->ops->pttl(b, "t", 1, &ms), RCACHE_OK);
  CHECK(ms > 4000 && ms <= 5000);
  CHECK_EQ(b->ops->get(b, "stays", 5, &v, &ms), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(ms, -1);
  CHECK_EQ(b->ops->pttl(b, "nope", 4, &ms), RCACHE_OK);
  CHECK_EQ(ms, -2);
  /* set without TTL clears it; NX */
  CHECK_EQ(put(b, "t", "w", 0), RCACHE_OK);
  CHECK_EQ(b->ops->pttl(b, "t", 1, &ms), RCACHE_OK);
  CHECK_EQ(ms, -1);
  CHECK_EQ(b->ops->set(b, "t", 1, "x", 1, 100, RCACHE__SET_NX), RCACHE_MISS);
  CHECK_EQ(b->ops->get(b, "t", 1, &v, NULL), RCACHE_OK);
  CHECK(v.len == 1 && v.data[0] == 'w');
  rcache_value_free(&v);
  CHECK_EQ(b->ops->set(b, "nx", 2, "x", 1, 1, RCACHE__SET_NX), RCACHE_OK);
  rcache__sleep_us(20000);
  CHECK_EQ(b->ops->set(b, "nx", 2, "y", 1, 0, RCACHE__SET_NX), RCACHE_OK); /* expired = absent */
  /* incr: TTL only on creation */
  int64_t n = 0;
  CHECK_EQ(b->ops->incr(b, "c", 1, 5, 60000, &n), RCACHE_OK);
  CHECK_EQ(n, 5);
  CHECK_EQ(b->ops->pttl(b, "c", 1, &ms), RCACHE_OK);
  CHECK(ms > 50000 && ms <= 60000);
  CHECK_EQ(b->ops->incr(b, "c", 1, 1, 1000, &n), RCACHE_OK);
  CHECK_EQ(n, 6);
  CHECK_EQ(b->ops->pttl(b, "c", 1, &ms), RCACHE_OK);
  CHECK(ms > 50000);
  CHECK_EQ(b->ops->incr(b, "stays", 5, 1, 0, &n), RCACHE_ETYPE);
  CHECK_STR(rcache_strerror(RCACHE_ETYPE), "wrong type");
  b->ops->destroy(b); /* stops the sweeper (LeakSanitizer checks the rest) */
}

static void test_binary_keys(void) {
  rcache__backend *b = open_store(&ctx_unbounded, -1);
  if (!b) return;
  CHECK_EQ(b->ops->set(b, "a\0b", 3, "1", 1, 0, 0), RCACHE_OK);
  CHECK_EQ(b->ops->set(b, "a\0c", 3, "2", 1, 0, 0), RCACHE_OK);
  CHECK_EQ(b->ops->set(b, "a", 1, "3", 1, 0, 0), RCACHE_OK);
  rcache_value v;
  CHECK_EQ(b->ops->get(b, "a\0b", 3, &v, NULL), RCACHE_OK);
  CHECK(v.len == 1 && v.data[0] == '1' && v.data[1] == '\0');
  rcache_value_free(&v);
  CHECK_EQ(b->ops->get(b, "a\0c", 3, &v, NULL), RCACHE_OK);
  CHECK(v.data[0] == '2');
  rcache_value_free(&v);
  CHECK_EQ(b->ops->del(b, "a\0b", 3), RCACHE_OK);
  CHECK_EQ(b->ops->get(b, "a\0b", 3, &v, NULL), RCACHE_MISS);
  CHECK_EQ(b->ops->get(b, "a", 1, &v, NULL), RCACHE_OK);
  rcache_value_free(&v);
  CHECK_EQ(keys_of(b), 2);
  rcache_health h;
  memset(&h, 0, sizeof h);
  CHECK_EQ(b->ops->health(b, &h), RCACHE_OK);
  CHECK_STR(h.server_version, "memory");
  CHECK(b->ops->available(b));
  b->ops->destroy(b);
}

/* A scan callback may call back into the store (no lock is held while it runs). */
static bool delete_visited(const char *key, size_t len, void *ud) {
  rcache__backend *b = ud;
  return b->ops->del(b, key, len) == RCACHE_OK;
}

static void test_scan_reentrant(void) {
  rcache__backend *b = open_store(&ctx_unbounded, -1);
  if (!b) return;
  char k[16];
  for (int i = 0; i < 200; i++) {
    snprintf(k, sizeof k, "s:%d", i);
    CHECK(put(b, k, "v", 0) == RCACHE_OK);
  }
  CHECK_EQ(put(b, "other", "v", 0), RCACHE_OK);
  CHECK_EQ(b->ops->scan(b, "s:*", 3, 0, delete_visited, b), RCACHE_OK);
  CHECK_EQ(keys_of(b), 1);
  b->ops->destroy(b);
}

/* ---- threads --------------------------------------------------------------------------------- */

#define THREADS 8
#define OPS 20000
#define KEYS 400

typedef struct {
  rcache__backend *bounded, *unbounded;
  unsigned seed;
  int corrupt;
} worker_arg;

/* A key's value is its name repeated to a length chosen by the writer: any torn or mixed
 * value read back shows. */
static size_t fill(char *buf, const char *key, size_t len) {
  size_t kl = strlen(key);
  for (size_t i = 0; i < len; i++)
    buf[i] = key[i % kl];
  return len;
}

static void *worker(void *p) {
  worker_arg *a = p;
  char key[32], val[600], mine[32];
  snprintf(mine, sizeof mine, "own:%u", a->seed);
  for (int i = 0; i < OPS; i++) {
    unsigned r = (unsigned)rand_r(&a->seed);
    snprintf(key, sizeof key, "key:%u", r % KEYS);
    size_t kl = strlen(key);
    rcache_value v;
    int64_t n;
    switch (r >> 16 & 7) {
    case 0:
    case 1:
    case 2:
      a->bounded->ops->set(a->bounded, key, kl, val, fill(val, key, r % 500), (r & 1) ? 0 : 50, 0);
      break;
    case 3:
    case 4:
    case 5:
      if (a->bounded->ops->get(a->bounded, key, kl, &v, NULL) == RCACHE_OK) {
        fill(val, key, v.len);
        if (memcmp(v.data, val, v.len) != 0 || v.data[v.len] != '\0') a->corrupt++;
        rcache_value_free(&v);
      }
      break;
    case 6:
      a->bounded->ops->del(a->bounded, key, kl);
      break;
    default:
      a->unbounded->ops->incr(a->unbounded, mine, strlen(mine), 1, 0, &n);
      a->unbounded->ops->incr(a->unbounded, "shared", 6, 1, 0, &n);
      break;
    }
  }
  return NULL;
}

typedef struct {
  rcache__backend *b;
  uint64_t bytes, keys;
  int missing;
} audit;

static bool add_up(const char *key, size_t len, void *ud) {
  audit *a = ud;
  rcache_value v;
  if (a->b->ops->get(a->b, key, len, &v, NULL) == RCACHE_OK) {
    a->bytes += rcache__memory_charge(len, v.len);
    a->keys++;
    rcache_value_free(&v);
  } else {
    a->missing++; /* expired between scan and get: fine, counted */
  }
  return true;
}

static void test_threads(void) {
  int64_t max = 40000;
  rcache__ctx cb, cu;
  rcache__backend *bounded = open_store(&cb, max), *unbounded = open_store(&cu, -1);
  if (!bounded || !unbounded) return;
  pthread_t th[THREADS];
  worker_arg args[THREADS];
  int started = 0;
  for (int i = 0; i < THREADS; i++) {
    args[i] = (worker_arg){bounded, unbounded, (unsigned)(i * 7919 + 1), 0};
    started += pthread_create(&th[i], NULL, worker, &args[i]) == 0;
  }
  CHECK_EQ(started, THREADS);
  int corrupt = 0;
  for (int i = 0; i < started; i++) {
    pthread_join(th[i], NULL);
    corrupt += args[i].corrupt;
  }
  CHECK_EQ(corrupt, 0);
  CHECK(bytes_of(bounded) <= (uint64_t)max);
  uint64_t ev;
  rcache__memory_usage(bounded, NULL, NULL, &ev);
  CHECK(ev > 0); /* 400 keys of up to ~500 bytes cannot fit in 40 kB */
  /* the byte count is exactly what the store holds (no key expires meanwhile: wait for
   * the 50 ms TTLs to pass first, then nothing has a TTL left to race with) */
  rcache__sleep_us(100000);
  rcache__progress purged = {0}; /* a walk over the whole store drops what has expired */
  CHECK_EQ(bounded->ops->del_match(bounded, "no-such-key", 11, &purged), RCACHE_OK);
  CHECK_EQ(purged.done, 0);
  audit a = {bounded, 0, 0, 0};
  CHECK_EQ(bounded->ops->scan(bounded, "*", 1, 0, add_up, &a), RCACHE_OK);
  CHECK_EQ(a.missing, 0);
  CHECK_EQ(a.keys, keys_of(bounded));
  CHECK_EQ(a.bytes, bytes_of(bounded));
  /* counters are exact */
  int64_t n = 0, sum = 0;
  CHECK_EQ(unbounded->ops->incr(unbounded, "shared", 6, 0, 0, &n), RCACHE_OK);
  for (int i = 0; i < THREADS; i++) {
    char mine[32];
    int64_t m = 0;
    snprintf(mine, sizeof mine, "own:%u", (unsigned)(i * 7919 + 1));
    CHECK_EQ(unbounded->ops->incr(unbounded, mine, strlen(mine), 0, 0, &m), RCACHE_OK);
    sum += m;
  }
  CHECK_EQ(n, sum);
  CHECK(n > 0);
  bounded->ops->destroy(bounded);
  unbounded->ops->destroy(unbounded);
}

/* SET NX is a lock: of many threads racing for one key, exactly one wins each round. */
typedef struct {
  rcache__backend *b;
  pthread_barrier_t *go;
  int wins;
} nx_arg;

#define NX_ROUNDS 200

static void *nx_racer(void *p) {
  nx_arg *a = p;
  char key[16];
  for (int r = 0; r < NX_ROUNDS; r++) {
    snprintf(key, sizeof key, "lock:%d", r);
    pthread_barrier_wait(a->go);
    a->wins += a->b->ops->set(a->b, key, strlen(key), "1", 1, 60000, RCACHE__SET_NX) == RCACHE_OK;
  }
  return NULL;
}

static void test_nx_race(void) {
  rcache__ctx ctx;
  rcache__backend *b = open_store(&ctx, -1);
  if (!b) return;
  enum { T = 6 };
  pthread_barrier_t go;
  pthread_barrier_init(&go, NULL, T);
  pthread_t th[T];
  nx_arg args[T];
  for (int i = 0; i < T; i++) {
    args[i] = (nx_arg){b, &go, 0};
    if (pthread_create(&th[i], NULL, nx_racer, &args[i]) != 0) abort(); /* barrier needs all */
  }
  int wins = 0;
  for (int i = 0; i < T; i++) {
    pthread_join(th[i], NULL);
    wins += args[i].wins;
  }
  pthread_barrier_destroy(&go);
  CHECK_EQ(wins, NX_ROUNDS);
  CHECK_EQ(keys_of(b), NX_ROUNDS);
  b->ops->destroy(b);
}

/* Through the public API: memory:// behaves as a cache and closes cleanly with a sweeper
 * running. */
static void test_public(void) {
  rcache *c = NULL;
  CHECK_EQ(rcache_open(&c, "memory://", NULL), RCACHE_OK);
  if (!c) return;
  CHECK_STR(rcache_mode(c), "memory");
  CHECK_EQ(rcache_set(c, "k", "v", 1, 60), RCACHE_OK);
  rcache_value v;
  CHECK_EQ(rcache_get(c, "k", &v), RCACHE_OK);
  CHECK(v.len == 1 && v.data[0] == 'v');
  rcache_value_free(&v);
  rcache_health h;
  CHECK_EQ(rcache_health_check(c, &h), RCACHE_OK);
  CHECK(h.healthy && h.latency_ms == 0);
  CHECK_STR(h.mode, "memory");
  /* without a key_prefix, flush empties the whole store (FLUSHDB) */
  CHECK_EQ(rcache_set(c, "other:k", "v", 1, 0), RCACHE_OK);
  CHECK_EQ(rcache_flush(c), RCACHE_OK);
  bool there = true;
  CHECK(rcache_exists(c, "other:k", &there) == RCACHE_OK && !there);
  CHECK(rcache_exists(c, "k", &there) == RCACHE_OK && !there);
  /* two handles on memory:// are two stores */
  rcache *c2 = NULL;
  CHECK_EQ(rcache_open(&c2, "memory://", NULL), RCACHE_OK);
  CHECK_EQ(rcache_set(c, "mine", "v", 1, 0), RCACHE_OK);
  CHECK(c2 && rcache_exists(c2, "mine", &there) == RCACHE_OK && !there);
  rcache_close(c2);
  rcache_close(c);

  /* the bound from the URL: the most recent keys stay, a value that cannot fit is refused */
  CHECK_EQ(rcache_open(&c, "memory://?max_bytes=4096&key_prefix=app:", NULL), RCACHE_OK);
  if (!c) return;
  char key[16], val[100];
  memset(val, 'x', sizeof val);
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "k%02d", i);
    CHECK(rcache_set(c, key, val, sizeof val, 0) == RCACHE_OK);
  }
  int kept = 0;
  bool x = false;
  for (int i = 0; i < 100; i++) {
    snprintf(key, sizeof key, "k%02d", i);
    kept += rcache_exists(c, key, &x) == RCACHE_OK && x;
  }
  size_t per = rcache__memory_charge(strlen("app:k00"), sizeof val);
  CHECK_EQ(kept, 4096 / per);
  CHECK(rcache_exists(c, "k99", &x) == RCACHE_OK && x);
  CHECK(rcache_exists(c, "k00", &x) == RCACHE_OK && !x);
  char big[5000];
  memset(big, 'b', sizeof big);
  CHECK_EQ(rcache_set(c, "big", big, sizeof big, 0), RCACHE_ETOOBIG);
  CHECK(strstr(rcache_errmsg(c), "max_bytes") != NULL);
  CHECK(rcache_exists(c, "k99", &x) == RCACHE_OK && x); /* nothing was evicted for it */
  rcache_close(c);
}

int main(void) {
  test_lru_order();
  test_lru_across_shards();
  test_expiry();
  test_binary_keys();
  test_scan_reentrant();
  test_threads();
  test_nx_race();
  test_public();
  return test_report("test_memory");
}
